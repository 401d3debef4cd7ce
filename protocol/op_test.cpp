#include "protocol/op.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <msgpack.hpp>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/hex.h"
#include "protocol/limits.h"
#include "tests/support/test_support.h"

namespace {

using ferry::Errc;
using ferry::Op;
using ferry::OpDraft;
using ferry::OpId;
namespace limits = ferry::limits;

using Bytes = std::vector<std::uint8_t>;
using ferry::test::pack_bin;
using ferry::test::pack_text;
using ferry::test::packed;
using ferry::test::Packer;

Bytes str(std::string_view text) {
  return packed([&](Packer& pk) { pack_text(pk, text); });
}
Bytes bin(std::size_t size, std::uint8_t fill) {
  return packed([&](Packer& pk) { pack_bin(pk, Bytes(size, fill)); });
}
Bytes u64(std::uint64_t value) {
  return packed([&](Packer& pk) { pk.pack_uint64(value); });
}
Bytes nil() {
  return packed([](Packer& pk) { pk.pack_nil(); });
}

OpId id_with(std::uint8_t fill) {
  OpId id{};
  id.fill(fill);
  return id;
}

Bytes deps_field(const std::vector<OpId>& deps) {
  return packed([&](Packer& pk) {
    pk.pack_array(static_cast<std::uint32_t>(deps.size()));
    for (const OpId& dep : deps) pack_bin(pk, Bytes(dep.begin(), dep.end()));
  });
}

std::vector<OpId> distinct_ids(std::size_t count) {
  std::vector<OpId> ids;
  for (std::size_t i = 0; i < count; ++i) {
    OpId id{};
    id[0] = static_cast<std::uint8_t>(i);
    id[1] = static_cast<std::uint8_t>(i >> 8);
    id[31] = 0xd5;
    ids.push_back(id);
  }
  return ids;
}

// A body map packed with msgpack::packer, as a writer would.
Bytes case_body() {
  return packed([](Packer& pk) {
    pk.pack_map(4);
    pack_text(pk, "place");
    pack_text(pk, "花鸟");
    pack_text(pk, "status");
    pack_text(pk, "open");
    pack_text(pk, "patients");
    pk.pack_uint32(3);
    pack_text(pk, "notes");
    pk.pack_array(2);
    pk.pack_nil();
    pk.pack_double(-1.5);
  });
}

// A body with one map entry {"field": <value>}.
template <class F>
Bytes body_with(F&& pack_value) {
  return packed([&](Packer& pk) {
    pk.pack_map(1);
    pack_text(pk, "field");
    pack_value(pk);
  });
}

// `maps` nested maps {"n": {"n": ... {"v": 1}}}; the body itself is the first. With an empty
// innermost map when leaf is false.
Bytes nested_maps(std::size_t maps, bool leaf) {
  return packed([&](Packer& pk) {
    for (std::size_t i = 1; i < maps; ++i) {
      pk.pack_map(1);
      pack_text(pk, "n");
    }
    if (leaf) {
      pk.pack_map(1);
      pack_text(pk, "v");
      pk.pack_uint32(1);
    } else {
      pk.pack_map(0);
    }
  });
}

// The body map holding arrays nested so that containers reach `depth` levels in all.
Bytes nested_arrays(std::size_t depth) {
  return packed([&](Packer& pk) {
    pk.pack_map(1);
    pack_text(pk, "a");
    for (std::size_t i = 2; i < depth; ++i) pk.pack_array(1);
    pk.pack_array(1);
    pk.pack_true();
  });
}

// ---- The envelope, one encoded msgpack element per field ----

enum Field : std::size_t {
  f_version,
  f_origin,
  f_channel,
  f_seq,
  f_prev,
  f_hlc,
  f_kind,
  f_key,
  f_deps,
  f_body,
  f_author,
  field_count
};

const char* field_names[] = {"version", "origin", "channel", "seq",  "prev",  "hlc",
                             "kind",    "key",    "deps",    "body", "author"};

ferry::NodeKey test_key() {
  ferry::Seed seed{};
  seed.fill(0x42);
  return ferry::NodeKey::from_seed(seed);
}

ferry::NodeKey other_key() {
  ferry::Seed seed{};
  seed.fill(0x24);
  return ferry::NodeKey::from_seed(seed);
}

constexpr std::uint64_t test_hlc = (std::uint64_t{1'700'000'000'000} << 16) | 5;

struct Envelope {
  std::vector<Bytes> fields;

