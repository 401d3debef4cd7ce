// The harness of the integration tests: a node directory, real ferryd processes, and a
// synchronous client of the local IPC (docs/ipc.md).
//
// A TestNode owns a temp dir holding the node's data directory (with node.key), its config and
// the logs of every ferryd it started. Every process a TestNode starts is killed (SIGKILL) and
// reaped in its destructor whatever happened, and its logs are kept for the failure report that
// test_main.cpp prints when a test case fails. Waits are bounded: each polls a condition until
// a deadline and throws HarnessError (which fails the test, with the log) when it passes.
// IpcClient owns one REQ socket and is used from one thread; every thread makes its own.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>

#include "tests/support/test_support.h"

namespace ferry::it {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;
using Clock = std::chrono::steady_clock;

struct HarnessError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A msgpack value as a tree: replies are decoded into one, requests are built from one.
class Value {
 public:
  enum class Type { nil, boolean, uint, sint, real, str, bin, array, map, ext };
  using Field = std::pair<std::string, Value>;

  Value() = default;
  Value(bool b);  // NOLINT(google-explicit-constructor): literals read best in request maps
  Value(int i);
  Value(long i);
  Value(long long i);
  Value(unsigned u);
  Value(unsigned long u);
  Value(unsigned long long u);
  Value(double d);
  Value(const char* s);
  Value(std::string s);

  static Value nil() { return {}; }
  static Value array(std::vector<Value> items);
  static Value map(std::vector<Field> fields);
  static Value float32(float f);  // Value(double) is a float64
  static Value bin(Bytes bytes);
  static Value ext(std::int8_t type, Bytes bytes);

  // Decodes exactly one msgpack value (trailing bytes are an error); throws HarnessError.
  static Value decode(std::span<const std::uint8_t> bytes);

  Type type() const { return type_; }
  bool is_nil() const { return type_ == Type::nil; }
  bool is_map() const { return type_ == Type::map; }
  // Each throws HarnessError naming what it holds instead.
  bool boolean() const;
  std::uint64_t u64() const;
  const std::string& str() const;
  const std::vector<Value>& items() const;
  const std::vector<Field>& fields() const;

  bool has(std::string_view key) const;
  const Value& operator[](std::string_view key) const;  // throws when absent
  const Value& operator[](std::size_t index) const;
  std::size_t size() const;
  std::vector<std::string> keys() const;  // sorted

  // Adds or replaces a field of a map.
  Value& set(std::string key, Value value);
  Value& erase(std::string_view key);

  // Packs exactly what the tree holds (a float stays a float, of its width).
  Bytes pack() const;
  void pack_to(msgpack::packer<msgpack::sbuffer>& pk) const;
  std::string dump() const;  // JSON-like, for failure messages

  friend bool operator==(const Value& a, const Value& b);

 private:
  void pack_real(msgpack::packer<msgpack::sbuffer>& pk) const;
  Type type_ = Type::nil;
  bool b_ = false;
  std::uint64_t u_ = 0;
  std::int64_t i_ = 0;
  double d_ = 0;
  bool single_ = false;  // a float32
  std::string s_;        // str, bin and ext bytes
  std::int8_t ext_type_ = 0;
  std::vector<Value> items_;
  std::vector<Field> fields_;
};

// Catch prints a Value with dump().
std::ostream& operator<<(std::ostream& out, const Value& v);

// Request builders for the commands of docs/ipc.md.
Value submit_request(std::string kind, std::string key, Value body);
Value status_request();
Value op_request(const std::string& id);
Value track_request(const std::string& id);
Value pull_request(std::uint64_t after, std::uint64_t limit, std::uint64_t wait_ms = 0);

bool is_id(const Value& v);  // a str of 64 lowercase hex digits
inline const std::string zero_id(64, '0');

// One REQ socket to ferryd. A REQ that missed its reply cannot send again, so every timeout
// replaces the socket; requests are never retried (a retried submit could store twice).
class IpcClient {
 public:
  explicit IpcClient(std::string endpoint, std::chrono::milliseconds timeout = 20s);
  IpcClient(const IpcClient&) = delete;
  IpcClient& operator=(const IpcClient&) = delete;

  // The reply, or nullopt after the timeout or once `stop` is set (polled every 20 ms).
  std::optional<Value> try_call(const Bytes& request, const std::atomic<bool>* stop = nullptr);
  std::optional<Value> try_call(const Value& request, const std::atomic<bool>* stop = nullptr) {
    return try_call(request.pack(), stop);
  }
  // The reply; throws HarnessError after the timeout.
  Value call(const Value& request) { return call(request.pack()); }
  Value call(const Bytes& request);

  // For a request whose reply is awaited later (a waiting pull).
  void send(const Value& request);
  std::optional<Value> receive(std::chrono::milliseconds timeout);

