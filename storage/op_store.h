// The durable op store of one node: feeds, ops and the arrival cursor in one SQLite file.
//
// OpStore owns the data directory: it holds the directory lock for its whole life, so a second
// process opening the same directory gets Errc::busy. The database runs in WAL mode with
// synchronous=FULL and foreign keys on; append() and ingest() each commit their whole batch in
// one transaction (one fsync for many ops) and return only once that commit is durable. Feed
// heads are cached in memory and change only after a commit succeeds. An OpStore is used from one
// thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "protocol/batch_signer.h"
#include "protocol/feed_chain.h"
#include "protocol/hlc.h"
#include "protocol/merge.h"
#include "protocol/node_key.h"
#include "protocol/op.h"
#include "protocol/version_vector.h"
#include "storage/checkpointer.h"
#include "storage/data_dir_lock.h"
#include "storage/records.h"
#include "storage/sqlite.h"

namespace ferry::storage {

inline constexpr const char* database_file_name = "ferry.db";

// An op as this node holds it.
struct StoredOp {
  SignedOp signed_op;
  std::uint64_t arrival = 0;       // local arrival cursor, strictly increasing
  std::uint64_t stored_at_ms = 0;  // wall time of the commit that stored it
};

// What append() assigned to one draft.
struct Appended {
  OpId id{};
  std::string channel;
  std::uint64_t seq = 0;
  std::uint64_t hlc = 0;
  std::uint64_t arrival = 0;
};

struct Rejection {
  std::size_t index = 0;  // position in the ingested batch
  Error error;
};

struct IngestReport {
  std::size_t stored = 0;
  std::size_t duplicates = 0;  // already held: a no-op
  std::vector<Rejection> rejected;
};

// Bounds of one batch of ops read for sending. A batch holds at least one op when any is
// missing, even if that one op alone is larger than bytes_max.
struct BatchLimits {
  std::size_t ops_max = 0;
  std::size_t bytes_max = 0;
};

// One merged record (protocol/merge.h) as the store holds it.
struct Record {
  std::string channel;
  std::string key;
  RecordState state;
};

// The state digests (protocol/merge.h StateDigest) of everything held and of each channel.
struct Digests {
  Digest node{};
  std::map<std::string, Digest> channels;
};

struct RebuildReport {
  std::uint64_t ops = 0;      // ops folded
  std::uint64_t records = 0;  // records after the rebuild
  std::uint64_t pending = 0;  // ops still waiting for a dep the store does not hold
};

// Where a local op has got to (IPC track, docs/ipc.md).
struct Custody {  // the first peer that acknowledged holding the op
  PublicKey peer{};
  std::uint64_t at_ms = 0;
};
struct Delivery {  // the authority's receipt that covers the op
  OpId receipt{};
  std::uint64_t receipt_hlc = 0;
  std::uint64_t at_ms = 0;  // when the receipt was stored here
};
struct Tracked {
  std::uint64_t stored_at_ms = 0;
  std::optional<Custody> forwarded;
  std::optional<Delivery> delivered;
};

// How ingest() treats a batch with a bad op: keep_good stores the good ops around it;
// all_or_nothing stores nothing from the batch (replication: a peer that sends one bad op is cut
// off, and nothing it sent in that batch is kept).
enum class IngestMode { keep_good, all_or_nothing };

// Which feeds missing() looks at; empty: all.
using FeedFilter = std::function<bool(const FeedId&)>;

struct StoreOptions {
  std::string sqlite_vfs;  // a registered SQLite VFS; empty for the default (tests inject faults)
  std::size_t sign_threads = 2;  // threads that sign an appended batch and verify an ingested one
  int wal_checkpoint_pages = wal_checkpoint_pages_default;  // see checkpointer.h
  // Fold ops into records as they are stored. Off only in the benchmark that measures what the
  // merge costs; a store opened without it must be rebuilt (rebuild_records) before use.
  bool merge_records = true;
  // The authority whose ferry.receipt ops (protocol/receipt.h) mark ops as delivered.
  std::optional<PublicKey> authority;
};

class OpStore {
 public:
  // Opens (or creates) the store in data_dir, which must exist. Refuses a corrupt, foreign or
  // newer database with Errc::corrupt and leaves it untouched.
  [[nodiscard]] static Result<std::unique_ptr<OpStore>> open(const std::string& data_dir,
                                                             WallClock& wall,
                                                             const StoreOptions& options = {});

