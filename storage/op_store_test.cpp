#include "storage/op_store.h"

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "protocol/hex.h"
#include "protocol/receipt.h"
#include "storage/schema.h"
#include "tests/support/crash_vfs.h"
#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::storage;

namespace {

constexpr std::chrono::milliseconds drift_max{60'000};

std::unique_ptr<OpStore> open_store(const test::TempDir& dir, WallClock& wall) {
  auto store = OpStore::open(dir.str(), wall);
  if (!store) FAIL("open failed: " << to_string(store.error()));
  return std::move(*store);
}

SignedOp forge(const NodeKey& key, const std::string& channel, std::uint64_t seq, const OpId& prev,
               std::uint64_t hlc = 1000) {
  auto op = Op::build(key.public_key(), seq, prev, hlc,
                      test::draft(channel, "case-" + std::to_string(seq)));
  REQUIRE(op);
  return sign_op(std::move(*op), key);
}

std::vector<SignedOp> all_ops(OpStore& store) {
  auto stored = store.arrived_after(0, 1'000'000);
  REQUIRE(stored);
  std::vector<SignedOp> ops;
  for (auto& s : *stored) ops.push_back(std::move(s.signed_op));
  return ops;
}

// Every feed runs 1, 2, 3... with prev = the id before it, and every signature verifies.
void require_valid_chains(OpStore& store) {
  std::map<FeedId, FeedHead> heads;
  for (const SignedOp& s : all_ops(store)) {
    const OpHeader& h = s.op.header();
    REQUIRE(verify_op(s.op, s.signature));
    FeedHead& head = heads[FeedId{h.origin, h.channel}];
    REQUIRE(check_extends(head, h));
    head = FeedHead{h.seq, s.op.id()};
  }
  for (const auto& [feed, head] : heads) CHECK(store.head(feed).seq == head.seq);
}

struct Snapshot {
  std::uint64_t ops;
  std::uint64_t arrival;
  VersionVector vector;
  bool operator==(const Snapshot&) const = default;
};

Snapshot snapshot(const OpStore& store) {
  return Snapshot{store.op_count(), store.last_arrival(), store.version_vector()};
}

std::vector<std::uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("append assigns seq, prev and hlc, and ops verify after a reload") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  std::vector<OpDraft> drafts;
  for (int i = 0; i < 5; ++i) drafts.push_back(test::draft("station/huaniao", std::to_string(i)));
  drafts.push_back(test::draft("broadcast", "catalogue"));
  std::vector<Appended> appended;
  {
    auto store = open_store(dir, wall);
    auto result = store->append(key, clock, drafts);
    REQUIRE(result);
    appended = *result;
    REQUIRE(appended.size() == 6);
    for (std::size_t i = 0; i < 5; ++i) CHECK(appended[i].seq == i + 1);
    CHECK(appended[5].seq == 1);  // a feed is (origin, channel)
    CHECK(appended[5].channel == "broadcast");
    for (std::size_t i = 1; i < appended.size(); ++i) {
      CHECK(appended[i].hlc > appended[i - 1].hlc);
      CHECK(appended[i].arrival > appended[i - 1].arrival);
    }
  }
  auto store = open_store(dir, wall);  // decode -> store -> load
  CHECK(store->op_count() == 6);
  CHECK(store->last_arrival() == appended.back().arrival);
  for (const Appended& a : appended) {
    auto loaded = store->get(a.id);
    REQUIRE(loaded);
    CHECK(loaded->signed_op.op.id() == a.id);
    CHECK(verify_op(loaded->signed_op.op, loaded->signed_op.signature));
    CHECK(loaded->stored_at_ms == wall.now_ms());
  }
  auto second = store->get(appended[1].id);
  REQUIRE(second);
  CHECK(second->signed_op.op.header().prev == appended[0].id);
  require_valid_chains(*store);
  CHECK(store->max_hlc(key.public_key()).value() == appended.back().hlc);
  CHECK(store->version_vector().seq(FeedId{key.public_key(), "station/huaniao"}) == 5);
}

TEST_CASE("append stores nothing when one draft of the batch is invalid") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  auto store = open_store(dir, wall);
  REQUIRE(store->append(key, clock, std::vector{test::draft("station/a", "k")}));
  Snapshot before = snapshot(*store);
  std::vector<OpDraft> drafts = {test::draft("station/a", "k1"), test::draft("station/a", "")};
  auto result = store->append(key, clock, drafts);
  REQUIRE_FALSE(result);
  CHECK(result.error().code == Errc::malformed);
  CHECK(result.error().detail.find("draft 1") != std::string::npos);
  CHECK(snapshot(*store) == before);
  // The feed goes on from where it was: no seq was burnt by the failed batch.
  auto next = store->append(key, clock, std::vector{test::draft("station/a", "k2")});
  REQUIRE(next);
  CHECK(next->front().seq == 2);
  require_valid_chains(*store);
}

