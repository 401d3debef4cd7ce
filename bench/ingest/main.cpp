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

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench/support/bench_support.h"
#include "protocol/error.h"
#include "protocol/hlc.h"
#include "protocol/node_key.h"
#include "protocol/op.h"
#include "storage/op_store.h"

namespace {

using ferry::Result;
using ferry::bench::bench_main;
using ferry::bench::body_bytes;
using ferry::bench::case_number;
using ferry::bench::Clock;
using ferry::bench::measure_baseline;
using ferry::bench::Measurement;
using ferry::bench::note_bytes_for_body;
using ferry::bench::Options;
using ferry::bench::pack_body;
using ferry::bench::parse_options;
using ferry::bench::print_row;
using ferry::bench::print_table_header;
using ferry::bench::run_timed;
using ferry::bench::Seconds;
using ferry::bench::seconds_max;
using ferry::bench::seconds_min;
using ferry::bench::TempDir;
using ferry::bench::utc_now;

constexpr std::array<std::uint32_t, 4> batch_sizes = {1, 16, 256, 1024};
constexpr double seconds_default = 2.0;
// The target for batched appends: 25k ops/s, about 8x a single-row FULL commit.
constexpr double target_ops_per_second = 25'000.0;
constexpr double target_ratio = 8.0;
constexpr std::string_view channel = "station/huaniao";
constexpr std::string_view kind = "case.submit";

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

void print_report(const std::vector<Measurement>& results, Seconds run_time) {
  FERRY_ASSERT(!results.empty());
  const double baseline = results.front().ops_per_second();
  print_table_header();
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
  auto baseline = measure_baseline(options.dir, options.seconds);
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

}  // namespace

int main(int argc, char** argv) {
  return bench_main<Options>(
      "ferry_bench_ingest", argc, argv,
      [](std::span<char*> args) { return parse_options(args, Seconds(seconds_default)); },
      [](const Options& o) { return o.help; }, print_usage, [](Options& o) { return run(o); });
}
