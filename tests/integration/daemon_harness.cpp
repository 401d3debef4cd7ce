#include "tests/integration/daemon_harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "config/config.h"
#include "protocol/node_key.h"

namespace ferry::it {
namespace {

HarnessError harness_error(const std::string& what) { return HarnessError(what); }

const char* type_name(Value::Type t) {
  switch (t) {
    case Value::Type::nil:
      return "nil";
    case Value::Type::boolean:
      return "bool";
    case Value::Type::uint:
      return "positive int";
    case Value::Type::sint:
      return "negative int";
    case Value::Type::real:
      return "float";
    case Value::Type::str:
      return "str";
    case Value::Type::bin:
      return "bin";
    case Value::Type::array:
      return "array";
    case Value::Type::map:
      return "map";
    case Value::Type::ext:
      return "ext";
  }
  return "?";
}

// Keeps the last `lines_max` lines of a log for a failure report.
std::string tail_lines(const std::string& text, std::size_t lines_max) {
  std::size_t count = 0;
  std::size_t pos = text.size();
  while (pos > 0) {
    std::size_t nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) return text;
    if (nl != text.size() - 1 && ++count >= lines_max) {
      return "[...]\n" + text.substr(nl + 1);
    }
    pos = nl;
  }
  return text;
}

std::mutex report_mutex;
std::vector<std::string> report_logs;

}  // namespace

// ---- Value ----------------------------------------------------------------------------------

Value::Value(bool b) : type_(Type::boolean), b_(b) {}
Value::Value(int i) : Value(static_cast<long long>(i)) {}
Value::Value(long i) : Value(static_cast<long long>(i)) {}
Value::Value(long long i) {
  if (i >= 0) {
    type_ = Type::uint;
    u_ = static_cast<std::uint64_t>(i);
  } else {
    type_ = Type::sint;
    i_ = i;
  }
}
Value::Value(unsigned u) : type_(Type::uint), u_(u) {}
Value::Value(unsigned long u) : type_(Type::uint), u_(u) {}
Value::Value(unsigned long long u) : type_(Type::uint), u_(u) {}
Value::Value(double d) : type_(Type::real), d_(d) {}
Value::Value(const char* s) : type_(Type::str), s_(s) {}
Value::Value(std::string s) : type_(Type::str), s_(std::move(s)) {}

Value Value::array(std::vector<Value> items) {
  Value v;
  v.type_ = Type::array;
  v.items_ = std::move(items);
  return v;
}

Value Value::map(std::vector<Field> fields) {
  Value v;
  v.type_ = Type::map;
  v.fields_ = std::move(fields);
  return v;
}

Value Value::float32(float f) {
  Value v(static_cast<double>(f));
  v.single_ = true;
  return v;
}

Value Value::bin(Bytes bytes) {
  Value v;
  v.type_ = Type::bin;
  v.s_.assign(bytes.begin(), bytes.end());
  return v;
}

Value Value::ext(std::int8_t type, Bytes bytes) {
  Value v;
  v.type_ = Type::ext;
  v.ext_type_ = type;
  v.s_.assign(bytes.begin(), bytes.end());
  return v;
}

namespace {

Value from_object(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return Value::nil();
    case msgpack::type::BOOLEAN:
      return Value(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      return Value(static_cast<unsigned long long>(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER:
      return Value(static_cast<long long>(o.via.i64));
    case msgpack::type::FLOAT32:
      return Value::float32(static_cast<float>(o.via.f64));
    case msgpack::type::FLOAT64:
      return Value(o.via.f64);
    case msgpack::type::STR:
      return Value(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: {
      const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      return Value::bin(Bytes(p, p + o.via.bin.size));
    }
    case msgpack::type::EXT: {
      const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.ext.data());
      return Value::ext(o.via.ext.type(), Bytes(p, p + o.via.ext.size - 1));
    }
    case msgpack::type::ARRAY: {
      std::vector<Value> items;
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        items.push_back(from_object(o.via.array.ptr[i]));
      }
      return Value::array(std::move(items));
    }
    case msgpack::type::MAP: {
      std::vector<Value::Field> fields;
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const msgpack::object_kv& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) throw harness_error("a map key is not a str");
        fields.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size),
                            from_object(kv.val));
      }
      return Value::map(std::move(fields));
    }
  }
  throw harness_error("unknown msgpack type");
}

}  // namespace

