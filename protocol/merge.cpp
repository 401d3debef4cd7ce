#include "protocol/merge.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <bit>
#include <limits>
#include <string_view>
#include <tuple>
#include <utility>

#include "protocol/limits.h"
#include "protocol/unpack.h"
#include "protocol/utf8.h"

namespace ferry {
namespace {

// What the packer writes into: the encodings here end up as byte vectors, so they are written
// into one directly (an sbuffer would cost an allocation and a copy more per encoding).
struct ByteSink {
  std::vector<std::uint8_t>& bytes;
  void write(const char* data, std::size_t size) {
    const auto* p = reinterpret_cast<const std::uint8_t*>(data);
    bytes.insert(bytes.end(), p, p + size);
  }
};

using Packer = msgpack::packer<ByteSink>;

void pack_text(Packer& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

void pack_bin(Packer& pk, std::span<const std::uint8_t> bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::uint32_t>(bytes.size()));
}

// ---- Canonical values ----

constexpr std::uint8_t float32_marker = 0xca;
constexpr std::uint8_t float64_marker = 0xcb;

// Floats keep their width and bits. msgpack-c's packer is not used for them: since version 4 it
// turns whole floats into integers (so canonical bytes would depend on the library version), and
// its range check lets 2^64 reach an undefined float-to-integer conversion.
template <class Bits>
void write_float(ByteSink& out, std::uint8_t marker, Bits bits) {
  std::array<char, 1 + sizeof(Bits)> bytes{};
  bytes[0] = static_cast<char>(marker);
  for (std::size_t i = 0; i < sizeof(Bits); ++i) {
    bytes[sizeof(Bits) - i] = static_cast<char>(static_cast<std::uint8_t>(bits >> (8 * i)));
  }
  out.write(bytes.data(), bytes.size());
}

void pack_canonical(Packer& pk, ByteSink& out, const msgpack::object& o);

// Map entries are sorted by their canonical bytes so that key order on the wire does not matter;
// sorting whole entries (key, then value) keeps even duplicate keys deterministic.
void pack_canonical_map(Packer& pk, ByteSink& out, const msgpack::object& o) {
  std::vector<std::pair<std::vector<std::uint8_t>, std::vector<std::uint8_t>>> entries;
  entries.reserve(o.via.map.size);
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    entries.emplace_back(canonical_value(o.via.map.ptr[i].key),
                         canonical_value(o.via.map.ptr[i].val));
  }
  std::sort(entries.begin(), entries.end());
  pk.pack_map(o.via.map.size);
  for (const auto& [key, val] : entries) {
    out.write(reinterpret_cast<const char*>(key.data()), key.size());
    out.write(reinterpret_cast<const char*>(val.data()), val.size());
  }
}

void pack_canonical(Packer& pk, ByteSink& out, const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      pk.pack_nil();
      return;
    case msgpack::type::BOOLEAN:
      o.via.boolean ? pk.pack_true() : pk.pack_false();
      return;
    case msgpack::type::POSITIVE_INTEGER:
      pk.pack_uint64(o.via.u64);  // msgpack-c picks the smallest encoding
      return;
    case msgpack::type::NEGATIVE_INTEGER:
      pk.pack_int64(o.via.i64);
      return;
    case msgpack::type::FLOAT32:
      // Exact: the value was a float32 on the wire.
      write_float(out, float32_marker, std::bit_cast<std::uint32_t>(static_cast<float>(o.via.f64)));
      return;
    case msgpack::type::FLOAT64:
      write_float(out, float64_marker, std::bit_cast<std::uint64_t>(o.via.f64));
      return;
    case msgpack::type::STR:
      pk.pack_str(o.via.str.size);
      pk.pack_str_body(o.via.str.ptr, o.via.str.size);
      return;
    case msgpack::type::BIN:
      pk.pack_bin(o.via.bin.size);
      pk.pack_bin_body(o.via.bin.ptr, o.via.bin.size);
      return;
    case msgpack::type::EXT:
      pk.pack_ext(o.via.ext.size, o.via.ext.type());
      pk.pack_ext_body(o.via.ext.data(), o.via.ext.size);
      return;
    case msgpack::type::ARRAY:
      pk.pack_array(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        pack_canonical(pk, out, o.via.array.ptr[i]);
      }
      return;
    case msgpack::type::MAP:
      pack_canonical_map(pk, out, o);
      return;
  }
  FERRY_ASSERT(false && "msgpack object of unknown type");
}

