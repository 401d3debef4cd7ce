// Records in the store: folded in the storing transaction, the same for the same ops in any
// order, equal to a rebuild, and persistent.
#include <catch2/catch.hpp>
#include <msgpack.hpp>
#include <random>

#include "protocol/hex.h"
#include "storage/op_store.h"
#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::storage;

namespace {

constexpr std::chrono::milliseconds drift_max{60'000};
using Packer = msgpack::packer<msgpack::sbuffer>;

std::vector<std::uint8_t> packed(const std::function<void(Packer&)>& write) {
  msgpack::sbuffer buffer;
  Packer pk(buffer);
  write(pk);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

std::unique_ptr<OpStore> open_store(const test::TempDir& dir, WallClock& wall,
                                    const StoreOptions& options = {}) {
  auto store = OpStore::open(dir.str(), wall, options);
  if (!store) FAIL("open failed: " << to_string(store.error()));
  return std::move(*store);
}

// Writes ops of several origins by hand: each origin's feeds chain, deps as given.
class Writers {
 public:
  explicit Writers(std::size_t origins) {
    for (std::size_t i = 0; i < origins; ++i) keys_.push_back(NodeKey::generate());
  }

  SignedOp write(std::size_t origin, const std::string& channel, const std::string& key,
                 std::uint64_t hlc, std::vector<OpId> deps, std::vector<std::uint8_t> body) {
    const NodeKey& k = keys_.at(origin);
    FeedHead& head = heads_[FeedId{k.public_key(), channel}];
    OpDraft draft = test::draft(channel, key, std::move(body));
    draft.deps = std::move(deps);
    auto op = Op::build(k.public_key(), head.seq + 1, head.id, hlc, draft);
    REQUIRE(op);
    head = FeedHead{op->header().seq, op->id()};
    return sign_op(std::move(*op), k);
  }

  const NodeKey& key(std::size_t origin) const { return keys_.at(origin); }

 private:
  std::vector<NodeKey> keys_;
  std::map<FeedId, FeedHead> heads_;
};

std::vector<std::uint8_t> set_body(const std::string& field, const std::string& value) {
  return packed([&](Packer& pk) {
    pk.pack_map(1);
    pk.pack(std::string("set"));
    pk.pack_map(1);
    pk.pack(field);
    pk.pack(value);
  });
}

void ingest_all(OpStore& store, const std::vector<SignedOp>& ops) {
  auto report = store.ingest(ops);
  REQUIRE(report);
  INFO("first rejection: " << (report->rejected.empty()
                                   ? std::string("none")
                                   : to_string(report->rejected.front().error)));
  REQUIRE(report->rejected.empty());
}

std::string field_value(const RecordState& state, const std::string& field) {
  auto values = winning_values(state);
  auto it = values.find(field);
  if (it == values.end()) return "<none>";
  auto handle =
      msgpack::unpack(reinterpret_cast<const char*>(it->second.data()), it->second.size());
  return handle.get().as<std::string>();
}

}  // namespace

TEST_CASE("a record is folded as its ops are stored, and kept across a reopen") {
  test::TempDir dir;
  test::FakeWallClock wall;
  Writers w(2);
  auto submit = w.write(0, "station/huaniao", "case/HN-1", 100, {}, set_body("status", "filed"));
  auto approve = w.write(1, "station/huaniao", "case/HN-1", 200, {submit.op.id()},
                         set_body("status", "approved"));
  {
    auto store = open_store(dir, wall);
    ingest_all(*store, {submit, approve});
    auto record = store->record("station/huaniao", "case/HN-1");
    REQUIRE(record);
    CHECK(field_value(record->state, "status") == "approved");
    CHECK(record->state.ops == 2);
    REQUIRE(record->state.heads.size() == 1);
    CHECK(record->state.heads.begin()->second == approve.op.id());
    CHECK(conflicts(record->state).empty());
  }
  auto store = open_store(dir, wall);
  auto record = store->record("station/huaniao", "case/HN-1");
  REQUIRE(record);
  CHECK(field_value(record->state, "status") == "approved");
  auto missing = store->record("station/huaniao", "case/HN-2");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == Errc::not_found);
  auto other_channel = store->record("broadcast", "case/HN-1");
  REQUIRE_FALSE(other_channel);
  CHECK(other_channel.error().code == Errc::not_found);
}

TEST_CASE("a record written by many origins keeps folding after a reopen") {
  // More origins than a msgpack fixarray holds, in the stored contexts and tails.
  constexpr std::size_t writers = 20;
  test::TempDir dir;
  test::FakeWallClock wall;
  Writers w(writers);
  std::vector<SignedOp> ops;
  std::vector<OpId> seen;
  for (std::size_t i = 0; i < writers; ++i) {
    ops.push_back(w.write(i, "broadcast", "notice/ferry-times", 100 + i, seen,
                          set_body("text", "sailing " + std::to_string(i))));
    seen = {ops.back().op.id()};
  }
  Digests before;
  {
    auto store = open_store(dir, wall);
    ingest_all(*store, std::vector<SignedOp>(ops.begin(), ops.end() - 1));
    before = store->digests().value();
  }
  auto store = open_store(dir, wall);  // tails and contexts read back from the rows
  CHECK(store->digests().value().node == before.node);
  ingest_all(*store, {ops.back()});
  auto record = store->record("broadcast", "notice/ferry-times");
  REQUIRE(record);
  CHECK(record->state.ops == writers);
  CHECK(field_value(record->state, "text") == "sailing 19");
  CHECK(conflicts(record->state).empty());
  auto folded = store->digests().value();
  REQUIRE(store->rebuild_records());
  CHECK(store->digests().value().node == folded.node);
}

TEST_CASE("concurrent writes make a conflict that a covering write resolves") {
  test::TempDir dir;
  test::FakeWallClock wall;
  auto store = open_store(dir, wall);
  Writers w(2);
  auto base = w.write(0, "station/huaniao", "household/17", 100, {}, set_body("label", "Chen"));
  auto station = w.write(0, "station/huaniao", "household/17", 300, {base.op.id()},
                         set_body("label", "Chen Xiaoling"));
  auto hub = w.write(1, "station/huaniao", "household/17", 200, {base.op.id()},
                     set_body("label", "CHEN X."));
  ingest_all(*store, {base, station, hub});
  auto record = store->record("station/huaniao", "household/17");
  REQUIRE(record);
  CHECK(field_value(record->state, "label") == "Chen Xiaoling");  // the higher hlc wins
  auto open = conflicts(record->state);
  REQUIRE(open.size() == 1);
  CHECK(open[0].field == "label");
  CHECK(open[0].values.size() == 2);
  auto listed = store->conflicted(10);
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].key == "household/17");

  auto resolve = w.write(1, "station/huaniao", "household/17", 400, {station.op.id(), hub.op.id()},
                         set_body("label", "Chen Xiaoling (陈)"));
  ingest_all(*store, {resolve});
  record = store->record("station/huaniao", "household/17");
  REQUIRE(record);
  CHECK(conflicts(record->state).empty());
  CHECK(field_value(record->state, "label") == "Chen Xiaoling (陈)");
  listed = store->conflicted(10);
  REQUIRE(listed);
  CHECK(listed->empty());
}

