// `ferryctl verify` against data a real ferryd wrote: clean data passes, and one changed body byte
// in one stored envelope is reported with its feed's channel and seq.
#include <sqlite3.h>

#include <catch2/catch.hpp>
#include <memory>
#include <random>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

constexpr std::string_view marker = "TAMPER-TARGET-";

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct FinalizeStmt {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};

// Flips one bit of one byte inside the body of the op stored at `arrival`, through a separate
// SQLite connection (the daemon is stopped). Returns the offset changed.
std::size_t flip_body_byte(const std::string& db_path, std::uint64_t arrival) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr);
  std::unique_ptr<sqlite3, CloseDb> db(raw);
  if (rc != SQLITE_OK) throw HarnessError("cannot open " + db_path);
  auto prepare = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db.get(), sql, -1, &s, nullptr) != SQLITE_OK) {
      throw HarnessError(std::string(sql) + ": " + sqlite3_errmsg(db.get()));
    }
    return std::unique_ptr<sqlite3_stmt, FinalizeStmt>(s);
  };
  auto select = prepare("SELECT envelope FROM ops WHERE arrival = ?1");
  sqlite3_bind_int64(select.get(), 1, static_cast<sqlite3_int64>(arrival));
  if (sqlite3_step(select.get()) != SQLITE_ROW) throw HarnessError("no op at that arrival");
  const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(select.get(), 0));
  Bytes envelope(p, p + sqlite3_column_bytes(select.get(), 0));
  std::string text(envelope.begin(), envelope.end());
  std::size_t at = text.find(marker);
  if (at == std::string::npos) throw HarnessError("the marker is not in the envelope");
  envelope[at] ^= 0x01;  // 'T' becomes 'U': still a valid body, no longer the signed one
  auto update = prepare("UPDATE ops SET envelope = ?1 WHERE arrival = ?2");
  sqlite3_bind_blob(update.get(), 1, envelope.data(), static_cast<int>(envelope.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_int64(update.get(), 2, static_cast<sqlite3_int64>(arrival));
  if (sqlite3_step(update.get()) != SQLITE_DONE || sqlite3_changes(db.get()) != 1) {
    throw HarnessError(std::string("update failed: ") + sqlite3_errmsg(db.get()));
  }
  return at;
}

}  // namespace

TEST_CASE("ferryctl verify reports a tampered op with its channel and seq") {
  REQUIRE_FALSE(ferryctl_path().empty());  // this test needs ferryctl (ctl/)
  std::uint64_t seed = test_seed("ferryctl verify reports a tampered op");
  INFO("seed " << seed << " (FERRY_TEST_SEED)");
  std::mt19937_64 rng(seed);
  TestNode node;
  node.start();
  IpcClient client = node.client();
  struct Stored {
    std::string channel;
    std::uint64_t seq;
    std::uint64_t arrival;
  };
  std::vector<Stored> stored;
  for (int i = 0; i < 30; ++i) {
    std::string channel = i % 3 == 0 ? "desk/permits" : node.default_channel();
    Value request =
        submit_request("case.submit", "HN-" + std::to_string(i),
                       Value::map({{"note", std::string(marker) + std::to_string(i)}, {"fee", i}}));
    request.set("channel", channel);
    Value r = node.submit_ok(client, request);
    Value op = client.call(op_request(r["id"].str()))["op"];
    stored.push_back(Stored{channel, r["seq"].u64(), op["arrival"].u64()});
  }
  CHECK(node.stop().text() == "exit code 0");

  ProcessResult clean = ferryctl_verify(node);
  INFO("verify before: " << clean.out << clean.err);
  REQUIRE(clean.status.text() == "exit code 0");
  CHECK_THAT(clean.out, Catch::Contains("30 ops"));

  const Stored& target = stored[std::uniform_int_distribution<std::size_t>(0, 29)(rng)];
  INFO("tampered: " << target.channel << " seq " << target.seq << " arrival " << target.arrival);
  flip_body_byte(node.data_dir() + "/ferry.db", target.arrival);

  ProcessResult found = ferryctl_verify(node);
  INFO("verify after: " << found.out << found.err);
  CHECK(found.status.text() == "exit code 1");
  CHECK_THAT(found.out,
             Catch::Contains(target.channel + " seq " + std::to_string(target.seq) + ":"));
}

}  // namespace ferry::it
