#include "daemon/replicator.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <zmq_addon.hpp>

#include "protocol/hex.h"
#include "protocol/limits.h"
#include "protocol/receipt.h"
#include "protocol/status_report.h"

namespace ferry::daemon {

struct Replicator::Upstream {
  std::size_t index = 0;
  config::UpstreamConfig config;
  std::string server_key;  // the upstream's CurveZMQ key
  std::optional<zmq::socket_t> socket;
  std::optional<zmq::socket_t> monitor;
  std::uint64_t generation = 0;  // names each socket's monitor endpoint
  std::optional<Session> session;
  bool connected = false;  // the CURVE handshake succeeded on the current socket
  SteadyTime retry_at{};
  std::chrono::milliseconds backoff{0};
};

struct Replicator::Waker {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  Waker() { FERRY_ASSERT(fd >= 0); }
  ~Waker() { ::close(fd); }
  Waker(const Waker&) = delete;
  Waker& operator=(const Waker&) = delete;
  void wake() const {
    std::uint64_t one = 1;
    (void)::write(fd, &one, sizeof one);  // EAGAIN: the counter is full, the loop wakes anyway
  }
  void drain() const {
    std::uint64_t count = 0;
    (void)::read(fd, &count, sizeof count);
  }
};

namespace {

constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";

std::string as_string(std::span<const std::uint8_t> bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

std::string short_key(const PublicKey& key) { return to_hex(key).substr(0, 16); }

sync::ErrorCode code_of(Errc code) {
  switch (code) {
    case Errc::bad_signature:
      return sync::ErrorCode::bad_signature;
    case Errc::out_of_order:
      return sync::ErrorCode::gap;
    case Errc::fork:
      return sync::ErrorCode::fork;
    case Errc::malformed:
      return sync::ErrorCode::malformed;
    case Errc::unauthorized:
      return sync::ErrorCode::unauthorized;
    case Errc::limit_exceeded:
      return sync::ErrorCode::too_large;
    default:
      return sync::ErrorCode::internal;
  }
}

std::span<const std::uint8_t> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::uint8_t*>(m.data()), m.size()};
}

}  // namespace

Replicator::Replicator(Node& node, WallClock& wall, SubmitLocal submit_local)
    : waker_(std::make_shared<Waker>()),
      node_(node),
      wall_(wall),
      submit_local_(std::move(submit_local)),
      limits_(node.config().replication),
      wire_limits_{limits_.message_bytes_max, limits_.vector_entries_max, limits_.batch_ops_max,
                   trust_patterns_max, limits::channel_bytes_max},
      context_(1),
      rng_(std::random_device{}()) {
  auto curve = curve_public_of(node.public_key());
  FERRY_ASSERT(curve);  // a key libsodium made converts
  curve_public_ = as_string(*curve);
  curve_secret_ = as_string(curve_secret_of(node.node_key()).bytes());
}

Replicator::~Replicator() {
  close();
  std::fill(curve_secret_.begin(), curve_secret_.end(), '\0');
}

Result<void> Replicator::start() {
  const config::Config& config = node_.config();
  try {
    if (!config.listen_endpoint.empty()) {
      zap_.emplace(context_, zmq::socket_type::rep);
      zap_->set(zmq::sockopt::linger, 0);
      zap_->bind(zap_endpoint);
      listener_.emplace(context_, zmq::socket_type::router);
      zmq::socket_t& l = *listener_;
      l.set(zmq::sockopt::curve_server, true);
      l.set(zmq::sockopt::curve_secretkey, curve_secret_);
      l.set(zmq::sockopt::zap_domain, zap_domain_name);
      l.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(limits_.message_bytes_max));
      l.set(zmq::sockopt::router_mandatory, 1);
      l.set(zmq::sockopt::linger, 0);
      l.set(zmq::sockopt::sndhwm, static_cast<int>(limits_.window_batches + 8));
      l.set(zmq::sockopt::rcvhwm, static_cast<int>(limits_.window_batches + 8));
      l.set(zmq::sockopt::handshake_ivl, static_cast<int>(limits_.heartbeat_timeout.count()));
      l.bind(config.listen_endpoint);
    }
  } catch (const zmq::error_t& e) {
    return fail(Errc::io, "cannot listen on " + config.listen_endpoint + ": " + e.what());
  }
  for (std::size_t i = 0; i < config.upstreams.size(); ++i) {
    auto up = std::make_unique<Upstream>();
    up->index = i;
    up->config = config.upstreams[i];
    auto server = curve_public_of(up->config.key);
    if (!server) {
      return fail(Errc::malformed,
                  "upstream " + up->config.endpoint + ": key: " + server.error().detail);
    }
    up->server_key = as_string(*server);
    up->backoff = limits_.reconnect_min;
    Memory& m = memory(up->config.key);
    m.upstream = true;
    m.endpoint = up->config.endpoint;
    upstreams_.push_back(std::move(up));
  }
  for (auto& up : upstreams_) connect_upstream(*up);
  return {};
}

