#include "storage/op_store.h"

#include <sys/stat.h>

#include <algorithm>
#include <ranges>

#include "protocol/limits.h"
#include "protocol/receipt.h"
#include "storage/schema.h"

namespace ferry::storage {

struct OpStore::Statements {
  Statement insert_feed;
  Statement update_feed;
  Statement insert_op;
  Statement id_at;
  Statement by_id;
  Statement newest_arrival;
  Statement feed_range;
  Statement after;
  Statement max_hlc;
  Statement insert_custody;
  Statement first_custody;
  Statement insert_receipt;
  Statement first_receipt;
  Statement record_keys;
  Statement newest_receipt;
};

namespace {

constexpr const char* op_columns = "arrival, stored_at, envelope, signature";

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// The writer's commit hook (sqlite3_wal_hook, which also turns SQLite's own autocheckpoint off):
// hands checkpoints to the Checkpointer, which also starts the WAL over, and checkpoints inline
// only when the WAL has grown to inline_pages() all the same (see checkpointer.h). The commit has
// happened either way; a failed inline checkpoint is tried again after the next commit.
int on_wal_commit(void* context, sqlite3* db, const char*, int wal_pages) {
  auto* checkpointer = static_cast<Checkpointer*>(context);
  if (wal_pages >= checkpointer->inline_pages()) {
    checkpointer->checkpoint_inline(db);
  } else {
    checkpointer->wal_grew(wal_pages);
  }
  return SQLITE_OK;
}

Error with_context(Error error, const std::string& context) {
  error.detail = context + ": " + error.detail;
  return error;
}

}  // namespace

OpStore::OpStore(DataDirLock lock, Database db, std::string path, WallClock& wall,
                 const StoreOptions& options)
    : lock_(std::move(lock)),
      db_(std::move(db)),
      path_(std::move(path)),
      wall_(wall),
      options_(options) {}

OpStore::~OpStore() {
  if (checkpointer_) sqlite3_wal_hook(db_.handle(), nullptr, nullptr);
}

Result<std::unique_ptr<OpStore>> OpStore::open(const std::string& data_dir, WallClock& wall,
                                               const StoreOptions& options) {
  struct stat st {};
  if (::stat(data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(Errc::not_found, "data directory " + data_dir + " does not exist");
  }
  auto lock = DataDirLock::acquire(data_dir);
  if (!lock) return tl::unexpected(lock.error());
  std::string path = data_dir + "/" + database_file_name;
  auto db = Database::open(path, !file_exists(path), options.sqlite_vfs);
  if (!db) return tl::unexpected(db.error());
  auto version = check_database(*db, path);
  if (!version) return tl::unexpected(version.error());
  // Only now, with the file known to be ours, does anything write to it.
  for (const char* pragma : {"PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL",
                             "PRAGMA foreign_keys = ON", "PRAGMA cache_size = -32768"}) {
    if (auto set = db->exec(pragma); !set) return tl::unexpected(set.error());
  }
  auto mode = db->query_text("PRAGMA journal_mode");
  if (!mode || *mode != "wal") return fail(Errc::io, path + ": cannot switch to WAL mode");
  if (auto migrated = migrate(*db, *version); !migrated) {
    return tl::unexpected(with_context(migrated.error(), "migrating " + path));
  }
  std::unique_ptr<OpStore> store(
      new OpStore(std::move(*lock), std::move(*db), path, wall, options));
  if (auto prepared = store->prepare(); !prepared) return tl::unexpected(prepared.error());
  if (auto loaded = store->load_feeds(); !loaded) return tl::unexpected(loaded.error());
  auto records = Records::open(store->db_);
  if (!records) return tl::unexpected(records.error());
  store->records_ = std::move(*records);
  // Ops stored before the records existed (migration 2), or by a store that did not merge, are
  // folded now.
  std::string stale_query = "SELECT count(*) FROM meta WHERE name = 'records_stale'";
  auto stale = store->db_.query_int(stale_query);
  if (!stale) return tl::unexpected(stale.error());
  if (!options.merge_records) {
    if (auto marked = store->db_.exec(
            "INSERT OR REPLACE INTO meta (name, value) VALUES ('records_stale', 1)");
        !marked) {
      return tl::unexpected(marked.error());
    }
  } else if (*stale > 0) {
    auto rebuilt = store->rebuild_records();
    if (!rebuilt)
      return tl::unexpected(with_context(rebuilt.error(), "folding records of " + path));
  }
  auto checkpointer = Checkpointer::start(path, options.sqlite_vfs, options.wal_checkpoint_pages);
  if (!checkpointer) return tl::unexpected(checkpointer.error());
  store->checkpointer_ = std::move(*checkpointer);
  sqlite3_wal_hook(store->db_.handle(), on_wal_commit, store->checkpointer_.get());
  return store;
}

Result<void> OpStore::prepare() {
  const std::string select = std::string("SELECT ") + op_columns + " FROM ops ";
  std::vector<std::string> sql = {
      "INSERT INTO feeds (origin, channel, head_seq, head_id) VALUES (?1, ?2, ?3, ?4)",
      "UPDATE feeds SET head_seq = ?1, head_id = ?2 WHERE feed_id = ?3",
      "INSERT INTO ops (id, id_prefix, feed_id, seq, hlc, envelope, signature, stored_at, "
      "record_id, context) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
      "SELECT id FROM ops WHERE feed_id = ?1 AND seq = ?2",
      std::string("SELECT ") + op_columns + " FROM ops o WHERE " + by_id_terms,
      newest_arrival_sql,
      select + "WHERE feed_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
      select + "WHERE arrival > ?1 ORDER BY arrival LIMIT ?2",
      "SELECT coalesce(max(o.hlc), 0) FROM ops o JOIN feeds f USING (feed_id) WHERE f.origin = ?1",
      "INSERT OR IGNORE INTO custody (feed_id, through, peer, at_ms) VALUES (?1, ?2, ?3, ?4)",
      "SELECT peer, at_ms FROM custody WHERE feed_id = ?1 AND through >= ?2 "
      "ORDER BY at_ms, through LIMIT 1",
      "INSERT OR IGNORE INTO receipts (feed_id, through, receipt) VALUES (?1, ?2, ?3)",
      "SELECT o.id, o.hlc, o.stored_at FROM receipts r JOIN ops o ON o.arrival = r.receipt "
      "WHERE r.feed_id = ?1 AND r.through >= ?2 ORDER BY r.receipt LIMIT 1",
      "SELECT key FROM records WHERE channel = ?1 ORDER BY key LIMIT ?2",
      "SELECT f.origin, max(r.through) FROM receipts r JOIN feeds f USING (feed_id) "
      "WHERE f.channel = ?1 GROUP BY r.feed_id",
  };
  std::vector<Statement> prepared;
  for (const std::string& s : sql) {
    auto stmt = db_.prepare(s);
    if (!stmt) return tl::unexpected(stmt.error());
    prepared.push_back(std::move(*stmt));
  }
  auto p = prepared.begin();
  stmts_.reset(new Statements{std::move(p[0]), std::move(p[1]), std::move(p[2]), std::move(p[3]),
                              std::move(p[4]), std::move(p[5]), std::move(p[6]), std::move(p[7]),
                              std::move(p[8]), std::move(p[9]), std::move(p[10]), std::move(p[11]),
                              std::move(p[12]), std::move(p[13]), std::move(p[14])});
  return {};
}

Result<void> OpStore::load_feeds() {
  auto stmt = db_.prepare("SELECT feed_id, origin, channel, head_seq, head_id FROM feeds");
  if (!stmt) return tl::unexpected(stmt.error());
  for (;;) {
    auto row = stmt->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    auto origin = stmt->column_blob(1);
    auto head_id = stmt->column_blob(4);
    FERRY_ASSERT(origin.size() == public_key_bytes);  // CHECK constraints in the schema
    FERRY_ASSERT(head_id.size() == digest_bytes);
    FeedId feed{PublicKey{}, std::string(stmt->column_text(2))};
    std::copy(origin.begin(), origin.end(), feed.origin.begin());
    Feed f{stmt->column_int(0), FeedHead{static_cast<std::uint64_t>(stmt->column_int(3)), {}}};
    std::copy(head_id.begin(), head_id.end(), f.head.id.begin());
    vector_.raise(feed, f.head.seq);
    feeds_.emplace(std::move(feed), f);
  }
  auto counts = db_.prepare("SELECT count(*), coalesce(max(arrival), 0) FROM ops");
  if (!counts) return tl::unexpected(counts.error());
  auto row = counts->step();
  if (!row) return tl::unexpected(row.error());
  op_count_ = static_cast<std::uint64_t>(counts->column_int(0));
  last_arrival_ = static_cast<std::uint64_t>(counts->column_int(1));
  return {};
}

FeedHead OpStore::head(const FeedId& feed) const {
  auto it = feeds_.find(feed);
  return it == feeds_.end() ? FeedHead{} : it->second.head;
}

Result<OpStore::Feed> OpStore::staged_feed(const FeedId& feed, std::map<FeedId, Feed>& staged) {
  auto it = staged.find(feed);
  if (it != staged.end()) return it->second;
  auto held = feeds_.find(feed);
  return held == feeds_.end() ? Feed{} : held->second;
}

Result<std::uint64_t> OpStore::insert(const SignedOp& signed_op, std::map<FeedId, Feed>& staged,
                                      std::uint64_t now_ms) {
  const Op& op = signed_op.op;
  const OpHeader& h = op.header();
  FeedId feed_id{h.origin, h.channel};
  auto feed = staged_feed(feed_id, staged);
  if (!feed) return tl::unexpected(feed.error());
  FERRY_ASSERT(h.seq == feed->head.seq + 1);  // callers check the chain first
  Statements& s = *stmts_;
  if (feed->feed_id == 0) {  // a new feed: its row must exist before its ops reference it
    auto added = s.insert_feed.bind(1, bytes_of(h.origin))
                     .bind(2, h.channel)
                     .bind(3, static_cast<std::int64_t>(h.seq))
                     .bind(4, bytes_of(op.id()))
                     .run();
    if (!added) return tl::unexpected(added.error());
    feed->feed_id = sqlite3_last_insert_rowid(db_.handle());
  }
  // The op is folded into its record first, so that its row is written once, with its record
  // and context (NULL while it waits for a dep).
  std::optional<Placement> placement;
  if (options_.merge_records) {
    auto placed = records_->place(op);
    if (!placed) return tl::unexpected(placed.error());
    placement = std::move(*placed);
  }
  Statement& insert_op = s.insert_op;
  insert_op.bind(1, bytes_of(op.id()))
      .bind(2, id_prefix(op.id()))
      .bind(3, feed->feed_id)
      .bind(4, static_cast<std::int64_t>(h.seq))
      .bind(5, static_cast<std::int64_t>(h.hlc))
      .bind(6, op.bytes())
      .bind(7, std::span<const std::uint8_t>(signed_op.signature))
      .bind(8, static_cast<std::int64_t>(now_ms));
  if (placement) {
    insert_op.bind(9, placement->record_id);
  } else {
    insert_op.bind_null(9);
  }
  if (placement && placement->context) {
    insert_op.bind(10, *placement->context);
  } else {
    insert_op.bind_null(10);
  }
  auto stored = insert_op.run();
  if (!stored) return tl::unexpected(stored.error());
  auto arrival = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(db_.handle()));
  feed->head = FeedHead{h.seq, op.id()};
  staged[feed_id] = *feed;
  if (placement) {
    if (auto done = records_->placed(op, arrival, *placement); !done) {
      return tl::unexpected(done.error());
    }
  }
  if (options_.authority && h.origin == *options_.authority && h.kind == receipt_kind) {
    if (auto noted = note_receipt(op, arrival, staged); !noted) {
      return tl::unexpected(noted.error());
    }
  }
  return arrival;
}

// A receipt whose body does not parse is kept like any op (history is immutable) and marks
// nothing; feeds not held here are skipped.
Result<void> OpStore::note_receipt(const Op& op, std::uint64_t arrival,
                                   std::map<FeedId, Feed>& staged) {
  auto feeds = parse_receipt_body(op.body());
  if (!feeds) return {};
  for (const auto& [origin, through] : *feeds) {
    auto feed = staged_feed(FeedId{origin, op.header().channel}, staged);
    if (!feed) return tl::unexpected(feed.error());
    if (feed->feed_id == 0) continue;
    auto noted = stmts_->insert_receipt.bind(1, feed->feed_id)
                     .bind(2, static_cast<std::int64_t>(through))
                     .bind(3, static_cast<std::int64_t>(arrival))
                     .run();
    if (!noted) return noted;
  }
  return {};
}

// Writes each touched feed's new head once per batch, however many ops the batch added to it.
Result<void> OpStore::write_heads(const std::map<FeedId, Feed>& staged) {
  for (const auto& [feed, f] : staged) {
    auto moved = stmts_->update_feed.bind(1, static_cast<std::int64_t>(f.head.seq))
                     .bind(2, bytes_of(f.head.id))
                     .bind(3, f.feed_id)
                     .run();
    if (!moved) return tl::unexpected(moved.error());
  }
  return {};
}

void OpStore::publish(const std::map<FeedId, Feed>& staged, std::size_t added,
                      std::uint64_t arrival) {
  for (const auto& [feed, f] : staged) {
    FERRY_ASSERT(f.head.seq >= head(feed).seq);
    feeds_[feed] = f;
    vector_.raise(feed, f.head.seq);
  }
  op_count_ += added;
  last_arrival_ = std::max(last_arrival_, arrival);
}

Result<Op> OpStore::build_op(const PublicKey& origin, HybridClock& clock, const OpDraft& draft) {
  FeedId feed{origin, draft.channel};
  auto tip = tip_.find(feed);
  FeedHead head = tip != tip_.end() ? tip->second : this->head(feed);
  auto record_name = std::make_pair(draft.channel, draft.key);
  std::optional<OpDraft> with_heads;
  if (draft.deps_from_heads && options_.merge_records) {
    // The record's heads as stored, and the op built ahead of this one for the same record
    // (not stored yet, so not among them). An op's deps may overlap: contexts are joined.
    auto heads = records_->heads(draft.channel, draft.key);
    if (!heads) return tl::unexpected(heads.error());
    with_heads = draft;
    with_heads->deps.clear();
    const RecordTip* built = nullptr;
    if (auto it = record_tip_.find(record_name); it != record_tip_.end()) built = &it->second;
    if (built != nullptr) with_heads->deps.push_back(built->id);
    for (const OpId& id : *heads) {
      if (with_heads->deps.size() == limits::deps_max) break;  // see docs/merge.md
      if (built != nullptr && std::ranges::find(built->covered, id) != built->covered.end()) {
        continue;  // the op built ahead has seen it already
      }
      with_heads->deps.push_back(id);
    }
  }
  auto op = Op::build(origin, head.seq + 1, head.id, clock.now(), with_heads ? *with_heads : draft);
  if (!op) return op;
  tip_[std::move(feed)] = FeedHead{op->header().seq, op->id()};
  RecordTip& tip_of_record = record_tip_[std::move(record_name)];
  tip_of_record.id = op->id();
  // Bounded: a record's tip covers the deps of the ops built ahead of a commit, and the batches
  // in flight are bounded.
  for (const OpId& dep : op->header().deps) tip_of_record.covered.push_back(dep);
  return op;
}

void OpStore::abandon_built() {
  tip_.clear();
  record_tip_.clear();
}

Result<std::vector<Appended>> OpStore::store_signed(std::span<const SignedOp> signed_ops) {
  std::vector<Appended> appended;
  appended.reserve(signed_ops.size());
  std::map<FeedId, Feed> staged;
  std::uint64_t now_ms = wall_.now_ms();
  auto stored = [&]() -> Result<void> {
    auto txn = Transaction::begin(db_, write_gate());
    if (!txn) return tl::unexpected(txn.error());
    for (const SignedOp& signed_op : signed_ops) {
      auto arrival = insert(signed_op, staged, now_ms);
      if (!arrival) return tl::unexpected(arrival.error());
      const OpHeader& h = signed_op.op.header();
      appended.push_back(Appended{signed_op.op.id(), h.channel, h.seq, h.hlc, *arrival});
    }
    if (auto heads = write_heads(staged); !heads) return heads;
    if (auto flushed = records_->flush(); !flushed) return flushed;
    return txn->commit();
  }();
  if (!stored) {
    records_->discard();
    abandon_built();  // ops built on top of this batch no longer extend any feed
    return tl::unexpected(stored.error());
  }
  publish(staged, appended.size(), appended.empty() ? 0 : appended.back().arrival);
  for (auto it = tip_.begin(); it != tip_.end();) {  // the tip is only kept while it is ahead
    it = head(it->first).seq >= it->second.seq ? tip_.erase(it) : std::next(it);
  }
  if (!record_tip_.empty()) {
    // Sorted once: the tips of the next batch, built meanwhile, are as many as this batch's ops.
    std::vector<OpId> stored_ids;
    stored_ids.reserve(appended.size());
    for (const Appended& a : appended) stored_ids.push_back(a.id);
    std::ranges::sort(stored_ids);
    for (auto it = record_tip_.begin(); it != record_tip_.end();) {
      bool stored_now = std::ranges::binary_search(stored_ids, it->second.id);
      it = stored_now ? record_tip_.erase(it) : std::next(it);
    }
  }
  return appended;
}

Result<std::vector<Appended>> OpStore::append(const NodeKey& key, HybridClock& clock,
                                              std::span<const OpDraft> drafts) {
  // Encoding and signing happen before the transaction: only this store moves its own feeds.
  std::vector<Op> ops;
  ops.reserve(drafts.size());
  for (std::size_t i = 0; i < drafts.size(); ++i) {
    auto op = build_op(key.public_key(), clock, drafts[i]);
    if (!op) {
      abandon_built();
      return tl::unexpected(with_context(op.error(), "draft " + std::to_string(i)));
    }
    ops.push_back(std::move(*op));
  }
  std::vector<SignedOp> signed_ops = sign_ops(std::move(ops), key, options_.sign_threads);
  return store_signed(signed_ops);
}

// Whether the op's feed position already holds this very op (a duplicate); an Error when the
// position holds another op (a fork) is left to the chain check.
Result<bool> OpStore::held(const Op& op, const Feed& feed) {
  if (op.header().seq > feed.head.seq || feed.feed_id == 0) return false;
  Statement& stmt = stmts_->id_at;
  auto row = stmt.bind(1, feed.feed_id).bind(2, static_cast<std::int64_t>(op.header().seq)).step();
  if (!row) return tl::unexpected(row.error());
  bool same = *row && std::ranges::equal(stmt.column_blob(0), op.id());
  stmt.reset();
  return same;
}

Result<IngestReport> OpStore::ingest(std::span<const SignedOp> ops, IngestMode mode) {
  // Signatures first, outside the transaction: the CPU-heavy part holds no lock.
  std::vector<Result<void>> verified = verify_ops(ops, options_.sign_threads);
  return ingest_verified(ops, verified, mode);
}

Result<IngestReport> OpStore::ingest_verified(std::span<const SignedOp> ops,
                                              std::span<const Result<void>> verified,
                                              IngestMode mode) {
  FERRY_ASSERT(verified.size() == ops.size());
  auto report = ingest_batch(ops, verified, mode);
  if (!report) records_->discard();  // the transaction rolled back
  return report;
}

Result<IngestReport> OpStore::ingest_batch(std::span<const SignedOp> ops,
                                           std::span<const Result<void>> verified,
                                           IngestMode mode) {
  IngestReport report;
  std::map<FeedId, Feed> staged;
  std::uint64_t now_ms = wall_.now_ms();
  std::uint64_t arrival = 0;
  auto txn = Transaction::begin(db_, write_gate());
  if (!txn) return tl::unexpected(txn.error());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i].op;
    if (!verified[i]) {
      report.rejected.push_back(Rejection{i, verified[i].error()});
      continue;
    }
    auto feed = staged_feed(FeedId{op.header().origin, op.header().channel}, staged);
    if (!feed) return tl::unexpected(feed.error());
    auto duplicate = held(op, *feed);
    if (!duplicate) return tl::unexpected(duplicate.error());
    if (*duplicate) {
      ++report.duplicates;
      continue;
    }
    if (auto chained = check_extends(feed->head, op.header()); !chained) {
      report.rejected.push_back(Rejection{i, chained.error()});
      continue;
    }
    auto stored = insert(ops[i], staged, now_ms);
    if (!stored) return tl::unexpected(stored.error());
    arrival = *stored;
    ++report.stored;
  }
  if (mode == IngestMode::all_or_nothing && !report.rejected.empty()) {
    records_->discard();  // the destructor rolls the transaction back
    report.stored = 0;
    return report;
  }
  if (report.stored == 0) return report;  // nothing to commit; the destructor rolls back
  if (auto heads = write_heads(staged); !heads) return tl::unexpected(heads.error());
  if (auto flushed = records_->flush(); !flushed) return tl::unexpected(flushed.error());
  if (auto committed = txn->commit(); !committed) return tl::unexpected(committed.error());
  publish(staged, report.stored, arrival);
  return report;
}

