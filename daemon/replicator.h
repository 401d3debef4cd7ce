// Replication sessions between nodes over ZeroMQ with CurveZMQ (docs/protocol.md).
//
// A Replicator lives on the daemon's event-loop thread beside the IPC server and shares its poll:
// it owns a ROUTER socket that listens for peers (when [listen] is set), one DEALER socket per
// [[upstream]], and the ZAP handler that admits peers. Every socket runs CURVE with keys derived
// from the node's Ed25519 key; the ZAP handler admits only keys the trust view admits, and a
// DEALER only talks to the upstream key it was configured with. A session starts with hello and
// welcome (each side's channels and version vector); then each side sends the ops the other
// lacks in bounded batches, at most window_batches unacknowledged, trust feeds first; the
// receiver checks the signatures of each batch on the node's pool threads as soon as it arrives
// (so the next batches are checked while the loop stores one), then, in order, checks rights,
// stores the batch in one transaction (all or nothing) and acknowledges it with its new vector. A
// protocol break is answered with an error message and ends the session; a silent peer is dropped
// after heartbeat_timeout. Upstream sessions come back with a jittered, growing backoff. The
// authority also writes receipts for the ops it receives.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "daemon/node.h"
#include "protocol/receipt.h"
#include "protocol/sync.h"

namespace ferry::daemon {

using SteadyTime = std::chrono::steady_clock::time_point;

// One peer as `ferryctl peers` shows it.
struct PeerReport {
  std::string name;
  PublicKey key{};
  bool upstream = false;               // configured in [[upstream]] (else it connected to us)
  std::string endpoint;                // upstreams only
  bool connected = false;              // a session is open now
  std::uint64_t last_seen_ms = 0;      // wall time of the last message from it; 0: never
  std::uint64_t backlog = 0;           // ops it may read that it has not acknowledged
  std::uint64_t backlog_in = 0;        // ops it reported holding that this node does not hold
  std::uint64_t oldest_unsent_ms = 0;  // when the oldest op of `backlog` was stored; 0: none
  std::uint64_t ops_sent = 0;
  std::uint64_t ops_received = 0;
  std::array<std::uint64_t, sync::error_code_count> rejected{};  // protocol errors sent to it
  std::string last_error;
};

// This node's link upwards, for its status reports (docs/monitor.md). With several upstreams,
// the one that has acknowledged the most stands for all.
struct UpstreamState {
  bool configured = false;
  bool online = false;                 // a session with an upstream is open
  std::uint64_t last_contact_ms = 0;   // the last message from any upstream; 0: never
  std::uint64_t backlog = 0;           // ops it may read and has not acknowledged
  std::uint64_t oldest_unsent_ms = 0;  // when the oldest of them was stored here; 0: none
  VersionVector acked;                 // what it is known to hold
};

class Replicator {
 public:
  // submit_local queues a draft of this node's own (a receipt) with the IPC server's commits.
  using SubmitLocal = std::function<void(OpDraft)>;

  Replicator(Node& node, WallClock& wall, SubmitLocal submit_local);
  ~Replicator();
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  // Starts the ZAP handler, binds the listener and starts connecting to the upstreams.
  [[nodiscard]] Result<void> start();

  // The sockets to poll (and the eventfd the verifying threads wake it with), appended to
  // `items`; handle() gets the same items back after the poll.
  void poll_items(std::vector<zmq::pollitem_t>& items);
  void handle(std::span<const zmq::pollitem_t> items);

  // New ops are held here (a local commit, or a batch from another peer): push them.
  void stored_locally();

  // Heartbeats, timeouts, reconnects and receipts; call after every poll.
  void tick();

  // How long the poll may wait before tick() has something to do (0 while a verified batch
  // waits to be stored).
  std::chrono::milliseconds timeout() const;

  std::vector<PeerReport> peers();
  UpstreamState upstream_state();
  // Drops every upstream session and reconnects now (ferryctl sync).
  void sync_now();
  const ReplicationCounters& counters() const { return counters_; }

  void close();

 private:
  // A batch received whose signatures the pool is checking; stored, in order, once they are.
  struct Verifying {
    std::uint64_t batch = 0;
    std::shared_ptr<std::vector<SignedOp>> ops;
    std::future<std::vector<Result<void>>> verified;
  };
  struct Session {
    bool open = false;  // hello and welcome exchanged
    PublicKey peer{};
    std::string name;
    std::vector<std::string> wanted;    // the channel patterns the peer asked for
    VersionVector sent;                 // what the peer holds once every batch sent is stored
    std::deque<std::uint64_t> unacked;  // numbers of the batches sent; at most window_batches
    std::uint64_t next_batch = 1;
    std::uint64_t expect_batch = 1;
    std::deque<Verifying> verifying;  // at most verifying_batches_max
    SteadyTime last_received{};
    SteadyTime last_sent{};
  };
  struct Upstream;
  struct Downstream {
    std::string route;  // the ROUTER routing id of its connection
    Session session;
  };
  struct Memory {  // what ferryctl peers shows of a peer, kept across its sessions
    std::string name;
    bool upstream = false;
    std::string endpoint;
    std::uint64_t last_seen_ms = 0;
    std::uint64_t ops_sent = 0;
    std::uint64_t ops_received = 0;
    std::string last_error;
    std::array<std::uint64_t, sync::error_code_count> rejected{};
    std::vector<std::string> wanted{"*"};  // what it asked for in its last session
    VersionVector acked;                   // what it is known to hold (greeting, acks, its ops)
  };

