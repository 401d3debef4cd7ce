#include "protocol/trust.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <msgpack.hpp>
#include <utility>

#include "protocol/hex.h"
#include "protocol/limits.h"
#include "protocol/op.h"
#include "protocol/unpack.h"
#include "protocol/utf8.h"

namespace ferry {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;

constexpr std::string_view set_part = "set";
// The fields of a trust entry, in the order encode_trust_body() writes them.
enum Field : std::size_t { name_field, role_field, read_field, write_field, revoked_field };
constexpr std::size_t trust_fields = 5;
constexpr std::array<std::string_view, trust_fields> field_names = {"name", "role", "read", "write",
                                                                    "revoked"};
static_assert(revoked_field + 1 == trust_fields);

void ensure_sodium() {
  // sodium_init is idempotent and thread-safe; a static makes it run once per process.
  static const int status = sodium_init();
  FERRY_ASSERT(status >= 0);
}

tl::unexpected<Error> malformed(std::string_view what, std::string_view why) {
  return fail(Errc::malformed, std::string(what) + ": " + std::string(why));
}

// ---- Patterns ----

// The rules op.cpp applies to an op's channel text.
Result<void> check_channel_text(std::string_view text, std::string_view what) {
  if (text.empty()) return malformed(what, "empty");
  if (text.size() > limits::channel_bytes_max) {
    return fail(Errc::limit_exceeded, std::string(what) + ": longer than " +
                                          std::to_string(limits::channel_bytes_max) + " bytes");
  }
  if (!valid_utf8(text)) return malformed(what, "invalid UTF-8");
  bool control = std::any_of(text.begin(), text.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (control) return malformed(what, "control character");
  return {};
}

Result<void> check_pattern_list(const std::vector<std::string>& patterns, std::string_view what) {
  if (patterns.size() > trust_patterns_max) {
    return fail(Errc::limit_exceeded, std::string(what) + ": more than " +
                                          std::to_string(trust_patterns_max) + " patterns");
  }
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    if (auto valid = check_pattern(patterns[i]); !valid) {
      return fail(valid.error().code,
                  std::string(what) + "[" + std::to_string(i) + "]: " + valid.error().detail);
    }
  }
  return {};
}

std::string_view trim_spaces(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

// ---- Encoding ----

void pack_text(Packer& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

void pack_patterns(Packer& pk, const std::vector<std::string>& patterns) {
  pk.pack_array(static_cast<std::uint32_t>(patterns.size()));
  for (const std::string& pattern : patterns) pack_text(pk, pattern);
}

// ---- Parsing fields ----

Result<std::string> read_text(const msgpack::object& o, std::string_view what) {
  if (o.type != msgpack::type::STR) return malformed(what, "expected a string");
  return std::string(o.via.str.ptr, o.via.str.size);
}

Result<std::vector<std::string>> read_patterns(const msgpack::object& o, std::string_view what) {
  if (o.type != msgpack::type::ARRAY) return malformed(what, "expected an array of strings");
  if (o.via.array.size > trust_patterns_max) {
    return fail(Errc::limit_exceeded, std::string(what) + ": more than " +
                                          std::to_string(trust_patterns_max) + " patterns");
  }
  std::vector<std::string> patterns;
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    auto text = read_text(o.via.array.ptr[i], what);
    if (!text) return tl::unexpected(text.error());
    patterns.push_back(std::move(*text));
  }
  if (auto valid = check_pattern_list(patterns, what); !valid) {
    return tl::unexpected(valid.error());
  }
  return patterns;
}

// Reads one field of an entry from its value.
Result<void> read_entry_field(Field field, const msgpack::object& o, std::string_view what,
                              TrustEntry& entry) {
  switch (field) {
    case name_field: {
      auto name = read_text(o, what);
      if (!name) return tl::unexpected(name.error());
      if (auto valid = check_node_name(*name); !valid) {
        return malformed(what, valid.error().detail);
      }
      entry.name = std::move(*name);
      return {};
    }
    case role_field: {
      auto role = read_text(o, what);
      if (!role) return tl::unexpected(role.error());
      if (auto valid = check_role(*role); !valid) return malformed(what, valid.error().detail);
      entry.role = std::move(*role);
      return {};
    }
    case read_field:
    case write_field: {
      auto patterns = read_patterns(o, what);
      if (!patterns) return tl::unexpected(patterns.error());
      (field == read_field ? entry.read : entry.write) = std::move(*patterns);
      return {};
    }
    case revoked_field:
      if (o.type != msgpack::type::BOOLEAN) return malformed(what, "expected a boolean");
      entry.revoked = o.via.boolean;
      return {};
  }
  FERRY_ASSERT(false && "unknown trust entry field");
  return {};
}

std::optional<Field> field_of(std::string_view name) {
  for (std::size_t i = 0; i < field_names.size(); ++i) {
    if (field_names[i] == name) return static_cast<Field>(i);
  }
  return std::nullopt;
}

// Reads the "set" map of a body: exactly the five fields, each once.
Result<void> read_set_map(const msgpack::object& set, TrustEntry& entry) {
  if (set.type != msgpack::type::MAP) return malformed("trust body: set", "expected a map");
  std::array<bool, trust_fields> seen{};
  for (std::uint32_t i = 0; i < set.via.map.size; ++i) {
    const msgpack::object_kv& kv = set.via.map.ptr[i];
    // validate_body() has made sure that map keys are strings.
    std::string_view name(kv.key.via.str.ptr, kv.key.via.str.size);
    std::string what = "trust body: set." + std::string(name);
    auto field = field_of(name);
    if (!field) return malformed(what, "unknown field");
    if (seen[*field]) return malformed(what, "named twice");
    seen[*field] = true;
    if (auto r = read_entry_field(*field, kv.val, what, entry); !r) return r;
  }
  for (std::size_t i = 0; i < trust_fields; ++i) {
    if (!seen[i]) return malformed("trust body: set." + std::string(field_names[i]), "missing");
  }
  return {};
}

Result<PublicKey> key_of_record(std::string_view key_hex) {
  bool lower_hex = std::all_of(key_hex.begin(), key_hex.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
  if (key_hex.size() != public_key_bytes * 2 || !lower_hex) {
    return malformed("trust record", "key is not a public key in 64 lower-case hex digits");
  }
  return from_hex<public_key_bytes>(key_hex);
}

}  // namespace

// ---- Patterns ----

Result<void> check_pattern(std::string_view pattern) {
  if (auto valid = check_channel_text(pattern, "pattern"); !valid) return valid;
  std::size_t star = pattern.find('*');
  if (star != std::string_view::npos && star + 1 != pattern.size()) {
    return malformed("pattern \"" + std::string(pattern) + "\"", "'*' may only end a pattern");
  }
  return {};
}

bool pattern_matches(std::string_view pattern, std::string_view channel) {
  if (!pattern.empty() && pattern.back() == '*') {
    pattern.remove_suffix(1);
    return channel.substr(0, pattern.size()) == pattern;
  }
  return channel == pattern;
}

bool any_matches(const std::vector<std::string>& patterns, std::string_view channel) {
  return std::any_of(patterns.begin(), patterns.end(),
                     [&](const std::string& pattern) { return pattern_matches(pattern, channel); });
}

Result<std::vector<std::string>> parse_pattern_list(std::string_view text) {
  std::vector<std::string> patterns;
  if (text.empty()) return patterns;
  // Bounded: each pass adds a pattern or returns, and the pass after the limit fails.
  while (true) {
    std::size_t comma = text.find(',');
    std::string_view item = trim_spaces(text.substr(0, comma));
    if (item.empty()) {
      return malformed("pattern list item " + std::to_string(patterns.size() + 1), "empty");
    }
    if (patterns.size() == trust_patterns_max) {
      return fail(Errc::limit_exceeded,
                  "pattern list: more than " + std::to_string(trust_patterns_max) + " patterns");
    }
    if (auto valid = check_pattern(item); !valid) {
      return fail(valid.error().code, "pattern list item " + std::to_string(patterns.size() + 1) +
                                          ": " + valid.error().detail);
    }
    patterns.emplace_back(item);
    if (comma == std::string_view::npos) return patterns;
    text.remove_prefix(comma + 1);
  }
}

// ---- Trust entries ----

Result<void> check_node_name(std::string_view name) {
  bool valid = !name.empty() && name.size() <= node_name_bytes_max &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
               });
  if (!valid) return malformed("node name", "must be 1-64 characters of A-Z a-z 0-9 . _ -");
  return {};
}

