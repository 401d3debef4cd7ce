#include "ctl/peer_tables.h"

#include <catch2/catch.hpp>

namespace ferry::ctl {
namespace {

using nlohmann::json;

const std::string hub_key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const std::string station_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
constexpr std::uint64_t now = 1'790'000'000'000;  // 2026-09-21T14:13:20.000Z

json peer(std::string name, const std::string& key, bool upstream) {
  return {{"name", std::move(name)},
          {"key", key},
          {"upstream", upstream},
          {"endpoint", upstream ? "tcp://10.0.0.1:7470" : ""},
          {"connected", upstream},
          {"last_seen", upstream ? now - 3'723'000 : 0},
          {"backlog", upstream ? 12 : 0},
          {"ops_sent", 1204},
          {"ops_received", 3},
          {"last_error", ""}};
}

TEST_CASE("peers: one row per peer, last seen with its age, in 80 columns") {
  json peers = json::array({peer("hub", hub_key, true), peer("huaniao", station_key, false)});
  auto lines = peers_table(peers, now);
  CHECK(lines ==
        std::vector<std::string>{
            "NAME          FINGERPRINT       DIRECTION   CONN  BACKLOG  OPS SENT  OPS RECV",
            "hub           3b6a27bcceb6a42d  upstream    yes        12      1204         3",
            "              last seen 2026-09-21T13:11:17.000Z (1h 2m 3s ago)",
            "huaniao       d75a980182b10ab7  downstream  no          0      1204         3",
            "              last seen never"});
  for (const std::string& line : lines) CHECK(line.size() <= screen_columns);
}

TEST_CASE("peers: a long error is wrapped under the row and a long name gets its own line") {
  json p = peer("a-station-with-a-long-name", hub_key, true);
  p["last_error"] =
      "session ended: the peer sent a batch whose first op does not follow the "
      "feed head it acknowledged, so the link was dropped and will be retried";
  p["last_seen"] = now + 5000;
  auto lines = peers_table(json::array({p}), now);
  REQUIRE(lines.size() == 7);
  CHECK(lines[1] == "a-station-with-a-long-name");
  CHECK(lines[2].starts_with("              3b6a27bcceb6a42d  upstream"));
  CHECK(lines[3] ==
        "              last seen 2026-09-21T14:13:25.000Z (ahead of this host's clock)");
  CHECK(lines[4] ==
        "              last error: session ended: the peer sent a batch whose first op");
  CHECK(lines[5] == "              does not follow the feed head it acknowledged, so the link was");
  CHECK(lines[6] == "              dropped and will be retried");
  for (const std::string& line : lines) CHECK(line.size() <= screen_columns);
}

TEST_CASE("peers: no peers, missing fields and control characters") {
  CHECK(peers_table(json::array(), now) ==
        std::vector<std::string>{
            "no peers: this node has no [[upstream]] and no peer has connected to it"});
  json odd = {{"name", "ev\x1bil"}, {"last_error", "bad\nline"}};
  auto lines = peers_table(json::array({odd}), now);
  CHECK(lines ==
        std::vector<std::string>{
            "NAME          FINGERPRINT       DIRECTION   CONN  BACKLOG  OPS SENT  OPS RECV",
            "ev?il         ?                 ?           ?           ?         ?         ?",
            "              last seen ?", "              last error: bad?line"});
}

TEST_CASE("wrap breaks at spaces, cuts words longer than a line, and counts code points") {
  CHECK(wrap_text("", 10).empty());
  CHECK(wrap_text("one two three", 7) == std::vector<std::string>{"one two", "three"});
  CHECK(wrap_text("abcdefghij", 4) == std::vector<std::string>{"abcd", "efgh", "ij"});
  CHECK(wrap_text("a  b", 10) == std::vector<std::string>{"a b"});
  CHECK(wrap_text("陈晓玲陈晓玲", 3) == std::vector<std::string>{"陈晓玲", "陈晓玲"});
}

TEST_CASE("trust list: the authority, then one entry per node with its patterns one per line") {
  json list = {{"authority", hub_key},
               {"trust",
                {{{"name", "huaniao"},
                  {"key", station_key},
                  {"role", "station"},
                  {"read", {"station/huaniao", "broadcast", "ferry/trust"}},
                  {"write", {"station/huaniao"}},
                  {"revoked", false}},
                 {{"name", "old"},
                  {"key", hub_key},
                  {"role", "relay"},
                  {"read", json::array()},
                  {"write", json::array()},
                  {"revoked", true}}}}};
  CHECK(trust_table(list) ==
        std::vector<std::string>{
            "authority  " + hub_key,
            "NAME     ROLE     FINGERPRINT       REVOKED  READ             WRITE",
            "huaniao  station  d75a980182b10ab7  no       station/huaniao  station/huaniao",
            "                                             broadcast",
            "                                             ferry/trust",
            "old      relay    3b6a27bcceb6a42d  yes      -                -"});
  CHECK(trust_table({{"authority", nullptr}, {"trust", json::array()}}) ==
        std::vector<std::string>{
            "authority  none: this node has no [authority] and does not replicate",
            "no trust entries (ferryctl trust add, on the authority, writes them)"});
}

TEST_CASE("a fingerprint is the first 16 hex digits of a key") {
  CHECK(fingerprint(hub_key) == "3b6a27bcceb6a42d");
  CHECK(fingerprint("") == "?");
  CHECK(fingerprint("abc") == "abc");
  CHECK(terminal_text("a\tb\x7f") == "a?b?");
}

}  // namespace
}  // namespace ferry::ctl