  Envelope& set(Field f, Bytes bytes) {
    fields.at(f) = std::move(bytes);
    return *this;
  }
  Bytes encode() const {
    REQUIRE(fields.size() <= 15);
    Bytes out{static_cast<std::uint8_t>(0x90 + fields.size())};
    for (const Bytes& f : fields) out.insert(out.end(), f.begin(), f.end());
    return out;
  }
};

// A valid envelope of seq 1 by test_key().
Envelope valid_envelope() {
  const ferry::PublicKey origin = test_key().public_key();
  Envelope e;
  e.fields = {u64(1),
              packed([&](Packer& pk) { pack_bin(pk, Bytes(origin.begin(), origin.end())); }),
              str("station/huaniao"),
              u64(1),
              bin(32, 0),
              u64(test_hlc),
              str("case.submit"),
              str("case-2024-017"),
              deps_field({}),
              case_body(),
              str("王医生")};
  return e;
}

OpDraft case_draft() {
  OpDraft draft;
  draft.channel = "station/huaniao";
  draft.kind = "case.submit";
  draft.key = "case-2024-017";
  draft.body = case_body();
  draft.author = "王医生";
  return draft;
}

std::string describe(const ferry::Result<Op>& op) {
  return op ? std::string("decoded") : ferry::to_string(op.error());
}

// Decodes bytes that must be refused, and returns the error.
ferry::Error refused(const Bytes& bytes) {
  auto op = Op::decode(bytes);
  REQUIRE_FALSE(op);
  INFO("refused with " << describe(op));
  CHECK_FALSE(op.error().detail.empty());
  return op.error();
}

void check_refused(const Bytes& bytes, Errc code) {
  ferry::Error error = refused(bytes);
  INFO("error: " << ferry::to_string(error));
  CHECK(error.code == code);
}

void check_accepted(const Bytes& bytes) {
  auto op = Op::decode(bytes);
  INFO(describe(op));
  REQUIRE(op);
  CHECK(Bytes(op->bytes().begin(), op->bytes().end()) == bytes);
}

struct WrongType {
  Field field;
  Bytes bytes;
  const char* what;
};

// For each field, encodings of the wrong msgpack type (or of the wrong size).
std::vector<WrongType> wrong_types() {
  const Bytes map0 = packed([](Packer& pk) { pk.pack_map(0); });
  const Bytes array0 = packed([](Packer& pk) { pk.pack_array(0); });
  const Bytes minus1 = packed([](Packer& pk) { pk.pack_int64(-1); });
  // msgpack-c packs an integral double as an integer, so the float64 is written by hand.
  const Bytes float1{0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
  const Bytes yes = packed([](Packer& pk) { pk.pack_true(); });
  return {
      {f_version, str("1"), "string"},
      {f_version, minus1, "negative integer"},
      {f_version, float1, "float"},
      {f_version, nil(), "nil"},
      {f_origin, bin(31, 1), "31-byte bin"},
      {f_origin, bin(33, 1), "33-byte bin"},
      {f_origin, bin(0, 0), "empty bin"},
      {f_origin, str(std::string(32, 'o')), "32-byte string"},
      {f_origin, nil(), "nil"},
      {f_channel, u64(7), "integer"},
      {f_channel, bin(8, 'c'), "bin"},
      {f_channel, nil(), "nil"},
      {f_seq, str("1"), "string"},
      {f_seq, minus1, "negative integer"},
      {f_seq, float1, "float"},
      {f_seq, yes, "boolean"},
      {f_prev, bin(31, 0), "31-byte bin"},
      {f_prev, str(std::string(32, '\0')), "32-byte string"},
      {f_prev, nil(), "nil"},
      {f_hlc, str("5"), "string"},
      {f_hlc, minus1, "negative integer"},
      {f_hlc, float1, "float"},
      {f_kind, u64(1), "integer"},
      {f_kind, nil(), "nil"},
      {f_key, bin(4, 'k'), "bin"},
      {f_key, array0, "array"},
      {f_deps, u64(0), "integer"},
      {f_deps, nil(), "nil"},
      {f_deps, map0, "map"},
      {f_deps, bin(32, 1), "a bare id"},
      {f_deps, packed([](Packer& pk) {
         pk.pack_array(1);
         pack_bin(pk, Bytes(31, 1));
       }),
       "31-byte dep"},
      {f_deps, packed([](Packer& pk) {
         pk.pack_array(1);
         pack_text(pk, std::string(32, 'd'));
       }),
       "string dep"},
      {f_deps, packed([](Packer& pk) {
         pk.pack_array(1);
         pk.pack_nil();
       }),
       "nil dep"},
      {f_body, array0, "array"},
      {f_body, packed([](Packer& pk) {
         pk.pack_array(2);
         pack_text(pk, "a");
         pack_text(pk, "b");
       }),
       "array of strings"},
      {f_body, nil(), "nil"},
      {f_body, str("{}"), "string"},
      {f_body, bin(2, 0x80), "bin"},
      {f_author, u64(1), "integer"},
      {f_author, bin(3, 'a'), "bin"},
      {f_author, yes, "boolean"},
      {f_author, array0, "array"},
  };
}

}  // namespace

// ---- Valid ops ----

TEST_CASE("an op built from a draft signs, verifies, and decodes back to the very same bytes") {
  const ferry::NodeKey key = test_key();
  auto built = Op::build(key.public_key(), 1, OpId{}, test_hlc, case_draft());
  INFO(describe(built));
  REQUIRE(built);
  CHECK(built->id() == ferry::blake2b_256(built->bytes()));

  ferry::SignedOp signed_op = ferry::sign_op(*built, key);
  CHECK(ferry::verify_op(signed_op.op, signed_op.signature));

  auto decoded = Op::decode(signed_op.op.bytes());
  REQUIRE(decoded);
  CHECK(Bytes(decoded->bytes().begin(), decoded->bytes().end()) ==
        Bytes(built->bytes().begin(), built->bytes().end()));
  CHECK(decoded->id() == built->id());
  CHECK(ferry::verify_op(*decoded, signed_op.signature));

  const ferry::OpHeader& h = decoded->header();
  CHECK(h.version == ferry::envelope_version_1);
  CHECK(h.origin == key.public_key());
  CHECK(h.channel == "station/huaniao");
  CHECK(h.seq == 1);
  CHECK(h.prev == OpId{});
  CHECK(h.hlc == test_hlc);
  CHECK(h.kind == "case.submit");
  CHECK(h.key == "case-2024-017");
  CHECK(h.deps.empty());
  CHECK(h.author == std::optional<std::string>("王医生"));
  CHECK(Bytes(decoded->body().begin(), decoded->body().end()) == case_body());
  CHECK(Bytes(built->body().begin(), built->body().end()) == case_body());
}

TEST_CASE("build fills the header and body exactly as decode reads them back") {
  // build() does not decode what it encoded; this is what guarantees it need not.
  const ferry::NodeKey key = test_key();
  OpDraft with_deps = case_draft();
  with_deps.deps = distinct_ids(2);
  with_deps.author.reset();
  for (const OpDraft& draft : {case_draft(), with_deps}) {
    auto built = Op::build(key.public_key(), 7, id_with(0x42), test_hlc, draft);
    REQUIRE(built);
    auto decoded = Op::decode(built->bytes());
    REQUIRE(decoded);
    const ferry::OpHeader& b = built->header();
    const ferry::OpHeader& d = decoded->header();
    CHECK(b.version == d.version);
    CHECK(b.origin == d.origin);
    CHECK(b.channel == d.channel);
    CHECK(b.seq == d.seq);
    CHECK(b.prev == d.prev);
    CHECK(b.hlc == d.hlc);
    CHECK(b.kind == d.kind);
    CHECK(b.key == d.key);
    CHECK(b.deps == d.deps);
    CHECK(b.author == d.author);
    CHECK(Bytes(built->body().begin(), built->body().end()) ==
          Bytes(decoded->body().begin(), decoded->body().end()));
    CHECK(built->id() == decoded->id());
  }
}

TEST_CASE("an op is encoded as the documented 11-element msgpack array") {
  auto built = Op::build(test_key().public_key(), 1, OpId{}, test_hlc, case_draft());
  REQUIRE(built);
  CHECK(Bytes(built->bytes().begin(), built->bytes().end()) == valid_envelope().encode());
}

TEST_CASE("an op with deps, a prev and no author round trips through decode") {
  const ferry::NodeKey key = test_key();
  OpDraft draft = case_draft();
  draft.kind = "case.approve";
  draft.deps = distinct_ids(3);
  draft.author.reset();
  draft.body = packed([](Packer& pk) { pk.pack_map(0); });
  auto built = Op::build(key.public_key(), 42, id_with(0x99), 7, draft);
  INFO(describe(built));
  REQUIRE(built);
  auto decoded = Op::decode(built->bytes());
  REQUIRE(decoded);
  CHECK(decoded->id() == built->id());
  CHECK(decoded->header().seq == 42);
  CHECK(decoded->header().prev == id_with(0x99));
  CHECK(decoded->header().hlc == 7);
  CHECK(decoded->header().deps == draft.deps);
  CHECK_FALSE(decoded->header().author.has_value());
  CHECK(Bytes(decoded->body().begin(), decoded->body().end()) == draft.body);
  ferry::SignedOp signed_op = ferry::sign_op(*decoded, key);
  CHECK(ferry::verify_op(signed_op.op, signed_op.signature));
}

TEST_CASE("ops that differ in one field have different ids") {
  const ferry::PublicKey origin = test_key().public_key();
  auto a = Op::build(origin, 1, OpId{}, test_hlc, case_draft());
  auto b = Op::build(origin, 1, OpId{}, test_hlc + 1, case_draft());
  OpDraft other = case_draft();
  other.key = "case-2024-018";
  auto c = Op::build(origin, 1, OpId{}, test_hlc, other);
  REQUIRE(a);
  REQUIRE(b);
  REQUIRE(c);
  CHECK(a->id() != b->id());
  CHECK(a->id() != c->id());
  auto again = Op::build(origin, 1, OpId{}, test_hlc, case_draft());
  REQUIRE(again);
  CHECK(again->id() == a->id());  // encoding is deterministic
}

// ---- Signatures ----

TEST_CASE("the op signature covers the domain tag followed by the id") {
  OpId id = id_with(0xab);
  auto message = ferry::op_signing_message(id);
  std::string tag(ferry::op_signature_domain_v1);
  REQUIRE(message.size() == tag.size() + id.size());
  CHECK(std::string(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(tag.size())) ==
        "ferry-op-v1");
  CHECK(
      std::equal(id.begin(), id.end(), message.begin() + static_cast<std::ptrdiff_t>(tag.size())));
}

TEST_CASE("verify_op refuses a signature by another key or over other bytes") {
  const ferry::NodeKey key = test_key();
  auto op = Op::build(key.public_key(), 1, OpId{}, test_hlc, case_draft());
  REQUIRE(op);

  SECTION("signed by another key") {
    ferry::Signature other = other_key().sign(ferry::op_signing_message(op->id()));
    auto verified = ferry::verify_op(*op, other);
    REQUIRE_FALSE(verified);
    CHECK(verified.error().code == Errc::bad_signature);
  }
  SECTION("the id signed without the domain tag") {
    ferry::Signature bare = key.sign(op->id());
    auto verified = ferry::verify_op(*op, bare);
    REQUIRE_FALSE(verified);
    CHECK(verified.error().code == Errc::bad_signature);
  }
  SECTION("the signature of another op of the same origin") {
    auto second = Op::build(key.public_key(), 2, op->id(), test_hlc + 1, case_draft());
    REQUIRE(second);
    ferry::SignedOp signed_second = ferry::sign_op(*second, key);
    auto verified = ferry::verify_op(*op, signed_second.signature);
    REQUIRE_FALSE(verified);
    CHECK(verified.error().code == Errc::bad_signature);
  }
  SECTION("an op that claims another origin") {
    const ferry::NodeKey other = other_key();
    auto claimed = Op::build(other.public_key(), 1, OpId{}, test_hlc, case_draft());
    REQUIRE(claimed);
    ferry::Signature by_us = key.sign(ferry::op_signing_message(claimed->id()));
    auto verified = ferry::verify_op(*claimed, by_us);
    REQUIRE_FALSE(verified);
    CHECK(verified.error().code == Errc::bad_signature);
  }
}

TEST_CASE("changing any single byte of a signed op never yields a verified op") {
  const ferry::NodeKey key = test_key();
  OpDraft draft = case_draft();
  draft.deps = distinct_ids(2);
  auto op = Op::build(key.public_key(), 3, id_with(0x33), test_hlc, draft);
  REQUIRE(op);
  ferry::SignedOp signed_op = ferry::sign_op(*op, key);
  REQUIRE(ferry::verify_op(signed_op.op, signed_op.signature));
  const Bytes original(op->bytes().begin(), op->bytes().end());

  std::size_t decoded_count = 0;
  for (std::uint8_t flip : {std::uint8_t{0x01}, std::uint8_t{0x80}, std::uint8_t{0xff}}) {
    for (std::size_t i = 0; i < original.size(); ++i) {
      Bytes changed = original;
      changed[i] ^= flip;
      auto decoded = Op::decode(changed);
      if (!decoded) continue;
      INFO("byte " << i << " xor " << int{flip});
      ++decoded_count;
      REQUIRE(decoded->id() != op->id());
      auto verified = ferry::verify_op(*decoded, signed_op.signature);
      REQUIRE_FALSE(verified);
      CHECK(verified.error().code == Errc::bad_signature);
    }
  }
  // Most changes inside strings and ids still decode; they must be caught by the signature.
  CHECK(decoded_count > original.size());
}

// ---- The decoder corpus: every rejection is an Error ----

TEST_CASE("decode refuses every truncation of a valid op") {
  const Bytes bytes = valid_envelope().encode();
  REQUIRE(Op::decode(bytes));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    INFO("prefix of " << n << " of " << bytes.size() << " bytes");
    check_refused(Bytes(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n)),
                  Errc::malformed);
  }
}