Result<StoredOp> OpStore::read_row(Statement& stmt, int first) {
  auto arrival = static_cast<std::uint64_t>(stmt.column_int(first));
  auto stored_at = static_cast<std::uint64_t>(stmt.column_int(first + 1));
  auto op = Op::decode(stmt.column_blob(first + 2));
  auto signature = stmt.column_blob(first + 3);
  if (!op || signature.size() != signature_bytes) {
    return fail(Errc::corrupt, path_ + ": op at arrival " + std::to_string(arrival) +
                                   " is damaged" + (op ? "" : " (" + op.error().detail + ")"));
  }
  StoredOp out{SignedOp{std::move(*op), Signature{}}, arrival, stored_at};
  std::copy(signature.begin(), signature.end(), out.signed_op.signature.begin());
  return out;
}

Result<std::vector<StoredOp>> OpStore::missing(const VersionVector& theirs,
                                               const BatchLimits& limits,
                                               const FeedFilter& wanted) {
  FERRY_ASSERT(limits.ops_max > 0);
  std::vector<StoredOp> batch;
  std::size_t bytes = 0;
  for (const FeedRange& range : vector_.lacking_in(theirs)) {
    if (wanted && !wanted(range.feed)) continue;
    Statement& stmt = stmts_->feed_range;
    std::size_t room = limits.ops_max - batch.size();
    stmt.bind(1, feeds_.at(range.feed).feed_id)
        .bind(2, static_cast<std::int64_t>(range.first - 1))
        .bind(3, static_cast<std::int64_t>(room));
    for (;;) {
      auto row = stmt.step();
      if (!row) return tl::unexpected(row.error());
      if (!*row) break;
      std::size_t size = stmt.column_blob(2).size() + signature_bytes;
      if (!batch.empty() && bytes + size > limits.bytes_max) {
        stmt.reset();
        return batch;
      }
      auto op = read_row(stmt, 0);
      if (!op) {
        stmt.reset();
        return tl::unexpected(op.error());
      }
      bytes += size;
      batch.push_back(std::move(*op));
    }
    stmt.reset();
    if (batch.size() == limits.ops_max) break;
  }
  return batch;
}

