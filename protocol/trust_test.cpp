#include "protocol/trust.h"

#include <sodium.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdint>
#include <functional>
#include <msgpack.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/hex.h"
#include "protocol/limits.h"
#include "protocol/merge.h"
#include "protocol/node_key.h"
#include "protocol/op.h"
#include "tests/support/test_support.h"

namespace {

using ferry::Errc;
using ferry::NodeKey;
using ferry::Op;
using ferry::OpId;
using ferry::PublicKey;
using ferry::RecordState;
using ferry::TrustEntry;
using ferry::TrustView;

using Bytes = std::vector<std::uint8_t>;
using ferry::test::pack_text;
using ferry::test::packed;
using ferry::test::Packer;
using Patterns = std::vector<std::string>;

// ---- Keys ----

NodeKey node_key(std::uint8_t fill) {
  ferry::Seed seed{};
  seed.fill(fill);
  return NodeKey::from_seed(seed);
}

PublicKey key_of(std::uint8_t fill) { return node_key(fill).public_key(); }

// The encoding of -A for the point A: the same y, the sign bit of x flipped.
PublicKey negated(PublicKey key) {
  key[31] ^= 0x80;
  return key;
}

void pack_patterns(Packer& pk, const Patterns& patterns) {
  pk.pack_array(static_cast<std::uint32_t>(patterns.size()));
  for (const std::string& p : patterns) pack_text(pk, p);
}

// One entry of a crafted map: its key and how to pack its value.
struct Field {
  std::string name;
  std::function<void(Packer&)> pack;
};
using Fields = std::vector<Field>;

Field text_field(std::string name, std::string value) {
  return {std::move(name), [value](Packer& pk) { pack_text(pk, value); }};
}

Field patterns_field(std::string name, Patterns value) {
  return {std::move(name), [value](Packer& pk) { pack_patterns(pk, value); }};
}

Field bool_field(std::string name, bool value) {
  return {std::move(name), [value](Packer& pk) { pk.pack(value); }};
}

// The five fields of a valid station entry, in encode order.
Fields station_fields() {
  return {text_field("name", "huaniao"), text_field("role", "station"),
          patterns_field("read", {"station/huaniao", "broadcast", "ferry/trust"}),
          patterns_field("write", {"station/huaniao"}), bool_field("revoked", false)};
}

void pack_fields(Packer& pk, const Fields& fields) {
  pk.pack_map(static_cast<std::uint32_t>(fields.size()));
  for (const Field& f : fields) {
    pack_text(pk, f.name);
    f.pack(pk);
  }
}

// A body {"set": {fields...}}.
Bytes set_body(const Fields& fields) {
  return packed([&](Packer& pk) {
    pk.pack_map(1);
    pack_text(pk, "set");
    pack_fields(pk, fields);
  });
}

Fields without(Fields fields, std::string_view name) {
  std::erase_if(fields, [&](const Field& f) { return f.name == name; });
  return fields;
}

Fields replaced(Fields fields, Field field) {
  for (Field& f : fields) {
    if (f.name == field.name) f = field;
  }
  return fields;
}

Fields with(Fields fields, Field field) {
  fields.push_back(std::move(field));
  return fields;
}

Patterns numbered(std::size_t count) {
  Patterns patterns;
  for (std::size_t i = 0; i < count; ++i) patterns.push_back("station/s" + std::to_string(i));
  return patterns;
}

Errc parse_error(const Bytes& body) {
  auto parsed = ferry::parse_trust_body(key_of(1), body);
  REQUIRE_FALSE(parsed.has_value());
  INFO(parsed.error().detail);
  CHECK_FALSE(parsed.error().detail.empty());
  return parsed.error().code;
}

// ---- Trust records through the merge ----

// The ops one writer appends to one trust record, folded as storage folds them.
class TrustRecord {
 public:
  TrustRecord(const NodeKey& writer, std::string key) : writer_(writer), key_(std::move(key)) {}