TEST_CASE("decode rejects trailing bytes after the envelope") {
  const Bytes bytes = valid_envelope().encode();
  for (std::uint8_t extra : {std::uint8_t{0x00}, std::uint8_t{0xc0}, std::uint8_t{0x90}}) {
    Bytes longer = bytes;
    longer.push_back(extra);
    check_refused(longer, Errc::malformed);
  }
  Bytes twice = bytes;
  twice.insert(twice.end(), bytes.begin(), bytes.end());
  check_refused(twice, Errc::malformed);
}

TEST_CASE("decode rejects an envelope that is not a short array") {
  check_refused({}, Errc::malformed);
  check_refused({0x90}, Errc::malformed);                          // empty array
  check_refused({0x80}, Errc::malformed);                          // a map
  check_refused({0xc0}, Errc::malformed);                          // nil
  check_refused({0xdc, 0x00, 0x0b}, Errc::malformed);              // array16 of 11
  check_refused({0xdd, 0xff, 0xff, 0xff, 0xff}, Errc::malformed);  // array32, huge
  // The same fields behind an array16 header are refused: one encoding per envelope.
  Bytes bytes = valid_envelope().encode();
  bytes[0] = 0x0b;
  bytes.insert(bytes.begin(), {0xdc, 0x00});
  check_refused(bytes, Errc::malformed);
}

