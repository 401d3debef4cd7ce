// The two nodes of the replication benchmark, a hub and a station, and the IPC requests the
// benchmark makes of them (docs/ipc.md).
//
// create_hub and create_station_node each make a fresh node directory: a new node.key and the
// ferry.toml of config::render_config with every limit at its default. The hub is the authority
// and listens on loopback TCP; the station has one [[upstream]], the benchmark's link relay,
// naming the hub's key. The processes themselves are FerrydProcess (bench/ipc/ferryd_process.h).
// IpcClient owns one REQ socket and is used from one thread; a request that times out replaces
// the socket (a REQ that missed its reply cannot send again) and is never retried. cppzmq and
// msgpack-c throw, so the calls here catch and return Result values.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "bench/ipc/ferryd_process.h"
#include "bench/ipc/ipc_reply.h"
#include "protocol/error.h"

namespace ferry::bench {

struct NodeFiles {
  StationFiles files;  // config, IPC endpoint, log
  std::string data_dir;
  std::string key_hex;  // the node's public key
};

inline constexpr const char* hub_name = "zhoushan";
inline constexpr const char* station_name = "huaniao";

// A free TCP port on 127.0.0.1, as the kernel picks one (bound once and released).
[[nodiscard]] Result<int> free_loopback_port();

// `dir`/hub: role hub, its own key the authority, [listen] tcp://127.0.0.1:hub_port.
[[nodiscard]] Result<NodeFiles> create_hub(const std::string& dir, int hub_port);

// `dir`/station: role station, authority the hub, one [[upstream]] tcp://127.0.0.1:link_port
// with the hub's key.
[[nodiscard]] Result<NodeFiles> create_station_node(const std::string& dir,
                                                    const std::string& hub_key_hex, int link_port);

class IpcClient {
 public:
  IpcClient(zmq::context_t& context, std::string endpoint, std::chrono::milliseconds timeout);
  IpcClient(const IpcClient&) = delete;
  IpcClient& operator=(const IpcClient&) = delete;

  // One request, its reply. Errc::timeout when none came within the timeout.
  [[nodiscard]] Result<Reply> call(std::span<const std::uint8_t> request);
  // The same, and a reply with ok:false is an Errc::io error naming its code.
  [[nodiscard]] Result<Reply> call_ok(std::span<const std::uint8_t> request);

 private:
  [[nodiscard]] Result<void> open();
  zmq::context_t& context_;
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  std::optional<zmq::socket_t> socket_;
};

// Request frames.
std::vector<std::uint8_t> command_request(std::string_view cmd);  // status, peers, sync
std::vector<std::uint8_t> track_request(const std::string& id_hex);
std::vector<std::uint8_t> trust_add_request(const std::string& name, const std::string& key_hex,
                                            const std::string& role);

// The string at `key` of a reply map.
std::optional<std::string> reply_text(const Reply& reply, std::string_view key);

// The station's view of its upstream, from a peers reply.
struct UpstreamView {
  bool connected = false;
  std::uint64_t backlog = 0;  // its ops the upstream has not acknowledged
  std::uint64_t ops_sent = 0;
};
[[nodiscard]] Result<UpstreamView> upstream_view(const Reply& peers_reply);

// The replication counters of a status reply.
struct ReplicationView {
  std::uint64_t ops = 0;
  std::uint64_t ops_sent = 0;
  std::uint64_t ops_received = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t sessions_opened = 0;
  std::uint64_t receipts_written = 0;
};
[[nodiscard]] Result<ReplicationView> replication_view(const Reply& status_reply);

}  // namespace ferry::bench
