// One ferry node as the local IPC sees it: its key, clock and store, and what each request does.
//
// Node knows nothing of sockets: it turns parsed requests into reply bytes. New ops go through
// three steps so that signing overlaps committing (group commit): build() makes each op on top
// of the ops built before it, sign() signs a batch on the signing pool's threads, and store()
// commits a signed batch durably; the caller replies only after store() returned. A Node is used
// from the daemon's event-loop thread; only the signing pool runs elsewhere.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "protocol/batch_signer.h"
#include "protocol/hlc.h"
#include "protocol/ipc.h"
#include "protocol/node_key.h"
#include "protocol/sync.h"
#include "protocol/trust.h"
#include "storage/op_store.h"

namespace ferry::daemon {

// What replication counts (daemon/replicator.h), reported by status.
struct ReplicationCounters {
  // Protocol breaks, by reason: sent to a peer that broke the protocol, and received from one.
  std::array<std::uint64_t, sync::error_code_count> errors_sent{};
  std::array<std::uint64_t, sync::error_code_count> errors_received{};
  std::uint64_t zap_refused = 0;      // handshakes refused: key not admitted
  std::uint64_t sessions_opened = 0;  // hello and welcome exchanged
  std::uint64_t sessions_lost = 0;    // closed by a timeout, a disconnect or an error
  std::uint64_t ops_sent = 0;
  std::uint64_t ops_received = 0;     // stored from peers
  std::uint64_t duplicates = 0;       // received and already held
  std::uint64_t revoked_skipped = 0;  // ops of a revoked origin, not stored
  std::uint64_t receipts_written = 0;
};

// Submit latency, from the request's arrival to its reply after the durable commit, in the
// Prometheus histogram's buckets (upper bounds in seconds; the last bucket is +Inf).
struct LatencyHistogram {
  static constexpr std::array<double, 12> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                 0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
  std::array<std::uint64_t, bounds.size() + 1> counts{};  // per bucket, not cumulative
  std::uint64_t count = 0;
  double sum_seconds = 0;

  void observe(double seconds);
};

// What the IPC layer counts, reported by status.
struct IpcCounters {
  std::uint64_t requests = 0;
  std::uint64_t submits = 0;  // acknowledged submits of station software
  LatencyHistogram submit_latency;
  std::array<std::uint64_t, ipc::code_count> errors{};
  std::uint64_t disconnects = 0;
  std::uint64_t unsent_replies = 0;
  std::size_t submit_queue = 0;
  std::size_t pulls_waiting = 0;
  std::optional<ReplicationCounters> replication;  // set when the node replicates
};

struct PullPage {
  std::vector<storage::StoredOp> ops;
  std::uint64_t next = 0;
};

// Status spends at most about 1/this of the event loop's time recomputing state digests.
inline constexpr int digest_cost_factor = 10;
// A digest pass quicker than this is always redone: status then shows the records as they are.
inline constexpr std::chrono::milliseconds digest_cost_free{20};

// When status may recompute state digests that no longer cover every record. The digests cost
// a pass over every record: a pass quicker than digest_cost_free may always be redone, a slower
// one only once digest_cost_factor times its duration has passed since it ended, so that frequent
// status requests spend at most about 1/digest_cost_factor of the loop on them.
class DigestPacer {
 public:
  using Clock = std::chrono::steady_clock;
  bool due(Clock::time_point now) const {
    return !computed_ || cost_ < digest_cost_free || now - ended_ >= cost_ * digest_cost_factor;
  }
  void computed(Clock::time_point started, Clock::time_point ended) {
    computed_ = true;
    cost_ = ended - started;
    ended_ = ended;
  }

 private:
  bool computed_ = false;
  Clock::time_point ended_{};
  Clock::duration cost_{};
};

class Node {
 public:
  Node(const config::Config& config, NodeKey key, std::unique_ptr<storage::OpStore> store,
       WallClock& wall);

  // op, track, status, get, conflicts: answered at once (the reply, or the failure to answer
  // with).
  ipc::Parsed<ipc::Bytes> read(const ipc::Request& request, const IpcCounters& counters);

