// ferry_bench_ipc: acknowledged submits per second over ferryd's local IPC, against plain SQLite.
//
// It starts a real ferryd (the one built with this benchmark, or --ferryd) on a fresh station node
// in a temp directory and measures, in the same run: the baseline (plain SQLite, WAL,
// synchronous=FULL, one 300-byte row per commit); acknowledged submits per second from 1, 4 and 16
// concurrent clients, REQ-style and pipelined; and the latency of submits offered at a fixed
// 1,000/s. A submit is acknowledged only after its commit is durable, so every figure counts ops on
// disk. Throughput is reported as a ratio to the baseline because the machines are shared and
// noisy. Every measurement is bounded in time and in ops. Any error, and any submit that is
// refused, ends the run with a non-zero exit status; ferryd is stopped (or killed) and the temp
// directory removed on every path. A missed target is reported, not an error.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "bench/ipc/ferryd_process.h"
#include "bench/ipc/submit_load.h"
#include "bench/support/bench_support.h"
#include "bench/support/proc_stats.h"
#include "protocol/error.h"

#ifndef FERRYD_PATH
#error "FERRYD_PATH must name the ferryd binary to benchmark"
#endif

namespace {

using ferry::Errc;
using ferry::fail;
using ferry::Result;
using namespace ferry::bench;

constexpr double seconds_default = 3.0;
constexpr double latency_seconds_default = 5.0;
constexpr std::array<std::size_t, 3> client_counts = {1, 4, 16};
constexpr std::array<Style, 2> styles = {Style::req, Style::pipelined};
constexpr std::uint64_t measurement_ops_max = 5'000'000;  // hard cap of one throughput run
constexpr std::uint64_t warmup_ops = 256;                 // untimed, first: creates the feed
constexpr double latency_rate = 1000.0;                   // offered submits/s
constexpr std::size_t latency_clients = 4;                // each on a schedule of rate/4
constexpr std::chrono::milliseconds start_timeout{15'000};
constexpr std::chrono::milliseconds stop_grace{15'000};
constexpr std::chrono::milliseconds status_timeout{5'000};
constexpr std::size_t log_tail_lines = 20;
constexpr const char* node_name = "huaniao";
// The targets for the local IPC.
constexpr double target_ops_per_second = 35'000.0;  // at 16 clients, the better style
constexpr double target_ratio = 10.0;               // times the baseline
constexpr double target_p99_ms = 10.0;              // at latency_rate

// Every submit of a run gets its own 8-digit case number.
static_assert(warmup_ops + styles.size() * client_counts.size() * measurement_ops_max +
                  static_cast<std::uint64_t>(latency_rate * seconds_max) <
              case_number_max);

struct IpcOptions {
  Options common;
  Seconds latency_seconds{latency_seconds_default};
  std::string ferryd = FERRYD_PATH;
};

struct Throughput {
  Measurement m;
  std::size_t clients = 0;
  ProcessCpu ferryd_cpu;  // what ferryd's threads spent during the measurement
  double bench_cpu = 0;   // what this benchmark (its clients) spent, in seconds
  double ferryd_us_per_op() const { return per_op(ferryd_cpu.total); }
  double us_per_op() const { return per_op(ferryd_cpu.total + bench_cpu); }
  double per_op(double seconds) const {
    return m.ops == 0 ? 0 : seconds * 1e6 / static_cast<double>(m.ops);
  }
};

struct Latency {
  std::uint64_t replies = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
  double send_lag_max_ms = 0;
};

struct Tally {  // over the whole run
  std::uint64_t acknowledged = 0;
  std::uint64_t refused = 0;
  std::string refusal;

  void add(const LoadResult& r) {
    acknowledged += r.acknowledged;
    if (refused == 0) refusal = r.refusal;
    refused += r.refused;
  }
};

std::string configuration(Style style, std::size_t clients) {
  std::string name =
      style == Style::req ? "REQ" : "pipelined W=" + std::to_string(pipeline_window_ops);
  return name + ", " + std::to_string(clients) + (clients == 1 ? " client" : " clients");
}

// Nearest rank: the smallest sample with at least fraction p of the samples at or below it.
double percentile(const std::vector<double>& sorted, double p) {
  FERRY_ASSERT(!sorted.empty());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

void print_refusals(const LoadResult& r) {
  if (r.refused == 0) return;
  std::printf("  ^ %llu submits refused (first: %s)\n", static_cast<unsigned long long>(r.refused),
              r.refusal.c_str());
}

Result<Throughput> measure_throughput(SubmitLoad& load, pid_t ferryd, Style style,
                                      std::size_t clients, Seconds seconds, double baseline,
                                      Tally& tally) {
  auto cpu_before = process_cpu(ferryd);
  if (!cpu_before) return tl::unexpected(cpu_before.error());
  const double bench_before = self_cpu_seconds();
  auto r = load.closed_loop(style, clients, seconds, measurement_ops_max);
  if (!r) return tl::unexpected(r.error());
  auto cpu_after = process_cpu(ferryd);
  if (!cpu_after) return tl::unexpected(cpu_after.error());
  tally.add(*r);
  Throughput t{Measurement{configuration(style, clients), r->acknowledged, r->elapsed}, clients,
               *cpu_after - *cpu_before, self_cpu_seconds() - bench_before};
  print_row(t.m, baseline);
  print_refusals(*r);
  std::fflush(stdout);
  return t;
}

Result<Latency> measure_latency(SubmitLoad& load, Seconds seconds, Tally& tally) {
  auto r = load.paced(latency_clients, latency_rate, seconds);
  if (!r) return tl::unexpected(r.error());
  tally.add(*r);
  if (r->latencies_ms.empty()) return fail(Errc::not_found, "the latency run got no replies");
  std::sort(r->latencies_ms.begin(), r->latencies_ms.end());
  Latency l;
  l.replies = r->latencies_ms.size();
  l.p50 = percentile(r->latencies_ms, 0.50);
  l.p90 = percentile(r->latencies_ms, 0.90);
  l.p99 = percentile(r->latencies_ms, 0.99);
  l.max = r->latencies_ms.back();
  l.send_lag_max_ms = r->send_lag_max_ms;
  std::printf(
      "\nlatency at %.0f submits/s offered (%zu DEALER clients on fixed schedules, %.1f s): "
      "%llu replies\n  p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms "
      "(latest send %.2f ms behind schedule)\n",
      latency_rate, latency_clients, seconds.count(), static_cast<unsigned long long>(l.replies),
      l.p50, l.p90, l.p99, l.max, l.send_lag_max_ms);
  print_refusals(*r);
  std::fflush(stdout);
  return l;
}

// CPU per acknowledged submit in each throughput run, from /proc: where the time goes, and how
// much of the machine the run kept busy (both say whether a run was bound by CPU or by waiting).
void print_cpu(const std::vector<Throughput>& runs) {
  std::printf(
      "\nCPU per acknowledged submit, us (ferryd: its event loop, its ZeroMQ I/O threads, its "
      "other\nthreads: signing, checkpointer; bench: this benchmark's clients) and cores busy\n");
  std::printf("%-28s %7s %7s %7s %7s %7s %11s\n", "configuration", "loop", "zmq", "other", "ferryd",
              "bench", "cores busy");
  for (const Throughput& t : runs) {
    const double seconds = t.m.elapsed.count();
    std::printf("%-28s %7.1f %7.1f %7.1f %7.1f %7.1f %6.2f of %u\n", t.m.configuration.c_str(),
                t.per_op(t.ferryd_cpu.main), t.per_op(t.ferryd_cpu.zmq),
                t.per_op(t.ferryd_cpu.other()), t.ferryd_us_per_op(), t.per_op(t.bench_cpu),
                seconds > 0 ? (t.ferryd_cpu.total + t.bench_cpu) / seconds : 0,
                std::thread::hardware_concurrency());
  }
  std::fflush(stdout);
}

struct Outcome {
  std::vector<Throughput> runs;
  Latency latency;
  Tally tally;
};

// Everything measured against the running ferryd, then the check that it holds exactly the
// acknowledged ops, then a clean stop.
Result<void> measure_node(FerrydProcess& ferryd, SubmitLoad& load, const IpcOptions& options,
                          double baseline, Outcome& out) {
  auto warm = load.closed_loop(Style::pipelined, 1, options.common.seconds, warmup_ops);
  if (!warm) return tl::unexpected(warm.error());
  out.tally.add(*warm);
  for (Style style : styles) {
    for (std::size_t clients : client_counts) {
      auto t = measure_throughput(load, ferryd.pid(), style, clients, options.common.seconds,
                                  baseline, out.tally);
      if (!t) return tl::unexpected(t.error());
      out.runs.push_back(std::move(*t));
    }
  }
  print_cpu(out.runs);
  auto latency = measure_latency(load, options.latency_seconds, out.tally);
  if (!latency) return tl::unexpected(latency.error());
  out.latency = *latency;
  auto status = query_status(load.context(), load.endpoint(), status_timeout);
  if (!status) return tl::unexpected(status.error());
  if (status->ops != out.tally.acknowledged) {
    return fail(Errc::corrupt, "ferryd holds " + std::to_string(status->ops) + " ops but " +
                                   std::to_string(out.tally.acknowledged) + " were acknowledged");
  }
  if (status->unsent_replies != 0) {
    return fail(Errc::io, std::to_string(status->unsent_replies) + " replies were not delivered");
  }
  std::printf("\nferryd holds %llu ops, every one acknowledged; %llu IPC requests served\n",
              static_cast<unsigned long long>(status->ops),
              static_cast<unsigned long long>(status->requests));
  return ferryd.stop(stop_grace);
}

Result<Outcome> run_node(const std::string& dir, const IpcOptions& options, double baseline) {
  auto files = create_station(dir, node_name);
  if (!files) return tl::unexpected(files.error());
  auto ferryd = FerrydProcess::start(options.ferryd, *files);
  if (!ferryd) return tl::unexpected(ferryd.error());
  auto load = SubmitLoad::create(files->endpoint);
  if (!load) return tl::unexpected(load.error());
  Outcome out;
  auto measured =
      ferryd->wait_until_serving((*load)->context(), files->endpoint, start_timeout).and_then([&] {
        return measure_node(*ferryd, **load, options, baseline, out);
      });
  if (!measured) {
    if (auto exited = ferryd->reap_if_exited()) {
      std::fprintf(stderr, "ferryd %s\n", describe_wait_status(*exited).c_str());
    }
    std::fprintf(stderr, "ferryd's log (%s), last lines:\n%s", files->log_path.c_str(),
                 log_tail(files->log_path, log_tail_lines).c_str());
    return tl::unexpected(measured.error());  // ferryd is killed on the way out
  }
  return out;
}

void print_targets(const Outcome& out, double baseline) {
  const Throughput* best = nullptr;
  for (const Throughput& t : out.runs) {
    if (t.clients != client_counts.back()) continue;
    if (best == nullptr || t.m.ops_per_second() > best->m.ops_per_second()) best = &t;
  }
  FERRY_ASSERT(best != nullptr);
  const double ops = best->m.ops_per_second();
  std::printf("\ntargets:\n");
  std::printf("  %zu clients, best style (%s): %.0f ops/s >= %.0f ops/s: %s\n",
              client_counts.back(), best->m.configuration.c_str(), ops, target_ops_per_second,
              ops >= target_ops_per_second ? "met" : "NOT met");
  std::printf("  %zu clients, best style: %.2fx baseline >= %.0fx: %s\n", client_counts.back(),
              ops / baseline, target_ratio, ops / baseline >= target_ratio ? "met" : "NOT met");
  std::printf("  p99 at %.0f submits/s: %.2f ms <= %.0f ms: %s\n", latency_rate, out.latency.p99,
              target_p99_ms, out.latency.p99 <= target_p99_ms ? "met" : "NOT met");
  if (best->us_per_op() > 0) {
    const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
    std::printf(
        "  at %.1f us of CPU per submit (ferryd %.1f, bench %.1f), %u busy cores would give at "
        "most %.0f ops/s\n",
        best->us_per_op(), best->ferryd_us_per_op(), best->per_op(best->bench_cpu), cores,
        cores * 1e6 / best->us_per_op());
  }
}

Result<int> run(const IpcOptions& options) {
  const Clock::time_point start = Clock::now();
  if (::access(options.ferryd.c_str(), X_OK) != 0) {
    return fail(Errc::not_found, "no ferryd to run at " + options.ferryd);
  }
  std::printf("ferry_bench_ipc: started %s, %u hardware threads, ferryd %s\n", utc_now().c_str(),
              std::thread::hardware_concurrency(), options.ferryd.c_str());
  std::printf("temp parent %s, %.2f s per measurement, %zu-byte msgpack bodies\n\n",
              options.common.dir.c_str(), options.common.seconds.count(), body_bytes);
  std::fflush(stdout);
  auto baseline = measure_baseline(options.common.dir, options.common.seconds);
  if (!baseline) return tl::unexpected(baseline.error());
  const double base = baseline->ops_per_second();
  print_table_header();
  print_row(*baseline, base);
  std::fflush(stdout);
  auto dir = TempDir::create(options.common.dir);
  if (!dir) return tl::unexpected(dir.error());
  auto out = run_node(dir->path(), options, base);
  if (!out) return tl::unexpected(out.error());
  if (auto removed = dir->remove(); !removed) return tl::unexpected(removed.error());
  std::printf("\nbaseline: %.0f rows/s (plain SQLite, WAL, synchronous=FULL, 1 row per commit)\n",
              base);
  print_targets(*out, base);
  std::printf("run finished %s, took %.1f s\n", utc_now().c_str(),
              std::chrono::duration_cast<Seconds>(Clock::now() - start).count());
  if (out->tally.refused == 0) return 0;
  std::fprintf(stderr, "ferry_bench_ipc: %llu submits were refused (first: %s)\n",
               static_cast<unsigned long long>(out->tally.refused), out->tally.refusal.c_str());
  return 1;
}

void print_usage() {
  std::fprintf(
      stderr,
      "usage: ferry_bench_ipc [--seconds S] [--latency-seconds S] [--dir PARENT] [--ferryd PATH]\n"
      "  --seconds S          time per throughput measurement, %.2f..%.0f (default %.1f)\n"
      "  --latency-seconds S  time of the latency run at %.0f submits/s (default %.1f)\n"
      "  --dir PARENT         where the temp directories go (default: the system temp "
      "dir)\n"
      "  --ferryd PATH        the ferryd to run (default: the one built here)\n",
      seconds_min, seconds_max, seconds_default, latency_rate, latency_seconds_default);
}

Result<IpcOptions> parse_ipc_options(std::span<char*> args) {
  IpcOptions options;
  auto extra = [&](std::string_view name, const char* value) -> Result<bool> {
    if (name == "--ferryd") {
      options.ferryd = value;
      return true;
    }
    if (name != "--latency-seconds") return false;
    auto seconds = parse_seconds(name, value);
    if (!seconds) return tl::unexpected(seconds.error());
    options.latency_seconds = *seconds;
    return true;
  };
  auto common = parse_options(args, Seconds(seconds_default), extra);
  if (!common) return tl::unexpected(common.error());
  options.common = std::move(*common);
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  return bench_main<IpcOptions>(
      "ferry_bench_ipc", argc, argv, parse_ipc_options,
      [](const IpcOptions& o) { return o.common.help; }, print_usage,
      [](IpcOptions& o) { return run(o); });
}
