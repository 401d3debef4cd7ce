#include "ctl/commands.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>

#include "config/config.h"
#include "ctl/client.h"
#include "ctl/monitor_view.h"
#include "ctl/op_json.h"
#include "ctl/peer_tables.h"
#include "protocol/hex.h"
#include "protocol/hlc.h"
#include "protocol/ipc.h"
#include "protocol/node_key.h"
#include "protocol/trust.h"
#include "storage/audit.h"
#include "storage/op_store.h"

namespace ferry::ctl {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// Set by SIGINT and SIGTERM while `pull --follow` runs; the client's waits watch it.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the flag is set from a signal handler");

extern "C" void on_stop_signal(int) { stop_requested = true; }

// Set by SIGWINCH while `monitor` runs: the frame is drawn again at the terminal's new size.
std::atomic<bool> resize_requested{false};

extern "C" void on_resize_signal(int) { resize_requested = true; }

constexpr std::size_t short_id_digits = 12;
constexpr std::chrono::milliseconds follow_wait{10'000};
constexpr std::size_t log_scan_arrivals_max = 100'000;  // log looks this far back at most
constexpr std::size_t log_page_ops_max = 1000;
constexpr std::chrono::milliseconds monitor_interval_default{2000};
constexpr std::chrono::milliseconds monitor_interval_min{200};
constexpr std::chrono::milliseconds monitor_interval_max{60'000};
// A live monitor waits for a reply at most this long, or the interval when it is longer, and at
// most --timeout: keys are read between fetches only.
constexpr std::chrono::milliseconds monitor_fetch_wait{1000};
constexpr std::size_t key_bytes_max = 64;  // read from stdin at once

struct Globals {
  std::string config_path;
  bool json = false;
  std::uint64_t timeout_ms = 10'000;
};

struct InitArgs {
  std::string dir;
  std::string name;
  std::string role = "station";
  std::string listen;
  std::vector<std::string> upstreams;      // endpoints, paired with upstream_keys by position
  std::vector<std::string> upstream_keys;  // hex
  std::string authority;                   // hex; empty: none, or the hub's own key
  std::string monitor;                     // [monitor] listen; empty: the default
};

struct SubmitArgs {
  std::string kind;
  std::string key;
  std::string channel;
  std::string author;
  std::string body;
  std::vector<std::string> sets;
};

struct LogArgs {
  std::string channel;
  std::string key;
  std::size_t limit = 20;
};

struct PullArgs {
  std::uint64_t after = 0;
  bool follow = false;
  std::size_t limit = 0;
  std::vector<std::string> channels;
};

struct GetArgs {
  std::string key;
  std::string channel;
};

struct MonitorArgs {
  std::uint64_t interval_ms = static_cast<std::uint64_t>(monitor_interval_default.count());
  bool once = false;
};

struct TrustAddArgs {
  std::string name;
  std::string key;  // hex
  std::string role;
  std::string read;   // comma-separated patterns, checked when the command line is parsed
  std::string write;  // the same
};

struct Args {
  Globals globals;
  InitArgs init;
  SubmitArgs submit;
  std::string op_id;
  std::string track_id;
  LogArgs log;
  PullArgs pull;
  GetArgs get;
  std::size_t conflicts_limit = 0;
  TrustAddArgs trust_add;
  std::string trust_who;
  MonitorArgs monitor;
};

int failed(std::string_view message) {
  std::cerr << "ferryctl: " << message << "\n";
  return exit_failure;
}

int failed(const Error& error) {
  return failed(error.detail.empty() ? std::string(errc_name(error.code)) : error.detail);
}

void print_json(const json& value) { std::cout << json_text(value, true) << "\n"; }

std::string text_or(const json& object, const char* key, std::string fallback = "?") {
  auto it = object.find(key);
  if (it == object.end()) return fallback;
  return it->is_string() ? it->get<std::string>() : json_text(*it);
}

std::uint64_t uint_or(const json& object, const char* key, std::uint64_t fallback = 0) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : fallback;
}

// ---- configuration and connection ------------------------------------------------------------

Result<config::Config> load(const Globals& g) {
  std::string path = g.config_path.empty() ? default_config_path : g.config_path;
  auto cfg = config::load_config(path);
  if (!cfg && cfg.error().code == Errc::not_found && g.config_path.empty()) {
    return fail(Errc::not_found, cfg.error().detail + " (pass --config FILE or set FERRY_CONFIG)");
  }
  return cfg;
}

// For ipc:// endpoints, a missing or forbidden socket file is told at once rather than after
// the timeout.
Result<void> check_socket(const std::string& endpoint) {
  constexpr std::string_view scheme = "ipc://";
  if (!endpoint.starts_with(scheme) || endpoint.size() == scheme.size() ||
      endpoint[scheme.size()] == '@') {
    return {};
  }
  std::string path = endpoint.substr(scheme.size());
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return fail(Errc::not_found, "ferryd is not running at " + endpoint + " (no socket file " +
                                     path + ": " + std::strerror(errno) + ")");
  }
  if (::access(path.c_str(), R_OK | W_OK) != 0) {
    return fail(Errc::unauthorized, "cannot reach ferryd at " + endpoint + ": " + path + ": " +
                                        std::strerror(errno) +
                                        " (the socket is group-restricted: join ferryd's group)");
  }
  return {};
}

struct Online {
  config::Config config;
  client::Client client;
};

Result<Online> connect(const Globals& g) {
  auto cfg = load(g);
  if (!cfg) return tl::unexpected(cfg.error());
  if (auto reachable = check_socket(cfg->ipc.endpoint); !reachable) {
    return tl::unexpected(reachable.error());
  }
  client::ClientOptions options;
  options.endpoint = cfg->ipc.endpoint;
  options.timeout = std::chrono::milliseconds(g.timeout_ms);
  options.cancel = &stop_requested;
  return Online{std::move(*cfg), client::Client(std::move(options))};
}

std::string ipc_error_text(const Online& online, const Error& error) {
  if (error.code == Errc::timeout && error.detail != "cancelled") {
    return "ferryd is not running at " + online.config.ipc.endpoint + " (no answer within " +
           std::to_string(online.client.options().timeout.count()) + " ms)";
  }
  return error.detail.empty() ? std::string(errc_name(error.code)) : error.detail;
}

int ipc_failed(const Online& online, const Error& error) {
  return failed(ipc_error_text(online, error));
}

// ---- offline commands -------------------------------------------------------------------------

config::Role role_from(std::string_view name) {
  if (name == "relay") return config::Role::relay;
  if (name == "hub") return config::Role::hub;
  return config::Role::station;
}

Result<void> make_data_dir(const std::string& dir) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    if (!std::filesystem::is_directory(dir, ec))
      return fail(Errc::malformed, dir + " is not a directory");
    return {};
  }
  std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  std::filesystem::create_directories(parent, ec);
  if (ec) return fail(Errc::io, "cannot create " + parent.string() + ": " + ec.message());
  if (::mkdir(dir.c_str(), 0750) != 0 || ::chmod(dir.c_str(), 0750) != 0) {
    return fail(Errc::io, "cannot create " + dir + ": " + std::strerror(errno));
  }
  return {};
}