  // The next op for a draft (its channel defaulted to station/<name>); an error fails only it.
  Result<Op> build(OpDraft& draft);

  // Signs the ids in the background; `done` runs on a pool thread once the future is ready.
  std::future<std::vector<Signature>> sign(std::vector<OpId> ids, std::function<void()> done);

  // Stores signed ops, built in order, in one durable commit. On failure nothing is stored, and
  // every op built since (but not stored) must be dropped: it extends nothing any more.
  Result<std::vector<storage::Appended>> store(std::span<const SignedOp> ops);

  // Ops that arrived after `after`, filtered by channel, at most `limit`; `next` moves past every
  // op looked at. Bounded: at most pull_scan_pages_max pages of `limit` ops are looked at.
  Result<PullPage> pull(const ipc::PullRequest& request, std::uint64_t after);

  ipc::Bytes encode_pull(const PullPage& page) const;

  std::uint64_t last_arrival() const { return store_->last_arrival(); }
  const config::Config& config() const { return config_; }

  // ---- Replication (daemon/replicator.h) ----
  storage::OpStore& store() { return *store_; }
  const PublicKey& public_key() const { return key_.public_key(); }
  const NodeKey& node_key() const { return key_; }
  // The trust view, from the ferry/trust records held; nullptr when no authority is configured.
  const TrustView* trust() const { return trust_ ? &*trust_ : nullptr; }
  bool is_authority() const;
  // Stores a peer's batch, all or nothing; the trust view follows trust ops it held.
  // Stores a peer's batch (all or nothing) whose signatures verify() checked: verified[i] is
  // ops[i]'s result.
  Result<storage::IngestReport> ingest(std::span<const SignedOp> ops,
                                       std::span<const Result<void>> verified);
  // Checks the signatures of a peer's batch on the pool's threads; `done` runs on a pool thread
  // once the future is ready.
  std::future<std::vector<Result<void>>> verify(std::shared_ptr<const std::vector<SignedOp>> ops,
                                                std::function<void()> done);
  // The trust op a trust_add or trust_revoke asks for; Errc::unauthorized unless this node is the
  // authority, Errc::malformed for a bad entry, Errc::not_found for a revoke of an unknown node.
  Result<OpDraft> trust_draft(const ipc::TrustAddRequest& request) const;
  Result<OpDraft> trust_draft(const ipc::TrustRevokeRequest& request) const;
  ipc::Bytes encode_trust_list() const;
  std::uint64_t clock_ahead() const { return clock_ahead_; }

 private:
  ipc::Parsed<ipc::Bytes> status(const IpcCounters& counters);
  ipc::Parsed<ipc::Bytes> op(const OpId& id);
  ipc::Parsed<ipc::Bytes> track(const OpId& id);
  ipc::Parsed<ipc::Bytes> get(const ipc::GetRequest& request);
  ipc::Parsed<ipc::Bytes> conflicts(const ipc::ConflictsRequest& request);
  void refresh_trust();
  Result<void> may_write(const OpDraft& draft) const;

  config::Config config_;
  NodeKey key_;
  SigningPool signers_;  // after key_: it signs with it
  std::unique_ptr<storage::OpStore> store_;
  WallClock& wall_;
  HybridClock clock_;
  std::string default_channel_;
  std::chrono::steady_clock::time_point started_;
  std::optional<TrustView> trust_;
  std::uint64_t clock_ahead_ = 0;  // received ops stamped beyond clock_drift_max ahead of us
  DigestPacer digest_pacer_;
};

// The ferryd version (the project's version in CMakeLists.txt).
std::string_view ferry_version();

// Trust entries read from the store at most; more are ignored (and logged).
inline constexpr std::size_t trust_entries_max = 100'000;

inline constexpr std::size_t pull_scan_pages_max = 16;
// A pull reply stops adding ops past this many envelope bytes (it always holds at least one op).
inline constexpr std::size_t pull_reply_bytes_max = 8 << 20;

}  // namespace ferry::daemon
