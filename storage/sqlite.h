// A thin owner of SQLite handles: database, prepared statements and transactions.
//
// Converts SQLite result codes into ferry Errors (SQLITE_FULL is Errc::disk_full, SQLITE_BUSY is
// Errc::busy, SQLITE_CORRUPT and SQLITE_NOTADB are Errc::corrupt, anything else Errc::io). Every
// object here is used by one thread at a time; statements are finalized by their owner, and a
// Transaction rolls back in its destructor unless commit() succeeded.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "protocol/error.h"

namespace ferry::storage {

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct FinalizeStatement {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};

Error sqlite_error(int rc, std::string_view context, sqlite3* db);

// Turns off SQLite's memory statistics for the whole process (SQLITE_CONFIG_MEMSTATUS): with them
// on, every allocation SQLite makes takes a global mutex, about 6% of the instructions the event
// loop spends per submit (bench/README.md). Nothing here reads those statistics. SQLite takes
// the setting only before its first use in the process; Database::open calls this before it
// opens anything, so a process whose first SQLite use is a Database gets it. Returns whether
// this process turned them off (false when SQLite was already in use).
bool sqlite_memory_statistics_off();

class Statement {
 public:
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}

  // Text and blobs are bound without a copy (SQLITE_STATIC): the bytes must stay valid and
  // unchanged until the statement is reset (reset(), run(), or a failed step()) or the
  // parameter is bound again. Bind in the same expression that runs the statement, or from
  // objects that outlive it.
  Statement& bind(int index, std::int64_t value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, std::span<const std::uint8_t> blob);
  Statement& bind_null(int index);

  // true while a row is available; false when done.
  [[nodiscard]] Result<bool> step();
  // Runs a statement that returns no rows.
  [[nodiscard]] Result<void> run();
  void reset();

  std::int64_t column_int(int index) const;
  std::string_view column_text(int index) const;
  std::span<const std::uint8_t> column_blob(int index) const;

 private:
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, FinalizeStatement> stmt_;
};

class Database {
 public:
  // Opens an existing database (create=false) or creates one; no statement runs yet. `vfs`
  // names a registered SQLite VFS (tests inject faults this way); empty means the default.
  [[nodiscard]] static Result<Database> open(const std::string& path, bool create,
                                             const std::string& vfs = {});

  [[nodiscard]] Result<void> exec(const std::string& sql);
  [[nodiscard]] Result<Statement> prepare(std::string_view sql);
  // Runs a query that yields one integer (PRAGMA user_version and the like).
  [[nodiscard]] Result<std::int64_t> query_int(const std::string& sql);
  [[nodiscard]] Result<std::string> query_text(const std::string& sql);

  sqlite3* handle() const { return db_.get(); }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  std::unique_ptr<sqlite3, CloseDb> db_;
};

class WriteGate;  // storage/checkpointer.h

// A read transaction (BEGIN, no lock until the first read): the reads made while it lives share
// one WAL snapshot and one read lock, instead of each statement taking and releasing its own.
// Ended (ROLLBACK: nothing is written in it) when it goes out of scope. No write transaction may
// begin while one is open on the same connection.
class ReadSnapshot {
 public:
  [[nodiscard]] static Result<ReadSnapshot> begin(Database& db);
  ~ReadSnapshot();
  ReadSnapshot(ReadSnapshot&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
  ReadSnapshot& operator=(ReadSnapshot&&) = delete;
  ReadSnapshot(const ReadSnapshot&) = delete;
  ReadSnapshot& operator=(const ReadSnapshot&) = delete;

 private:
  explicit ReadSnapshot(Database& db) : db_(&db) {}
  Database* db_;
};

// BEGIN IMMEDIATE: takes the write lock at once, so the transaction cannot fail half-way on a
// lock upgrade. With a gate, the gate is held from before BEGIN until COMMIT or ROLLBACK.
class Transaction {
 public:
  [[nodiscard]] static Result<Transaction> begin(Database& db, WriteGate* gate = nullptr);
  ~Transaction();
  Transaction(Transaction&& other) noexcept : db_(other.db_), gate_(other.gate_) {
    other.db_ = nullptr;
    other.gate_ = nullptr;
  }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  [[nodiscard]] Result<void> commit();

 private:
  Transaction(Database& db, WriteGate* gate) : db_(&db), gate_(gate) {}
  void release_gate();
  Database* db_;
  WriteGate* gate_;
};

}  // namespace ferry::storage