Replicator::Memory& Replicator::memory(const PublicKey& key) {
  auto [it, added] = memory_.try_emplace(key);
  if (added && memory_.size() > limits_.peers_max + upstreams_.size() + 1) {
    // Bounded: forget a peer that is neither configured nor connected.
    for (auto old = memory_.begin(); old != memory_.end(); ++old) {
      bool live = old->first == key || old->second.upstream ||
                  std::ranges::any_of(downstream_, [&](const auto& d) {
                    return d.second.session.peer == old->first;
                  });
      if (!live) {
        memory_.erase(old);
        break;
      }
    }
  }
  return memory_[key];
}

// ---- Sockets ----

void Replicator::connect_upstream(Upstream& up) {
  up.socket.emplace(context_, zmq::socket_type::dealer);
  zmq::socket_t& s = *up.socket;
  s.set(zmq::sockopt::curve_serverkey, up.server_key);
  s.set(zmq::sockopt::curve_publickey, curve_public_);
  s.set(zmq::sockopt::curve_secretkey, curve_secret_);
  s.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(limits_.message_bytes_max));
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, static_cast<int>(limits_.window_batches + 8));
  s.set(zmq::sockopt::rcvhwm, static_cast<int>(limits_.window_batches + 8));
  // TCP connects are retried by ZeroMQ at reconnect_min, without growing: a retry costs one SYN,
  // and a healed link must not sit idle (the session backoff below is for failed sessions).
  s.set(zmq::sockopt::reconnect_ivl, static_cast<int>(limits_.reconnect_min.count()));
  s.set(zmq::sockopt::reconnect_ivl_max, 0);
  s.set(zmq::sockopt::connect_timeout, static_cast<int>(limits_.heartbeat_interval.count() * 2));
  s.set(zmq::sockopt::handshake_ivl, static_cast<int>(limits_.heartbeat_timeout.count()));
  std::string monitor_endpoint =
      "inproc://ferry-upstream-" + std::to_string(up.index) + "-" + std::to_string(++up.generation);
  zmq_socket_monitor(s.handle(), monitor_endpoint.c_str(),
                     ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
  up.monitor.emplace(context_, zmq::socket_type::pair);
  up.monitor->connect(monitor_endpoint);
  s.connect(up.config.endpoint);
  up.connected = false;
  up.session.emplace();
  auto now = std::chrono::steady_clock::now();
  up.session->last_received = now;
  up.session->last_sent = now;
  // Queued by ZeroMQ until the connection is up.
  send(Link{&up, nullptr}, *up.session, sync::Hello{greeting({"*"})});
}

void Replicator::drop_upstream(Upstream& up, std::string reason) {
  if (!up.socket) return;
  if (up.session && up.session->open) ++counters_.sessions_lost;
  spdlog::info("upstream {}: session ended: {}", up.config.endpoint, reason);
  memory(up.config.key).last_error = reason;
  zmq_socket_monitor(up.socket->handle(), nullptr, 0);
  up.monitor.reset();
  up.socket.reset();
  up.session.reset();
  up.connected = false;
  up.retry_at = std::chrono::steady_clock::now() + backoff_delay(up);
}

std::chrono::milliseconds Replicator::backoff_delay(Upstream& up) {
  auto base = up.backoff;
  up.backoff = std::min(limits_.reconnect_max, up.backoff * 2);
  auto spread = base.count() * static_cast<std::int64_t>(limits_.reconnect_jitter_percent) / 100;
  std::int64_t jitter = 0;
  if (spread > 0) {
    jitter = std::uniform_int_distribution<std::int64_t>(-spread, spread)(rng_);
  }
  return std::max(std::chrono::milliseconds(0), base + std::chrono::milliseconds(jitter));
}

void Replicator::poll_items(std::vector<zmq::pollitem_t>& items) {
  // An absent socket is polled as nothing (no socket, no fd, no events).
  auto item = [](std::optional<zmq::socket_t>& socket) {
    return socket ? zmq::pollitem_t{socket->handle(), -1, ZMQ_POLLIN, 0}
                  : zmq::pollitem_t{nullptr, -1, 0, 0};
  };
  items.push_back(item(zap_));
  items.push_back(item(listener_));
  for (auto& up : upstreams_) {
    items.push_back(item(up->socket));
    items.push_back(item(up->monitor));
  }
  items.push_back(zmq::pollitem_t{nullptr, waker_->fd, ZMQ_POLLIN, 0});
}

void Replicator::handle(std::span<const zmq::pollitem_t> items) {
  if (closed_) return;
  FERRY_ASSERT(items.size() == 3 + 2 * upstreams_.size());
  if (items.back().revents & ZMQ_POLLIN) waker_->drain();
  if (items[0].revents & ZMQ_POLLIN) handle_zap();
  if (items[1].revents & ZMQ_POLLIN) receive_downstream();
  for (std::size_t i = 0; i < upstreams_.size(); ++i) {
    Upstream& up = *upstreams_[i];
    if (items[3 + 2 * i].revents & ZMQ_POLLIN && up.monitor) drain_upstream_monitor(up);
    if (items[2 + 2 * i].revents & ZMQ_POLLIN && up.socket) receive_upstream(up);
  }
  store_verified();
}