TEST_CASE("decode refuses an unknown envelope version and names it") {
  for (std::uint64_t version : {std::uint64_t{0}, std::uint64_t{2}, std::uint64_t{255}}) {
    INFO("version " << version);
    ferry::Error error = refused(valid_envelope().set(f_version, u64(version)).encode());
    CHECK(error.code == Errc::malformed);
    CHECK_THAT(error.detail,
               Catch::Contains("version") && Catch::Contains(std::to_string(version)));
  }
  // A future version may have another number of fields; the version is still what is named.
  Envelope short_v2 = valid_envelope().set(f_version, u64(2));
  short_v2.fields.resize(4);
  ferry::Error error = refused(short_v2.encode());
  CHECK_THAT(error.detail, Catch::Contains("version 2"));
}

TEST_CASE("decode refuses a version 1 envelope with 10 or 12 fields") {
  Envelope ten = valid_envelope();
  ten.fields.pop_back();
  check_refused(ten.encode(), Errc::malformed);
  Envelope twelve = valid_envelope();
  twelve.fields.push_back(nil());
  check_refused(twelve.encode(), Errc::malformed);
  Envelope one = valid_envelope();
  one.fields.resize(1);
  check_refused(one.encode(), Errc::malformed);
  // The array header must state the count the elements have: 11 elements behind a header of 10
  // or 12 are refused as well.
  for (std::uint8_t header : {std::uint8_t{0x9a}, std::uint8_t{0x9c}}) {
    Bytes bytes = valid_envelope().encode();
    bytes[0] = header;
    INFO("header " << int{header} << " before 11 elements");
    check_refused(bytes, Errc::malformed);
  }
}