  void write(std::uint64_t hlc, Bytes body) {
    std::vector<OpId> deps;
    std::vector<ferry::DepContext> dep_contexts;
    if (last_) {
      deps.push_back(last_->id);
      dep_contexts.push_back({last_->dot(), last_context_});
    }
    ferry::OpDraft draft{std::string(ferry::trust_channel),
                         std::string(ferry::trust_kind),
                         key_,
                         deps,
                         std::move(body),
                         std::nullopt};
    std::uint64_t seq = last_ ? last_->seq + 1 : 1;
    OpId prev = last_ ? last_->id : OpId{};
    auto op = Op::build(writer_.public_key(), seq, prev, hlc, draft);
    REQUIRE(op);
    ferry::SignedOp signed_op = ferry::sign_op(std::move(*op), writer_);
    REQUIRE(ferry::verify_op(signed_op.op, signed_op.signature));
    ferry::MergeOp merge = ferry::merge_op_of(signed_op.op);
    ferry::Context context = ferry::context_of(writer_.public_key(), seq, dep_contexts);
    ferry::apply(state_, merge, context);
    last_ = std::move(merge);
    last_context_ = std::move(context);
  }

  const RecordState& state() const { return state_; }
  const std::string& key() const { return key_; }

 private:
  const NodeKey& writer_;
  std::string key_;
  RecordState state_;
  std::optional<ferry::MergeOp> last_;
  ferry::Context last_context_;
};

}  // namespace

// ---- Patterns ----

TEST_CASE("check_pattern accepts channel names and prefixes that end in one star", "[trust]") {
  for (std::string_view p : {"station/huaniao", "broadcast", "ferry/trust", "station/*", "*",
                             "station*", "a b", "\xe8\x88\xb9/*"}) {
    INFO(p);
    CHECK(ferry::check_pattern(p));
  }
  std::string longest(ferry::limits::channel_bytes_max, 'c');
  CHECK(ferry::check_pattern(longest));
  longest.back() = '*';
  CHECK(ferry::check_pattern(longest));
}

TEST_CASE("check_pattern refuses what no channel is and stars before the end", "[trust]") {
  for (std::string_view p :
       {std::string_view(""), std::string_view("a*b"), std::string_view("**"),
        std::string_view("*x"), std::string_view("station/**"), std::string_view("a\nb"),
        std::string_view("a\x1f"), std::string_view("\xff/*"), std::string_view("a\0b", 3)}) {
    INFO(p);
    auto checked = ferry::check_pattern(p);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().code == Errc::malformed);
  }
  std::string too_long(ferry::limits::channel_bytes_max + 1, 'c');
  auto checked = ferry::check_pattern(too_long);
  REQUIRE_FALSE(checked);
  CHECK(checked.error().code == Errc::limit_exceeded);
}

TEST_CASE("an exact pattern matches only the channel it names", "[trust]") {
  CHECK(ferry::pattern_matches("broadcast", "broadcast"));
  CHECK_FALSE(ferry::pattern_matches("broadcast", "broadcast2"));
  CHECK_FALSE(ferry::pattern_matches("broadcast", "broad"));
  CHECK_FALSE(ferry::pattern_matches("broadcast", "Broadcast"));
  CHECK_FALSE(ferry::pattern_matches("station/a", "station/ab"));
}

TEST_CASE("a prefix pattern matches every channel that starts with its prefix", "[trust]") {
  CHECK(ferry::pattern_matches("station/*", "station/huaniao"));
  CHECK(ferry::pattern_matches("station/*", "station/a/b"));
  CHECK(ferry::pattern_matches("station/*", "station/"));
  CHECK_FALSE(ferry::pattern_matches("station/*", "station"));
  CHECK_FALSE(ferry::pattern_matches("station/*", "stations/a"));
  CHECK_FALSE(ferry::pattern_matches("station/*", "broadcast"));
  CHECK(ferry::pattern_matches("station*", "stations/a"));
  for (std::string_view channel : {"broadcast", "ferry/trust", "station/huaniao", "x"}) {
    CHECK(ferry::pattern_matches("*", channel));
  }
}

TEST_CASE("any_matches asks each pattern, and an empty list matches nothing", "[trust]") {
  Patterns patterns = {"broadcast", "station/*"};
  CHECK(ferry::any_matches(patterns, "broadcast"));
  CHECK(ferry::any_matches(patterns, "station/huaniao"));
  CHECK_FALSE(ferry::any_matches(patterns, "ferry/trust"));
  CHECK_FALSE(ferry::any_matches({}, "broadcast"));
}