// ---- Reading merge parts ----

constexpr std::string_view part_set = "set";
constexpr std::string_view part_inc = "inc";
constexpr std::string_view part_add = "add";
constexpr std::string_view part_del = "del";

// What the lenient reader skipped; the strict check reports the first of it.
struct Problems {
  std::optional<std::string> first;
  void note(std::string what) {
    if (!first) first = std::move(what);
  }
};

std::optional<std::string_view> text_of(const msgpack::object& o) {
  if (o.type != msgpack::type::STR) return std::nullopt;
  return std::string_view(o.via.str.ptr, o.via.str.size);
}

// The entries of one merge part, in field order. A field named twice is ambiguous, so it is
// dropped. Only the first problem in the part is noted (Problems keeps only the first anyway):
// the earliest, in the part's own order, of a name that is not a string and a name's second use.
using Fields = std::vector<std::pair<std::string_view, const msgpack::object*>>;

Fields fields_of(const msgpack::object& part, std::string_view name, Problems& problems) {
  Fields fields;
  if (part.type != msgpack::type::MAP) {
    problems.note(std::string(name) + ": expected a map of fields");
    return fields;
  }
  struct Named {
    std::string_view field;
    std::uint32_t at;
  };
  std::vector<Named> named;
  named.reserve(part.via.map.size);
  std::optional<std::uint32_t> first_problem;
  for (std::uint32_t i = 0; i < part.via.map.size; ++i) {
    if (auto field = text_of(part.via.map.ptr[i].key)) {
      named.push_back(Named{*field, i});
    } else if (!first_problem) {
      first_problem = i;
    }
  }
  std::stable_sort(named.begin(), named.end(),
                   [](const Named& a, const Named& b) { return a.field < b.field; });
  fields.reserve(named.size());
  for (std::size_t i = 0; i < named.size();) {
    std::size_t end = i + 1;
    while (end < named.size() && named[end].field == named[i].field) ++end;
    if (end - i == 1) {
      fields.emplace_back(named[i].field, &part.via.map.ptr[named[i].at].val);
    } else if (!first_problem || named[i + 1].at < *first_problem) {
      first_problem = named[i + 1].at;  // stable: the group is in the part's order
    }
    i = end;
  }
  if (first_problem) {
    auto field = text_of(part.via.map.ptr[*first_problem].key);
    problems.note(field ? std::string(name) + ": field '" + std::string(*field) + "' appears twice"
                        : std::string(name) + ": a field name is not a string");
  }
  return fields;
}

std::optional<std::int64_t> int64_of(const msgpack::object& o) {
  constexpr auto int64_max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (o.type == msgpack::type::NEGATIVE_INTEGER) return o.via.i64;
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= int64_max) {
    return static_cast<std::int64_t>(o.via.u64);
  }
  return std::nullopt;
}

void read_sets(const msgpack::object& part, MergeOp& out, Problems& problems) {
  for (const auto& [field, value] : fields_of(part, part_set, problems)) {
    out.sets.emplace_hint(out.sets.end(), field, canonical_value(*value));
  }
}

void read_incs(const msgpack::object& part, MergeOp& out, Problems& problems) {
  for (const auto& [field, value] : fields_of(part, part_inc, problems)) {
    auto delta = int64_of(*value);
    if (!delta) {
      problems.note("inc: field '" + std::string(field) + "' is not an integer that fits int64");
      continue;
    }
    out.incs.emplace_hint(out.incs.end(), field, *delta);
  }
}

void read_elements(const msgpack::object& part, std::string_view name,
                   std::map<std::string, std::set<std::vector<std::uint8_t>>>& out,
                   Problems& problems) {
  for (const auto& [field, value] : fields_of(part, name, problems)) {
    if (value->type != msgpack::type::ARRAY) {
      problems.note(std::string(name) + ": field '" + std::string(field) +
                    "' is not an array of elements");
      continue;
    }
    auto& elements =
        out.emplace_hint(out.end(), field, std::set<std::vector<std::uint8_t>>{})->second;
    for (std::uint32_t i = 0; i < value->via.array.size; ++i) {
      elements.insert(canonical_value(value->via.array.ptr[i]));
    }
  }
}