// Creates a file that must not exist yet, and syncs it.
Result<void> write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return fail(Errc::io, "cannot create " + path + ": " + std::strerror(errno));
  std::size_t written = 0;
  while (written < text.size()) {
    ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<std::size_t>(n);
  }
  bool ok = written == text.size() && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (!ok) return fail(Errc::io, "cannot write " + path + ": " + std::strerror(saved));
  return {};
}

// The peer settings from init's flags; their format was checked when the command line was
// parsed. A hub without --authority is its own authority.
config::NewNodeSettings new_node(const InitArgs& a, const std::string& dir, const NodeKey& key) {
  config::NewNodeSettings settings{
      config::NodeConfig{a.name, dir, role_from(a.role)}, a.listen, {}, {}, a.monitor};
  FERRY_ASSERT(a.upstreams.size() == a.upstream_keys.size());
  for (std::size_t i = 0; i < a.upstreams.size(); ++i) {
    auto upstream_key = config::parse_public_key(a.upstream_keys[i]);
    FERRY_ASSERT(upstream_key.has_value());
    settings.upstreams.push_back(config::UpstreamConfig{a.upstreams[i], *upstream_key});
  }
  if (!a.authority.empty()) {
    auto authority = config::parse_public_key(a.authority);
    FERRY_ASSERT(authority.has_value());
    settings.authority = *authority;
  } else if (settings.node.role == config::Role::hub) {
    settings.authority = key.public_key();
  }
  return settings;
}

int usage_failed(std::string_view message) {
  std::cerr << "ferryctl: " << message << "\n";
  return exit_usage;
}

void print_init(const InitArgs& a, const NodeKey& key, const config::NewNodeSettings& settings,
                const std::string& config_path, const std::string& key_path, const Globals& g) {
  std::string authority = settings.authority ? to_hex(*settings.authority) : "";
  if (g.json) {
    print_json({{"name", a.name},
                {"role", a.role},
                {"public_key", key.public_key_hex()},
                {"authority", settings.authority ? json(authority) : json(nullptr)},
                {"config", config_path},
                {"key_file", key_path},
                {"data_dir", settings.node.data_dir}});
    return;
  }
  std::cout << "public key  " << key.public_key_hex() << "\n";
  if (settings.authority) {
    bool own = *settings.authority == key.public_key();
    std::cout << "authority   " << authority << (own ? " (this node)" : "") << "\n";
  }
  std::cout << "config      " << config_path << "\n"
            << "key file    " << key_path << " (mode 0600: keep it secret)\n"
            << "start with  ferryd --config " << config_path << "\n";
}

int cmd_init(const InitArgs& a, const Globals& g) {
  if (a.upstreams.size() != a.upstream_keys.size()) {
    return usage_failed("--upstream and --upstream-key come in pairs, matched by position: " +
                        std::to_string(a.upstreams.size()) + " --upstream, " +
                        std::to_string(a.upstream_keys.size()) + " --upstream-key");
  }
  for (std::size_t i = 0; i < a.upstreams.size(); ++i) {
    if (std::count(a.upstreams.begin(), a.upstreams.begin() + static_cast<std::ptrdiff_t>(i),
                   a.upstreams[i]) > 0) {
      return usage_failed("--upstream " + a.upstreams[i] + " is given twice");
    }
  }
  bool replicates = !a.listen.empty() || !a.upstreams.empty();
  if (replicates && a.authority.empty() && a.role != "hub") {
    return usage_failed("--listen and --upstream need --authority HEX: the hub's public key");
  }
  std::error_code ec;
  std::string dir = std::filesystem::absolute(a.dir, ec).lexically_normal().string();
  if (ec) return failed("--dir " + a.dir + ": " + ec.message());
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  std::string config_path = dir + "/" + config::config_file_name;
  std::string key_path = dir + "/" + config::node_key_file_name;
  NodeKey key = NodeKey::generate();
  config::NewNodeSettings settings = new_node(a, dir, key);
  std::string text = config::render_config(settings);
  if (auto checked = config::parse_config(text, config_path); !checked)
    return failed(checked.error());
  for (const std::string& path : {config_path, key_path}) {
    if (std::filesystem::exists(path, ec)) {
      return failed(path + " exists: ferryctl init never overwrites a node's files");
    }
  }
  if (auto made = make_data_dir(dir); !made) return failed(made.error());
  if (auto saved = key.save(key_path); !saved) return failed(saved.error());
  if (auto written = write_new_file(config_path, text, 0640); !written) {
    return failed(written.error());
  }
  print_init(a, key, settings, config_path, key_path, g);
  return exit_ok;
}

int cmd_id(const Globals& g) {
  auto cfg = load(g);
  if (!cfg) return failed(cfg.error());
  auto key = NodeKey::load(config::node_key_path(*cfg));
  if (!key) return failed(key.error());
  if (g.json) {
    print_json({{"name", cfg->node.name},
                {"public_key", key->public_key_hex()},
                {"role", std::string(config::role_name(cfg->node.role))}});
  } else {
    std::cout << cfg->node.name << " " << key->public_key_hex() << "\n";
  }
  return exit_ok;
}

int cmd_verify(const Globals& g) {
  auto cfg = load(g);
  if (!cfg) return failed(cfg.error());
  auto report = storage::audit(cfg->node.data_dir);
  if (!report) return failed(report.error());
  if (g.json) {
    json problems = json::array();
    for (const auto& p : report->problems) {
      problems.push_back(
          {{"origin", p.origin}, {"channel", p.channel}, {"seq", p.seq}, {"what", p.what}});
    }
    print_json({{"ok", report->clean()},
                {"feeds", report->feeds},
                {"ops", report->ops},
                {"problem_count", report->problem_count},
                {"problems", std::move(problems)}});
  } else if (report->clean()) {
    std::cout << "ok: " << report->feeds << " feeds, " << report->ops << " ops verified\n";
  } else {
    for (const auto& p : report->problems) {
      std::cout << "feed " << p.origin.substr(0, short_id_digits) << "/" << p.channel << " seq "
                << p.seq << ": " << p.what << "\n";
    }
    std::cout << report->problem_count << " problems in " << report->feeds << " feeds, "
              << report->ops << " ops checked";
    if (report->problem_count > report->problems.size()) {
      std::cout << " (the first " << report->problems.size() << " shown)";
    }
    std::cout << "\n";
  }
  return report->clean() ? exit_ok : exit_failure;
}

int cmd_export(const Globals& g) {
  auto cfg = load(g);
  if (!cfg) return failed(cfg.error());
  auto exported = storage::for_each_op(cfg->node.data_dir, [](const storage::StoredOp& op) {
    auto record = export_record(op);
    if (!record) return Result<void>(tl::unexpected(record.error()));
    std::cout << json_text(*record) << "\n";
    if (!std::cout) return Result<void>(fail(Errc::io, "cannot write to stdout"));
    return Result<void>();
  });
  std::cout.flush();
  if (!exported) return failed(exported.error());
  return std::cout ? exit_ok : failed("cannot write to stdout");
}

