#include "config/config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace ferry::config {
namespace {

constexpr std::size_t config_file_bytes_max = 1 << 20;
constexpr std::size_t node_name_bytes_max = 64;

// Reads the keys of one TOML table, remembering which were read so that the rest are refused.
class Section {
 public:
  Section(const toml::table* table, std::string name, std::string file)
      : table_(table), name_(std::move(name)), file_(std::move(file)) {}

  tl::unexpected<Error> bad(std::string_view key, std::string_view what) const {
    return fail(Errc::malformed,
                file_ + ": " + name_ + "." + std::string(key) + ": " + std::string(what));
  }

  const toml::node* get(std::string_view key) {
    seen_.insert(std::string(key));
    return table_ == nullptr ? nullptr : table_->get(key);
  }

  // Leaves `out` as it is when the key is absent.
  Result<void> text(std::string_view key, std::string& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return {};
    if (!n->is_string()) return bad(key, "must be a string");
    out = n->value<std::string>().value_or("");
    return {};
  }

  Result<void> integer(std::string_view key, std::int64_t min, std::int64_t max,
                       std::int64_t& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return {};
    if (!n->is_integer()) return bad(key, "must be an integer");
    std::int64_t v = n->value<std::int64_t>().value_or(0);
    if (v < min || v > max) {
      return bad(key, "must be between " + std::to_string(min) + " and " + std::to_string(max) +
                          ", not " + std::to_string(v));
    }
    out = v;
    return {};
  }

  Result<void> size(std::string_view key, std::int64_t min, std::int64_t max, std::size_t& out) {
    auto v = static_cast<std::int64_t>(out);
    if (auto r = integer(key, min, max, v); !r) return r;
    out = static_cast<std::size_t>(v);
    return {};
  }

  Result<void> millis(std::string_view key, std::int64_t min, std::int64_t max,
                      std::chrono::milliseconds& out) {
    std::int64_t v = out.count();
    if (auto r = integer(key, min, max, v); !r) return r;
    out = std::chrono::milliseconds(v);
    return {};
  }

  Result<void> refuse_unknown() const {
    if (table_ == nullptr) return {};
    for (auto&& [key, value] : *table_) {
      if (!seen_.contains(std::string(key.str()))) return bad(key.str(), "unknown key");
    }
    return {};
  }