// Reads every merge part of a body map into out, skipping and noting whatever is malformed.
void read_parts(const msgpack::object& body, MergeOp& out, Problems& problems) {
  if (body.type != msgpack::type::MAP) {
    problems.note("body: expected a map");
    return;
  }
  // A part named twice is as ambiguous as a field named twice: neither copy is read. The parts
  // are read in name order (add, del, inc, set), which decides the problem noted first.
  struct Part {
    std::string_view name;
    const msgpack::object* value = nullptr;
    std::size_t copies = 0;
  };
  std::array<Part, 4> parts = {{{part_add, nullptr, 0},
                                {part_del, nullptr, 0},
                                {part_inc, nullptr, 0},
                                {part_set, nullptr, 0}}};
  for (std::uint32_t i = 0; i < body.via.map.size; ++i) {
    auto name = text_of(body.via.map.ptr[i].key);
    if (!name) continue;  // not a merge part; validate_body() refuses it on its own terms
    for (Part& part : parts) {
      if (*name != part.name) continue;
      part.value = &body.via.map.ptr[i].val;
      ++part.copies;
    }
  }
  for (const Part& part : parts) {
    if (part.copies == 0) continue;
    if (part.copies > 1) {
      problems.note("body: merge part '" + std::string(part.name) + "' appears twice");
      continue;
    }
    if (part.name == part_set) read_sets(*part.value, out, problems);
    if (part.name == part_inc) read_incs(*part.value, out, problems);
    if (part.name == part_add) read_elements(*part.value, part_add, out.adds, problems);
    if (part.name == part_del) read_elements(*part.value, part_del, out.dels, problems);
  }
}

}  // namespace

// ---- Causality ----

namespace {

auto origin_below(const std::pair<PublicKey, std::uint64_t>& entry, const PublicKey& origin) {
  return entry.first < origin;
}

}  // namespace

std::uint64_t Context::seq(const PublicKey& origin) const {
  auto it = std::lower_bound(seqs_.begin(), seqs_.end(), origin, origin_below);
  return it == seqs_.end() || it->first != origin ? 0 : it->second;
}

void Context::raise(const PublicKey& origin, std::uint64_t seq) {
  if (seq == 0) return;
  auto it = std::lower_bound(seqs_.begin(), seqs_.end(), origin, origin_below);
  if (it == seqs_.end() || it->first != origin) {
    seqs_.emplace(it, origin, seq);
  } else if (it->second < seq) {
    it->second = seq;
  }
}

void Context::join(const Context& other) {
  if (seqs_.empty()) {
    seqs_ = other.seqs_;
    return;
  }
  for (const auto& [origin, seq] : other.seqs_) raise(origin, seq);
}

void add_dep(Context& context, const Dot& dep, const Context& dep_context) {
  context.join(dep_context);
  context.raise(dep.origin, dep.seq);
}

void finish_context(Context& context, const PublicKey& origin, std::uint64_t seq) {
  FERRY_ASSERT(seq > 0);
  context.raise(origin, seq - 1);
  // A dep that saw this very op would make history circular; the feed chain rules it out.
  FERRY_ASSERT(context.seq(origin) == seq - 1);
}

Context context_of(const PublicKey& origin, std::uint64_t seq, std::span<const DepContext> deps) {
  Context context;
  for (const DepContext& dep : deps) add_dep(context, dep.dot, dep.context);
  finish_context(context, origin, seq);
  return context;
}

bool covers(const Context& context, const Dot& dot) { return context.seq(dot.origin) >= dot.seq; }

// ---- Values and merge parts ----

std::vector<std::uint8_t> canonical_value(const msgpack::object& value) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(16);
  ByteSink sink{bytes};
  Packer pk(sink);
  pack_canonical(pk, sink, value);
  return bytes;
}

MergeOp merge_op_of(const Op& op) {
  const OpHeader& h = op.header();
  MergeOp out{op.id(), h.origin, h.seq, h.hlc, h.author, {}, {}, {}, {}};
  // A decoded op's body always unpacks; were it not to, the op merges as one without writes.
  if (auto body = unpack_one(op.body(), op_body_limit())) {
    Problems ignored;
    read_parts(body->get(), out, ignored);
  }
  return out;
}

Result<void> validate_merge_body(std::span<const std::uint8_t> body) {
  auto unpacked = unpack_body(body);
  if (!unpacked) return tl::unexpected(unpacked.error());
  MergeOp parsed;
  Problems problems;
  read_parts(unpacked->get(), parsed, problems);
  if (problems.first) return fail(Errc::malformed, *problems.first);
  return {};
}

// ---- Applying ops ----

