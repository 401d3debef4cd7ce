// ferryctl's replication commands against real daemons (docs/ferryctl.md): trust add, list and
// revoke on the hub, peers and sync on a station, track and status after an op crossed the link,
// and the refusals (trust on a node that is not the authority, sync on a node without upstream,
// bad input before anything is sent).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/daemon_harness.h"

using namespace ferry::it;
using nlohmann::json;

namespace {

constexpr auto connect_timeout = 60s;
constexpr auto poll_interval = 100ms;

ProcessResult ferryctl(const TestNode& node, std::vector<std::string> args) {
  if (ferryctl_path().empty()) throw HarnessError("ferryctl was not built");
  args.insert(args.begin(), {ferryctl_path(), "-c", node.config_path()});
  return run_process(args, 60s);
}

// The JSON a ferryctl --json command printed; throws unless it exited 0 with a JSON document.
json json_of(const TestNode& node, std::vector<std::string> args) {
  args.push_back("--json");
  ProcessResult r = ferryctl(node, args);
  if (!r.status.ok()) throw HarnessError("ferryctl failed: " + r.status.text() + ": " + r.err);
  json parsed = json::parse(r.out, nullptr, false);
  if (parsed.is_discarded()) throw HarnessError("ferryctl printed no JSON: " + r.out);
  return parsed;
}

// Whether the station's peers list shows the upstream with this key connected.
bool connected_to(const TestNode& station, const std::string& key) {
  json peers = json_of(station, {"peers"});
  for (const json& p : peers) {
    if (p.value("key", "") == key && p.value("upstream", false) && p.value("connected", false)) {
      return true;
    }
  }
  return false;
}

const json* entry_for(const json& list, const std::string& key) {
  for (const json& e : list["trust"]) {
    if (e.value("key", "") == key) return &e;
  }
  return nullptr;
}

std::string submitted_id(const ProcessResult& r) {
  json printed = json::parse(r.out, nullptr, false);
  if (printed.is_discarded() || !printed.contains("id")) {
    throw HarnessError("no id printed: " + r.out + r.err);
  }
  return printed["id"].get<std::string>();
}

}  // namespace

TEST_CASE("ferryctl trust, peers, sync, track and status against a hub and a station",
          "[ferryctl-replication]") {
  TestNode hub(named("hub"));
  TestNode station(named("huaniao"));
  hub.replicate(hub_role(hub));
  station.replicate(below(hub, hub.node_id(), "station"));
  hub.start();
  station.start();

  // Bad input is refused before anything reaches the daemon.
  CHECK(ferryctl(hub, {"trust", "add", "no spaces", station.node_id()}).status.code == 2);
  CHECK(ferryctl(hub, {"trust", "add", "huaniao", station.node_id().substr(1)}).status.code == 2);
  CHECK(
      ferryctl(hub, {"trust", "add", "huaniao", station.node_id(), "--read", "a*b"}).status.code ==
      2);
  CHECK(hub.status()["ipc"]["errors"]["bad_request"].u64() == 0);

  ProcessResult added = ferryctl(hub, {"trust", "add", "huaniao", station.node_id()});
  INFO(added.out << added.err);
  REQUIRE(added.status.ok());
  CHECK(added.out.starts_with("id       "));
  CHECK(added.out.find("trusted  huaniao as station, key " + station.node_id().substr(0, 16)) !=
        std::string::npos);

  REQUIRE(wait_until([&] { return connected_to(station, hub.node_id()); }, connect_timeout,
                     poll_interval));
  ProcessResult peers = ferryctl(station, {"peers"});
  INFO(peers.out);
  REQUIRE(peers.status.ok());
  CHECK(peers.out.find("hub           " + hub.node_id().substr(0, 16) + "  upstream    yes") !=
        std::string::npos);

  ProcessResult listed = ferryctl(hub, {"trust", "list"});
  INFO(listed.out);
  REQUIRE(listed.status.ok());
  CHECK(listed.out.starts_with("authority  " + hub.node_id() + "\n"));
  CHECK(listed.out.find("huaniao  station  " + station.node_id().substr(0, 16) + "  no ") !=
        std::string::npos);
  json list = json_of(hub, {"trust", "list"});
  CHECK(list["authority"] == hub.node_id());
  REQUIRE(entry_for(list, station.node_id()) != nullptr);
  // The trust view reaches the station too.
  REQUIRE(wait_until(
      [&] {
        return entry_for(json_of(station, {"trust", "list"}), station.node_id()) != nullptr;
      },
      connect_timeout, poll_interval));

  // An op filed at the station: forwarded to the hub, then delivered (the hub's receipt).
  ProcessResult filed = ferryctl(
      station, {"--json", "submit", "--kind", "case.submit", "--key", "HN-1", "--set", "fee=12"});
  REQUIRE(filed.status.ok());
  std::string id = submitted_id(filed);
  REQUIRE(wait_until(
      [&] {
        return json_of(station, {"track", id})["state"] == "delivered";
      },
      connect_timeout, poll_interval));
  ProcessResult tracked = ferryctl(station, {"track", id});
  INFO(tracked.out);
  REQUIRE(tracked.status.ok());
  CHECK(tracked.out.find("state     delivered\n") != std::string::npos);
  CHECK(tracked.out.find("forwarded to hub (" + hub.node_id().substr(0, 16) + ") at ") !=
        std::string::npos);
  CHECK(tracked.out.find("delivered: receipt ") != std::string::npos);

  ProcessResult status = ferryctl(hub, {"status"});
  INFO(status.out);
  REQUIRE(status.status.ok());
  CHECK(status.out.find("trust         1 entry, this node is the authority: yes\n") !=
        std::string::npos);
  CHECK(status.out.find("sessions      ") != std::string::npos);

  // sync: the station reconnects its upstream; the hub has none.
  ProcessResult synced = ferryctl(station, {"sync"});
  INFO(synced.out << synced.err);
  REQUIRE(synced.status.ok());
  CHECK(synced.out.find("reconnecting now:\n  hub  " + hub.node_id().substr(0, 16)) !=
        std::string::npos);
  REQUIRE(wait_until([&] { return connected_to(station, hub.node_id()); }, connect_timeout,
                     poll_interval));
  ProcessResult no_upstream = ferryctl(hub, {"sync"});
  CHECK(no_upstream.status.code == 1);
  CHECK(no_upstream.err.find("no upstream") != std::string::npos);

  // Only the authority writes trust.
  ProcessResult forbidden = ferryctl(station, {"trust", "add", "other", hub.node_id()});
  CHECK(forbidden.status.code == 1);
  CHECK(forbidden.err.find("ferryctl: forbidden: ") == 0);
  CHECK(forbidden.err.find("not the trust authority") != std::string::npos);

  ProcessResult revoked = ferryctl(hub, {"trust", "revoke", "huaniao"});
  INFO(revoked.out << revoked.err);
  REQUIRE(revoked.status.ok());
  CHECK(revoked.out.find("revoked  huaniao\n") != std::string::npos);
  json after = json_of(hub, {"trust", "list"});
  const json* entry = entry_for(after, station.node_id());
  REQUIRE(entry != nullptr);
  CHECK((*entry)["revoked"] == true);
  ProcessResult unknown = ferryctl(hub, {"trust", "revoke", "nobody"});
  CHECK(unknown.status.code == 1);
  CHECK(unknown.err.find("ferryctl: not_found: ") == 0);
}