TEST_CASE("decode refuses a wrong type in each field of the envelope") {
  for (const WrongType& c : wrong_types()) {
    INFO(field_names[c.field] << " as " << c.what);
    check_refused(valid_envelope().set(c.field, c.bytes).encode(), Errc::malformed);
  }
}

TEST_CASE("decode refuses seq 0, and a prev that does not fit the seq") {
  check_refused(valid_envelope().set(f_seq, u64(0)).encode(), Errc::malformed);
  check_refused(valid_envelope().set(f_seq, u64(0)).set(f_prev, bin(32, 7)).encode(),
                Errc::malformed);
  check_refused(valid_envelope().set(f_seq, u64(1)).set(f_prev, bin(32, 7)).encode(),
                Errc::malformed);
  Bytes almost_zero = bin(32, 0);
  almost_zero.back() = 1;
  check_refused(valid_envelope().set(f_seq, u64(1)).set(f_prev, almost_zero).encode(),
                Errc::malformed);
  check_refused(valid_envelope().set(f_seq, u64(2)).set(f_prev, bin(32, 0)).encode(),
                Errc::malformed);
  check_accepted(valid_envelope().set(f_seq, u64(2)).set(f_prev, bin(32, 7)).encode());
  check_accepted(valid_envelope().set(f_seq, u64(UINT64_MAX)).set(f_prev, bin(32, 7)).encode());
}

TEST_CASE("decode refuses invalid UTF-8 in every text field and in the body") {
  const std::string bad_texts[] = {
      "\xc0\x80",          // overlong
      "\xed\xa0\x80",      // surrogate
      "\xf4\x90\x80\x80",  // above U+10FFFF
      "\xe8\x8a",          // truncated
      "ok\x80",            // stray continuation
  };
  for (const std::string& bad : bad_texts) {
    INFO("bytes " << ferry::to_hex(ferry::as_bytes(bad)));
    for (Field f : {f_channel, f_kind, f_key, f_author}) {
      INFO("field " << field_names[f]);
      check_refused(valid_envelope().set(f, str(bad)).encode(), Errc::malformed);
    }
    INFO("body string value");
    check_refused(
        valid_envelope().set(f_body, body_with([&](Packer& pk) { pack_text(pk, bad); })).encode(),
        Errc::malformed);
    INFO("body map key");
    Bytes bad_key = packed([&](Packer& pk) {
      pk.pack_map(1);
      pack_text(pk, bad);
      pk.pack_nil();
    });
    check_refused(valid_envelope().set(f_body, bad_key).encode(), Errc::malformed);
    INFO("string nested in the body");
    Bytes nested = body_with([&](Packer& pk) {
      pk.pack_array(2);
      pack_text(pk, "fine");
      pk.pack_map(1);
      pack_text(pk, "x");
      pack_text(pk, bad);
    });
    check_refused(valid_envelope().set(f_body, nested).encode(), Errc::malformed);
  }
  // Multi-byte text is fine everywhere.
  check_accepted(valid_envelope()
                     .set(f_channel, str("station/嵊山"))
                     .set(f_kind, str("病例.提交"))
                     .set(f_key, str("花鸟-17"))
                     .encode());
}

TEST_CASE("decode refuses empty channel, kind, key and author, and control characters") {
  for (Field f : {f_channel, f_kind, f_key, f_author}) {
    INFO("field " << field_names[f]);
    check_refused(valid_envelope().set(f, str("")).encode(), Errc::malformed);
    check_refused(valid_envelope().set(f, str("line\nbreak")).encode(), Errc::malformed);
    check_refused(valid_envelope().set(f, str(std::string("nul\0byte", 8))).encode(),
                  Errc::malformed);
  }
  check_accepted(valid_envelope().set(f_author, nil()).encode());  // no author
}