namespace {

void apply_heads(std::map<Dot, OpId>& heads, const MergeOp& x, const Context& cx) {
  for (const auto& [dot, id] : heads) {
    // Causal delivery: no applied op of x's origin comes after x, nor is x itself.
    FERRY_ASSERT(dot.origin != x.origin || dot.seq < x.seq);
  }
  std::erase_if(heads, [&](const auto& head) { return covers(cx, head.first); });
  heads.emplace(x.dot(), x.id);
}

// The values (and below, the added elements) are moved out of x, which apply() owns.
void apply_sets(std::map<std::string, Register>& registers, MergeOp& x, const Context& cx) {
  for (auto& [field, value] : x.sets) {
    Register& reg = registers[field];
    std::erase_if(reg, [&](const auto& write) { return covers(cx, write.first); });
    bool inserted =
        reg.emplace(x.dot(), RegisterWrite{std::move(value), x.id, x.hlc, x.author}).second;
    FERRY_ASSERT(inserted);
  }
}

void apply_incs(std::map<std::string, std::int64_t>& counters, const MergeOp& x) {
  for (const auto& [field, delta] : x.incs) {
    std::int64_t& sum = counters[field];
    // Unsigned addition wraps, so the sum is the same in every order; C++20 converts back
    // modulo 2^64.
    sum = static_cast<std::int64_t>(static_cast<std::uint64_t>(sum) +
                                    static_cast<std::uint64_t>(delta));
  }
}

// An op's dels remove only the adds it has seen, so its own adds (and concurrent ones) survive.
void apply_dels(std::map<std::string, OrSet>& sets, const MergeOp& x, const Context& cx) {
  for (const auto& [field, elements] : x.dels) {
    auto set = sets.find(field);
    if (set == sets.end()) continue;
    for (const auto& element : elements) {
      auto tags = set->second.find(element);
      if (tags == set->second.end()) continue;
      std::erase_if(tags->second, [&](const Dot& tag) { return covers(cx, tag); });
      if (tags->second.empty()) set->second.erase(tags);
    }
    if (set->second.empty()) sets.erase(set);
  }
}

void apply_adds(std::map<std::string, OrSet>& sets, MergeOp& x) {
  for (auto& [field, elements] : x.adds) {
    OrSet& set = sets[field];
    while (!elements.empty()) {
      auto element = elements.extract(elements.begin());
      set[std::move(element.value())].insert(x.dot());
    }
  }
}

}  // namespace

void apply(RecordState& state, const MergeOp& x, const Context& cx) {
  apply(state, MergeOp(x), cx);
}

void apply(RecordState& state, MergeOp&& x, const Context& cx) {
  FERRY_ASSERT(x.seq > 0);
  FERRY_ASSERT(!covers(cx, x.dot()));
  apply_heads(state.heads, x, cx);
  apply_sets(state.registers, x, cx);
  apply_incs(state.counters, x);
  apply_dels(state.sets, x, cx);
  apply_adds(state.sets, x);
  state.ops += 1;
  state.updated_hlc = std::max(state.updated_hlc, x.hlc);
}

// ---- Encoding ----

namespace {

// Bumped when the layout below changes; decode_state() refuses any other. Version 1 named each
// op's origin in full (32 bytes) wherever it appeared and kept an id in every OR-set tag.
constexpr std::uint64_t state_format_version = 2;
constexpr std::uint32_t state_fields = 8;
constexpr std::uint32_t op_ref_fields = 3;  // [origin index, seq, id]
constexpr std::uint32_t write_fields = 6;   // [origin index, seq, id, hlc, author, value]
constexpr std::uint32_t tag_fields = 2;     // [origin index, seq]
constexpr std::uint32_t entry_fields = 2;   // [field, ...] and [element, tags]
constexpr std::size_t state_depth_max =
    7;  // state, sets, field entry, elements, element, tags, tag

std::uint32_t size32(std::size_t size) {
  FERRY_ASSERT(size <= std::numeric_limits<std::uint32_t>::max());
  return static_cast<std::uint32_t>(size);
}

// The origins a state names, ascending, each once: the table its dots refer to by index.
class OriginTable {
 public:
  explicit OriginTable(const RecordState& state) {
    for (const auto& [dot, id] : state.heads) origins_.push_back(dot.origin);
    for (const auto& [field, reg] : state.registers) {
      for (const auto& [dot, write] : reg) origins_.push_back(dot.origin);
    }
    for (const auto& [field, set] : state.sets) {
      for (const auto& [element, tags] : set) {
        for (const Dot& dot : tags) origins_.push_back(dot.origin);
      }
    }
    std::sort(origins_.begin(), origins_.end());
    origins_.erase(std::unique(origins_.begin(), origins_.end()), origins_.end());
  }

