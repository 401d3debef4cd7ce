#include "config/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "protocol/hex.h"

namespace ferry::config {
namespace {

constexpr std::size_t config_file_bytes_max = 1 << 20;
constexpr std::size_t node_name_bytes_max = 64;
constexpr std::size_t ipc_path_bytes_max = 107;  // sockaddr_un.sun_path, less its NUL
constexpr std::int64_t message_bytes_max_min = 64 << 10;
constexpr std::int64_t message_bytes_max_max = 64 << 20;

// The defaults must pass the rules between keys that read_replication checks.
constexpr ReplicationConfig replication_defaults{};
static_assert(replication_defaults.message_bytes_max >= message_bytes_max_min);
static_assert(replication_defaults.message_bytes_max <= message_bytes_max_max);
static_assert(replication_defaults.batch_bytes_max <= replication_defaults.message_bytes_max / 2);
static_assert(replication_defaults.heartbeat_timeout > 2 * replication_defaults.heartbeat_interval);
static_assert(replication_defaults.reconnect_min <= replication_defaults.reconnect_max);

// Reads the keys of one TOML table, remembering which were read so that the rest are refused.
class Section {
 public:
  Section(const toml::table* table, std::string name, std::string file)
      : table_(table), name_(std::move(name)), file_(std::move(file)) {}

  tl::unexpected<Error> bad(std::string_view key, std::string_view what) const {
    return fail(Errc::malformed,
                file_ + ": " + name_ + "." + std::string(key) + ": " + std::string(what));
  }

  // For a rule between two keys: adds the value, and says so when it is the default.
  tl::unexpected<Error> bad_relation(std::string_view key, std::string_view rule,
                                     std::int64_t value) const {
    return bad(key, std::string(rule) + ", not " + std::to_string(value) +
                        (has(key) ? "" : " (its default)"));
  }

  bool has(std::string_view key) const { return table_ != nullptr && table_->contains(key); }

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

