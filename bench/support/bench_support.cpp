#include "bench/support/bench_support.h"

#include <sqlite3.h>
#include <stdlib.h>  // mkdtemp

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <msgpack.hpp>
#include <utility>

namespace ferry::bench {
namespace {

constexpr std::string_view note_text =
    "Applicant brought the household booklet, an ID card and a rental contract; the clerk "
    "checked the originals, scanned them and returned them at the counter. ";

void pack_text(msgpack::packer<msgpack::sbuffer>& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

struct CloseDb {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct FinalizeStatement {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbHandle = std::unique_ptr<sqlite3, CloseDb>;
using StatementHandle = std::unique_ptr<sqlite3_stmt, FinalizeStatement>;

Error sqlite_failure(sqlite3* db, std::string_view context) {
  return Error{Errc::io, std::string(context) + ": " + sqlite3_errmsg(db)};
}

// The baseline: one table, an integer key and a blob, one row per BEGIN IMMEDIATE ... COMMIT.
class PlainSqlite {
 public:
  [[nodiscard]] static Result<PlainSqlite> open(const std::string& path);

  [[nodiscard]] Result<void> insert_row(std::int64_t key, std::span<const std::uint8_t> blob) {
    sqlite3* db = db_.get();
    if (!step_done(begin_.get())) return tl::unexpected(sqlite_failure(db, "BEGIN"));
    sqlite3_bind_int64(insert_.get(), 1, key);
    sqlite3_bind_blob(insert_.get(), 2, blob.data(), static_cast<int>(blob.size()), SQLITE_STATIC);
    const bool inserted = step_done(insert_.get());
    sqlite3_clear_bindings(insert_.get());
    if (!inserted) {
      Error error = sqlite_failure(db, "INSERT");
      (void)step_done(rollback_.get());
      return tl::unexpected(std::move(error));
    }
    if (!step_done(commit_.get())) {
      Error error = sqlite_failure(db, "COMMIT");
      (void)step_done(rollback_.get());
      return tl::unexpected(std::move(error));
    }
    return {};
  }

 private:
  PlainSqlite(DbHandle db, std::array<StatementHandle, 4> stmts)
      : db_(std::move(db)),
        begin_(std::move(stmts[0])),
        insert_(std::move(stmts[1])),
        commit_(std::move(stmts[2])),
        rollback_(std::move(stmts[3])) {}

  // Steps a statement that returns no rows and resets it; false on failure.
  static bool step_done(sqlite3_stmt* stmt) {
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE;
  }

  DbHandle db_;  // declared first, so the statements are finalized before it closes
  StatementHandle begin_;
  StatementHandle insert_;
  StatementHandle commit_;
  StatementHandle rollback_;
};

Result<std::string> query_text(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) {
    sqlite3_finalize(raw);
    return tl::unexpected(sqlite_failure(db, sql));
  }
  const StatementHandle stmt(raw);
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) return tl::unexpected(sqlite_failure(db, sql));
  const unsigned char* text = sqlite3_column_text(stmt.get(), 0);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text));
}

Result<PlainSqlite> PlainSqlite::open(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbHandle db(raw);  // owns the handle even when open failed
  if (rc != SQLITE_OK) return fail(Errc::io, "open " + path + ": " + sqlite3_errstr(rc));
  auto mode = query_text(db.get(), "PRAGMA journal_mode = WAL");
  if (!mode) return tl::unexpected(mode.error());
  if (*mode != "wal") return fail(Errc::io, path + ": cannot switch to WAL mode");
  const char* setup =
      "PRAGMA synchronous = FULL;"
      "CREATE TABLE rows (k INTEGER PRIMARY KEY, body BLOB NOT NULL);";
  if (sqlite3_exec(db.get(), setup, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return tl::unexpected(sqlite_failure(db.get(), "setting up the baseline table"));
  }
  auto synchronous = query_text(db.get(), "PRAGMA synchronous");
  if (!synchronous) return tl::unexpected(synchronous.error());
  if (*synchronous != "2") return fail(Errc::io, path + ": synchronous is not FULL");
  const std::array<const char*, 4> sql = {
      "BEGIN IMMEDIATE", "INSERT INTO rows (k, body) VALUES (?1, ?2)", "COMMIT", "ROLLBACK"};
  std::array<StatementHandle, 4> stmts;
  for (std::size_t i = 0; i < sql.size(); ++i) {
    sqlite3_stmt* stmt = nullptr;
    const int prepared =
        sqlite3_prepare_v3(db.get(), sql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    stmts[i].reset(stmt);
    if (prepared != SQLITE_OK) return tl::unexpected(sqlite_failure(db.get(), sql[i]));
  }
  return PlainSqlite(std::move(db), std::move(stmts));
}

Result<Measurement> measure_baseline_in(const std::string& dir, Seconds target,
                                        std::span<const std::uint8_t> body) {
  auto db = PlainSqlite::open(dir + "/baseline.db");
  if (!db) return tl::unexpected(db.error());
  std::int64_t key = 0;
  auto step = [&]() -> Result<Clock::duration> {
    const Clock::time_point start = Clock::now();
    auto inserted = db->insert_row(++key, body);
    const Clock::duration took = Clock::now() - start;
    if (!inserted) return tl::unexpected(inserted.error());
    return took;
  };
  // One untimed row first: it creates the first WAL pages.
  if (auto warm = step(); !warm) return tl::unexpected(warm.error());
  return run_timed(target, 1, step);
}  // the database is closed here, before its directory goes

}  // namespace

Result<TempDir> TempDir::create(const std::string& parent) {
  std::string pattern = parent + "/ferry-bench-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    return fail(Errc::io,
                "cannot create a temp directory under " + parent + ": " + std::strerror(errno));
  }
  return TempDir(std::string(buffer.data()));
}