// Channels whose digest differs between two computations (or that only one of them has).
json changed_channels(const storage::Digests& before, const storage::Digests& after) {
  std::set<std::string> names;
  for (const auto& [channel, digest] : before.channels) names.insert(channel);
  for (const auto& [channel, digest] : after.channels) names.insert(channel);
  json changed = json::array();
  for (const std::string& channel : names) {
    auto b = before.channels.find(channel);
    auto a = after.channels.find(channel);
    json b_hex = b == before.channels.end() ? json(nullptr) : json(to_hex(b->second));
    json a_hex = a == after.channels.end() ? json(nullptr) : json(to_hex(a->second));
    if (b_hex != a_hex) {
      changed.push_back({{"channel", channel}, {"before", b_hex}, {"after", a_hex}});
    }
  }
  return changed;
}

void print_rebuild(const json& r) {
  std::cout << "before    " << text_or(r, "before") << "\n"
            << "after     " << text_or(r, "after") << "\n"
            << "ops       " << uint_or(r, "ops") << " folded into " << uint_or(r, "records")
            << " records, " << uint_or(r, "pending") << " pending (waiting for deps)\n";
  for (const json& c : r["changed_channels"]) {
    std::cout << "channel   " << text_or(c, "channel") << ": " << text_or(c, "before", "-")
              << " before, " << text_or(c, "after", "-") << " after\n";
  }
  if (r["ok"].get<bool>()) {
    std::cout << "ok: the records rebuilt from the ops match the incremental merge\n";
  } else {
    std::cout << "MISMATCH: the records rebuilt from the ops differ from the incremental merge "
                 "(the store now holds the rebuilt ones)\n";
  }
}

// Offline: opens the store itself (the directory lock keeps ferryd out meanwhile).
int cmd_rebuild(const Globals& g) {
  auto cfg = load(g);
  if (!cfg) return failed(cfg.error());
  std::string db = cfg->node.data_dir + "/" + storage::database_file_name;
  std::error_code ec;
  if (!std::filesystem::exists(db, ec)) return failed("no store at " + db + ": nothing to rebuild");
  SystemWallClock wall;
  auto store = storage::OpStore::open(cfg->node.data_dir, wall);
  if (!store) {
    if (store.error().code == Errc::busy) {
      return failed(store.error().detail +
                    ": stop ferryd first, rebuild needs the store to itself");
    }
    return failed(store.error());
  }
  auto before = (*store)->digests();
  if (!before) return failed(before.error());
  auto report = (*store)->rebuild_records();
  if (!report) return failed(report.error());
  auto after = (*store)->digests();
  if (!after) return failed(after.error());
  bool same = before->node == after->node;
  json result = {{"ok", same},
                 {"before", to_hex(before->node)},
                 {"after", to_hex(after->node)},
                 {"ops", report->ops},
                 {"records", report->records},
                 {"pending", report->pending},
                 {"changed_channels", changed_channels(*before, *after)}};
  if (g.json) {
    print_json(result);
  } else {
    print_rebuild(result);
  }
  return same ? exit_ok : exit_failure;
}

// ---- online commands --------------------------------------------------------------------------

const json& object_at(const json& object, const char* key) {
  static const json empty = json::object();
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : empty;
}

// An hlc with its time, or "-" for a node that has not written anything yet.
std::string hlc_text(std::uint64_t hlc) {
  if (hlc == 0) return "-";
  return std::to_string(hlc) + " (" + utc_text_ms(hlc_ms(hlc)) + ")";
}

std::string errors_text(const json& errors) {
  std::string out;
  for (const auto& [code, count] : errors.items()) {
    if (count.is_number_unsigned() && count.get<std::uint64_t>() == 0) continue;
    if (!out.empty()) out += ", ";
    out += code + " " + json_text(count);
  }
  return out.empty() ? "none" : out;
}

// "1 channel", "2 channels".
std::string count_text(std::size_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

std::string yes_no(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_boolean()) return "?";
  return it->get<bool>() ? "yes" : "no";
}

// The replication counters of status (docs/ipc.md); peer errors list only the codes counted.
void print_replication(const json& r) {
  std::uint64_t trusted = uint_or(r, "trusted");
  std::cout << "sessions      " << uint_or(r, "sessions_opened") << " opened, "
            << uint_or(r, "sessions_lost") << " lost\n"
            << "peer ops      " << uint_or(r, "ops_sent") << " sent, " << uint_or(r, "ops_received")
            << " received\n"
            << "zap refusals  " << uint_or(r, "zap_refused") << " (handshakes of untrusted keys)\n"
            << "peer errors   sent: " << errors_text(object_at(r, "errors_sent"))
            << "; received: " << errors_text(object_at(r, "errors_received")) << "\n"
            << "trust         " << trusted << (trusted == 1 ? " entry" : " entries")
            << ", this node is the authority: " << yes_no(r, "authority") << "\n";
}

int cmd_status(const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto status = online->client.status();
  if (!status) return ipc_failed(*online, status.error());
  if (g.json) {
    print_json(printable(*status));
    return exit_ok;
  }
  const json& node = object_at(*status, "node");
  const json& ipc = object_at(*status, "ipc");
  std::cout << "node          " << text_or(node, "name") << " (" << text_or(node, "role") << ") "
            << text_or(node, "id") << "\n"
            << "ops           " << uint_or(*status, "ops") << " in " << uint_or(*status, "feeds")
            << " feeds, last arrival " << uint_or(*status, "last_arrival") << "\n"
            << "clock         " << hlc_text(uint_or(*status, "hlc")) << "\n"
            << "digest        " << text_or(*status, "digest") << " ("
            << count_text(object_at(*status, "channels").size(), "channel")
            << (yes_no(*status, "digest_current") == "no" ? ", behind the newest ops" : "") << ")\n"
            << "pending       " << uint_or(*status, "pending") << " ops waiting for their deps\n"
            << "uptime        " << duration_text(uint_or(*status, "uptime_ms")) << "\n"
            << "version       " << text_or(*status, "version") << "\n"
            << "ipc requests  " << uint_or(ipc, "requests")
            << ", errors: " << errors_text(object_at(ipc, "errors")) << "\n"
            << "submit queue  " << uint_or(ipc, "submit_queue") << ", pulls waiting "
            << uint_or(ipc, "pulls_waiting") << ", disconnects " << uint_or(ipc, "disconnects")
            << ", unsent replies " << uint_or(ipc, "unsent_replies") << "\n";
  if (auto r = status->find("replication"); r != status->end() && r->is_object()) {
    print_replication(*r);
  }
  return exit_ok;
}