TEST_CASE("an op waits for a dep the store does not hold, and folds when it arrives") {
  test::TempDir dir;
  test::FakeWallClock wall;
  auto store = open_store(dir, wall);
  Writers w(2);
  auto submit = w.write(0, "station/huaniao", "case/HN-7", 100, {}, set_body("status", "filed"));
  auto approve = w.write(1, "station/huaniao", "case/HN-7", 200, {submit.op.id()},
                         set_body("status", "approved"));
  ingest_all(*store, {approve});  // the hub's decision travels faster than the filing
  CHECK(store->pending_count() == 1);
  auto none = store->record("station/huaniao", "case/HN-7");
  REQUIRE_FALSE(none);
  CHECK(none.error().code == Errc::not_found);
  ingest_all(*store, {submit});
  CHECK(store->pending_count() == 0);
  auto record = store->record("station/huaniao", "case/HN-7");
  REQUIRE(record);
  CHECK(record->state.ops == 2);
  CHECK(field_value(record->state, "status") == "approved");
  CHECK(conflicts(record->state).empty());
}

TEST_CASE("the digests are current until an op is merged, and again once recomputed") {
  test::TempDir dir;
  test::FakeWallClock wall;
  auto store = open_store(dir, wall);
  CHECK_FALSE(store->digests_current());  // none computed yet
  CHECK(store->last_digests() == nullptr);
  Digests empty = store->digests().value();
  CHECK(store->digests_current());
  Writers w(2);
  auto submit = w.write(0, "station/huaniao", "case/HN-8", 100, {}, set_body("status", "filed"));
  auto approve = w.write(1, "station/huaniao", "case/HN-8", 200, {submit.op.id()},
                         set_body("status", "approved"));
  ingest_all(*store, {submit});
  CHECK_FALSE(store->digests_current());
  Digests filed = store->digests().value();
  CHECK(filed.node != empty.node);
  CHECK(store->digests_current());
  ingest_all(*store, {approve});
  CHECK_FALSE(store->digests_current());
  REQUIRE(store->last_digests() != nullptr);  // kept, lagging, for a paced status to show
  CHECK(store->last_digests()->node == filed.node);
  CHECK(store->digests().value().node != filed.node);
  CHECK(store->digests_current());
  REQUIRE(store->rebuild_records());
  CHECK_FALSE(store->digests_current());
}