// ZAP (RFC 27): admits a CURVE client whose key the trust view admits, and names it by its
// Ed25519 key in hex (the User-Id of its messages).
void Replicator::handle_zap() {
  for (std::size_t n = 0; n < replication_drain_max; ++n) {
    std::vector<zmq::message_t> frames;
    try {
      auto got = zmq::recv_multipart(*zap_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got) return;
    } catch (const zmq::error_t& e) {
      spdlog::error("zap: {}", e.what());
      return;
    }
    if (frames.size() < 2) continue;  // libzmq never sends this; there is nothing to answer
    std::string status = "400";
    std::string text = "key not admitted";
    std::string user;
    const auto trust = node_.trust();
    if (frames.size() >= 7 && frames[5].to_string_view() == "CURVE" &&
        frames[6].size() == curve_key_bytes && trust != nullptr) {
      CurvePublicKey curve{};
      std::memcpy(curve.data(), frames[6].data(), curve.size());
      auto key = trust->by_curve(curve);
      if (key && trust->admitted(*key)) {
        status = "200";
        text = "OK";
        user = to_hex(*key);
      }
    }
    if (status != "200") {
      ++counters_.zap_refused;
      spdlog::warn("refused a peer at the handshake from {}: {}", frames[3].to_string(), text);
    }
    std::array<zmq::const_buffer, 6> reply = {
        zmq::str_buffer("1.0"), zmq::buffer(frames[1].data(), frames[1].size()),
        zmq::buffer(status),    zmq::buffer(text),
        zmq::buffer(user),      zmq::str_buffer("")};
    try {
      zmq::send_multipart(*zap_, reply);
    } catch (const zmq::error_t& e) {
      spdlog::error("zap reply: {}", e.what());
    }
  }
}

void Replicator::drain_upstream_monitor(Upstream& up) {
  for (std::size_t n = 0; n < replication_drain_max && up.monitor; ++n) {
    zmq::message_t event;
    if (!up.monitor->recv(event, zmq::recv_flags::dontwait)) return;
    if (event.more()) {
      zmq::message_t address;
      (void)up.monitor->recv(address, zmq::recv_flags::dontwait);
    }
    if (event.size() < sizeof(std::uint16_t)) continue;
    std::uint16_t id = 0;
    std::memcpy(&id, event.data(), sizeof id);
    switch (id) {
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        up.connected = true;
        if (up.session) up.session->last_received = std::chrono::steady_clock::now();
        break;
      case ZMQ_EVENT_DISCONNECTED:
        // ZeroMQ would reconnect this socket by itself, but the session (and its hello) is gone
        // with the connection: start over on a fresh socket.
        if (up.connected) {
          drop_upstream(up, "connection lost");
          return;
        }
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        drop_upstream(up, "the upstream refused this node's key (not trusted there yet?)");
        return;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        drop_upstream(up, "CURVE handshake failed (wrong upstream key?)");
        return;
      default:
        break;
    }
  }
}

void Replicator::receive_upstream(Upstream& up) {
  for (std::size_t n = 0; n < replication_drain_max && up.socket; ++n) {
    zmq::message_t frame;
    try {
      if (!up.socket->recv(frame, zmq::recv_flags::dontwait)) return;
    } catch (const zmq::error_t& e) {
      drop_upstream(up, std::string("receive failed: ") + e.what());
      return;
    }
    if (frame.more()) {  // one frame per message; drain the rest and end the session
      while (frame.more() && up.socket->recv(frame, zmq::recv_flags::dontwait)) {
      }
      protocol_error(Link{&up, nullptr}, *up.session, sync::ErrorCode::malformed,
                     "a message is one frame");
      return;
    }
    // One batch of ops per round: storing it takes tens of milliseconds, and IPC waits.
    if (on_message(Link{&up, nullptr}, *up.session, bytes_of(frame), up.config.key)) return;
  }
}

void Replicator::receive_downstream() {
  for (std::size_t n = 0; n < replication_drain_max; ++n) {
    std::vector<zmq::message_t> frames;
    try {
      auto got =
          zmq::recv_multipart(*listener_, std::back_inserter(frames), zmq::recv_flags::dontwait);
      if (!got) return;
    } catch (const zmq::error_t& e) {
      spdlog::error("listener receive: {}", e.what());
      return;
    }
    if (frames.size() < 2) continue;
    std::string route = frames[0].to_string();
    std::optional<PublicKey> authenticated;
    try {
      auto key = from_hex<public_key_bytes>(frames[1].gets("User-Id"));
      if (key) authenticated = *key;
    } catch (const zmq::error_t&) {
    }
    auto it = downstream_.find(route);
    if (it == downstream_.end()) {
      if (downstream_.size() >= limits_.peers_max) {
        Downstream refused{route, Session{}};
        protocol_error(Link{nullptr, &refused}, refused.session, sync::ErrorCode::internal,
                       "this node has its maximum of peers; retry later");
        continue;
      }
      it = downstream_.emplace(route, Downstream{route, Session{}}).first;
      it->second.session.last_received = std::chrono::steady_clock::now();
      it->second.session.last_sent = it->second.session.last_received;
    }
    Link link{nullptr, &it->second};
    if (frames.size() != 2) {
      protocol_error(link, it->second.session, sync::ErrorCode::malformed,
                     "a message is one frame");
      continue;
    }
    if (on_message(link, it->second.session, bytes_of(frames[1]), authenticated)) return;
  }
}