Result<std::vector<StoredOp>> OpStore::arrived_after(std::uint64_t arrival, std::size_t limit) {
  std::vector<StoredOp> ops;
  Statement& stmt = stmts_->after;
  stmt.bind(1, static_cast<std::int64_t>(arrival)).bind(2, static_cast<std::int64_t>(limit));
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    auto op = read_row(stmt, 0);
    if (!op) {
      stmt.reset();
      return tl::unexpected(op.error());
    }
    ops.push_back(std::move(*op));
  }
  stmt.reset();
  return ops;
}

Result<StoredOp> OpStore::get(const OpId& id) {
  Statement& stmt = stmts_->by_id;
  auto row = step_by_id(stmts_->newest_arrival, stmt, id);
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail(Errc::not_found, "no op with that id");
  auto op = read_row(stmt, 0);
  stmt.reset();
  return op;
}

Result<void> OpStore::record_custody(const PublicKey& peer, const VersionVector& acked,
                                     std::uint64_t now_ms) {
  bool any =
      std::ranges::any_of(acked.entries(), [&](const auto& e) { return feeds_.contains(e.first); });
  if (!any) return {};
  // In WAL mode a NORMAL commit appends to the WAL without syncing it; the next FULL commit
  // syncs it along with its own frames.
  if (auto relaxed = db_.exec("PRAGMA synchronous = NORMAL"); !relaxed) return relaxed;
  auto written = write_custody(peer, acked, now_ms);
  if (auto strict = db_.exec("PRAGMA synchronous = FULL"); !strict) return strict;
  return written;
}