TEST_CASE("local appends take the record's heads as deps, also ahead of the commit") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  auto store = open_store(dir, wall);
  OpDraft first = test::draft("station/huaniao", "case/HN-9", set_body("status", "filed"));
  first.deps_from_heads = true;
  auto a = store->append(key, clock, std::vector<OpDraft>{first});
  REQUIRE(a);
  // Two ops built before either is stored: the second names the first.
  auto b = store->build_op(key.public_key(), clock, first);
  REQUIRE(b);
  auto c = store->build_op(key.public_key(), clock, first);
  REQUIRE(c);
  CHECK(b->header().deps == std::vector<OpId>{(*a)[0].id});
  CHECK(c->header().deps == std::vector<OpId>{b->id()});
  std::vector<SignedOp> signed_ops = {sign_op(std::move(*b), key), sign_op(std::move(*c), key)};
  REQUIRE(store->store_signed(signed_ops));
  auto record = store->record("station/huaniao", "case/HN-9");
  REQUIRE(record);
  CHECK(record->state.ops == 3);
  CHECK(record->state.heads.size() == 1);
  // Explicit deps (even none) are taken as they are.
  OpDraft explicit_none = first;
  explicit_none.deps_from_heads = false;
  auto d = store->build_op(key.public_key(), clock, explicit_none);
  REQUIRE(d);
  CHECK(d->header().deps.empty());
  store->abandon_built();
}

TEST_CASE("a record looked up before it exists is created by its first op, then updated") {
  test::TempDir dir;
  test::FakeWallClock wall;
  HybridClock clock(wall, drift_max);
  NodeKey key = NodeKey::generate();
  OpDraft draft = test::draft("station/huaniao", "case/HN-12", set_body("status", "filed"));
  draft.deps_from_heads = true;
  auto ops_of = [](OpStore& store, const std::string& k) {
    auto record = store.record("station/huaniao", k);
    REQUIRE(record);
    return record->state.ops;
  };
  {
    auto store = open_store(dir, wall);
    // Lookups of records that do not exist, more than the cache holds, the last one first.
    CHECK_FALSE(store->record("station/huaniao", "case/HN-12"));
    for (std::size_t i = 0; i < record_cache_max + 10; ++i) {
      CHECK_FALSE(store->record("station/huaniao", "case/none-" + std::to_string(i)));
    }
    REQUIRE(store->append(key, clock, std::vector<OpDraft>{draft}));
    CHECK(ops_of(*store, "case/HN-12") == 1);
    REQUIRE(store->append(key, clock, std::vector<OpDraft>{draft}));
    CHECK(ops_of(*store, "case/HN-12") == 2);
    CHECK_FALSE(store->record("station/huaniao", "case/none-7"));
  }
  auto store = open_store(dir, wall);  // the row is read back: the next op updates it
  REQUIRE(store->append(key, clock, std::vector<OpDraft>{draft}));
  CHECK(ops_of(*store, "case/HN-12") == 3);
  OpDraft other = draft;
  other.key = "case/none-7";
  REQUIRE(store->append(key, clock, std::vector<OpDraft>{other}));
  CHECK(ops_of(*store, "case/none-7") == 1);
}

