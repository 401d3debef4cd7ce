// The daemon's event loop: one ZeroMQ ROUTER socket serving the local IPC (docs/ipc.md).
//
// One thread polls the socket, a socket monitor, a signal fd and an eventfd the signing pool
// writes when a batch is signed. It reads what is waiting (at most drain_max requests a round)
// and answers reads at once. Submits become batches of at most batch_ops_max ops: while one batch
// commits (the fsync), the next is already being signed on the pool's threads, and at most
// batches_in_flight_max batches are on their way. Replies to submits go out only after their
// commit is durable; then the pulls waiting for new ops are woken. A SIGTERM or SIGINT stops the
// loop after every submit already read has been committed and answered and every waiting pull
// has had its reply. Every queue here is bounded by the config.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "daemon/node.h"
#include "daemon/replicator.h"

namespace ferry::daemon {

class Monitor;
class ServiceNotify;

// Frames larger than this many request_bytes_max are cut off by ZeroMQ (ZMQ_MAXMSGSIZE), which
// closes that connection; smaller oversize frames get a too_large reply.
inline constexpr std::size_t oversize_cutoff_factor = 4;
inline constexpr int frames_per_request_max = 8;
inline constexpr std::chrono::milliseconds shutdown_linger{2000};
inline constexpr std::chrono::milliseconds housekeeping_interval{1000};
inline constexpr std::size_t batches_in_flight_max = 2;  // one committing, one being signed
// A batch goes to the signing threads in parts of this many ops, each as soon as it is built:
// the first parts are signed while the loop still builds the rest.
inline constexpr std::size_t sign_part_ops = 128;

class IpcServer {
 public:
  explicit IpcServer(Node& node);
  ~IpcServer();
  IpcServer(const IpcServer&) = delete;
  IpcServer& operator=(const IpcServer&) = delete;

  // Binds the socket (and sets the socket file's mode for ipc:// endpoints).
  [[nodiscard]] Result<void> bind();

  // Serves until a signal arrives on signal_fd; returns when the socket is closed.
  void run(int signal_fd);

  // Replication shares this event loop (optional; set before run()).
  void attach(Replicator* replicator) { replicator_ = replicator; }

  // Queues a draft of the node's own (a receipt, a status report) with the submits; it gets no
  // reply, but `stored` runs once it is durable. Dropped, with a log line, when the submit queue
  // is full.
  using Stored = std::function<void(const storage::Appended&)>;
  void submit_internal(OpDraft draft, Stored stored = {});

  // The monitor shares this event loop (optional; set before run()).
  void attach(Monitor* monitor) { replication_monitor_ = monitor; }

  // The service manager's notifications (daemon/service_notify.h), optional; set before run().
  // The loop feeds its watchdog every round (never waiting longer than the ping is due) and
  // tells it when the stop signal arrives.
  void attach(ServiceNotify* service) { service_ = service; }

  const IpcCounters& counters();

 private:
  struct Route {
    std::string identity;  // the client's ROUTER routing id; empty for the node's own drafts
    std::chrono::steady_clock::time_point received{};
    Stored stored;  // the node's own drafts: told when durable
  };
  struct PendingSubmit {
    Route route;
    OpDraft draft;
  };
  struct InFlight {  // a batch being signed, in submit order
    std::vector<Route> routes;
    std::vector<Op> ops;
    std::vector<std::future<std::vector<Signature>>> parts;  // its signatures, part by part
    bool is_signed() const;
    void wait() const;
    std::vector<Signature> take_signatures();
  };
  struct Waiter {
    Route route;
    ipc::PullRequest request;
    std::uint64_t after = 0;
    std::chrono::steady_clock::time_point deadline;
  };

  void drain();
  bool receive_one();  // false when nothing is waiting
  void handle(Route route, const zmq::message_t& payload);
  void start_pull(Route route, const ipc::PullRequest& request);
  void dispatch();
  void sign_part(InFlight& batch, std::vector<OpId> ids);  // queues a part of its signing
  void complete(bool wait);
  void store_batch(InFlight batch, std::vector<Signature> signatures);
  void fail_batch(const InFlight& batch, const Error& error);
  std::size_t submits_queued() const;
  void drain_wake_fd();
  void wake_waiters(bool expire_all);
  void reply(const Route& route, const ipc::Bytes& bytes);
  void fail(const Route& route, ipc::Code code, std::string message);
  void drain_monitor();
  int poll_timeout_ms() const;
  void close();
  ipc::Bytes encode_peers();
  void queue_submit(Route route, OpDraft draft);

  Node& node_;
  Replicator* replicator_ = nullptr;
  Monitor* replication_monitor_ = nullptr;
  ServiceNotify* service_ = nullptr;
  const config::LimitsConfig& limits_;
  ipc::RequestLimits request_limits_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  zmq::socket_t monitor_;
  std::deque<PendingSubmit> submits_;
  std::deque<InFlight> in_flight_;
  int wake_fd_ = -1;
  std::vector<Waiter> waiters_;
  IpcCounters counters_;
  std::uint64_t waiters_seen_arrival_ = 0;
};

}  // namespace ferry::daemon