 private:
  void reset();
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
  zmq::socket_t socket_;
};

// A DEALER that frames requests itself: for misframed requests and for pipelining (several
// requests in flight, replies collected later). Used from one thread.
class Dealer {
 public:
  explicit Dealer(const std::string& endpoint);
  void send(const std::vector<Bytes>& frames);
  void send_request(const Value& request) { send({Bytes{}, request.pack()}); }
  // All frames of the next message, or nullopt after the timeout.
  std::optional<std::vector<Bytes>> receive(std::chrono::milliseconds timeout);
  // The next reply, which must be the empty delimiter and one msgpack frame; throws after the
  // timeout.
  Value receive_reply(std::chrono::milliseconds timeout = 20s);
  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::socket_t socket_;
};

// Looks every id up with op, pipelined on one DEALER (reads are answered in order); returns the
// first id that is not stored (with the reply), or an empty string.
std::string first_missing_op(const std::string& endpoint, const std::vector<std::string>& ids);

// The process context every socket of the tests lives in.
zmq::context_t& zmq_context();

// Sets linger 0, unbounded HWMs and a short reconnect interval: the test's sockets never block.
void configure_test_socket(zmq::socket_t& socket);

struct ExitStatus {
  bool exited = false;  // false: killed by `signal`
  int code = -1;
  int signal = 0;
  std::string text() const;
  bool ok() const { return exited && code == 0; }
};

// Waits for the child up to `timeout`; nullopt if it is still running.
std::optional<ExitStatus> wait_exit(pid_t pid, std::chrono::milliseconds timeout);

struct ProcessResult {
  ExitStatus status;
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
};

// Runs a program to completion (killed after `timeout`, which fails the test), collecting its
// output through files in a temp dir (no pipes to deadlock on).
ProcessResult run_process(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = 120s);

std::string ferryd_path();
std::string ferryctl_path();  // empty when ferryctl was not built
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);

// The seed of a randomized test: FERRY_TEST_SEED if set, else fresh; printed to stdout.
std::uint64_t test_seed(const std::string& test_name);

// Polls `done` until it holds or `timeout` passes; returns whether it held.
bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval = 5ms);

struct NodeSettings {
  std::string name = "huaniao";
  std::map<std::string, std::string> limits;  // [limits] key -> TOML value text
  std::string log_level = "info";
  std::string netns;  // run ferryd inside this network namespace (ip netns exec); empty: here
  // [monitor] key -> TOML value text. By default no HTTP and no status reports, so that tests
  // of other things see only their own ops; monitored() turns both on.
  std::map<std::string, std::string> monitor = {{"enabled", "false"}, {"status_interval_ms", "0"}};
  // Environment variables added to every ferryd this node spawns (e.g. NOTIFY_SOCKET).
  std::map<std::string, std::string> env;
};

// Settings of a node with its monitor on a kernel-chosen loopback port, quick refreshes and
// quick status reports (every 200 ms when something changed, every 1 s regardless).
NodeSettings monitored(std::string name);

// A system tool's path, looked up in the sbin and bin directories; empty when it is not
// installed (the tests that need it fail, naming its Debian package).
std::string tool_path(const std::string& name);
// The `ip` tool (iproute2); empty when it is not installed.
inline std::string ip_path() { return tool_path("ip"); }

// A free TCP port on 127.0.0.1 (bound once by the kernel's choice and released).
int free_tcp_port();

// How a TestNode replicates (docs/protocol.md); set with TestNode::replicate before start().
struct Replication {
  std::string role = "station";
  bool listen = false;  // on tcp://<listen_host>:<free port>
  std::string listen_host = "127.0.0.1";
  std::string authority;                                       // hex; required
  std::vector<std::pair<std::string, std::string>> upstreams;  // endpoint, key hex
  std::map<std::string, std::string> limits;  // [replication] key -> TOML value text
};

class TestNode;

// Submits n ops pipelined on one DEALER (the daemon commits them in batches), in `channel` when
// given; returns their ids in submit order. Throws on a refused submit.
std::vector<std::string> submit_many(TestNode& node, std::size_t n, const std::string& tag,
                                     const std::string& channel = {});

// How long channel_digest waits for status digests that cover every op the node holds.
inline constexpr std::chrono::seconds digest_current_timeout{60};

// A channel's state digest in `status`, once status shows digests that cover every op held
// (`digest_current`); empty when the node holds nothing of it.
std::string channel_digest(TestNode& node, const std::string& channel);

// Both nodes hold the same ops of the channel (equal, non-empty digests).
bool converged(TestNode& a, TestNode& b, const std::string& channel);

// Enrols `node` at the hub (its authority) with this role; throws when the hub refuses.
Value trust_add(TestNode& hub, const TestNode& node, const std::string& role);

// Settings of a node with this name, everything else at its default.
NodeSettings named(std::string name);

// Fast heartbeats, reconnects and receipts ([replication] keys), so that lost links and each
// step are seen quickly in tests.
std::map<std::string, std::string> quick_limits();