Value Value::decode(std::span<const std::uint8_t> bytes) {
  try {
    std::size_t offset = 0;
    msgpack::object_handle handle =
        msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size(), offset);
    if (offset != bytes.size()) throw harness_error("trailing bytes after the msgpack value");
    return from_object(handle.get());
  } catch (const HarnessError&) {
    throw;
  } catch (const std::exception& e) {
    throw harness_error(std::string("not msgpack: ") + e.what());
  }
}

bool Value::boolean() const {
  if (type_ != Type::boolean) throw harness_error("expected a bool, got " + dump());
  return b_;
}

std::uint64_t Value::u64() const {
  if (type_ != Type::uint) throw harness_error("expected a positive int, got " + dump());
  return u_;
}

const std::string& Value::str() const {
  if (type_ != Type::str) throw harness_error("expected a str, got " + dump());
  return s_;
}

const std::vector<Value>& Value::items() const {
  if (type_ != Type::array) throw harness_error("expected an array, got " + dump());
  return items_;
}

const std::vector<Value::Field>& Value::fields() const {
  if (type_ != Type::map) throw harness_error("expected a map, got " + dump());
  return fields_;
}

bool Value::has(std::string_view key) const {
  if (type_ != Type::map) return false;
  return std::any_of(fields_.begin(), fields_.end(),
                     [&](const Field& f) { return f.first == key; });
}

const Value& Value::operator[](std::string_view key) const {
  for (const Field& f : fields()) {
    if (f.first == key) return f.second;
  }
  throw harness_error("no key \"" + std::string(key) + "\" in " + dump());
}

const Value& Value::operator[](std::size_t index) const {
  if (index >= items().size()) {
    throw harness_error("no item " + std::to_string(index) + " in " + dump());
  }
  return items_[index];
}

std::size_t Value::size() const {
  if (type_ == Type::map) return fields_.size();
  return items().size();
}

std::vector<std::string> Value::keys() const {
  std::vector<std::string> out;
  for (const Field& f : fields()) out.push_back(f.first);
  std::sort(out.begin(), out.end());
  return out;
}

Value& Value::set(std::string key, Value value) {
  (void)fields();
  for (Field& f : fields_) {
    if (f.first == key) {
      f.second = std::move(value);
      return *this;
    }
  }
  fields_.emplace_back(std::move(key), std::move(value));
  return *this;
}

Value& Value::erase(std::string_view key) {
  (void)fields();
  std::erase_if(fields_, [&](const Field& f) { return f.first == key; });
  return *this;
}

// msgpack-c packs a double with an integral value as an integer; a test must send exactly the
// float it means, so floats are written by hand (big-endian IEEE 754).
void Value::pack_real(msgpack::packer<msgpack::sbuffer>& pk) const {
  std::uint8_t out[9];
  std::size_t size = 0;
  if (single_) {
    auto f = static_cast<float>(d_);
    std::uint32_t bits = 0;
    std::memcpy(&bits, &f, sizeof bits);
    out[size++] = 0xca;
    for (int shift = 24; shift >= 0; shift -= 8)
      out[size++] = static_cast<std::uint8_t>(bits >> shift);
  } else {
    std::uint64_t bits = 0;
    std::memcpy(&bits, &d_, sizeof bits);
    out[size++] = 0xcb;
    for (int shift = 56; shift >= 0; shift -= 8)
      out[size++] = static_cast<std::uint8_t>(bits >> shift);
  }
  pk.pack_bin_body(reinterpret_cast<const char*>(out), static_cast<std::uint32_t>(size));
}

void Value::pack_to(msgpack::packer<msgpack::sbuffer>& pk) const {
  auto len = [](std::size_t n) { return static_cast<std::uint32_t>(n); };
  switch (type_) {
    case Type::nil:
      pk.pack_nil();
      return;
    case Type::boolean:
      b_ ? pk.pack_true() : pk.pack_false();
      return;
    case Type::uint:
      pk.pack_uint64(u_);
      return;
    case Type::sint:
      pk.pack_int64(i_);
      return;
    case Type::real:
      pack_real(pk);
      return;
    case Type::str:
      pk.pack_str(len(s_.size()));
      pk.pack_str_body(s_.data(), len(s_.size()));
      return;
    case Type::bin:
      pk.pack_bin(len(s_.size()));
      pk.pack_bin_body(s_.data(), len(s_.size()));
      return;
    case Type::ext:
      pk.pack_ext(s_.size(), ext_type_);
      pk.pack_ext_body(s_.data(), len(s_.size()));
      return;
    case Type::array:
      pk.pack_array(len(items_.size()));
      for (const Value& v : items_) v.pack_to(pk);
      return;
    case Type::map:
      pk.pack_map(len(fields_.size()));
      for (const Field& f : fields_) {
        pk.pack_str(len(f.first.size()));
        pk.pack_str_body(f.first.data(), len(f.first.size()));
        f.second.pack_to(pk);
      }
      return;
  }
}

