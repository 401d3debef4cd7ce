#include "protocol/merge.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <msgpack.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/node_key.h"
#include "tests/support/test_support.h"

namespace {

using ferry::Context;
using ferry::Dot;
using ferry::Errc;
using ferry::MergeOp;
using ferry::Op;
using ferry::OpId;
using ferry::PublicKey;
using ferry::RecordState;

using Bytes = std::vector<std::uint8_t>;
using ferry::test::pack_bin;
using ferry::test::pack_text;
using ferry::test::packed;
using ferry::test::Packer;

Bytes canonical_of(const Bytes& bytes) {
  msgpack::object_handle h =
      msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return ferry::canonical_value(h.get());
}

// The canonical bytes of an integer value, as the state holds it.
Bytes int_value(std::int64_t v) {
  return packed([&](Packer& pk) { pk.pack_int64(v); });
}

// The merge parts of a test body; integers only, which is all the rules need to tell apart.
struct Writes {
  std::vector<std::pair<std::string, std::int64_t>> sets;
  std::vector<std::pair<std::string, std::int64_t>> incs;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> adds;
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> dels;
};

void pack_scalars(Packer& pk, std::string_view part,
                  const std::vector<std::pair<std::string, std::int64_t>>& fields) {
  pack_text(pk, part);
  pk.pack_map(static_cast<std::uint32_t>(fields.size()));
  for (const auto& [field, v] : fields) {
    pack_text(pk, field);
    pk.pack_int64(v);
  }
}

void pack_arrays(Packer& pk, std::string_view part,
                 const std::vector<std::pair<std::string, std::vector<std::int64_t>>>& fields) {
  pack_text(pk, part);
  pk.pack_map(static_cast<std::uint32_t>(fields.size()));
  for (const auto& [field, elements] : fields) {
    pack_text(pk, field);
    pk.pack_array(static_cast<std::uint32_t>(elements.size()));
    for (std::int64_t e : elements) pk.pack_int64(e);
  }
}

// A body with the non-empty parts of w, and a data entry the merge must ignore.
Bytes body_of(const Writes& w) {
  return packed([&](Packer& pk) {
    std::uint32_t parts = 1;
    for (bool part : {!w.sets.empty(), !w.incs.empty(), !w.adds.empty(), !w.dels.empty()}) {
      parts += part ? 1 : 0;
    }
    pk.pack_map(parts);
    pack_text(pk, "note");
    pack_text(pk, "data, not merged");
    if (!w.sets.empty()) pack_scalars(pk, "set", w.sets);
    if (!w.incs.empty()) pack_scalars(pk, "inc", w.incs);
    if (!w.adds.empty()) pack_arrays(pk, "add", w.adds);
    if (!w.dels.empty()) pack_arrays(pk, "del", w.dels);
  });
}

PublicKey origin_key(std::uint8_t fill) {
  ferry::Seed seed{};
  seed.fill(fill);
  return ferry::NodeKey::from_seed(seed).public_key();
}

Op build_op(const PublicKey& origin, std::uint64_t seq, const OpId& prev, std::uint64_t hlc,
            const Bytes& body, std::vector<OpId> deps = {}) {
  ferry::OpDraft draft{"clinic", "visit", "patient-7", std::move(deps), body, "nurse"};
  auto op = Op::build(origin, seq, prev, hlc, draft);
  REQUIRE(op.has_value());
  return std::move(*op);
}

// ---- Histories of one record ----

// The ops of one record over three origins, each with the context context_of() gives it.
class History {
 public:
  static constexpr std::size_t none = static_cast<std::size_t>(-1);
  struct Entry {
    Op op;
    MergeOp merge;
    Context context;
    std::vector<std::size_t> deps;
    std::size_t previous;  // the origin's op before this one, or none
  };

  History() : origins_{origin_key(0x11), origin_key(0x22), origin_key(0x33)} {}

  // Appends the next op of origin `who`; returns its index.
  std::size_t write(std::size_t who, std::uint64_t hlc, const Writes& w,
                    std::vector<std::size_t> deps = {}) {
    std::vector<OpId> dep_ids;
    std::vector<ferry::DepContext> dep_contexts;
    for (std::size_t d : deps) {
      dep_ids.push_back(entries_[d].op.id());
      dep_contexts.push_back({entries_[d].merge.dot(), entries_[d].context});
    }
    std::size_t previous = last_[who];
    std::uint64_t seq = previous == none ? 1 : entries_[previous].merge.seq + 1;
    OpId prev = previous == none ? OpId{} : entries_[previous].op.id();
    Op op = build_op(origins_[who], seq, prev, hlc, body_of(w), dep_ids);
    MergeOp merge = ferry::merge_op_of(op);
    Context context = ferry::context_of(origins_[who], seq, dep_contexts);
    entries_.push_back(Entry{std::move(op), std::move(merge), std::move(context), deps, previous});
    last_[who] = entries_.size() - 1;
    return entries_.size() - 1;
  }