TEST_CASE("ingest stores remote ops once and counts replays as duplicates") {
  test::TempDir src_dir, dst_dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  auto src = open_store(src_dir, wall);
  std::vector<OpDraft> drafts;
  for (int i = 0; i < 20; ++i) drafts.push_back(test::draft("station/dongji", std::to_string(i)));
  REQUIRE(src->append(key, clock, drafts));
  auto ops = all_ops(*src);

  auto dst = open_store(dst_dir, wall);
  auto first = dst->ingest(ops);
  REQUIRE(first);
  CHECK(first->stored == 20);
  CHECK(first->duplicates == 0);
  CHECK(first->rejected.empty());
  Snapshot after_first = snapshot(*dst);
  auto again = dst->ingest(ops);
  REQUIRE(again);
  CHECK(again->stored == 0);
  CHECK(again->duplicates == 20);
  CHECK(snapshot(*dst) == after_first);
  CHECK(dst->version_vector() == src->version_vector());
  require_valid_chains(*dst);
}

TEST_CASE("ingest refuses a gap, a fork, a wrong prev and a bad signature, storing nothing") {
  test::TempDir dir;
  test::FakeWallClock wall;
  NodeKey origin = NodeKey::generate();
  auto store = open_store(dir, wall);
  SignedOp op1 = forge(origin, "station/shengshan", 1, OpId{});
  SignedOp op2 = forge(origin, "station/shengshan", 2, op1.op.id());
  REQUIRE(store->ingest(std::vector{op1, op2}).value().stored == 2);
  Snapshot before = snapshot(*store);

  SignedOp gap = forge(origin, "station/shengshan", 4, op2.op.id());
  SignedOp fork = forge(origin, "station/shengshan", 2, op1.op.id(), 2000);
  OpId other{};
  other[0] = 7;
  SignedOp wrong_prev = forge(origin, "station/shengshan", 3, other);
  SignedOp bad_sig = forge(origin, "station/shengshan", 3, op2.op.id());
  bad_sig.signature[10] ^= 0x01;
  NodeKey impostor = NodeKey::generate();
  SignedOp foreign_sig = forge(origin, "station/shengshan", 3, op2.op.id(), 3000);
  foreign_sig.signature = impostor.sign(op_signing_message(foreign_sig.op.id()));

  struct Case {
    const char* name;
    SignedOp op;
    Errc code;
  };
  std::vector<Case> cases = {{"gap", gap, Errc::out_of_order},
                             {"fork", fork, Errc::fork},
                             {"wrong prev", wrong_prev, Errc::out_of_order},
                             {"bad signature", bad_sig, Errc::bad_signature},
                             {"other key's signature", foreign_sig, Errc::bad_signature}};
  for (const Case& c : cases) {
    INFO(c.name);
    auto report = store->ingest(std::vector{c.op});
    REQUIRE(report);
    CHECK(report->stored == 0);
    REQUIRE(report->rejected.size() == 1);
    CHECK(report->rejected[0].index == 0);
    CHECK(report->rejected[0].error.code == c.code);
    CHECK(snapshot(*store) == before);
    CHECK_FALSE(store->get(c.op.op.id()));
  }
  require_valid_chains(*store);
}

TEST_CASE("ingest keeps the good ops of a batch and rejects the bad ones by index") {
  test::TempDir dir;
  test::FakeWallClock wall;
  NodeKey a = NodeKey::generate();
  NodeKey b = NodeKey::generate();
  auto store = open_store(dir, wall);
  SignedOp a1 = forge(a, "station/a", 1, OpId{});
  SignedOp a2 = forge(a, "station/a", 2, a1.op.id());
  SignedOp b1 = forge(b, "station/b", 1, OpId{});
  b1.signature[0] ^= 0xff;
  SignedOp b2 = forge(b, "station/b", 2, b1.op.id());
  auto report = store->ingest(std::vector{a1, b1, a2, b2});
  REQUIRE(report);
  CHECK(report->stored == 2);
  REQUIRE(report->rejected.size() == 2);
  CHECK(report->rejected[0].index == 1);
  CHECK(report->rejected[0].error.code == Errc::bad_signature);
  CHECK(report->rejected[1].index == 3);  // b2 no longer extends b's feed
  CHECK(report->rejected[1].error.code == Errc::out_of_order);
  CHECK(store->head(FeedId{a.public_key(), "station/a"}).seq == 2);
  CHECK(store->head(FeedId{b.public_key(), "station/b"}).seq == 0);
}