bool Replicator::send(Link link, Session& session, const sync::Message& message) {
  sync::Bytes frame = sync::encode(message);
  try {
    if (link.upstream != nullptr) {
      if (!link.upstream->socket) return false;
      if (!link.upstream->socket->send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
        return false;
      }
    } else {
      if (!listener_) return false;
      if (!listener_->send(zmq::buffer(link.downstream->route),
                           zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !listener_->send(zmq::buffer(frame), zmq::send_flags::dontwait)) {
        return false;
      }
    }
  } catch (const zmq::error_t& e) {
    spdlog::debug("send failed: {}", e.what());  // the peer is gone (EHOSTUNREACH)
    return false;
  }
  session.last_sent = std::chrono::steady_clock::now();
  return true;
}

// ---- Sessions ----

sync::Greeting Replicator::greeting(const std::vector<std::string>& channels,
                                    const PublicKey* reader) const {
  sync::Greeting g;
  g.name = node_.config().node.name;
  g.key = node_.public_key();
  g.role = std::string(config::role_name(node_.config().node.role));
  g.channels = channels;
  std::size_t n = 0;
  const TrustView* trust = node_.trust();
  for (const auto& [feed, seq] : node_.store().version_vector().entries()) {
    // A downstream peer learns only of feeds it may read (what it sends up is in those).
    if (reader != nullptr && (trust == nullptr || !trust->may_read(*reader, feed.channel))) {
      continue;
    }
    if (n++ == limits_.vector_entries_max) break;  // the peer resends a little; no harm
    g.vector.raise(feed, seq);
  }
  return g;
}

bool Replicator::on_message(Link link, Session& session, std::span<const std::uint8_t> frame,
                            const std::optional<PublicKey>& authenticated) {
  session.last_received = std::chrono::steady_clock::now();
  auto message = sync::decode(frame, wire_limits_);
  if (!message) {
    protocol_error(link, session,
                   message.error().code == Errc::limit_exceeded ? sync::ErrorCode::too_large
                                                                : sync::ErrorCode::malformed,
                   message.error().detail);
    return false;
  }
  if (session.open) memory(session.peer).last_seen_ms = wall_.now_ms();
  if (auto* hello = std::get_if<sync::Hello>(&*message)) {
    on_hello(link, session, *hello, authenticated);
  } else if (auto* welcome = std::get_if<sync::Welcome>(&*message)) {
    on_welcome(link, session, *welcome);
  } else if (auto* batch = std::get_if<sync::OpsBatch>(&*message)) {
    on_ops(link, session, *batch);
    return true;
  } else if (auto* ack = std::get_if<sync::Ack>(&*message)) {
    on_ack(link, session, *ack);
  } else if (std::holds_alternative<sync::Heartbeat>(*message)) {
    if (!session.open) {
      protocol_error(link, session, sync::ErrorCode::unexpected, "heartbeat before hello");
    }
  } else if (auto* error = std::get_if<sync::ErrorMessage>(&*message)) {
    if (auto code = sync::error_code_from_name(error->code)) {
      ++counters_.errors_received[static_cast<std::size_t>(*code)];
    }
    std::string reason = "the peer sent error " + error->code + ": " + error->message;
    spdlog::warn("{}", reason);
    end_session(link, reason);
  }
  return false;
}

void Replicator::on_hello(Link link, Session& session, const sync::Hello& hello,
                          const std::optional<PublicKey>& authenticated) {
  if (link.downstream == nullptr || session.open) {
    protocol_error(link, session, sync::ErrorCode::unexpected, "hello only opens a session");
    return;
  }
  if (!authenticated || hello.key != *authenticated) {
    protocol_error(link, session, sync::ErrorCode::identity,
                   "hello names a key other than the one this connection authenticated");
    return;
  }
  // One session per peer: a new connection replaces an old one that has not timed out yet.
  for (auto it = downstream_.begin(); it != downstream_.end();) {
    bool stale = &it->second != link.downstream && it->second.session.peer == hello.key;
    it = stale ? downstream_.erase(it) : std::next(it);
  }
  if (!open_session(link, session, hello)) return;
  spdlog::info("peer {} ({}) connected", hello.name, short_key(hello.key));
  if (!send(link, session, sync::Welcome{greeting({"*"}, &hello.key)})) return;
  pump(link, session);
}

// Opens a session on the peer's greeting (its identity already checked): its version must be
// ours. The peer's channels are what it wants, its vector what it holds.
bool Replicator::open_session(Link link, Session& session, const sync::Greeting& greeting) {
  if (greeting.version != sync::protocol_version) {
    protocol_error(link, session, sync::ErrorCode::version,
                   "this node speaks protocol version " + std::to_string(sync::protocol_version));
    return false;
  }
  session.open = true;
  session.peer = greeting.key;
  session.name = greeting.name;
  session.wanted = greeting.channels;
  session.sent = greeting.vector;
  ++counters_.sessions_opened;
  Memory& m = memory(greeting.key);
  m.name = greeting.name;
  m.last_seen_ms = wall_.now_ms();
  m.last_error.clear();
  m.wanted = greeting.channels;
  m.acked = greeting.vector;
  return true;
}

void Replicator::on_welcome(Link link, Session& session, const sync::Welcome& welcome) {
  if (link.upstream == nullptr || session.open) {
    protocol_error(link, session, sync::ErrorCode::unexpected, "welcome only answers a hello");
    return;
  }
  Upstream& up = *link.upstream;
  if (welcome.key != up.config.key) {
    protocol_error(link, session, sync::ErrorCode::identity,
                   "welcome names a key other than the configured upstream key");
    return;
  }
  if (!open_session(link, session, welcome)) return;
  // Custody the upstream already holds (acks lost with the last connection).
  note_custody(welcome.key, welcome.vector);
  spdlog::info("upstream {} ({}) connected at {}", welcome.name, short_key(welcome.key),
               up.config.endpoint);
  pump(link, session);
}

// Whether an op from a peer is refused (a protocol break: the code), or skipped (skip set: an op
// of a revoked origin, which an honest peer may still hold), or taken (nullopt, skip unset).
std::optional<sync::ErrorCode> Replicator::refuse_op(const Op& op, bool from_upstream,
                                                     std::string& why, bool& skip) const {
  const TrustView& trust = *node_.trust();
  const OpHeader& h = op.header();
  skip = false;
  if (h.channel == trust_channel) {
    if (h.origin != trust.authority()) {
      why = "a trust op not written by the authority";
      return sync::ErrorCode::unauthorized;
    }
    return std::nullopt;
  }
  if (from_upstream && !node_.is_authority()) {
    // Only what this node may read; before its own entry is known, only trust.
    const TrustEntry* self = trust.find(node_.public_key());
    if (self == nullptr || !trust.may_read(node_.public_key(), h.channel)) {
      why = "an op in channel " + h.channel + ", which this node may not read";
      return sync::ErrorCode::unauthorized;
    }
  }
  const TrustEntry* origin = trust.find(h.origin);
  if (origin != nullptr && origin->revoked) {
    skip = true;
    return std::nullopt;
  }
  if (!trust.may_write(h.origin, h.channel)) {
    why = "an op in channel " + h.channel + ", which its origin " + short_key(h.origin) +
          " may not write";
    return sync::ErrorCode::unauthorized;
  }
  return std::nullopt;
}

void Replicator::on_ops(Link link, Session& session, sync::OpsBatch& batch) {
  if (!session.open) {
    protocol_error(link, session, sync::ErrorCode::unexpected, "ops before hello");
    return;
  }
  if (batch.batch != session.expect_batch) {
    protocol_error(link, session, sync::ErrorCode::unexpected,
                   "batch " + std::to_string(batch.batch) + " where " +
                       std::to_string(session.expect_batch) + " was due");
    return;
  }
  if (session.verifying.size() >= verifying_batches_max) {
    protocol_error(link, session, sync::ErrorCode::window,
                   "more than " + std::to_string(verifying_batches_max) +
                       " batches sent and not acknowledged");
    return;
  }
  ++session.expect_batch;
  // The signatures are checked on the pool's threads now; rights, chains and the store wait
  // until the batches before this one are stored (store_verified), so that a right or a
  // revocation in an earlier batch applies to this one.
  auto ops = std::make_shared<std::vector<SignedOp>>(std::move(batch.ops));
  auto verified = node_.verify(ops, [waker = waker_] { waker->wake(); });
  session.verifying.push_back(Verifying{batch.batch, std::move(ops), std::move(verified)});
}

bool Replicator::verified_ready(const Session& session) {
  return !session.verifying.empty() && session.verifying.front().verified.wait_for(
                                           std::chrono::seconds(0)) == std::future_status::ready;
}

bool Replicator::store_verified() {
  for (auto& up : upstreams_) {
    if (up->session && verified_ready(*up->session)) {
      Verifying v = std::move(up->session->verifying.front());
      up->session->verifying.pop_front();
      store_batch(Link{up.get(), nullptr}, *up->session, v);
      return true;
    }
  }
  for (auto& [route, d] : downstream_) {
    if (verified_ready(d.session)) {
      Verifying v = std::move(d.session.verifying.front());
      d.session.verifying.pop_front();
      store_batch(Link{nullptr, &d}, d.session, v);  // may erase d: return at once
      return true;
    }
  }
  return false;
}

void Replicator::store_batch(Link link, Session& session, Verifying& verifying) {
  std::vector<Result<void>> checked = verifying.verified.get();
  std::vector<SignedOp>& ops = *verifying.ops;
  std::vector<SignedOp> kept;
  std::vector<Result<void>> kept_checked;
  kept.reserve(ops.size());
  kept_checked.reserve(ops.size());
  VersionVector named;  // the feeds of the batch, each to its highest seq
  std::uint64_t skipped = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const OpHeader& h = ops[i].op.header();
    named.raise(FeedId{h.origin, h.channel}, h.seq);
    std::string why;
    bool skip = false;
    if (auto refused = refuse_op(ops[i].op, link.upstream != nullptr, why, skip)) {
      protocol_error(link, session, *refused, "op " + std::to_string(i) + ": " + why);
      return;
    }
    if (skip) {
      ++skipped;
      continue;
    }
    kept.push_back(std::move(ops[i]));
    kept_checked.push_back(std::move(checked[i]));
  }
  auto report = node_.ingest(kept, kept_checked);
  if (!report) {
    spdlog::error("storing a batch from {} failed: {}", session.name, to_string(report.error()));
    protocol_error(link, session, sync::ErrorCode::internal,
                   "the receiver could not store the batch; retry later");
    return;
  }
  if (!report->rejected.empty()) {
    const storage::Rejection& r = report->rejected.front();
    protocol_error(link, session, code_of(r.error.code),
                   "op " + std::to_string(r.index) + ": " + r.error.detail);
    return;
  }
  counters_.revoked_skipped += skipped;
  counters_.ops_received += report->stored;
  counters_.duplicates += report->duplicates;
  Memory& m = memory(session.peer);
  m.ops_received += report->stored;
  // The peer holds what it sent (skipped ops too): never send it back. The ack names what this
  // node now holds of those feeds (nothing of a feed all of whose ops were skipped).
  session.sent.merge(named);
  m.acked.merge(named);
  sync::Ack ack{verifying.batch, {}};
  const VersionVector& held = node_.store().version_vector();
  for (const auto& [feed, seq] : named.entries()) {
    if (held.seq(feed) > 0) ack.vector.raise(feed, held.seq(feed));
  }
  if (!send(link, session, ack)) {
    end_session(link, "the acknowledgement could not be sent");
    return;
  }
  if (report->stored > 0) {
    schedule_receipts(kept);
    stored_locally();
  }
}