  const PublicKey& origin(std::size_t who) const { return origins_[who]; }
  const Entry& at(std::size_t i) const { return entries_[i]; }
  std::size_t size() const { return entries_.size(); }

  RecordState fold(const std::vector<std::size_t>& order) const {
    RecordState state;
    for (std::size_t i : order) ferry::apply(state, entries_[i].merge, entries_[i].context);
    return state;
  }

  RecordState fold_all() const {
    std::vector<std::size_t> order(entries_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    return fold(order);
  }

 private:
  std::vector<PublicKey> origins_;
  std::vector<std::size_t> last_ = std::vector<std::size_t>(3, none);
  std::vector<Entry> entries_;
};

Writes set_f(std::int64_t v) { return Writes{{{"f", v}}, {}, {}, {}}; }

// ---- Values ----

TEST_CASE("canonical_value packs integers in their smallest encoding", "[merge]") {
  Bytes as_uint8 = {0xcc, 0x01};
  Bytes as_fixint = {0x01};
  Bytes as_int64 = {0xd3, 0, 0, 0, 0, 0, 0, 0, 0x01};
  CHECK(canonical_of(as_uint8) == as_fixint);
  CHECK(canonical_of(as_int64) == as_fixint);
  CHECK(canonical_of(as_fixint) == as_fixint);
  Bytes minus_one_int32 = {0xd2, 0xff, 0xff, 0xff, 0xff};
  CHECK(canonical_of(minus_one_int32) == Bytes{0xff});
  Bytes str8_short = {0xd9, 0x01, 'a'};
  CHECK(canonical_of(str8_short) == Bytes{0xa1, 'a'});
}

TEST_CASE("canonical_value sorts map entries by the canonical bytes of their keys", "[merge]") {
  Bytes b_then_a = packed([](Packer& pk) {
    pk.pack_map(2);
    pack_text(pk, "b");
    pk.pack_uint64(1);
    pack_text(pk, "a");
    pk.pack_fix_uint32(2);  // a long form inside, too
  });
  Bytes a_then_b = packed([](Packer& pk) {
    pk.pack_map(2);
    pack_text(pk, "a");
    pk.pack_uint64(2);
    pack_text(pk, "b");
    pk.pack_uint64(1);
  });
  CHECK(canonical_of(b_then_a) == a_then_b);
  CHECK(canonical_of(a_then_b) == a_then_b);
  // Nested in an array, the map is sorted too; other types keep their type.
  Bytes nested = packed([](Packer& pk) {
    pk.pack_array(3);
    pk.pack_float(1.5f);
    pk.pack_nil();
    pk.pack_map(2);
    pack_text(pk, "z");
    pk.pack_true();
    pack_text(pk, "y");
    pk.pack_false();
  });
  Bytes expected = {0x93, 0xca, 0x3f, 0xc0, 0x00, 0x00, 0xc0,
                    0x82, 0xa1, 'y',  0xc2, 0xa1, 'z',  0xc3};
  CHECK(canonical_of(nested) == expected);
}

TEST_CASE("canonical_value keeps the width and bits of floats", "[merge]") {
  Bytes one_float64 = {0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
  Bytes one_float32 = {0xca, 0x3f, 0x80, 0, 0};
  Bytes two_to_64 = {0xcb, 0x43, 0xf0, 0, 0, 0, 0, 0, 0};  // past every integer type
  Bytes minus_zero = {0xcb, 0x80, 0, 0, 0, 0, 0, 0, 0};
  for (const Bytes& f : {one_float64, one_float32, two_to_64, minus_zero}) {
    CHECK(canonical_of(f) == f);
  }
  CHECK(canonical_of(one_float64) != Bytes{0x01});
}

// ---- Parsing bodies ----

TEST_CASE("merge_op_of reads the op's identity and its merge parts", "[merge]") {
  const PublicKey a = origin_key(0x11);
  Writes w{{{"status", 3}}, {{"visits", -2}}, {{"tags", {1, 2, 2}}}, {{"tags", {3}}}};
  Op op = build_op(a, 1, OpId{}, 77, body_of(w));
  MergeOp m = ferry::merge_op_of(op);
  CHECK(m.id == op.id());
  CHECK(m.origin == a);
  CHECK(m.seq == 1);
  CHECK(m.hlc == 77);
  CHECK(m.author == std::optional<std::string>("nurse"));
  CHECK(m.sets == std::map<std::string, Bytes>{{"status", int_value(3)}});
  CHECK(m.incs == std::map<std::string, std::int64_t>{{"visits", -2}});
  CHECK(m.adds.at("tags") == std::set<Bytes>{int_value(1), int_value(2)});
  CHECK(m.dels.at("tags") == std::set<Bytes>{int_value(3)});
  CHECK(ferry::validate_merge_body(op.body()).has_value());
}

// A body whose merge parts are each malformed in one way, beside well-formed entries.
Bytes malformed_body() {
  return packed([](Packer& pk) {
    pk.pack_map(5);
    pack_text(pk, "set");  // "dup" named twice: both dropped; "ok" kept
    pk.pack_map(3);
    pack_text(pk, "dup");
    pk.pack_uint64(1);
    pack_text(pk, "ok");
    pk.pack_uint64(2);
    pack_text(pk, "dup");
    pk.pack_uint64(3);
    pack_text(pk, "inc");  // a string and an unsigned past int64 dropped; "n" kept
    pk.pack_map(3);
    pack_text(pk, "s");
    pack_text(pk, "1");
    pack_text(pk, "big");
    pk.pack_uint64(std::uint64_t{1} << 63);
    pack_text(pk, "n");
    pk.pack_int64(std::numeric_limits<std::int64_t>::min());
    pack_text(pk, "add");  // not an array: dropped; "tags" kept
    pk.pack_map(2);
    pack_text(pk, "one");
    pk.pack_uint64(1);
    pack_text(pk, "tags");
    pk.pack_array(1);
    pk.pack_uint64(9);
    pack_text(pk, "del");  // the whole part is not a map
    pk.pack_array(0);
    pack_text(pk, "other");
    pk.pack_uint64(5);
  });
}

TEST_CASE("merge_op_of ignores malformed merge parts, entry by entry", "[merge]") {
  Op op = build_op(origin_key(0x11), 1, OpId{}, 1, malformed_body());
  MergeOp m = ferry::merge_op_of(op);
  CHECK(m.sets == std::map<std::string, Bytes>{{"ok", int_value(2)}});
  CHECK(m.incs ==
        std::map<std::string, std::int64_t>{{"n", std::numeric_limits<std::int64_t>::min()}});
  CHECK(m.adds == std::map<std::string, std::set<Bytes>>{{"tags", {int_value(9)}}});
  CHECK(m.dels.empty());
}

TEST_CASE("merge_op_of ignores a merge part named twice", "[merge]") {
  Bytes body = packed([](Packer& pk) {
    pk.pack_map(3);
    pack_text(pk, "set");
    pk.pack_map(1);
    pack_text(pk, "f");
    pk.pack_uint64(1);
    pack_text(pk, "set");
    pk.pack_map(1);
    pack_text(pk, "f");
    pk.pack_uint64(2);
    pack_text(pk, "inc");
    pk.pack_map(1);
    pack_text(pk, "n");
    pk.pack_uint64(4);
  });
  MergeOp m = ferry::merge_op_of(build_op(origin_key(0x11), 1, OpId{}, 1, body));
  CHECK(m.sets.empty());
  CHECK(m.incs == std::map<std::string, std::int64_t>{{"n", 4}});
  auto strict = ferry::validate_merge_body(body);
  REQUIRE_FALSE(strict.has_value());
  CHECK(strict.error().code == Errc::malformed);
  CHECK(strict.error().detail == "body: merge part 'set' appears twice");
}

template <class F>
void check_refused(F&& pack, std::string_view reason) {
  Bytes body = packed(pack);
  auto strict = ferry::validate_merge_body(body);
  INFO("expected: " << reason);
  REQUIRE_FALSE(strict.has_value());
  CHECK(strict.error().code == Errc::malformed);
  CHECK(strict.error().detail == reason);
}

TEST_CASE("validate_merge_body refuses each malformed merge part with its reason", "[merge]") {
  check_refused(
      [](Packer& pk) {
        pk.pack_map(1);
        pack_text(pk, "set");
        pk.pack_array(0);
      },
      "set: expected a map of fields");
  check_refused(
      [](Packer& pk) {
        pk.pack_map(1);
        pack_text(pk, "inc");
        pk.pack_map(1);
        pack_text(pk, "n");
        pk.pack_double(1.5);
      },
      "inc: field 'n' is not an integer that fits int64");
  check_refused(
      [](Packer& pk) {
        pk.pack_map(1);
        pack_text(pk, "add");
        pk.pack_map(1);
        pack_text(pk, "tags");
        pk.pack_uint64(1);
      },
      "add: field 'tags' is not an array of elements");
  check_refused(
      [](Packer& pk) {
        pk.pack_map(1);
        pack_text(pk, "del");
        pk.pack_map(2);
        pack_text(pk, "tags");
        pk.pack_array(0);
        pack_text(pk, "tags");
        pk.pack_array(0);
      },
      "del: field 'tags' appears twice");
  // Field names that are not strings are refused by the body rules every op follows.
  Bytes int_field = packed([](Packer& pk) {
    pk.pack_map(1);
    pack_text(pk, "set");
    pk.pack_map(1);
    pk.pack_uint64(1);
    pk.pack_uint64(1);
  });
  auto refused = ferry::validate_merge_body(int_field);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error().code == Errc::malformed);
  CHECK(ferry::validate_merge_body(Bytes{0xc1}).error().code == Errc::malformed);
  CHECK(ferry::validate_merge_body(body_of(Writes{})).has_value());
}

// ---- Causality ----

TEST_CASE("context_of joins the deps and their contexts with the origin's own past", "[merge]") {
  const PublicKey a = origin_key(0x11);
  const PublicKey b = origin_key(0x22);
  const PublicKey c = origin_key(0x33);
  Context b_context;
  b_context.raise(a, 4);
  b_context.raise(b, 1);
  std::vector<ferry::DepContext> deps = {{Dot{b, 2}, b_context}, {Dot{a, 2}, Context{}}};
  Context cx = ferry::context_of(c, 3, deps);
  CHECK(cx.seq(a) == 4);  // from b's context, above the dep a:2
  CHECK(cx.seq(b) == 2);  // the dep itself
  CHECK(cx.seq(c) == 2);  // c's own earlier ops
  CHECK(ferry::covers(cx, Dot{a, 4}));
  CHECK_FALSE(ferry::covers(cx, Dot{a, 5}));
  CHECK_FALSE(ferry::covers(cx, Dot{c, 3}));
  Context first = ferry::context_of(c, 1, {});
  CHECK(first.entries().empty());  // no zero entries
}

TEST_CASE("an origin's earlier op is in the history of its later op without deps", "[merge]") {
  History h;
  h.write(0, 90, set_f(1));
  h.write(0, 10, set_f(2));  // a lower hlc, yet it has seen the first write
  CHECK(ferry::covers(h.at(1).context, h.at(0).merge.dot()));
  RecordState s = h.fold_all();
  CHECK(ferry::conflicts(s).empty());
  CHECK(ferry::winning_values(s).at("f") == int_value(2));
  CHECK(s.heads.size() == 1);
  CHECK(s.heads.begin()->first == h.at(1).merge.dot());
}

TEST_CASE("an origin's later op sees its earlier ops but not their deps unless named", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 1, set_f(1));
  std::size_t b1 = h.write(1, 2, Writes{{{"g", 1}}, {}, {}, {}}, {a1});
  std::size_t b2 = h.write(1, 3, set_f(2));
  CHECK(ferry::covers(h.at(b2).context, h.at(b1).merge.dot()));
  CHECK_FALSE(ferry::covers(h.at(b2).context, h.at(a1).merge.dot()));
  CHECK(ferry::conflicts(h.fold({a1, b1, b2})).size() == 1);
  // Naming the previous op as a dep brings its history along.
  History named;
  named.write(0, 1, set_f(1));
  named.write(1, 2, Writes{{{"g", 1}}, {}, {}, {}}, {a1});
  named.write(1, 3, set_f(2), {b1});
  CHECK(ferry::covers(named.at(b2).context, named.at(a1).merge.dot()));
  CHECK(ferry::conflicts(named.fold_all()).empty());
}

// ---- Registers ----

TEST_CASE("concurrent set writes: the higher hlc wins in every order", "[merge]") {
  History h;
  h.write(0, 20, set_f(1));
  h.write(1, 10, set_f(2));
  RecordState ab = h.fold({0, 1});
  RecordState ba = h.fold({1, 0});
  CHECK(ab == ba);
  CHECK(ferry::winning_values(ab).at("f") == int_value(1));
  CHECK(ab.heads.size() == 2);
  CHECK(ab.updated_hlc == 20);
  CHECK(ab.ops == 2);
}

TEST_CASE("concurrent set writes with equal hlc: the greater origin wins", "[merge]") {
  History h;
  h.write(0, 5, set_f(1));
  h.write(1, 5, set_f(2));
  Bytes expected = h.origin(0) > h.origin(1) ? int_value(1) : int_value(2);
  CHECK(ferry::winning_values(h.fold({0, 1})).at("f") == expected);
  CHECK(ferry::winning_values(h.fold({1, 0})).at("f") == expected);
}

TEST_CASE("a conflict shows concurrent writes until a write whose deps cover both", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 10, set_f(1));
  std::size_t b1 = h.write(1, 30, set_f(2));
  RecordState s = h.fold({a1, b1});
  auto views = ferry::conflicts(s);
  REQUIRE(views.size() == 1);
  CHECK(views[0].field == "f");
  REQUIRE(views[0].values.size() == 2);
  CHECK(views[0].values[0].value == int_value(2));  // the winner first
  CHECK(views[0].values[0].origin == h.origin(1));
  CHECK(views[0].values[0].hlc == 30);
  CHECK(views[0].values[0].id == h.at(b1).op.id());
  CHECK(views[0].values[0].author == std::optional<std::string>("nurse"));
  CHECK(views[0].values[1].value == int_value(1));