TEST_CASE("parse_pattern_list splits at commas and drops spaces around items", "[trust]") {
  auto one = ferry::parse_pattern_list("broadcast");
  REQUIRE(one);
  CHECK(*one == Patterns{"broadcast"});
  auto list = ferry::parse_pattern_list(" station/* , broadcast,ferry/trust ");
  REQUIRE(list);
  CHECK(*list == Patterns{"station/*", "broadcast", "ferry/trust"});
  auto none = ferry::parse_pattern_list("");
  REQUIRE(none);
  CHECK(none->empty());
}

TEST_CASE("parse_pattern_list refuses empty items and bad patterns", "[trust]") {
  for (std::string_view text : {"a,,b", ",a", "a,", " , a", ",", " ", "a,b*c", "a,*x"}) {
    INFO(text);
    auto list = ferry::parse_pattern_list(text);
    REQUIRE_FALSE(list);
    CHECK(list.error().code == Errc::malformed);
  }
}

TEST_CASE("parse_pattern_list takes at most trust_patterns_max patterns", "[trust]") {
  auto join = [](const Patterns& patterns) {
    std::string text;
    for (const std::string& p : patterns) text += (text.empty() ? "" : ",") + p;
    return text;
  };
  auto at_max = ferry::parse_pattern_list(join(numbered(ferry::trust_patterns_max)));
  REQUIRE(at_max);
  CHECK(at_max->size() == ferry::trust_patterns_max);
  auto over = ferry::parse_pattern_list(join(numbered(ferry::trust_patterns_max + 1)));
  REQUIRE_FALSE(over);
  CHECK(over.error().code == Errc::limit_exceeded);
}

// ---- Names, roles and defaults ----

TEST_CASE("node names follow the config rule and roles are station, relay or hub", "[trust]") {
  for (std::string_view name : {"huaniao", "a.b_c-9", "A", "Zhoushan-hub.1"}) {
    CHECK(ferry::check_node_name(name));
  }
  CHECK(ferry::check_node_name(std::string(ferry::node_name_bytes_max, 'n')));
  for (std::string_view name : {"", "a/b", "a b", "a*", "\xe8\x88\xb9", "a\n"}) {
    INFO(name);
    auto checked = ferry::check_node_name(name);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().code == Errc::malformed);
  }
  CHECK_FALSE(ferry::check_node_name(std::string(ferry::node_name_bytes_max + 1, 'n')));
  for (std::string_view role : {"station", "relay", "hub"}) CHECK(ferry::check_role(role));
  for (std::string_view role : {"", "admin", "Station", "hub "}) {
    auto checked = ferry::check_role(role);
    REQUIRE_FALSE(checked);
    CHECK(checked.error().code == Errc::malformed);
  }
}

TEST_CASE("default entries give each role its channels", "[trust]") {
  const PublicKey key = key_of(7);
  TrustEntry station = ferry::default_entry(key, "huaniao", "station");
  CHECK(station.key == key);
  CHECK(station.name == "huaniao");
  CHECK(station.role == "station");
  CHECK(station.read == Patterns{"station/huaniao", "broadcast", "ferry/trust"});
  CHECK(station.write == Patterns{"station/huaniao"});
  CHECK_FALSE(station.revoked);
  CHECK(ferry::check_entry(station));

  TrustEntry relay = ferry::default_entry(key, "dinghai", "relay");
  CHECK(relay.read == Patterns{"station/*", "broadcast", "ferry/trust"});
  CHECK(relay.write == Patterns{"station/dinghai"});
  CHECK(ferry::check_entry(relay));

  TrustEntry hub = ferry::default_entry(key, "ningbo", "hub");
  CHECK(hub.read == Patterns{"*"});
  CHECK(hub.write == Patterns{"*"});
  CHECK(ferry::check_entry(hub));
}