 private:
  const toml::table* table_;
  std::string name_;
  std::string file_;
  std::set<std::string> seen_;
};

bool valid_node_name(std::string_view name) {
  if (name.empty() || name.size() > node_name_bytes_max) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

Result<void> read_node(Section s, const std::string& base_dir, NodeConfig& node) {
  if (auto r = s.text("name", node.name); !r) return r;
  if (!valid_node_name(node.name)) {
    return s.bad("name", "required; 1-64 characters of A-Z a-z 0-9 . _ -");
  }
  if (auto r = s.text("data_dir", node.data_dir); !r) return r;
  if (node.data_dir.empty()) return s.bad("data_dir", "required");
  std::filesystem::path dir(node.data_dir);
  if (dir.is_relative()) dir = std::filesystem::path(base_dir) / dir;
  node.data_dir = dir.lexically_normal().string();
  std::string role = "station";
  if (auto r = s.text("role", role); !r) return r;
  if (role == "station") {
    node.role = Role::station;
  } else if (role == "relay") {
    node.role = Role::relay;
  } else if (role == "hub") {
    node.role = Role::hub;
  } else {
    return s.bad("role", "must be station, relay or hub, not \"" + role + "\"");
  }
  return s.refuse_unknown();
}

Result<void> read_ipc(Section s, const NodeConfig& node, IpcConfig& ipc) {
  if (auto r = s.text("endpoint", ipc.endpoint); !r) return r;
  if (ipc.endpoint.empty()) ipc.endpoint = "ipc://" + node.data_dir + "/ferryd.sock";
  bool known = ipc.endpoint.starts_with("ipc://") || ipc.endpoint.starts_with("tcp://127.") ||
               ipc.endpoint.starts_with("tcp://localhost:");
  if (!known) return s.bad("endpoint", "must be ipc://PATH or a loopback tcp:// address");
  std::string mode = "0660";
  if (auto r = s.text("socket_mode", mode); !r) return r;
  bool octal = !mode.empty() && mode.size() <= 4 &&
               std::all_of(mode.begin(), mode.end(), [](char c) { return c >= '0' && c <= '7'; });
  if (!octal) return s.bad("socket_mode", "must be an octal mode string such as \"0660\"");
  ipc.socket_mode = static_cast<unsigned>(std::stoul(mode, nullptr, 8));
  if ((ipc.socket_mode & 0007) != 0) {
    return s.bad("socket_mode", "must not give others access (station software uses the group)");
  }
  return s.refuse_unknown();
}

Result<void> read_limits(Section s, LimitsConfig& l) {
  for (auto r : {s.size("request_bytes_max", 1024, 16 << 20, l.request_bytes_max),
                 s.size("batch_ops_max", 1, 65536, l.batch_ops_max),
                 s.size("pull_limit_max", 1, 100000, l.pull_limit_max),
                 s.millis("pull_wait_max_ms", 0, 3'600'000, l.pull_wait_max),
                 s.size("pull_waiting_max", 1, 1'000'000, l.pull_waiting_max),
                 s.size("submit_queue_max", 1, 10'000'000, l.submit_queue_max),
                 s.millis("clock_drift_max_ms", 0, 7 * 24 * 3'600'000LL, l.clock_drift_max),
                 s.size("sign_threads", 1, 64, l.sign_threads)}) {
    if (!r) return r;
  }
  return s.refuse_unknown();
}

Result<void> read_log(Section s, LogLevel& level) {
  std::string text = "info";
  if (auto r = s.text("level", text); !r) return r;
  static const std::pair<const char*, LogLevel> levels[] = {
      {"trace", LogLevel::trace}, {"debug", LogLevel::debug}, {"info", LogLevel::info},
      {"warn", LogLevel::warn},   {"error", LogLevel::error}, {"off", LogLevel::off}};
  auto it = std::find_if(std::begin(levels), std::end(levels),
                         [&](const auto& p) { return text == p.first; });
  if (it == std::end(levels)) {
    return s.bad("level", "must be trace, debug, info, warn, error or off");
  }
  level = it->second;
  return s.refuse_unknown();
}

const toml::table* section_table(const toml::table& root, std::string_view name) {
  const toml::node* n = root.get(name);
  return n == nullptr ? nullptr : n->as_table();
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::station:
      return "station";
    case Role::relay:
      return "relay";
    case Role::hub:
      return "hub";
  }
  return "station";
}

std::string node_key_path(const Config& config) {
  return config.node.data_dir + "/" + node_key_file_name;
}

std::string render_config(const NodeConfig& node) {
  LimitsConfig d;
  std::ostringstream out;
  out << "# ferry node configuration (ferryd --config THIS_FILE). Unknown keys are refused.\n\n"
      << "[node]\n"
      << "# Shown to operators; the node's default channel is station/<name>.\n"
      << "name = \"" << node.name << "\"\n"
      << "# The node's key (node.key, mode 0600), database and IPC socket live here.\n"
      << "# A relative path is relative to this file's directory.\n"
      << "data_dir = \"" << node.data_dir << "\"\n"
      << "# station, relay or hub.\n"
      << "role = \"" << role_name(node.role) << "\"\n\n"
      << "[ipc]\n"
      << "# Where station software connects (ZeroMQ REQ). Default: ipc://<data_dir>/ferryd.sock\n"
      << "# endpoint = \"ipc:///var/lib/ferry/ferryd.sock\"\n"
      << "# Mode of the socket file: station software needs the daemon's group.\n"
      << "socket_mode = \"0660\"\n\n"
      << "[limits]\n"
      << "# Largest IPC request frame, in bytes.\n"
      << "request_bytes_max = " << d.request_bytes_max << "\n"
      << "# Most ops signed and committed together (group commit).\n"
      << "batch_ops_max = " << d.batch_ops_max << "\n"
      << "# Most ops in one pull reply, longest pull wait, most pulls waiting at once.\n"
      << "pull_limit_max = " << d.pull_limit_max << "\n"
      << "pull_wait_max_ms = " << d.pull_wait_max.count() << "\n"
      << "pull_waiting_max = " << d.pull_waiting_max << "\n"
      << "# Submits waiting for a commit; beyond this, submit answers busy.\n"
      << "submit_queue_max = " << d.submit_queue_max << "\n"
      << "# How far ahead of this node's clock a received op's time may be.\n"
      << "clock_drift_max_ms = " << d.clock_drift_max.count() << "\n"
      << "# Threads that sign a batch of new ops.\n"
      << "sign_threads = " << d.sign_threads << "\n\n"
      << "[log]\n"
      << "# trace, debug, info, warn, error or off. Logs go to stderr.\n"
      << "level = \"info\"\n";
  return out.str();
}

Result<Config> parse_config(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return fail(Errc::malformed, path + ":" + std::to_string(e.source().begin.line) + ": " +
                                     std::string(e.description()));
  }
  static const std::set<std::string> sections = {"node", "ipc", "limits", "log"};
  for (auto&& [key, value] : root) {
    std::string k(key.str());
    if (!sections.contains(k)) return fail(Errc::malformed, path + ": " + k + ": unknown section");
    if (!value.is_table()) return fail(Errc::malformed, path + ": " + k + ": must be a section");
  }
  Config config;
  config.path = path;
  std::string base_dir = std::filesystem::absolute(path).parent_path().string();
  if (!root.contains("node")) return fail(Errc::malformed, path + ": [node]: section required");
  auto node = read_node(Section(section_table(root, "node"), "node", path), base_dir, config.node);
  if (!node) return tl::unexpected(node.error());
  auto ipc = read_ipc(Section(section_table(root, "ipc"), "ipc", path), config.node, config.ipc);
  if (!ipc) return tl::unexpected(ipc.error());
  auto limits = read_limits(Section(section_table(root, "limits"), "limits", path), config.limits);
  if (!limits) return tl::unexpected(limits.error());
  auto log = read_log(Section(section_table(root, "log"), "log", path), config.log_level);
  if (!log) return tl::unexpected(log.error());
  return config;
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::not_found, path + ": cannot open the config file");
  std::string text;
  text.resize(config_file_bytes_max + 1);
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > config_file_bytes_max) return fail(Errc::malformed, path + ": too large");
  return parse_config(text, path);
}

}  // namespace ferry::config