  Result<void> flag(std::string_view key, bool& out) {
    const toml::node* n = get(key);
    if (n == nullptr) return {};
    if (!n->is_boolean()) return bad(key, "must be true or false");
    out = n->value<bool>().value_or(out);
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

  Result<void> percent(std::string_view key, unsigned& out) {
    std::int64_t v = out;
    if (auto r = integer(key, 0, 100, v); !r) return r;
    out = static_cast<unsigned>(v);
    return {};
  }

  // Leaves `out` as it is when the key is absent.
  Result<void> endpoint(std::string_view key, std::string& out) {
    if (auto r = text(key, out); !r || !has(key)) return r;
    if (auto checked = check_peer_endpoint(out); !checked) return bad(key, checked.error().detail);
    return {};
  }

  // Leaves `out` as it is when the key is absent.
  Result<void> public_key(std::string_view key, std::optional<PublicKey>& out) {
    std::string hex;
    if (auto r = text(key, hex); !r || !has(key)) return r;
    auto parsed = parse_public_key(hex);
    if (!parsed) return bad(key, parsed.error().detail);
    out = *parsed;
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

Result<void> read_replication(Section s, ReplicationConfig& c) {
  for (auto r : {s.size("message_bytes_max", message_bytes_max_min, message_bytes_max_max,
                        c.message_bytes_max),
                 s.size("batch_ops_max", 1, 10'000, c.batch_ops_max),
                 s.size("batch_bytes_max", 4096, message_bytes_max_max / 2, c.batch_bytes_max),
                 s.size("window_batches", 1, 64, c.window_batches),
                 s.millis("heartbeat_interval_ms", 50, 60'000, c.heartbeat_interval),
                 s.millis("heartbeat_timeout_ms", 1, 600'000, c.heartbeat_timeout),
                 s.millis("reconnect_min_ms", 10, 60'000, c.reconnect_min),
                 s.millis("reconnect_max_ms", 10, 600'000, c.reconnect_max),
                 s.percent("reconnect_jitter_percent", c.reconnect_jitter_percent),
                 s.millis("receipt_interval_ms", 50, 3'600'000, c.receipt_interval),
                 s.size("peers_max", 1, 10'000, c.peers_max),
                 s.size("vector_entries_max", 16, 1'000'000, c.vector_entries_max)}) {
    if (!r) return r;
  }
  // A batch leaves room in its message for the framing and the batch's signature.
  if (c.batch_bytes_max > c.message_bytes_max / 2) {
    return s.bad_relation(
        "batch_bytes_max",
        "must be at most message_bytes_max / 2 = " + std::to_string(c.message_bytes_max / 2),
        static_cast<std::int64_t>(c.batch_bytes_max));
  }
  // One lost heartbeat must not end a session.
  if (c.heartbeat_timeout <= 2 * c.heartbeat_interval) {
    return s.bad_relation("heartbeat_timeout_ms",
                          "must be more than 2 x heartbeat_interval_ms = " +
                              std::to_string(2 * c.heartbeat_interval.count()),
                          c.heartbeat_timeout.count());
  }
  if (c.reconnect_max < c.reconnect_min) {
    return s.bad_relation(
        "reconnect_max_ms",
        "must be at least reconnect_min_ms = " + std::to_string(c.reconnect_min.count()),
        c.reconnect_max.count());
  }
  return s.refuse_unknown();
}

// Monitor tokens: printable ASCII without spaces, long enough not to be guessed.
constexpr std::size_t monitor_token_min = 16;
constexpr std::size_t monitor_token_max = 256;

Result<void> read_monitor_listen(Section& s, MonitorConfig& m) {
  if (!s.has("listen")) return {};
  std::string listen;
  if (auto r = s.text("listen", listen); !r) return r;
  std::size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return s.bad("listen", "must be HOST:PORT");
  std::string host = listen.substr(0, colon);
  std::string port = listen.substr(colon + 1);
  bool digits = !port.empty() && port.size() <= 5 &&
                std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stoul(port) > 65535) return s.bad("listen", "the port must be 0..65535");
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  bool host_ok = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == ':';
  });
  if (!host_ok) return s.bad("listen", "must be HOST:PORT with an address or a host name");
  m.host = host;
  m.port = static_cast<int>(std::stoul(port));
  return {};
}

Result<void> read_monitor(Section s, MonitorConfig& m) {
  if (auto r = s.flag("enabled", m.enabled); !r) return r;
  if (auto r = read_monitor_listen(s, m); !r) return r;
  if (auto r = s.text("token", m.token); !r) return r;
  bool token_ok =
      std::all_of(m.token.begin(), m.token.end(), [](char c) { return c > 0x20 && c < 0x7f; });
  if (!token_ok) return s.bad("token", "must be printable ASCII without spaces");
  if (!m.token.empty() &&
      (m.token.size() < monitor_token_min || m.token.size() > monitor_token_max)) {
    return s.bad("token", "must be " + std::to_string(monitor_token_min) + " to " +
                              std::to_string(monitor_token_max) + " characters");
  }
  for (auto r : {s.millis("refresh_ms", 100, 60'000, m.refresh),
                 s.millis("silent_after_ms", 1'000, 30LL * 24 * 3'600'000, m.silent_after),
                 s.millis("status_interval_ms", 0, 24 * 3'600'000, m.status_interval),
                 s.millis("status_keepalive_ms", 100, 7LL * 24 * 3'600'000, m.status_keepalive)}) {
    if (!r) return r;
  }
  if (m.status_interval.count() > 0 && m.status_keepalive < m.status_interval) {
    return s.bad_relation(
        "status_keepalive_ms",
        "must be at least status_interval_ms = " + std::to_string(m.status_interval.count()),
        m.status_keepalive.count());
  }
  if (m.enabled && !m.loopback() && m.token.empty()) {
    return s.bad("token",
                 "required: listen is not a loopback address, so the monitor needs a "
                 "bearer token");
  }
  return s.refuse_unknown();
}

Result<void> read_listen(Section s, std::string& endpoint) {
  if (auto r = s.endpoint("endpoint", endpoint); !r) return r;
  if (endpoint.empty()) return s.bad("endpoint", "required: where other nodes connect");
  return s.refuse_unknown();
}

Result<void> read_authority(Section s, std::optional<PublicKey>& key) {
  if (auto r = s.public_key("key", key); !r) return r;
  if (!key) return s.bad("key", "required: the public key of the hub that issues trust");
  return s.refuse_unknown();
}

Result<void> read_upstream(Section s, const std::vector<UpstreamConfig>& earlier,
                           UpstreamConfig& upstream) {
  std::optional<PublicKey> key;
  if (auto r = s.endpoint("endpoint", upstream.endpoint); !r) return r;
  if (upstream.endpoint.empty()) return s.bad("endpoint", "required");
  auto same = std::find_if(earlier.begin(), earlier.end(), [&](const UpstreamConfig& u) {
    return u.endpoint == upstream.endpoint;
  });
  if (same != earlier.end()) {
    auto index = static_cast<std::size_t>(same - earlier.begin()) + 1;
    return s.bad("endpoint", "upstream[" + std::to_string(index) + "] has the same endpoint");
  }
  if (auto r = s.public_key("key", key); !r) return r;
  if (!key) return s.bad("key", "required: the upstream node's public key (ferryctl id there)");
  upstream.key = *key;
  return s.refuse_unknown();
}

// `upstream` must be an array of tables ([[upstream]]); errors name them upstream[1],
// upstream[2]...
Result<void> read_upstreams(const toml::node* node, const std::string& file,
                            std::vector<UpstreamConfig>& upstreams) {
  if (node == nullptr) return {};
  const toml::array* tables = node->as_array();
  if (tables == nullptr || !tables->is_array_of_tables()) {
    return fail(Errc::malformed,
                file + ": upstream: must be [[upstream]] tables, each with endpoint and key");
  }
  for (std::size_t i = 0; i < tables->size(); ++i) {
    Section s(tables->get(i)->as_table(), "upstream[" + std::to_string(i + 1) + "]", file);
    UpstreamConfig upstream;
    if (auto r = read_upstream(std::move(s), upstreams, upstream); !r) return r;
    upstreams.push_back(std::move(upstream));
  }
  return {};
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

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// A DNS name or IPv4 address, or an IPv6 address in brackets: [::1].
bool valid_host(std::string_view host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    return std::all_of(host.begin() + 1, host.end() - 1, [](char c) {
      return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
             c == '.';
    });
  }
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
           c == '-' || c == '_';
  });
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit)) {
    return false;
  }
  unsigned long number = std::stoul(std::string(port));
  return number >= 1 && number <= 65535;
}

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(byte));
      out += escaped;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

Result<void> check_peer_endpoint(std::string_view endpoint) {
  constexpr std::string_view tcp = "tcp://";
  constexpr std::string_view ipc = "ipc://";
  if (endpoint.starts_with(ipc)) {
    std::string_view path = endpoint.substr(ipc.size());
    bool printable = std::all_of(path.begin(), path.end(), [](char c) {
      return static_cast<unsigned char>(c) >= 0x20 && c != 0x7f;
    });
    if (path.empty() || !printable) return fail(Errc::malformed, "ipc:// needs a path");
    if (path.size() > ipc_path_bytes_max) {
      return fail(Errc::malformed, "the ipc:// path is longer than " +
                                       std::to_string(ipc_path_bytes_max) + " bytes");
    }
    return {};
  }
  if (endpoint.starts_with(tcp)) {
    std::string_view address = endpoint.substr(tcp.size());
    std::size_t colon = address.rfind(':');
    if (colon == std::string_view::npos || !valid_host(address.substr(0, colon))) {
      return fail(Errc::malformed, "must be tcp://HOST:PORT with a host name or address");
    }
    if (!valid_port(address.substr(colon + 1))) {
      return fail(Errc::malformed, "the tcp:// port must be 1..65535");
    }
    return {};
  }
  return fail(Errc::malformed, "must be tcp://HOST:PORT or ipc://PATH");
}

Result<PublicKey> parse_public_key(std::string_view hex) {
  if (hex.size() != 2 * public_key_bytes || !std::all_of(hex.begin(), hex.end(), is_lower_hex)) {
    return fail(Errc::malformed, "must be a public key: exactly " +
                                     std::to_string(2 * public_key_bytes) +
                                     " lower-case hex digits");
  }
  return from_hex<public_key_bytes>(hex);
}

bool MonitorConfig::loopback() const {
  if (host == "localhost" || host == "::1") return true;
  // An IPv4 address literal in 127.0.0.0/8; not a name that merely starts with "127.".
  in_addr address{};
  return ::inet_pton(AF_INET, host.c_str(), &address) == 1 && (ntohl(address.s_addr) >> 24) == 127;
}

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

namespace {

void render_node(std::ostream& out, const NodeConfig& node) {
  out << "# ferry node configuration (ferryd --config THIS_FILE). Unknown keys are refused.\n\n"
      << "[node]\n"
      << "# Shown to operators; the node's default channel is station/<name>.\n"
      << "name = " << quoted(node.name) << "\n"
      << "# The node's key (node.key, mode 0600), database and IPC socket live here.\n"
      << "# A relative path is relative to this file's directory.\n"
      << "data_dir = " << quoted(node.data_dir) << "\n"
      << "# station, relay or hub.\n"
      << "role = " << quoted(role_name(node.role)) << "\n\n";
}

// [listen], [[upstream]] and [authority]: written out when set, shown commented out when not.
void render_peers(std::ostream& out, const NewNodeSettings& settings) {
  out << "# Where other nodes connect to this one: tcp://HOST:PORT or ipc://PATH.\n"
      << "# Without [listen] this node accepts no peers.\n";
  if (settings.listen_endpoint.empty()) {
    out << "# [listen]\n# endpoint = \"tcp://0.0.0.0:7470\"\n\n";
  } else {
    out << "[listen]\nendpoint = " << quoted(settings.listen_endpoint) << "\n\n";
  }
  out << "# The nodes this one connects to, one [[upstream]] each: the endpoint, and the node's\n"
      << "# public key (ferryctl id there); a node with another key is refused.\n";
  if (settings.upstreams.empty()) {
    out << "# [[upstream]]\n# endpoint = \"tcp://10.0.0.1:7470\"\n"
        << "# key = \"<64 lower-case hex digits>\"\n\n";
  }
  for (const UpstreamConfig& upstream : settings.upstreams) {
    out << "[[upstream]]\nendpoint = " << quoted(upstream.endpoint) << "\nkey = \""
        << to_hex(upstream.key) << "\"\n\n";
  }
  out << "# The public key of the hub that issues trust (on the hub: its own key).\n"
      << "# Required with [listen] or [[upstream]].\n";
  if (settings.authority) {
    out << "[authority]\nkey = \"" << to_hex(*settings.authority) << "\"\n\n";
  } else {
    out << "# [authority]\n# key = \"<64 lower-case hex digits>\"\n\n";
  }
}

void render_ipc_and_limits(std::ostream& out) {
  LimitsConfig d;
  out << "[ipc]\n"
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
      << "sign_threads = " << d.sign_threads << "\n\n";
}

void render_replication(std::ostream& out) {
  ReplicationConfig d;
  out << "[replication]\n"
      << "# Largest message between nodes, in bytes (65536..67108864).\n"
      << "message_bytes_max = " << d.message_bytes_max << "\n"
      << "# Most ops, and most bytes of ops, in one batch (bytes: at most message_bytes_max / 2).\n"
      << "batch_ops_max = " << d.batch_ops_max << "\n"
      << "batch_bytes_max = " << d.batch_bytes_max << "\n"
      << "# Batches sent to a peer and not yet acknowledged (1..64).\n"
      << "window_batches = " << d.window_batches << "\n"
      << "# A heartbeat this often; a peer silent for the timeout (> 2 heartbeats) is dropped.\n"
      << "heartbeat_interval_ms = " << d.heartbeat_interval.count() << "\n"
      << "heartbeat_timeout_ms = " << d.heartbeat_timeout.count() << "\n"
      << "# Reconnecting to an upstream: the first delay, backing off up to the cap, each spread\n"
      << "# by up to reconnect_jitter_percent so that stations do not all retry at once.\n"
      << "reconnect_min_ms = " << d.reconnect_min.count() << "\n"
      << "reconnect_max_ms = " << d.reconnect_max.count() << "\n"
      << "reconnect_jitter_percent = " << d.reconnect_jitter_percent << "\n"
      << "# The authority writes at most one receipt op per channel this often.\n"
      << "receipt_interval_ms = " << d.receipt_interval.count() << "\n"
      << "# Most peer sessions [listen] keeps at once.\n"
      << "peers_max = " << d.peers_max << "\n"
      << "# Most feeds in one version vector message.\n"
      << "vector_entries_max = " << d.vector_entries_max << "\n\n";
}

void render_monitor(std::ostream& out, const std::string& listen) {
  MonitorConfig d;
  std::string where = listen.empty() ? d.host + ":" + std::to_string(d.port) : listen;
  out << "[monitor]\n"
      << "# The replication monitor over HTTP (docs/monitor.md): dashboard, JSON API, /metrics.\n"
      << "enabled = true\n"
      << "# HOST:PORT; a non-loopback address needs a token (Authorization: Bearer TOKEN).\n"
      << "listen = " << quoted(where) << "\n"
      << "# token = \"<16 to 256 printable characters>\"\n"
      << "# How often the figures served are refreshed.\n"
      << "refresh_ms = " << d.refresh.count() << "\n"
      << "# A station not heard from for this long is shown as silent.\n"
      << "silent_after_ms = " << d.silent_after.count() << "\n"
      << "# Status reports sent upstream: at most this often when something changed (0: none),\n"
      << "# and at least this often even when nothing did.\n"
      << "status_interval_ms = " << d.status_interval.count() << "\n"
      << "status_keepalive_ms = " << d.status_keepalive.count() << "\n\n";
}

}  // namespace

std::string render_config(const NewNodeSettings& settings) {
  std::ostringstream out;
  render_node(out, settings.node);
  render_peers(out, settings);
  render_ipc_and_limits(out);
  render_replication(out);
  render_monitor(out, settings.monitor_listen);
  out << "[log]\n"
      << "# trace, debug, info, warn, error or off. Logs go to stderr.\n"
      << "level = \"info\"\n";
  return out.str();
}

std::string render_config(const NodeConfig& node) {
  return render_config(NewNodeSettings{node, {}, {}, {}, {}});
}

namespace {

// Every top-level key must be a known section; `upstream` is an array of tables, checked by
// read_upstreams.
Result<void> check_sections(const toml::table& root, const std::string& path) {
  static const std::set<std::string> sections = {
      "node", "listen", "upstream", "authority", "ipc", "limits", "replication", "monitor", "log"};
  for (auto&& [key, value] : root) {
    std::string k(key.str());
    if (!sections.contains(k)) return fail(Errc::malformed, path + ": " + k + ": unknown section");
    if (k != "upstream" && !value.is_table()) {
      return fail(Errc::malformed, path + ": " + k + ": must be a section");
    }
  }
  if (!root.contains("node")) return fail(Errc::malformed, path + ": [node]: section required");
  return {};
}

Result<void> read_peers(const toml::table& root, const std::string& path, Config& config) {
  if (root.contains("listen")) {
    Section s(section_table(root, "listen"), "listen", path);
    if (auto r = read_listen(std::move(s), config.listen_endpoint); !r) return r;
  }
  if (auto r = read_upstreams(root.get("upstream"), path, config.upstreams); !r) return r;
  if (root.contains("authority")) {
    Section s(section_table(root, "authority"), "authority", path);
    if (auto r = read_authority(std::move(s), config.authority); !r) return r;
  }
  if (config.replicates() && !config.authority) {
    return fail(Errc::malformed, path +
                                     ": authority.key: required when the node replicates "
                                     "([listen] or [[upstream]]): the hub's public key");
  }
  return {};
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& path) {
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return fail(Errc::malformed, path + ":" + std::to_string(e.source().begin.line) + ": " +
                                     std::string(e.description()));
  }
  if (auto sections = check_sections(root, path); !sections)
    return tl::unexpected(sections.error());
  Config config;
  config.path = path;
  std::string base_dir = std::filesystem::absolute(path).parent_path().string();
  auto section = [&](const char* name) { return Section(section_table(root, name), name, path); };
  for (auto r : {read_node(section("node"), base_dir, config.node), read_peers(root, path, config),
                 read_ipc(section("ipc"), config.node, config.ipc),
                 read_limits(section("limits"), config.limits),
                 read_replication(section("replication"), config.replication),
                 read_monitor(section("monitor"), config.monitor),
                 read_log(section("log"), config.log_level)}) {
    if (!r) return tl::unexpected(r.error());
  }
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
