#include "storage/audit.h"

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "protocol/batch_signer.h"
#include "protocol/hex.h"
#include "storage/schema.h"
#include "storage/sqlite.h"

namespace ferry::storage {
namespace {

using DbHandle = std::unique_ptr<sqlite3, CloseDb>;

// Ids in findings are cut to this many hex digits: enough to tell them apart by eye.
constexpr std::size_t short_hex_digits = 16;

std::string short_hex(std::span<const std::uint8_t> bytes) {
  return to_hex(bytes).substr(0, short_hex_digits);
}

template <std::size_t N>
bool copy_blob(std::span<const std::uint8_t> blob, std::array<std::uint8_t, N>& out) {
  if (blob.size() != N) return false;
  std::copy(blob.begin(), blob.end(), out.begin());
  return true;
}

Result<Statement> prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return tl::unexpected(sqlite_error(rc, sql, db));
  }
  return Statement(db, stmt);
}

Result<std::int64_t> query_int(sqlite3* db, std::string_view sql) {
  auto stmt = prepare(db, sql);
  if (!stmt) return tl::unexpected(stmt.error());
  auto row = stmt->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail(Errc::io, std::string(sql) + ": no row");
  return stmt->column_int(0);
}

Result<void> exec(sqlite3* db, const char* sql) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(rc, sql, db));
  return {};
}