TEST_CASE("a store that did not merge folds its ops at the next open") {
  test::TempDir dir;
  test::FakeWallClock wall;
  Writers w(1);
  auto op = w.write(0, "station/huaniao", "case/HN-3", 100, {}, set_body("status", "filed"));
  Digests merged_elsewhere;
  {
    test::TempDir other;
    auto reference = open_store(other, wall);
    ingest_all(*reference, {op});
    merged_elsewhere = reference->digests().value();
  }
  {
    StoreOptions no_merge;
    no_merge.merge_records = false;
    auto store = open_store(dir, wall, no_merge);
    ingest_all(*store, {op});
  }
  auto store = open_store(dir, wall);
  auto record = store->record("station/huaniao", "case/HN-3");
  REQUIRE(record);
  CHECK(field_value(record->state, "status") == "filed");
  CHECK(store->digests().value().node == merged_elsewhere.node);
}

TEST_CASE("records of an older state format are folded again at the next open") {
  test::TempDir dir;
  test::FakeWallClock wall;
  Writers w(2);
  auto a = w.write(0, "station/huaniao", "case/HN-4", 100, {}, set_body("status", "filed"));
  auto b =
      w.write(1, "station/huaniao", "case/HN-4", 200, {a.op.id()}, set_body("status", "approved"));
  Digests before;
  {
    auto store = open_store(dir, wall);
    ingest_all(*store, {a, b});
    before = store->digests().value();
  }
  {
    // What a store of schema 3 holds: states in format 1, which this build does not read.
    auto db = Database::open(dir.file(database_file_name), false);
    REQUIRE(db);
    auto old_state = packed([](Packer& pk) {
      pk.pack_array(7);
      pk.pack_uint64(1);  // format 1
      pk.pack_uint64(2);
      for (int i = 0; i < 5; ++i) pk.pack_array(0);
    });
    auto stmt = db->prepare("UPDATE records SET state = ?1");
    REQUIRE(stmt);
    REQUIRE(stmt->bind(1, old_state).run());
    // ... and contexts that name origins in full, not by feed: [[origin (bin 32), seq]].
    auto old_context = packed([&](Packer& pk) {
      const PublicKey& origin = a.op.header().origin;
      pk.pack_array(1);
      pk.pack_array(2);
      pk.pack_bin(static_cast<std::uint32_t>(origin.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(origin.data()),
                       static_cast<std::uint32_t>(origin.size()));
      pk.pack_uint64(1);
    });
    auto contexts = db->prepare("UPDATE ops SET context = ?1 WHERE context IS NOT NULL");
    REQUIRE(contexts);
    REQUIRE(contexts->bind(1, old_context).run());
    REQUIRE(db->exec("PRAGMA user_version = 3"));
  }
  auto store = open_store(dir, wall);
  auto record = store->record("station/huaniao", "case/HN-4");
  REQUIRE(record);
  CHECK(field_value(record->state, "status") == "approved");
  CHECK(record->state.ops == 2);
  CHECK(store->digests().value().node == before.node);
}

// ---- The same ops in any order give the same records ----

namespace {

std::vector<std::uint8_t> random_body(std::mt19937_64& rng) {
  static const char* fields[] = {"status", "label", "officer"};
  static const char* values[] = {"a", "b", "c", "d"};
  return packed([&](Packer& pk) {
    pk.pack_map(3);
    pk.pack(std::string("set"));
    pk.pack_map(1);
    pk.pack(std::string(fields[rng() % 3]));
    pk.pack(std::string(values[rng() % 4]));
    pk.pack(std::string("inc"));
    pk.pack_map(1);
    pk.pack(std::string("hours"));
    pk.pack(static_cast<std::int64_t>(rng() % 7) - 3);
    pk.pack(std::string(rng() % 2 == 0 ? "add" : "del"));
    pk.pack_map(1);
    pk.pack(std::string("tags"));
    pk.pack_array(1);
    pk.pack(std::string(values[rng() % 4]));
  });
}

struct History {
  std::vector<std::vector<SignedOp>> feeds;  // each in seq order
};

// Ops of `origins` origins over `keys` keys in two channels; each op's deps are a random subset
// of the ops of its record written before it.
History random_history(std::mt19937_64& rng, std::size_t origins, std::size_t keys,
                       std::size_t ops) {
  Writers w(origins);
  std::map<FeedId, std::vector<SignedOp>> feeds;
  std::map<std::pair<std::string, std::string>, std::vector<OpId>> written;
  for (std::size_t i = 0; i < ops; ++i) {
    std::size_t origin = rng() % origins;
    std::string channel = rng() % 4 == 0 ? "broadcast" : "station/huaniao";
    std::string key = "case/" + std::to_string(rng() % keys);
    auto& earlier = written[{channel, key}];
    std::vector<OpId> deps;
    for (const OpId& id : earlier) {
      if (rng() % 3 == 0 && deps.size() < 4) deps.push_back(id);
    }
    auto op = w.write(origin, channel, key, 1000 + rng() % 50, deps, random_body(rng));
    earlier.push_back(op.op.id());
    feeds[FeedId{w.key(origin).public_key(), channel}].push_back(std::move(op));
  }
  History h;
  for (auto& [feed, list] : feeds) h.feeds.push_back(std::move(list));
  return h;
}

// Delivers every feed in order, feeds interleaved at random, in random batches, with some ops
// sent again.
void deliver_shuffled(OpStore& store, const History& h, std::mt19937_64& rng) {
  std::vector<std::size_t> next(h.feeds.size(), 0);
  std::size_t left = 0;
  for (const auto& f : h.feeds) left += f.size();
  while (left > 0) {
    std::vector<SignedOp> batch;
    std::size_t size = 1 + rng() % 8;
    while (batch.size() < size && left > 0) {
      std::size_t f = rng() % h.feeds.size();
      if (next[f] == h.feeds[f].size()) continue;
      if (next[f] > 0 && rng() % 5 == 0) batch.push_back(h.feeds[f][rng() % next[f]]);  // again
      batch.push_back(h.feeds[f][next[f]++]);
      --left;
    }
    auto report = store.ingest(batch);
    REQUIRE(report);
    REQUIRE(report->rejected.empty());
  }
}

}  // namespace

TEST_CASE("the same ops in any order and with duplicates give the same records and digests") {
  const std::uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  test::FakeWallClock wall;
  for (int round = 0; round < 4; ++round) {
    History h = random_history(rng, 3, 4, 60);
    std::optional<Digests> expected;
    std::vector<std::uint8_t> expected_record;
    for (int order = 0; order < 4; ++order) {
      test::TempDir dir;
      auto store = open_store(dir, wall);
      deliver_shuffled(*store, h, rng);
      CHECK(store->pending_count() == 0);
      auto digests = store->digests();
      REQUIRE(digests);
      auto record = store->record("station/huaniao", "case/0");
      std::vector<std::uint8_t> record_bytes;
      if (record) record_bytes = encode_state(record->state);
      if (!expected) {
        expected = *digests;
        expected_record = record_bytes;
      } else {
        CHECK(digests->node == expected->node);
        CHECK(digests->channels == expected->channels);
        CHECK(record_bytes == expected_record);
      }
      auto rebuilt = store->rebuild_records();
      REQUIRE(rebuilt);
      CHECK(rebuilt->ops == 60);
      CHECK(rebuilt->pending == 0);
      auto after = store->digests();
      REQUIRE(after);
      CHECK(after->node == expected->node);
    }
    REQUIRE(expected);
    CHECK(expected->channels.size() == 2);
  }
}
