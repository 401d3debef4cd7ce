#include "bench/ipc/ferryd_process.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <msgpack.hpp>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "bench/ipc/ipc_reply.h"
#include "config/config.h"
#include "protocol/node_key.h"

namespace ferry::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds status_attempt_timeout{250};
constexpr milliseconds serving_poll_interval{50};
constexpr milliseconds stop_poll_interval{10};
constexpr int attempts_max = 100'000;  // a bound on every polling loop, beside its deadline
constexpr std::int64_t reply_bytes_max = 1 << 20;
constexpr std::size_t log_bytes_max = 1 << 20;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

Result<void> write_file(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "wx");  // never replaces a file
  if (file == nullptr) return fail(Errc::io, errno_text(("cannot create " + path).c_str()));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) return fail(Errc::io, "cannot write " + path);
  return {};
}

std::vector<std::uint8_t> status_request() {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pk.pack(std::string_view("cmd"));
  pk.pack(std::string_view("status"));
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

// In the child, between fork and exec: async-signal-safe calls only.
[[noreturn]] void exec_child(char* const* argv, int log_fd, pid_t parent) {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(126);
  if (::dup2(log_fd, STDOUT_FILENO) < 0 || ::dup2(log_fd, STDERR_FILENO) < 0) ::_exit(126);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(argv[0], argv);
  ::_exit(127);
}

}  // namespace

std::string describe_wait_status(int wait_status) {
  if (wait_status < 0) return "cannot be waited for";
  if (WIFEXITED(wait_status)) {
    return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(wait_status));
  }
  return "stopped (wait status " + std::to_string(wait_status) + ")";
}

Result<StationFiles> create_station(const std::string& dir, const std::string& name) {
  std::error_code ec;
  const std::string data_dir = std::filesystem::absolute(dir, ec).string();
  if (ec) return fail(Errc::io, "cannot make " + dir + " absolute: " + ec.message());
  const std::string key_path = data_dir + "/" + config::node_key_file_name;
  if (auto saved = NodeKey::generate().save(key_path); !saved) {
    return tl::unexpected(saved.error());
  }
  const std::string config_path = data_dir + "/" + config::config_file_name;
  const config::NodeConfig node{name, data_dir, config::Role::station};
  if (auto written = write_file(config_path, config::render_config(node)); !written) {
    return tl::unexpected(written.error());
  }
  auto loaded = config::load_config(config_path);
  if (!loaded) return tl::unexpected(loaded.error());
  return StationFiles{config_path, loaded->ipc.endpoint, data_dir + "/ferryd.log"};
}

Result<DaemonStatus> query_status(zmq::context_t& context, const std::string& endpoint,
                                  milliseconds timeout) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::req);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndtimeo, static_cast<int>(timeout.count()));
    socket.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
    socket.set(zmq::sockopt::maxmsgsize, reply_bytes_max);
    socket.connect(endpoint);
    const std::vector<std::uint8_t> request = status_request();
    zmq::message_t frame;
    if (!socket.send(zmq::buffer(request), zmq::send_flags::none) || !socket.recv(frame)) {
      return fail(Errc::timeout, "no status reply from " + endpoint);
    }
    auto reply = decode_reply({static_cast<const std::uint8_t*>(frame.data()), frame.size()});
    if (!reply) return tl::unexpected(reply.error());
    if (!reply->ok) return fail(Errc::io, "status refused: " + reply->error_code);
    const auto ops = reply_uint(*reply, "ops");
    const auto requests = reply_uint(*reply, "ipc", "requests");
    const auto unsent = reply_uint(*reply, "ipc", "unsent_replies");
    if (!ops || !requests || !unsent) {
      return fail(Errc::malformed, "a status reply without ops, requests or unsent_replies");
    }
    return DaemonStatus{*ops, *requests, *unsent};
  } catch (const zmq::error_t& e) {
    return fail(Errc::io, "status request to " + endpoint + ": " + e.what());
  }
}

Result<FerrydProcess> FerrydProcess::start(const std::string& ferryd_path,
                                           const StationFiles& files) {
  std::vector<std::string> args = {ferryd_path, "--config", files.config_path};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int log_fd = ::open(files.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (log_fd < 0) return fail(Errc::io, errno_text(("cannot open " + files.log_path).c_str()));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) exec_child(argv.data(), log_fd, parent);
  const std::string fork_error = errno_text("fork");
  ::close(log_fd);
  if (pid < 0) return fail(Errc::io, fork_error);
  return FerrydProcess(pid);
}

FerrydProcess::~FerrydProcess() { kill_now(); }

FerrydProcess::FerrydProcess(FerrydProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)) {}

std::optional<int> FerrydProcess::reap_if_exited() {
  if (pid_ < 0) return std::nullopt;
  int status = 0;
  const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
  if (reaped == 0) return std::nullopt;
  pid_ = -1;
  return reaped < 0 ? -1 : status;
}

void FerrydProcess::kill_now() {
  if (pid_ < 0) return;
  ::kill(pid_, SIGKILL);
  for (int attempt = 0; attempt < attempts_max; ++attempt) {
    if (::waitpid(pid_, nullptr, 0) >= 0 || errno != EINTR) break;
  }
  pid_ = -1;
}

Result<void> FerrydProcess::wait_until_serving(zmq::context_t& context, const std::string& endpoint,
                                               milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (int attempt = 0; attempt < attempts_max; ++attempt) {
    if (auto status = reap_if_exited()) {
      return fail(Errc::io, "ferryd " + describe_wait_status(*status) + " before it served");
    }
    auto answered = query_status(context, endpoint, status_attempt_timeout);
    if (answered) return {};
    if (answered.error().code != Errc::timeout) return tl::unexpected(answered.error());
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(serving_poll_interval);
  }
  return fail(Errc::timeout,
              "ferryd did not answer status within " + std::to_string(timeout.count()) + " ms");
}

Result<void> FerrydProcess::stop(milliseconds grace) {
  if (pid_ < 0) return fail(Errc::io, "ferryd is not running");
  if (::kill(pid_, SIGTERM) != 0) return fail(Errc::io, errno_text("kill SIGTERM"));
  const Clock::time_point deadline = Clock::now() + grace;
  for (int attempt = 0; attempt < attempts_max && Clock::now() < deadline; ++attempt) {
    if (auto status = reap_if_exited()) {
      if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return {};
      return fail(Errc::io, "ferryd " + describe_wait_status(*status) + " after SIGTERM");
    }
    std::this_thread::sleep_for(stop_poll_interval);
  }
  kill_now();
  return fail(Errc::timeout, "ferryd did not stop within " + std::to_string(grace.count()) +
                                 " ms of SIGTERM and was killed");
}

std::string log_tail(const std::string& path, std::size_t lines_max) {
  std::ifstream in(path);
  std::deque<std::string> lines;
  std::string line;
  std::size_t bytes = 0;
  while (bytes < log_bytes_max && std::getline(in, line)) {
    bytes += line.size() + 1;
    lines.push_back(std::move(line));
    if (lines.size() > lines_max) lines.pop_front();
  }
  std::string text;
  for (const std::string& l : lines) text += "  " + l + "\n";
  return text;
}

}  // namespace ferry::bench