// Refuses anything but a ferry database this build knows, without writing a byte.
Result<void> check_ours(sqlite3* db, const std::string& path) {
  auto app_id = query_int(db, "PRAGMA application_id");
  if (!app_id) {
    return fail(Errc::corrupt, path + " is not a ferry database (" + app_id.error().detail + ")");
  }
  if (*app_id != ferry_application_id) {
    return fail(Errc::corrupt,
                path + " is not a ferry database (application_id " + std::to_string(*app_id) + ")");
  }
  auto version = query_int(db, "PRAGMA user_version");
  if (!version) return tl::unexpected(version.error());
  if (*version < 1 || *version > schema_version_latest()) {
    return fail(Errc::corrupt, path + " has schema version " + std::to_string(*version) +
                                   "; this build reads 1 to " +
                                   std::to_string(schema_version_latest()));
  }
  return {};
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

// A SQLite URI for a file name: the characters that end or escape a path in a URI are encoded.
std::string file_uri(const std::string& path) {
  std::string uri = "file:";
  for (char c : path) {
    if (c == '%') {
      uri += "%25";
    } else if (c == '?') {
      uri += "%3f";
    } else if (c == '#') {
      uri += "%23";
    } else {
      uri += c;
    }
  }
  return uri;
}

// The database opened read only, inside one read transaction (one snapshot).
//
// A read-only connection to a WAL database still creates the -wal and -shm files when they are
// missing, and an admin running as root would leave them owned by root, which a ferryd running
// as its own user then cannot open. So when there is no -wal file (ferryd stopped cleanly and
// checkpointed everything into the database file), the file is opened `immutable`: no locks, no
// side files. If ferryd starts meanwhile, the -wal file appears and finish() reports it.
struct ReadOnlyDb {
  DbHandle db;
  std::string wal_path;
  bool immutable = false;

  sqlite3* get() const { return db.get(); }

  Result<void> finish() const {
    if (immutable && file_exists(wal_path)) {
      return fail(Errc::busy, "ferryd started while the store was being read; run it again");
    }
    return {};
  }
};

Result<ReadOnlyDb> open_read_only(const std::string& data_dir) {
  struct stat st {};
  if (::stat(data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return fail(Errc::not_found, "data directory " + data_dir + " does not exist");
  }
  std::string path = data_dir + "/" + database_file_name;
  if (!file_exists(path)) {
    return fail(Errc::not_found,
                "no ferry database at " + path + " (ferryd creates it when it first starts)");
  }
  ReadOnlyDb out{nullptr, path + "-wal", !file_exists(path + "-wal")};
  std::string uri = file_uri(path) + (out.immutable ? "?mode=ro&immutable=1" : "?mode=ro");
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(uri.c_str(), &raw,
                           SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, nullptr);
  out.db.reset(raw);  // owns the handle even when open failed
  if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(rc, "open " + path, raw));
  sqlite3_extended_result_codes(raw, 1);
  if (auto r = exec(raw, "PRAGMA query_only = 1"); !r) return tl::unexpected(r.error());
  if (auto ours = check_ours(raw, path); !ours) return tl::unexpected(ours.error());
  if (auto r = exec(raw, "BEGIN"); !r) return tl::unexpected(r.error());
  return out;
}

struct FeedRow {
  std::int64_t feed_id = 0;
  PublicKey origin{};
  std::string channel;
  std::uint64_t head_seq = 0;
  OpId head_id{};
};

// Collects findings, keeping the first problems_max.
class Findings {
 public:
  Findings(AuditReport& report, std::size_t kept_max) : report_(report), kept_max_(kept_max) {}

  void add(const FeedRow& feed, std::uint64_t seq, std::string what) {
    add(AuditProblem{to_hex(feed.origin), feed.channel, seq, std::move(what)});
  }
  void add(AuditProblem problem) {
    ++report_.problem_count;
    if (report_.problems.size() < kept_max_) report_.problems.push_back(std::move(problem));
  }

 private:
  AuditReport& report_;
  std::size_t kept_max_;
};

// One op row of a feed, as stored.
struct OpRow {
  std::uint64_t seq = 0;
  std::uint64_t hlc = 0;
  OpId id{};
  std::span<const std::uint8_t> envelope;
  std::span<const std::uint8_t> signature;
};

// Walks one feed's ops in seq order. The chain is followed through the stored ids, so an altered
// op is reported once, at its own seq, and not again at the op after it.
class FeedWalk {
 public:
  FeedWalk(const FeedRow& feed, Findings& findings) : feed_(feed), findings_(findings) {}

  // `op` is the decoded envelope (or why it does not decode); `signature_ok` whether the
  // signature verified, checked beforehand for a chunk of ops at once.
  void check(const OpRow& row, const Result<const Op*>& op, bool signature_ok);
  void finish();

 private:
  void check_envelope(const OpRow& row, const Op& op, bool signature_ok);
  void check_prev(const OpRow& row, const OpHeader& h);

  const FeedRow& feed_;
  Findings& findings_;
  std::uint64_t expected_seq_ = 1;
  bool prev_known_ = true;  // false right after a gap: the missing op's id is not known
  OpId prev_id_{};
  std::uint64_t ops_ = 0;
};

void FeedWalk::check(const OpRow& row, const Result<const Op*>& op, bool signature_ok) {
  ++ops_;
  if (row.seq != expected_seq_) {
    findings_.add(feed_, expected_seq_,
                  row.seq == expected_seq_ + 1
                      ? "missing: seq " + std::to_string(expected_seq_) + " is not held (a gap)"
                      : "missing: seqs " + std::to_string(expected_seq_) + " to " +
                            std::to_string(row.seq - 1) + " are not held (a gap)");
    prev_known_ = false;
  }
  if (!op) {
    findings_.add(feed_, row.seq, "the envelope does not decode: " + to_string(op.error()));
  } else {
    check_envelope(row, **op, signature_ok);
  }
  expected_seq_ = row.seq + 1;
  prev_known_ = true;
  prev_id_ = row.id;
}

void FeedWalk::check_envelope(const OpRow& row, const Op& op, bool signature_ok) {
  const OpHeader& h = op.header();
  if (op.id() != row.id) {
    findings_.add(feed_, row.seq,
                  "the envelope was altered: it hashes to " + short_hex(op.id()) +
                      "..., not to its stored id " + short_hex(row.id) + "...");
  }
  if (!signature_ok) findings_.add(feed_, row.seq, "the signature does not verify");
  if (h.origin != feed_.origin) {
    findings_.add(feed_, row.seq, "the envelope names origin " + short_hex(h.origin) + "...");
  }
  if (h.channel != feed_.channel) {
    findings_.add(feed_, row.seq, "the envelope names channel \"" + h.channel + "\"");
  }
  if (h.seq != row.seq) {
    findings_.add(feed_, row.seq, "the envelope says seq " + std::to_string(h.seq));
  }
  if (h.hlc != row.hlc) {
    findings_.add(feed_, row.seq,
                  "the envelope's hlc " + std::to_string(h.hlc) + " is not the stored hlc " +
                      std::to_string(row.hlc));
  }
  check_prev(row, h);
}

void FeedWalk::check_prev(const OpRow& row, const OpHeader& h) {
  if (row.seq == 1) {
    if (h.prev != OpId{}) findings_.add(feed_, row.seq, "seq 1 names a prev that is not zero");
    return;
  }
  if (prev_known_ && h.prev != prev_id_) {
    findings_.add(feed_, row.seq,
                  "prev is " + short_hex(h.prev) + "..., but the op before it is " +
                      short_hex(prev_id_) + "...");
  }
}

void FeedWalk::finish() {
  std::uint64_t last_seq = expected_seq_ - 1;
  if (ops_ == 0) {
    findings_.add(feed_, feed_.head_seq,
                  "the feed's head row names seq " + std::to_string(feed_.head_seq) +
                      ", but the feed holds no ops");
  } else if (feed_.head_seq != last_seq) {
    findings_.add(feed_, feed_.head_seq,
                  "the feed's head row names seq " + std::to_string(feed_.head_seq) +
                      ", but its last op is seq " + std::to_string(last_seq));
  } else if (feed_.head_id != prev_id_) {
    findings_.add(feed_, feed_.head_seq,
                  "the feed's head row names id " + short_hex(feed_.head_id) +
                      "..., not its last op's id " + short_hex(prev_id_) + "...");
  }
}

// One op row as read, owning its bytes: rows are read a chunk at a time so that their
// signatures can be checked as one batch (docs/architecture.md, "Id and signature").
struct OwnedRow {
  std::uint64_t seq = 0;
  std::uint64_t hlc = 0;
  OpId id{};
  std::vector<std::uint8_t> envelope;
  std::vector<std::uint8_t> signature;
};

// Decodes a chunk of rows, verifies the signatures of those that decode (a batch at a time, on
// audit_verify_threads threads; a failed batch is checked op by op), then walks them in order.
void check_chunk(FeedWalk& walk, const std::vector<OwnedRow>& chunk) {
  std::vector<std::optional<Error>> undecodable(chunk.size());
  std::vector<SignedOp> signed_ops;  // the rows that decode, in order
  std::vector<bool> signature_sized;
  signed_ops.reserve(chunk.size());
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    auto op = Op::decode(chunk[i].envelope);
    if (!op) {
      undecodable[i] = std::move(op.error());
      continue;
    }
    Signature signature{};
    signature_sized.push_back(copy_blob(chunk[i].signature, signature));
    signed_ops.push_back(SignedOp{std::move(*op), signature});
  }
  std::vector<Result<void>> verified = verify_ops(signed_ops, audit_verify_threads);
  std::size_t next = 0;
  for (std::size_t i = 0; i < chunk.size(); ++i) {
    const OwnedRow& row = chunk[i];
    OpRow op_row{row.seq, row.hlc, row.id, row.envelope, row.signature};
    if (undecodable[i]) {
      walk.check(op_row, tl::unexpected(*undecodable[i]), false);
      continue;
    }
    walk.check(op_row, &signed_ops[next].op, signature_sized[next] && verified[next].has_value());
    ++next;
  }
}