  // A write that saw only one side still conflicts with the other.
  std::size_t c1 = h.write(2, 20, set_f(3), {a1});
  CHECK(ferry::conflicts(h.fold({a1, b1, c1})).at(0).values.size() == 2);
  // A write that saw both resolves the conflict, whatever its hlc.
  std::size_t a2 = h.write(0, 1, set_f(4), {b1, c1});
  RecordState resolved = h.fold({a1, b1, c1, a2});
  CHECK(ferry::conflicts(resolved).empty());
  CHECK(ferry::winning_values(resolved).at("f") == int_value(4));
  CHECK(resolved.heads.size() == 1);
}

TEST_CASE("a write that saw the previous one overwrites it without a conflict", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 10, set_f(1));
  std::size_t b1 = h.write(1, 11, set_f(2), {a1});
  RecordState s = h.fold({a1, b1});
  CHECK(ferry::conflicts(s).empty());
  CHECK(s.registers.at("f").size() == 1);
  CHECK(ferry::winning_values(s).at("f") == int_value(2));
}

TEST_CASE("a write of another field leaves a conflict in place", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 10, set_f(1));
  std::size_t b1 = h.write(1, 11, set_f(2));
  std::size_t c1 = h.write(2, 12, Writes{{{"g", 1}}, {}, {}, {}}, {a1, b1});
  RecordState s = h.fold({a1, b1, c1});
  CHECK(ferry::conflicts(s).size() == 1);
  CHECK(s.heads.size() == 1);
}

