#include "storage/schema.h"

#include <array>
#include <string>

namespace ferry::storage {
namespace {

// Append only: a migration that has shipped is never edited, the next one corrects it.
constexpr std::array<const char*, 5> migrations = {
    // 1: feeds and ops. arrival is the local arrival cursor: ops are never deleted, so the rowid
    // (max + 1) only grows and AUTOINCREMENT's extra page write per commit is not needed. An id
    // is the hash of an envelope that names its feed and seq, so UNIQUE (feed_id, seq) already
    // makes ids unique; lookups by id go through a small index on the id's first 8 bytes, which
    // costs far fewer page writes per commit than a unique index on 32 random bytes.
    R"sql(
CREATE TABLE feeds (
  feed_id  INTEGER PRIMARY KEY,
  origin   BLOB NOT NULL CHECK (length(origin) = 32),
  channel  TEXT NOT NULL,
  head_seq INTEGER NOT NULL CHECK (head_seq >= 1),
  head_id  BLOB NOT NULL CHECK (length(head_id) = 32),
  UNIQUE (origin, channel)
);
CREATE TABLE ops (
  arrival   INTEGER PRIMARY KEY,
  id        BLOB NOT NULL CHECK (length(id) = 32),
  id_prefix INTEGER NOT NULL,
  feed_id   INTEGER NOT NULL REFERENCES feeds (feed_id),
  seq       INTEGER NOT NULL CHECK (seq >= 1),
  hlc       INTEGER NOT NULL,
  envelope  BLOB NOT NULL,
  signature BLOB NOT NULL CHECK (length(signature) = 64),
  stored_at INTEGER NOT NULL,
  UNIQUE (feed_id, seq)
);
CREATE INDEX ops_by_id_prefix ON ops (id_prefix);
)sql",
    // 2: merged records (protocol/merge.h). Each op is folded into its record (channel, key) in
    // the transaction that stores it: ops.record_id names the record and ops.context holds the
    // op's causal context, NULL while the op is pending (waiting for a dep, or for an earlier op
    // of its origin in that record, to be folded first). merge_pending lists the pending ops, each
    // with the one id it waits for now. records.state is the encoded RecordState, records.tails
    // the latest folded op of each origin in the record as [[origin, seq], ...] (an origin has
    // seen its own earlier ops; that op's row, found by feed and seq, holds its id and context),
    // records.conflicts the number of conflicting fields. Ops stored before this migration are
    // folded by a rebuild at the next open (meta 'records_stale').
    R"sql(
ALTER TABLE ops ADD COLUMN record_id INTEGER;
ALTER TABLE ops ADD COLUMN context BLOB;
CREATE TABLE records (
  record_id INTEGER PRIMARY KEY,
  channel   TEXT NOT NULL,
  key       TEXT NOT NULL,
  state     BLOB NOT NULL,
  tails     BLOB NOT NULL,
  conflicts INTEGER NOT NULL CHECK (conflicts >= 0),
  UNIQUE (channel, key)
);
CREATE INDEX records_with_conflicts ON records (channel, key) WHERE conflicts > 0;
CREATE TABLE merge_pending (
  arrival   INTEGER PRIMARY KEY,
  record_id INTEGER NOT NULL,
  origin    BLOB NOT NULL CHECK (length(origin) = 32),
  seq       INTEGER NOT NULL,
  waits_for BLOB NOT NULL CHECK (length(waits_for) = 32)
);
CREATE INDEX merge_pending_by_origin ON merge_pending (record_id, origin, seq);
CREATE INDEX merge_pending_by_wait ON merge_pending (waits_for);
CREATE TABLE meta (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (name, value) SELECT 'records_stale', 1 WHERE EXISTS (SELECT 1 FROM ops);
)sql",
    // 3: custody and receipts (docs/protocol.md). custody: a peer acknowledged holding a feed
    // through seq `through`, at at_ms (one row per acknowledgement that raised it; the first row
    // covering an op tells who took custody and when). receipts: the authority's receipt op (by
    // arrival) covering a feed through seq `through`.
    R"sql(
CREATE TABLE custody (
  feed_id INTEGER NOT NULL REFERENCES feeds (feed_id),
  through INTEGER NOT NULL CHECK (through >= 1),
  peer    BLOB NOT NULL CHECK (length(peer) = 32),
  at_ms   INTEGER NOT NULL,
  PRIMARY KEY (feed_id, through, peer)
) WITHOUT ROWID;
CREATE TABLE receipts (
  feed_id INTEGER NOT NULL REFERENCES feeds (feed_id),
  through INTEGER NOT NULL CHECK (through >= 1),
  receipt INTEGER NOT NULL REFERENCES ops (arrival),
  PRIMARY KEY (feed_id, through)
) WITHOUT ROWID;
)sql",
    // 4: record states in format 2 (protocol/merge.h encode_state: one table of origins that
    // dots name by index; OR-set tags without ids). States of format 1 are not read: every record
    // is folded again from its ops by a rebuild at the next open.
    R"sql(
INSERT OR REPLACE INTO meta (name, value) SELECT 'records_stale', 1 WHERE EXISTS (SELECT 1 FROM ops);
)sql",
    // 5: the id index by generation (schema.h, by_id_terms). Ids are random, so each of a
    // commit's ops landed on its own leaf of ops_by_id_prefix: once that index had more leaves
    // than a batch has ops, a 1,024-op commit rewrote about 1,000 index pages, several times the
    // pages of the ops themselves. Keyed first by arrival >> 16, the inserts of a commit land
    // in the newest generation's subtree only (at most 65,536 entries, a few hundred leaves).
    // A lookup probes each generation, newest first.
    R"sql(