// A hub that is its own authority and listens on listen_host; quick limits.
Replication hub_role(const TestNode& hub, std::string listen_host = "127.0.0.1");

// A node whose one upstream is `upstream` (already configured to listen); quick limits.
Replication below(const TestNode& upstream, const std::string& authority, std::string role,
                  bool listen = false);

class TestNode {
 public:
  explicit TestNode(NodeSettings settings = {});
  ~TestNode();
  TestNode(const TestNode&) = delete;
  TestNode& operator=(const TestNode&) = delete;

  const std::string& name() const { return settings_.name; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& config_path() const { return config_path_; }
  const std::string& endpoint() const { return endpoint_; }
  std::string key_path() const { return data_dir_ + "/node.key"; }
  const std::string& node_id() const { return node_id_; }
  std::string default_channel() const { return "station/" + settings_.name; }
  std::string file(const std::string& name) const { return dir_.file(name); }
  const std::string& config_text() const { return config_text_; }
  // http://127.0.0.1:PORT/ of a running node's monitor (from <data_dir>/monitor.url).
  std::string monitor_url() const;

  // Rewrites the config to replicate; listen_endpoint() is set when it listens.
  void replicate(const Replication& replication);
  const std::string& listen_endpoint() const { return listen_endpoint_; }

  // Spawns ferryd --config and waits (bounded) until it answers a status request.
  void start();
  // Spawns ferryd with these arguments (a second instance, a bad config) without waiting; the
  // process is owned and reaped by this node.
  pid_t spawn(const std::vector<std::string>& args, const std::string& label);
  // The exit status of a process spawn()ed, waited for up to `timeout` (fails after).
  ExitStatus wait(pid_t pid, std::chrono::milliseconds timeout = 30s);
  std::string log_of(pid_t pid) const;  // stderr of a process spawn()ed

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  ExitStatus stop(std::chrono::milliseconds timeout = 30s);  // SIGTERM, bounded wait
  ExitStatus kill9();
  void restart();           // stop (must exit 0), then start
  std::string log() const;  // stderr of the daemon started last

  IpcClient client(std::chrono::milliseconds timeout = 20s) const {
    return IpcClient(endpoint_, timeout);
  }
  Value status();  // over a fresh client; throws unless ok

  // A submit that must succeed; returns the reply.
  Value submit_ok(IpcClient& client, const Value& request);

 private:
  struct Child {
    pid_t pid = -1;
    std::string label;
    std::string log_path;
    bool reaped = false;
  };
  Child* find(pid_t pid);
  const Child* find(pid_t pid) const;
  void reap(Child& child);  // marks it reaped (waitpid done)

  NodeSettings settings_;
  test::TempDir dir_;
  std::string data_dir_;
  std::string config_path_;
  std::string endpoint_;
  std::string node_id_;
  std::string config_text_;
  std::string listen_endpoint_;
  std::vector<Child> children_;
  pid_t pid_ = -1;  // the serving daemon, if any
  int starts_ = 0;
};

// Every op of the node, pulled from after=0 in pages of `page_limit` (bounded: at most
// `pages_max` pages).
std::vector<Value> pull_all(IpcClient& client, std::uint64_t page_limit = 1000,
                            std::size_t pages_max = 1000);

// Whether the ops of `channel` among `ops` (in any order) form one intact feed: seqs exactly
// 1..N and each prev the id of the op before it (zeros for seq 1). Returns the first break found,
// or an empty string; `length` gets N.
std::string feed_break(const std::vector<Value>& ops, const std::string& channel,
                       std::uint64_t& length);

// Submitter threads for the crash tests: each has its own socket and submits until stopped,
// recording every acknowledged op id. The threads make no Catch assertions (Catch is not
// thread-safe): what went wrong is kept in problems() for the test's thread to check.
class Submitters {
 public:
  Submitters(std::string endpoint, int threads, std::string tag);
  ~Submitters();
  Submitters(const Submitters&) = delete;
  Submitters& operator=(const Submitters&) = delete;

  std::uint64_t acked() const { return acked_.load(); }
  // Stops the threads (a request in flight is abandoned) and joins them.
  void stop();
  std::vector<std::string> acked_ids() const;
  std::vector<std::string> problems() const;

 private:
  void run(int thread);
  std::string endpoint_;
  std::string tag_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> acked_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> ids_;
  std::vector<std::string> problems_;
  std::vector<std::thread> threads_;
};

// `ferryctl -c CONFIG verify` on the node's data directory.
ProcessResult ferryctl_verify(const TestNode& node);

// The length of the feed of `origin` in `channel` that a node holds, checked (throws
// HarnessError otherwise) to be one intact feed: seqs 1..N, each prev the op before.
std::uint64_t feed_length(TestNode& node, const std::string& channel, const std::string& origin);

// Logs of the nodes of the running test case, printed by test_main.cpp when it fails.
void keep_log_for_report(std::string label, std::string text);
std::string take_report_logs();

}  // namespace ferry::it
