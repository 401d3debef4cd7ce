#include "daemon/ipc_server.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "daemon/monitor.h"
#include "daemon/service_notify.h"

namespace ferry::daemon {
namespace {

constexpr const char* monitor_endpoint = "inproc://ferryd-ipc-monitor";

std::string ipc_path(const std::string& endpoint) {
  constexpr std::string_view scheme = "ipc://";
  return endpoint.starts_with(scheme) ? endpoint.substr(scheme.size()) : std::string();
}

}  // namespace

IpcServer::IpcServer(Node& node)
    : node_(node),
      limits_(node.config().limits),
      request_limits_{limits_.request_bytes_max, std::min<std::size_t>(100, limits_.pull_limit_max),
                      limits_.pull_limit_max, limits_.pull_wait_max},
      context_(1),
      socket_(context_, zmq::socket_type::router),
      monitor_(context_, zmq::socket_type::pair),
      wake_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  FERRY_ASSERT(wake_fd_ >= 0);
}

IpcServer::~IpcServer() {
  for (InFlight& batch : in_flight_) batch.wait();  // the pool writes wake_fd_
  ::close(wake_fd_);
}

Result<void> IpcServer::bind() {
  const config::Config& config = node_.config();
  const std::string& endpoint = config.ipc.endpoint;
  try {
    socket_.set(zmq::sockopt::linger, static_cast<int>(shutdown_linger.count()));
    socket_.set(zmq::sockopt::maxmsgsize,
                static_cast<std::int64_t>(limits_.request_bytes_max * oversize_cutoff_factor));
    socket_.set(zmq::sockopt::rcvhwm, static_cast<int>(limits_.submit_queue_max));
    socket_.set(zmq::sockopt::sndhwm, static_cast<int>(limits_.submit_queue_max));
    socket_.set(zmq::sockopt::router_mandatory, 1);
    zmq_socket_monitor(socket_.handle(), monitor_endpoint, ZMQ_EVENT_DISCONNECTED);
    monitor_.connect(monitor_endpoint);
    std::string path = ipc_path(endpoint);
    // The socket file is created with the process umask: narrow it so that the file is never
    // more open than socket_mode, even for an instant, then set the mode exactly.
    mode_t old_mask = ::umask(static_cast<mode_t>(~config.ipc.socket_mode & 0777));
    socket_.bind(endpoint);
    ::umask(old_mask);
    if (!path.empty() && ::chmod(path.c_str(), config.ipc.socket_mode) != 0) {
      return ferry::fail(Errc::io, "chmod " + path + ": " + std::strerror(errno));
    }
  } catch (const zmq::error_t& e) {
    return ferry::fail(Errc::io, "cannot bind " + endpoint + ": " + e.what());
  }
  return {};
}

void IpcServer::run(int signal_fd) {
  bool stopping = false;
  std::vector<zmq::pollitem_t> items;
  while (!stopping) {
    items = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
             {monitor_.handle(), 0, ZMQ_POLLIN, 0},
             {nullptr, signal_fd, ZMQ_POLLIN, 0},
             {nullptr, wake_fd_, ZMQ_POLLIN, 0}};
    int timeout_ms = poll_timeout_ms();
    if (replicator_ != nullptr) {
      replicator_->poll_items(items);
      timeout_ms = std::min(timeout_ms, static_cast<int>(replicator_->timeout().count()));
    }
    if (replication_monitor_ != nullptr) {
      timeout_ms = std::min(timeout_ms, static_cast<int>(replication_monitor_->timeout().count()));
    }
    if (service_ != nullptr) {
      timeout_ms = std::min(timeout_ms, static_cast<int>(service_->timeout().count()));
    }
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("poll failed: {}", e.what());
      continue;
    }
    if (items[3].revents & ZMQ_POLLIN) drain_wake_fd();
    if (items[1].revents & ZMQ_POLLIN) drain_monitor();
    if (items[0].revents & ZMQ_POLLIN) drain();
    if (replicator_ != nullptr) {
      replicator_->handle(std::span<const zmq::pollitem_t>(items).subspan(4));
      replicator_->tick();
    }
    if (replication_monitor_ != nullptr) replication_monitor_->tick();
    if (service_ != nullptr) service_->tick();
    dispatch();
    complete(false);
    if (items[2].revents & ZMQ_POLLIN) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) == sizeof info) {
        spdlog::info("signal {} received: stopping", info.ssi_signo);
      }
      if (service_ != nullptr) service_->stopping();
      stopping = true;
    }
    wake_waiters(false);
  }
  // Every submit already read is committed and answered before the socket closes.
  while (!submits_.empty() || !in_flight_.empty()) {
    dispatch();
    complete(true);
  }
  wake_waiters(true);
  if (replicator_ != nullptr) replicator_->close();
  close();
}