Result<std::uint64_t> walk_feed(Statement& ops, const FeedRow& feed, Findings& findings) {
  FeedWalk walk(feed, findings);
  std::uint64_t count = 0;
  std::vector<OwnedRow> chunk;
  chunk.reserve(audit_chunk_ops);
  ops.bind(1, feed.feed_id);
  for (;;) {
    auto row = ops.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    OwnedRow op;
    op.seq = static_cast<std::uint64_t>(ops.column_int(0));
    op.hlc = static_cast<std::uint64_t>(ops.column_int(1));
    if (!copy_blob(ops.column_blob(2), op.id)) {
      ops.reset();
      return fail(Errc::corrupt, "an op row of feed " + std::to_string(feed.feed_id) +
                                     " holds an id that is not 32 bytes");
    }
    auto envelope = ops.column_blob(3);
    auto signature = ops.column_blob(4);
    op.envelope.assign(envelope.begin(), envelope.end());
    op.signature.assign(signature.begin(), signature.end());
    chunk.push_back(std::move(op));
    ++count;
    if (chunk.size() == audit_chunk_ops) {
      check_chunk(walk, chunk);
      chunk.clear();
    }
  }
  ops.reset();
  check_chunk(walk, chunk);
  walk.finish();
  return count;
}

Result<FeedRow> read_feed(Statement& feeds) {
  FeedRow feed;
  feed.feed_id = feeds.column_int(0);
  feed.channel = std::string(feeds.column_text(2));
  feed.head_seq = static_cast<std::uint64_t>(feeds.column_int(3));
  if (!copy_blob(feeds.column_blob(1), feed.origin) ||
      !copy_blob(feeds.column_blob(4), feed.head_id)) {
    return fail(Errc::corrupt, "feed row " + std::to_string(feed.feed_id) +
                                   " holds an origin or head id that is not 32 bytes");
  }
  return feed;
}