int cmd_submit(const SubmitArgs& a, bool has_channel, bool has_author, const Globals& g) {
  auto body = a.sets.empty() ? body_from_text(a.body) : body_from_sets(a.sets);
  if (!body) return failed(body.error());
  client::Submission submission;
  submission.kind = a.kind;
  submission.key = a.key;
  submission.body = std::move(*body);
  if (has_channel) submission.channel = a.channel;
  if (has_author) submission.author = a.author;
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto done = online->client.submit(submission);
  if (!done) return ipc_failed(*online, done.error());
  if (g.json) {
    print_json(
        {{"id", done->id}, {"seq", done->seq}, {"hlc", done->hlc}, {"channel", done->channel}});
  } else {
    std::cout << "id       " << done->id << "\n"
              << "channel  " << done->channel << "\n"
              << "seq      " << done->seq << "\n"
              << "hlc      " << done->hlc << " (" << utc_text_ms(hlc_ms(done->hlc)) << ")\n";
  }
  return exit_ok;
}

void print_field(const std::string& key, const json& value) {
  std::cout << key << std::string(key.size() < 10 ? 10 - key.size() : 1, ' ');
  if (key == "body") {
    std::cout << json_text(value, true) << "\n";
    return;
  }
  std::cout << (value.is_string() ? value.get<std::string>() : json_text(value));
  if (value.is_number_unsigned() && (key == "hlc" || key.ends_with("_at"))) {
    std::uint64_t ms = value.get<std::uint64_t>();
    std::cout << " (" << utc_text_ms(key == "hlc" ? hlc_ms(ms) : ms) << ")";
  }
  std::cout << "\n";
}

// key: value lines, the op map's keys in the order of docs/ipc.md first; times get their UTC
// text, the body its indented JSON.
void print_fields(const json& fields) {
  static const std::vector<std::string> order = {"id",   "origin",  "channel", "seq",      "prev",
                                                 "hlc",  "kind",    "key",     "deps",     "author",
                                                 "body", "arrival", "state",   "stored_at"};
  for (const std::string& key : order) {
    if (fields.contains(key)) print_field(key, fields.at(key));
  }
  for (const auto& [key, value] : fields.items()) {
    if (std::find(order.begin(), order.end(), key) == order.end()) print_field(key, value);
  }
}

int cmd_op(const std::string& id, const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto op = online->client.op(id);
  if (!op) return ipc_failed(*online, op.error());
  if (g.json) {
    print_json(printable(*op));
  } else {
    print_fields(printable(*op));
  }
  return exit_ok;
}

// "forwarded to NAME (FINGERPRINT) at TIME": the upstream that took custody of the op.
std::string forwarded_line(const json& forwarded) {
  std::string name = terminal_text(text_or(forwarded, "name", ""));
  std::string peer = fingerprint(terminal_text(text_or(forwarded, "peer", "")));
  std::string who = name.empty() ? "peer " + peer : name + " (" + peer + ")";
  return "forwarded to " + who + " at " + utc_text_ms(uint_or(forwarded, "at"));
}

// "delivered: receipt ID (at TIME)": the authority's receipt for the op.
std::string delivered_line(const json& delivered) {
  return "delivered: receipt " + terminal_text(text_or(delivered, "receipt")) + " (at " +
         utc_text_ms(uint_or(delivered, "at")) + ")";
}

// state and stored_at as fields, forwarded and delivered as sentences, anything newer as fields.
void print_track(const json& tracked) {
  json fields = tracked;
  fields.erase("forwarded");
  fields.erase("delivered");
  print_fields(fields);
  if (auto it = tracked.find("forwarded"); it != tracked.end()) {
    std::cout << (it->is_object() ? forwarded_line(*it) : "forwarded " + json_text(*it)) << "\n";
  }
  if (auto it = tracked.find("delivered"); it != tracked.end()) {
    std::cout << (it->is_object() ? delivered_line(*it) : "delivered " + json_text(*it)) << "\n";
  }
}

// The daemon names the upstream an op was forwarded to from its trust entries, and the authority
// (a station's usual upstream) has none: then the name it gave in its session, from `peers`, is
// shown instead (best effort: without it the fingerprint alone is shown).
void name_forwarded_peer(client::Client& client, json& tracked) {
  auto forwarded = tracked.find("forwarded");
  if (forwarded == tracked.end() || !forwarded->is_object()) return;
  if (!text_or(*forwarded, "name", "").empty()) return;
  auto peers = client.peers();
  if (!peers) return;
  std::string key = text_or(*forwarded, "peer", "");
  for (const json& peer : *peers) {
    if (peer.is_object() && text_or(peer, "key", "") == key) {
      (*forwarded)["name"] = text_or(peer, "name", "");
      return;
    }
  }
}

int cmd_track(const std::string& id, const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto tracked = online->client.track(id);
  if (!tracked) return ipc_failed(*online, tracked.error());
  if (g.json) {
    print_json(printable(*tracked));
  } else {
    name_forwarded_peer(online->client, *tracked);
    print_track(printable(*tracked));
  }
  return exit_ok;
}

// "name      first line" and the other lines indented below it; "-" when there are none.
void print_section(const std::string& name, const std::vector<std::string>& lines) {
  std::string pad(10, ' ');
  std::cout << name << pad.substr(std::min(name.size(), pad.size() - 1));
  if (lines.empty()) std::cout << "-\n";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    std::cout << (i == 0 ? "" : pad) << lines[i] << "\n";
  }
}

std::vector<std::string> entry_lines(const json& map) {
  std::vector<std::string> lines;
  for (const auto& [field, value] : map.items()) lines.push_back(field + " = " + json_text(value));
  return lines;
}

std::vector<std::string> conflict_lines(const json& conflicts) {
  std::vector<std::string> lines;
  for (const json& c : conflicts) {
    const json& values = c.contains("values") ? c["values"] : json::array();
    lines.push_back(text_or(c, "field") + ": " + std::to_string(values.size()) +
                    " concurrent values, the first wins");
    for (const json& v : values) {
      std::string author = v.contains("author") && v["author"].is_string()
                               ? ", by " + v["author"].get<std::string>()
                               : "";
      lines.push_back("  " + (v.contains("value") ? json_text(v["value"]) : "?") + "  (" +
                      utc_text_ms(hlc_ms(uint_or(v, "hlc"))) + author + ", op " +
                      text_or(v, "id").substr(0, short_id_digits) + " from " +
                      text_or(v, "origin").substr(0, short_id_digits) + ")");
    }
  }
  return lines;
}

void print_record(const json& record) {
  std::vector<std::string> heads;
  for (const json& head : record.value("heads", json::array())) {
    heads.push_back(head.is_string() ? head.get<std::string>() : json_text(head));
  }
  std::cout << "record    " << text_or(record, "channel") << " " << text_or(record, "key") << "\n"
            << "ops       " << uint_or(record, "ops") << ", updated "
            << hlc_text(uint_or(record, "updated_hlc")) << "\n";
  print_section("heads", heads);
  print_section("fields", entry_lines(object_at(record, "fields")));
  print_section("counters", entry_lines(object_at(record, "counters")));
  print_section("sets", entry_lines(object_at(record, "sets")));
  print_section("conflicts", conflict_lines(record.value("conflicts", json::array())));
}

int cmd_get(const GetArgs& a, bool has_channel, const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  std::optional<std::string> channel;
  if (has_channel) channel = a.channel;
  auto record = online->client.get(a.key, channel);
  if (!record) return ipc_failed(*online, record.error());
  if (g.json) {
    print_json(printable(*record));
  } else {
    print_record(printable(*record));
  }
  return exit_ok;
}