// ---- Counters ----

TEST_CASE("inc fields sum every op once and wrap modulo 2^64", "[merge]") {
  constexpr std::int64_t max = std::numeric_limits<std::int64_t>::max();
  History h;
  h.write(0, 1, Writes{{}, {{"n", 5}, {"wrap", max}}, {}, {}});
  h.write(1, 1, Writes{{}, {{"n", -7}, {"wrap", 1}}, {}, {}});
  h.write(2, 1, Writes{{}, {{"n", 3}}, {}, {}});
  for (const auto& order : std::vector<std::vector<std::size_t>>{{0, 1, 2}, {2, 1, 0}}) {
    RecordState s = h.fold(order);
    CHECK(s.counters.at("n") == 1);
    CHECK(s.counters.at("wrap") == std::numeric_limits<std::int64_t>::min());
  }
}

// ---- Observed-remove sets ----

TEST_CASE("a del removes the adds it has seen", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 1, Writes{{}, {}, {{"tags", {1, 2}}}, {}});
  std::size_t b1 = h.write(1, 2, Writes{{}, {}, {}, {{"tags", {1}}}}, {a1});
  RecordState s = h.fold({a1, b1});
  CHECK(ferry::set_elements(s).at("tags") == std::vector<Bytes>{int_value(2)});
  std::size_t b2 = h.write(1, 3, Writes{{}, {}, {}, {{"tags", {2, 5}}}}, {a1});
  CHECK(h.fold({a1, b1, b2}).sets.empty());  // a field with no elements is gone
}

