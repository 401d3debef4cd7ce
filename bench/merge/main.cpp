// ferry_bench_merge: what folding ops into records (the CRDT merge) adds to the cost of ingesting
// them, measured in one run against a plain ingest of the very same ops.
//
// It makes a history in memory first (bench/merge/history.h: by default 100,000 signed ops of 4
// origins over 1,000 records of one channel, with real merge parts and deps, and concurrent
// writes), untimed. Then it ingests all of it, in batches (default 1,024), into a fresh store
// with StoreOptions::merge_records off (the baseline: verify, chain check, insert, commit) and
// into another fresh store with it on (the same, plus the merge in the same transaction). By
// default it ingests as ferryd stores a peer's batches: a SigningPool verifies the next batches
// while OpStore::ingest_verified stores one, and the whole pipeline is timed; --verify inline
// calls OpStore::ingest (verify, then store) and times only those calls. After each run it
// checks what the store holds;
// after the merged run also that nothing is pending, that every record and the digests equal the
// generator's in-memory fold, and that rebuild_records() reaches the same digests. A failed check
// or any error ends the run with exit status 1 (2 for bad arguments); a missed goal does not:
// this is a benchmark, not a test, and it is not registered with ctest. Temp directories are
// removed on every path that returns.
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <future>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench/merge/history.h"
#include "bench/support/bench_support.h"
#include "protocol/batch_signer.h"
#include "protocol/error.h"
#include "protocol/hex.h"
#include "protocol/hlc.h"
#include "protocol/merge.h"
#include "protocol/node_key.h"
#include "protocol/op.h"
#include "storage/op_store.h"

namespace {

using ferry::Errc;
using ferry::fail;
using ferry::Result;
using ferry::SignedOp;
using ferry::storage::OpStore;
using ferry::storage::StoreOptions;
using namespace ferry::bench;

constexpr std::string_view program = "ferry_bench_merge";
constexpr std::string_view channel = "station/huaniao";
constexpr std::uint64_t ops_default = 100'000;
constexpr std::uint64_t ops_floor = 1'000;
constexpr std::uint64_t ops_ceiling = 1'000'000;  // the history is held in memory
constexpr std::uint64_t keys_default = 1'000;
constexpr std::uint64_t keys_ceiling = 100'000;
constexpr std::uint64_t batch_default = 1'024;
constexpr std::uint64_t batch_ceiling = 10'000;
constexpr std::uint64_t rounds_default = 1;
constexpr std::uint64_t rounds_ceiling = 10;
constexpr std::uint64_t seed_default = 20'261'129;
constexpr std::size_t sign_threads = 2;
// --verify background: batches handed to the pool ahead of the one being stored (ferryd allows
// a peer up to verifying_batches_max = 64; a few keep both cores busy here).
constexpr std::size_t verify_ahead = 4;
// The goal: the merge adds at most 30% to the time of a plain ingest.
constexpr double goal_added = 0.30;

static_assert(ops_ceiling <= ops_max);
static_assert(keys_ceiling <= case_number_max);

struct MergeOptions {
  std::string dir;
  std::uint64_t ops = ops_default;
  std::uint64_t keys = keys_default;
  std::uint64_t batch = batch_default;
  std::uint64_t rounds = rounds_default;
  std::uint64_t seed = seed_default;
  bool feed_order = false;     // --order feeds: feed by feed, as a catch-up sync sends
  bool verify_inline = false;  // --verify inline: OpStore::ingest verifies, then stores
  bool help = false;
};

struct Round {
  Measurement plain;
  Measurement merged;
  Seconds rebuild{};
};

// This benchmark's size is its history (--ops), not a time: the shared --seconds is refused.
Result<MergeOptions> parse_merge_options(std::span<char*> args) {
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (std::string_view(args[i]) == "--seconds") {
      return fail(Errc::malformed, "--seconds does not apply: the run ingests --ops ops");
    }
  }
  MergeOptions out;
  struct CountOption {
    std::string_view name;
    std::uint64_t* target;
    std::uint64_t low;
    std::uint64_t high;
  };
  const std::array<CountOption, 5> counts = {{
      {"--ops", &out.ops, ops_floor, ops_ceiling},
      {"--keys", &out.keys, 1, keys_ceiling},
      {"--batch", &out.batch, 1, batch_ceiling},
      {"--rounds", &out.rounds, 1, rounds_ceiling},
      {"--seed", &out.seed, 0, std::numeric_limits<std::uint64_t>::max()},
  }};
  auto extra = [&out, &counts](std::string_view name, const char* value) -> Result<bool> {
    if (name == "--order") {
      const std::string_view order = value;
      if (order != "interleaved" && order != "feeds") {
        return fail(Errc::malformed,
                    "--order wants interleaved or feeds, not " + std::string(order));
      }
      out.feed_order = order == "feeds";
      return true;
    }
    if (name == "--verify") {
      const std::string_view verify = value;
      if (verify != "background" && verify != "inline") {
        return fail(Errc::malformed,
                    "--verify wants background or inline, not " + std::string(verify));
      }
      out.verify_inline = verify == "inline";
      return true;
    }
    for (const CountOption& option : counts) {
      if (name != option.name) continue;
      auto n = parse_count(name, value, option.low, option.high);
      if (!n) return tl::unexpected(n.error());
      *option.target = *n;
      return true;
    }
    return false;
  };
  auto common = parse_options(args, Seconds(1.0), extra);
  if (!common) return tl::unexpected(common.error());
  out.dir = common->dir;
  out.help = common->help;
  if (out.keys > out.ops) return fail(Errc::malformed, "--keys must not exceed --ops");
  return out;
}