void Replicator::on_ack(Link link, Session& session, const sync::Ack& ack) {
  if (!session.open || session.unacked.empty() || ack.batch != session.unacked.front()) {
    protocol_error(link, session, sync::ErrorCode::unexpected,
                   "ack " + std::to_string(ack.batch) + " for no batch in flight");
    return;
  }
  session.unacked.pop_front();
  // Progress: the next failure of this link starts its backoff small again. (Not on welcome: a
  // peer that opens sessions and then refuses every batch must not be retried at full speed.)
  if (link.upstream != nullptr) link.upstream->backoff = limits_.reconnect_min;
  Memory& m = memory(session.peer);
  m.acked.merge(ack.vector);
  // Custody passes upstream on this acknowledgement (track: forwarded).
  if (link.upstream != nullptr) note_custody(session.peer, ack.vector);
  pump(link, session);
}

bool Replicator::sendable(const PublicKey& peer, const std::vector<std::string>& wanted,
                          bool to_upstream, const FeedId& feed) const {
  const TrustView* trust = node_.trust();
  if (trust == nullptr || !any_matches(wanted, feed.channel)) return false;
  if (!to_upstream && !trust->may_read(peer, feed.channel)) return false;
  // What the peer would refuse is not sent: it waits for the trust that allows it.
  if (feed.channel == trust_channel) return feed.origin == trust->authority();
  return trust->may_write(feed.origin, feed.channel);
}