TEST_CASE("an add concurrent with a del survives it", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 1, Writes{{}, {}, {{"tags", {1}}}, {}});
  std::size_t b1 = h.write(1, 1, Writes{{}, {}, {{"tags", {1}}}, {}});
  std::size_t c1 = h.write(2, 1, Writes{{}, {}, {}, {{"tags", {1}}}}, {a1});
  for (const auto& order : std::vector<std::vector<std::size_t>>{{a1, b1, c1}, {a1, c1, b1}}) {
    RecordState s = h.fold(order);
    REQUIRE(s.sets.at("tags").size() == 1);
    const auto& tags = s.sets.at("tags").at(int_value(1));
    CHECK(tags.size() == 1);
    CHECK(*tags.begin() == h.at(b1).merge.dot());
  }
}

TEST_CASE("an op's own add survives its own del", "[merge]") {
  History h;
  std::size_t a1 = h.write(0, 1, Writes{{}, {}, {{"tags", {1}}}, {}});
  std::size_t a2 = h.write(0, 2, Writes{{}, {}, {{"tags", {1}}}, {{"tags", {1}}}});
  RecordState s = h.fold({a1, a2});
  const auto& tags = s.sets.at("tags").at(int_value(1));
  CHECK(tags.size() == 1);
  CHECK(*tags.begin() == h.at(a2).merge.dot());
}

