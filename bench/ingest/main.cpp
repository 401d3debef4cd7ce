// ferry_bench_ingest: how fast a node stores its own ops durably, against plain SQLite.
//
// It measures OpStore::append with 300-byte msgpack bodies at group-commit batch sizes of 1, 16,
// 256 and 1024 ops per call, each on a fresh store in its own temp directory (WAL mode,
// synchronous=FULL, as the store sets them). In the same run it measures the baseline: plain
// SQLite through its C API on its own fresh file, same pragmas, one 300-byte row per transaction.
// Figures are reported as ratios to that baseline because the machines it runs on are shared and
// noisy. Every measurement is bounded in time (--seconds) and in ops. Any error ends the run with
// a non-zero exit status; temp directories are removed on every path that returns.
#include <sqlite3.h>
#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <filesystem>
#include <memory>
#include <msgpack.hpp>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "protocol/error.h"
#include "protocol/hlc.h"
#include "protocol/node_key.h"
#include "protocol/op.h"
#include "storage/op_store.h"

namespace {

using ferry::Errc;
using ferry::Error;
using ferry::fail;
using ferry::Result;
using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

constexpr std::size_t body_bytes = 300;
constexpr std::array<std::uint32_t, 4> batch_sizes = {1, 16, 256, 1024};
constexpr std::uint64_t ops_min = 1000;        // every figure rests on at least this many ops
constexpr std::uint64_t batches_min = 4;       // and on at least this many append calls
constexpr std::uint64_t ops_max = 50'000'000;  // hard bound on each measurement loop
constexpr double seconds_default = 2.0;
constexpr double seconds_min = 0.05;
constexpr double seconds_max = 600.0;
// The target for batched appends: 25k ops/s, about 8x a single-row FULL commit.
constexpr double target_ops_per_second = 25'000.0;
constexpr double target_ratio = 8.0;
constexpr std::string_view channel = "station/huaniao";
constexpr std::string_view kind = "case.submit";
constexpr std::string_view note_text =
    "Applicant brought the household booklet, an ID card and a rental contract; the clerk "
    "checked the originals, scanned them and returned them at the counter. ";

static_assert(ops_max < 100'000'000, "case numbers are printed with 8 digits");
static_assert(ops_min >= batches_min);

struct Options {
  Seconds seconds{seconds_default};
  std::string dir;
  bool help = false;
};

struct Measurement {
  std::string configuration;
  std::uint64_t ops = 0;
  Seconds elapsed{};
  double ops_per_second() const { return static_cast<double>(ops) / elapsed.count(); }
};

// A directory made with mkdtemp and removed with everything in it by remove() or the destructor.
class TempDir {
 public:
  [[nodiscard]] static Result<TempDir> create(const std::string& parent) {
    std::string pattern = parent + "/ferry-bench-XXXXXX";
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (::mkdtemp(buffer.data()) == nullptr) {
      return fail(Errc::io,
                  "cannot create a temp directory under " + parent + ": " + std::strerror(errno));
    }
    return TempDir(std::string(buffer.data()));
  }
  ~TempDir() { (void)remove(); }
  TempDir(TempDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  [[nodiscard]] Result<void> remove() {
    if (path_.empty()) return {};
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) return fail(Errc::io, "cannot remove " + path_ + ": " + ec.message());
    path_.clear();
    return {};
  }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

void pack_text(msgpack::packer<msgpack::sbuffer>& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

std::string case_number(std::uint64_t n) {
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "HN-2026-%08llu", static_cast<unsigned long long>(n));
  return text.data();
}

// The body of case n with note_bytes of note. msgpack-c throws; this adapter converts.
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

// The note length that makes a packed body exactly body_bytes long.
Result<std::size_t> note_bytes_for_body() {
  for (std::size_t note_bytes = 0; note_bytes <= body_bytes; ++note_bytes) {
    auto body = pack_body(0, note_bytes);
    if (!body) return tl::unexpected(body.error());
    if (body->size() == body_bytes) return note_bytes;
  }
  return fail(Errc::limit_exceeded, "no note length gives a body of exactly 300 bytes");
}

// Hands out batches of drafts with distinct keys and case numbers; reuses one vector.
class DraftSource {
 public:
  [[nodiscard]] static Result<DraftSource> create(std::uint32_t batch) {
    auto note_bytes = note_bytes_for_body();
    if (!note_bytes) return tl::unexpected(note_bytes.error());
    return DraftSource(batch, *note_bytes);
  }