void Replicator::pump(Link link, Session& session) {
  if (!session.open) return;
  bool to_upstream = link.upstream != nullptr;
  storage::BatchLimits batch_limits{limits_.batch_ops_max, limits_.batch_bytes_max};
  while (session.unacked.size() < limits_.window_batches) {
    // Trust first, in batches of its own: the receiver checks the rest against it.
    auto ops = node_.store().missing(session.sent, batch_limits, [&](const FeedId& feed) {
      return feed.channel == trust_channel &&
             sendable(session.peer, session.wanted, to_upstream, feed);
    });
    if (ops && ops->empty()) {
      ops = node_.store().missing(session.sent, batch_limits, [&](const FeedId& feed) {
        return sendable(session.peer, session.wanted, to_upstream, feed);
      });
    }
    if (!ops) {
      spdlog::error("reading ops to send failed: {}", to_string(ops.error()));
      return;
    }
    if (ops->empty()) return;
    sync::OpsBatch batch{session.next_batch, {}};
    batch.ops.reserve(ops->size());
    for (storage::StoredOp& s : *ops) {
      const OpHeader& h = s.signed_op.op.header();
      session.sent.raise(FeedId{h.origin, h.channel}, h.seq);
      batch.ops.push_back(std::move(s.signed_op));
    }
    std::size_t count = batch.ops.size();
    if (!send(link, session, batch)) {
      end_session(link, "a batch could not be sent (the peer is gone or not reading)");
      return;
    }
    ++session.next_batch;
    session.unacked.push_back(batch.batch);
    counters_.ops_sent += count;
    memory(session.peer).ops_sent += count;
  }
}

void Replicator::protocol_error(Link link, Session& session, sync::ErrorCode code,
                                std::string message) {
  ++counters_.errors_sent[static_cast<std::size_t>(code)];
  if (session.peer != PublicKey{}) ++memory(session.peer).rejected[static_cast<std::size_t>(code)];
  std::string reason =
      std::string("sent error ") + std::string(sync::error_code_name(code)) + ": " + message;
  spdlog::warn("peer {}: {}", session.name.empty() ? "(before hello)" : session.name, reason);
  (void)send(link, session, sync::error_message(code, message));
  end_session(link, reason);
}