// ---- Encoding ----

// A state with every kind of entry, including a conflict and an absent author.
RecordState rich_state() {
  History h;
  std::size_t a1 = h.write(0, 10, Writes{{{"f", 1}, {"g", -3}}, {{"n", 2}}, {{"s", {1, 2}}}, {}});
  std::size_t b1 = h.write(1, 12, Writes{{{"f", 2}}, {{"n", -9}}, {{"s", {2}}}, {{"t", {1}}}});
  h.write(2, 11, Writes{{}, {}, {{"s", {3}}}, {{"s", {1}}}}, {a1, b1});
  RecordState s = h.fold_all();
  // An op without an author leaves nil in the encoding.
  Op op = [&] {
    ferry::OpDraft draft{"clinic", "visit", "patient-7", {}, body_of(set_f(5)), std::nullopt};
    auto built = Op::build(origin_key(0x44), 1, OpId{}, 3, draft);
    REQUIRE(built.has_value());
    return std::move(*built);
  }();
  ferry::apply(s, ferry::merge_op_of(op), Context{});
  return s;
}

TEST_CASE("encode_state and decode_state round trip, canonically", "[merge]") {
  RecordState s = rich_state();
  REQUIRE(ferry::conflicts(s).size() == 1);
  Bytes encoded = ferry::encode_state(s);
  auto decoded = ferry::decode_state(encoded);
  REQUIRE(decoded.has_value());
  CHECK(*decoded == s);
  CHECK(ferry::encode_state(*decoded) == encoded);
  auto empty = ferry::decode_state(ferry::encode_state(RecordState{}));
  REQUIRE(empty.has_value());
  CHECK(*empty == RecordState{});
}

TEST_CASE("decode_state refuses every truncation and trailing bytes as corrupt", "[merge]") {
  Bytes encoded = ferry::encode_state(rich_state());
  for (std::size_t size = 0; size < encoded.size(); ++size) {
    INFO("prefix of " << size << " bytes");
    auto decoded = ferry::decode_state(std::span(encoded.data(), size));
    REQUIRE_FALSE(decoded.has_value());
    CHECK(decoded.error().code == Errc::corrupt);
  }
  encoded.push_back(0xc0);
  CHECK(ferry::decode_state(encoded).error().code == Errc::corrupt);
}

TEST_CASE("decode_state never crashes on changed bytes and accepts only canonical ones",
          "[merge]") {
  const Bytes encoded = ferry::encode_state(rich_state());
  const std::uint64_t seed = 0x5eed0001;
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  for (std::size_t i = 0; i < encoded.size() * 8; ++i) {
    Bytes changed = encoded;
    changed[i / 8] ^= static_cast<std::uint8_t>(1u << (i % 8));
    auto decoded = ferry::decode_state(changed);
    INFO("bit " << i);
    if (decoded) {
      CHECK(ferry::encode_state(*decoded) == changed);
    } else {
      CHECK(decoded.error().code == Errc::corrupt);
    }
  }
  for (int round = 0; round < 2000; ++round) {
    Bytes garbage(rng() % 64);
    for (auto& b : garbage) b = static_cast<std::uint8_t>(rng());
    auto decoded = ferry::decode_state(garbage);
    if (!decoded) CHECK(decoded.error().code == Errc::corrupt);
  }
}