  [[nodiscard]] Result<std::span<const ferry::OpDraft>> next() {
    for (ferry::OpDraft& draft : drafts_) {
      ++case_;
      auto body = pack_body(case_, note_bytes_);
      if (!body) return tl::unexpected(body.error());
      FERRY_ASSERT(body->size() == body_bytes);
      draft.key = "case/" + case_number(case_);
      draft.body = std::move(*body);
    }
    return std::span<const ferry::OpDraft>(drafts_);
  }

 private:
  DraftSource(std::uint32_t batch, std::size_t note_bytes)
      : drafts_(batch, ferry::OpDraft{std::string(channel), std::string(kind), "", {}, {}, {}}),
        note_bytes_(note_bytes) {}
  std::vector<ferry::OpDraft> drafts_;
  std::size_t note_bytes_;
  std::uint64_t case_ = 0;
};

// Calls step until both the time and the op minimum are reached, or ops_max. Each step returns
// the time of the work being measured, so preparing the next batch is not counted.
template <class Step>
Result<Measurement> run_timed(Seconds target, std::uint64_t ops_per_step, Step&& step) {
  FERRY_ASSERT(ops_per_step > 0);
  const std::uint64_t ops_floor = std::max(ops_min, batches_min * ops_per_step);
  Measurement m;
  Clock::duration busy{};
  for (std::uint64_t steps = 0; steps < ops_max / ops_per_step; ++steps) {
    auto took = step();
    if (!took) return tl::unexpected(took.error());
    busy += *took;
    m.ops += ops_per_step;
    if (busy >= target && m.ops >= ops_floor) break;
  }
  m.elapsed = std::chrono::duration_cast<Seconds>(busy);
  FERRY_ASSERT(m.elapsed.count() > 0);
  return m;
}

Result<Measurement> measure_append_in(const std::string& dir, Seconds target, std::uint32_t batch) {
  ferry::SystemWallClock wall;
  ferry::HybridClock clock(wall, std::chrono::seconds(60));
  const ferry::NodeKey key = ferry::NodeKey::generate();
  auto store = ferry::storage::OpStore::open(dir, wall);
  if (!store) return tl::unexpected(store.error());
  auto drafts = DraftSource::create(batch);
  if (!drafts) return tl::unexpected(drafts.error());
  auto step = [&]() -> Result<Clock::duration> {
    auto next = drafts->next();
    if (!next) return tl::unexpected(next.error());
    const Clock::time_point start = Clock::now();
    auto appended = (*store)->append(key, clock, *next);
    const Clock::duration took = Clock::now() - start;
    if (!appended) return tl::unexpected(appended.error());
    FERRY_ASSERT(appended->size() == batch);
    return took;
  };
  // One untimed batch first: it creates the feed and the first WAL pages.
  if (auto warm = step(); !warm) return tl::unexpected(warm.error());
  auto m = run_timed(target, batch, step);
  if (!m) return m;
  const std::uint64_t stored = m->ops + batch;
  FERRY_ASSERT((*store)->op_count() == stored);
  FERRY_ASSERT((*store)->head(ferry::FeedId{key.public_key(), std::string(channel)}).seq == stored);
  m->configuration = "append, batch " + std::to_string(batch);
  return m;
}

Result<Measurement> measure_append(const Options& options, std::uint32_t batch) {
  auto dir = TempDir::create(options.dir);
  if (!dir) return tl::unexpected(dir.error());
  auto m = measure_append_in(dir->path(), options.seconds, batch);  // the store is closed here
  if (auto removed = dir->remove(); !removed) return tl::unexpected(removed.error());
  return m;
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

Result<Measurement> measure_baseline(const Options& options) {
  auto dir = TempDir::create(options.dir);
  if (!dir) return tl::unexpected(dir.error());
  auto note_bytes = note_bytes_for_body();
  if (!note_bytes) return tl::unexpected(note_bytes.error());
  auto body = pack_body(0, *note_bytes);
  if (!body) return tl::unexpected(body.error());
  FERRY_ASSERT(body->size() == body_bytes);
  Result<Measurement> m;
  {
    auto db = PlainSqlite::open(dir->path() + "/baseline.db");
    if (!db) return tl::unexpected(db.error());
    std::int64_t key = 0;
    auto step = [&]() -> Result<Clock::duration> {
      const Clock::time_point start = Clock::now();
      auto inserted = db->insert_row(++key, *body);
      const Clock::duration took = Clock::now() - start;
      if (!inserted) return tl::unexpected(inserted.error());
      return took;
    };
    if (auto warm = step(); !warm) return tl::unexpected(warm.error());  // as for the store
    m = run_timed(options.seconds, 1, step);
  }  // the database is closed before its directory goes
  if (auto removed = dir->remove(); !removed) return tl::unexpected(removed.error());
  if (m) m->configuration = "plain SQLite, 1 row/commit";
  return m;
}

std::string utc_now() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::array<char, 32> text{};
  std::strftime(text.data(), text.size(), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return text.data();
}

void print_row(const Measurement& m, double baseline_ops_per_second) {
  std::printf("%-28s %10llu %8.2f %12.0f %9.2fx\n", m.configuration.c_str(),
              static_cast<unsigned long long>(m.ops), m.elapsed.count(), m.ops_per_second(),
              m.ops_per_second() / baseline_ops_per_second);
}

void print_report(const std::vector<Measurement>& results, Seconds run_time) {
  FERRY_ASSERT(!results.empty());
  const double baseline = results.front().ops_per_second();
  std::printf("%-28s %10s %8s %12s %10s\n", "configuration", "ops", "seconds", "ops/s", "vs base");
  for (const Measurement& m : results) print_row(m, baseline);
  const Measurement& best = results.back();
  const bool met = best.ops_per_second() >= target_ops_per_second &&
                   best.ops_per_second() / baseline >= target_ratio;
  std::printf("\nbaseline: %.0f rows/s (plain SQLite, WAL, synchronous=FULL, 1 row per commit)\n",
              baseline);
  std::printf("target (%s >= %.0f ops/s and >= %.0fx baseline): %s\n", best.configuration.c_str(),
              target_ops_per_second, target_ratio, met ? "met" : "NOT met");
  std::printf("run finished %s, took %.1f s\n", utc_now().c_str(), run_time.count());
}

Result<int> run(const Options& options) {
  const Clock::time_point start = Clock::now();
  std::printf("ferry_bench_ingest: started %s, sqlite %s, %u hardware threads\n", utc_now().c_str(),
              sqlite3_libversion(), std::thread::hardware_concurrency());
  std::printf("temp parent %s, %.2f s per measurement, %zu-byte msgpack bodies\n\n",
              options.dir.c_str(), options.seconds.count(), body_bytes);
  std::fflush(stdout);
  std::vector<Measurement> results;
  auto baseline = measure_baseline(options);
  if (!baseline) return tl::unexpected(baseline.error());
  results.push_back(std::move(*baseline));
  for (std::uint32_t batch : batch_sizes) {
    auto m = measure_append(options, batch);
    if (!m) return tl::unexpected(m.error());
    results.push_back(std::move(*m));
  }
  print_report(results, std::chrono::duration_cast<Seconds>(Clock::now() - start));
  return 0;
}

void print_usage() {
  std::fprintf(stderr,
               "usage: ferry_bench_ingest [--seconds S] [--dir PARENT]\n"
               "  --seconds S   time per measurement, %.2f..%.0f (default %.1f)\n"
               "  --dir PARENT  where the temp directories go (default: the system temp dir)\n",
               seconds_min, seconds_max, seconds_default);
}

Result<Options> parse_options(std::span<char*> args) {
  Options options;
  std::error_code ec;
  options.dir = std::filesystem::temp_directory_path(ec).string();
  if (ec) return fail(Errc::not_found, "no system temp directory: " + ec.message());
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      options.help = true;
      return options;
    }
    if (i + 1 >= args.size() || (arg != "--seconds" && arg != "--dir")) {
      return fail(Errc::malformed, "unexpected argument " + std::string(arg));
    }
    const char* value = args[++i];
    if (arg == "--dir") {
      options.dir = value;
      continue;
    }
    char* end = nullptr;
    const double seconds = std::strtod(value, &end);
    if (end == value || *end != '\0' || !std::isfinite(seconds) || seconds < seconds_min ||
        seconds > seconds_max) {
      return fail(Errc::malformed,
                  "--seconds wants a number of seconds, not " + std::string(value));
    }
    options.seconds = Seconds(seconds);
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto options = parse_options(std::span<char*>(argv, static_cast<std::size_t>(argc)));
    if (!options) {
      std::fprintf(stderr, "ferry_bench_ingest: %s\n", options.error().detail.c_str());
      print_usage();
      return 2;
    }
    if (options->help) {
      print_usage();
      return 0;
    }
    auto status = run(*options);
    if (!status) {
      std::fprintf(stderr, "ferry_bench_ingest: %s\n", ferry::to_string(status.error()).c_str());
      return 1;
    }
    return *status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ferry_bench_ingest: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "ferry_bench_ingest: unknown exception\n");
  }
  return 1;
}