Result<void> count_orphans(sqlite3* db, Findings& findings) {
  auto orphans =
      query_int(db, "SELECT count(*) FROM ops WHERE feed_id NOT IN (SELECT feed_id FROM feeds)");
  if (!orphans) return tl::unexpected(orphans.error());
  if (*orphans > 0) {
    findings.add(AuditProblem{"", "", 0, std::to_string(*orphans) + " ops belong to no feed row"});
  }
  return {};
}

Result<AuditReport> audit_once(const std::string& data_dir, const AuditOptions& options) {
  auto db = open_read_only(data_dir);
  if (!db) return tl::unexpected(db.error());
  auto feeds = prepare(db->get(),
                       "SELECT feed_id, origin, channel, head_seq, head_id FROM feeds "
                       "ORDER BY feed_id");
  if (!feeds) return tl::unexpected(feeds.error());
  auto ops = prepare(db->get(),
                     "SELECT seq, hlc, id, envelope, signature FROM ops WHERE feed_id = ?1 "
                     "ORDER BY seq");
  if (!ops) return tl::unexpected(ops.error());
  AuditReport report;
  Findings findings(report, options.problems_max);
  for (;;) {
    auto row = feeds->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    auto feed = read_feed(*feeds);
    if (!feed) return tl::unexpected(feed.error());
    auto checked = walk_feed(*ops, *feed, findings);
    if (!checked) return tl::unexpected(checked.error());
    ++report.feeds;
    report.ops += *checked;
  }
  if (auto counted = count_orphans(db->get(), findings); !counted) {
    return tl::unexpected(counted.error());
  }
  if (auto finished = db->finish(); !finished) return tl::unexpected(finished.error());
  return report;
}

}  // namespace

Result<AuditReport> audit(const std::string& data_dir, const AuditOptions& options) {
  auto report = audit_once(data_dir, options);
  // ferryd started during the read, or held a lock: once more, now reading through its WAL.
  if (!report && report.error().code == Errc::busy) report = audit_once(data_dir, options);
  return report;
}

Result<void> for_each_op(const std::string& data_dir, const OpVisitor& visit) {
  auto db = open_read_only(data_dir);
  if (!db) return tl::unexpected(db.error());
  auto ops = prepare(db->get(),
                     "SELECT arrival, stored_at, envelope, signature FROM ops ORDER BY arrival");
  if (!ops) return tl::unexpected(ops.error());
  for (;;) {
    auto row = ops->step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) return db->finish();
    auto arrival = static_cast<std::uint64_t>(ops->column_int(0));
    auto op = Op::decode(ops->column_blob(2));
    Signature signature{};
    if (!op || !copy_blob(ops->column_blob(3), signature)) {
      return fail(Errc::corrupt,
                  "the op at arrival " + std::to_string(arrival) + " is damaged: " +
                      (op ? "its signature is not 64 bytes" : to_string(op.error())));
    }
    StoredOp stored{SignedOp{std::move(*op), signature}, arrival,
                    static_cast<std::uint64_t>(ops->column_int(1))};
    if (auto visited = visit(stored); !visited) return visited;
  }
}

}  // namespace ferry::storage