TEST_CASE("a default entry for an unknown role or a bad name has no rights and fails check_entry",
          "[trust]") {
  TrustEntry unknown = ferry::default_entry(key_of(7), "huaniao", "admin");
  CHECK(unknown.read.empty());
  CHECK(unknown.write.empty());
  CHECK(ferry::check_entry(unknown).error().code == Errc::malformed);
  TrustEntry bad_name = ferry::default_entry(key_of(7), "hua niao", "station");
  CHECK(ferry::check_entry(bad_name).error().code == Errc::malformed);
  TrustEntry bad_pattern = ferry::default_entry(key_of(7), "huaniao", "station");
  bad_pattern.write.push_back("a*b");
  CHECK(ferry::check_entry(bad_pattern).error().code == Errc::malformed);
  TrustEntry too_many = ferry::default_entry(key_of(7), "huaniao", "station");
  too_many.read = numbered(ferry::trust_patterns_max + 1);
  CHECK(ferry::check_entry(too_many).error().code == Errc::limit_exceeded);
}

// ---- Bodies ----

TEST_CASE("a trust body is {set: {name, role, read, write, revoked}} in that order", "[trust]") {
  TrustEntry entry = ferry::default_entry(key_of(7), "huaniao", "station");
  Bytes body = ferry::encode_trust_body(entry);
  CHECK(body == set_body(station_fields()));
  CHECK(ferry::validate_body(body));
  CHECK(ferry::validate_merge_body(body));
}

TEST_CASE("trust bodies round trip through encode and parse", "[trust]") {
  const PublicKey key = key_of(7);
  std::vector<TrustEntry> entries = {ferry::default_entry(key, "huaniao", "station"),
                                     ferry::default_entry(key, "dinghai", "relay"),
                                     ferry::default_entry(key, "ningbo", "hub")};
  TrustEntry revoked = entries[0];
  revoked.revoked = true;
  entries.push_back(revoked);
  TrustEntry no_rights = ferry::default_entry(key, "x", "relay");
  no_rights.read.clear();
  no_rights.write.clear();
  entries.push_back(no_rights);
  TrustEntry full = ferry::default_entry(key, std::string(ferry::node_name_bytes_max, 'n'), "hub");
  full.read = numbered(ferry::trust_patterns_max);
  full.write = {std::string(ferry::limits::channel_bytes_max - 1, 'w') + "*"};
  entries.push_back(full);
  for (const TrustEntry& entry : entries) {
    INFO(entry.name << " " << entry.role);
    REQUIRE(ferry::check_entry(entry));
    auto parsed = ferry::parse_trust_body(key, ferry::encode_trust_body(entry));
    REQUIRE(parsed);
    CHECK(*parsed == entry);
  }
}

TEST_CASE("parse_trust_body names the key it is given", "[trust]") {
  auto parsed = ferry::parse_trust_body(key_of(9), set_body(station_fields()));
  REQUIRE(parsed);
  CHECK(parsed->key == key_of(9));
}

TEST_CASE("parse_trust_body refuses bodies that are not one msgpack map", "[trust]") {
  CHECK(parse_error({}) == Errc::malformed);
  CHECK(parse_error({0xc1}) == Errc::malformed);  // never used in msgpack
  CHECK(parse_error(packed([](Packer& pk) { pk.pack_array(0); })) == Errc::malformed);
  Bytes trailing = set_body(station_fields());
  trailing.push_back(0xc0);
  CHECK(parse_error(trailing) == Errc::malformed);
  Bytes truncated = set_body(station_fields());
  truncated.pop_back();
  CHECK(parse_error(truncated) == Errc::malformed);
}

TEST_CASE("parse_trust_body wants exactly one part, set, holding a map", "[trust]") {
  CHECK(parse_error(packed([](Packer& pk) { pk.pack_map(0); })) == Errc::malformed);
  CHECK(parse_error(packed([](Packer& pk) {
          pk.pack_map(2);
          pack_text(pk, "set");
          pack_fields(pk, station_fields());
          pack_text(pk, "inc");
          pack_fields(pk, {});
        })) == Errc::malformed);
  CHECK(parse_error(packed([](Packer& pk) {
          pk.pack_map(2);
          pack_text(pk, "set");
          pack_fields(pk, station_fields());
          pack_text(pk, "set");
          pack_fields(pk, station_fields());
        })) == Errc::malformed);
  CHECK(parse_error(packed([](Packer& pk) {
          pk.pack_map(1);
          pack_text(pk, "set");
          pack_patterns(pk, {"name"});
        })) == Errc::malformed);
  CHECK(parse_error(packed([](Packer& pk) {
          pk.pack_map(1);
          pack_text(pk, "entry");
          pack_fields(pk, station_fields());
        })) == Errc::malformed);
}