const IpcCounters& IpcServer::counters() {
  if (replicator_ != nullptr) counters_.replication = replicator_->counters();
  return counters_;
}

void IpcServer::submit_internal(OpDraft draft, Stored stored) {
  if (submits_queued() >= limits_.submit_queue_max) {
    spdlog::warn("submit queue full: a {} op of the node's own was dropped", draft.kind);
    return;
  }
  submits_.push_back(PendingSubmit{Route{{}, {}, std::move(stored)}, std::move(draft)});
  counters_.submit_queue = submits_queued();
}

void IpcServer::queue_submit(Route route, OpDraft draft) {
  if (submits_queued() >= limits_.submit_queue_max) {
    fail(route, ipc::Code::busy, "the submit queue is full; retry later");
    return;
  }
  submits_.push_back(PendingSubmit{std::move(route), std::move(draft)});
  counters_.submit_queue = submits_queued();
}

ipc::Bytes IpcServer::encode_peers() {
  std::vector<PeerReport> peers;
  if (replicator_ != nullptr) peers = replicator_->peers();
  ipc::ReplyWriter w;
  auto& pk = w.packer();
  pk.pack_map(2);
  w.key("ok");
  pk.pack_true();
  w.key("peers");
  pk.pack_array(static_cast<std::uint32_t>(peers.size()));
  for (const PeerReport& p : peers) {
    pk.pack_map(10);
    w.key("name");
    w.text(p.name);
    w.key("key");
    w.id(p.key);
    w.key("upstream");
    pk.pack(p.upstream);
    w.key("endpoint");
    w.text(p.endpoint);
    w.key("connected");
    pk.pack(p.connected);
    w.key("last_seen");
    pk.pack_uint64(p.last_seen_ms);
    w.key("backlog");
    pk.pack_uint64(p.backlog);
    w.key("ops_sent");
    pk.pack_uint64(p.ops_sent);
    w.key("ops_received");
    pk.pack_uint64(p.ops_received);
    w.key("last_error");
    w.text(p.last_error);
  }
  return w.take();
}

int IpcServer::poll_timeout_ms() const {
  if (!in_flight_.empty() && in_flight_.front().is_signed()) {
    return 0;
  }
  auto now = std::chrono::steady_clock::now();
  auto timeout = housekeeping_interval;
  for (const Waiter& w : waiters_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(w.deadline - now);
    timeout = std::max(std::chrono::milliseconds(0),
                       std::min(timeout, left + std::chrono::milliseconds(1)));
  }
  return static_cast<int>(timeout.count());
}

void IpcServer::drain() {
  // Bounded: a flood of requests cannot keep the loop from committing and answering.
  const std::size_t drain_max = limits_.batch_ops_max * 4;
  for (std::size_t n = 0; n < drain_max; ++n) {
    if (!receive_one()) return;  // nothing more waiting
    if (submits_.size() >= limits_.batch_ops_max) dispatch();
  }
}

