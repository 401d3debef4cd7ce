// A node's configuration: one TOML file per node, read by ferryd and ferryctl, checked completely.
//
// Every key is known: an unknown key, a wrong type or a bad value is refused with the file, the
// key and what is wrong, before the daemon touches its data directory. Relative paths are taken
// relative to the directory of the config file. Every limit has a default here and a range it
// must lie in.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

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

enum class LogLevel { trace, debug, info, warn, error, off };

struct Config {
  std::string path;  // the file it came from
  NodeConfig node;
  IpcConfig ipc;
  LimitsConfig limits;
  LogLevel log_level = LogLevel::info;
};

inline constexpr const char* node_key_file_name = "node.key";  // in data_dir, mode 0600
inline constexpr const char* config_file_name = "ferry.toml";  // what ferryctl init writes

// The node key's path: <data_dir>/node.key.
std::string node_key_path(const Config& config);

// A complete, commented config file for a new node, every limit at its default; it parses back
// to the same settings.
std::string render_config(const NodeConfig& node);

// Parses and checks a config file. Errc::malformed with "FILE: KEY: what is wrong".
[[nodiscard]] Result<Config> load_config(const std::string& path);

// The same, from text (for tests and --check-config); `path` names it in errors and anchors
// relative paths.
[[nodiscard]] Result<Config> parse_config(std::string_view text, const std::string& path);

}  // namespace ferry::config