Bytes Value::pack() const {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pack_to(pk);
  const auto* p = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return Bytes(p, p + buffer.size());
}

std::string Value::dump() const {
  std::ostringstream out;
  switch (type_) {
    case Type::nil:
      out << "nil";
      break;
    case Type::boolean:
      out << (b_ ? "true" : "false");
      break;
    case Type::uint:
      out << u_;
      break;
    case Type::sint:
      out << i_;
      break;
    case Type::real:
      out << d_ << (single_ ? " (float32)" : " (float64)");
      break;
    case Type::str:
      out << '"'
          << (s_.size() > 200 ? s_.substr(0, 200) + "...(" + std::to_string(s_.size()) + ")" : s_)
          << '"';
      break;
    case Type::bin:
    case Type::ext:
      out << type_name(type_) << "(" << s_.size() << " bytes)";
      break;
    case Type::array: {
      out << '[';
      for (std::size_t i = 0; i < items_.size(); ++i) {
        if (i == 20) {
          out << ", ...(" << items_.size() << " items)";
          break;
        }
        out << (i ? ", " : "") << items_[i].dump();
      }
      out << ']';
      break;
    }
    case Type::map: {
      out << '{';
      for (std::size_t i = 0; i < fields_.size(); ++i) {
        out << (i ? ", " : "") << '"' << fields_[i].first << "\": " << fields_[i].second.dump();
      }
      out << '}';
      break;
    }
  }
  return out.str();
}

bool operator==(const Value& a, const Value& b) {
  if (a.type_ != b.type_) return false;
  switch (a.type_) {
    case Value::Type::nil:
      return true;
    case Value::Type::boolean:
      return a.b_ == b.b_;
    case Value::Type::uint:
      return a.u_ == b.u_;
    case Value::Type::sint:
      return a.i_ == b.i_;
    case Value::Type::real:
      return a.d_ == b.d_ && a.single_ == b.single_;
    case Value::Type::str:
    case Value::Type::bin:
      return a.s_ == b.s_;
    case Value::Type::ext:
      return a.ext_type_ == b.ext_type_ && a.s_ == b.s_;
    case Value::Type::array:
      return a.items_ == b.items_;
    case Value::Type::map:
      return a.fields_ == b.fields_;
  }
  return false;
}

std::ostream& operator<<(std::ostream& out, const Value& v) { return out << v.dump(); }

// ---- requests -------------------------------------------------------------------------------

Value submit_request(std::string kind, std::string key, Value body) {
  return Value::map({{"cmd", "submit"},
                     {"kind", std::move(kind)},
                     {"key", std::move(key)},
                     {"body", std::move(body)}});
}

Value status_request() { return Value::map({{"cmd", "status"}}); }

Value op_request(const std::string& id) { return Value::map({{"cmd", "op"}, {"id", id}}); }

Value track_request(const std::string& id) { return Value::map({{"cmd", "track"}, {"id", id}}); }

Value pull_request(std::uint64_t after, std::uint64_t limit, std::uint64_t wait_ms) {
  Value r = Value::map({{"cmd", "pull"}, {"after", after}, {"limit", limit}});
  if (wait_ms > 0) r.set("wait_ms", wait_ms);
  return r;
}

bool is_id(const Value& v) {
  if (v.type() != Value::Type::str || v.str().size() != 64) return false;
  return std::all_of(v.str().begin(), v.str().end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// ---- IpcClient ------------------------------------------------------------------------------

zmq::context_t& zmq_context() {
  static zmq::context_t context(1);
  return context;
}

void configure_test_socket(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.set(zmq::sockopt::rcvhwm, 0);
  socket.set(zmq::sockopt::reconnect_ivl, 10);
  socket.set(zmq::sockopt::reconnect_ivl_max, 100);
}

IpcClient::IpcClient(std::string endpoint, std::chrono::milliseconds timeout)
    : endpoint_(std::move(endpoint)), timeout_(timeout) {
  reset();
}

void IpcClient::reset() {
  socket_ = zmq::socket_t(zmq_context(), zmq::socket_type::req);
  configure_test_socket(socket_);
  socket_.connect(endpoint_);
}

std::optional<Value> IpcClient::try_call(const Bytes& request, const std::atomic<bool>* stop) {
  socket_.send(zmq::buffer(request), zmq::send_flags::none);
  auto deadline = Clock::now() + timeout_;
  while (Clock::now() < deadline) {
    if (stop != nullptr && stop->load()) break;
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(20)) > 0) {
      zmq::message_t reply;
      (void)socket_.recv(reply, zmq::recv_flags::none);
      if (reply.more()) throw harness_error("a reply of more than one frame");
      return Value::decode({static_cast<const std::uint8_t*>(reply.data()), reply.size()});
    }
  }
  reset();
  return std::nullopt;
}