bool IpcServer::receive_one() {
  zmq::message_t frames[frames_per_request_max];
  int count = 0;
  bool more = true;
  while (more) {
    zmq::message_t frame;
    // A multipart message arrives whole, so only its first frame can be missing.
    if (!socket_.recv(frame, zmq::recv_flags::dontwait)) return false;
    more = frame.more();
    if (count < frames_per_request_max) frames[count++] = std::move(frame);
  }
  Route route{frames[0].to_string(), std::chrono::steady_clock::now(), {}};
  ++counters_.requests;
  bool well_framed = count == 3 && frames[1].size() == 0;
  if (!well_framed) {
    fail(route, ipc::Code::bad_request,
         "a request is one msgpack frame after an empty delimiter frame (use REQ, or DEALER "
         "with an empty first frame)");
    return true;
  }
  handle(std::move(route), frames[2]);
  return true;
}

void IpcServer::handle(Route route, const zmq::message_t& payload) {
  std::span<const std::uint8_t> bytes(static_cast<const std::uint8_t*>(payload.data()),
                                      payload.size());
  auto request = ipc::parse_request(bytes, request_limits_);
  if (!request) {
    fail(route, request.error().code, request.error().message);
    return;
  }
  if (auto* submit = std::get_if<ipc::SubmitRequest>(&*request)) {
    queue_submit(std::move(route), std::move(submit->draft));
    return;
  }
  // Trust ops are the node's own drafts, committed like submits.
  std::optional<Result<OpDraft>> trust_op;
  if (const auto* add = std::get_if<ipc::TrustAddRequest>(&*request))
    trust_op = node_.trust_draft(*add);
  if (const auto* revoke = std::get_if<ipc::TrustRevokeRequest>(&*request)) {
    trust_op = node_.trust_draft(*revoke);
  }
  if (trust_op) {
    if (!*trust_op) {
      fail(route, ipc::code_for(trust_op->error()), trust_op->error().detail);
    } else {
      queue_submit(std::move(route), std::move(**trust_op));
    }
    return;
  }
  if (std::holds_alternative<ipc::MonitorRequest>(*request)) {
    if (replication_monitor_ == nullptr) {
      fail(route, ipc::Code::bad_request, "this daemon runs without a monitor");
      return;
    }
    reply(route, replication_monitor_->ipc_reply());
    return;
  }
  if (std::holds_alternative<ipc::PeersRequest>(*request)) {
    reply(route, encode_peers());
    return;
  }
  if (std::holds_alternative<ipc::SyncRequest>(*request)) {
    if (replicator_ == nullptr || node_.config().upstreams.empty()) {
      fail(route, ipc::Code::bad_request, "this node has no upstream to sync with");
      return;
    }
    replicator_->sync_now();
    ipc::ReplyWriter w;
    w.packer().pack_map(1);
    w.key("ok");
    w.packer().pack_true();
    reply(route, w.take());
    return;
  }
  if (auto* pull = std::get_if<ipc::PullRequest>(&*request)) {
    start_pull(std::move(route), *pull);
    return;
  }
  auto answer = node_.read(*request, counters());
  if (!answer) {
    fail(route, answer.error().code, answer.error().message);
    return;
  }
  reply(route, *answer);
}

void IpcServer::start_pull(Route route, const ipc::PullRequest& request) {
  auto page = node_.pull(request, request.after);
  if (!page) {
    fail(route, ipc::code_for(page.error()), page.error().detail);
    return;
  }
  if (!page->ops.empty() || request.wait.count() == 0) {
    reply(route, node_.encode_pull(*page));
    return;
  }
  if (waiters_.size() >= limits_.pull_waiting_max) {
    fail(route, ipc::Code::busy, "too many pulls are waiting; retry later");
    return;
  }
  auto deadline = std::chrono::steady_clock::now() + request.wait;
  waiters_.push_back(Waiter{std::move(route), request, page->next, deadline});
  counters_.pulls_waiting = waiters_.size();
}