Result<void> OpStore::write_custody(const PublicKey& peer, const VersionVector& acked,
                                    std::uint64_t now_ms) {
  auto txn = Transaction::begin(db_, write_gate());
  if (!txn) return tl::unexpected(txn.error());
  for (const auto& [feed, seq] : acked.entries()) {
    auto held = feeds_.find(feed);
    if (held == feeds_.end()) continue;
    auto noted = stmts_->insert_custody.bind(1, held->second.feed_id)
                     .bind(2, static_cast<std::int64_t>(seq))
                     .bind(3, bytes_of(peer))
                     .bind(4, static_cast<std::int64_t>(now_ms))
                     .run();
    if (!noted) return noted;
  }
  return txn->commit();
}

Result<std::uint64_t> OpStore::stored_at(const FeedId& feed, std::uint64_t seq) {
  auto held = feeds_.find(feed);
  if (held == feeds_.end() || seq == 0 || seq > held->second.head.seq) {
    return fail(Errc::not_found, "no such op in the feed");
  }
  auto stmt = db_.prepare("SELECT stored_at FROM ops WHERE feed_id = ?1 AND seq = ?2");
  if (!stmt) return tl::unexpected(stmt.error());
  auto row = stmt->bind(1, held->second.feed_id).bind(2, static_cast<std::int64_t>(seq)).step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail(Errc::not_found, "no such op in the feed");
  return static_cast<std::uint64_t>(stmt->column_int(0));
}