Result<void> check_role(std::string_view role) {
  if (role == role_station || role == role_relay || role == role_hub) return {};
  return malformed("role \"" + std::string(role) + "\"", "not station, relay or hub");
}

TrustEntry default_entry(const PublicKey& key, std::string name, std::string role) {
  TrustEntry entry{key, std::move(name), std::move(role), {}, {}, false};
  std::string own = "station/" + entry.name;
  if (entry.role == role_station) {
    entry.read = {own, std::string(broadcast_channel), std::string(trust_channel)};
    entry.write = {own};
  } else if (entry.role == role_relay) {
    entry.read = {"station/*", std::string(broadcast_channel), std::string(trust_channel)};
    entry.write = {own};
  } else if (entry.role == role_hub) {
    entry.read = {"*"};
    entry.write = {"*"};
  }
  return entry;
}

Result<void> check_entry(const TrustEntry& entry) {
  if (auto valid = check_node_name(entry.name); !valid) return valid;
  if (auto valid = check_role(entry.role); !valid) return valid;
  if (auto valid = check_pattern_list(entry.read, "read"); !valid) return valid;
  return check_pattern_list(entry.write, "write");
}

std::vector<std::uint8_t> encode_trust_body(const TrustEntry& entry) {
  msgpack::sbuffer buffer(256);
  Packer pk(buffer);
  pk.pack_map(1);
  pack_text(pk, set_part);
  pk.pack_map(static_cast<std::uint32_t>(trust_fields));
  pack_text(pk, field_names[name_field]);
  pack_text(pk, entry.name);
  pack_text(pk, field_names[role_field]);
  pack_text(pk, entry.role);
  pack_text(pk, field_names[read_field]);
  pack_patterns(pk, entry.read);
  pack_text(pk, field_names[write_field]);
  pack_patterns(pk, entry.write);
  pack_text(pk, field_names[revoked_field]);
  if (entry.revoked) {
    pk.pack_true();
  } else {
    pk.pack_false();
  }
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return std::vector<std::uint8_t>(data, data + buffer.size());
}

