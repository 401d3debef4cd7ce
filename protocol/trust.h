// The trust view: which nodes may connect, and which channels each may read and write.
//
// Pure code with no I/O. The authority (the city hub) writes one trust record per node as ordinary
// signed ops in channel trust_channel: kind trust_kind, key the node's Ed25519 public key as 64
// lower-case hex digits, body {"set": {"name": str, "role": str, "read": [pattern...], "write":
// [pattern...], "revoked": bool}}. The merge (merge.h) folds them like any record, each field a
// last-writer-wins register; entry_from_record() reads the entry a merged record shows, and a
// TrustView built from those entries answers the rights questions. The authority writes whole
// entries, so a revocation is a new op with every field and revoked set.
//
// A channel pattern is a channel name, matched exactly, or a prefix followed by one '*' at the
// end, matching every channel that starts with that prefix ("station/*"; "*" alone matches every
// channel). Parsers are strict: a bad input is Errc::malformed with the reason, except that a
// pattern longer than a channel may be, or a list of more than trust_patterns_max patterns, is
// Errc::limit_exceeded. msgpack-c's unpack errors are caught inside trust.cpp; only
// std::bad_alloc may escape.
//
// The CurveZMQ transport keys of a node are derived from its Ed25519 keys (libsodium's
// crypto_sign_ed25519_pk_to_curve25519 and its secret-key counterpart), so that the trust view
// can name the node behind a transport key. That map loses the sign of the Edwards point: two
// Ed25519 keys A and -A give one CurveZMQ key, and TrustView::by_curve() answers nothing for a
// CurveZMQ key that more than one known key gives. Everything here is a plain value without
// locks: one thread uses a TrustView at a time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/error.h"
#include "protocol/merge.h"
#include "protocol/node_key.h"

namespace ferry {

inline constexpr std::string_view trust_channel = "ferry/trust";
inline constexpr std::string_view trust_kind = "ferry.trust";
inline constexpr std::string_view broadcast_channel = "broadcast";

inline constexpr std::string_view role_station = "station";
inline constexpr std::string_view role_relay = "relay";
inline constexpr std::string_view role_hub = "hub";

inline constexpr std::size_t node_name_bytes_max = 64;  // the rule of config/config.cpp
inline constexpr std::size_t trust_patterns_max = 64;   // in one read or write list

// ---- Channel patterns ----

// Errc::malformed unless the pattern is a channel name by the rules an op's channel follows
// (non-empty, valid UTF-8, no control characters), optionally followed by one final '*'; a '*'
// anywhere but at the end is refused. Errc::limit_exceeded beyond limits::channel_bytes_max.
[[nodiscard]] Result<void> check_pattern(std::string_view pattern);

// Whether the channel matches the pattern: a pattern ending in '*' matches every channel that
// starts with the text before the '*', any other pattern only the channel it names. The pattern
// is not checked (check_pattern() does that).
bool pattern_matches(std::string_view pattern, std::string_view channel);

// Whether any of the patterns matches the channel.
bool any_matches(const std::vector<std::string>& patterns, std::string_view channel);

// Parses a comma-separated list of patterns, as the CLI takes them: spaces around an item are
// dropped, an empty item is refused, and an empty text is the empty list (no channels).
[[nodiscard]] Result<std::vector<std::string>> parse_pattern_list(std::string_view text);

// ---- Trust entries ----

// Errc::malformed unless the name is 1..node_name_bytes_max characters of A-Z a-z 0-9 . _ -
[[nodiscard]] Result<void> check_node_name(std::string_view name);

// Errc::malformed unless the role is role_station, role_relay or role_hub.
[[nodiscard]] Result<void> check_role(std::string_view role);

struct TrustEntry {
  PublicKey key{};
  std::string name;
  std::string role;
  std::vector<std::string> read, write;  // channel patterns
  bool revoked = false;
  bool operator==(const TrustEntry&) const = default;
};

// The rights a node of this role starts with: a station or relay writes station/NAME; a station
// reads station/NAME, broadcast and ferry/trust; a relay reads station/*, broadcast and
// ferry/trust; a hub reads and writes '*'. The name and role are not checked here (check_entry()
// does); an unknown role gets no channels.
TrustEntry default_entry(const PublicKey& key, std::string name, std::string role);

// Errc::malformed (or limit_exceeded, see the file comment) for an entry that parse_trust_body()
// would refuse: a bad name, an unknown role, a bad pattern, too many patterns.
[[nodiscard]] Result<void> check_entry(const TrustEntry& entry);

// The body of a trust op for the entry: a map with one entry "set", whose map holds name, role,
// read, write and revoked in that order, the patterns as arrays of str. The entry should pass
// check_entry(); what it holds is written as it is.
std::vector<std::uint8_t> encode_trust_body(const TrustEntry& entry);

// Strictly parses the body of a trust op about the node `key`: exactly the one part "set", with
// exactly the five fields, each once, of the right type and by the rules of check_entry().
[[nodiscard]] Result<TrustEntry> parse_trust_body(const PublicKey& key,
                                                  std::span<const std::uint8_t> body);

// The entry a merged trust record shows: key_hex is the record's key (64 lower-case hex digits),
// and each of the five fields is its register's winning value, held to the rules of
// parse_trust_body(). A missing field or a bad value is Errc::malformed. Other registers, counters
// and sets of the record are ignored: a field once written can never be removed from a record,
// and one stray field must not cut a node off for good; submits check bodies with
// parse_trust_body().
[[nodiscard]] Result<TrustEntry> entry_from_record(std::string_view key_hex,
                                                   const RecordState& state);

// ---- CurveZMQ keys ----

inline constexpr std::size_t curve_key_bytes = 32;

using CurvePublicKey = std::array<std::uint8_t, curve_key_bytes>;

// Owns a CurveZMQ (X25519) secret key and wipes it; never copied, only moved (the source is
// wiped).
class CurveSecretKey {
 public:
  CurveSecretKey();
  ~CurveSecretKey();
  CurveSecretKey(CurveSecretKey&& other) noexcept;
  CurveSecretKey& operator=(CurveSecretKey&& other) noexcept;
  CurveSecretKey(const CurveSecretKey&) = delete;
  CurveSecretKey& operator=(const CurveSecretKey&) = delete;