TEST_CASE(
    "missing returns exactly the ops the other side lacks, in feed order, in bounded batches") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey a = NodeKey::generate();
  NodeKey b = NodeKey::generate();
  auto store = open_store(dir, wall);
  std::vector<OpDraft> drafts;
  for (int i = 0; i < 30; ++i) {
    drafts.push_back(test::draft(i % 3 == 0 ? "broadcast" : "station/a", std::to_string(i)));
  }
  REQUIRE(store->append(a, clock, drafts));
  std::vector<OpDraft> more(10, test::draft("station/b", "x"));
  REQUIRE(store->append(b, clock, more));

  VersionVector theirs;
  theirs.raise(FeedId{a.public_key(), "station/a"}, 5);
  theirs.raise(FeedId{b.public_key(), "station/b"}, 10);  // already has all of b

  SECTION("an unlimited batch is everything beyond their vector, feed by feed") {
    auto batch = store->missing(theirs, BatchLimits{1000, 1 << 20});
    REQUIRE(batch);
    std::vector<FeedRange> want = store->version_vector().lacking_in(theirs);
    std::size_t expected = 0;
    for (const FeedRange& r : want) expected += r.last - r.first + 1;
    REQUIRE(batch->size() == expected);
    std::size_t i = 0;
    for (const FeedRange& r : want) {
      for (std::uint64_t seq = r.first; seq <= r.last; ++seq, ++i) {
        const OpHeader& h = (*batch)[i].signed_op.op.header();
        CHECK(FeedId{h.origin, h.channel} == r.feed);
        CHECK(h.seq == seq);
      }
    }
  }
  SECTION("batches respect the op and byte limits and together send each op once") {
    for (BatchLimits limits :
         {BatchLimits{7, 1 << 20}, BatchLimits{1000, 600}, BatchLimits{1, 1}}) {
      VersionVector peer = theirs;
      std::set<OpId> sent;
      for (int round = 0; round < 100; ++round) {
        auto batch = store->missing(peer, limits);
        REQUIRE(batch);
        if (batch->empty()) break;
        CHECK(batch->size() <= limits.ops_max);
        std::size_t bytes = 0;
        for (const StoredOp& s : *batch) bytes += s.signed_op.op.bytes().size() + 64;
        if (batch->size() > 1) CHECK(bytes <= limits.bytes_max);
        for (const StoredOp& s : *batch) {
          const OpHeader& h = s.signed_op.op.header();
          FeedId feed{h.origin, h.channel};
          CHECK(h.seq == peer.seq(feed) + 1);  // feed order, no gaps
          peer.raise(feed, h.seq);
          CHECK(sent.insert(s.signed_op.op.id()).second);
        }
      }
      CHECK(peer == store->version_vector());
      CHECK(sent.size() == 30 - 5);
    }
  }
}

TEST_CASE("arrived_after pages through ops in arrival order across reopen") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  {
    auto store = open_store(dir, wall);
    std::vector<OpDraft> drafts(25, test::draft("station/a", "k"));
    REQUIRE(store->append(key, clock, drafts));
  }
  auto store = open_store(dir, wall);
  std::uint64_t cursor = 0;
  std::size_t seen = 0;
  for (int page = 0; page < 10; ++page) {
    auto ops = store->arrived_after(cursor, 10);
    REQUIRE(ops);
    if (ops->empty()) break;
    CHECK(ops->size() <= 10);
    for (const StoredOp& s : *ops) {
      CHECK(s.arrival > cursor);
      cursor = s.arrival;
      ++seen;
    }
  }
  CHECK(seen == 25);
  CHECK(cursor == store->last_arrival());
  CHECK(store->arrived_after(cursor, 10).value().empty());
}