std::size_t IpcServer::submits_queued() const {
  std::size_t queued = submits_.size();
  for (const InFlight& batch : in_flight_) queued += batch.ops.size();
  return queued;
}

void IpcServer::dispatch() {
  while (in_flight_.size() < batches_in_flight_max && !submits_.empty()) {
    // The batch's lookups share one read transaction; it ends before any batch is stored.
    auto snapshot = node_.store().read_snapshot();
    InFlight batch;
    std::vector<OpId> ids;
    while (!submits_.empty() && batch.ops.size() < limits_.batch_ops_max) {
      PendingSubmit submit = std::move(submits_.front());
      submits_.pop_front();
      auto op = node_.build(submit.draft);
      if (!op) {  // this draft alone fails; nothing of it is stored
        fail(submit.route, ipc::code_for(op.error()), op.error().detail);
        continue;
      }
      ids.push_back(op->id());
      batch.routes.push_back(std::move(submit.route));
      batch.ops.push_back(std::move(*op));
      // The first parts are signed while the rest of the batch is built.
      if (ids.size() == sign_part_ops) sign_part(batch, std::exchange(ids, {}));
    }
    if (!ids.empty()) sign_part(batch, std::move(ids));
    if (batch.ops.empty()) continue;
    in_flight_.push_back(std::move(batch));
  }
  counters_.submit_queue = submits_queued();
}

void IpcServer::sign_part(InFlight& batch, std::vector<OpId> ids) {
  int fd = wake_fd_;
  batch.parts.push_back(node_.sign(std::move(ids), [fd] {
    std::uint64_t one = 1;
    (void)::write(fd, &one, sizeof one);
  }));
}

bool IpcServer::InFlight::is_signed() const {
  return std::ranges::all_of(parts, [](const auto& part) {
    return part.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  });
}

void IpcServer::InFlight::wait() const {
  for (const auto& part : parts) part.wait();
}

std::vector<Signature> IpcServer::InFlight::take_signatures() {
  std::vector<Signature> signatures;
  signatures.reserve(ops.size());
  for (auto& part : parts) {
    std::vector<Signature> signed_part = part.get();
    signatures.insert(signatures.end(), signed_part.begin(), signed_part.end());
  }
  parts.clear();
  return signatures;
}

void IpcServer::complete(bool wait) {
  while (!in_flight_.empty()) {
    InFlight& front = in_flight_.front();
    if (!wait && !front.is_signed()) return;
    std::vector<Signature> signatures = front.take_signatures();
    InFlight batch = std::move(front);
    in_flight_.pop_front();
    // The next batch is signed while this one commits. Its submits are read first: those that
    // arrived while the last batch was committing would otherwise wait, unsigned, for this
    // commit too, and the signing threads would idle while it runs (not while stopping: the
    // last submits are answered, and no new ones are read).
    if (!wait) drain();
    dispatch();
    store_batch(std::move(batch), std::move(signatures));
  }
}

void IpcServer::store_batch(InFlight batch, std::vector<Signature> signatures) {
  FERRY_ASSERT(signatures.size() == batch.ops.size());
  std::vector<SignedOp> signed_ops;
  signed_ops.reserve(batch.ops.size());
  for (std::size_t i = 0; i < batch.ops.size(); ++i) {
    signed_ops.push_back(SignedOp{std::move(batch.ops[i]), signatures[i]});
  }
  auto stored = node_.store(signed_ops);
  if (!stored) {
    fail_batch(batch, stored.error());
    // Batches built on top of this one extend nothing now: they fail too, and are not stored.
    for (InFlight& later : in_flight_) {
      later.wait();
      fail_batch(later, stored.error());
    }
    in_flight_.clear();
    counters_.submit_queue = submits_queued();
    return;
  }
  FERRY_ASSERT(stored->size() == batch.routes.size());
  // Replies go out only now, after the commit is durable.
  auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < stored->size(); ++i) {
    const storage::Appended& a = (*stored)[i];
    const Route& route = batch.routes[i];
    if (route.stored) route.stored(a);
    if (route.identity.empty()) continue;
    reply(route, ipc::encode_submitted(a.id, a.seq, a.hlc, a.channel));
    ++counters_.submits;
    counters_.submit_latency.observe(std::chrono::duration<double>(now - route.received).count());
  }
  counters_.submit_queue = submits_queued();
  if (replicator_ != nullptr) replicator_->stored_locally();
}