void Replicator::end_session(Link link, std::string reason) {
  if (link.upstream != nullptr) {
    drop_upstream(*link.upstream, std::move(reason));
    return;
  }
  auto it = downstream_.find(link.downstream->route);
  if (it == downstream_.end()) return;
  Session& session = it->second.session;
  if (session.open) {
    ++counters_.sessions_lost;
    memory(session.peer).last_error = reason;
    spdlog::info("peer {} disconnected: {}", session.name, reason);
  }
  downstream_.erase(it);
}

void Replicator::stored_locally() {
  // A revocation (or a changed entry) ends the sessions of peers no longer admitted.
  const TrustView* trust = node_.trust();
  std::vector<std::string> revoked;
  for (auto& [route, d] : downstream_) {
    if (d.session.open && trust != nullptr && !trust->admitted(d.session.peer)) {
      revoked.push_back(route);
    }
  }
  for (const std::string& route : revoked) {
    auto it = downstream_.find(route);
    protocol_error(Link{nullptr, &it->second}, it->second.session, sync::ErrorCode::unauthorized,
                   "this node's key is no longer trusted");
  }
  for (auto& up : upstreams_) {
    if (up->session && up->session->open) pump(Link{up.get(), nullptr}, *up->session);
  }
  std::vector<std::string> routes;
  for (auto& [route, d] : downstream_) routes.push_back(route);
  for (const std::string& route : routes) {  // pump may end a session
    auto it = downstream_.find(route);
    if (it != downstream_.end() && it->second.session.open) {
      pump(Link{nullptr, &it->second}, it->second.session);
    }
  }
}

// ---- Receipts (the authority) ----

void Replicator::schedule_receipts(std::span<const SignedOp> ops) {
  if (!node_.is_authority()) return;
  auto now = std::chrono::steady_clock::now();
  for (const SignedOp& s : ops) {
    const OpHeader& h = s.op.header();
    if (h.origin == node_.public_key() || h.channel == trust_channel) continue;
    // A status report asks for no receipt: one would change what the station holds, and so
    // its next report, and so on; the next receipt of a real op covers it anyway.
    if (h.kind == status_kind) continue;
    if (receipts_due_.contains(h.channel)) continue;
    auto last = receipts_last_.find(h.channel);
    SteadyTime due = last == receipts_last_.end() ? now : last->second + limits_.receipt_interval;
    receipts_due_[h.channel] = std::max(now, due);
  }
}

void Replicator::write_receipts() {
  auto now = std::chrono::steady_clock::now();
  for (auto it = receipts_due_.begin(); it != receipts_due_.end();) {
    if (it->second > now) {
      ++it;
      continue;
    }
    const std::string& channel = it->first;
    auto covered = node_.store().receipted(channel);
    ReceiptFeeds feeds;
    bool news = false;
    for (const auto& [feed, seq] : node_.store().version_vector().entries()) {
      if (feed.channel != channel || feed.origin == node_.public_key()) continue;
      if (covered && covered->contains(feed.origin) && covered->at(feed.origin) >= seq) continue;
      feeds[feed.origin] = seq;
      news = true;
      if (feeds.size() == receipt_feeds_max) {
        submit_receipt(channel, feeds);
        feeds.clear();
      }
    }
    if (!feeds.empty()) submit_receipt(channel, feeds);
    if (news) receipts_last_[channel] = now;
    it = receipts_due_.erase(it);
  }
}

void Replicator::submit_receipt(const std::string& channel, const ReceiptFeeds& feeds) {
  OpDraft draft;
  draft.channel = channel;
  draft.kind = std::string(receipt_kind);
  draft.key = std::string(receipt_key);
  draft.body = encode_receipt_body(feeds);
  submit_local_(std::move(draft));
  ++counters_.receipts_written;
}

// ---- Time ----

void Replicator::tick() {
  if (closed_) return;
  auto now = std::chrono::steady_clock::now();
  for (auto& up : upstreams_) {
    if (!up->socket) {
      if (now >= up->retry_at) connect_upstream(*up);
      continue;
    }
    Session& s = *up->session;
    if (!up->connected) continue;  // ZeroMQ is (re)trying the TCP connection
    if (now - s.last_received > limits_.heartbeat_timeout) {
      drop_upstream(*up, "no message from the upstream for " +
                             std::to_string(limits_.heartbeat_timeout.count()) + " ms");
      continue;
    }
    if (s.open && now - s.last_sent >= limits_.heartbeat_interval) {
      (void)send(Link{up.get(), nullptr}, s, sync::Heartbeat{});
    }
  }
  std::vector<std::string> expired;
  for (auto& [route, d] : downstream_) {
    Session& s = d.session;
    if (now - s.last_received > limits_.heartbeat_timeout) {
      expired.push_back(route);
    } else if (s.open && now - s.last_sent >= limits_.heartbeat_interval) {
      (void)send(Link{nullptr, &d}, s, sync::Heartbeat{});
    }
  }
  for (const std::string& route : expired) {
    auto it = downstream_.find(route);
    end_session(Link{nullptr, &it->second},
                "no message for " + std::to_string(limits_.heartbeat_timeout.count()) + " ms");
  }
  write_receipts();
}