Result<void> OpStore::probe_write(std::uint64_t now_ms) {
  if (auto relaxed = db_.exec("PRAGMA synchronous = NORMAL"); !relaxed) return relaxed;
  auto stmt = db_.prepare("INSERT OR REPLACE INTO meta (name, value) VALUES ('health_probe', ?1)");
  Result<void> written = stmt ? stmt->bind(1, static_cast<std::int64_t>(now_ms)).run()
                              : Result<void>(tl::unexpected(stmt.error()));
  if (auto strict = db_.exec("PRAGMA synchronous = FULL"); !strict) return strict;
  return written;
}

Result<std::map<std::string, std::uint64_t>> OpStore::conflicts_by_channel(
    std::size_t channels_max) {
  auto stmt = db_.prepare(
      "SELECT channel, count(*) FROM records WHERE conflicts > 0 GROUP BY channel "
      "ORDER BY channel LIMIT ?1");
  if (!stmt) return tl::unexpected(stmt.error());
  stmt->bind(1, static_cast<std::int64_t>(channels_max));
  std::map<std::string, std::uint64_t> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.emplace(std::string(stmt->column_text(0)), static_cast<std::uint64_t>(stmt->column_int(1)));
  }
  return out;
}

Result<Tracked> OpStore::track(const OpId& id) {
  auto stored = get(id);
  if (!stored) return tl::unexpected(stored.error());
  const OpHeader& h = stored->signed_op.op.header();
  Tracked out{stored->stored_at_ms, {}, {}};
  std::int64_t feed_id = feeds_.at(FeedId{h.origin, h.channel}).feed_id;
  Statement& custody = stmts_->first_custody;
  auto row = custody.bind(1, feed_id).bind(2, static_cast<std::int64_t>(h.seq)).step();
  if (!row) return tl::unexpected(row.error());
  if (*row) {
    Custody c;
    auto peer = custody.column_blob(0);
    std::copy(peer.begin(), peer.end(), c.peer.begin());
    c.at_ms = static_cast<std::uint64_t>(custody.column_int(1));
    out.forwarded = c;
  }
  custody.reset();
  Statement& receipt = stmts_->first_receipt;
  row = receipt.bind(1, feed_id).bind(2, static_cast<std::int64_t>(h.seq)).step();
  if (!row) return tl::unexpected(row.error());
  if (*row) {
    Delivery d;
    auto rid = receipt.column_blob(0);
    std::copy(rid.begin(), rid.end(), d.receipt.begin());
    d.receipt_hlc = static_cast<std::uint64_t>(receipt.column_int(1));
    d.at_ms = static_cast<std::uint64_t>(receipt.column_int(2));
    out.delivered = d;
  }
  receipt.reset();
  return out;
}