  const std::vector<PublicKey>& origins() const { return origins_; }

  std::uint64_t index(const PublicKey& origin) const {
    auto it = std::lower_bound(origins_.begin(), origins_.end(), origin);
    FERRY_ASSERT(it != origins_.end() && *it == origin);
    return static_cast<std::uint64_t>(it - origins_.begin());
  }

 private:
  std::vector<PublicKey> origins_;
};

void pack_dot(Packer& pk, const OriginTable& table, const Dot& dot) {
  pk.pack_uint64(table.index(dot.origin));
  pk.pack_uint64(dot.seq);
}

void pack_registers(Packer& pk, const OriginTable& table,
                    const std::map<std::string, Register>& registers) {
  pk.pack_array(size32(registers.size()));
  for (const auto& [field, reg] : registers) {
    pk.pack_array(entry_fields);
    pack_text(pk, field);
    pk.pack_array(size32(reg.size()));
    for (const auto& [dot, write] : reg) {
      pk.pack_array(write_fields);
      pack_dot(pk, table, dot);
      pack_bin(pk, write.id);
      pk.pack_uint64(write.hlc);
      if (write.author) {
        pack_text(pk, *write.author);
      } else {
        pk.pack_nil();
      }
      pack_bin(pk, write.value);
    }
  }
}

void pack_sets(Packer& pk, const OriginTable& table, const std::map<std::string, OrSet>& sets) {
  pk.pack_array(size32(sets.size()));
  for (const auto& [field, set] : sets) {
    pk.pack_array(entry_fields);
    pack_text(pk, field);
    pk.pack_array(size32(set.size()));
    for (const auto& [element, tags] : set) {
      pk.pack_array(entry_fields);
      pack_bin(pk, element);
      pk.pack_array(size32(tags.size()));
      for (const Dot& dot : tags) {
        pk.pack_array(tag_fields);
        pack_dot(pk, table, dot);
      }
    }
  }
}

}  // namespace

std::vector<std::uint8_t> encode_state(const RecordState& state) {
  std::vector<std::uint8_t> bytes;
  bytes.reserve(1024);
  ByteSink sink{bytes};
  Packer pk(sink);
  const OriginTable table(state);
  pk.pack_array(state_fields);
  pk.pack_uint64(state_format_version);
  pk.pack_uint64(state.ops);
  pk.pack_uint64(state.updated_hlc);
  pk.pack_array(size32(table.origins().size()));
  for (const PublicKey& origin : table.origins()) pack_bin(pk, origin);
  pk.pack_array(size32(state.heads.size()));
  for (const auto& [dot, id] : state.heads) {
    pk.pack_array(op_ref_fields);
    pack_dot(pk, table, dot);
    pack_bin(pk, id);
  }
  pack_registers(pk, table, state.registers);
  pk.pack_array(size32(state.counters.size()));
  for (const auto& [field, sum] : state.counters) {
    pk.pack_array(entry_fields);
    pack_text(pk, field);
    pk.pack_int64(sum);
  }
  pack_sets(pk, table, state.sets);
  return bytes;
}

// ---- Decoding ----

namespace {

tl::unexpected<Error> corrupt(std::string_view what, std::string_view why) {
  return fail(Errc::corrupt, std::string(what) + ": " + std::string(why));
}

// A container of n items takes at least n bytes, so limits of the input's size bound what
// msgpack-c allocates before it finds the bytes missing. No maps, no ext: the layout has none.
msgpack::unpack_limit stored_limit(std::size_t bytes, std::size_t depth) {
  return msgpack::unpack_limit(bytes, 0, bytes, bytes, 0, depth);
}

// The items of an array, which must have exactly `size` of them when size is given.
std::optional<std::span<const msgpack::object>> items_of(const msgpack::object& o,
                                                         std::optional<std::size_t> size) {
  if (o.type != msgpack::type::ARRAY) return std::nullopt;
  if (size && o.via.array.size != *size) return std::nullopt;
  return std::span<const msgpack::object>(o.via.array.ptr, o.via.array.size);
}

std::optional<std::uint64_t> uint_of(const msgpack::object& o) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
  return o.via.u64;
}