void Replicator::note_custody(const PublicKey& upstream, const VersionVector& acked) {
  if (auto noted = node_.store().record_custody(upstream, acked, wall_.now_ms()); !noted) {
    spdlog::error("custody not recorded: {}", to_string(noted.error()));
  }
}

std::chrono::milliseconds Replicator::timeout() const {
  auto t = std::clamp(limits_.heartbeat_interval / 4, std::chrono::milliseconds(10),
                      std::chrono::milliseconds(250));
  auto now = std::chrono::steady_clock::now();
  for (const auto& up : upstreams_) {
    if (!up->socket) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(up->retry_at - now);
      t = std::max(std::chrono::milliseconds(0), std::min(t, left));
    }
    // A verified batch left for the next round (one is stored per round): no waiting.
    if (up->session && verified_ready(*up->session)) return std::chrono::milliseconds(0);
  }
  for (const auto& [route, d] : downstream_) {
    if (verified_ready(d.session)) return std::chrono::milliseconds(0);
  }
  return t;
}

// ---- Reports ----

std::uint64_t Replicator::backlog(const PublicKey& peer, const std::vector<std::string>& wanted,
                                  const VersionVector& acked, bool to_upstream) const {
  std::uint64_t total = 0;
  for (const auto& [feed, seq] : node_.store().version_vector().entries()) {
    std::uint64_t theirs = acked.seq(feed);
    if (seq > theirs && sendable(peer, wanted, to_upstream, feed)) total += seq - theirs;
  }
  return total;
}

std::uint64_t Replicator::oldest_unsent(const PublicKey& peer,
                                        const std::vector<std::string>& wanted,
                                        const VersionVector& acked, bool to_upstream) const {
  std::uint64_t oldest = 0;
  std::size_t looked = 0;
  for (const auto& [feed, seq] : node_.store().version_vector().entries()) {
    std::uint64_t theirs = acked.seq(feed);
    if (seq <= theirs || !sendable(peer, wanted, to_upstream, feed)) continue;
    if (++looked > oldest_unsent_feeds_max) break;
    auto at = node_.store().stored_at(feed, theirs + 1);
    if (at && (oldest == 0 || *at < oldest)) oldest = *at;
  }
  return oldest;
}

UpstreamState Replicator::upstream_state() {
  UpstreamState out;
  out.configured = !upstreams_.empty();
  const Memory* best = nullptr;
  std::uint64_t best_backlog = 0;
  for (const auto& up : upstreams_) {
    if (up->session && up->session->open) out.online = true;
    auto found = memory_.find(up->config.key);
    if (found == memory_.end()) continue;
    const Memory& m = found->second;
    out.last_contact_ms = std::max(out.last_contact_ms, m.last_seen_ms);
    std::uint64_t b = backlog(up->config.key, m.wanted, m.acked, true);
    if (best == nullptr || b < best_backlog) {
      best = &m;
      best_backlog = b;
      out.acked = m.acked;
      out.oldest_unsent_ms = oldest_unsent(up->config.key, m.wanted, m.acked, true);
    }
  }
  if (best == nullptr && !upstreams_.empty()) {
    // Never heard from: everything it may read is still to send.
    const auto& key = upstreams_.front()->config.key;
    std::vector<std::string> all{"*"};
    best_backlog = backlog(key, all, {}, true);
    out.oldest_unsent_ms = oldest_unsent(key, all, {}, true);
  }
  out.backlog = best_backlog;
  return out;
}

std::vector<PeerReport> Replicator::peers() {
  std::vector<PeerReport> out;
  for (const auto& [key, m] : memory_) {
    PeerReport r;
    r.name = m.name;
    r.key = key;
    r.upstream = m.upstream;
    r.endpoint = m.endpoint;
    r.last_seen_ms = m.last_seen_ms;
    r.ops_sent = m.ops_sent;
    r.ops_received = m.ops_received;
    r.last_error = m.last_error;
    r.rejected = m.rejected;
    for (const auto& up : upstreams_) {
      if (up->config.key == key && up->session && up->session->open) r.connected = true;
    }
    for (const auto& [route, d] : downstream_) {
      if (d.session.peer == key && d.session.open) r.connected = true;
    }
    r.backlog = backlog(key, m.wanted, m.acked, m.upstream);
    r.oldest_unsent_ms = r.backlog == 0 ? 0 : oldest_unsent(key, m.wanted, m.acked, m.upstream);
    const VersionVector& ours = node_.store().version_vector();
    for (const auto& [feed, seq] : m.acked.entries()) {
      std::uint64_t held = ours.seq(feed);
      if (seq > held) r.backlog_in += seq - held;
    }
    out.push_back(std::move(r));
  }
  return out;
}

void Replicator::sync_now() {
  for (auto& up : upstreams_) {
    drop_upstream(*up, "resync requested");
    up->backoff = limits_.reconnect_min;
    up->retry_at = std::chrono::steady_clock::now();
  }
}

void Replicator::close() {
  if (closed_) return;
  closed_ = true;
  for (auto& up : upstreams_) {
    if (up->socket) zmq_socket_monitor(up->socket->handle(), nullptr, 0);
    up->monitor.reset();
    up->socket.reset();
  }
  listener_.reset();
  zap_.reset();
  context_.shutdown();
}

}  // namespace ferry::daemon