TEST_CASE("decode_state refuses what encode_state would not write", "[merge]") {
  auto refuses = [](const Bytes& bytes) {
    auto decoded = ferry::decode_state(bytes);
    return !decoded && decoded.error().code == Errc::corrupt;
  };
  // [version, ops, hlc, origins, heads, registers, counters, sets]; heads() writes the last two
  auto state = [](std::uint64_t version, std::uint64_t ops, auto&& heads) {
    return packed([&](Packer& pk) {
      pk.pack_array(8);
      pk.pack_uint64(version);
      pk.pack_uint64(ops);
      pk.pack_uint64(0);
      heads(pk);
      pk.pack_array(0);
      pk.pack_array(0);
      pk.pack_array(0);
    });
  };
  auto no_heads = [](Packer& pk) {
    pk.pack_array(0);  // origins
    pk.pack_array(0);  // heads
  };
  CHECK_FALSE(refuses(state(2, 0, no_heads)));
  CHECK(refuses(state(1, 0, no_heads)));  // version 1 (full origins everywhere) is not read
  CHECK(refuses(state(3, 0, no_heads)));  // an unknown version
  CHECK(refuses(state(2, 1, no_heads)));  // ops without heads
  Bytes long_form = state(2, 0, no_heads);
  long_form[1] = 0xcc;  // version 2 as uint8 is not canonical
  long_form.insert(long_form.begin() + 2, 0x02);
  CHECK(refuses(long_form));
  // A declared size past the input is refused before anything that size is allocated.
  CHECK(refuses(Bytes{0x98, 0x02, 0x00, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff}));
  // Two origins in ascending order, as the table keeps them.
  const PublicKey a = std::min(origin_key(0x11), origin_key(0x22));
  const PublicKey b = std::max(origin_key(0x11), origin_key(0x22));
  auto heads_of = [](std::vector<PublicKey> origins,
                     std::vector<std::pair<std::uint64_t, std::uint64_t>> heads) {
    return [origins, heads](Packer& pk) {
      pk.pack_array(static_cast<std::uint32_t>(origins.size()));
      for (const PublicKey& o : origins) pack_bin(pk, o);
      pk.pack_array(static_cast<std::uint32_t>(heads.size()));
      for (const auto& [index, seq] : heads) {
        pk.pack_array(3);
        pk.pack_uint64(index);
        pk.pack_uint64(seq);
        pack_bin(pk, origin_key(0x33));  // the head's id
      }
    };
  };
  CHECK_FALSE(refuses(state(2, 1, heads_of({a}, {{0, 1}}))));
  CHECK_FALSE(refuses(state(2, 2, heads_of({a, b}, {{0, 1}, {1, 1}}))));
  // Two heads of one origin cannot both be maximal.
  CHECK(refuses(state(2, 2, heads_of({a}, {{0, 1}, {0, 2}}))));
  // An index past the origin table; an origin no dot names; origins out of order or twice.
  CHECK(refuses(state(2, 1, heads_of({a}, {{1, 1}}))));
  CHECK(refuses(state(2, 1, heads_of({a, b}, {{0, 1}}))));
  CHECK(refuses(state(2, 2, heads_of({b, a}, {{0, 1}, {1, 1}}))));
  CHECK(refuses(state(2, 1, heads_of({a, a}, {{0, 1}}))));
}

// ---- Digests ----

ferry::Digest digest_of(const std::vector<std::pair<std::string, RecordState>>& records) {
  ferry::StateDigest digest;
  for (const auto& [key, state] : records) digest.add("clinic", key, state);
  return digest.finish();
}

TEST_CASE("the state digest depends on each record's channel, key and state", "[merge]") {
  RecordState s = rich_state();
  RecordState t;
  CHECK(digest_of({{"a", s}, {"b", t}}) == digest_of({{"a", s}, {"b", t}}));
  CHECK(digest_of({{"a", s}, {"b", t}}) != digest_of({{"a", t}, {"b", s}}));
  CHECK(digest_of({{"a", s}}) != digest_of({{"b", s}}));
  CHECK(digest_of({}) != digest_of({{"a", t}}));
  ferry::StateDigest other_channel;
  other_channel.add("ward", "a", s);
  CHECK(other_channel.finish() != digest_of({{"a", s}}));
  Bytes out = {0x01};
  ferry::append_canonical("c", "k", t, out);
  Bytes expected = {0x01, 0x93, 0xa1, 'c', 0xa1, 'k'};
  Bytes state = ferry::encode_state(t);
  expected.insert(expected.end(), state.begin(), state.end());
  CHECK(out == expected);
}

// ---- Order independence ----

Writes random_writes(std::mt19937_64& rng) {
  const std::vector<std::string> fields = {"a", "b", "c"};
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  Writes w;
  for (const std::string& field : fields) {
    if (pick(3) == 0) w.sets.emplace_back(field, static_cast<std::int64_t>(pick(4)));
    if (pick(4) == 0) {
      // Large deltas make the sum wrap, which must not depend on the order either.
      std::int64_t delta = pick(5) == 0 ? std::numeric_limits<std::int64_t>::max() - 3
                                        : static_cast<std::int64_t>(pick(21)) - 10;
      w.incs.emplace_back(field, delta);
    }
    std::vector<std::int64_t> adds, dels;
    for (std::int64_t e = 0; e < 3; ++e) {
      if (pick(4) == 0) adds.push_back(e);
      if (pick(4) == 0) dels.push_back(e);
    }
    if (!adds.empty()) w.adds.emplace_back(field, adds);
    if (!dels.empty()) w.dels.emplace_back(field, dels);
  }
  return w;
}