Result<std::map<PublicKey, std::uint64_t>> OpStore::receipted(const std::string& channel) {
  std::map<PublicKey, std::uint64_t> out;
  Statement& stmt = stmts_->newest_receipt;
  stmt.bind(1, channel);
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    PublicKey origin{};
    auto blob = stmt.column_blob(0);
    std::copy(blob.begin(), blob.end(), origin.begin());
    out[origin] = static_cast<std::uint64_t>(stmt.column_int(1));
  }
  stmt.reset();
  return out;
}

Result<std::vector<std::string>> OpStore::record_keys(const std::string& channel,
                                                      std::size_t limit) {
  std::vector<std::string> out;
  Statement& stmt = stmts_->record_keys;
  stmt.bind(1, channel).bind(2, static_cast<std::int64_t>(limit));
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    out.emplace_back(stmt.column_text(0));
  }
  stmt.reset();
  return out;
}

Result<std::uint64_t> OpStore::max_hlc(const PublicKey& origin) {
  Statement& stmt = stmts_->max_hlc;
  auto row = stmt.bind(1, bytes_of(origin)).step();
  if (!row) return tl::unexpected(row.error());
  auto hlc = static_cast<std::uint64_t>(stmt.column_int(0));
  stmt.reset();
  return hlc;
}

