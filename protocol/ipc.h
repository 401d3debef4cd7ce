// The local IPC messages (docs/ipc.md): strict request parsing and reply encoding.
//
// Pure code: bytes in, bytes out. Each request frame holds one msgpack map; parse_request checks
// it completely (types, ranges, unknown keys) and never throws. Replies are encoded here so that
// every reply the daemon sends has the documented shape. The error codes are the contract's
// strings, not ferry::Errc: clients branch on them.
#pragma once

#include <chrono>
#include <cstdint>
#include <msgpack.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "protocol/merge.h"
#include "protocol/op.h"

namespace ferry::ipc {

enum class Code {
  bad_request,
  unknown_command,
  too_large,
  not_found,
  busy,
  storage_full,
  storage_error,
  internal,
  forbidden,
};
inline constexpr std::size_t code_count = 9;
std::string_view code_name(Code code);

struct Failure {
  Code code;
  std::string message;
};

template <class T>
using Parsed = tl::expected<T, Failure>;

// The code a storage or op error is answered with.
Code code_for(const Error& error);

struct SubmitRequest {
  // channel empty when the request named none; deps_from_heads set when it named no deps
  OpDraft draft;
};
struct OpRequest {
  OpId id{};
};
struct TrackRequest {
  OpId id{};
};
struct PullRequest {
  std::uint64_t after = 0;
  std::size_t limit = 0;
  std::chrono::milliseconds wait{0};
  std::vector<std::string> channels;  // empty: every channel
};
struct StatusRequest {};
struct GetRequest {
  std::string key;
  std::string channel;  // empty when the request named none: the node's default channel
};
struct ConflictsRequest {
  std::size_t limit = 0;  // records at most
};

// Replication (docs/ipc.md): the peers and trust commands, answered by the daemon.
struct PeersRequest {};
struct SyncRequest {};
// The monitor's figures (docs/monitor.md), answered by the daemon.
struct MonitorRequest {};
struct TrustListRequest {};
struct TrustAddRequest {
  std::string name;
  PublicKey key{};
  std::string role;                // empty: station
  std::vector<std::string> read;   // empty with has_read unset: the role's defaults
  std::vector<std::string> write;  // the same, with has_write
  bool has_read = false;
  bool has_write = false;
};
struct TrustRevokeRequest {
  std::string who;  // a node name or a 64-hex public key
};

using Request = std::variant<SubmitRequest, OpRequest, TrackRequest, PullRequest, StatusRequest,
                             GetRequest, ConflictsRequest, PeersRequest, SyncRequest,
                             TrustListRequest, TrustAddRequest, TrustRevokeRequest, MonitorRequest>;

// Records listed by one `conflicts` reply: by default, and at most.
inline constexpr std::size_t conflicts_limit_default = 100;
inline constexpr std::size_t conflicts_limit_max = 1000;
static_assert(conflicts_limit_default <= conflicts_limit_max);

struct RequestLimits {
  std::size_t request_bytes_max = 256 * 1024;
  std::size_t pull_limit_default = 100;
  std::size_t pull_limit_max = 1000;
  std::chrono::milliseconds pull_wait_max{30'000};
};

[[nodiscard]] Parsed<Request> parse_request(std::span<const std::uint8_t> frame,
                                            const RequestLimits& limits);

// Channels whose names start with this are written by ferry itself, never through submit.
inline constexpr std::string_view system_channel_prefix = "ferry/";

using Bytes = std::vector<std::uint8_t>;

// Builds one reply map. Start with ok() or the encode_* helpers; add fields with the packer.
class ReplyWriter {
 public:
  ReplyWriter();
  msgpack::packer<msgpack::sbuffer>& packer() { return packer_; }
  void key(std::string_view k);
  void text(std::string_view v);
  void id(const Digest& d);
  // One encoded msgpack value, written as it is (canonical merge values are).
  void value(std::span<const std::uint8_t> encoded);
  void op(const SignedOp& op, std::uint64_t arrival, std::uint64_t stored_at_ms);
  // The RECORD map of docs/ipc.md (`get`): winning fields, counters, set elements, heads and
  // conflicts of one merged record.
  void record(std::string_view channel, std::string_view key, const RecordState& state);
  Bytes take();

 private:
  void conflict_views(const std::vector<ConflictView>& views);
  msgpack::sbuffer buffer_;
  msgpack::packer<msgpack::sbuffer> packer_;
};

Bytes encode_failure(const Failure& failure);
Bytes encode_submitted(const OpId& id, std::uint64_t seq, std::uint64_t hlc,
                       std::string_view channel);
Bytes encode_track(std::uint64_t stored_at_ms);

}  // namespace ferry::ipc
