// The offline audit of a data directory: every feed's hash chain and signatures, read only.
//
// audit() and for_each_op() open <data_dir>/ferry.db with SQLITE_OPEN_READONLY and
// `PRAGMA query_only`, take no directory lock and never write, so they run beside a live ferryd
// (reading one snapshot through its WAL, in one read transaction) as well as on a stopped node or
// a copy of its files. On a stopped node (no -wal file) the file is opened `immutable`, so not
// even SQLite's -wal and -shm side files are created: an admin running as root must not leave
// root-owned files that ferryd could not open. If ferryd starts during such a read, the result is
// Errc::busy (audit() then reads once more, through the WAL). A problem found in the data is a
// finding in the report, not an Error; an Error means the audit could not run (no database, not a
// ferry database, a schema newer than this build, an I/O failure). Used from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "protocol/error.h"
#include "storage/op_store.h"

namespace ferry::storage {

// One finding: which feed, which position, what is wrong.
struct AuditProblem {
  std::string origin;  // 64 hex digits
  std::string channel;
  std::uint64_t seq = 0;  // 0 when the problem is not one op's (an op without a feed row)
  std::string what;
};

// An audit reads a feed's ops this many at a time and checks their signatures as one batch, on
// this many threads (a failed batch is checked op by op, so a bad op is still named exactly).
inline constexpr std::size_t audit_chunk_ops = 1024;
inline constexpr std::size_t audit_verify_threads = 2;

struct AuditOptions {
  std::size_t problems_max = 1000;  // findings kept; the rest are only counted
};

struct AuditReport {
  std::uint64_t feeds = 0;             // feed rows walked
  std::uint64_t ops = 0;               // op rows checked
  std::uint64_t problem_count = 0;     // every finding, kept or not
  std::vector<AuditProblem> problems;  // the first problems_max findings, in feed order

  bool clean() const { return problem_count == 0; }
};

// Walks every feed (feeds table, feed_id order) and its ops in seq order, checking for each op
// that its envelope decodes, its id is the hash of its envelope, its signature verifies, its seq
// follows the previous one, its prev is the previous op's id, and its header (origin, channel,
// seq, hlc) matches the columns it is stored under; and for each feed that its head row names
// its last op.
[[nodiscard]] Result<AuditReport> audit(const std::string& data_dir,
                                        const AuditOptions& options = {});

// Calls `visit` for every op in arrival order, read only. Stops at the first Error from `visit`
// and returns it; an op whose envelope does not decode is Errc::corrupt naming its arrival.
using OpVisitor = std::function<Result<void>(const StoredOp&)>;
[[nodiscard]] Result<void> for_each_op(const std::string& data_dir, const OpVisitor& visit);

}  // namespace ferry::storage