  std::span<const std::uint8_t, curve_key_bytes> bytes() const { return bytes_; }
  std::span<std::uint8_t, curve_key_bytes> mutable_bytes() { return bytes_; }

 private:
  std::array<std::uint8_t, curve_key_bytes> bytes_;
};

// The CurveZMQ public key of a node; Errc::malformed for an Ed25519 key libsodium refuses to
// convert (not a point, a point of small order, or one outside the main subgroup).
[[nodiscard]] Result<CurvePublicKey> curve_public_of(const PublicKey& key);

// The CurveZMQ secret key of this node; its public key is curve_public_of(key.public_key()).
CurveSecretKey curve_secret_of(const NodeKey& key);

// ---- The view ----

// The trust entries a node holds, with the authority's key, answering who may connect and which
// channels each node may read and write. The authority is admitted and may read and write every
// channel, whatever an entry about it says; a node without an entry, or a revoked one, is not
// admitted and may do nothing; trust_channel is written by the authority alone, whatever the
// patterns say. Entries are not checked when put: the caller puts what parse_trust_body() or
// entry_from_record() returned.
class TrustView {
 public:
  explicit TrustView(const PublicKey& authority);

  const PublicKey& authority() const { return authority_; }

  // Adds the entry, or replaces the entry with its key.
  void put(TrustEntry entry);

  // nullptr when the key has no entry.
  const TrustEntry* find(const PublicKey& key) const;

  // The entry with this name; when several entries share it (a node given a new key), one that is
  // not revoked before revoked ones, then the lowest key. nullptr when none has it.
  const TrustEntry* find_name(std::string_view name) const;

  bool admitted(const PublicKey& key) const;
  bool may_read(const PublicKey& key, std::string_view channel) const;
  bool may_write(const PublicKey& key, std::string_view channel) const;

  // The Ed25519 key, among the authority and the entries, whose CurveZMQ key this is; nothing
  // when none or more than one is (see the file comment). Revoked entries are found too: ask
  // admitted() of the answer.
  std::optional<PublicKey> by_curve(const CurvePublicKey& curve) const;

  // The entries by key.
  const std::map<PublicKey, TrustEntry>& entries() const { return entries_; }

 private:
  void index_curve(const PublicKey& key);

  PublicKey authority_;
  std::map<PublicKey, TrustEntry> entries_;
  std::map<CurvePublicKey, std::set<PublicKey>> curves_;  // keys libsodium refuses are absent
};

}  // namespace ferry
