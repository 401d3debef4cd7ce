// What the benchmarks share: temp directories, the 300-byte case body, the plain-SQLite baseline,
// the timing loop and the --seconds/--dir options.
//
// Every benchmark reports its figures as ratios to one baseline measured in the same run: plain
// SQLite through its C API, WAL, synchronous=FULL, one 300-byte row per transaction. The machines
// are shared and noisy, so an absolute figure alone says little. Nothing here throws: msgpack-c
// is called through an adapter that converts, and failures are Result values. Single-threaded:
// each function is used by the thread that calls it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/error.h"

namespace ferry::bench {

using Clock = std::chrono::steady_clock;
using Seconds = std::chrono::duration<double>;

// Every body the benchmarks store is a msgpack map of exactly this many bytes.
inline constexpr std::size_t body_bytes = 300;
// Bounds of the timing loop (run_timed) and so of the baseline.
inline constexpr std::uint64_t ops_min = 1000;   // every figure rests on at least this many ops
inline constexpr std::uint64_t batches_min = 4;  // and on at least this many steps
inline constexpr std::uint64_t ops_max = 50'000'000;  // hard bound on each measurement loop
// Case numbers are printed with a fixed width so that every body has the same size.
inline constexpr std::uint64_t case_number_max = 99'999'999;
inline constexpr double seconds_min = 0.05;
inline constexpr double seconds_max = 600.0;

static_assert(ops_max < case_number_max, "case numbers are printed with 8 digits");
static_assert(ops_min >= batches_min);

struct Measurement {
  std::string configuration;
  std::uint64_t ops = 0;
  Seconds elapsed{};
  double ops_per_second() const { return static_cast<double>(ops) / elapsed.count(); }
};

// A directory made with mkdtemp and removed with everything in it by remove() or the destructor.
class TempDir {
 public:
  [[nodiscard]] static Result<TempDir> create(const std::string& parent);
  ~TempDir() { (void)remove(); }
  TempDir(TempDir&& other) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  [[nodiscard]] Result<void> remove();
  // Leaves the directory and everything in it in place (for inspection) and returns its path;
  // the destructor then removes nothing.
  std::string keep() { return std::exchange(path_, {}); }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// "HN-2026-00000042": the case number n, always 16 characters. n <= case_number_max.
std::string case_number(std::uint64_t n);

// The body of case n, a msgpack map {"service", "applicant", "station", "case", "note"}, with
// note_bytes of note padding.
[[nodiscard]] Result<std::vector<std::uint8_t>> pack_body(std::uint64_t n, std::size_t note_bytes);

// The note length that makes a packed body exactly body_bytes long.
[[nodiscard]] Result<std::size_t> note_bytes_for_body();

// Calls step until both the time and the op minimum are reached, or ops_max. Each step returns
// the time of the work being measured, so preparing the next step is not counted.
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

// The baseline: in a fresh temp directory under `parent`, plain SQLite (WAL, synchronous=FULL)
// inserts one 300-byte row per BEGIN IMMEDIATE ... COMMIT, after one untimed row, for `target`
// and at least ops_min rows. Reported as rows/s in ops_per_second(); the directory is removed.
[[nodiscard]] Result<Measurement> measure_baseline(const std::string& parent, Seconds target);

// The table every benchmark prints: configuration, ops, seconds, ops/s and the ratio to the
// baseline's rows/s.
void print_table_header();
void print_row(const Measurement& m, double baseline_ops_per_second);

// The current time as "YYYY-MM-DD HH:MM:SS UTC".
std::string utc_now();

struct Options {
  Seconds seconds{};
  std::string dir;  // parent of the temp directories; default: the system temp directory
  bool help = false;
};

// Handles an option the shared parser does not know: (name, value) → true when taken, false
// when unknown, or an error for a bad value.
using ExtraOption = std::function<Result<bool>(std::string_view name, const char* value)>;

// Parses --seconds S, --dir PARENT, --help/-h and, through `extra`, the program's own
// "--name value" options. Errc::malformed names the offending argument.
[[nodiscard]] Result<Options> parse_options(std::span<char*> args, Seconds seconds_default,
                                            const ExtraOption& extra = {});

// A number of seconds in [seconds_min, seconds_max]; the error names `option`.
[[nodiscard]] Result<Seconds> parse_seconds(std::string_view option, const char* value);

// A whole number in [low, high]; the error names `option`.
[[nodiscard]] Result<std::uint64_t> parse_count(std::string_view option, const char* value,
                                                std::uint64_t low, std::uint64_t high);

// The main() of a benchmark program: parses the arguments (exit 2 and the usage for bad ones),
// prints the usage for --help (exit 0), runs; a failure or an exception is printed after the
// program's name (exit 1); otherwise the exit status is what run returned.
template <class Options>
int bench_main(const char* name, int argc, char** argv,
               const std::function<Result<Options>(std::span<char*>)>& parse,
               const std::function<bool(const Options&)>& wants_help, void (*print_usage)(),
               const std::function<Result<int>(Options&)>& run) {
  try {
    auto options = parse(std::span<char*>(argv, static_cast<std::size_t>(argc)));
    if (!options) {
      std::fprintf(stderr, "%s: %s\n", name, options.error().detail.c_str());
      print_usage();
      return 2;
    }
    if (wants_help(*options)) {
      print_usage();
      return 0;
    }
    auto status = run(*options);
    if (!status) {
      std::fprintf(stderr, "%s: %s\n", name, to_string(status.error()).c_str());
      return 1;
    }
    return *status;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name, e.what());
  } catch (...) {
    std::fprintf(stderr, "%s: unknown exception\n", name);
  }
  return 1;
}

}  // namespace ferry::bench