TEST_CASE("decode accepts text fields exactly at their limit and refuses one byte more") {
  struct Case {
    Field field;
    std::size_t bytes_max;
  };
  for (Case c : {Case{f_channel, limits::channel_bytes_max}, Case{f_kind, limits::kind_bytes_max},
                 Case{f_key, limits::key_bytes_max}, Case{f_author, limits::author_bytes_max}}) {
    INFO("field " << field_names[c.field] << ", limit " << c.bytes_max);
    check_accepted(valid_envelope().set(c.field, str(std::string(c.bytes_max, 'x'))).encode());
    check_refused(valid_envelope().set(c.field, str(std::string(c.bytes_max + 1, 'x'))).encode(),
                  Errc::limit_exceeded);
    // The limit counts bytes, not characters: "花" is three bytes.
    std::string cjk;
    while (cjk.size() + 3 <= c.bytes_max) cjk += "花";
    cjk.append(c.bytes_max - cjk.size(), 'x');
    REQUIRE(cjk.size() == c.bytes_max);
    check_accepted(valid_envelope().set(c.field, str(cjk)).encode());
    check_refused(valid_envelope().set(c.field, str(cjk + "花")).encode(), Errc::limit_exceeded);
  }
}

TEST_CASE("decode accepts deps up to deps_max and refuses more, and duplicates") {
  check_accepted(valid_envelope().set(f_deps, deps_field(distinct_ids(limits::deps_max))).encode());
  check_refused(
      valid_envelope().set(f_deps, deps_field(distinct_ids(limits::deps_max + 1))).encode(),
      Errc::limit_exceeded);
  std::vector<OpId> dup = distinct_ids(5);
  dup.push_back(dup[2]);
  check_refused(valid_envelope().set(f_deps, deps_field(dup)).encode(), Errc::malformed);
  check_refused(valid_envelope().set(f_deps, deps_field({id_with(1), id_with(1)})).encode(),
                Errc::malformed);
}

TEST_CASE("decode refuses a body map with a key that is not a string") {
  const Bytes int_key = packed([](Packer& pk) {
    pk.pack_map(1);
    pk.pack_uint32(1);
    pack_text(pk, "one");
  });
  const Bytes bin_key = packed([](Packer& pk) {
    pk.pack_map(1);
    pack_bin(pk, Bytes{'k'});
    pk.pack_nil();
  });
  const Bytes nil_key = packed([](Packer& pk) {
    pk.pack_map(2);
    pack_text(pk, "fine");
    pk.pack_nil();
    pk.pack_nil();
    pk.pack_nil();
  });
  const Bytes nested_int_key = body_with([](Packer& pk) {
    pk.pack_map(1);
    pk.pack_int32(-3);
    pk.pack_true();
  });
  const Bytes map_key = packed([](Packer& pk) {
    pk.pack_map(1);
    pk.pack_map(0);
    pk.pack_nil();
  });
  for (const Bytes& body : {int_key, bin_key, nil_key, nested_int_key, map_key}) {
    INFO("body " << ferry::to_hex(body));
    check_refused(valid_envelope().set(f_body, body).encode(), Errc::malformed);
    CHECK_FALSE(ferry::validate_body(body));
  }
}

TEST_CASE("decode refuses a body holding an extension type") {
  const Bytes fixext1 = body_with([](Packer& pk) {
    pk.pack_ext(1, 7);
    pk.pack_ext_body("x", 1);
  });
  const Bytes ext8_empty = body_with([](Packer& pk) { pk.pack_ext(0, 7); });
  const Bytes timestamp = body_with([](Packer& pk) {
    pk.pack_ext(4, -1);  // the msgpack timestamp type
    pk.pack_ext_body("\0\0\0\1", 4);
  });
  const Bytes nested = body_with([](Packer& pk) {
    pk.pack_array(1);
    pk.pack_ext(2, 3);
    pk.pack_ext_body("ab", 2);
  });
  for (const Bytes& body : {fixext1, ext8_empty, timestamp, nested}) {
    INFO("body " << ferry::to_hex(body));
    check_refused(valid_envelope().set(f_body, body).encode(), Errc::malformed);
    auto checked = ferry::validate_body(body);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().code == Errc::malformed);
  }
  // An extension type in place of any other field is a wrong type.
  const Bytes ext = packed([](Packer& pk) {
    pk.pack_ext(1, 1);
    pk.pack_ext_body("a", 1);
  });
  for (Field f :
       {f_version, f_origin, f_channel, f_seq, f_prev, f_hlc, f_kind, f_key, f_deps, f_author}) {
    INFO("field " << field_names[f]);
    check_refused(valid_envelope().set(f, ext).encode(), Errc::malformed);
  }
}

