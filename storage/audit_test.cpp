#include "storage/audit.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <set>

#include "protocol/hex.h"
#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::storage;

namespace {

constexpr std::chrono::milliseconds drift_max{60'000};

// A data directory holding two feeds of one origin: station/huaniao (3 ops), broadcast (2 ops).
struct Fixture {
  test::TempDir dir;
  test::FakeWallClock wall;
  NodeKey key = NodeKey::generate();
  std::vector<Appended> appended;

  Fixture() {
    auto store = OpStore::open(dir.str(), wall);
    REQUIRE(store);
    HybridClock clock(wall, drift_max);
    std::vector<OpDraft> drafts = {
        test::draft("station/huaniao", "HN-1"), test::draft("broadcast", "B-1"),
        test::draft("station/huaniao", "HN-2"), test::draft("broadcast", "B-2"),
        test::draft("station/huaniao", "HN-3")};
    auto done = (*store)->append(key, clock, drafts);
    REQUIRE(done);
    appended = *done;
  }

  std::string origin() const { return key.public_key_hex(); }
  std::string db_path() const { return dir.file(database_file_name); }
  // The arrival of the op at this position of a feed.
  std::uint64_t arrival_of(const std::string& channel, std::uint64_t seq) const {
    for (const Appended& a : appended) {
      if (a.channel == channel && a.seq == seq) return a.arrival;
    }
    FAIL("no such op");
    return 0;
  }
};

// A writable connection of the test's own, as a damaged disk or a careless admin would use.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                            nullptr) == SQLITE_OK);
  }
  ~RawDb() { sqlite3_close_v2(db_); }

