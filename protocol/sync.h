// The replication wire messages between two nodes: strict decoding and canonical encoding.
//
// Pure code: bytes in, bytes out. Every message is one ZeroMQ frame holding exactly one msgpack
// map whose string key "type" names it (hello, welcome, ops, ack, heartbeat, error). Keys are
// 32-byte bins, signatures 64-byte bins, and an op travels as its exact signed envelope bytes,
// decoded with Op::decode. A version vector travels as an array of [origin, channel, seq]
// entries in any order, each feed at most once and with seq at least 1; a feed's channel follows
// the op format's channel rules (limits::channel_bytes_max), since no op could name another, and
// encode() writes the entries in feed order. decode() checks a frame completely (size, shape,
// types, lengths, UTF-8, unknown and duplicate keys, configured limits) and never throws: every
// rejection is an Error with code Errc::malformed, or Errc::limit_exceeded for a frame, list or
// text over its limit, and a detail naming the field. It does not verify op signatures, compare
// versions or judge feed order: the session does, and answers with an ErrorMessage. encode() writes
// the fields in the documented order, so that encode(*decode(frame)) == frame for every frame
// encode() wrote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/error.h"
#include "protocol/op.h"
#include "protocol/version_vector.h"

namespace ferry::sync {

// The version this build speaks. Other versions still decode; the session refuses them.
inline constexpr std::uint64_t protocol_version = 1;

// What each side says of itself when a session opens: the connector's hello, then the
// listener's welcome. channels holds the channel patterns the side wants, vector what it holds.
struct Greeting {
  std::uint64_t version = protocol_version;
  std::string name;
  PublicKey key{};
  std::string role;
  std::vector<std::string> channels;
  VersionVector vector;
  bool operator==(const Greeting&) const = default;
};

struct Hello : Greeting {
  bool operator==(const Hello&) const = default;
};

struct Welcome : Greeting {
  bool operator==(const Welcome&) const = default;
};

// Signed ops in feed order; batch (at least 1) numbers the batch for its ack.
struct OpsBatch {
  std::uint64_t batch = 0;
  std::vector<SignedOp> ops;  // at least one
};

// The receiver has durably stored batch `batch` and now holds `vector`.
struct Ack {
  std::uint64_t batch = 0;
  VersionVector vector;
  bool operator==(const Ack&) const = default;
};

struct Heartbeat {
  bool operator==(const Heartbeat&) const = default;
};

// The codes a session is closed with. The wire carries their names; a peer may send a name this
// build does not know, so ErrorMessage keeps the text.
enum class ErrorCode {
  version,
  malformed,
  unexpected,
  identity,
  bad_signature,
  gap,
  fork,
  unauthorized,
  too_large,
  window,
  internal,
};
inline constexpr std::size_t error_code_count = 11;

// The stable lower-case name of a code, as it travels in an error message.
std::string_view error_code_name(ErrorCode code);

// The code of a name; nullopt for a name this build does not know.
std::optional<ErrorCode> error_code_from_name(std::string_view name);

struct ErrorMessage {
  std::string code;  // an error_code_name(), or a name from a newer peer
  std::string message;
  bool operator==(const ErrorMessage&) const = default;
};

ErrorMessage error_message(ErrorCode code, std::string message);

using Message = std::variant<Hello, Welcome, OpsBatch, Ack, Heartbeat, ErrorMessage>;

// The "type" string of a message.
std::string_view type_name(const Message& message);

// Bounds on what one decoded frame may hold; from config. A count or length over its bound is
// Errc::limit_exceeded, and exactly at it is accepted.
struct Limits {
  std::size_t message_bytes_max;   // the whole frame, checked before parsing
  std::size_t vector_entries_max;  // entries of one version vector
  std::size_t batch_ops_max;       // ops of one ops message
  std::size_t channels_max;        // channel patterns of one hello or welcome
  std::size_t text_bytes_max;      // name, role, error code and message, each channel pattern
};

using Bytes = std::vector<std::uint8_t>;

[[nodiscard]] Result<Message> decode(std::span<const std::uint8_t> frame, const Limits& limits);

// The frame of a message. An OpsBatch must hold at least one op, and a batch or ack number must
// be at least 1 (asserted: the decoder would refuse anything else).
Bytes encode(const Message& message);

}  // namespace ferry::sync
