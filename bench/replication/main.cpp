// ferry_bench_replication: how fast a station's backlog reaches the hub once the link heals, what
// it costs on the wire, and how soon after a heal a new op is durable at the hub.
//
// Each round starts a real hub and a real station (the ferryd built with this benchmark, or
// --ferryd) on loopback TCP with CurveZMQ, the station's upstream going through a relay the
// benchmark cuts and heals (bench/replication/link_relay.h). With the link cut the station files
// --ops ops; the link heals, and the hub is polled until it holds the first and the last of them
// durably. The baseline, measured in the same round just before the heal, is the rate at which
// this machine verifies op signatures (ferry::verify_op) on 1 and on 2 threads: every op the hub
// takes in must be verified, so that rate bounds the drain. Then --heals single-op heals are timed,
// heal → the op durable at the hub. See bench/README.md for what is measured and how. Any error
// ends the run with exit status 1 (2 for bad arguments), after both daemons are killed and the
// temp directory is removed (kept with --keep); a missed goal is reported, not an error.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/replication/replication_round.h"
#include "bench/support/bench_support.h"
#include "protocol/error.h"

#ifndef FERRYD_PATH
#error "FERRYD_PATH must name the ferryd binary to benchmark"
#endif

namespace {

using ferry::Errc;
using ferry::fail;
using ferry::Result;
using namespace ferry::bench;

constexpr std::uint64_t ops_default = 100'000;
constexpr std::uint64_t ops_floor = 1'000;
constexpr std::uint64_t ops_ceiling = 1'000'000;
constexpr std::uint64_t rounds_default = 1;
constexpr std::uint64_t rounds_ceiling = 10;
constexpr std::uint64_t heals_default = 20;
constexpr std::uint64_t heals_ceiling = 1'000;
constexpr std::uint64_t seed_default = 20'261'130;
constexpr double verify_seconds_default = 2.0;
// The goals.
constexpr double goal_heal_to_last_s = 3.0;
constexpr double goal_drain_per_second = 35'000.0;
constexpr double goal_drain_of_verify = 0.80;
constexpr double goal_heal_to_first_s = 0.5;

static_assert(ops_ceiling < 90'000'000, "the round's own case numbers start at 90,000,000");

struct ReplicationOptions {
  RoundOptions round;
  std::uint64_t rounds = rounds_default;
  bool help = false;
};

std::string grouped(double value) {
  const auto n = static_cast<long long>(std::llround(value));
  const std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out = n < 0 ? "-" : "";
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

double percentile(std::vector<double> values, double p) {
  FERRY_ASSERT(!values.empty());
  std::sort(values.begin(), values.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(values.size())));
  return values[std::clamp<std::size_t>(rank, 1, values.size()) - 1];
}

// The middle value, or the mean of the two middle values.
double median(std::vector<double> values) {
  FERRY_ASSERT(!values.empty());
  std::sort(values.begin(), values.end());
  const std::size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2.0;
}

std::string load_average() {
  std::array<double, 3> load{};
  if (getloadavg(load.data(), 3) != 3) return "unknown";
  std::array<char, 64> text{};
  std::snprintf(text.data(), text.size(), "%.2f %.2f %.2f", load[0], load[1], load[2]);
  return text.data();
}

void print_cpu(const char* who, const ProcessCpu& cpu, double wall) {
  auto share = [wall](double s) { return 100.0 * s / wall; };
  const double other = std::max(0.0, cpu.other());  // clock ticks: the parts may pass the total
  std::printf(
      "    %-8s %6.2f s (%3.0f%% of one core): event loop %.2f s (%.0f%%), ZeroMQ I/O %.2f s "
      "(%.0f%%), other threads %.2f s (%.0f%%)\n",
      who, cpu.total, share(cpu.total), cpu.main, share(cpu.main), cpu.zmq, share(cpu.zmq), other,
      share(other));
  std::printf("             its event loop waited %.2f s (%.0f%%) for a core while runnable\n",
              cpu.main_waiting, share(cpu.main_waiting));
}

void print_catch_up(const CatchUpResult& c) {
  const double two = c.verify_two.per_second();
  const double drain = c.drain_per_second();
  std::printf("  catch-up of %s ops (filed in %.1f s while the link was cut):\n",
              grouped(static_cast<double>(c.ops)).c_str(), c.queue_time.count());
  std::printf("    heal → station's connection accepted  %8.3f s\n", c.to_accept.count());
  std::printf(
      "    heal → first op durable at the hub    %8.3f s (committed with its batch of "
      "%llu)\n",
      c.to_first.count(), static_cast<unsigned long long>(c.first_batch_ops));
  std::printf("    heal → last op durable at the hub     %8.3f s\n", c.to_last.count());
  std::printf(
      "    drain, heal → last: %s ops/s = %.2f x the 2-thread verify rate (%s/s), "
      "%.2f x 1 thread (%s/s)\n",
      grouped(drain).c_str(), drain / two, grouped(two).c_str(), drain / c.verify_one.per_second(),
      grouped(c.verify_one.per_second()).c_str());
  std::printf(
      "    drain, 10%% → 90%% held (%.2f s → %.2f s): %s ops/s = %.2f x the 2-thread "
      "verify rate\n",
      c.to_tenth.count(), c.to_ninetieth.count(), grouped(c.steady_per_second()).c_str(),
      c.steady_per_second() / two);
  if (!c.hub_ipc_ms.empty()) {
    std::printf(
        "    the hub's IPC meanwhile (track every 10 ms, %zu replies): median %.1f ms, "
        "p99 %.1f ms, max %.1f ms\n",
        c.hub_ipc_ms.size(), median(c.hub_ipc_ms), percentile(c.hub_ipc_ms, 0.99),
        percentile(c.hub_ipc_ms, 1.0));
  }
}

void print_drain_cpu(const CatchUpResult& c) {
  const double wall = c.to_last.count();
  std::printf("  CPU, heal → last (%.2f s of wall time, 2 cores):\n", wall);
  print_cpu("hub", c.hub_cpu, wall);
  std::printf(
      "             per op: hub %.1f us of CPU, of which its event loop %.1f us; one verify "
      "costs %.1f us of CPU (baseline, 1 thread)\n",
      c.hub_cpu.total * 1e6 / static_cast<double>(c.ops),
      c.hub_cpu.main * 1e6 / static_cast<double>(c.ops), c.verify_one.cpu_us_per_verify());
  const double loop_us = c.hub_cpu.main * 1e6 / static_cast<double>(c.ops);
  const double hub_us = c.hub_cpu.total * 1e6 / static_cast<double>(c.ops);
  const double verify_us = c.verify_one.cpu_us_per_verify();
  std::printf(
      "             bounds with 2 idle cores for the hub: its event loop %s ops/s (1 core), "
      "all its threads %s ops/s (2 cores); verify alone %s/s (2 cores)\n",
      grouped(1e6 / loop_us).c_str(), grouped(2e6 / hub_us).c_str(),
      grouped(2e6 / verify_us).c_str());
  print_cpu("station", c.station_cpu, wall);
  std::printf("    %-8s %6.2f s (%3.0f%%): the relay, the store watch, the IPC probe\n", "bench",
              c.bench_cpu, 100.0 * c.bench_cpu / wall);
}

void print_wire(const CatchUpResult& c, const OpSizes& sizes) {
  const auto ops = static_cast<double>(c.ops);
  const double op_bytes = sizes.envelope_bytes + sizes.signature_bytes;
  const double wire = static_cast<double>(c.wire.up_bytes + c.wire.down_bytes);
  std::printf("  bytes on the wire, heal → last + 0.2 s (TCP payload through the relay):\n");
  std::printf(
      "    station → hub %s B = %.1f B/op; hub → station %s B = %.1f B/op; "
      "both %.1f B/op\n",
      grouped(static_cast<double>(c.wire.up_bytes)).c_str(),
      static_cast<double>(c.wire.up_bytes) / ops,
      grouped(static_cast<double>(c.wire.down_bytes)).c_str(),
      static_cast<double>(c.wire.down_bytes) / ops, wire / ops);
  std::printf(
      "    kernel tcp_info of the relay's station-side socket: %s B received, %s B "
      "acked; %s segments in, %s out\n",
      grouped(static_cast<double>(c.wire.kernel_received_bytes)).c_str(),
      grouped(static_cast<double>(c.wire.kernel_acked_bytes)).c_str(),
      grouped(static_cast<double>(c.wire.kernel_segments_in)).c_str(),
      grouped(static_cast<double>(c.wire.kernel_segments_out)).c_str());
  std::printf(
      "    /proc/net/dev lo: %s B in %s packets (both hops of the relay, IP and TCP "
      "headers, and any other loopback traffic of the machine)\n",
      grouped(static_cast<double>(c.loopback.bytes)).c_str(),
      grouped(static_cast<double>(c.loopback.packets)).c_str());
  std::printf(
      "    an op as stored: envelope %.1f B + signature %.1f B = %.1f B; wire (both "
      "directions) ÷ op = %.3f\n",
      sizes.envelope_bytes, sizes.signature_bytes, op_bytes, wire / ops / op_bytes);
}

void print_heals(const std::vector<HealSample>& heals) {
  std::vector<double> held, accepted, setup, bytes;
  for (const HealSample& h : heals) {
    held.push_back(h.to_held.count() * 1000.0);
    accepted.push_back(h.to_accept.count() * 1000.0);
    setup.push_back((h.to_held - h.to_accept).count() * 1000.0);
    bytes.push_back(static_cast<double>(h.wire.up_bytes + h.wire.down_bytes));
  }
  std::printf("  %zu heals, one op filed during each cut:\n", heals.size());
  std::printf(
      "    heal → op durable at the hub: median %.1f ms, p90 %.1f ms (min %.1f, max %.1f)\n",
      median(held), percentile(held, 0.9), percentile(held, 0.0), percentile(held, 1.0));
  std::printf(
      "    heal → connection accepted:   median %.1f ms, p90 %.1f ms (min %.1f, max %.1f)\n",
      median(accepted), percentile(accepted, 0.9), percentile(accepted, 0.0),
      percentile(accepted, 1.0));
  std::printf(
      "    connection accepted → op durable (CURVE handshake, hello/welcome, one batch "
      "stored): median %.1f ms, p90 %.1f ms\n",
      median(setup), percentile(setup, 0.9));
  std::printf("    bytes per heal (session setup, one op, its ack; + 0.2 s): median %s B\n",
              grouped(median(bytes)).c_str());
}

void print_round(const RoundResult& r) {
  print_catch_up(r.catch_up);
  print_drain_cpu(r.catch_up);
  print_wire(r.catch_up, r.sizes);
  print_heals(r.heals);
  std::printf(
      "  checks: the hub stored all %s of the station's ops; the station sent %s "
      "(%s resent); %s duplicates at the hub; %s receipts written\n",
      grouped(static_cast<double>(r.hub.ops_received)).c_str(),
      grouped(static_cast<double>(r.station.ops_sent)).c_str(),
      grouped(static_cast<double>(r.resent)).c_str(),
      grouped(static_cast<double>(r.hub.duplicates)).c_str(),
      grouped(static_cast<double>(r.hub.receipts_written)).c_str());
  if (!r.kept_dir.empty()) std::printf("  kept: %s\n", r.kept_dir.c_str());
  std::fflush(stdout);
}

void print_goal(const char* what, const std::string& value, bool met) {
  std::printf("  %-52s %-12s %s\n", what, value.c_str(), met ? "met" : "NOT met");
}

void print_summary(const std::vector<RoundResult>& rounds) {
  std::vector<double> to_last, drain, of_verify, held;
  std::printf(
      "\nround  verify 1t/s  verify 2t/s  heal→first  heal→last   drain ops/s  ÷ verify 2t"
      "  10→90%% ops/s  wire B/op  op B\n");
  for (std::size_t i = 0; i < rounds.size(); ++i) {
    const CatchUpResult& c = rounds[i].catch_up;
    const double wire =
        static_cast<double>(c.wire.up_bytes + c.wire.down_bytes) / static_cast<double>(c.ops);
    std::printf(
        "%5zu  %11s  %11s  %9.3fs  %8.2fs  %12s  %11.2f  %13s  %9.1f  %5.1f\n", i + 1,
        grouped(c.verify_one.per_second()).c_str(), grouped(c.verify_two.per_second()).c_str(),
        c.to_first.count(), c.to_last.count(), grouped(c.drain_per_second()).c_str(),
        c.drain_per_second() / c.verify_two.per_second(), grouped(c.steady_per_second()).c_str(),
        wire, rounds[i].sizes.envelope_bytes + rounds[i].sizes.signature_bytes);
    to_last.push_back(c.to_last.count());
    drain.push_back(c.drain_per_second());
    of_verify.push_back(c.drain_per_second() / c.verify_two.per_second());
    for (const HealSample& h : rounds[i].heals) held.push_back(h.to_held.count());
  }
  char text[64];
  std::printf("\ngoals (median over rounds; heals pooled, %zu samples):\n", held.size());
  const double last = median(to_last);
  std::snprintf(text, sizeof text, "%.2f s", last);
  print_goal("heal → last op durable at the hub <= 3 s", text, last <= goal_heal_to_last_s);
  const double rate = median(drain);
  print_goal("drain >= 35,000 ops/s", grouped(rate) + "/s", rate >= goal_drain_per_second);
  const double share = median(of_verify);
  std::snprintf(text, sizeof text, "%.0f%%", share * 100.0);
  print_goal("drain >= 80% of the 2-thread verify rate", text, share >= goal_drain_of_verify);
  const double first = median(held);
  std::snprintf(text, sizeof text, "%.1f ms", first * 1000.0);
  print_goal("heal → first op durable at the hub, median <= 0.5 s", text,
             first <= goal_heal_to_first_s);
}

Result<ReplicationOptions> parse(std::span<char*> args) {
  ReplicationOptions out;
  out.round.ferryd = FERRYD_PATH;
  out.round.ops = ops_default;
  out.round.heals = heals_default;
  out.round.seed = seed_default;
  std::vector<char*> rest;  // --keep takes no value: the shared parser sees the others
  for (char* arg : args) {
    if (std::string_view(arg) == "--keep") {
      out.round.keep = true;
    } else {
      rest.push_back(arg);
    }
  }
  struct CountOption {
    std::string_view name;
    std::uint64_t* target;
    std::uint64_t low;
    std::uint64_t high;
  };
  const std::array<CountOption, 4> counts = {{
      {"--ops", &out.round.ops, ops_floor, ops_ceiling},
      {"--rounds", &out.rounds, 1, rounds_ceiling},
      {"--heals", &out.round.heals, 1, heals_ceiling},
      {"--seed", &out.round.seed, 0, std::numeric_limits<std::uint64_t>::max()},
  }};
  auto extra = [&out, &counts](std::string_view name, const char* value) -> Result<bool> {
    if (name == "--ferryd") {
      out.round.ferryd = value;
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
  auto common = parse_options(rest, Seconds(verify_seconds_default), extra);
  if (!common) return tl::unexpected(common.error());
  out.round.dir = common->dir;
  out.round.verify_seconds = common->seconds;
  out.help = common->help;
  return out;
}

void print_usage() {
  std::fprintf(stderr,
               "usage: ferry_bench_replication [--ops N] [--rounds N] [--heals N] [--seconds S]\n"
               "                               [--dir PARENT] [--keep] [--ferryd PATH] [--seed N]\n"
               "  --ops N      ops filed at the station while the link is cut (default %llu)\n"
               "  --rounds N   rounds, each on a fresh hub and station (default %llu)\n"
               "  --heals N    single-op heals timed per round (default %llu)\n"
               "  --seconds S  time of each verify-rate baseline (default %.1f)\n"
               "  --dir PARENT where the temp directories go (default: the system temp dir)\n"
               "  --keep       keep each round's directory (node dirs, ferryd logs)\n"
               "  --ferryd P   the ferryd to run (default: the one built here)\n"
               "  --seed N     the seed of the waits between a cut and its heal\n",
               static_cast<unsigned long long>(ops_default),
               static_cast<unsigned long long>(rounds_default),
               static_cast<unsigned long long>(heals_default), verify_seconds_default);
}

Result<void> run(ReplicationOptions options) {
  const Clock::time_point start = Clock::now();
  if (::access(options.round.ferryd.c_str(), X_OK) != 0) {
    return fail(Errc::not_found, "no ferryd to run at " + options.round.ferryd);
  }
  std::printf("ferry_bench_replication: started %s, %u hardware threads, load %s\n",
              utc_now().c_str(), std::thread::hardware_concurrency(), load_average().c_str());
  std::printf(
      "ferryd %s; %llu ops per catch-up, %llu heals per round, %llu round(s), temp "
      "parent %s\n",
      options.round.ferryd.c_str(), static_cast<unsigned long long>(options.round.ops),
      static_cast<unsigned long long>(options.round.heals),
      static_cast<unsigned long long>(options.rounds), options.round.dir.c_str());
  std::vector<RoundResult> rounds;
  for (std::uint64_t i = 0; i < options.rounds; ++i) {
    std::printf("\nround %llu of %llu (load %s)\n", static_cast<unsigned long long>(i + 1),
                static_cast<unsigned long long>(options.rounds), load_average().c_str());
    std::fflush(stdout);
    options.round.seed += i;
    auto round = run_round(options.round);
    if (!round) return tl::unexpected(round.error());
    print_round(*round);
    rounds.push_back(std::move(*round));
  }
  print_summary(rounds);
  std::printf("run finished %s, load %s, took %.1f s\n", utc_now().c_str(), load_average().c_str(),
              std::chrono::duration_cast<Seconds>(Clock::now() - start).count());
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  return bench_main<ReplicationOptions>(
      "ferry_bench_replication", argc, argv, parse,
      [](const ReplicationOptions& o) { return o.help; }, print_usage,
      [](ReplicationOptions& o) -> Result<int> {
        if (auto ran = run(std::move(o)); !ran) return tl::unexpected(ran.error());
        return 0;
      });
}
