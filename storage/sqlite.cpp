#include "storage/sqlite.h"

#include "storage/checkpointer.h"

namespace ferry::storage {

Error sqlite_error(int rc, std::string_view context, sqlite3* db) {
  std::string detail(context);
  detail += ": ";
  detail += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Error{Errc::disk_full, std::move(detail)};
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error{Errc::busy, std::move(detail)};
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Error{Errc::corrupt, std::move(detail)};
    default:
      return Error{Errc::io, std::move(detail)};
  }
}

Statement& Statement::bind(int index, std::int64_t value) {
  int rc = sqlite3_bind_int64(stmt_.get(), index, value);
  FERRY_ASSERT(rc == SQLITE_OK);
  return *this;
}

Statement& Statement::bind(int index, std::string_view text) {
  int rc = sqlite3_bind_text(stmt_.get(), index, text.data(), static_cast<int>(text.size()),
                             SQLITE_STATIC);
  FERRY_ASSERT(rc == SQLITE_OK);
  return *this;
}

Statement& Statement::bind(int index, std::span<const std::uint8_t> blob) {
  int rc = sqlite3_bind_blob(stmt_.get(), index, blob.data(), static_cast<int>(blob.size()),
                             SQLITE_STATIC);
  FERRY_ASSERT(rc == SQLITE_OK);
  return *this;
}

Statement& Statement::bind_null(int index) {
  int rc = sqlite3_bind_null(stmt_.get(), index);
  FERRY_ASSERT(rc == SQLITE_OK);
  return *this;
}

Result<bool> Statement::step() {
  int rc = sqlite3_step(stmt_.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Error error = sqlite_error(rc, sqlite3_sql(stmt_.get()), db_);
  sqlite3_reset(stmt_.get());
  return tl::unexpected(std::move(error));
}

Result<void> Statement::run() {
  auto stepped = step();
  reset();
  if (!stepped) return tl::unexpected(stepped.error());
  return {};
}

void Statement::reset() {
  sqlite3_reset(stmt_.get());
  sqlite3_clear_bindings(stmt_.get());
}

std::int64_t Statement::column_int(int index) const {
  return sqlite3_column_int64(stmt_.get(), index);
}

std::string_view Statement::column_text(int index) const {
  const auto* text = sqlite3_column_text(stmt_.get(), index);
  int size = sqlite3_column_bytes(stmt_.get(), index);
  if (text == nullptr) return {};
  return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(size)};
}

std::span<const std::uint8_t> Statement::column_blob(int index) const {
  const void* blob = sqlite3_column_blob(stmt_.get(), index);
  int size = sqlite3_column_bytes(stmt_.get(), index);
  if (blob == nullptr) return {};
  return {static_cast<const std::uint8_t*>(blob), static_cast<std::size_t>(size)};
}

bool sqlite_memory_statistics_off() {
  // Once per process: sqlite3_config may not run while another thread uses SQLite.
  // SQLITE_MISUSE once SQLite is initialized: its statistics then stay as they were (on).
  static const bool off = sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0) == SQLITE_OK;
  return off;
}

Result<Database> Database::open(const std::string& path, bool create, const std::string& vfs) {
  sqlite_memory_statistics_off();
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
  if (create) flags |= SQLITE_OPEN_CREATE;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, vfs.empty() ? nullptr : vfs.c_str());
  Database db(raw);  // owns the handle even when open failed
  if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(rc, "open " + path, raw));
  sqlite3_extended_result_codes(raw, 1);
  return db;
}

Result<void> Database::exec(const std::string& sql) {
  char* message = nullptr;
  int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
  sqlite3_free(message);
  if (rc != SQLITE_OK) return tl::unexpected(sqlite_error(rc, sql, db_.get()));
  return {};
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return tl::unexpected(sqlite_error(rc, sql, db_.get()));
  }
  return Statement(db_.get(), stmt);
}

Result<std::int64_t> Database::query_int(const std::string& sql) {
  auto stmt = prepare(sql);
  if (!stmt) return tl::unexpected(stmt.error());
  auto row = stmt->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail(Errc::io, sql + ": no row");
  return stmt->column_int(0);
}

Result<std::string> Database::query_text(const std::string& sql) {
  auto stmt = prepare(sql);
  if (!stmt) return tl::unexpected(stmt.error());
  auto row = stmt->step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) return fail(Errc::io, sql + ": no row");
  return std::string(stmt->column_text(0));
}

Result<ReadSnapshot> ReadSnapshot::begin(Database& db) {
  if (auto begun = db.exec("BEGIN"); !begun) return tl::unexpected(begun.error());
  return ReadSnapshot(db);
}

ReadSnapshot::~ReadSnapshot() {
  if (db_ != nullptr) (void)db_->exec("ROLLBACK");
}

Result<Transaction> Transaction::begin(Database& db, WriteGate* gate) {
  if (gate != nullptr) gate->lock();
  if (auto begun = db.exec("BEGIN IMMEDIATE"); !begun) {
    if (gate != nullptr) gate->unlock();
    return tl::unexpected(begun.error());
  }
  return Transaction(db, gate);
}

Transaction::~Transaction() {
  if (db_ != nullptr) (void)db_->exec("ROLLBACK");
  release_gate();
}

void Transaction::release_gate() {
  if (gate_ == nullptr) return;
  gate_->unlock();
  gate_ = nullptr;
}

Result<void> Transaction::commit() {
  FERRY_ASSERT(db_ != nullptr);
  auto committed = db_->exec("COMMIT");
  if (!committed) return committed;  // the destructor rolls back
  db_ = nullptr;
  release_gate();
  return {};
}

}  // namespace ferry::storage