TEST_CASE("get of an unknown id is not_found") {
  test::TempDir dir;
  test::FakeWallClock wall;
  auto store = open_store(dir, wall);
  auto missing = store->get(OpId{});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == Errc::not_found);
}

TEST_CASE("ops are found by id in every generation of the id index, after the migration to it") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  const NodeKey key = NodeKey::generate();
  std::vector<Appended> appended;
  {
    auto store = open_store(dir, wall);
    std::vector<OpDraft> drafts = {test::draft("station/a", "case-1"),
                                   test::draft("station/a", "case-2"),
                                   test::draft("station/a", "case-3")};
    auto done = store->append(key, clock, drafts);
    REQUIRE(done);
    appended = std::move(*done);
  }
  // Ops 2 and 3 move to generations 1 and 3 of the index (65,536 arrivals each), where a store
  // that had stored that many ops would hold them, and the file goes back to schema 4 (one index
  // on the id prefixes): the next open migrates it.
  const std::uint64_t second = (std::uint64_t{1} << id_generation_shift) + 5;
  const std::uint64_t third = (std::uint64_t{3} << id_generation_shift) + 7;
  {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(dir.file(database_file_name).c_str(), &raw) == SQLITE_OK);
    const std::string sql =
        "UPDATE ops SET arrival = " + std::to_string(third) +
        " WHERE arrival = 3; UPDATE ops SET arrival = " + std::to_string(second) +
        " WHERE arrival = 2; DROP INDEX ops_by_id; CREATE INDEX "
        "ops_by_id_prefix ON ops (id_prefix); PRAGMA user_version = 4;";
    CHECK(sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(raw);
  }
  auto store = open_store(dir, wall);
  {
    auto db = Database::open(dir.file(database_file_name), false);
    REQUIRE(db);
    CHECK(db->query_int("PRAGMA user_version").value() == schema_version_latest());
    CHECK(db->query_int("SELECT count(*) FROM sqlite_schema WHERE name = 'ops_by_id'").value() ==
          1);
    CHECK(db->query_int("SELECT count(*) FROM sqlite_schema WHERE name = 'ops_by_id_prefix'")
              .value() == 0);
  }
  const std::vector<std::uint64_t> arrivals = {1, second, third};
  for (std::size_t i = 0; i < appended.size(); ++i) {
    auto found = store->get(appended[i].id);
    INFO("op " << i + 1);
    if (!found) FAIL(to_string(found.error()));
    CHECK(found->signed_op.op.id() == appended[i].id);
    CHECK(found->arrival == arrivals[i]);
  }
  auto missing = store->get(OpId{});
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == Errc::not_found);
  // The merge finds deps the same way: an op whose deps are all held, in other records, is folded
  // at once; one whose dep is not found would wait for it.
  OpDraft later = test::draft("station/a", "case-4");
  later.deps = {appended[0].id, appended[1].id};
  REQUIRE(store->append(key, clock, std::vector<OpDraft>{later}));
  CHECK(store->pending_count() == 0);
  OpDraft waiting = test::draft("station/a", "case-5");
  waiting.deps = {OpId{}};
  REQUIRE(store->append(key, clock, std::vector<OpDraft>{waiting}));
  CHECK(store->pending_count() == 1);
}

TEST_CASE("a second store on the same data directory is refused") {
  test::TempDir dir;
  test::FakeWallClock wall;
  auto first = open_store(dir, wall);
  auto second = OpStore::open(dir.str(), wall);
  REQUIRE_FALSE(second);
  CHECK(second.error().code == Errc::busy);
  CHECK(second.error().detail.find("in use") != std::string::npos);
}

TEST_CASE("a missing data directory is refused") {
  test::TempDir dir;
  test::FakeWallClock wall;
  auto store = OpStore::open(dir.file("nope"), wall);
  REQUIRE_FALSE(store);
  CHECK(store.error().code == Errc::not_found);
}

TEST_CASE("a database with an overwritten header is refused at open and left unmodified") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  {
    auto store = open_store(dir, wall);
    std::vector<OpDraft> drafts(50, test::draft("station/a", "k"));
    REQUIRE(store->append(key, clock, drafts));
  }  // closing checkpoints the WAL into the database file
  std::string path = dir.file(database_file_name);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    std::string garbage(100, 'Z');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  std::vector<std::uint8_t> before = read_file(path);
  auto store = OpStore::open(dir.str(), wall);
  REQUIRE_FALSE(store);
  CHECK(store.error().code == Errc::corrupt);
  CHECK(store.error().detail.find(path) != std::string::npos);
  CHECK(store.error().detail.find("left untouched") != std::string::npos);
  CHECK(read_file(path) == before);
}