int cmd_conflicts(std::size_t limit, const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto conflicts = online->client.conflicts(limit);
  if (!conflicts) return ipc_failed(*online, conflicts.error());
  if (g.json) {
    print_json(printable(*conflicts));
    return exit_ok;
  }
  for (const json& c : *conflicts) {
    std::string fields;
    for (const json& field : c.value("fields", json::array())) {
      fields += (fields.empty() ? "" : ", ") + (field.is_string() ? field.get<std::string>() : "?");
    }
    std::cout << text_or(c, "channel") << "  " << text_or(c, "key") << "  " << fields << "\n";
  }
  std::size_t shown = limit > 0 ? limit : ipc::conflicts_limit_default;
  if (conflicts->empty()) {
    std::cout << "no conflicts\n";
  } else if (conflicts->size() >= shown) {
    std::cout << "(the first " << conflicts->size()
              << " records with conflicts; --limit shows more)\n";
  }
  return exit_ok;
}

std::string log_line(const json& op) {
  std::string id = text_or(op, "id");
  return text_or(op, "arrival") + "  " + utc_text_ms(hlc_ms(uint_or(op, "hlc"))) + "  " +
         text_or(op, "channel") + "  #" + text_or(op, "seq") + "  " + text_or(op, "kind") + "  " +
         text_or(op, "key") + "  " + id.substr(0, short_id_digits);
}

// Reads pull pages over the most recent arrivals, keeping the last `limit` ops that match.
int cmd_log(const LogArgs& a, const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto status = online->client.status();
  if (!status) return ipc_failed(*online, status.error());
  std::uint64_t last = uint_or(*status, "last_arrival");
  std::uint64_t after = last > log_scan_arrivals_max ? last - log_scan_arrivals_max : 0;
  std::vector<std::string> channels;
  if (!a.channel.empty()) channels.push_back(a.channel);
  std::size_t page_ops = std::min(log_page_ops_max, online->config.limits.pull_limit_max);
  std::size_t pages_max = log_scan_arrivals_max / page_ops + 2;
  std::deque<json> kept;
  for (std::size_t pages = 0; pages < pages_max && after < last; ++pages) {
    auto page = online->client.pull(after, page_ops, 0ms, channels);
    if (!page) return ipc_failed(*online, page.error());
    for (json& op : page->ops) {
      if (!a.key.empty() && text_or(op, "key", "") != a.key) continue;
      kept.push_back(std::move(op));
      if (kept.size() > a.limit) kept.pop_front();
    }
    if (page->next <= after) break;
    after = page->next;
  }
  if (g.json) {
    json all = json::array();
    for (const json& op : kept) all.push_back(printable(op));
    print_json(all);
  } else {
    for (const json& op : kept) std::cout << log_line(op) << "\n";
  }
  return exit_ok;
}

void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: a waiting poll wakes up at once
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int cmd_pull(const PullArgs& a, const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  if (a.follow) install_stop_handlers();
  auto wait = a.follow ? std::min(follow_wait, online->config.limits.pull_wait_max) : 0ms;
  std::uint64_t after = a.after;
  while (!stop_requested) {
    auto page = online->client.pull(after, a.limit, wait, a.channels);
    if (stop_requested) break;
    if (!page) return ipc_failed(*online, page.error());
    for (const json& op : page->ops) std::cout << json_text(printable(op)) << "\n";
    std::cout.flush();
    if (!std::cout) return failed("cannot write to stdout");
    after = page->next;
    if (!a.follow) break;
    if (page->ops.empty() && wait.count() == 0) {
      timespec pause{1, 0};  // the daemon allows no waiting pulls: poll once a second
      ::nanosleep(&pause, nullptr);
    }
  }
  std::cerr << "next " << after << "\n";
  return exit_ok;
}

// ---- replication -------------------------------------------------------------------------------

std::uint64_t now_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

void print_lines(const std::vector<std::string>& lines) {
  for (const std::string& line : lines) std::cout << line << "\n";
}

int cmd_peers(const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto peers = online->client.peers();
  if (!peers) return ipc_failed(*online, peers.error());
  if (g.json) {
    print_json(printable(*peers));
  } else {
    print_lines(peers_table(*peers, now_ms()));
  }
  return exit_ok;
}

bool is_upstream(const json& peer) {
  auto it = peer.is_object() ? peer.find("upstream") : peer.end();
  return it != peer.end() && it->is_boolean() && it->get<bool>();
}

// The daemon answers sync with `ok` alone; the upstreams it reconnects come from `peers`, asked
// after it (best effort: the sync is done either way).
int cmd_sync(const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto done = online->client.sync();
  if (!done) return ipc_failed(*online, done.error());
  auto peers = online->client.peers();
  json upstreams = json::array();
  if (peers) {
    for (const json& peer : *peers) {
      if (is_upstream(peer)) upstreams.push_back(peer);
    }
  }
  if (g.json) {
    json shown = *done;
    shown["reconnecting"] = std::move(upstreams);
    print_json(printable(shown));
    return exit_ok;
  }
  std::cout << "ferryd dropped its upstream sessions and is reconnecting now";
  if (upstreams.empty()) {
    std::cout << " (ferryctl peers shows when they are connected)\n";
    return exit_ok;
  }
  std::cout << ":\n";
  for (const json& up : upstreams) {
    std::cout << "  " << terminal_text(text_or(up, "name")) << "  "
              << fingerprint(text_or(up, "key", "")) << "  "
              << terminal_text(text_or(up, "endpoint")) << "\n";
  }
  std::cout << "ferryctl peers shows when they are connected\n";
  return exit_ok;
}

int cmd_trust_list(const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto list = online->client.trust_list();
  if (!list) return ipc_failed(*online, list.error());
  if (g.json) {
    print_json(printable(*list));
  } else {
    print_lines(trust_table(*list));
  }
  return exit_ok;
}

// Trust is written on the authority's daemon only; any other answers forbidden.
int trust_failed(const Online& online, const Error& error) {
  if (error.code == Errc::unauthorized) {
    return failed(error.detail +
                  " (this node is not the trust authority: run the command with the config of "
                  "the hub whose public key is this node's [authority] key)");
  }
  return ipc_failed(online, error);
}

void print_trust_op(const client::Submitted& done, const std::string& what, const Globals& g) {
  if (g.json) {
    print_json({{"id", done.id}, {"seq", done.seq}, {"hlc", done.hlc}, {"channel", done.channel}});
    return;
  }
  std::cout << "id       " << done.id << "\n" << what << "\n";
}

// The patterns of --read or --write, given or not (an empty text is the empty list).
Result<std::optional<std::vector<std::string>>> patterns_given(const std::string& text,
                                                               bool given) {
  if (!given) return std::nullopt;
  auto patterns = parse_pattern_list(text);
  if (!patterns) return tl::unexpected(patterns.error());
  return std::optional<std::vector<std::string>>(std::move(*patterns));
}

