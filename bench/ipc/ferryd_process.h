// A real ferryd for the benchmark: a fresh station node in a directory, the child process that
// serves it, and the status request that shows it answers.
//
// FerrydProcess owns the child. Its destructor kills it (SIGKILL) and reaps it unless stop()
// already did, and the kernel kills it if the benchmark itself dies (PR_SET_PDEATHSIG), so no
// path out of the benchmark leaves a daemon behind. It is used from the thread that started it.
// The child's stdout and stderr go to a log file in the node directory. Failures are Result
// values; the cppzmq calls here catch what cppzmq throws.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "protocol/error.h"

namespace ferry::bench {

struct StationFiles {
  std::string config_path;  // dir/ferry.toml
  std::string endpoint;     // the config's [ipc] endpoint, as ferryd reads it
  std::string log_path;     // dir/ferryd.log, ferryd's stdout and stderr
};

// Makes `dir` a new station node named `name`: a fresh dir/node.key (mode 0600) and
// dir/ferry.toml from config::render_config, then loads that config back for the endpoint.
[[nodiscard]] Result<StationFiles> create_station(const std::string& dir, const std::string& name);

struct DaemonStatus {
  std::uint64_t ops = 0;             // ops the node holds
  std::uint64_t requests = 0;        // IPC requests since start
  std::uint64_t unsent_replies = 0;  // replies ferryd could not deliver
};

// One status request on a fresh REQ socket. Errc::timeout when no reply comes within `timeout`.
[[nodiscard]] Result<DaemonStatus> query_status(zmq::context_t& context,
                                                const std::string& endpoint,
                                                std::chrono::milliseconds timeout);

class FerrydProcess {
 public:
  // Forks and execs `ferryd_path --config files.config_path`.
  [[nodiscard]] static Result<FerrydProcess> start(const std::string& ferryd_path,
                                                   const StationFiles& files);
  ~FerrydProcess();
  FerrydProcess(FerrydProcess&& other) noexcept;
  FerrydProcess& operator=(FerrydProcess&&) = delete;
  FerrydProcess(const FerrydProcess&) = delete;
  FerrydProcess& operator=(const FerrydProcess&) = delete;

  pid_t pid() const { return pid_; }

  // Polls status until ferryd answers; Errc::timeout after `timeout`, Errc::io if it exited.
  [[nodiscard]] Result<void> wait_until_serving(zmq::context_t& context,
                                                const std::string& endpoint,
                                                std::chrono::milliseconds timeout);

  // Reaps the child if it has exited and returns its wait status (-1 when it cannot be waited
  // for); nullopt while it runs, and once it has been reaped.
  std::optional<int> reap_if_exited();

  // SIGTERM, then waits up to `grace` for it to exit (SIGKILL after that). Errc::io unless it
  // exited with status 0.
  [[nodiscard]] Result<void> stop(std::chrono::milliseconds grace);

 private:
  explicit FerrydProcess(pid_t pid) : pid_(pid) {}
  void kill_now();

  pid_t pid_ = -1;  // -1 once reaped
};

// "exited with status 3", "was killed by signal 9": a wait status for people.
std::string describe_wait_status(int wait_status);

// The last `lines_max` lines of a log file (for error reports); empty when unreadable.
std::string log_tail(const std::string& path, std::size_t lines_max);

}  // namespace ferry::bench