TempDir::TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

Result<void> TempDir::remove() {
  if (path_.empty()) return {};
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) return fail(Errc::io, "cannot remove " + path_ + ": " + ec.message());
  path_.clear();
  return {};
}

std::string case_number(std::uint64_t n) {
  FERRY_ASSERT(n <= case_number_max);
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "HN-2026-%08llu", static_cast<unsigned long long>(n));
  return text.data();
}

// msgpack-c throws; this adapter converts.
Result<std::vector<std::uint8_t>> pack_body(std::uint64_t n, std::size_t note_bytes) {
  try {
    std::string note;
    for (std::size_t i = 0; i < note_bytes; ++i) note.push_back(note_text[i % note_text.size()]);
    msgpack::sbuffer buffer(512);
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_map(5);
    pack_text(pk, "service");
    pack_text(pk, "household-registration");
    pack_text(pk, "applicant");
    pack_text(pk, "Chen Xiaoling");
    pack_text(pk, "station");
    pack_text(pk, "huaniao");
    pack_text(pk, "case");
    pack_text(pk, case_number(n));
    pack_text(pk, "note");
    pack_text(pk, note);
    const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
    return std::vector<std::uint8_t>(data, data + buffer.size());
  } catch (const std::exception& e) {
    return fail(Errc::io, std::string("packing a body: ") + e.what());
  }
}

Result<std::size_t> note_bytes_for_body() {
  for (std::size_t note_bytes = 0; note_bytes <= body_bytes; ++note_bytes) {
    auto body = pack_body(0, note_bytes);
    if (!body) return tl::unexpected(body.error());
    if (body->size() == body_bytes) return note_bytes;
  }
  return fail(Errc::limit_exceeded, "no note length gives a body of exactly 300 bytes");
}

Result<Measurement> measure_baseline(const std::string& parent, Seconds target) {
  auto dir = TempDir::create(parent);
  if (!dir) return tl::unexpected(dir.error());
  auto note_bytes = note_bytes_for_body();
  if (!note_bytes) return tl::unexpected(note_bytes.error());
  auto body = pack_body(0, *note_bytes);
  if (!body) return tl::unexpected(body.error());
  FERRY_ASSERT(body->size() == body_bytes);
  auto m = measure_baseline_in(dir->path(), target, *body);
  if (auto removed = dir->remove(); !removed) return tl::unexpected(removed.error());
  if (m) m->configuration = "plain SQLite, 1 row/commit";
  return m;
}

void print_table_header() {
  std::printf("%-28s %10s %8s %12s %10s\n", "configuration", "ops", "seconds", "ops/s", "vs base");
}

void print_row(const Measurement& m, double baseline_ops_per_second) {
  std::printf("%-28s %10llu %8.2f %12.0f %9.2fx\n", m.configuration.c_str(),
              static_cast<unsigned long long>(m.ops), m.elapsed.count(), m.ops_per_second(),
              m.ops_per_second() / baseline_ops_per_second);
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text.data();
}

Result<Seconds> parse_seconds(std::string_view option, const char* value) {
  char* end = nullptr;
  const double seconds = std::strtod(value, &end);
  if (end == value || *end != '\0' || !std::isfinite(seconds) || seconds < seconds_min ||
      seconds > seconds_max) {
    return fail(Errc::malformed,
                std::string(option) + " wants a number of seconds, not " + std::string(value));
  }
  return Seconds(seconds);
}

Result<std::uint64_t> parse_count(std::string_view option, const char* value, std::uint64_t low,
                                  std::uint64_t high) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(value, &end, 10);
  if (*value == '\0' || *value == '-' || *end != '\0' || n < low || n > high) {
    return fail(Errc::malformed, std::string(option) + " wants a whole number in " +
                                     std::to_string(low) + ".." + std::to_string(high) + ", not " +
                                     std::string(value));
  }
  return static_cast<std::uint64_t>(n);
}

Result<Options> parse_options(std::span<char*> args, Seconds seconds_default,
                              const ExtraOption& extra) {
  Options options;
  options.seconds = seconds_default;
  std::error_code ec;
  options.dir = std::filesystem::temp_directory_path(ec).string();
  if (ec) return fail(Errc::not_found, "no system temp directory: " + ec.message());
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      return options;
    }
    const auto unexpected = fail(Errc::malformed, "unexpected argument " + std::string(arg));
    if (i + 1 >= args.size() || !arg.starts_with("--")) return unexpected;
    const char* value = args[++i];
    if (arg == "--dir") {
      options.dir = value;
    } else if (arg == "--seconds") {
      auto seconds = parse_seconds(arg, value);
      if (!seconds) return tl::unexpected(seconds.error());
      options.seconds = *seconds;
    } else {
      auto taken = extra ? extra(arg, value) : Result<bool>(false);
      if (!taken) return tl::unexpected(taken.error());
      if (!*taken) return unexpected;
    }
  }
  return options;
}

}  // namespace ferry::bench