  // Turns local drafts into ops of `key`'s feeds: assigns seq, prev and hlc, signs, and stores
  // the whole batch in one durable commit. All or nothing: one invalid draft fails the batch.
  [[nodiscard]] Result<std::vector<Appended>> append(const NodeKey& key, HybridClock& clock,
                                                     std::span<const OpDraft> drafts);

  // The steps of append, for a caller that signs one batch while the previous one commits.
  // build_op makes the next op of the draft's feed on top of the ops built before it (the feed's
  // tip, which may be ahead of what is stored). store_signed stores signed ops that were built in
  // order, in one durable commit; if it fails, every op built but not stored is abandoned (they
  // extend nothing any more) and must be built again. abandon_built drops them explicitly.
  [[nodiscard]] Result<Op> build_op(const PublicKey& origin, HybridClock& clock,
                                    const OpDraft& draft);
  [[nodiscard]] Result<std::vector<Appended>> store_signed(std::span<const SignedOp> signed_ops);
  void abandon_built();
  // Opens a read transaction for building a batch: the record lookups of its build_op calls then
  // share one snapshot and one read lock (two fcntl calls and a WAL-index check per op fewer).
  // It must end before store_signed. On failure the lookups just run without it.
  [[nodiscard]] Result<ReadSnapshot> read_snapshot() { return ReadSnapshot::begin(db_); }

  // Stores remote ops after verifying signature, chain and contiguity. Ops already held are
  // counted as duplicates; a bad op is rejected with its reason and nothing of it is stored; the
  // good ops of the batch commit together. An Error return means nothing was stored.
  [[nodiscard]] Result<IngestReport> ingest(std::span<const SignedOp> ops,
                                            IngestMode mode = IngestMode::keep_good);
  // The same for ops whose signatures the caller has already checked with verify_op (on other
  // threads, while this store was busy): verified[i] is ops[i]'s result; sizes must match.
  [[nodiscard]] Result<IngestReport> ingest_verified(std::span<const SignedOp> ops,
                                                     std::span<const Result<void>> verified,
                                                     IngestMode mode);

  // Highest contiguous seq per feed held.
  const VersionVector& version_vector() const { return vector_; }
  FeedHead head(const FeedId& feed) const;

  // The ops that `theirs` lacks, in feed order (feeds in FeedId order, seq ascending), bounded.
  [[nodiscard]] Result<std::vector<StoredOp>> missing(const VersionVector& theirs,
                                                      const BatchLimits& limits,
                                                      const FeedFilter& wanted = {});

  // Ops that arrived after the cursor, oldest first, at most limit.
  [[nodiscard]] Result<std::vector<StoredOp>> arrived_after(std::uint64_t arrival,
                                                            std::size_t limit);

  [[nodiscard]] Result<StoredOp> get(const OpId& id);

  // ---- Custody and receipts ----
  // Records that `peer` acknowledged holding each feed of `acked` (feeds not held here are
  // skipped), in one commit that is not synced on its own: it reaches the disk with the next
  // durable commit (or checkpoint). A power cut may lose it; the upstream's next welcome records
  // it again. So an acknowledgement costs no fsync of its own.
  [[nodiscard]] Result<void> record_custody(const PublicKey& peer, const VersionVector& acked,
                                            std::uint64_t now_ms);
  // Errc::not_found for an op not held.
  [[nodiscard]] Result<Tracked> track(const OpId& id);
  // When the op at `seq` of `feed` was stored here; Errc::not_found when it is not held.
  [[nodiscard]] Result<std::uint64_t> stored_at(const FeedId& feed, std::uint64_t seq);

  // A small write, committed like custody (not synced on its own): fails when the database or
  // its file system does not take writes (read-only, full, broken). For health checks.
  [[nodiscard]] Result<void> probe_write(std::uint64_t now_ms);
  // The authority's newest receipt of a channel: what it covers (empty when there is none).
  [[nodiscard]] Result<std::map<PublicKey, std::uint64_t>> receipted(const std::string& channel);

  // ---- Records (the merge, protocol/merge.h) ----
  // Every op is folded into its record (channel, key) in the transaction that stores it, once
  // its deps and its origin's earlier ops of that record are held and folded; until then it is
  // pending (held and forwarded like any op, but not yet in the record). build_op fills a
  // draft's deps with the record's current heads (plus the ops built ahead of it) when
  // draft.deps_from_heads is set.

  // Errc::not_found for a record with no op folded in.
  [[nodiscard]] Result<Record> record(const std::string& channel, const std::string& key);

  // The keys of a channel's records, in key order, at most limit.
  [[nodiscard]] Result<std::vector<std::string>> record_keys(const std::string& channel,
                                                             std::size_t limit);