Value IpcClient::call(const Bytes& request) {
  auto reply = try_call(request);
  if (!reply) {
    throw harness_error("no reply from " + endpoint_ + " within " +
                        std::to_string(timeout_.count()) + " ms");
  }
  return *reply;
}

void IpcClient::send(const Value& request) {
  Bytes bytes = request.pack();
  socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
}

std::optional<Value> IpcClient::receive(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  zmq::message_t reply;
  (void)socket_.recv(reply, zmq::recv_flags::none);
  return Value::decode({static_cast<const std::uint8_t*>(reply.data()), reply.size()});
}

// ---- Dealer ---------------------------------------------------------------------------------

Dealer::Dealer(const std::string& endpoint) : socket_(zmq_context(), zmq::socket_type::dealer) {
  configure_test_socket(socket_);
  socket_.connect(endpoint);
}

void Dealer::send(const std::vector<Bytes>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i) {
    auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    socket_.send(zmq::buffer(frames[i]), flags);
  }
}

std::optional<std::vector<Bytes>> Dealer::receive(std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  std::vector<Bytes> frames;
  bool more = true;
  while (more) {
    zmq::message_t m;
    (void)socket_.recv(m, zmq::recv_flags::none);
    more = m.more();
    const auto* p = static_cast<const std::uint8_t*>(m.data());
    frames.emplace_back(p, p + m.size());
  }
  return frames;
}

Value Dealer::receive_reply(std::chrono::milliseconds timeout) {
  auto frames = receive(timeout);
  if (!frames) throw harness_error("no reply on the DEALER");
  if (frames->size() != 2 || !(*frames)[0].empty()) {
    throw harness_error("a reply is not [empty delimiter, one frame]: " +
                        std::to_string(frames->size()) + " frames");
  }
  return Value::decode((*frames)[1]);
}

std::string first_missing_op(const std::string& endpoint, const std::vector<std::string>& ids) {
  Dealer dealer(endpoint);
  for (const std::string& id : ids) dealer.send_request(op_request(id));
  std::string missing;
  for (const std::string& id : ids) {
    Value r = dealer.receive_reply();
    bool found = r["ok"].boolean() && r["op"]["id"].str() == id;
    if (!found && missing.empty()) missing = id + ": " + r.dump();
  }
  return missing;
}

// ---- processes ------------------------------------------------------------------------------

std::string ExitStatus::text() const {
  if (exited) return "exit code " + std::to_string(code);
  return std::string("killed by signal ") + std::to_string(signal) + " (" + ::strsignal(signal) +
         ")";
}

namespace {

ExitStatus status_of(int raw) {
  ExitStatus s;
  if (WIFEXITED(raw)) {
    s.exited = true;
    s.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    s.signal = WTERMSIG(raw);
  }
  return s;
}

// This process's environment with `extra` added (replacing variables of the same name). The
// service manager's variables are never inherited: a test run from a systemd unit must not have
// its daemons notify that unit; a test that wants them passes its own.
std::vector<std::string> environment_with(const std::map<std::string, std::string>& extra) {
  static const std::set<std::string> not_inherited = {"NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                      "WATCHDOG_PID"};
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    std::string name = entry.substr(0, entry.find('='));
    if (!extra.contains(name) && !not_inherited.contains(name)) out.push_back(std::move(entry));
  }
  for (const auto& [name, value] : extra) out.push_back(name + "=" + value);
  return out;
}

// fork + execve with stdin from /dev/null and stdout, stderr into files, and the environment
// with `env` added. Everything the child needs is prepared before fork: between fork and exec it
// only calls async-signal-safe functions.
pid_t spawn_process(const std::vector<std::string>& argv, const std::string& out_path,
                    const std::string& err_path,
                    const std::map<std::string, std::string>& env = {}) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_entries = environment_with(env);
  std::vector<char*> envp;
  for (const std::string& e : env_entries) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (in < 0 || out < 0 || err < 0) throw harness_error("cannot open files for " + argv[0]);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // If the test binary dies (a crash, a ctest timeout), its daemons die with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(in);
  ::close(out);
  ::close(err);
  if (pid < 0) throw harness_error("fork failed: " + std::string(std::strerror(errno)));
  return pid;
}

}  // namespace