TEST_CASE("a damaged page inside the database is refused at open") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  {
    auto store = open_store(dir, wall);
    std::vector<OpDraft> drafts(200, test::draft("station/a", "k"));
    REQUIRE(store->append(key, clock, drafts));
  }
  std::string path = dir.file(database_file_name);
  auto bytes = read_file(path);
  REQUIRE(bytes.size() > 3 * 4096);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * 4096);  // the third page: a b-tree page of the op tables
    std::string garbage(4096, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  auto before = read_file(path);
  auto store = OpStore::open(dir.str(), wall);
  REQUIRE_FALSE(store);
  CHECK(store.error().code == Errc::corrupt);
  CHECK(read_file(path) == before);
}

TEST_CASE("every acknowledged append survives SIGKILL at a random moment") {
  std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  constexpr int runs = 10;
  for (int run = 0; run < runs; ++run) {
    test::TempDir dir;
    NodeKey key = NodeKey::generate();
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::uint64_t child_seed = rng();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      SystemWallClock wall;
      HybridClock clock(wall, drift_max);
      auto store = OpStore::open(dir.str(), wall);
      if (!store) ::_exit(2);
      std::mt19937_64 child_rng(child_seed);
      for (int i = 0; i < 100'000; ++i) {
        std::vector<OpDraft> drafts(1 + child_rng() % 8, test::draft("station/a", "k"));
        auto appended = (*store)->append(key, clock, drafts);
        if (!appended) ::_exit(3);
        std::uint64_t acked = appended->back().seq;  // reported only after the durable commit
        if (::write(fds[1], &acked, sizeof acked) != sizeof acked) ::_exit(4);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    std::uint64_t kill_after = 1 + rng() % 200;
    std::uint64_t acked = 0;
    std::uint64_t value = 0;
    for (std::uint64_t n = 0; n < kill_after; ++n) {
      REQUIRE(::read(fds[0], &value, sizeof value) == sizeof value);
      acked = value;
    }
    ::kill(pid, SIGKILL);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
    // Acknowledgements written before the kill count too.
    while (::read(fds[0], &value, sizeof value) == sizeof value) acked = value;
    ::close(fds[0]);

    test::FakeWallClock wall;
    auto store = open_store(dir, wall);
    INFO("run " << run << ": killed after " << kill_after << " acks, last acked seq " << acked);
    CHECK(store->head(FeedId{key.public_key(), "station/a"}).seq >= acked);
    require_valid_chains(*store);
  }
}

namespace {

void power_cuts(int checkpoint_pages) {
  std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed << ", checkpoint every " << checkpoint_pages << " pages");
  std::mt19937_64 rng(seed);
  test::TempDir dir;
  NodeKey key = NodeKey::generate();
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  FeedId feed{key.public_key(), "station/a"};
  std::uint64_t acked = 0;
  for (int power_cut = 0; power_cut < 8; ++power_cut) {
    {
      StoreOptions options;
      options.sqlite_vfs = test::crash_vfs::name;
      options.wal_checkpoint_pages = checkpoint_pages;
      auto store = OpStore::open(dir.str(), wall, options);
      REQUIRE(store);
      REQUIRE((*store)->head(feed).seq == acked);
      auto batches = 1 + rng() % 20;
      for (std::uint64_t b = 0; b < batches; ++b) {
        std::vector<OpDraft> drafts(1 + rng() % 64, test::draft("station/a", "k"));
        auto appended = (*store)->append(key, clock, drafts);
        REQUIRE(appended);
        acked = appended->back().seq;
      }
      test::crash_vfs::crash();  // the store closes with the power already off
    }
    test::crash_vfs::reset();
    auto reopened = open_store(dir, wall);
    INFO("power cut " << power_cut << ", last acknowledged seq " << acked);
    CHECK(reopened->head(feed).seq == acked);
    require_valid_chains(*reopened);
  }
  if (checkpoint_pages < wal_checkpoint_pages_default) {
    // Not vacuous: the checkpointer did restart the WAL in these runs (it counts per store, so
    // ask one more store that writes enough).
    StoreOptions options;
    options.wal_checkpoint_pages = checkpoint_pages;
    auto store = OpStore::open(dir.str(), wall, options);
    REQUIRE(store);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((*store)->checkpoint_stats().restarts == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::vector<OpDraft> drafts(32, test::draft("station/a", "k"));
      REQUIRE((*store)->append(key, clock, drafts));
    }
    CHECK((*store)->checkpoint_stats().restarts > 0);
  }
}

}  // namespace

