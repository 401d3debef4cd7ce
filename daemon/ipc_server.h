// The daemon's event loop: one ZeroMQ ROUTER socket serving the local IPC (docs/ipc.md).
//
// One thread polls the socket, a socket monitor and a signal fd. It reads what is waiting (at
// most drain_max requests a round), answers reads at once, gathers submits and commits them in
// batches of at most batch_ops_max (group commit), then wakes the pulls that wait for new ops.
// A SIGTERM or SIGINT stops the loop after the commit in flight has been answered and every
// waiting pull has had its (empty) reply. Every queue here is bounded by the config.
#pragma once

#include <chrono>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "daemon/node.h"

namespace ferry::daemon {

// Frames larger than this many request_bytes_max are cut off by ZeroMQ (ZMQ_MAXMSGSIZE), which
// closes that connection; smaller oversize frames get a too_large reply.
inline constexpr std::size_t oversize_cutoff_factor = 4;
inline constexpr int frames_per_request_max = 8;
inline constexpr std::chrono::milliseconds shutdown_linger{2000};
inline constexpr std::chrono::milliseconds housekeeping_interval{1000};

class IpcServer {
 public:
  explicit IpcServer(Node& node);

  // Binds the socket (and sets the socket file's mode for ipc:// endpoints).
  [[nodiscard]] Result<void> bind();

  // Serves until a signal arrives on signal_fd; returns when the socket is closed.
  void run(int signal_fd);

 private:
  struct Route {
    std::string identity;  // the client's ROUTER routing id
  };
  struct PendingSubmit {
    Route route;
    OpDraft draft;
  };
  struct Waiter {
    Route route;
    ipc::PullRequest request;
    std::uint64_t after = 0;
    std::chrono::steady_clock::time_point deadline;
  };

  void drain();
  void receive_one();
  void handle(Route route, const zmq::message_t& payload);
  void start_pull(Route route, const ipc::PullRequest& request);
  void flush_submits();
  void wake_waiters(bool expire_all);
  void reply(const Route& route, const ipc::Bytes& bytes);
  void fail(const Route& route, ipc::Code code, std::string message);
  void drain_monitor();
  int poll_timeout_ms() const;
  void close();

  Node& node_;
  const config::LimitsConfig& limits_;
  ipc::RequestLimits request_limits_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  std::vector<PendingSubmit> submits_;
  std::vector<Waiter> waiters_;
  IpcCounters counters_;
  std::uint64_t waiters_seen_arrival_ = 0;
};

}  // namespace ferry::daemon