std::optional<ExitStatus> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int raw = 0;
    pid_t done = ::waitpid(pid, &raw, WNOHANG);
    if (done == pid) return status_of(raw);
    if (done < 0 && errno != EINTR) {
      throw harness_error("waitpid " + std::to_string(pid) + ": " + std::strerror(errno));
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(2ms);
  }
}

ProcessResult run_process(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  test::TempDir dir;
  auto started = Clock::now();
  pid_t pid = spawn_process(argv, dir.file("stdout"), dir.file("stderr"));
  auto status = wait_exit(pid, timeout);
  ProcessResult result;
  if (!status) {
    ::kill(pid, SIGKILL);
    (void)wait_exit(pid, 10s);
    throw harness_error(argv[0] + " did not finish within " + std::to_string(timeout.count()) +
                        " ms; stderr:\n" + read_file(dir.file("stderr")));
  }
  result.status = *status;
  result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  result.out = read_file(dir.file("stdout"));
  result.err = read_file(dir.file("stderr"));
  return result;
}

std::string ferryd_path() { return FERRYD_PATH; }
std::string ferryctl_path() { return FERRYCTL_PATH; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw harness_error("cannot write " + path);
}

std::uint64_t test_seed(const std::string& test_name) {
  std::uint64_t seed = 0;
  if (const char* env = std::getenv("FERRY_TEST_SEED"); env != nullptr && *env != '\0') {
    seed = std::strtoull(env, nullptr, 10);
  } else {
    std::random_device rd;
    seed = (static_cast<std::uint64_t>(rd()) << 32) | rd();
  }
  std::printf("%s: seed %llu (rerun with FERRY_TEST_SEED=%llu)\n", test_name.c_str(),
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(interval);
  }
}

// ---- TestNode -------------------------------------------------------------------------------

namespace {

// Sets `key = value` in the rendered config: replaces the line of a key render_config writes, or
// adds the key after its section header.
std::string with_setting(std::string text, const std::string& section, const std::string& key,
                         const std::string& value) {
  std::string line = key + " = ";
  std::size_t at = text.find("\n" + line);
  if (at != std::string::npos) {
    std::size_t end = text.find('\n', at + 1);
    return text.replace(at + 1, end - at - 1, line + value);
  }
  std::string header = "[" + section + "]\n";
  at = text.find(header);
  if (at == std::string::npos) throw harness_error("no section " + header);
  return text.insert(at + header.size(), line + value + "\n");
}

}  // namespace

TestNode::TestNode(NodeSettings settings) : settings_(std::move(settings)) {
  data_dir_ = dir_.file("node");
  if (::mkdir(data_dir_.c_str(), 0750) != 0) throw harness_error("cannot create " + data_dir_);
  NodeKey key = NodeKey::generate();
  if (auto saved = key.save(key_path()); !saved) {
    throw harness_error("cannot save the node key: " + saved.error().detail);
  }
  node_id_ = key.public_key_hex();
  endpoint_ = "ipc://" + dir_.file("ferryd.sock");
  std::string text = config::render_config(config::NodeConfig{settings_.name, data_dir_, {}});
  text = with_setting(text, "ipc", "endpoint", "\"" + endpoint_ + "\"");
  text = with_setting(text, "log", "level", "\"" + settings_.log_level + "\"");
  for (const auto& [k, v] : settings_.limits) text = with_setting(text, "limits", k, v);
  for (const auto& [k, v] : settings_.monitor) text = with_setting(text, "monitor", k, v);
  if (auto parsed = config::parse_config(text, dir_.file("ferry.toml")); !parsed) {
    throw harness_error("the test's config does not parse: " + parsed.error().detail);
  }
  config_path_ = dir_.file("ferry.toml");
  config_text_ = text;
  write_file(config_path_, text);
}

