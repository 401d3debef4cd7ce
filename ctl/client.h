// The C++ client of ferryd's local IPC, for station software (docs/ipc.md is the contract).
//
// A Client sends one msgpack map per request over a ZeroMQ DEALER socket (with the empty
// delimiter frame a REQ socket would add) and waits, bounded by ClientOptions::timeout, for the
// one reply. It connects lazily on the first call; after a timeout, or a reply that breaks the
// protocol, it drops its socket and opens a fresh one on the next call, so a lost reply never
// wedges it. Failures are values: an `ok: false` reply becomes an Error whose detail keeps the
// daemon's code ("busy: submit queue full"), and no exception ever leaves this API. A Client is
// used from one thread at a time; give each thread its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/error.h"

namespace ferry::client {

struct ClientOptions {
  std::string endpoint{};                    // e.g. ipc:///var/lib/ferry/huaniao/ferryd.sock
  std::chrono::milliseconds timeout{10000};  // for one reply; a pull adds its wait to this
  // ZMQ_MAXMSGSIZE: ZeroMQ drops the connection on a larger reply, which then shows as a timeout.
  std::size_t reply_bytes_max = 64 << 20;
  // When set, a call that is waiting ends with Errc::timeout and the detail "cancelled" soon after
  // *cancel becomes true (it is looked at least every 200 ms): lets a program stop a long pull
  // from its SIGINT handler.
  const std::atomic<bool>* cancel = nullptr;
};

// One transaction to file (the `submit` command). Ids are 64 hex digits.
struct Submission {
  std::string kind{};                              // e.g. case.submit
  std::string key{};                               // the record, e.g. a case number
  nlohmann::json body = nlohmann::json::object();  // must be an object; sent as a msgpack map
  std::optional<std::string> channel{};            // default on the daemon: station/<node name>
  std::optional<std::string> author{};             // the agent filing for a citizen
  // Record heads seen, sent only when not empty; empty lets the daemon name the record's current
  // heads (docs/ipc.md, submit).
  std::vector<std::string> deps{};
};

// The daemon's answer to a submit: the op is durable once this arrives.
struct Submitted {
  std::string id;
  std::uint64_t seq = 0;
  std::uint64_t hlc = 0;
  std::string channel;
};

struct PullResult {
  std::vector<nlohmann::json> ops;  // OP maps, oldest first
  std::uint64_t next = 0;           // pass as `after` in the next pull
};

// The Errc for an IPC error code: bad_request and unknown_command are malformed, too_large is
// limit_exceeded, not_found, busy, storage_full is disk_full, forbidden is unauthorized,
// storage_error, internal and codes this client does not know are io.
Errc errc_for_ipc_code(std::string_view code);

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends any request map and returns the whole reply map of an `ok: true` reply.
  [[nodiscard]] Result<nlohmann::json> call(const nlohmann::json& request);

  [[nodiscard]] Result<Submitted> submit(const Submission& submission);

  // The OP map of one op (docs/ipc.md, "The op map"); Errc::not_found when it is not held.
  [[nodiscard]] Result<nlohmann::json> op(std::string_view id_hex);

  // Where an op is: the reply without `ok`, e.g. {"state":"stored","stored_at":T}.
  [[nodiscard]] Result<nlohmann::json> track(std::string_view id_hex);

  // Ops that arrived after the cursor. limit 0 leaves the daemon's default (100); a wait > 0
  // lets the daemon hold the reply until a matching op arrives; the client waits that long on
  // top of its timeout. An empty channel list means every channel.
  [[nodiscard]] Result<PullResult> pull(std::uint64_t after, std::size_t limit = 0,
                                        std::chrono::milliseconds wait = {},
                                        const std::vector<std::string>& channels = {});

  // The node at a glance: the reply without `ok`.
  [[nodiscard]] Result<nlohmann::json> status();

  // The merged record (channel, key): the reply's RECORD map (docs/ipc.md, `get`). Without a
  // channel the daemon uses its default channel. Errc::not_found when no op of it is held.
  [[nodiscard]] Result<nlohmann::json> get(std::string_view key,
                                           std::optional<std::string> channel = std::nullopt);

  // The records with open conflicts: the reply's `conflicts` array of {channel, key, fields}.
  // limit 0 leaves the daemon's default (100).
  [[nodiscard]] Result<nlohmann::json> conflicts(std::size_t limit = 0);

  // Replication (docs/ipc.md): the node's peers, the reply's `peers` array of {name, key,
  // upstream, endpoint, connected, last_seen, backlog, ops_sent, ops_received, last_error}.
  [[nodiscard]] Result<nlohmann::json> peers();

  // Asks the daemon to drop its upstream sessions and reconnect now: the reply without `ok`.
  // A node without an upstream answers bad_request (Errc::malformed).
  [[nodiscard]] Result<nlohmann::json> sync();

  // The trust view: the reply without `ok`, {authority (hex or null), trust: [{name, key, role,
  // read, write, revoked}]}.
  [[nodiscard]] Result<nlohmann::json> trust_list();

  // Writes a trust entry for the node `key_hex` (64 hex digits, either case) on the authority's
  // daemon, which answers like a submit once the trust op is durable. An empty role is the
  // daemon's default (station); read and write, when given, replace the role's default channel
  // patterns (an empty list: no channels). Any other daemon answers forbidden
  // (Errc::unauthorized).
  [[nodiscard]] Result<Submitted> trust_add(
      std::string_view name, std::string_view key_hex, std::string_view role = {},
      const std::optional<std::vector<std::string>>& read = std::nullopt,
      const std::optional<std::vector<std::string>>& write = std::nullopt);

  // Revokes the trust entry of a node, named by its name or its public key (hex), on the
  // authority's daemon; Errc::not_found when no entry has it.
  [[nodiscard]] Result<Submitted> trust_revoke(std::string_view who);

  const ClientOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::client