tl::unexpected<ferry::Error> check_failed(const std::string& what) {
  return fail(Errc::corrupt, "check failed: " + what);
}

// The 1, 5 and 15 minute load averages: the runs share their two cores with other work.
std::string load_average() {
  std::array<double, 3> load{};
  if (getloadavg(load.data(), static_cast<int>(load.size())) != static_cast<int>(load.size())) {
    return "unknown";
  }
  std::array<char, 64> text{};
  std::snprintf(text.data(), text.size(), "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return text.data();
}

// Times only the ingest calls; every op of every batch must be stored.
// Every op of the batch at `first` was stored, none rejected or already held.
Result<void> check_batch(const Result<ferry::storage::IngestReport>& report, std::size_t first,
                         std::size_t size) {
  if (!report) return tl::unexpected(report.error());
  if (!report->rejected.empty()) {
    const auto& r = report->rejected.front();
    return check_failed("op " + std::to_string(first + r.index) +
                        " was rejected: " + ferry::to_string(r.error));
  }
  if (report->stored != size || report->duplicates != 0) {
    return check_failed("the batch at op " + std::to_string(first) + " stored " +
                        std::to_string(report->stored) + " of " + std::to_string(size));
  }
  return {};
}

// --verify inline: OpStore::ingest verifies each batch's signatures (on sign_threads threads)
// and then stores it; only the ingest calls are timed.
Result<Measurement> ingest_inline(OpStore& store, std::span<const SignedOp> ops,
                                  std::size_t batch) {
  Measurement m;
  Clock::duration busy{};
  for (std::size_t first = 0; first < ops.size(); first += batch) {
    const auto part = ops.subspan(first, std::min(batch, ops.size() - first));
    const Clock::time_point start = Clock::now();
    auto report = store.ingest(part);
    busy += Clock::now() - start;
    if (auto checked = check_batch(report, first, part.size()); !checked) {
      return tl::unexpected(checked.error());
    }
    m.ops += part.size();
  }
  m.elapsed = std::chrono::duration_cast<Seconds>(busy);
  FERRY_ASSERT(m.elapsed.count() > 0);
  return m;
}

// --verify background (the default): as ferryd stores a peer's batches (docs/protocol.md,
// "Receiving"). A SigningPool of sign_threads threads verifies the next batches, up to
// verify_ahead of them, while this thread stores the oldest verified one with ingest_verified.
// The batches are copied into the shared vectors the pool wants before the clock starts; the
// time runs from the first batch handed to the pool until the last one is committed.
Result<Measurement> ingest_background(OpStore& store, std::span<const SignedOp> ops,
                                      std::size_t batch) {
  std::vector<std::shared_ptr<const std::vector<SignedOp>>> batches;
  for (std::size_t first = 0; first < ops.size(); first += batch) {
    const auto part = ops.subspan(first, std::min(batch, ops.size() - first));
    batches.push_back(std::make_shared<const std::vector<SignedOp>>(part.begin(), part.end()));
  }
  const ferry::NodeKey key = ferry::NodeKey::generate();  // the pool signs nothing here
  ferry::SigningPool pool(key, sign_threads);
  std::deque<std::future<std::vector<Result<void>>>> verifying;
  std::size_t handed = 0;
  Measurement m;
  const Clock::time_point start = Clock::now();
  for (std::size_t next = 0; next < batches.size(); ++next) {
    while (handed < batches.size() && handed < next + verify_ahead) {
      verifying.push_back(pool.verify(batches[handed++], {}));
    }
    std::vector<Result<void>> verified = verifying.front().get();
    verifying.pop_front();
    const std::vector<SignedOp>& part = *batches[next];
    auto report = store.ingest_verified(part, verified, ferry::storage::IngestMode::keep_good);
    if (auto checked = check_batch(report, next * batch, part.size()); !checked) {
      return tl::unexpected(checked.error());  // the pool finishes what it holds, then joins
    }
    m.ops += part.size();
  }
  m.elapsed = std::chrono::duration_cast<Seconds>(Clock::now() - start);
  FERRY_ASSERT(m.elapsed.count() > 0);
  return m;
}

// The store holds every op, each feed up to its last seq.
Result<void> check_feeds(const OpStore& store, const History& history) {
  if (store.op_count() != history.ops.size()) {
    return check_failed("op_count " + std::to_string(store.op_count()) + ", expected " +
                        std::to_string(history.ops.size()));
  }
  for (const HistoryOrigin& origin : history.origins) {
    const auto head = store.head(ferry::FeedId{origin.key, history.channel});
    if (head.seq != origin.ops) {
      return check_failed(origin.name + "'s feed head at seq " + std::to_string(head.seq) +
                          ", expected " + std::to_string(origin.ops));
    }
  }
  return {};
}

// Nothing pending; the digests and every record equal the in-memory fold; the conflicts listed
// are the fold's.
Result<ferry::storage::Digests> check_records(OpStore& store, const History& history) {
  if (store.pending_count() != 0) {
    return check_failed(std::to_string(store.pending_count()) + " ops still pending");
  }
  auto digests = store.digests();
  if (!digests) return tl::unexpected(digests.error());
  const auto it = digests->channels.find(history.channel);
  if (digests->channels.size() != 1 || it == digests->channels.end() ||
      it->second != history.digest || digests->node != history.digest) {
    return check_failed("the store's digests differ from the in-memory fold's " +
                        ferry::to_hex(history.digest));
  }
  for (const auto& [key, state] : history.records) {
    auto record = store.record(history.channel, key);
    if (!record) return tl::unexpected(record.error());
    if (record->state != state) return check_failed("record " + key + " differs from the fold");
  }
  auto conflicted = store.conflicted(history.records.size() + 1);
  if (!conflicted) return tl::unexpected(conflicted.error());
  if (conflicted->size() != history.stats.conflicted_records) {
    return check_failed(std::to_string(conflicted->size()) + " records with conflicts, expected " +
                        std::to_string(history.stats.conflicted_records));
  }
  return digests;
}

// rebuild_records() folds every op again and reaches the same digests. Returns its time.
Result<Seconds> check_rebuild(OpStore& store, const History& history,
                              const ferry::storage::Digests& before) {
  const Clock::time_point start = Clock::now();
  auto report = store.rebuild_records();
  const Seconds took = std::chrono::duration_cast<Seconds>(Clock::now() - start);
  if (!report) return tl::unexpected(report.error());
  if (report->ops != history.ops.size() || report->records != history.records.size() ||
      report->pending != 0) {
    return check_failed("rebuild folded " + std::to_string(report->ops) + " ops into " +
                        std::to_string(report->records) + " records with " +
                        std::to_string(report->pending) + " pending");
  }
  auto after = store.digests();
  if (!after) return tl::unexpected(after.error());
  if (after->node != before.node || after->channels != before.channels) {
    return check_failed("the digests after rebuild_records differ from the incremental merge's");
  }
  return took;
}

// One ingest of every op into a fresh store in its own temp directory; with merge, the checks of
// the records and of rebuild (whose time goes to *rebuild).
Result<Measurement> measure(const MergeOptions& options, const History& history,
                            std::span<const SignedOp> ops, bool merge, Seconds* rebuild) {
  auto dir = TempDir::create(options.dir);
  if (!dir) return tl::unexpected(dir.error());
  auto run = [&]() -> Result<Measurement> {
    ferry::SystemWallClock wall;
    StoreOptions store_options;
    store_options.merge_records = merge;
    auto store = OpStore::open(dir->path(), wall, store_options);
    if (!store) return tl::unexpected(store.error());
    auto m = options.verify_inline ? ingest_inline(**store, ops, options.batch)
                                   : ingest_background(**store, ops, options.batch);
    if (!m) return m;
    if (auto feeds = check_feeds(**store, history); !feeds) return tl::unexpected(feeds.error());
    if (!merge) return m;
    auto digests = check_records(**store, history);
    if (!digests) return tl::unexpected(digests.error());
    auto rebuilt = check_rebuild(**store, history, *digests);
    if (!rebuilt) return tl::unexpected(rebuilt.error());
    *rebuild = *rebuilt;
    return m;
  };
  auto m = run();  // the store is closed here, before its directory goes
  if (auto removed = dir->remove(); !removed) return tl::unexpected(removed.error());
  return m;
}

// Odd rounds ingest plain first, even rounds merged first, so that neither always runs on a
// colder cache or a busier disk.
Result<Round> measure_round(const MergeOptions& options, const History& history,
                            std::span<const SignedOp> ops, std::uint64_t number) {
  Round round;
  const bool plain_first = number % 2 == 1;
  for (int pass = 0; pass < 2; ++pass) {
    const bool merge = (pass == 0) != plain_first;
    auto m = measure(options, history, ops, merge, &round.rebuild);
    if (!m) return tl::unexpected(m.error());
    m->configuration = std::string(merge ? "ingest + merge" : "ingest, plain") + " (round " +
                       std::to_string(number) + ")";
    (merge ? round.merged : round.plain) = std::move(*m);
    std::printf("  round %llu: %s done\n", static_cast<unsigned long long>(number),
                merge ? "ingest + merge" : "plain ingest");
    std::fflush(stdout);
  }
  return round;
}

// Signature verification alone, on one thread as OpStore::ingest does it: the part of both runs
// that the merge does not touch.
Result<Seconds> time_verify(std::span<const SignedOp> ops) {
  const Clock::time_point start = Clock::now();
  for (const SignedOp& op : ops) {
    if (auto ok = ferry::verify_op(op.op, op.signature); !ok) return tl::unexpected(ok.error());
  }
  return std::chrono::duration_cast<Seconds>(Clock::now() - start);
}

double per_second(std::uint64_t n, Seconds s) { return static_cast<double>(n) / s.count(); }

void print_history(const History& h, const MergeOptions& options) {
  const auto& s = h.stats;
  const auto n = h.ops.size();
  std::printf("history: %zu ops from %zu origins over %zu keys of %s, seed %llu, order %s\n", n,
              h.origins.size(), h.records.size(), h.channel.c_str(),
              static_cast<unsigned long long>(options.seed),
              options.feed_order ? "feeds (feed by feed)" : "interleaved (as written)");
  for (const HistoryOrigin& o : h.origins) {
    std::printf("  %-16s %8llu ops  %s\n", o.name.c_str(), static_cast<unsigned long long>(o.ops),
                ferry::to_hex(o.key).substr(0, 16).c_str());
  }
  std::printf(
      "  %.0f bytes per op on average; %llu set fields, %llu ops with inc, %llu with add, "
      "%llu with del\n",
      static_cast<double>(s.op_bytes) / static_cast<double>(n),
      static_cast<unsigned long long>(s.set_writes), static_cast<unsigned long long>(s.inc_ops),
      static_cast<unsigned long long>(s.add_ops), static_cast<unsigned long long>(s.del_ops));
  std::printf(
      "  %llu ops (%.1f%%) written on stale heads; afterwards %llu records hold %llu "
      "conflicting fields; at most %zu heads\n",
      static_cast<unsigned long long>(s.stale_deps_ops),
      100.0 * static_cast<double>(s.stale_deps_ops) / static_cast<double>(n),
      static_cast<unsigned long long>(s.conflicted_records),
      static_cast<unsigned long long>(s.conflicted_fields), s.heads_max);
  std::printf(
      "  made untimed: Op::build %.2f s, sign_ops %.2f s (%zu threads), in-memory fold "
      "%.2f s (%.0f ops/s: merge_op_of + context_of + apply, no storage)\n",
      s.build_time.count(), s.sign_time.count(), sign_threads, s.fold_time.count(),
      per_second(n, s.fold_time));
}

void print_report(const std::vector<Round>& rounds, Seconds verify, std::uint64_t ops,
                  bool verify_inline) {
  print_table_header();
  Seconds plain{}, merged{}, rebuild{};
  std::uint64_t counted = 0;
  for (const Round& r : rounds) {
    print_row(r.plain, r.plain.ops_per_second());
    print_row(r.merged, r.plain.ops_per_second());
    plain += r.plain.elapsed;
    merged += r.merged.elapsed;
    rebuild += r.rebuild;
    counted += r.merged.ops;
  }
  const double added = merged / plain - 1.0;
  const Seconds verify_all = verify * static_cast<double>(rounds.size());
  std::printf("\nplain ingest:   %.0f ops/s (merge_records=false: verify, chain, insert, commit)\n",
              per_second(counted, plain));
  std::printf("ingest + merge: %.0f ops/s = ops merged per second during ingest\n",
              per_second(counted, merged));
  std::printf("merge adds %.1f%% to the time of a plain ingest (%.2f s over %.2f s)\n",
              100.0 * added, (merged - plain).count(), plain.count());
  if (verify_inline) {
    // Verification was timed apart from the ingests, so this split is only an estimate.
    const Seconds rest = plain - verify_all;
    std::printf("  signature verification alone took %.2f s per ingest, %.0f%% of a plain one",
                verify.count(), 100.0 * verify_all / plain);
    if (rest > 0.1 * plain) {
      std::printf("; of the rest (chain check, insert, commit) the merge adds about %.0f%%\n",
                  100.0 * (merged - plain) / rest);
    } else {
      std::printf("; too little is left of the rest to compare the merge with it\n");
    }
  } else {
    std::printf(
        "  signatures verified on the pool's %zu threads beside the stores (verifying them "
        "all on 1 thread alone took %.2f s)\n",
        sign_threads, verify.count());
  }
  std::printf("rebuild_records: %.0f ops/s (%.2f s per rebuild), digests equal\n",
              per_second(ops * rounds.size(), rebuild), rebuild.count() / rounds.size());
  std::printf("goal (merge adds <= %.0f%% to a plain ingest): %s\n", 100.0 * goal_added,
              added <= goal_added ? "met" : "NOT met");
}

Result<int> run(const MergeOptions& options) {
  const Clock::time_point start = Clock::now();
  std::printf("%s: started %s, sqlite %s, %u hardware threads, load average %s\n",
              std::string(program).c_str(), utc_now().c_str(), sqlite3_libversion(),
              std::thread::hardware_concurrency(), load_average().c_str());
  std::printf("temp parent %s, %llu ops per ingest call, %llu round(s), verify %s\n",
              options.dir.c_str(), static_cast<unsigned long long>(options.batch),
              static_cast<unsigned long long>(options.rounds),
              options.verify_inline ? "inline (OpStore::ingest)"
                                    : "in the background (SigningPool + ingest_verified)");
  std::fflush(stdout);
  auto history = make_history(HistoryOptions{std::string(channel), options.ops,
                                             static_cast<std::uint32_t>(options.keys), options.seed,
                                             sign_threads});
  if (!history) return tl::unexpected(history.error());
  if (options.feed_order) sort_by_feed(history->ops);
  print_history(*history, options);
  auto verify = time_verify(history->ops);
  if (!verify) return tl::unexpected(verify.error());
  std::printf("signature verification alone: %.2f s, %.0f ops/s (verify_op, 1 thread)\n\n",
              verify->count(), per_second(options.ops, *verify));
  std::fflush(stdout);
  std::vector<Round> rounds;
  for (std::uint64_t r = 1; r <= options.rounds; ++r) {
    auto round = measure_round(options, *history, history->ops, r);
    if (!round) return tl::unexpected(round.error());
    rounds.push_back(std::move(*round));
  }
  std::printf(
      "checks: op_count, feed heads, pending 0, digests and every record equal to the "
      "in-memory fold, conflicts, rebuild_records: all passed\n\n");
  print_report(rounds, *verify, options.ops, options.verify_inline);
  std::printf("run finished %s, load average %s, took %.1f s\n", utc_now().c_str(),
              load_average().c_str(),
              std::chrono::duration_cast<Seconds>(Clock::now() - start).count());
  return 0;
}

void print_usage() {
  std::fprintf(
      stderr,
      "usage: ferry_bench_merge [--ops N] [--keys N] [--batch N] [--rounds N] [--seed S]\n"
      "                         [--order interleaved|feeds] [--verify background|inline]\n"
      "                         [--dir PARENT]\n"
      "  --ops N       ops in the history, %llu..%llu (default %llu)\n"
      "  --keys N      records they write, 1..%llu and at most --ops (default %llu)\n"
      "  --batch N     ops per OpStore::ingest call, 1..%llu (default %llu)\n"
      "  --rounds N    plain and merged ingests to run, 1..%llu (default %llu)\n"
      "  --seed S      the history's shape (default %llu)\n"
      "  --order O     interleaved: as written (default); feeds: feed by feed\n"
      "  --verify V    background: a pool verifies the next batches while one is stored, as\n"
      "                ferryd does (default); inline: OpStore::ingest verifies, then stores\n"
      "  --dir PARENT  where the temp directories go (default: the system temp dir)\n",
      static_cast<unsigned long long>(ops_floor), static_cast<unsigned long long>(ops_ceiling),
      static_cast<unsigned long long>(ops_default), static_cast<unsigned long long>(keys_ceiling),
      static_cast<unsigned long long>(keys_default), static_cast<unsigned long long>(batch_ceiling),
      static_cast<unsigned long long>(batch_default),
      static_cast<unsigned long long>(rounds_ceiling),
      static_cast<unsigned long long>(rounds_default),
      static_cast<unsigned long long>(seed_default));
}

}  // namespace

int main(int argc, char** argv) {
  return bench_main<MergeOptions>(
      "ferry_bench_merge", argc, argv, parse_merge_options,
      [](const MergeOptions& o) { return o.help; }, print_usage,
      [](MergeOptions& o) { return run(o); });
}