  // Records with at least one conflicting field, in (channel, key) order, at most limit.
  [[nodiscard]] Result<std::vector<Record>> conflicted(std::size_t limit);

  // channel -> records with open conflicts, for the channels in (channel) order, at most
  // `channels_max` channels.
  [[nodiscard]] Result<std::map<std::string, std::uint64_t>> conflicts_by_channel(
      std::size_t channels_max);

  // Computed over every record in (channel, key) order; recomputed only when an op was merged
  // since the last computation.
  [[nodiscard]] Result<Digests> digests();
  // The digests last computed (nullptr before the first), which may lag newer ops.
  const Digests* last_digests() const { return digests_ ? &*digests_ : nullptr; }
  // Whether last_digests() still covers every record: no op merged since.
  bool digests_current() const;

  // Recomputes every record from the ops held (all of them, in arrival order) in one
  // transaction. The result must equal the incremental merge: `ferryctl rebuild` checks that.
  [[nodiscard]] Result<RebuildReport> rebuild_records();

  std::uint64_t pending_count() const { return records_->pending_count(); }

  // The newest arrival cursor (0 when empty).
  std::uint64_t last_arrival() const { return last_arrival_; }
  std::uint64_t op_count() const { return op_count_; }

  // The highest hlc among ops of this origin, for restoring a clock after restart.
  [[nodiscard]] Result<std::uint64_t> max_hlc(const PublicKey& origin);

  const std::string& database_path() const { return path_; }

  // Checkpoints run on a thread of their own (storage/checkpointer.h).
  CheckpointStats checkpoint_stats() const { return checkpointer_->stats(); }

 private:
  struct Feed {
    std::int64_t feed_id = 0;
    FeedHead head;
  };
  struct Statements;

  OpStore(DataDirLock lock, Database db, std::string path, WallClock& wall,
          const StoreOptions& options);
  [[nodiscard]] Result<void> prepare();
  [[nodiscard]] Result<void> load_feeds();
  [[nodiscard]] Result<std::uint64_t> insert(const SignedOp& op, std::map<FeedId, Feed>& staged,
                                             std::uint64_t now_ms);
  [[nodiscard]] Result<Feed> staged_feed(const FeedId& feed, std::map<FeedId, Feed>& staged);
  [[nodiscard]] Result<void> write_heads(const std::map<FeedId, Feed>& staged);
  [[nodiscard]] Result<bool> held(const Op& op, const Feed& feed);
  void publish(const std::map<FeedId, Feed>& staged, std::size_t added, std::uint64_t arrival);
  [[nodiscard]] Result<StoredOp> read_row(Statement& stmt, int first_column);
  [[nodiscard]] Result<IngestReport> ingest_batch(std::span<const SignedOp> ops,
                                                  std::span<const Result<void>> verified,
                                                  IngestMode mode);
  [[nodiscard]] Result<void> write_custody(const PublicKey& peer, const VersionVector& acked,
                                           std::uint64_t now_ms);
  [[nodiscard]] Result<void> note_receipt(const Op& op, std::uint64_t arrival,
                                          std::map<FeedId, Feed>& staged);
  [[nodiscard]] Result<void> rebuild_in_transaction(RebuildReport& report);

  DataDirLock lock_;
  Database db_;
  std::string path_;
  WallClock& wall_;
  StoreOptions options_;
  std::unique_ptr<Statements> stmts_;
  std::unique_ptr<Records> records_;
  std::unique_ptr<Checkpointer> checkpointer_;  // after db_: it closes its connection first
  // What every write transaction holds; none before the checkpointer has started.
  WriteGate* write_gate() { return checkpointer_ ? &checkpointer_->write_gate() : nullptr; }
  struct RecordTip {  // the latest local op built for a record and not stored yet
    OpId id{};
    std::vector<OpId> covered;  // the ops it and the ops built before it named as deps
  };
  std::map<std::pair<std::string, std::string>, RecordTip> record_tip_;
  std::optional<Digests> digests_;  // the last computed; current until records change
  std::map<FeedId, Feed> feeds_;
  std::map<FeedId, FeedHead> tip_;  // local feeds with ops built but not yet stored
  VersionVector vector_;
  std::uint64_t last_arrival_ = 0;
  std::uint64_t op_count_ = 0;

 public:
  ~OpStore();
  OpStore(const OpStore&) = delete;
  OpStore& operator=(const OpStore&) = delete;
};

}  // namespace ferry::storage
