// The procedures of docs/operations.md, done as an operator would: an online backup of a
// station with the sqlite3 tool while ferryd runs, a restore from it, and a restore from the
// upstream with the same key and an empty data directory. Real ferryd processes, loopback TCP.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "tests/integration/daemon_harness.h"
#include "tests/integration/verified.h"

using namespace ferry::it;

namespace {

constexpr auto converge_timeout = 120s;

// The station's files that docs/operations.md names: the op store and its WAL files.
void remove_store(const TestNode& node) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(node.data_dir() + "/ferry.db" + suffix);
  }
}

// After a restore the station must hold its whole feed again and continue it: one more op
// filed there gets the next seq and reaches the hub, whose copy of the feed stays intact.
void require_feed_continues(TestNode& hub, TestNode& station, std::uint64_t filed) {
  const std::string channel = station.default_channel();
  REQUIRE(wait_until([&] { return feed_length(station, channel, station.node_id()) == filed; },
                     converge_timeout, 50ms));
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));
  IpcClient c = station.client();
  Value next = station.submit_ok(
      c, submit_request("case.submit", "after-restore",
                        Value::map({{"set", Value::map({{"status", "filed"}})}})));
  CHECK(next["seq"].u64() == filed + 1);
  REQUIRE(wait_until([&] { return feed_length(hub, channel, station.node_id()) == filed + 1; },
                     converge_timeout, 50ms));
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));
  Value replication = hub.status()["replication"];
  INFO(replication);
  CHECK(replication["duplicates"].u64() == 0);
  for (const auto& [code, count] : replication["errors_sent"].fields()) {
    INFO(code);
    CHECK(count.u64() == 0);  // no fork, no gap: the restored feed is the one the hub holds
  }
}

// A hub and a station below it, enrolled there, both serving.
void start_enrolled(TestNode& hub, TestNode& station) {
  hub.replicate(hub_role(hub));
  station.replicate(below(hub, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, station, "station");
  station.start();
}

}  // namespace

TEST_CASE("operations: a station restored from an online backup gets the rest back from the hub",
          "[replication][operations]") {
  TestNode hub(named("hub"));
  TestNode station(named("huaniao"));
  start_enrolled(hub, station);
  const std::string channel = station.default_channel();
  const std::size_t before = 300, after = 200;
  submit_many(station, before, "before-backup");
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));

  // The backup, while ferryd runs and files (docs/operations.md: SQLite's online backup).
  const std::string backup = station.file("backup.db");
  const std::string sqlite3 = tool_path("sqlite3");
  if (sqlite3.empty()) FAIL("the sqlite3 tool is not installed (Debian package sqlite3)");
  ProcessResult r = run_process({sqlite3, station.data_dir() + "/ferry.db", ".backup " + backup});
  INFO(r.out << r.err);
  REQUIRE(r.status.ok());
  ProcessResult counted = run_process({sqlite3, backup, "SELECT count(*) FROM ops"});
  REQUIRE(counted.status.ok());
  const std::uint64_t in_backup = std::stoull(counted.out);
  CHECK(in_backup >= before);

  // Filed after the backup; they reach the hub, then the station loses its store.
  submit_many(station, after, "after-backup");
  REQUIRE(wait_until([&] { return feed_length(hub, channel, station.node_id()) == before + after; },
                     converge_timeout, 50ms));
  REQUIRE(station.stop().ok());
  remove_store(station);
  std::filesystem::copy_file(backup, station.data_dir() + "/ferry.db");
  require_verified(station);

  station.start();
  CHECK(station.log().find("serving " + std::to_string(in_backup) + " ops") != std::string::npos);
  require_feed_continues(hub, station, before + after);
  stop_and_verify({&hub, &station});
}

TEST_CASE("operations: a station restored from the upstream with its own key and no data",
          "[replication][operations]") {
  TestNode hub(named("hub"));
  TestNode station(named("dongji"));
  start_enrolled(hub, station);
  const std::string channel = station.default_channel();
  const std::size_t filed = 400;
  submit_many(station, filed, "filed");
  // A decision of the hub's in the station's channel comes back too.
  IpcClient h = hub.client();
  Value decision = submit_request("case.decide", "filed-0",
                                  Value::map({{"set", Value::map({{"status", "approved"}})}}));
  decision.set("channel", channel);
  hub.submit_ok(h, decision);
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));
  const std::string digest = channel_digest(station, channel);

  // The disk is lost; node.key survived (kept apart, as the backup procedure says).
  REQUIRE(station.stop().ok());
  remove_store(station);
  REQUIRE(::access(station.key_path().c_str(), R_OK) == 0);
  station.start();
  CHECK(station.log().find("serving 0 ops") != std::string::npos);  // it starts empty

  require_feed_continues(hub, station, filed);
  CHECK(channel_digest(station, channel) != digest);  // the op filed after the restore
  stop_and_verify({&hub, &station});
}