std::string tool_path(const std::string& name) {
  for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/", "/usr/local/bin/"}) {
    std::string path = dir + name;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw harness_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw harness_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::vector<std::string> submit_many(TestNode& node, std::size_t n, const std::string& tag,
                                     const std::string& channel) {
  Dealer dealer(node.endpoint());
  std::vector<std::string> ids;
  ids.reserve(n);
  const std::size_t window = 256;
  std::size_t sent = 0;
  while (ids.size() < n) {
    while (sent < n && sent - ids.size() < window) {
      Value body =
          Value::map({{"set", Value::map({{"status", "filed"}})}, {"note", std::string(200, 'x')}});
      Value request = submit_request("case.submit", tag + "-" + std::to_string(sent), body);
      if (!channel.empty()) request.set("channel", channel);
      dealer.send_request(request);
      ++sent;
    }
    Value reply = dealer.receive_reply(30s);
    if (!reply["ok"].boolean()) throw HarnessError("submit refused: " + reply.dump());
    ids.push_back(reply["id"].str());
  }
  return ids;
}

std::string channel_digest(TestNode& node, const std::string& channel) {
  // A large store's status may show digests that lag the newest ops (digest_current false) until
  // ferryd recomputes them: wait for digests that cover every op, or two lagging digests could
  // look equal.
  Value s;
  bool current = wait_until(
      [&] {
        s = node.status();
        return s["digest_current"].boolean();
      },
      digest_current_timeout, 10ms);
  if (!current) throw harness_error(node.name() + "'s status digests stayed behind its ops");
  return s["channels"].has(channel) ? s["channels"][channel].str() : std::string();
}

bool converged(TestNode& a, TestNode& b, const std::string& channel) {
  std::string da = channel_digest(a, channel);
  return !da.empty() && da == channel_digest(b, channel);
}

Value trust_add(TestNode& hub, const TestNode& node, const std::string& role) {
  IpcClient c = hub.client();
  Value r = c.call(Value::map(
      {{"cmd", "trust_add"}, {"name", node.name()}, {"key", node.node_id()}, {"role", role}}));
  if (!r["ok"].boolean()) throw HarnessError("trust_add refused: " + r.dump());
  return r;
}

NodeSettings monitored(std::string name) {
  NodeSettings settings;
  settings.name = std::move(name);
  settings.monitor = {{"enabled", "true"},
                      {"listen", "\"127.0.0.1:0\""},
                      {"refresh_ms", "200"},
                      {"status_interval_ms", "200"},
                      {"status_keepalive_ms", "1000"}};
  return settings;
}

std::string TestNode::monitor_url() const {
  std::string text = read_file(data_dir_ + "/monitor.url");
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  if (text.empty()) throw harness_error(settings_.name + " wrote no monitor.url");
  return text;
}

NodeSettings named(std::string name) {
  NodeSettings settings;
  settings.name = std::move(name);
  return settings;
}

std::map<std::string, std::string> quick_limits() {
  return {{"heartbeat_interval_ms", "200"},
          {"heartbeat_timeout_ms", "1500"},
          {"reconnect_min_ms", "50"},
          {"reconnect_max_ms", "500"},
          {"receipt_interval_ms", "200"}};
}

Replication hub_role(const TestNode& hub, std::string listen_host) {
  Replication r;
  r.role = "hub";
  r.listen = true;
  r.listen_host = std::move(listen_host);
  r.authority = hub.node_id();
  r.limits = quick_limits();
  return r;
}

Replication below(const TestNode& upstream, const std::string& authority, std::string role,
                  bool listen) {
  Replication r;
  r.role = std::move(role);
  r.listen = listen;
  r.authority = authority;
  r.upstreams = {{upstream.listen_endpoint(), upstream.node_id()}};
  r.limits = quick_limits();
  return r;
}

void TestNode::replicate(const Replication& r) {
  std::string text = config_text_;
  text = with_setting(text, "node", "role", "\"" + r.role + "\"");
  std::string extra = "\n[authority]\nkey = \"" + r.authority + "\"\n";
  if (r.listen) {
    listen_endpoint_ = "tcp://" + r.listen_host + ":" + std::to_string(free_tcp_port());
    extra += "\n[listen]\nendpoint = \"" + listen_endpoint_ + "\"\n";
  }
  for (const auto& [endpoint, key] : r.upstreams) {
    extra += "\n[[upstream]]\nendpoint = \"" + endpoint + "\"\nkey = \"" + key + "\"\n";
  }
  text += extra;
  for (const auto& [k, v] : r.limits) text = with_setting(text, "replication", k, v);
  if (auto parsed = config::parse_config(text, config_path_); !parsed) {
    throw harness_error("the test's replication config does not parse: " + parsed.error().detail +
                        "\n" + text);
  }
  config_text_ = text;
  write_file(config_path_, text);
}

TestNode::~TestNode() {
  for (Child& c : children_) {
    if (!c.reaped) {
      ::kill(c.pid, SIGKILL);
      int raw = 0;
      while (::waitpid(c.pid, &raw, 0) < 0 && errno == EINTR) {
      }
      c.reaped = true;
    }
    keep_log_for_report(settings_.name + " " + c.label + " (pid " + std::to_string(c.pid) + ")",
                        read_file(c.log_path));
  }
}

TestNode::Child* TestNode::find(pid_t pid) {
  for (Child& c : children_) {
    if (c.pid == pid) return &c;
  }
  return nullptr;
}

const TestNode::Child* TestNode::find(pid_t pid) const {
  for (const Child& c : children_) {
    if (c.pid == pid) return &c;
  }
  return nullptr;
}

void TestNode::reap(Child& child) {
  child.reaped = true;
  if (child.pid == pid_) pid_ = -1;
}

pid_t TestNode::spawn(const std::vector<std::string>& args, const std::string& label) {
  std::vector<std::string> argv;
  if (!settings_.netns.empty()) argv = {ip_path(), "netns", "exec", settings_.netns};
  argv.push_back(ferryd_path());
  argv.insert(argv.end(), args.begin(), args.end());
  std::string stem = file("ferryd-" + std::to_string(children_.size() + 1));
  pid_t pid = spawn_process(argv, stem + ".out", stem + ".log", settings_.env);
  children_.push_back(Child{pid, label, stem + ".log", false});
  return pid;
}

ExitStatus TestNode::wait(pid_t pid, std::chrono::milliseconds timeout) {
  Child* child = find(pid);
  if (child == nullptr || child->reaped) throw harness_error("not a running child");
  auto status = wait_exit(pid, timeout);
  if (!status) {
    throw harness_error("ferryd (" + child->label + ") did not exit within " +
                        std::to_string(timeout.count()) + " ms; log:\n" +
                        tail_lines(read_file(child->log_path), 60));
  }
  reap(*child);
  return *status;
}

std::string TestNode::log_of(pid_t pid) const {
  const Child* child = find(pid);
  return child == nullptr ? std::string() : read_file(child->log_path);
}

void TestNode::start() {
  if (pid_ > 0) throw harness_error("ferryd is already running");
  ++starts_;
  pid_t pid = spawn({"--config", config_path_}, "start " + std::to_string(starts_));
  pid_ = pid;
  // Ready means: answers a status request. The REQ queues the request and reconnects every few
  // ms until the socket is bound; meanwhile the process must stay alive.
  zmq::socket_t probe(zmq_context(), zmq::socket_type::req);
  configure_test_socket(probe);
  probe.connect(endpoint_);
  Bytes request = status_request().pack();
  probe.send(zmq::buffer(request), zmq::send_flags::none);
  auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{probe.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(10)) > 0) {
      zmq::message_t reply;
      (void)probe.recv(reply, zmq::recv_flags::none);
      Value v = Value::decode({static_cast<const std::uint8_t*>(reply.data()), reply.size()});
      if (!v["ok"].boolean()) throw harness_error("status refused at start: " + v.dump());
      return;
    }
    if (auto exited = wait_exit(pid, 0ms)) {
      reap(*find(pid));
      throw harness_error("ferryd exited at start with " + exited->text() + "; log:\n" +
                          tail_lines(log_of(pid), 60));
    }
  }
  throw harness_error("ferryd did not answer a status request within 20 s; log:\n" +
                      tail_lines(log(), 60));
}