  std::vector<std::uint8_t> envelope(std::uint64_t arrival) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, "SELECT envelope FROM ops WHERE arrival = ?1", -1, &stmt,
                               nullptr) == SQLITE_OK);
    sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(arrival));
    REQUIRE(sqlite3_step(stmt) == SQLITE_ROW);
    const auto* data = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, 0));
    std::vector<std::uint8_t> out(data, data + sqlite3_column_bytes(stmt, 0));
    sqlite3_finalize(stmt);
    return out;
  }

  void set_envelope(std::uint64_t arrival, const std::vector<std::uint8_t>& bytes) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, "UPDATE ops SET envelope = ?1 WHERE arrival = ?2", -1, &stmt,
                               nullptr) == SQLITE_OK);
    sqlite3_bind_blob(stmt, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(arrival));
    REQUIRE(sqlite3_step(stmt) == SQLITE_DONE);
    sqlite3_finalize(stmt);
    REQUIRE(sqlite3_changes(db_) == 1);
  }

  void exec(const std::string& sql) {
    REQUIRE(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  }

 private:
  sqlite3* db_ = nullptr;
};

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string describe(const AuditReport& report) {
  std::string out;
  for (const AuditProblem& p : report.problems) {
    out += p.channel + " seq " + std::to_string(p.seq) + ": " + p.what + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("a clean store audits clean, with its totals") {
  Fixture f;
  auto report = audit(f.dir.str());
  REQUIRE(report);
  INFO(describe(*report));
  CHECK(report->clean());
  CHECK(report->feeds == 2);
  CHECK(report->ops == 5);
}

TEST_CASE("audit reads beside a running store and never writes") {
  Fixture f;
  {
    auto store = OpStore::open(f.dir.str(), f.wall);  // holds the directory lock, like ferryd
    REQUIRE(store);
    auto report = audit(f.dir.str());
    REQUIRE(report);
    CHECK(report->clean());
    CHECK(report->ops == 5);
  }
  auto files = [&f] {
    std::set<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(f.dir.str())) {
      names.insert(entry.path().filename().string());
    }
    return names;
  };
  auto before = read_file(f.db_path());
  auto names = files();
  CHECK_FALSE(names.contains(std::string(database_file_name) + "-wal"));  // closed cleanly
  auto report = audit(f.dir.str());
  REQUIRE(report);
  CHECK(report->ops == 5);
  CHECK(for_each_op(f.dir.str(), [](const StoredOp&) { return Result<void>(); }));
  CHECK(read_file(f.db_path()) == before);
  CHECK(files() == names);  // not even SQLite's -wal and -shm side files
}

TEST_CASE("audit reports a changed byte in an op's body with its feed and seq") {
  Fixture f;
  std::uint64_t arrival = f.arrival_of("station/huaniao", 2);
  {
    RawDb raw(f.db_path());
    auto envelope = raw.envelope(arrival);
    auto op = Op::decode(envelope);
    REQUIRE(op);
    auto body_offset = static_cast<std::size_t>(op->body().data() - op->bytes().data());
    envelope[body_offset + op->body().size() - 1] ^= 0x01;  // "filed" -> "filee"
    raw.set_envelope(arrival, envelope);
  }
  auto report = audit(f.dir.str());
  REQUIRE(report);
  INFO(describe(*report));
  REQUIRE_FALSE(report->clean());
  CHECK(report->ops == 5);
  for (const AuditProblem& p : report->problems) {
    CHECK(p.origin == f.origin());
    CHECK(p.channel == "station/huaniao");
    CHECK(p.seq == 2);
  }
  bool altered = false;
  for (const AuditProblem& p : report->problems) {
    altered = altered || p.what.find("altered") != std::string::npos;
  }
  CHECK(altered);
}

TEST_CASE("audit reports an envelope that no longer decodes") {
  Fixture f;
  {
    RawDb raw(f.db_path());
    auto envelope = raw.envelope(f.arrival_of("broadcast", 1));
    envelope[0] = 0x9a;  // an array of 10: not envelope version 1
    raw.set_envelope(f.arrival_of("broadcast", 1), envelope);
  }
  auto report = audit(f.dir.str());
  REQUIRE(report);
  REQUIRE(report->problems.size() == 1);
  CHECK(report->problems[0].channel == "broadcast");
  CHECK(report->problems[0].seq == 1);
  CHECK(report->problems[0].what.find("does not decode") != std::string::npos);
}

TEST_CASE("audit reports a deleted op as a gap at its seq") {
  Fixture f;
  RawDb(f.db_path())
      .exec("DELETE FROM ops WHERE arrival = " +
            std::to_string(f.arrival_of("station/huaniao", 2)));
  auto report = audit(f.dir.str());
  REQUIRE(report);
  INFO(describe(*report));
  REQUIRE(report->problems.size() == 1);
  CHECK(report->problems[0].origin == f.origin());
  CHECK(report->problems[0].channel == "station/huaniao");
  CHECK(report->problems[0].seq == 2);
  CHECK(report->problems[0].what.find("gap") != std::string::npos);
  CHECK(report->ops == 4);
}

TEST_CASE("audit reports a feed whose head row does not name its last op") {
  Fixture f;
  RawDb(f.db_path())
      .exec("DELETE FROM ops WHERE arrival = " +
            std::to_string(f.arrival_of("station/huaniao", 3)));
  auto report = audit(f.dir.str());
  REQUIRE(report);
  REQUIRE(report->problems.size() == 1);
  CHECK(report->problems[0].seq == 3);
  CHECK(report->problems[0].what.find("last op is seq 2") != std::string::npos);
}

TEST_CASE("audit names each op with a bad signature among chunks checked as batches") {
  test::TempDir dir;
  test::FakeWallClock wall;
  NodeKey key = NodeKey::generate();
  const std::uint64_t n = 2 * audit_chunk_ops + 452;  // two whole chunks and a part
  {
    auto store = OpStore::open(dir.str(), wall);
    REQUIRE(store);
    HybridClock clock(wall, drift_max);
    for (std::uint64_t done = 0; done < n; done += 500) {
      std::vector<OpDraft> drafts;
      for (std::uint64_t i = done; i < std::min(n, done + 500); ++i) {
        drafts.push_back(test::draft("station/huaniao", "HN-" + std::to_string(i)));
      }
      REQUIRE((*store)->append(key, clock, drafts));
    }
  }
  // Another op's valid signature on four ops: at a chunk's start and end, inside one, the last.
  const std::vector<std::uint64_t> bad = {5, audit_chunk_ops, audit_chunk_ops + 1, n};
  std::string seqs;
  for (std::uint64_t seq : bad) seqs += (seqs.empty() ? "" : ", ") + std::to_string(seq);
  RawDb(dir.file(database_file_name))
      .exec(
          "UPDATE ops SET signature = (SELECT signature FROM ops o WHERE o.seq = 1 AND "
          "o.feed_id = ops.feed_id) WHERE seq IN (" +
          seqs + ")");
  auto report = audit(dir.str());
  REQUIRE(report);
  INFO(describe(*report));
  CHECK(report->ops == n);
  REQUIRE(report->problem_count == bad.size());
  for (std::size_t i = 0; i < bad.size(); ++i) {
    CHECK(report->problems[i].seq == bad[i]);
    CHECK(report->problems[i].what == "the signature does not verify");
    CHECK(report->problems[i].origin == key.public_key_hex());
  }
}

TEST_CASE("audit keeps at most problems_max findings but counts them all") {
  Fixture f;
  RawDb(f.db_path()).exec("UPDATE ops SET signature = zeroblob(64)");
  AuditOptions options;
  options.problems_max = 2;
  auto report = audit(f.dir.str(), options);
  REQUIRE(report);
  CHECK(report->problem_count == 5);
  CHECK(report->problems.size() == 2);
}

TEST_CASE("audit of a file that is not a ferry database is a clear error") {
  test::TempDir dir;
  {
    std::ofstream out(dir.file(database_file_name));
    out << "this is a shopping list, not a database\n";
  }
  auto report = audit(dir.str());
  REQUIRE_FALSE(report);
  CHECK(report.error().code == Errc::corrupt);
  CHECK(report.error().detail.find("is not a ferry database") != std::string::npos);
  CHECK(read_file(dir.file(database_file_name)).size() == 40);  // left as it was

  test::TempDir foreign;
  RawDb(foreign.file(database_file_name)).exec("CREATE TABLE t (x)");
  CHECK(audit(foreign.str()).error().code == Errc::corrupt);

  test::TempDir empty;
  CHECK(audit(empty.str()).error().code == Errc::not_found);
  CHECK(audit(empty.file("nowhere")).error().code == Errc::not_found);
}

TEST_CASE("for_each_op visits every op in arrival order and stops at the visitor's error") {
  Fixture f;
  std::vector<std::uint64_t> arrivals;
  auto done = for_each_op(f.dir.str(), [&](const StoredOp& op) -> Result<void> {
    arrivals.push_back(op.arrival);
    CHECK(verify_op(op.signed_op.op, op.signed_op.signature));
    CHECK(op.stored_at_ms == f.wall.now_ms());
    return {};
  });
  REQUIRE(done);
  REQUIRE(arrivals.size() == 5);
  for (std::size_t i = 0; i < arrivals.size(); ++i) CHECK(arrivals[i] == f.appended[i].arrival);

  std::size_t seen = 0;
  auto stopped = for_each_op(f.dir.str(), [&](const StoredOp&) -> Result<void> {
    if (++seen == 2) return fail(Errc::io, "stdout closed");
    return {};
  });
  REQUIRE_FALSE(stopped);
  CHECK(stopped.error().detail == "stdout closed");
  CHECK(seen == 2);
}