TEST_CASE("every acknowledged append survives a power cut that loses unsynced writes") {
  test::crash_vfs::install();
  power_cuts(wal_checkpoint_pages_default);
}

TEST_CASE("every acknowledged append survives power cuts among WAL restarts") {
  test::crash_vfs::install();
  power_cuts(20);  // the checkpointer copies, syncs and restarts the WAL many times in between
}

TEST_CASE("ops built ahead of the store chain on each other, and a failed store abandons them") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  auto store = open_store(dir, wall);
  FeedId feed{key.public_key(), "station/a"};
  auto build = [&](int n) {
    std::vector<SignedOp> batch;
    for (int i = 0; i < n; ++i) {
      auto op = store->build_op(key.public_key(), clock, test::draft("station/a", "k"));
      REQUIRE(op);
      batch.push_back(sign_op(std::move(*op), key));
    }
    return batch;
  };
  std::vector<SignedOp> first = build(3);
  std::vector<SignedOp> second = build(2);  // built before the first is stored
  CHECK(second.front().op.header().seq == 4);
  CHECK(second.front().op.header().prev == first.back().op.id());
  CHECK(store->head(feed).seq == 0);  // nothing stored yet
  REQUIRE(store->store_signed(first));
  REQUIRE(store->store_signed(second));
  CHECK(store->head(feed).seq == 5);

  std::vector<SignedOp> dropped = build(2);
  store->abandon_built();
  std::vector<SignedOp> rebuilt = build(1);
  CHECK(rebuilt.front().op.header().seq == 6);  // the abandoned ops used up no seq
  REQUIRE(store->store_signed(rebuilt));
  require_valid_chains(*store);
}

TEST_CASE("checkpoints run on their own thread and keep the WAL bounded") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  StoreOptions options;
  options.wal_checkpoint_pages = 40;
  auto opened = OpStore::open(dir.str(), wall, options);
  REQUIRE(opened);
  OpStore& store = **opened;
  const std::string wal = dir.str() + "/" + database_file_name + "-wal";
  const std::uintmax_t page = 4096;
  std::uintmax_t wal_bytes_max = 0;
  for (int batch = 0; batch < 60; ++batch) {
    std::vector<OpDraft> drafts;
    for (int i = 0; i < 32; ++i) {
      drafts.push_back(test::draft("station/huaniao", "case-" + std::to_string(batch * 32 + i)));
    }
    REQUIRE(store.append(key, clock, drafts));
    wal_bytes_max = std::max(wal_bytes_max, std::filesystem::file_size(wal));
  }
  // Bounded wait: the checkpoint thread has been told many times by now.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store.checkpoint_stats().restarts == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CheckpointStats stats = store.checkpoint_stats();
  INFO("passes " << stats.checkpoints << ", restarts " << stats.restarts << ", inline "
                 << stats.inline_checkpoints << ", largest WAL " << wal_bytes_max << " bytes");
  CHECK(stats.checkpoints > 0);
  CHECK(stats.failures == 0);
  // The WAL started over after the thread had copied it (a connection that never learnt the file
  // is in WAL mode reports success having copied nothing: this is what catches it) ...
  CHECK(stats.restarts > 0);
  // ... so the WAL started over and stayed bounded: at most the writer's last-resort size plus a
  // batch or two (on a quiet machine it stays near the restart size, 160 pages). 1,920 ops of
  // ~450 bytes with their records fill well over 1,000 pages of a WAL that never restarts.
  CHECK(wal_bytes_max < static_cast<std::uintmax_t>(40 * wal_inline_factor + 80) * page);
  REQUIRE(store.op_count() == 60 * 32);
  require_valid_chains(store);
}

