// A node's configuration: one TOML file per node, read by ferryd and ferryctl, checked completely.
//
// Every key is known: an unknown key, a wrong type or a bad value is refused with the file, the
// key and what is wrong, before the daemon touches its data directory. Relative paths are taken
// relative to the directory of the config file. Every limit has a default here and a range it
// must lie in; a limit whose range depends on another key is checked against that key's value.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/error.h"

namespace ferry::config {

enum class Role { station, relay, hub };
std::string_view role_name(Role role);

struct NodeConfig {
  std::string name;      // [A-Za-z0-9._-], 1..64 characters; the default channel is station/<name>
  std::string data_dir;  // absolute after loading
  Role role = Role::station;
};

struct IpcConfig {
  std::string endpoint;         // default ipc://<data_dir>/ferryd.sock
  unsigned socket_mode = 0660;  // for ipc:// endpoints
};

struct LimitsConfig {
  std::size_t request_bytes_max = 256 * 1024;  // one IPC request frame
  std::size_t batch_ops_max = 1024;            // ops in one group commit
  std::size_t pull_limit_max = 1000;           // ops in one pull reply
  std::chrono::milliseconds pull_wait_max{30'000};
  std::size_t pull_waiting_max = 1024;  // pulls parked at once
  std::size_t submit_queue_max = 8192;  // submits waiting for a commit; beyond: busy
  std::chrono::milliseconds clock_drift_max{5 * 60'000};
  std::size_t sign_threads = 2;
};

// A node this one connects to and pulls from and pushes to: one [[upstream]] table.
struct UpstreamConfig {
  std::string endpoint;  // tcp://HOST:PORT or ipc://PATH; no two upstreams share one
  PublicKey key{};       // the upstream node's public key; a peer with another key is refused
};

// [replication]: the bounds of node-to-node sessions, in both directions.
struct ReplicationConfig {
  std::size_t message_bytes_max = 8 << 20;  // one wire message (ZMQ_MAXMSGSIZE)
  std::size_t batch_ops_max = 512;          // ops in one batch
  std::size_t batch_bytes_max = 1 << 20;    // encoded ops in one batch; <= message_bytes_max / 2
  std::size_t window_batches = 4;           // batches sent and not yet acknowledged
  std::chrono::milliseconds heartbeat_interval{1'000};
  std::chrono::milliseconds heartbeat_timeout{5'000};  // > 2 x heartbeat_interval
  std::chrono::milliseconds reconnect_min{100};        // the first retry delay
  std::chrono::milliseconds reconnect_max{5'000};      // the cap of the backoff; >= reconnect_min
  unsigned reconnect_jitter_percent = 20;              // each delay is spread by up to this share
  std::chrono::milliseconds receipt_interval{1'000};   // one receipt op per channel at most (hub)
  std::size_t peers_max = 256;                         // sessions a listener keeps at once
  std::size_t vector_entries_max = 65'536;             // feeds in one version vector message
};

// [monitor]: the HTTP monitor (docs/monitor.md) and the status reports a node sends upstream.
struct MonitorConfig {
  bool enabled = true;
  std::string host = "127.0.0.1";  // listen = "HOST:PORT"; IPv6 hosts in brackets: [::1]:7480
  int port = 7480;                 // 0: the kernel chooses (logged; written to monitor.url)
  std::string token;               // bearer token; required when host is not a loopback address
  std::chrono::milliseconds refresh{1'000};                 // how often the figures served refresh
  std::chrono::milliseconds silent_after{30 * 60'000};      // a station unheard this long is silent
  std::chrono::milliseconds status_interval{60'000};        // least time between reports; 0: none
  std::chrono::milliseconds status_keepalive{10 * 60'000};  // most time between reports

  bool loopback() const;
};

enum class LogLevel { trace, debug, info, warn, error, off };

struct Config {
  std::string path;  // the file it came from
  NodeConfig node;
  std::string listen_endpoint;  // [listen]; empty: this node accepts no peers
  std::vector<UpstreamConfig> upstreams;
  std::optional<PublicKey> authority;  // required when listen_endpoint or upstreams is set
  IpcConfig ipc;
  LimitsConfig limits;
  ReplicationConfig replication;
  MonitorConfig monitor;
  LogLevel log_level = LogLevel::info;

  bool replicates() const { return !listen_endpoint.empty() || !upstreams.empty(); }
};

// What `ferryctl init` knows about a new node; everything else is written at its default.
struct NewNodeSettings {
  NodeConfig node;
  std::string listen_endpoint;  // empty: no [listen]
  std::vector<UpstreamConfig> upstreams;
  std::optional<PublicKey> authority;
  std::string monitor_listen;  // [monitor] listen, HOST:PORT; empty: the default
};

inline constexpr const char* node_key_file_name = "node.key";  // in data_dir, mode 0600
inline constexpr const char* config_file_name = "ferry.toml";  // what ferryctl init writes

// The node key's path: <data_dir>/node.key.
std::string node_key_path(const Config& config);

// A complete, commented config file for a new node, every limit (and all of [replication]) at
// its default; it parses back to the same settings. The settings are not checked here: parse the
// text before writing it.
std::string render_config(const NewNodeSettings& settings);

// The same for a node that does not replicate.
std::string render_config(const NodeConfig& node);

// The rules of [listen] and [[upstream]] endpoints, for callers that check a value before it is
// written to a file: tcp://HOST:PORT (port 1..65535) or ipc://PATH. Errc::malformed with what is
// wrong.
[[nodiscard]] Result<void> check_peer_endpoint(std::string_view endpoint);

// A node's public key as the config writes it: exactly 64 lower-case hex digits. Errc::malformed
// with what is wrong.
[[nodiscard]] Result<PublicKey> parse_public_key(std::string_view hex);

// Parses and checks a config file. Errc::malformed with "FILE: KEY: what is wrong".
[[nodiscard]] Result<Config> load_config(const std::string& path);

// The same, from text (for tests and --check-config); `path` names it in errors and anchors
// relative paths.
[[nodiscard]] Result<Config> parse_config(std::string_view text, const std::string& path);

}  // namespace ferry::config