TEST_CASE("parse_trust_body refuses a missing, unknown or repeated field", "[trust]") {
  for (std::string_view name : {"name", "role", "read", "write", "revoked"}) {
    INFO(name);
    CHECK(parse_error(set_body(without(station_fields(), name))) == Errc::malformed);
    Fields twice = station_fields();
    for (const Field& f : station_fields()) {
      if (f.name == name) twice.push_back(f);
    }
    CHECK(parse_error(set_body(twice)) == Errc::malformed);
  }
  CHECK(parse_error(set_body(with(station_fields(), text_field("note", "x")))) == Errc::malformed);
  CHECK(parse_error(set_body({})) == Errc::malformed);
}

TEST_CASE("parse_trust_body refuses fields of the wrong type", "[trust]") {
  auto as_int = [](std::string name) {
    return Field{std::move(name), [](Packer& pk) { pk.pack_int(1); }};
  };
  for (std::string_view name : {"name", "role", "read", "write", "revoked"}) {
    INFO(name);
    CHECK(parse_error(set_body(replaced(station_fields(), as_int(std::string(name))))) ==
          Errc::malformed);
  }
  auto nil_revoked = Field{"revoked", [](Packer& pk) { pk.pack_nil(); }};
  CHECK(parse_error(set_body(replaced(station_fields(), nil_revoked))) == Errc::malformed);
  auto text_read = text_field("read", "broadcast");
  CHECK(parse_error(set_body(replaced(station_fields(), text_read))) == Errc::malformed);
  auto int_in_write = Field{"write", [](Packer& pk) {
                              pk.pack_array(2);
                              pack_text(pk, "broadcast");
                              pk.pack_int(3);
                            }};
  CHECK(parse_error(set_body(replaced(station_fields(), int_in_write))) == Errc::malformed);
  auto bin_name = Field{"name", [](Packer& pk) {
                          pk.pack_bin(1);
                          pk.pack_bin_body("a", 1);
                        }};
  CHECK(parse_error(set_body(replaced(station_fields(), bin_name))) == Errc::malformed);
}

TEST_CASE("parse_trust_body refuses bad names, unknown roles and bad patterns", "[trust]") {
  for (Field bad : {text_field("name", ""), text_field("name", "hua niao"),
                    text_field("name", std::string(ferry::node_name_bytes_max + 1, 'n')),
                    text_field("role", "admin"), text_field("role", "Hub"),
                    patterns_field("read", {"broadcast", "a*b"}), patterns_field("write", {""}),
                    patterns_field("write", {"x\ty"})}) {
    INFO(bad.name);
    CHECK(parse_error(set_body(replaced(station_fields(), bad))) == Errc::malformed);
  }
}

TEST_CASE("parse_trust_body bounds the patterns at the limit and one past it", "[trust]") {
  auto at_max = ferry::parse_trust_body(
      key_of(1), set_body(replaced(station_fields(),
                                   patterns_field("read", numbered(ferry::trust_patterns_max)))));
  CHECK(at_max);
  CHECK(parse_error(set_body(replaced(
            station_fields(), patterns_field("write", numbered(ferry::trust_patterns_max + 1))))) ==
        Errc::limit_exceeded);
  Patterns longest = {std::string(ferry::limits::channel_bytes_max, 'c')};
  CHECK(ferry::parse_trust_body(
      key_of(1), set_body(replaced(station_fields(), patterns_field("read", longest)))));
  Patterns too_long = {std::string(ferry::limits::channel_bytes_max + 1, 'c')};
  CHECK(parse_error(set_body(replaced(station_fields(), patterns_field("read", too_long)))) ==
        Errc::limit_exceeded);
}

// ---- Records ----