ExitStatus TestNode::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) throw harness_error("ferryd is not running");
  ::kill(pid_, SIGTERM);
  return wait(pid_, timeout);
}

ExitStatus TestNode::kill9() {
  if (pid_ <= 0) throw harness_error("ferryd is not running");
  ::kill(pid_, SIGKILL);
  return wait(pid_, 30s);
}

void TestNode::restart() {
  ExitStatus stopped = stop();
  if (!stopped.ok()) {
    throw harness_error("ferryd stopped with " + stopped.text() + "; log:\n" +
                        tail_lines(log_of(children_.back().pid), 60));
  }
  start();
}

std::string TestNode::log() const {
  return children_.empty() ? std::string() : read_file(children_.back().log_path);
}

Value TestNode::status() {
  IpcClient c = client();
  Value v = c.call(status_request());
  if (!v["ok"].boolean()) throw harness_error("status refused: " + v.dump());
  return v;
}

Value TestNode::submit_ok(IpcClient& c, const Value& request) {
  Value v = c.call(request);
  if (!v.has("ok") || !v["ok"].boolean()) throw harness_error("submit refused: " + v.dump());
  return v;
}

// ---- checks shared by the tests -------------------------------------------------------------

std::vector<Value> pull_all(IpcClient& client, std::uint64_t page_limit, std::size_t pages_max) {
  std::vector<Value> ops;
  std::uint64_t after = 0;
  for (std::size_t page = 0; page < pages_max; ++page) {
    Value r = client.call(pull_request(after, page_limit));
    if (!r["ok"].boolean()) throw harness_error("pull refused: " + r.dump());
    if (r["ops"].size() == 0) return ops;
    for (const Value& op : r["ops"].items()) ops.push_back(op);
    if (r["next"].u64() <= after) throw harness_error("pull: next did not move: " + r.dump());
    after = r["next"].u64();
  }
  throw harness_error("pull_all: more than " + std::to_string(pages_max) + " pages");
}