// name, key and role were checked when the command line was parsed; they are checked again here,
// so that nothing malformed is ever sent.
int cmd_trust_add(const TrustAddArgs& a, bool has_read, bool has_write, const Globals& g) {
  if (auto valid = check_node_name(a.name); !valid) return usage_failed(valid.error().detail);
  if (auto key = config::parse_public_key(a.key); !key) {
    return usage_failed("PUBKEY " + key.error().detail);
  }
  if (auto valid = check_role(a.role.empty() ? role_station : a.role); !valid) {
    return usage_failed(valid.error().detail);
  }
  auto read = patterns_given(a.read, has_read);
  if (!read) return usage_failed("--read: " + read.error().detail);
  auto write = patterns_given(a.write, has_write);
  if (!write) return usage_failed("--write: " + write.error().detail);
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto done = online->client.trust_add(a.name, a.key, a.role, *read, *write);
  if (!done) return trust_failed(*online, done.error());
  std::string role = a.role.empty() ? std::string(role_station) : a.role;
  print_trust_op(*done, "trusted  " + a.name + " as " + role + ", key " + fingerprint(a.key), g);
  return exit_ok;
}

int cmd_trust_revoke(const std::string& who, const Globals& g) {
  if (auto valid = check_node_name(who); !valid) {
    return usage_failed("NAME|PUBKEY: " + valid.error().detail);
  }
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto done = online->client.trust_revoke(who);
  if (!done) return trust_failed(*online, done.error());
  print_trust_op(*done, "revoked  " + who, g);
  return exit_ok;
}

// ---- monitor -----------------------------------------------------------------------------------

struct TerminalSize {
  std::size_t columns = monitor_width_default;
  std::size_t rows = 0;  // unknown: the frame is not cut
};

TerminalSize terminal_size() {
  winsize size{};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) != 0 || size.ws_col == 0) return {};
  return TerminalSize{size.ws_col, size.ws_row};
}

// While a live monitor runs, SIGINT and SIGTERM end it (the loop sees stop_requested and returns,
// so every destructor restores what it changed) and SIGWINCH redraws it. The handlers that were
// there before come back with the destructor.
class MonitorSignals {
 public:
  MonitorSignals() {
    resize_requested = false;
    for (std::size_t i = 0; i < signals_.size(); ++i) {
      struct sigaction action {};
      action.sa_handler = signals_[i] == SIGWINCH ? on_resize_signal : on_stop_signal;
      sigemptyset(&action.sa_mask);
      action.sa_flags = 0;  // no SA_RESTART: a waiting poll wakes up at once
      ::sigaction(signals_[i], &action, &saved_[i]);
    }
  }
  ~MonitorSignals() {
    for (std::size_t i = 0; i < signals_.size(); ++i) ::sigaction(signals_[i], &saved_[i], nullptr);
  }
  MonitorSignals(const MonitorSignals&) = delete;
  MonitorSignals& operator=(const MonitorSignals&) = delete;

 private:
  static constexpr std::array<int, 3> signals_{SIGINT, SIGTERM, SIGWINCH};
  std::array<struct sigaction, 3> saved_{};
};

// The terminal of a live monitor: stdin, when it is a terminal, without line buffering and echo
// (so that one key press is read at once; ISIG stays, so Ctrl-C still sends SIGINT), the screen
// cleared and the cursor hidden. The destructor restores the terminal's settings and the cursor.
class LiveTerminal {
 public:
  LiveTerminal() {
    keys_ = ::isatty(STDIN_FILENO) == 1 && ::tcgetattr(STDIN_FILENO, &saved_) == 0;
    if (keys_) {
      termios changed = saved_;
      changed.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      changed.c_cc[VMIN] = 1;
      changed.c_cc[VTIME] = 0;
      keys_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &changed) == 0;
    }
    std::cout << "\x1b[?25l\x1b[2J" << std::flush;  // hide the cursor, clear the screen
  }
  ~LiveTerminal() {
    std::cout << "\n\x1b[?25h" << std::flush;  // below the frame, the cursor shown again
    if (keys_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  LiveTerminal(const LiveTerminal&) = delete;
  LiveTerminal& operator=(const LiveTerminal&) = delete;

  // Whether key presses can be read from stdin.
  bool keys() const { return keys_; }

 private:
  termios saved_{};
  bool keys_ = false;
};

// Draws over the previous frame in place: cursor home, each line cleared to its end, the rest of
// the screen cleared. No newline after the last line, so that a frame as tall as the terminal
// does not scroll.
void draw_frame(const std::vector<std::string>& lines) {
  std::string frame = "\x1b[H";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    frame += lines[i] + "\x1b[K" + (i + 1 < lines.size() ? "\n" : "");
  }
  std::cout << frame << "\x1b[J" << std::flush;
}

enum class Wake { refresh, redraw, quit };