Result<Record> OpStore::record(const std::string& channel, const std::string& key) {
  auto state = records_->state(channel, key);
  if (!state) return tl::unexpected(state.error());
  return Record{channel, key, std::move(*state)};
}

Result<std::vector<Record>> OpStore::conflicted(std::size_t limit) {
  auto keys = records_->conflicted_keys(limit);
  if (!keys) return tl::unexpected(keys.error());
  std::vector<Record> out;
  for (auto& [channel, key] : *keys) {
    auto r = record(channel, key);
    if (!r) return tl::unexpected(r.error());
    out.push_back(std::move(*r));
  }
  return out;
}

Result<Digests> OpStore::digests() {
  if (digests_ && !records_->changed()) return *digests_;
  auto computed = records_->digests();
  if (!computed) return tl::unexpected(computed.error());
  digests_ = Digests{computed->first, std::move(computed->second)};
  return *digests_;
}

bool OpStore::digests_current() const { return digests_.has_value() && !records_->changed(); }

Result<RebuildReport> OpStore::rebuild_records() {
  RebuildReport report;
  auto txn = Transaction::begin(db_, write_gate());
  if (!txn) return tl::unexpected(txn.error());
  auto rebuilt = rebuild_in_transaction(report);
  if (rebuilt) rebuilt = txn->commit();
  if (!rebuilt) {
    records_->discard();
    return tl::unexpected(rebuilt.error());
  }
  digests_.reset();
  return report;
}

Result<void> OpStore::rebuild_in_transaction(RebuildReport& report) {
  if (auto cleared = records_->clear(); !cleared) return cleared;
  std::uint64_t after = 0;
  const std::size_t page = 1024;
  for (;;) {
    auto ops = arrived_after(after, page);
    if (!ops) return tl::unexpected(ops.error());
    if (ops->empty()) break;
    for (const StoredOp& s : *ops) {
      if (auto folded = records_->fold(s.signed_op.op, s.arrival); !folded) return folded;
      after = s.arrival;
      ++report.ops;
    }
    if (auto flushed = records_->flush(); !flushed) return flushed;  // bounds the cache
  }
  if (auto done = db_.exec("DELETE FROM meta WHERE name = 'records_stale'"); !done) return done;
  auto records = db_.query_int("SELECT count(*) FROM records");
  if (!records) return tl::unexpected(records.error());
  report.records = static_cast<std::uint64_t>(*records);
  report.pending = records_->pending_count();
  return {};
}

}  // namespace ferry::storage