TEST_CASE("entry_from_record shows a merged trust record, and a later revoke flips it", "[trust]") {
  NodeKey authority = node_key(0xa0);
  const PublicKey subject = key_of(7);
  TrustRecord record(authority, ferry::to_hex(subject));
  TrustEntry entry = ferry::default_entry(subject, "huaniao", "station");
  record.write(1000, ferry::encode_trust_body(entry));
  auto shown = ferry::entry_from_record(record.key(), record.state());
  REQUIRE(shown);
  CHECK(*shown == entry);

  TrustEntry revoked = entry;
  revoked.revoked = true;
  record.write(2000, ferry::encode_trust_body(revoked));
  CHECK(record.state().ops == 2);
  auto after = ferry::entry_from_record(record.key(), record.state());
  REQUIRE(after);
  CHECK(*after == revoked);

  TrustView view(authority.public_key());
  view.put(*shown);
  CHECK(view.admitted(subject));
  view.put(*after);
  CHECK_FALSE(view.admitted(subject));
  CHECK_FALSE(view.may_read(subject, "station/huaniao"));
}

TEST_CASE("entry_from_record refuses a record key that is not lower-case hex of a key", "[trust]") {
  NodeKey authority = node_key(0xa0);
  std::string hex = ferry::to_hex(key_of(7));
  TrustRecord record(authority, hex);
  record.write(1000, set_body(station_fields()));
  REQUIRE(ferry::entry_from_record(hex, record.state()));
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  REQUIRE(upper != hex);
  for (const std::string& bad : {upper, hex.substr(2), hex + "00", std::string(64, 'g'),
                                 std::string("huaniao"), std::string()}) {
    INFO(bad);
    auto shown = ferry::entry_from_record(bad, record.state());
    REQUIRE_FALSE(shown);
    CHECK(shown.error().code == Errc::malformed);
  }
}

TEST_CASE("entry_from_record refuses a record missing a field or holding a bad value", "[trust]") {
  NodeKey authority = node_key(0xa0);
  std::string hex = ferry::to_hex(key_of(7));
  CHECK(ferry::entry_from_record(hex, RecordState{}).error().code == Errc::malformed);
  for (std::string_view name : {"name", "role", "read", "write", "revoked"}) {
    INFO(name);
    TrustRecord record(authority, hex);
    record.write(1000, set_body(without(station_fields(), name)));
    CHECK(ferry::entry_from_record(hex, record.state()).error().code == Errc::malformed);
  }
  for (Field bad :
       {text_field("role", "admin"), text_field("name", "a/b"), patterns_field("read", {"a*b"}),
        text_field("revoked", "no"), Field{"write", [](Packer& pk) { pk.pack_int(1); }}}) {
    INFO(bad.name);
    TrustRecord record(authority, hex);
    record.write(1000, set_body(replaced(station_fields(), bad)));
    CHECK(ferry::entry_from_record(hex, record.state()).error().code == Errc::malformed);
  }
}

TEST_CASE("entry_from_record takes the last write of each field and ignores other fields",
          "[trust]") {
  NodeKey authority = node_key(0xa0);
  std::string hex = ferry::to_hex(key_of(7));
  TrustRecord record(authority, hex);
  record.write(1000, set_body(replaced(station_fields(), text_field("role", "admin"))));
  REQUIRE_FALSE(ferry::entry_from_record(hex, record.state()));
  // A later whole entry repairs the bad value; a stray field, once written, stays in the record.
  record.write(2000, set_body(with(station_fields(), text_field("note", "x"))));
  auto shown = ferry::entry_from_record(hex, record.state());
  REQUIRE(shown);
  CHECK(*shown == ferry::default_entry(key_of(7), "huaniao", "station"));
  // A write of one field changes that field only.
  record.write(3000, set_body({bool_field("revoked", true)}));
  auto revoked = ferry::entry_from_record(hex, record.state());
  REQUIRE(revoked);
  CHECK(revoked->revoked);
  CHECK(revoked->name == "huaniao");
}

// ---- The view ----

TEST_CASE("the authority is admitted and may read and write every channel", "[trust]") {
  const PublicKey authority = key_of(0xa0);
  TrustView view(authority);
  CHECK(view.authority() == authority);
  CHECK(view.entries().empty());
  CHECK(view.admitted(authority));
  for (std::string_view channel : {"ferry/trust", "broadcast", "station/huaniao", "x"}) {
    CHECK(view.may_read(authority, channel));
    CHECK(view.may_write(authority, channel));
  }
  // Whatever an entry about the authority says.
  TrustEntry self = ferry::default_entry(authority, "ningbo", "station");
  self.revoked = true;
  view.put(self);
  CHECK(view.admitted(authority));
  CHECK(view.may_write(authority, "ferry/trust"));
  CHECK(view.may_read(authority, "station/other"));
}