std::optional<Digest> digest_of(const msgpack::object& o) {
  if (o.type != msgpack::type::BIN || o.via.bin.size != digest_bytes) return std::nullopt;
  Digest d{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), d.size(), d.begin());
  return d;
}

std::optional<std::string> valid_text_of(const msgpack::object& o) {
  auto text = text_of(o);
  if (!text || !valid_utf8(*text)) return std::nullopt;
  return std::string(*text);
}

// A dot of a state: its origin by index into the state's origin table.
using Origins = std::vector<PublicKey>;

std::optional<Dot> dot_at(const Origins& origins, const msgpack::object& index,
                          const msgpack::object& seq) {
  auto i = uint_of(index);
  auto s = uint_of(seq);
  if (!i || *i >= origins.size() || !s || *s == 0) return std::nullopt;
  return Dot{origins[*i], *s};
}

// A bin that holds exactly one msgpack value in canonical form, as canonical_value() wrote it.
std::optional<std::vector<std::uint8_t>> value_of(const msgpack::object& o) {
  if (o.type != msgpack::type::BIN) return std::nullopt;
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr),
                                      o.via.bin.size);
  auto value = unpack_one(bytes, op_body_limit());
  if (!value) return std::nullopt;
  std::vector<std::uint8_t> canonical = canonical_value(value->get());
  if (!std::equal(canonical.begin(), canonical.end(), bytes.begin(), bytes.end())) {
    return std::nullopt;
  }
  return canonical;
}

// An op as heads remember it.
struct OpRef {
  Dot dot;
  OpId id{};
};

std::optional<OpRef> op_ref_of(const Origins& origins, const msgpack::object& o) {
  auto items = items_of(o, op_ref_fields);
  if (!items) return std::nullopt;
  auto dot = dot_at(origins, (*items)[0], (*items)[1]);
  auto id = digest_of((*items)[2]);
  if (!dot || !id) return std::nullopt;
  return OpRef{*dot, *id};
}

// Two entries of one origin in a set of mutually concurrent ops cannot be: the later has seen
// the earlier. Maps keyed by dot keep one origin's entries adjacent.
template <class Map>
bool one_per_origin(const Map& by_dot) {
  return std::adjacent_find(by_dot.begin(), by_dot.end(), [](const auto& a, const auto& b) {
           return a.first.origin == b.first.origin;
         }) == by_dot.end();
}

// Fields [field, payload] with a payload array of at least one item.
std::optional<std::pair<std::string, std::span<const msgpack::object>>> entry_of(
    const msgpack::object& o) {
  auto items = items_of(o, entry_fields);
  if (!items) return std::nullopt;
  auto field = valid_text_of((*items)[0]);
  auto payload = items_of((*items)[1], std::nullopt);
  if (!field || !payload || payload->empty()) return std::nullopt;
  return std::make_pair(std::move(*field), *payload);
}

// Ascending and each used (which the canonical check after decoding makes sure of).
Result<Origins> decode_origins(const msgpack::object& o) {
  auto items = items_of(o, std::nullopt);
  if (!items) return corrupt("merge state: origins", "expected an array");
  Origins origins;
  origins.reserve(items->size());
  for (const msgpack::object& item : *items) {
    auto origin = digest_of(item);
    if (!origin) return corrupt("merge state: origins", "expected a 32-byte origin");
    origins.push_back(*origin);
  }
  return origins;
}

Result<void> decode_heads(const Origins& origins, const msgpack::object& o, RecordState& state) {
  auto items = items_of(o, std::nullopt);
  if (!items) return corrupt("merge state: heads", "expected an array");
  for (const msgpack::object& item : *items) {
    auto head = op_ref_of(origins, item);
    if (!head) return corrupt("merge state: heads", "expected [origin, seq, id]");
    state.heads.emplace(head->dot, head->id);
  }
  if (!one_per_origin(state.heads)) return corrupt("merge state: heads", "two of one origin");
  return {};
}

std::optional<std::pair<Dot, RegisterWrite>> write_of(const Origins& origins,
                                                      const msgpack::object& o) {
  auto items = items_of(o, write_fields);
  if (!items) return std::nullopt;
  auto dot = dot_at(origins, (*items)[0], (*items)[1]);
  auto id = digest_of((*items)[2]);
  auto hlc = uint_of((*items)[3]);
  bool no_author = (*items)[4].type == msgpack::type::NIL;
  auto author = valid_text_of((*items)[4]);
  auto value = value_of((*items)[5]);
  if (!dot || !id || !hlc || !(no_author || author) || !value) return std::nullopt;
  return std::make_pair(*dot, RegisterWrite{std::move(*value), *id, *hlc, std::move(author)});
}

