#include "ctl/monitor_view.h"

#include <catch2/catch.hpp>

#include "ctl/msgpack_json.h"
#include "protocol/utf8.h"

namespace ferry::ctl {
namespace {

using nlohmann::json;

constexpr std::uint64_t now = 1'790'000'000'000;  // 2026-09-21T14:13:20.000Z
constexpr std::uint64_t second = 1000;
constexpr std::uint64_t minute = 60 * second;
constexpr std::uint64_t hour = 60 * minute;
constexpr std::uint64_t day = 24 * hour;

json rate(double current) {
  json rates = json::array();
  for (int i = 0; i < 29; ++i) rates.push_back(0);
  rates.push_back(current);
  return rates;
}

json station(const std::string& name, bool online, const std::string& via,
             std::uint64_t last_seen) {
  return {{"name", name},
          {"key", std::string(64, 'e')},
          {"role", "station"},
          {"online", online},
          {"via", via},
          {"silent", false},
          {"last_seen_ms", last_seen},
          {"last_report_ms", last_seen},
          {"backlog_up", 0},
          {"backlog_down", 0},
          {"oldest_unsent_ms", 0},
          {"disk_free_bytes", 1234567890},
          {"version", "0.1.0"},
          {"rejected", json::object()},
          {"open_conflicts", 0},
          {"ops_held", 5123},
          {"rate", rate(0)}};
}

json peer(const std::string& name, bool upstream, bool online, std::uint64_t last_seen) {
  return {{"name", name},          {"key", std::string(64, 'c')},
          {"upstream", upstream},  {"endpoint", upstream ? "tcp://10.0.0.1:7470" : ""},
          {"online", online},      {"last_seen_ms", last_seen},
          {"backlog_out", 0},      {"backlog_in", 0},
          {"oldest_unsent_ms", 0}, {"ops_sent", 12},
          {"ops_received", 11000}, {"rejected", json::object()},
          {"last_error", ""},      {"rate", rate(0)}};
}

// A hub's reply as docs/monitor.md shows it: a direct station, one behind a relay, a silent one
// and one never seen; a relay peer and an upstream that is down.
json sample_reply() {
  json huaniao = station("huaniao", true, "relay-ds", now - 12 * second);
  huaniao["backlog_down"] = 3;
  huaniao["rate"] = rate(1.5);
  json cjk = station("花鸟", true, "", now - 3 * minute - 5 * second);
  cjk["backlog_up"] = 12;
  cjk["oldest_unsent_ms"] = now - 2 * hour;
  cjk["rejected"] = {{"bad_signature", 2}, {"unauthorized", 1}};
  cjk["open_conflicts"] = 1;
  cjk["rate"] = rate(0.2);
  json dongji = station("dongji", false, "", now - 2 * day);
  dongji["silent"] = true;
  dongji["backlog_up"] = nullptr;
  dongji["backlog_down"] = nullptr;
  json xiji = station("xiji", false, "", 0);
  xiji["silent"] = true;
  xiji["backlog_up"] = nullptr;
  xiji["backlog_down"] = nullptr;
  xiji["rate"] = json::array();
  json relay = peer("relay-ds", false, true, now - 500);
  relay["backlog_out"] = 120'000;
  json up = peer("city-hub", true, false, now - hour - 2 * minute);
  up["backlog_in"] = 5;
  up["last_error"] = "heartbeat timeout: no message for 30 s, the session was closed";
  json status = {{"now_ms", now},
                 {"node", {{"name", "hub"}, {"id", std::string(64, 'a')}, {"role", "hub"}}},
                 {"ops", 12000},
                 {"feeds", 8},
                 {"open_conflicts", 1},
                 {"submit_queue", 0},
                 {"disk_free_bytes", 51'234'567'890},
                 {"store_writable", true},
                 {"uptime_ms", 6 * minute},
                 {"silent_after_ms", 30 * minute},
                 {"replication", nullptr}};
  return {{"ok", true},
          {"status", status},
          {"peers", {relay, up}},
          {"stations", {huaniao, cjk, dongji, xiji}}};
}

// The reply as the client gets it: msgpack on the wire, then JSON.
json over_the_wire(const json& reply) {
  auto decoded = client::json_from_msgpack(json::to_msgpack(reply));
  REQUIRE(decoded);
  return *decoded;
}

MonitorReply decoded(const json& reply) {
  auto result = decode_monitor_reply(over_the_wire(reply));
  if (!result) FAIL(result.error().detail);
  return *result;
}

std::string error_of(const json& reply) {
  auto result = decode_monitor_reply(over_the_wire(reply));
  REQUIRE_FALSE(result);
  CHECK(result.error().code == Errc::malformed);
  return result.error().detail;
}

void check_fits(const std::vector<std::string>& lines, std::size_t width) {
  for (const std::string& line : lines) {
    INFO(line);
    CHECK(display_columns(line) <= width);
    CHECK(valid_utf8(line));
    CHECK(line.find('\x1b') == std::string::npos);
  }
}

TEST_CASE("monitor: a reply decodes, with null backlogs and the current rate") {
  MonitorReply r = decoded(sample_reply());
  CHECK(r.status.now_ms == now);
  CHECK(r.status.name == "hub");
  CHECK(r.status.role == "hub");
  CHECK(r.status.ops == 12000);
  CHECK(r.status.open_conflicts == 1);
  CHECK(r.status.disk_free_bytes == 51'234'567'890u);
  CHECK(r.status.store_writable == true);
  REQUIRE(r.stations.size() == 4);
  CHECK(r.stations[0].name == "huaniao");
  CHECK(r.stations[0].via == "relay-ds");
  CHECK(r.stations[0].rate_now == 1.5);
  CHECK(r.stations[1].name == "花鸟");
  CHECK(r.stations[1].rejected == 3);
  CHECK(r.stations[1].backlog_up == 12u);
  CHECK(r.stations[2].silent);
  CHECK_FALSE(r.stations[2].backlog_up.has_value());
  CHECK_FALSE(r.stations[2].backlog_down.has_value());
  CHECK_FALSE(r.stations[3].rate_now.has_value());  // an empty rate array
  REQUIRE(r.peers.size() == 2);
  CHECK(r.peers[0].backlog_out == 120'000);
  CHECK(r.peers[1].upstream);
  CHECK_FALSE(r.peers[1].online);
}

TEST_CASE("monitor: unknown keys are ignored and missing ones take their none value") {
  json reply = {{"ok", true},
                {"status", {{"now_ms", now}, {"brand_new", {1, 2}}}},
                {"peers", {{{"name", "p"}, {"later", "x"}}}},
                {"stations", {{{"name", "s"}}}},
                {"extra", json::object()}};
  MonitorReply r = decoded(reply);
  CHECK(r.status.name.empty());
  CHECK_FALSE(r.status.disk_free_bytes.has_value());
  CHECK_FALSE(r.status.store_writable.has_value());
  REQUIRE(r.stations.size() == 1);
  CHECK(r.stations[0].last_seen_ms == 0);
  CHECK_FALSE(r.stations[0].backlog_up.has_value());
  CHECK_FALSE(r.stations[0].rate_now.has_value());
  check_fits(render_monitor(r, "", 80), 80);
}

TEST_CASE("monitor: replies of the wrong shape are refused with the value named") {
  CHECK(error_of(json::array()) == "monitor reply: the reply is an array, not a map");
  json reply = sample_reply();
  reply.erase("status");
  CHECK(error_of(reply) == "monitor reply: `status` is missing, not a map");
  reply = sample_reply();
  reply["status"].erase("now_ms");
  CHECK(error_of(reply) == "monitor reply: status lacks its count `now_ms`");
  reply = sample_reply();
  reply["status"]["now_ms"] = -5;
  CHECK(error_of(reply) == "monitor reply: status.now_ms is a negative number, not a count");
  reply = sample_reply();
  reply["status"]["node"] = "hub";
  CHECK(error_of(reply) == "monitor reply: status.node is a string, not a map");
  reply = sample_reply();
  reply["status"]["node"]["name"] = 7;
  CHECK(error_of(reply) == "monitor reply: status.node.name is a number, not a string");
  reply = sample_reply();
  reply["stations"] = json::object();
  CHECK(error_of(reply) == "monitor reply: `stations` is a map, not an array");
  reply = sample_reply();
  reply.erase("peers");
  CHECK(error_of(reply) == "monitor reply: `peers` is missing, not an array");
  reply = sample_reply();
  reply["stations"][1] = "花鸟";
  CHECK(error_of(reply) == "monitor reply: stations[1] is a string, not a map");
  reply = sample_reply();
  reply["stations"][2].erase("name");
  CHECK(error_of(reply) == "monitor reply: stations[2] lacks its string `name`");
  reply = sample_reply();
  reply["stations"][0]["backlog_up"] = "12";
  CHECK(error_of(reply) ==
        "monitor reply: stations[0].backlog_up is a string, not a count or null");
  reply = sample_reply();
  reply["stations"][0]["last_seen_ms"] = nullptr;
  CHECK(error_of(reply) == "monitor reply: stations[0].last_seen_ms is null, not a count");
  reply = sample_reply();
  reply["stations"][0]["online"] = 1;
  CHECK(error_of(reply) == "monitor reply: stations[0].online is a number, not true or false");
  reply = sample_reply();
  reply["stations"][0]["rate"] = {0, "fast"};
  CHECK(error_of(reply) == "monitor reply: stations[0].rate is a string, not an array of rates");
  reply = sample_reply();
  reply["stations"][0]["rate"] = {0, -1.5};
  CHECK(error_of(reply) == "monitor reply: stations[0].rate is a fraction, not an array of rates");
  reply = sample_reply();
  reply["stations"][3]["rejected"] = {{"bad_signature", -1}};
  CHECK(error_of(reply) ==
        "monitor reply: stations[3].rejected is a negative number, not a map of counts");
  reply = sample_reply();
  reply["peers"][1]["last_error"] = json::array();
  CHECK(error_of(reply) == "monitor reply: peers[1].last_error is an array, not a string");
  reply = sample_reply();
  reply["peers"][0]["backlog_out"] = 1.5;
  CHECK(error_of(reply) == "monitor reply: peers[0].backlog_out is a fraction, not a count");
}

TEST_CASE("monitor: ages in their largest whole unit, never, and counts in 5 characters") {
  CHECK(age_text(now, 0) == "never");
  CHECK(age_text(now, now) == "0s");
  CHECK(age_text(now, now + 5 * second) == "0s");  // ahead of the daemon's clock
  CHECK(age_text(now, now - 999) == "0s");
  CHECK(age_text(now, now - 12 * second) == "12s");
  CHECK(age_text(now, now - 59 * second) == "59s");
  CHECK(age_text(now, now - 3 * minute - 59 * second) == "3m");
  CHECK(age_text(now, now - 2 * hour) == "2h");
  CHECK(age_text(now, now - 23 * hour - 59 * minute) == "23h");
  CHECK(age_text(now, now - 400 * day) == "400d");
  CHECK(age_text(now, now - 999 * day) == "999d");
  CHECK(age_text(now, now - 1000 * day) == "2y");
  CHECK(age_text(now, 1) == "56y");
  CHECK(age_text(UINT64_MAX, 1) == ">999y");
  CHECK(compact_count(0) == "0");
  CHECK(compact_count(99'999) == "99999");
  CHECK(compact_count(100'000) == "100k");
  CHECK(compact_count(999'999) == "999k");
  CHECK(compact_count(1'000'000) == "1.0M");
  CHECK(compact_count(1'250'000) == "1.2M");
  CHECK(compact_count(9'999'999) == "9.9M");
  CHECK(compact_count(51'234'567'890) == "51G");
  CHECK(compact_count(UINT64_MAX) == "18E");
}

TEST_CASE("monitor: text is cut on code point boundaries, wide characters count two") {
  CHECK(display_columns("huaniao") == 7);
  CHECK(display_columns("花鸟") == 4);
  CHECK(display_columns("café") == 4);
  CHECK(display_columns("ｆｕｌｌ") == 8);  // fullwidth forms
  CHECK(fit_columns("花鸟", 4) == "花鸟");
  CHECK(fit_columns("花鸟站", 5) == "花鸟+");
  CHECK(fit_columns("花鸟站", 4) == "花+");  // 花 and a half would not fit: one column left free
  CHECK(fit_columns("花鸟站", 1) == "+");
  CHECK(fit_columns("huaniao", 0).empty());
  CHECK(fit_columns("a\x1b[2Jb", 10) == "a?[2Jb");  // no escape sequence reaches the terminal
  CHECK(fit_columns("a\xe8\x8a", 10) == "a??");     // a code point cut short by the sender
  CHECK(fit_columns("\xc0\xaf", 10) == "??");       // an overlong '/'
  CHECK(fit_columns("a\xc2\x9b"
                    "b",
                    10) == "a?b");              // C1 CSI
  CHECK(fit_columns("x\u202ey", 10) == "x?y");  // a right-to-left override
}

TEST_CASE("monitor: the frame at 80 columns") {
  auto lines = render_monitor(decoded(sample_reply()), "", 80);
  std::vector<std::string> expected = {
      "ferry hub (hub)  ops 12000  open conflicts 1                2026-09-21 14:13:20Z",
      "up 6m 0s  feeds 8  submit queue 0  disk free 51GB",
      "",
      "STATIONS  4, 2 online, 2 silent",
      "NAME    STATE   VIA       SEEN     UP   DOWN OLDEST  OPS/S   REJ CONFL",
      "huaniao online  relay-ds   12s      0      3      -    1.5     0     0",
      "花鸟    online  -           3m     12      0     2h    0.2     3     1",
      "dongji  SILENT  -           2d      -      -      -      0     0     0",
      "xiji    SILENT  -        never      -      -      -      -     0     0",
      "",
      "PEERS  2, 1 online",
      "NAME     DIR  ONLINE  SEEN    OUT     IN LAST ERROR",
      "relay-ds down yes       0s   120k      0",
      "city-hub up   no        1h      0      5 heartbeat timeout: no message for 30 s+",
  };
  CHECK(lines == expected);
  check_fits(lines, 80);
}

TEST_CASE("monitor: every line fits the width with long and wide names") {
  json reply = sample_reply();
  reply["stations"][0]["name"] = std::string(200, 'n');
  reply["stations"][0]["via"] = std::string(100, 'v');
  reply["stations"][1]["name"] = "花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟花鸟";
  reply["stations"][1]["via"] = "中继站中继站中继站中继站中继站";
  reply["stations"][2]["backlog_up"] = UINT64_MAX;
  reply["stations"][2]["rate"] = rate(123456789.0);
  reply["stations"][2]["open_conflicts"] = UINT64_MAX;
  reply["stations"][3]["rejected"] = {{"a", UINT64_MAX}, {"b", UINT64_MAX}};  // saturates
  reply["peers"][0]["name"] = "对端对端对端对端对端对端对端对端对端对端对端";
  reply["peers"][1]["last_error"] = "错误" + std::string(300, 'e');
  reply["status"]["node"]["name"] = std::string(120, 'h');
  reply["status"]["ops"] = UINT64_MAX;
  MonitorReply r = decoded(reply);
  CHECK(r.stations[3].rejected == UINT64_MAX);
  for (std::size_t width : {80u, 81u, 100u, 132u, 60u, 40u, 20u, 1u}) {
    INFO("width " << width);
    auto lines = render_monitor(r, "no update: " + std::string(200, 'x'), width);
    check_fits(lines, width);
  }
  auto lines = render_monitor(r, "", 80);
  CHECK(lines[5].starts_with("nnnnnnnnnnnnnn+ online  vvvvvvvvv+   12s"));
  CHECK(lines[6].starts_with("花鸟花鸟花鸟花+ online  中继站中+     3m"));  // 15 columns each
  CHECK(render_monitor(r, "", 0) == std::vector<std::string>(lines.size(), ""));
}

TEST_CASE("monitor: a failed fetch shows its problem, over the last figures if any") {
  std::string problem = "no update: ferryd is not running at ipc:///x (no answer within 2000 ms)";
  CHECK(render_monitor(std::nullopt, problem, 80) ==
        std::vector<std::string>{"ferry monitor", problem});
  auto lines = render_monitor(decoded(sample_reply()), problem, 80);
  CHECK(lines[2] == problem);
  CHECK(lines[4] == "STATIONS  4, 2 online, 2 silent");
  std::string path = "/var/lib/ferry/" + std::string(60, 'd') + "/ferryd.sock";
  problem = "no update: ferryd is not running at ipc://" + path + " (no socket file " + path +
            ": No such file or directory); retrying every 2000 ms";
  CHECK(render_monitor(std::nullopt, problem, 80) ==
        std::vector<std::string>{
            "ferry monitor", "no update: ferryd is not running at",
            "ipc:///var/lib/ferry/" + std::string(59, 'd'),  // a word longer than a line is cut
            "d/ferryd.sock (no socket file", "/var/lib/ferry/" + std::string(60, 'd') + "/fer+"});
  lines = render_monitor(std::nullopt, std::string(1000, 'x'), 80);
  CHECK(lines.size() == 5);  // the title and 4 lines of the problem, the last one cut
  CHECK(lines[4] == std::string(79, 'x') + "+");
  json reply = sample_reply();
  reply["status"]["store_writable"] = false;
  reply["stations"] = json::array();
  reply["peers"] = json::array();
  lines = render_monitor(decoded(reply), "", 80);
  CHECK(lines[1].ends_with("  STORE NOT WRITABLE"));
  CHECK(lines[4] == "  none enrolled in this node's trust view");
  CHECK(lines[7] == "  none: no [[upstream]], and no peer has connected");
}

TEST_CASE("monitor: a frame taller than the terminal is cut with a note") {
  std::vector<std::string> lines = {"a", "b", "c", "d", "e"};
  CHECK(fit_rows(lines, 0) == lines);
  CHECK(fit_rows(lines, 5) == lines);
  CHECK(fit_rows(lines, 3) ==
        std::vector<std::string>{"a", "b", "(3 more lines: make the terminal taller)"});
  CHECK(fit_rows(lines, 1) == std::vector<std::string>{"(5 more lines: make the terminal taller)"});
  CHECK(fit_rows(lines, 2, 10) == std::vector<std::string>{"a", "(4 more l+"});
}

}  // namespace
}  // namespace ferry::ctl