TEST_CASE("a station may read and write what its patterns say, and no more", "[trust]") {
  const PublicKey station = key_of(7);
  TrustView view(key_of(0xa0));
  view.put(ferry::default_entry(station, "huaniao", "station"));
  CHECK(view.admitted(station));
  CHECK(view.may_read(station, "station/huaniao"));
  CHECK(view.may_read(station, "broadcast"));
  CHECK(view.may_read(station, "ferry/trust"));
  CHECK_FALSE(view.may_read(station, "station/dinghai"));
  CHECK(view.may_write(station, "station/huaniao"));
  CHECK_FALSE(view.may_write(station, "broadcast"));
  CHECK_FALSE(view.may_write(station, "ferry/trust"));
  CHECK_FALSE(view.may_write(station, "station/dinghai"));
}

TEST_CASE("ferry/trust is written by the authority alone whatever the patterns say", "[trust]") {
  const PublicKey hub = key_of(8);
  const PublicKey explicit_writer = key_of(9);
  TrustView view(key_of(0xa0));
  view.put(ferry::default_entry(hub, "zhoushan", "hub"));
  TrustEntry entry = ferry::default_entry(explicit_writer, "huaniao", "station");
  entry.write = {"ferry/trust", "ferry/*"};
  view.put(entry);
  CHECK(view.may_read(hub, "ferry/trust"));
  CHECK(view.may_write(hub, "station/anything"));
  CHECK(view.may_write(hub, "broadcast"));
  CHECK_FALSE(view.may_write(hub, "ferry/trust"));
  CHECK(view.may_write(explicit_writer, "ferry/other"));
  CHECK_FALSE(view.may_write(explicit_writer, "ferry/trust"));
}

TEST_CASE("a revoked or unknown node is not admitted and may do nothing", "[trust]") {
  const PublicKey revoked = key_of(7);
  const PublicKey unknown = key_of(8);
  TrustView view(key_of(0xa0));
  TrustEntry entry = ferry::default_entry(revoked, "huaniao", "hub");
  entry.revoked = true;
  view.put(entry);
  for (const PublicKey& key : {revoked, unknown}) {
    CHECK_FALSE(view.admitted(key));
    for (std::string_view channel : {"station/huaniao", "broadcast", "ferry/trust", "x"}) {
      CHECK_FALSE(view.may_read(key, channel));
      CHECK_FALSE(view.may_write(key, channel));
    }
  }
  CHECK(view.find(revoked) != nullptr);
  CHECK(view.find(unknown) == nullptr);
}

TEST_CASE("put replaces the entry with the same key", "[trust]") {
  const PublicKey station = key_of(7);
  TrustView view(key_of(0xa0));
  view.put(ferry::default_entry(station, "huaniao", "station"));
  TrustEntry revoked = ferry::default_entry(station, "huaniao", "station");
  revoked.revoked = true;
  view.put(revoked);
  CHECK(view.entries().size() == 1);
  REQUIRE(view.find(station) != nullptr);
  CHECK(*view.find(station) == revoked);
  view.put(ferry::default_entry(station, "huaniao", "relay"));
  CHECK(view.entries().size() == 1);
  CHECK(view.admitted(station));
  CHECK(view.may_read(station, "station/dinghai"));
}

TEST_CASE("find_name prefers a live entry, then the lowest key", "[trust]") {
  PublicKey low = key_of(1);
  PublicKey high = key_of(2);
  if (high < low) std::swap(low, high);
  TrustView view(key_of(0xa0));
  CHECK(view.find_name("huaniao") == nullptr);
  TrustEntry old_key = ferry::default_entry(low, "huaniao", "station");
  old_key.revoked = true;
  view.put(old_key);
  REQUIRE(view.find_name("huaniao") != nullptr);
  CHECK(view.find_name("huaniao")->key == low);
  view.put(ferry::default_entry(high, "huaniao", "station"));
  CHECK(view.find_name("huaniao")->key == high);
  view.put(ferry::default_entry(low, "huaniao", "station"));
  CHECK(view.find_name("huaniao")->key == low);
  CHECK(view.find_name("dinghai") == nullptr);
}