TEST_CASE("the writer checkpoints inline only as a last resort, and loses nothing") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  StoreOptions options;
  options.wal_checkpoint_pages = 10;
  auto opened = OpStore::open(dir.str(), wall, options);
  REQUIRE(opened);
  OpStore& store = **opened;
  const std::string path = dir.str() + "/" + database_file_name;
  // A reader that holds its snapshot keeps every later frame in the WAL: neither the thread nor
  // the writer can copy them, and the WAL cannot start over until it lets go.
  auto reader = Database::open(path, false);
  REQUIRE(reader);
  REQUIRE(reader->exec("BEGIN"));
  REQUIRE(reader->query_int("SELECT count(*) FROM ops"));
  const std::uintmax_t page = 4096;
  const std::string wal = path + "-wal";
  int batch = 0;
  auto append_batch = [&] {
    std::vector<OpDraft> drafts;
    for (int i = 0; i < 16; ++i) {
      drafts.push_back(test::draft("station/huaniao", "case-" + std::to_string(batch * 16 + i)));
    }
    ++batch;
    REQUIRE(store.append(key, clock, drafts));
  };
  while (std::filesystem::file_size(wal) <
         static_cast<std::uintmax_t>(10 * wal_inline_factor) * page) {
    REQUIRE(batch < 200);
    append_batch();
  }
  append_batch();  // a commit that finds the WAL past the last-resort size
  CHECK(store.checkpoint_stats().inline_checkpoints > 0);
  CHECK(store.checkpoint_stats().restarts == 0);
  // Once the reader is gone, the thread restarts the WAL again.
  REQUIRE(reader->exec("COMMIT"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (store.checkpoint_stats().restarts == 0 && std::chrono::steady_clock::now() < deadline) {
    append_batch();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  CHECK(store.checkpoint_stats().restarts > 0);
  REQUIRE(store.op_count() == static_cast<std::uint64_t>(batch) * 16);
  require_valid_chains(store);
}

TEST_CASE("ingest all_or_nothing stores nothing from a batch with one bad op", "[custody]") {
  test::TempDir dir;
  test::FakeWallClock wall;
  NodeKey origin = NodeKey::generate();
  auto store = open_store(dir, wall);
  SignedOp op1 = forge(origin, "station/huaniao", 1, OpId{});
  SignedOp op2 = forge(origin, "station/huaniao", 2, op1.op.id());
  SignedOp op3 = forge(origin, "station/huaniao", 3, op2.op.id());
  op3.signature[5] ^= 1;
  auto report = store->ingest(std::vector{op1, op2, op3}, IngestMode::all_or_nothing);
  REQUIRE(report);
  CHECK(report->stored == 0);
  REQUIRE(report->rejected.size() == 1);
  CHECK(report->rejected[0].index == 2);
  CHECK(report->rejected[0].error.code == Errc::bad_signature);
  CHECK(store->op_count() == 0);
  CHECK(store->version_vector().entries().empty());
  CHECK_FALSE(store->record("station/huaniao", "case-1"));
  // The same batch without the bad op goes in whole.
  auto good = store->ingest(std::vector{op1, op2}, IngestMode::all_or_nothing);
  REQUIRE(good);
  CHECK(good->stored == 2);
  CHECK(store->record("station/huaniao", "case-2"));
}

TEST_CASE("missing() skips the feeds a filter leaves out", "[custody]") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  auto store = open_store(dir, wall);
  std::vector<OpDraft> drafts;
  for (int i = 0; i < 3; ++i) drafts.push_back(test::draft("station/a", std::to_string(i)));
  for (int i = 0; i < 2; ++i) drafts.push_back(test::draft("ferry/trust", std::to_string(i)));
  REQUIRE(store->append(key, clock, drafts));
  BatchLimits limits{100, 1 << 20};
  auto all = store->missing(VersionVector{}, limits);
  REQUIRE(all);
  CHECK(all->size() == 5);
  auto trust_only = store->missing(
      VersionVector{}, limits, [](const FeedId& feed) { return feed.channel == "ferry/trust"; });
  REQUIRE(trust_only);
  REQUIRE(trust_only->size() == 2);
  for (const StoredOp& s : *trust_only) CHECK(s.signed_op.op.header().channel == "ferry/trust");
}

TEST_CASE("track reports custody and the authority's receipt", "[custody]") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey station = NodeKey::generate();
  NodeKey hub = NodeKey::generate();
  StoreOptions options;
  options.authority = hub.public_key();
  auto opened = OpStore::open(dir.str(), wall, options);
  REQUIRE(opened);
  OpStore& store = **opened;
  std::vector<OpDraft> drafts;
  for (int i = 0; i < 4; ++i) drafts.push_back(test::draft("station/huaniao", std::to_string(i)));
  auto appended = store.append(station, clock, drafts);
  REQUIRE(appended);
  const OpId& second = (*appended)[1].id;
  const OpId& fourth = (*appended)[3].id;
  auto tracked = store.track(second);
  REQUIRE(tracked);
  CHECK_FALSE(tracked->forwarded);
  CHECK_FALSE(tracked->delivered);

  FeedId feed{station.public_key(), "station/huaniao"};
  VersionVector acked;
  acked.raise(feed, 2);
  acked.raise(FeedId{hub.public_key(), "broadcast"}, 9);  // not held here: skipped
  REQUIRE(store.record_custody(hub.public_key(), acked, 1234));
  tracked = store.track(second);
  REQUIRE(tracked);
  REQUIRE(tracked->forwarded);
  CHECK(tracked->forwarded->peer == hub.public_key());
  CHECK(tracked->forwarded->at_ms == 1234);
  CHECK_FALSE(store.track(fourth)->forwarded);

  // A receipt from someone else marks nothing; the authority's does.
  OpDraft receipt = test::draft("station/huaniao", std::string(receipt_key));
  receipt.kind = std::string(receipt_kind);
  receipt.body = encode_receipt_body({{station.public_key(), 3}});
  NodeKey stranger = NodeKey::generate();
  auto stranger_receipt = Op::build(stranger.public_key(), 1, OpId{}, 5000, receipt);
  REQUIRE(stranger_receipt);
  REQUIRE(store.ingest(std::vector{sign_op(std::move(*stranger_receipt), stranger)}));
  CHECK_FALSE(store.track(second)->delivered);
  auto hub_receipt = Op::build(hub.public_key(), 1, OpId{}, 6000, receipt);
  REQUIRE(hub_receipt);
  OpId receipt_id = hub_receipt->id();
  REQUIRE(store.ingest(std::vector{sign_op(std::move(*hub_receipt), hub)}));
  tracked = store.track(second);
  REQUIRE(tracked);
  REQUIRE(tracked->delivered);
  CHECK(tracked->delivered->receipt == receipt_id);
  CHECK(tracked->delivered->receipt_hlc == 6000);
  CHECK_FALSE(store.track(fourth)->delivered);
  auto receipted = store.receipted("station/huaniao");
  REQUIRE(receipted);
  CHECK(receipted->at(station.public_key()) == 3);
  CHECK(store.track(OpId{}).error().code == Errc::not_found);
}