History random_history(std::mt19937_64& rng, std::size_t ops) {
  History h;
  for (std::size_t i = 0; i < ops; ++i) {
    std::vector<std::size_t> deps;
    std::size_t dep_count = i == 0 ? 0 : static_cast<std::size_t>(rng() % 3);
    for (std::size_t d = 0; d < dep_count; ++d) {
      std::size_t dep = static_cast<std::size_t>(rng() % i);
      if (std::find(deps.begin(), deps.end(), dep) == deps.end()) deps.push_back(dep);
    }
    // A small hlc range makes ties, so the origin tie-break is exercised.
    h.write(static_cast<std::size_t>(rng() % 3), 1 + rng() % 4, random_writes(rng), deps);
  }
  return h;
}

// A causal order picked at random: each op after its deps and its origin's earlier ops.
std::vector<std::size_t> random_causal_order(const History& h, std::mt19937_64& rng) {
  std::vector<bool> applied(h.size(), false);
  std::vector<std::size_t> order;
  while (order.size() < h.size()) {
    std::vector<std::size_t> ready;
    for (std::size_t i = 0; i < h.size(); ++i) {
      const auto& e = h.at(i);
      bool deps_in = std::all_of(e.deps.begin(), e.deps.end(), [&](auto d) { return applied[d]; });
      if (!applied[i] && deps_in && (e.previous == History::none || applied[e.previous])) {
        ready.push_back(i);
      }
    }
    REQUIRE_FALSE(ready.empty());
    std::size_t next = ready[static_cast<std::size_t>(rng() % ready.size())];
    applied[next] = true;
    order.push_back(next);
  }
  return order;
}

// The state the rules define, from the set of ops alone: what no other op has seen.
RecordState model_state(const History& h) {
  RecordState s;
  auto seen_by_other = [&](std::size_t i, auto&& relevant) {
    for (std::size_t j = 0; j < h.size(); ++j) {
      if (j != i && relevant(h.at(j).merge) &&
          ferry::covers(h.at(j).context, h.at(i).merge.dot())) {
        return true;
      }
    }
    return false;
  };
  for (std::size_t i = 0; i < h.size(); ++i) {
    const MergeOp& m = h.at(i).merge;
    s.ops += 1;
    s.updated_hlc = std::max(s.updated_hlc, m.hlc);
    if (!seen_by_other(i, [](const MergeOp&) { return true; })) s.heads.emplace(m.dot(), m.id);
    for (const auto& [field, value] : m.sets) {
      if (!seen_by_other(i, [&](const MergeOp& o) { return o.sets.count(field) > 0; })) {
        s.registers[field].emplace(m.dot(), ferry::RegisterWrite{value, m.id, m.hlc, m.author});
      }
    }
    for (const auto& [field, delta] : m.incs) {
      auto& sum = s.counters[field];
      sum = static_cast<std::int64_t>(static_cast<std::uint64_t>(sum) +
                                      static_cast<std::uint64_t>(delta));
    }
    for (const auto& [field, elements] : m.adds) {
      for (const auto& e : elements) {
        auto deletes = [&](const MergeOp& o) {
          auto d = o.dels.find(field);
          return d != o.dels.end() && d->second.count(e) > 0;
        };
        if (!seen_by_other(i, deletes)) s.sets[field][e].insert(m.dot());
      }
    }
  }
  return s;
}

TEST_CASE("random causal histories merge to one state in every causal order", "[merge]") {
  const std::uint64_t base_seed = 0xfe77;
  std::size_t with_conflicts = 0;
  std::size_t with_set_elements = 0;
  for (std::uint64_t round = 0; round < 30; ++round) {
    const std::uint64_t seed = base_seed + round;
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    History h = random_history(rng, 8 + static_cast<std::size_t>(rng() % 24));
    const RecordState expected = model_state(h);
    with_conflicts += ferry::conflicts(expected).empty() ? 0u : 1u;
    with_set_elements += expected.sets.empty() ? 0u : 1u;
    const Bytes expected_bytes = ferry::encode_state(expected);
    const ferry::Digest expected_digest = digest_of({{"k", expected}});
    for (int trial = 0; trial < 20; ++trial) {
      CAPTURE(trial);
      RecordState s = h.fold(random_causal_order(h, rng));
      CHECK(s == expected);
      CHECK(ferry::encode_state(s) == expected_bytes);
      CHECK(digest_of({{"k", s}}) == expected_digest);
    }
    // As storage does it: the state goes through its bytes between every two ops.
    RecordState stored;
    for (std::size_t i : random_causal_order(h, rng)) {
      auto loaded = ferry::decode_state(ferry::encode_state(stored));
      REQUIRE(loaded.has_value());
      stored = std::move(*loaded);
      ferry::apply(stored, h.at(i).merge, h.at(i).context);
    }
    CHECK(ferry::encode_state(stored) == expected_bytes);
  }
  // The histories must reach the interesting cases, or the test proves little.
  CHECK(with_conflicts > 5);
  CHECK(with_set_elements > 5);
}

}  // namespace