// ---- CurveZMQ keys ----

TEST_CASE("the derived CurveZMQ public key is the base point times the derived secret", "[trust]") {
  for (int fill : {0x01, 0x42, 0xa0, 0xff}) {
    NodeKey key = node_key(static_cast<std::uint8_t>(fill));
    ferry::CurveSecretKey secret = ferry::curve_secret_of(key);
    auto curve = ferry::curve_public_of(key.public_key());
    REQUIRE(curve);
    ferry::CurvePublicKey expected{};
    REQUIRE(crypto_scalarmult_base(expected.data(), secret.bytes().data()) == 0);
    CHECK(*curve == expected);
    CHECK(secret.bytes()[0] % 8 == 0);  // an X25519 scalar, clamped
  }
  CHECK(*ferry::curve_public_of(key_of(1)) != *ferry::curve_public_of(key_of(2)));
}

TEST_CASE("curve_public_of refuses keys libsodium cannot convert", "[trust]") {
  PublicKey zero{};
  PublicKey identity{};  // y = 1: the neutral element, of order 1
  identity[0] = 1;
  auto not_a_point = ferry::from_hex<ferry::public_key_bytes>(
      "0200000000000000000000000000000000000000000000000000000000000000");  // y = 2
  REQUIRE(not_a_point);
  for (const PublicKey& key : {zero, identity, *not_a_point}) {
    INFO(ferry::to_hex(key));
    auto curve = ferry::curve_public_of(key);
    REQUIRE_FALSE(curve);
    CHECK(curve.error().code == Errc::malformed);
  }
}

TEST_CASE("a moved CurveSecretKey leaves its source wiped", "[trust]") {
  ferry::CurveSecretKey secret = ferry::curve_secret_of(node_key(0x42));
  ferry::CurveSecretKey moved(std::move(secret));
  ferry::CurvePublicKey zero{};
  CHECK(std::equal(secret.bytes().begin(), secret.bytes().end(), zero.begin()));  // NOLINT
  CHECK_FALSE(std::equal(moved.bytes().begin(), moved.bytes().end(), zero.begin()));
  ferry::CurveSecretKey assigned;
  assigned = std::move(moved);
  CHECK(std::equal(moved.bytes().begin(), moved.bytes().end(), zero.begin()));  // NOLINT
  CHECK_FALSE(std::equal(assigned.bytes().begin(), assigned.bytes().end(), zero.begin()));
}

TEST_CASE("by_curve finds the authority and each entry by its CurveZMQ key", "[trust]") {
  const PublicKey authority = key_of(0xa0);
  const PublicKey station = key_of(7);
  const PublicKey revoked = key_of(8);
  TrustView view(authority);
  view.put(ferry::default_entry(station, "huaniao", "station"));
  TrustEntry entry = ferry::default_entry(revoked, "dinghai", "relay");
  entry.revoked = true;
  view.put(entry);
  CHECK(view.by_curve(*ferry::curve_public_of(authority)) == authority);
  CHECK(view.by_curve(*ferry::curve_public_of(station)) == station);
  CHECK(view.by_curve(*ferry::curve_public_of(revoked)) == revoked);
  CHECK_FALSE(view.by_curve(*ferry::curve_public_of(key_of(9))));
  CHECK_FALSE(view.by_curve(ferry::CurvePublicKey{}));
}

TEST_CASE("by_curve answers nothing for a CurveZMQ key two known keys share", "[trust]") {
  const PublicKey station = key_of(7);
  const PublicKey twin = negated(station);
  REQUIRE(twin != station);
  auto curve = ferry::curve_public_of(station);
  REQUIRE(curve);
  auto twin_curve = ferry::curve_public_of(twin);
  REQUIRE(twin_curve);
  REQUIRE(*twin_curve == *curve);
  TrustView view(key_of(0xa0));
  view.put(ferry::default_entry(station, "huaniao", "station"));
  CHECK(view.by_curve(*curve) == station);
  view.put(ferry::default_entry(twin, "twin", "station"));
  CHECK_FALSE(view.by_curve(*curve));
}