Result<void> decode_registers(const Origins& origins, const msgpack::object& o,
                              RecordState& state) {
  const std::string_view what = "merge state: registers";
  auto items = items_of(o, std::nullopt);
  if (!items) return corrupt(what, "expected an array");
  for (const msgpack::object& item : *items) {
    auto entry = entry_of(item);
    if (!entry) return corrupt(what, "expected [field, [write, ...]]");
    Register& reg = state.registers[entry->first];
    for (const msgpack::object& w : entry->second) {
      auto write = write_of(origins, w);
      if (!write) return corrupt(what, "expected [origin, seq, id, hlc, author, value]");
      reg.insert(std::move(*write));
    }
    if (!one_per_origin(reg)) return corrupt(what, "two writes of one origin in a frontier");
  }
  return {};
}

Result<void> decode_counters(const msgpack::object& o, RecordState& state) {
  auto items = items_of(o, std::nullopt);
  if (!items) return corrupt("merge state: counters", "expected an array");
  for (const msgpack::object& item : *items) {
    auto pair = items_of(item, entry_fields);
    auto field = pair ? valid_text_of((*pair)[0]) : std::nullopt;
    auto sum = pair ? int64_of((*pair)[1]) : std::nullopt;
    if (!field || !sum) return corrupt("merge state: counters", "expected [field, int64]");
    state.counters.emplace(std::move(*field), *sum);
  }
  return {};
}

Result<void> decode_sets(const Origins& origins, const msgpack::object& o, RecordState& state) {
  const std::string_view what = "merge state: sets";
  auto items = items_of(o, std::nullopt);
  if (!items) return corrupt(what, "expected an array");
  for (const msgpack::object& item : *items) {
    auto entry = entry_of(item);
    if (!entry) return corrupt(what, "expected [field, [element, ...]]");
    OrSet& set = state.sets[entry->first];
    for (const msgpack::object& e : entry->second) {
      auto pair = items_of(e, entry_fields);
      auto element = pair ? value_of((*pair)[0]) : std::nullopt;
      auto tags = pair ? items_of((*pair)[1], std::nullopt) : std::nullopt;
      if (!element || !tags || tags->empty()) return corrupt(what, "expected [element, [tag...]]");
      auto& element_tags = set[std::move(*element)];
      for (const msgpack::object& t : *tags) {
        auto tag = items_of(t, tag_fields);
        auto dot = tag ? dot_at(origins, (*tag)[0], (*tag)[1]) : std::nullopt;
        if (!dot) return corrupt(what, "expected a tag [origin, seq]");
        element_tags.insert(*dot);
      }
    }
  }
  return {};
}

Result<RecordState> decode_state_fields(std::span<const msgpack::object> fields) {
  RecordState state;
  auto version = uint_of(fields[0]);
  auto ops = uint_of(fields[1]);
  auto updated_hlc = uint_of(fields[2]);
  if (!version || *version != state_format_version) {
    return corrupt("merge state", "unknown format version");
  }
  if (!ops || !updated_hlc) return corrupt("merge state", "expected the op count and an hlc");
  state.ops = *ops;
  state.updated_hlc = *updated_hlc;
  auto origins = decode_origins(fields[3]);
  if (!origins) return tl::unexpected(origins.error());
  if (auto r = decode_heads(*origins, fields[4], state); !r) return tl::unexpected(r.error());
  if (auto r = decode_registers(*origins, fields[5], state); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = decode_counters(fields[6], state); !r) return tl::unexpected(r.error());
  if (auto r = decode_sets(*origins, fields[7], state); !r) return tl::unexpected(r.error());
  return state;
}

}  // namespace

Result<RecordState> decode_state(std::span<const std::uint8_t> bytes) {
  const std::string_view what = "merge state";
  auto unpacked = unpack_one(bytes, stored_limit(bytes.size(), state_depth_max));
  if (!unpacked) return corrupt(what, "not exactly one msgpack value within limits");
  auto fields = items_of(unpacked->get(), state_fields);
  if (!fields) return corrupt(what, "expected an array of 8 fields");
  auto state = decode_state_fields(*fields);
  if (!state) return state;
  if (state->heads.empty() != (state->ops == 0) || state->heads.size() > state->ops) {
    return corrupt(what, "heads do not fit the op count");
  }
  if (state->ops == 0 && *state != RecordState{}) return corrupt(what, "writes without ops");
  // Re-encoding catches all the encoder never writes: unsorted or repeated keys, long forms.
  std::vector<std::uint8_t> again = encode_state(*state);
  if (!std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) {
    return corrupt(what, "not in canonical form");
  }
  return state;
}