// Waits until the deadline for q or Q on stdin (when keys are read), a stop signal (quit), or a
// resize (redraw). A terminal that hangs up quits too.
Wake wait_for_key(bool keys, std::chrono::steady_clock::time_point deadline) {
  while (!stop_requested) {  // bounded by the deadline: every pass but the last one waits
    auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Wake::refresh;
    pollfd in{STDIN_FILENO, POLLIN, 0};
    int ready = ::poll(keys ? &in : nullptr, keys ? 1 : 0, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) {
      if (resize_requested.exchange(false)) return Wake::redraw;
      continue;
    }
    if (ready < 0 || (in.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return Wake::quit;
    if (ready == 0) return Wake::refresh;
    char bytes[key_bytes_max];
    ssize_t got = ::read(STDIN_FILENO, bytes, sizeof bytes);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return Wake::quit;  // end of input: no key can come any more
    if (std::any_of(bytes, bytes + got, [](char c) { return c == 'q' || c == 'Q'; })) {
      return Wake::quit;
    }
  }
  return Wake::quit;
}

// One fetch for the live view; a failure comes back as the text to show.
Result<MonitorReply> fetch_monitor(Online& online) {
  if (auto reachable = check_socket(online.config.ipc.endpoint); !reachable) {
    return tl::unexpected(reachable.error());
  }
  auto reply = online.client.call({{"cmd", "monitor"}});
  if (!reply) return fail(reply.error().code, ipc_error_text(online, reply.error()));
  return decode_monitor_reply(*reply);
}

// `monitor --once`: one frame, or the reply as JSON, and the usual exit codes.
int monitor_once(const Globals& g) {
  auto online = connect(g);
  if (!online) return failed(online.error());
  auto reply = online->client.call({{"cmd", "monitor"}});
  if (!reply) return ipc_failed(*online, reply.error());
  auto decoded = decode_monitor_reply(*reply);
  if (!decoded) return failed(decoded.error());
  if (g.json) {
    reply->erase("ok");
    print_json(printable(*reply));
  } else {
    print_lines(render_monitor(*decoded, "", terminal_size().columns));
  }
  return exit_ok;
}

// The live view: fetches every interval and redraws until q, SIGINT or SIGTERM. A daemon that
// does not answer is shown on the screen (over the last figures it gave) and asked again.
int cmd_monitor(const MonitorArgs& a, const Globals& g) {
  if (g.json && !a.once) return usage_failed("monitor: --json needs --once");
  if (a.once) return monitor_once(g);
  auto cfg = load(g);
  if (!cfg) return failed(cfg.error());
  std::chrono::milliseconds interval(static_cast<std::chrono::milliseconds::rep>(a.interval_ms));
  client::ClientOptions options;
  options.endpoint = cfg->ipc.endpoint;
  options.timeout =
      std::min(std::chrono::milliseconds(g.timeout_ms), std::max(interval, monitor_fetch_wait));
  options.cancel = &stop_requested;
  Online online{std::move(*cfg), client::Client(std::move(options))};
  MonitorSignals signals;  // before the terminal: its settings are restored first
  LiveTerminal terminal;
  std::optional<MonitorReply> shown;
  while (!stop_requested) {
    auto deadline = std::chrono::steady_clock::now() + interval;
    std::string problem;
    if (auto fetched = fetch_monitor(online)) {
      shown = std::move(*fetched);
    } else {
      problem = "no update: " + fetched.error().detail + "; retrying every " +
                std::to_string(interval.count()) + " ms";
    }
    Wake wake = Wake::redraw;
    while (wake == Wake::redraw && !stop_requested) {
      TerminalSize size = terminal_size();
      draw_frame(fit_rows(render_monitor(shown, problem, size.columns), size.rows, size.columns));
      wake = wait_for_key(terminal.keys(), deadline);
    }
    if (wake == Wake::quit) break;
  }
  return exit_ok;
}

// ---- the command line -------------------------------------------------------------------------

using Commands = std::vector<std::pair<CLI::App*, std::function<int()>>>;

// A CLI11 check from one of config's rules, so that a bad value is a usage error (exit 2) and
// nothing is written.
template <class Rule>
CLI::Validator rule_check(Rule rule, const char* name) {
  return CLI::Validator(
      [rule](std::string& value) {
        auto checked = rule(value);
        return checked ? std::string() : checked.error().detail;
      },
      name);
}

void define_init_peers(CLI::App& init, InitArgs& a) {
  auto endpoint = rule_check(config::check_peer_endpoint, "ENDPOINT");
  auto key = rule_check(config::parse_public_key, "HEX");
  init.add_option("--listen", a.listen, "Accept peers here: tcp://HOST:PORT or ipc://PATH")
      ->check(endpoint);
  init.add_option("--upstream", a.upstreams,
                  "Connect to this node (repeatable; one --upstream-key each)")
      ->check(endpoint)
      ->allow_extra_args(false);
  init.add_option("--upstream-key", a.upstream_keys,
                  "That node's public key, 64 hex digits (repeatable, in --upstream order)")
      ->check(key)
      ->allow_extra_args(false);
  init.add_option("--authority", a.authority,
                  "Public key of the hub that issues trust (a hub's default: its own key)")
      ->check(key);
  init.add_option("--monitor", a.monitor,
                  "The monitor's HOST:PORT (default 127.0.0.1:7480; one port per node)");
}

void define_offline(CLI::App& app, Args& a, Commands& commands) {
  auto* init = app.add_subcommand("init", "Create a node: data directory, node key and config");
  init->add_option("--dir", a.init.dir, "Data directory (created with mode 0750)")->required();
  init->add_option("--name", a.init.name, "Node name: 1-64 of A-Z a-z 0-9 . _ -")->required();
  init->add_option("--role", a.init.role, "station (default), relay or hub")
      ->check(CLI::IsMember({"station", "relay", "hub"}));
  define_init_peers(*init, a.init);
  commands.emplace_back(init, [&a] { return cmd_init(a.init, a.globals); });
  auto* id = app.add_subcommand("id", "Print the node's name and public key");
  commands.emplace_back(id, [&a] { return cmd_id(a.globals); });
  auto* verify = app.add_subcommand("verify", "Audit every feed's chain and signatures (offline)");
  commands.emplace_back(verify, [&a] { return cmd_verify(a.globals); });
  auto* exp = app.add_subcommand("export", "Print every op as JSON Lines, in arrival order");
  commands.emplace_back(exp, [&a] { return cmd_export(a.globals); });
  auto* rebuild = app.add_subcommand(
      "rebuild", "Recompute every record from the ops and compare digests (ferryd stopped)");
  commands.emplace_back(rebuild, [&a] { return cmd_rebuild(a.globals); });
}

void define_submit(CLI::App& app, Args& a, Commands& commands) {
  SubmitArgs& s = a.submit;
  auto* submit = app.add_subcommand("submit", "File a transaction; returns once it is durable");
  submit->add_option("--kind", s.kind, "What it is, e.g. case.submit")->required();
  submit->add_option("--key", s.key, "The record it changes, e.g. a case number")->required();
  auto* channel = submit->add_option("--channel", s.channel, "Default: station/<node name>");
  auto* author = submit->add_option("--author", s.author, "The agent filing for a citizen");
  auto* body = submit->add_option_group("body", "The transaction's fields, one of:");
  body->add_option("--body", s.body, "A JSON object");
  body->add_option("--set", s.sets, "field=value, repeatable; JSON numbers, true, false, null")
      ->allow_extra_args(false);
  body->require_option(1);
  commands.emplace_back(submit, [&a, channel, author] {
    return cmd_submit(a.submit, channel->count() > 0, author->count() > 0, a.globals);
  });
}

void define_records(CLI::App& app, Args& a, Commands& commands) {
  auto* get =
      app.add_subcommand("get", "Show one merged record: fields, counters, sets, conflicts");
  get->add_option("key", a.get.key, "The record's key, e.g. a case number")->required();
  auto* channel = get->add_option("--channel", a.get.channel, "Default: station/<node name>");
  commands.emplace_back(get,
                        [&a, channel] { return cmd_get(a.get, channel->count() > 0, a.globals); });
  auto* conflicts = app.add_subcommand("conflicts", "List the records with open conflicts");
  conflicts
      ->add_option(
          "--limit", a.conflicts_limit,
          "Records at most (default 100, at most " + std::to_string(ipc::conflicts_limit_max) + ")")
      ->check(CLI::Range(std::size_t{1}, ipc::conflicts_limit_max));
  commands.emplace_back(conflicts, [&a] { return cmd_conflicts(a.conflicts_limit, a.globals); });
}

void define_online(CLI::App& app, Args& a, Commands& commands) {
  auto* status = app.add_subcommand("status", "Show the node at a glance");
  commands.emplace_back(status, [&a] { return cmd_status(a.globals); });
  define_submit(app, a, commands);
  auto* op = app.add_subcommand("op", "Show one op");
  op->add_option("id", a.op_id, "The op's id (64 hex digits)")->required();
  commands.emplace_back(op, [&a] { return cmd_op(a.op_id, a.globals); });
  auto* track = app.add_subcommand("track", "Show where an op is (stored, forwarded, delivered)");
  track->add_option("id", a.track_id, "The op's id (64 hex digits)")->required();
  commands.emplace_back(track, [&a] { return cmd_track(a.track_id, a.globals); });
  auto* log = app.add_subcommand("log", "Show the most recent ops, newest last");
  log->add_option("--channel", a.log.channel, "Only this channel");
  log->add_option("--key", a.log.key, "Only ops of this record");
  log->add_option("--limit", a.log.limit, "How many (default 20)")->check(CLI::Range(1, 100'000));
  commands.emplace_back(log, [&a] { return cmd_log(a.log, a.globals); });
  auto* pull = app.add_subcommand("pull", "Print the ops that arrived after a cursor (JSON Lines)");
  pull->add_option("--after", a.pull.after, "The cursor: an arrival number (default 0)");
  pull->add_flag("--follow", a.pull.follow, "Keep waiting for new ops until SIGINT or SIGTERM");
  pull->add_option("--limit", a.pull.limit, "Ops per request (default: the daemon's, 100)")
      ->check(CLI::Range(1, 100'000));
  pull->add_option("--channel", a.pull.channels, "Only these channels (repeatable)")
      ->allow_extra_args(false);
  commands.emplace_back(pull, [&a] { return cmd_pull(a.pull, a.globals); });
  define_records(app, a, commands);
}

void define_trust(CLI::App& app, Args& a, Commands& commands) {
  auto* trust = app.add_subcommand("trust", "Show or change which nodes may replicate, and how");
  trust->require_subcommand(1);
  auto* list = trust->add_subcommand("list", "List the trust entries and the authority");
  commands.emplace_back(list, [&a] { return cmd_trust_list(a.globals); });
  TrustAddArgs& t = a.trust_add;
  auto* add = trust->add_subcommand("add", "Trust a node (run on the authority's node)");
  add->add_option("name", t.name, "The node's name: 1-64 of A-Z a-z 0-9 . _ -")
      ->required()
      ->check(rule_check(check_node_name, "NAME"));
  add->add_option("pubkey", t.key, "The node's public key: 64 hex digits, as ferryctl id prints it")
      ->required()
      ->check(rule_check(config::parse_public_key, "PUBKEY"));
  add->add_option("--role", t.role, "station (default), relay or hub")
      ->check(CLI::IsMember({"station", "relay", "hub"}));
  auto patterns = rule_check(parse_pattern_list, "P,...");
  auto* read = add->add_option("--read", t.read,
                               "Channels it may read: comma-separated patterns such as station/*; "
                               "default: its role's; \"\": none")
                   ->check(patterns);
  auto* write =
      add->add_option("--write", t.write, "Channels it may write, the same way")->check(patterns);
  commands.emplace_back(add, [&a, read, write] {
    return cmd_trust_add(a.trust_add, read->count() > 0, write->count() > 0, a.globals);
  });
  auto* revoke =
      trust->add_subcommand("revoke", "Revoke a node's trust (run on the authority's node)");
  revoke->add_option("who", a.trust_who, "The node's name or public key")
      ->required()
      ->check(rule_check(check_node_name, "NAME|PUBKEY"));
  commands.emplace_back(revoke, [&a] { return cmd_trust_revoke(a.trust_who, a.globals); });
}

void define_monitor(CLI::App& app, Args& a, Commands& commands) {
  auto* monitor = app.add_subcommand(
      "monitor", "A live view of the stations and peers, redrawn in place like top (q quits)");
  monitor
      ->add_option("--interval", a.monitor.interval_ms,
                   "Milliseconds between refreshes (default 2000, 200 to 60000)")
      ->check(CLI::Range(static_cast<std::uint64_t>(monitor_interval_min.count()),
                         static_cast<std::uint64_t>(monitor_interval_max.count())));
  monitor->add_flag("--once", a.monitor.once,
                    "Print one frame, without terminal control codes, and exit");
  commands.emplace_back(monitor, [&a] { return cmd_monitor(a.monitor, a.globals); });
}

void define_replication(CLI::App& app, Args& a, Commands& commands) {
  auto* peers = app.add_subcommand("peers", "Show the nodes this one replicates with");
  commands.emplace_back(peers, [&a] { return cmd_peers(a.globals); });
  define_monitor(app, a, commands);
  auto* sync = app.add_subcommand("sync", "Reconnect to the upstreams now");
  commands.emplace_back(sync, [&a] { return cmd_sync(a.globals); });
  define_trust(app, a, commands);
}

Commands define(CLI::App& app, Args& a) {
  app.require_subcommand(1);
  app.fallthrough();  // global options may follow the command
  Globals& g = a.globals;
  app.add_option("-c,--config", g.config_path, "The node's config file")->envname("FERRY_CONFIG");
  app.add_flag("--json", g.json, "Print JSON instead of text");
  app.add_option("--timeout", g.timeout_ms, "How long to wait for ferryd, in ms (default 10000)")
      ->check(CLI::Range(1, 3'600'000));
  Commands commands;
  define_offline(app, a, commands);
  define_online(app, a, commands);
  define_replication(app, a, commands);
  return commands;
}

}  // namespace

Result<json> body_from_text(std::string_view text) {
  json body = json::parse(text, nullptr, false);
  if (body.is_discarded()) return fail(Errc::malformed, "--body is not valid JSON");
  if (!body.is_object()) return fail(Errc::malformed, "--body must be a JSON object");
  return body;
}

// `--set` writes record fields through the merge (docs/merge.md): the body is {"set": {...}}.
Result<json> body_from_sets(const std::vector<std::string>& sets) {
  json fields = json::object();
  for (const std::string& set : sets) {
    auto eq = set.find('=');
    if (eq == std::string::npos || eq == 0) {
      return fail(Errc::malformed, "--set " + set + ": expected field=value");
    }
    std::string field = set.substr(0, eq);
    if (fields.contains(field)) return fail(Errc::malformed, "--set " + field + ": given twice");
    std::string text = set.substr(eq + 1);
    json value = json::parse(text, nullptr, false);
    bool scalar =
        !value.is_discarded() && (value.is_number() || value.is_boolean() || value.is_null());
    fields[field] = scalar ? value : json(text);
  }
  return json{{"set", std::move(fields)}};
}

std::string utc_text_ms(std::uint64_t ms) {
  auto seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  if (::gmtime_r(&seconds, &tm) == nullptr) return "?";
  char text[40];
  std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03uZ", static_cast<unsigned>(ms % 1000));
  return std::string(text, n) + millis;
}

std::string duration_text(std::uint64_t ms) {
  std::uint64_t s = ms / 1000;
  std::string out;
  if (s >= 86400) out += std::to_string(s / 86400) + "d ";
  if (s >= 3600) out += std::to_string(s / 3600 % 24) + "h ";
  if (s >= 60) out += std::to_string(s / 60 % 60) + "m ";
  return out + std::to_string(s % 60) + "s";
}

int run(int argc, const char* const* argv) {
  CLI::App app{"ferryctl: administer a ferry node. See docs/ferryctl.md.", "ferryctl"};
  Args args;
  Commands commands = define(app, args);
  stop_requested = false;  // run() may be called more than once in one process (tests)
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? exit_ok : exit_usage;
  }
  for (const auto& [command, action] : commands) {
    if (command->parsed()) return action();
  }
  return exit_usage;
}

}  // namespace ferry::ctl