Result<TrustEntry> parse_trust_body(const PublicKey& key, std::span<const std::uint8_t> body) {
  auto unpacked = unpack_body(body);
  if (!unpacked) return fail(unpacked.error().code, "trust " + unpacked.error().detail);
  const msgpack::object& map = unpacked->get();
  const msgpack::object* set = nullptr;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object_kv& kv = map.via.map.ptr[i];
    std::string_view part(kv.key.via.str.ptr, kv.key.via.str.size);
    if (part != set_part) return malformed("trust body: " + std::string(part), "unknown part");
    if (set != nullptr) return malformed("trust body: set", "named twice");
    set = &kv.val;
  }
  if (set == nullptr) return malformed("trust body: set", "missing");
  TrustEntry entry;
  entry.key = key;
  if (auto r = read_set_map(*set, entry); !r) return tl::unexpected(r.error());
  return entry;
}

Result<TrustEntry> entry_from_record(std::string_view key_hex, const RecordState& state) {
  auto key = key_of_record(key_hex);
  if (!key) return tl::unexpected(key.error());
  TrustEntry entry;
  entry.key = *key;
  std::map<std::string, std::vector<std::uint8_t>> values = winning_values(state);
  for (std::size_t i = 0; i < trust_fields; ++i) {
    std::string what = "trust record " + std::string(key_hex) + ": " + std::string(field_names[i]);
    auto value = values.find(std::string(field_names[i]));
    if (value == values.end()) return malformed(what, "missing");
    auto unpacked = unpack_one(value->second, op_body_limit());
    if (!unpacked) return malformed(what, "not one msgpack value");
    if (auto r = read_entry_field(static_cast<Field>(i), unpacked->get(), what, entry); !r)
      return tl::unexpected(r.error());
  }
  return entry;
}