std::string feed_break(const std::vector<Value>& ops, const std::string& channel,
                       std::uint64_t& length) {
  std::map<std::uint64_t, const Value*> by_seq;
  for (const Value& op : ops) {
    if (op["channel"].str() != channel) continue;
    std::uint64_t seq = op["seq"].u64();
    if (!by_seq.emplace(seq, &op).second) return "seq " + std::to_string(seq) + " twice (a fork)";
  }
  length = by_seq.size();
  std::string prev = zero_id;
  std::uint64_t expected = 1;
  for (const auto& [seq, op] : by_seq) {
    if (seq != expected) return "seq " + std::to_string(expected) + " is missing";
    if ((*op)["prev"].str() != prev) {
      return "seq " + std::to_string(seq) + ": prev " + (*op)["prev"].str() +
             " is not the id of seq " + std::to_string(seq - 1) + " (" + prev + ")";
    }
    prev = (*op)["id"].str();
    ++expected;
  }
  return {};
}

Submitters::Submitters(std::string endpoint, int threads, std::string tag)
    : endpoint_(std::move(endpoint)), tag_(std::move(tag)) {
  for (int t = 0; t < threads; ++t) threads_.emplace_back([this, t] { run(t); });
}

Submitters::~Submitters() { stop(); }

void Submitters::stop() {
  stop_ = true;
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Submitters::run(int thread) {
  try {
    IpcClient client(endpoint_, 60s);
    for (std::uint64_t n = 0; !stop_.load(); ++n) {
      std::string key = tag_ + "-" + std::to_string(thread) + "-" + std::to_string(n);
      Value body = Value::map({{"thread", thread}, {"n", n}, {"form", "household-registration"}});
      auto reply = client.try_call(submit_request("case.submit", key, body), &stop_);
      if (!reply) {
        if (!stop_.load()) {
          std::lock_guard<std::mutex> lock(mutex_);
          problems_.push_back(key + ": no reply within 60 s");
        }
        return;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      if (!(*reply)["ok"].boolean()) {
        problems_.push_back(key + ": refused: " + reply->dump());
        return;
      }
      ids_.push_back((*reply)["id"].str());
      ++acked_;
    }
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> lock(mutex_);
    problems_.push_back("thread " + std::to_string(thread) + ": " + e.what());
  }
}

std::vector<std::string> Submitters::acked_ids() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return ids_;
}

std::vector<std::string> Submitters::problems() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return problems_;
}

ProcessResult ferryctl_verify(const TestNode& node) {
  if (ferryctl_path().empty()) throw harness_error("ferryctl was not built");
  return run_process({ferryctl_path(), "-c", node.config_path(), "verify"});
}

std::uint64_t feed_length(TestNode& node, const std::string& channel, const std::string& origin) {
  IpcClient c = node.client();
  std::vector<Value> mine;
  for (Value& op : pull_all(c)) {
    if (op["origin"].str() == origin && op["channel"].str() == channel) mine.push_back(op);
  }
  std::uint64_t length = 0;
  std::string broken = feed_break(mine, channel, length);
  if (!broken.empty()) throw harness_error(node.name() + ": " + broken);
  return length;
}

// ---- failure reports ------------------------------------------------------------------------

void keep_log_for_report(std::string label, std::string text) {
  std::lock_guard<std::mutex> lock(report_mutex);
  report_logs.push_back("---- " + label + " stderr ----\n" + tail_lines(text, 80));
}

std::string take_report_logs() {
  std::lock_guard<std::mutex> lock(report_mutex);
  std::string out;
  for (const std::string& s : report_logs) out += s + (s.ends_with('\n') ? "" : "\n");
  report_logs.clear();
  return out;
}

}  // namespace ferry::it