  // Where a message to a session's peer goes.
  struct Link {
    Upstream* upstream = nullptr;
    Downstream* downstream = nullptr;
  };

  void handle_zap();
  void receive_downstream();
  void receive_upstream(Upstream& up);
  void drain_upstream_monitor(Upstream& up);
  // true when it handled a batch of ops (the costly message: the caller yields to IPC).
  bool on_message(Link link, Session& session, std::span<const std::uint8_t> frame,
                  const std::optional<PublicKey>& authenticated);
  bool open_session(Link link, Session& session, const sync::Greeting& greeting);
  void note_custody(const PublicKey& upstream, const VersionVector& acked);
  void on_hello(Link link, Session& session, const sync::Hello& hello,
                const std::optional<PublicKey>& authenticated);
  void on_welcome(Link link, Session& session, const sync::Welcome& welcome);
  void on_ops(Link link, Session& session, sync::OpsBatch& batch);
  // Stores the oldest verified batch of one session (at most one per round: IPC waits while a
  // batch is stored); whether one was.
  bool store_verified();
  static bool verified_ready(const Session& session);
  void store_batch(Link link, Session& session, Verifying& verifying);
  void on_ack(Link link, Session& session, const sync::Ack& ack);
  void pump(Link link, Session& session);
  bool send(Link link, Session& session, const sync::Message& message);
  void protocol_error(Link link, Session& session, sync::ErrorCode code, std::string message);
  void end_session(Link link, std::string reason);
  void connect_upstream(Upstream& up);
  void drop_upstream(Upstream& up, std::string reason);
  // This node's greeting; with a reader, its vector holds only the feeds the reader may read.
  sync::Greeting greeting(const std::vector<std::string>& channels,
                          const PublicKey* reader = nullptr) const;
  bool sendable(const PublicKey& peer, const std::vector<std::string>& wanted, bool to_upstream,
                const FeedId& feed) const;
  std::optional<sync::ErrorCode> refuse_op(const Op& op, bool from_upstream, std::string& why,
                                           bool& skip) const;
  std::uint64_t backlog(const PublicKey& peer, const std::vector<std::string>& wanted,
                        const VersionVector& acked, bool to_upstream) const;
  // When the oldest op it lacks was stored here (0: none), looking at most at
  // oldest_unsent_feeds_max feeds.
  std::uint64_t oldest_unsent(const PublicKey& peer, const std::vector<std::string>& wanted,
                              const VersionVector& acked, bool to_upstream) const;
  void schedule_receipts(std::span<const SignedOp> ops);
  void write_receipts();
  void submit_receipt(const std::string& channel, const ReceiptFeeds& feeds);
  std::chrono::milliseconds backoff_delay(Upstream& up);
  Memory& memory(const PublicKey& key);

  // The eventfd the pool's threads write when a batch's signatures are checked; shared with their
  // callbacks, so it stays open as long as any of them may run.
  struct Waker;
  std::shared_ptr<Waker> waker_;
  Node& node_;
  WallClock& wall_;
  SubmitLocal submit_local_;
  const config::ReplicationConfig& limits_;
  sync::Limits wire_limits_;
  zmq::context_t context_;
  std::optional<zmq::socket_t> zap_;
  std::optional<zmq::socket_t> listener_;
  std::vector<std::unique_ptr<Upstream>> upstreams_;
  std::map<std::string, Downstream> downstream_;  // by routing id
  std::map<PublicKey, Memory> memory_;
  std::map<std::string, SteadyTime> receipts_due_;   // channel -> when its receipt is written
  std::map<std::string, SteadyTime> receipts_last_;  // channel -> when its last one was
  ReplicationCounters counters_;
  std::mt19937_64 rng_;
  std::string curve_public_;
  std::string curve_secret_;
  bool closed_ = false;
};

// Messages read from one socket in one round of the event loop, so that IPC stays served.
inline constexpr std::size_t replication_drain_max = 64;
// Batches of one session received and not yet stored (being verified, or verified and waiting
// for the loop). An honest peer has at most its window_batches (<= 64) unacknowledged; more is
// a `window` error.
inline constexpr std::size_t verifying_batches_max = 64;
// Feeds looked at for a peer's oldest unsent op (one indexed read each).
inline constexpr std::size_t oldest_unsent_feeds_max = 64;
// The ZAP domain of the replication sockets.
inline constexpr const char* zap_domain_name = "ferry";

}  // namespace ferry::daemon