void IpcServer::fail_batch(const InFlight& batch, const Error& error) {
  for (const Route& route : batch.routes) fail(route, ipc::code_for(error), error.detail);
}

void IpcServer::drain_wake_fd() {
  std::uint64_t count = 0;
  (void)::read(wake_fd_, &count, sizeof count);
}

void IpcServer::wake_waiters(bool expire_all) {
  if (waiters_.empty()) return;
  auto now = std::chrono::steady_clock::now();
  bool fresh = node_.last_arrival() != waiters_seen_arrival_;
  waiters_seen_arrival_ = node_.last_arrival();
  std::vector<Waiter> still;
  for (Waiter& w : waiters_) {
    if (fresh && w.after < node_.last_arrival()) {
      auto page = node_.pull(w.request, w.after);
      if (!page) {
        fail(w.route, ipc::code_for(page.error()), page.error().detail);
        continue;
      }
      if (!page->ops.empty()) {
        reply(w.route, node_.encode_pull(*page));
        continue;
      }
      w.after = page->next;  // skipped ops of other channels are not looked at again
    }
    if (expire_all || now >= w.deadline) {
      reply(w.route, node_.encode_pull(PullPage{{}, w.after}));
      continue;
    }
    still.push_back(std::move(w));
  }
  waiters_ = std::move(still);
  counters_.pulls_waiting = waiters_.size();
}

void IpcServer::reply(const Route& route, const ipc::Bytes& bytes) {
  if (route.identity.empty()) return;  // the node's own draft
  try {
    bool sent = socket_.send(zmq::buffer(route.identity),
                             zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
                socket_.send(zmq::message_t(), zmq::send_flags::sndmore) &&
                socket_.send(zmq::buffer(bytes), zmq::send_flags::none);
    if (!sent) ++counters_.unsent_replies;
  } catch (const zmq::error_t&) {
    ++counters_.unsent_replies;  // the client went away (EHOSTUNREACH) or its queue is full
  }
}

void IpcServer::fail(const Route& route, ipc::Code code, std::string message) {
  ++counters_.errors[static_cast<std::size_t>(code)];
  if (route.identity.empty()) {
    spdlog::error("an op of the node's own failed: {}: {}", ipc::code_name(code), message);
    return;
  }
  spdlog::debug("request refused: {}: {}", ipc::code_name(code), message);
  reply(route, ipc::encode_failure(ipc::Failure{code, std::move(message)}));
}

void IpcServer::drain_monitor() {
  for (int n = 0; n < frames_per_request_max * 16; ++n) {
    zmq::message_t event;
    if (!monitor_.recv(event, zmq::recv_flags::dontwait)) return;
    if (event.more()) {
      zmq::message_t address;
      (void)monitor_.recv(address, zmq::recv_flags::dontwait);
    }
    if (event.size() >= sizeof(std::uint16_t)) {
      std::uint16_t id = 0;
      std::memcpy(&id, event.data(), sizeof id);
      if (id == ZMQ_EVENT_DISCONNECTED) ++counters_.disconnects;
    }
  }
}

void IpcServer::close() {
  zmq_socket_monitor(socket_.handle(), nullptr, 0);
  monitor_.close();
  socket_.close();  // lingers up to shutdown_linger so the last replies get out
  std::string path = ipc_path(node_.config().ipc.endpoint);
  if (!path.empty()) ::unlink(path.c_str());
}

}  // namespace ferry::daemon