// ---- Views ----

namespace {

// The order that picks a register's winner: hlc, then origin bytes, then id bytes.
auto rank(const Register::value_type& write) {
  return std::tie(write.second.hlc, write.first.origin, write.second.id);
}

bool ranks_below(const Register::value_type& a, const Register::value_type& b) {
  return rank(a) < rank(b);
}

}  // namespace

const RegisterWrite& winner(const Register& reg) {
  FERRY_ASSERT(!reg.empty());
  return std::max_element(reg.begin(), reg.end(), ranks_below)->second;
}

std::map<std::string, std::vector<std::uint8_t>> winning_values(const RecordState& state) {
  std::map<std::string, std::vector<std::uint8_t>> values;
  for (const auto& [field, reg] : state.registers) values.emplace(field, winner(reg).value);
  return values;
}

std::map<std::string, std::vector<std::vector<std::uint8_t>>> set_elements(
    const RecordState& state) {
  std::map<std::string, std::vector<std::vector<std::uint8_t>>> elements;
  for (const auto& [field, set] : state.sets) {
    auto& present = elements[field];
    for (const auto& [element, tags] : set) present.push_back(element);
  }
  return elements;
}

std::vector<ConflictView> conflicts(const RecordState& state) {
  std::vector<ConflictView> views;
  for (const auto& [field, reg] : state.registers) {
    if (reg.size() < 2) continue;
    std::vector<const Register::value_type*> writes;
    for (const auto& write : reg) writes.push_back(&write);
    std::sort(writes.begin(), writes.end(),
              [](const auto* a, const auto* b) { return ranks_below(*b, *a); });
    ConflictView view{field, {}};
    for (const auto* w : writes) {
      view.values.push_back(ConflictValue{w->second.value, w->second.id, w->first.origin,
                                          w->second.author, w->second.hlc});
    }
    views.push_back(std::move(view));
  }
  return views;
}

// ---- Digests ----

namespace {

constexpr std::string_view state_digest_domain_v1 = "ferry-state-v1";
constexpr std::uint32_t record_fields = 3;  // [channel, key, state]

}  // namespace

void append_canonical(const std::string& channel, const std::string& key, const RecordState& state,
                      std::vector<std::uint8_t>& out) {
  ByteSink sink{out};
  Packer pk(sink);
  pk.pack_array(record_fields);
  pack_text(pk, channel);
  pack_text(pk, key);
  std::vector<std::uint8_t> encoded = encode_state(state);
  out.insert(out.end(), encoded.begin(), encoded.end());
}

// crypto.h hashes whole buffers only; a node digest streams every record, so it hashes here.
struct StateDigest::Hasher {
  crypto_generichash_state state;
};

StateDigest::StateDigest() : hasher_(std::make_unique<Hasher>()) {
  static const int sodium = sodium_init();  // idempotent; crypto.cpp may have run it already
  FERRY_ASSERT(sodium >= 0);
  int rc = crypto_generichash_init(&hasher_->state, nullptr, 0, digest_bytes);
  FERRY_ASSERT(rc == 0);
  auto domain = as_bytes(state_digest_domain_v1);
  rc = crypto_generichash_update(&hasher_->state, domain.data(), domain.size());
  FERRY_ASSERT(rc == 0);
}

StateDigest::~StateDigest() = default;

void StateDigest::add(const std::string& channel, const std::string& key,
                      const RecordState& state) {
  FERRY_ASSERT(!finished_);
  auto here = std::make_pair(channel, key);
  FERRY_ASSERT(!last_ || *last_ < here);
  last_ = std::move(here);
  scratch_.clear();
  append_canonical(channel, key, state, scratch_);
  int rc = crypto_generichash_update(&hasher_->state, scratch_.data(), scratch_.size());
  FERRY_ASSERT(rc == 0);
}

Digest StateDigest::finish() {
  FERRY_ASSERT(!finished_);
  finished_ = true;
  Digest digest{};
  int rc = crypto_generichash_final(&hasher_->state, digest.data(), digest.size());
  FERRY_ASSERT(rc == 0);
  return digest;
}

}  // namespace ferry