// ---- CurveZMQ keys ----

CurveSecretKey::CurveSecretKey() : bytes_{} {}

CurveSecretKey::~CurveSecretKey() { sodium_memzero(bytes_.data(), bytes_.size()); }

CurveSecretKey::CurveSecretKey(CurveSecretKey&& other) noexcept : bytes_(other.bytes_) {
  sodium_memzero(other.bytes_.data(), other.bytes_.size());
}

CurveSecretKey& CurveSecretKey::operator=(CurveSecretKey&& other) noexcept {
  if (this != &other) {
    bytes_ = other.bytes_;
    sodium_memzero(other.bytes_.data(), other.bytes_.size());
  }
  return *this;
}

Result<CurvePublicKey> curve_public_of(const PublicKey& key) {
  ensure_sodium();
  CurvePublicKey curve{};
  if (crypto_sign_ed25519_pk_to_curve25519(curve.data(), key.data()) != 0) {
    return malformed("public key " + to_hex(key), "not an Ed25519 key that maps to CurveZMQ");
  }
  return curve;
}

CurveSecretKey curve_secret_of(const NodeKey& key) {
  ensure_sodium();
  CurveSecretKey curve;
  int rc = crypto_sign_ed25519_sk_to_curve25519(curve.mutable_bytes().data(),
                                                key.pair_.secret_key.bytes().data());
  FERRY_ASSERT(rc == 0);
  return curve;
}

// ---- The view ----

TrustView::TrustView(const PublicKey& authority) : authority_(authority) {
  index_curve(authority_);
}

void TrustView::index_curve(const PublicKey& key) {
  if (auto curve = curve_public_of(key)) curves_[*curve].insert(key);
}

void TrustView::put(TrustEntry entry) {
  index_curve(entry.key);
  PublicKey key = entry.key;
  entries_.insert_or_assign(key, std::move(entry));
}

const TrustEntry* TrustView::find(const PublicKey& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

const TrustEntry* TrustView::find_name(std::string_view name) const {
  const TrustEntry* found = nullptr;
  for (const auto& [key, entry] : entries_) {
    if (entry.name != name) continue;
    if (!entry.revoked) return &entry;  // keys run in order: the first live one is the lowest
    if (found == nullptr) found = &entry;
  }
  return found;
}

bool TrustView::admitted(const PublicKey& key) const {
  if (key == authority_) return true;
  const TrustEntry* entry = find(key);
  return entry != nullptr && !entry->revoked;
}

bool TrustView::may_read(const PublicKey& key, std::string_view channel) const {
  if (key == authority_) return true;
  if (!admitted(key)) return false;
  return any_matches(find(key)->read, channel);
}

bool TrustView::may_write(const PublicKey& key, std::string_view channel) const {
  if (key == authority_) return true;
  if (!admitted(key)) return false;
  if (channel == trust_channel) return false;
  return any_matches(find(key)->write, channel);
}

std::optional<PublicKey> TrustView::by_curve(const CurvePublicKey& curve) const {
  auto it = curves_.find(curve);
  if (it == curves_.end() || it->second.size() != 1) return std::nullopt;
  return *it->second.begin();
}

}  // namespace ferry