DROP INDEX IF EXISTS ops_by_id_prefix;
CREATE INDEX IF NOT EXISTS ops_by_id ON ops (arrival >> 16, id_prefix);
)sql",
};

}  // namespace

Result<bool> step_by_id(Statement& newest, Statement& stmt, const OpId& id) {
  auto last = newest.step();
  if (!last) return tl::unexpected(last.error());
  const std::int64_t newest_arrival = *last ? newest.column_int(0) : 0;
  newest.reset();
  for (std::int64_t generation = newest_arrival >> id_generation_shift; generation >= 0;
       --generation) {
    auto row = stmt.bind(1, id_prefix(id)).bind(2, bytes_of(id)).bind(3, generation).step();
    if (!row) return tl::unexpected(row.error());
    if (*row) return true;
    stmt.reset();
  }
  return false;
}

std::int64_t schema_version_latest() { return static_cast<std::int64_t>(migrations.size()); }

Result<std::int64_t> check_database(Database& db, const std::string& path) {
  // The first read of the header: a damaged file fails here, before anything is written.
  auto app_id = db.query_int("PRAGMA application_id");
  if (!app_id) {
    return fail(Errc::corrupt, path + " is not a readable ferry database (" +
                                   app_id.error().detail + "); it was left untouched");
  }
  auto version = db.query_int("PRAGMA user_version");
  if (!version) return tl::unexpected(version.error());
  auto tables = db.query_int("SELECT count(*) FROM sqlite_schema");
  if (!tables) return tl::unexpected(tables.error());
  bool fresh = *app_id == 0 && *version == 0 && *tables == 0;
  if (!fresh && *app_id != ferry_application_id) {
    return fail(Errc::corrupt, path + " is not a ferry database (application_id " +
                                   std::to_string(*app_id) + "); it was left untouched");
  }
  if (*version > schema_version_latest()) {
    return fail(Errc::corrupt, path + " has schema version " + std::to_string(*version) +
                                   ", newer than this build's " +
                                   std::to_string(schema_version_latest()) +
                                   "; it was left untouched");
  }
  if (!fresh) {
    auto check = db.query_text("PRAGMA quick_check");
    if (!check) return fail(Errc::corrupt, path + ": quick_check failed: " + check.error().detail);
    if (*check != "ok") {
      return fail(Errc::corrupt,
                  path + " failed its integrity check (" + *check + "); it was left untouched");
    }
  }
  return *version;
}

Result<void> migrate(Database& db, std::int64_t version) {
  for (std::int64_t v = version; v < schema_version_latest(); ++v) {
    auto txn = Transaction::begin(db);
    if (!txn) return tl::unexpected(txn.error());
    std::string sql = migrations[static_cast<std::size_t>(v)];
    sql += "PRAGMA application_id = " + std::to_string(ferry_application_id) + ";";
    sql += "PRAGMA user_version = " + std::to_string(v + 1) + ";";
    if (auto done = db.exec(sql); !done) return done;
    if (auto committed = txn->commit(); !committed) return committed;
  }
  return {};
}

}  // namespace ferry::storage