TEST_CASE("decode accepts a body nested body_depth_max deep and refuses one level more") {
  const std::size_t depth_max = limits::body_depth_max;
  for (bool leaf : {false, true}) {
    INFO((leaf ? "innermost map holds a value" : "innermost map is empty"));
    INFO("maps nested " << depth_max);
    check_accepted(valid_envelope().set(f_body, nested_maps(depth_max, leaf)).encode());
    CHECK(ferry::validate_body(nested_maps(depth_max, leaf)));
    INFO("maps nested " << depth_max + 1);
    check_refused(valid_envelope().set(f_body, nested_maps(depth_max + 1, leaf)).encode(),
                  Errc::limit_exceeded);
    CHECK_FALSE(ferry::validate_body(nested_maps(depth_max + 1, leaf)));
  }
  check_accepted(valid_envelope().set(f_body, nested_arrays(depth_max)).encode());
  check_refused(valid_envelope().set(f_body, nested_arrays(depth_max + 1)).encode(),
                Errc::limit_exceeded);
  // Far deeper than any limit: refused without exhausting the stack.
  check_refused(valid_envelope().set(f_body, nested_maps(10'000, true)).encode(),
                Errc::limit_exceeded);
}

TEST_CASE("decode refuses huge declared lengths without allocating them") {
  const Bytes str32_huge{0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b'};
  const Bytes bin32_huge{0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
  const Bytes array32_huge{0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
  const Bytes map32_huge{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'k', 0xc0};
  const Bytes str16_short{0xda, 0x01, 0x00, 'a'};  // declares 256 bytes, holds 1
  for (Field f : {f_origin, f_channel, f_prev, f_kind, f_key, f_author}) {
    INFO("field " << field_names[f]);
    refused(valid_envelope().set(f, str32_huge).encode());
    refused(valid_envelope().set(f, bin32_huge).encode());
    refused(valid_envelope().set(f, str16_short).encode());
  }
  refused(valid_envelope().set(f_deps, array32_huge).encode());
  refused(valid_envelope().set(f_body, map32_huge).encode());
  Bytes body_array = Bytes{0x81, 0xa1, 'a'};
  body_array.insert(body_array.end(), array32_huge.begin(), array32_huge.end());
  refused(valid_envelope().set(f_body, body_array).encode());
  Bytes body_map = Bytes{0x81, 0xa1, 'm'};
  body_map.insert(body_map.end(), map32_huge.begin(), map32_huge.end());
  refused(valid_envelope().set(f_body, body_map).encode());
  Bytes body_str = Bytes{0x81, 0xa1, 's'};
  body_str.insert(body_str.end(), str32_huge.begin(), str32_huge.end());
  refused(valid_envelope().set(f_body, body_str).encode());
  Bytes body_ext = Bytes{0x81, 0xa1, 'e', 0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00};
  refused(valid_envelope().set(f_body, body_ext).encode());
  // The huge length as the last thing in the buffer, nothing after it.
  Envelope cut = valid_envelope().set(f_author, {0xdb, 0xff, 0xff, 0xff, 0xff});
  refused(cut.encode());
}

TEST_CASE("decode refuses a container with more entries than the body limit") {
  const std::size_t items_max = limits::body_container_items_max;
  auto array_of = [](std::size_t n) {
    return body_with([&](Packer& pk) {
      pk.pack_array(static_cast<std::uint32_t>(n));
      for (std::size_t i = 0; i < n; ++i) pk.pack_nil();
    });
  };
  check_accepted(valid_envelope().set(f_body, array_of(items_max)).encode());
  check_refused(valid_envelope().set(f_body, array_of(items_max + 1)).encode(),
                Errc::limit_exceeded);
}

TEST_CASE("decode refuses an op larger than op_bytes_max and accepts one exactly at it") {
  auto with_blob = [](std::size_t n) {
    return valid_envelope()
        .set(f_body, body_with([&](Packer& pk) { pack_bin(pk, Bytes(n, 0x5a)); }))
        .encode();
  };
  // bin16 headers hold from 256 to 65535 bytes, so the size grows one for one with the blob.
  const std::size_t probe = 1000;
  const std::size_t overhead = with_blob(probe).size() - probe;
  const std::size_t blob = limits::op_bytes_max - overhead;
  REQUIRE(blob < 65536);
  REQUIRE(with_blob(blob).size() == limits::op_bytes_max);
  check_accepted(with_blob(blob));
  check_refused(with_blob(blob + 1), Errc::limit_exceeded);
  check_refused(with_blob(limits::op_bytes_max * 2), Errc::limit_exceeded);

  // Build refuses a draft that would encode too large.
  OpDraft draft = case_draft();
  draft.body = body_with([&](Packer& pk) { pack_bin(pk, Bytes(blob + 1, 0x5a)); });
  auto built = Op::build(test_key().public_key(), 1, OpId{}, test_hlc, draft);
  REQUIRE_FALSE(built);
  CHECK(built.error().code == Errc::limit_exceeded);
  draft.body = body_with([&](Packer& pk) { pack_bin(pk, Bytes(blob, 0x5a)); });
  CHECK(Op::build(test_key().public_key(), 1, OpId{}, test_hlc, draft));
}

TEST_CASE("build checks a local draft as strictly as decode checks a remote op") {
  const ferry::PublicKey origin = test_key().public_key();
  OpDraft draft = case_draft();
  SECTION("empty channel") { draft.channel.clear(); }
  SECTION("oversize key") { draft.key = std::string(limits::key_bytes_max + 1, 'k'); }
  SECTION("invalid UTF-8 kind") { draft.kind = "\xff"; }
  SECTION("body that is not a map") { draft.body = str("not a map"); }
  SECTION("empty body") { draft.body.clear(); }
  SECTION("body with trailing bytes") { draft.body.push_back(0xc0); }
  SECTION("duplicate deps") { draft.deps = {id_with(1), id_with(1)}; }
  SECTION("empty author") { draft.author = ""; }
  auto built = Op::build(origin, 1, OpId{}, test_hlc, draft);
  REQUIRE_FALSE(built);
  CHECK_FALSE(built.error().detail.empty());
}

TEST_CASE("build refuses a feed position that breaks the chain rule") {
  const ferry::PublicKey origin = test_key().public_key();
  auto seq0 = Op::build(origin, 0, OpId{}, test_hlc, case_draft());
  REQUIRE_FALSE(seq0);
  CHECK(seq0.error().code == Errc::malformed);
  auto no_prev = Op::build(origin, 2, OpId{}, test_hlc, case_draft());
  REQUIRE_FALSE(no_prev);
  CHECK(no_prev.error().code == Errc::malformed);
  auto first_with_prev = Op::build(origin, 1, id_with(3), test_hlc, case_draft());
  REQUIRE_FALSE(first_with_prev);
  CHECK(first_with_prev.error().code == Errc::malformed);
}

TEST_CASE("validate_body accepts one map and refuses anything else") {
  CHECK(ferry::validate_body(case_body()));
  CHECK(ferry::validate_body(packed([](Packer& pk) { pk.pack_map(0); })));
  const Bytes refused_bodies[] = {
      {},
      packed([](Packer& pk) { pk.pack_array(0); }),
      packed([](Packer& pk) {
        pk.pack_array(1);
        pack_text(pk, "x");
      }),
      str("body"),
      u64(3),
      nil(),
      bin(4, 1),
      {0x81, 0xa1, 'k'},  // truncated
      {0xc1},             // a byte msgpack never uses
  };
  for (const Bytes& body : refused_bodies) {
    INFO("body " << ferry::to_hex(body));
    auto checked = ferry::validate_body(body);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().code == Errc::malformed);
  }
  Bytes trailing = case_body();
  trailing.push_back(0xc0);
  auto checked = ferry::validate_body(trailing);
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == Errc::malformed);
  Bytes two_maps = case_body();
  two_maps.insert(two_maps.end(), two_maps.begin(), two_maps.end());
  CHECK_FALSE(ferry::validate_body(two_maps));
  auto huge = ferry::validate_body(Bytes(limits::op_bytes_max + 1, 0x80));
  REQUIRE_FALSE(huge);
  CHECK(huge.error().code == Errc::limit_exceeded);
}

// ---- Random input ----

TEST_CASE("decode returns an error for random bytes and never crashes") {
  // Fixed by default; `--rng-seed N` explores other seeds.
  const std::uint32_t seed = 0xfe77u ^ Catch::rngSeed();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 300);
  const Bytes valid = valid_envelope().encode();
  std::uniform_int_distribution<std::size_t> prefix(1, valid.size() - 1);

  for (int round = 0; round < 20000; ++round) {
    Bytes bytes;
    switch (round % 3) {
      case 0:  // anything at all
        break;
      case 1:  // an envelope header, then noise
        bytes.push_back(static_cast<std::uint8_t>(0x90 + byte(rng) % 16));
        break;
      default:  // a valid start, then noise: reaches the later fields
        bytes.assign(valid.begin(), valid.begin() + static_cast<std::ptrdiff_t>(prefix(rng)));
        break;
    }
    for (std::size_t n = length(rng); n > 0; --n)
      bytes.push_back(static_cast<std::uint8_t>(byte(rng)));
    auto op = Op::decode(bytes);
    if (op || op.error().detail.empty()) {  // the message is built only on failure
      FAIL("round " << round << " gave " << describe(op) << " for " << ferry::to_hex(bytes));
    }
  }
}

TEST_CASE("decode of randomly mutated ops never yields an op the signature covers") {
  const std::uint32_t seed = 0x3a7a7eu ^ Catch::rngSeed();
  CAPTURE(seed);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  const ferry::NodeKey key = test_key();
  OpDraft draft = case_draft();
  draft.deps = distinct_ids(2);
  auto op = Op::build(key.public_key(), 9, id_with(9), test_hlc, draft);
  REQUIRE(op);
  const ferry::SignedOp signed_op = ferry::sign_op(*op, key);
  const Bytes original(op->bytes().begin(), op->bytes().end());
  std::uniform_int_distribution<std::size_t> position(0, original.size() - 1);
  std::uniform_int_distribution<int> edits(1, 4);

  for (int round = 0; round < 3000; ++round) {
    Bytes bytes = original;
    for (int e = edits(rng); e > 0; --e) {
      std::size_t at = position(rng) % bytes.size();
      switch (byte(rng) % 3) {
        case 0:
          bytes[at] = static_cast<std::uint8_t>(byte(rng));
          break;
        case 1:
          bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                       static_cast<std::uint8_t>(byte(rng)));
          break;
        default:
          bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(at));
          break;
      }
    }
    if (bytes == original) continue;
    auto decoded = Op::decode(bytes);
    if (!decoded) continue;
    INFO("round " << round << ", bytes " << ferry::to_hex(bytes));
    REQUIRE(Bytes(decoded->bytes().begin(), decoded->bytes().end()) == bytes);
    REQUIRE(decoded->id() == ferry::blake2b_256(bytes));
    REQUIRE_FALSE(ferry::verify_op(*decoded, signed_op.signature));
  }
}