TEST_CASE("custody is not synced on its own, yet a power cut after it loses no acknowledged op",
          "[custody]") {
  test::crash_vfs::install();
  test::TempDir dir;
  test::FakeWallClock wall;
  std::mt19937_64 rng(Catch::rngSeed());
  NodeKey key = NodeKey::generate();
  NodeKey upstream = NodeKey::generate();
  HybridClock clock(wall, drift_max);
  FeedId feed{key.public_key(), "station/a"};
  std::uint64_t acked = 0;
  OpId custody_synced{};  // an op whose custody a later durable commit carried to the disk
  for (int power_cut = 0; power_cut < 6; ++power_cut) {
    {
      StoreOptions options;
      options.sqlite_vfs = test::crash_vfs::name;
      auto store = OpStore::open(dir.str(), wall, options);
      REQUIRE(store);
      REQUIRE((*store)->head(feed).seq == acked);
      auto batches = 2 + rng() % 10;
      for (std::uint64_t b = 0; b < batches; ++b) {
        std::vector<OpDraft> drafts(1 + rng() % 16, test::draft("station/a", "k"));
        auto appended = (*store)->append(key, clock, drafts);
        REQUIRE(appended);
        acked = appended->back().seq;
        if (b + 1 < batches) custody_synced = appended->back().id;
        VersionVector held;
        held.raise(feed, acked);
        REQUIRE((*store)->record_custody(upstream.public_key(), held, 1000 + acked));
      }
      test::crash_vfs::crash();  // the last custody commit was never synced
    }
    test::crash_vfs::reset();
    auto reopened = open_store(dir, wall);
    INFO("power cut " << power_cut << ", last acknowledged seq " << acked);
    CHECK(reopened->head(feed).seq == acked);
    require_valid_chains(*reopened);
    auto tracked = reopened->track(custody_synced);
    REQUIRE(tracked);
    CHECK(tracked->forwarded.has_value());
  }
}
