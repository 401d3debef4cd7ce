#include "bench/replication/replication_round.h"

#include <sqlite3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>
#include <thread>
#include <zmq.hpp>

#include "bench/ipc/submit_load.h"
#include "bench/replication/feed_watch.h"
#include "config/config.h"
#include "protocol/hex.h"
#include "storage/op_store.h"

namespace ferry::bench {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds start_timeout{20'000};
constexpr milliseconds stop_grace{20'000};
constexpr milliseconds ipc_timeout{20'000};
constexpr milliseconds setup_timeout{60'000};
constexpr milliseconds disconnect_timeout{15'000};
constexpr milliseconds drain_timeout{600'000};
constexpr milliseconds heal_timeout{30'000};
constexpr milliseconds settle_after_cut{400};   // the station's session backoff has passed
constexpr milliseconds jitter_after_cut{100};   // reconnect_min: ZeroMQ retries every 100-200 ms
constexpr milliseconds settle_after_held{200};  // the last acknowledgement crosses the link
constexpr milliseconds probe_timeout{120'000};  // a hub IPC reply later than this fails the run
constexpr milliseconds disconnect_poll{5};
constexpr milliseconds drain_poll{2};
constexpr milliseconds heal_poll{1};
constexpr milliseconds backlog_poll{20};
constexpr milliseconds probe_interval{10};
constexpr std::uint64_t polls_max = 10'000'000;  // beside each wait's deadline
constexpr std::size_t load_clients = 2;          // pipelined DEALERs filing the backlog
constexpr std::size_t verify_sample_ops = 4096;
constexpr std::size_t log_tail_lines = 25;
// Case numbers: the backlog's submits count from 1 (SubmitLoad); the single ops filed by the
// round itself (markers, heals) from here.
constexpr std::uint64_t own_cases_first = 90'000'000;

static_assert(own_cases_first < case_number_max);

Seconds since(Clock::time_point start, Clock::time_point end) {
  return std::chrono::duration_cast<Seconds>(end - start);
}

// Reads what the station's store holds of its own ops seq first..last: count and mean sizes.
Result<OpSizes> read_op_sizes(const std::string& data_dir, const std::string& origin_hex,
                              std::uint64_t first, std::uint64_t last) {
  auto origin = from_hex<public_key_bytes>(origin_hex);
  if (!origin) return tl::unexpected(origin.error());
  const std::string path = data_dir + "/" + storage::database_file_name;
  sqlite3* raw = nullptr;
  const int opened = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close_v2)> db(raw, &sqlite3_close_v2);
  if (opened != SQLITE_OK) return fail(Errc::io, "cannot open " + path);
  const char* sql =
      "SELECT count(*), total(length(o.envelope)), total(length(o.signature)) FROM ops o "
      "JOIN feeds f ON o.feed_id = f.feed_id WHERE f.origin = ?1 AND f.channel = ?2 "
      "AND o.seq BETWEEN ?3 AND ?4";
  sqlite3_stmt* stmt_raw = nullptr;
  if (sqlite3_prepare_v2(db.get(), sql, -1, &stmt_raw, nullptr) != SQLITE_OK) {
    return fail(Errc::io, std::string("cannot read op sizes: ") + sqlite3_errmsg(db.get()));
  }
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> stmt(stmt_raw, &sqlite3_finalize);
  const std::string channel = std::string("station/") + station_name;
  sqlite3_bind_blob(stmt.get(), 1, origin->data(), static_cast<int>(origin->size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_text(stmt.get(), 2, channel.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(stmt.get(), 3, static_cast<sqlite3_int64>(first));
  sqlite3_bind_int64(stmt.get(), 4, static_cast<sqlite3_int64>(last));
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
    return fail(Errc::io, std::string("cannot read op sizes: ") + sqlite3_errmsg(db.get()));
  }
  OpSizes sizes;
  sizes.ops = static_cast<std::uint64_t>(sqlite3_column_int64(stmt.get(), 0));
  if (sizes.ops == 0) return fail(Errc::not_found, "no ops of the station in " + path);
  const auto count = static_cast<double>(sizes.ops);
  sizes.envelope_bytes = sqlite3_column_double(stmt.get(), 1) / count;
  sizes.signature_bytes = sqlite3_column_double(stmt.get(), 2) / count;
  return sizes;
}

// An op the station filed: its id and its seq in the station's feed.
struct Filed {
  std::string id;
  std::uint64_t seq = 0;
};

// The first and the last op of the backlog.
struct Backlog {
  Filed first;
  Filed last;
};

// Times the hub's IPC replies from a thread of its own (its own socket) until stopped.
class IpcProbe {
 public:
  IpcProbe(zmq::context_t& context, std::string endpoint, std::vector<std::uint8_t> request)
      : thread_([this, &context, endpoint = std::move(endpoint), request = std::move(request)] {
          run(context, endpoint, request);
        }) {}
  ~IpcProbe() { (void)stop(); }
  IpcProbe(const IpcProbe&) = delete;
  IpcProbe& operator=(const IpcProbe&) = delete;

  // Joins the thread (after the reply in flight); the reply times in ms.
  Result<std::vector<double>> stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    if (!error_.empty()) return fail(Errc::io, "the hub's IPC probe: " + error_);
    return replies_ms_;
  }

 private:
  void run(zmq::context_t& context, const std::string& endpoint,
           const std::vector<std::uint8_t>& request) {
    IpcClient client(context, endpoint, probe_timeout);
    for (std::uint64_t n = 0; n < polls_max && !stop_.load(); ++n) {
      const Clock::time_point sent = Clock::now();
      auto reply = client.call(request);
      if (!reply) {
        error_ = to_string(reply.error());
        return;
      }
      replies_ms_.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
      std::this_thread::sleep_for(probe_interval);
    }
  }

  std::atomic<bool> stop_{false};
  std::vector<double> replies_ms_;  // written by the thread, read after the join
  std::string error_;
  std::thread thread_;
};

class Round {
 public:
  explicit Round(const RoundOptions& options)
      : options_(options), rng_(options.seed), context_(1) {}
  Round(const Round&) = delete;
  Round& operator=(const Round&) = delete;
  ~Round() {
    hub_watch_.reset();
    hub_ipc_.reset();
    station_ipc_.reset();
    station_.reset();  // killed, if still running
    hub_.reset();
    relay_.reset();
    if (options_.keep && dir_) (void)dir_->keep();
  }

  Result<RoundResult> run();
  void print_logs() const;

 private:
  Result<void> set_up();
  Result<void> start_nodes();
  Result<void> start_node(const NodeFiles& files, std::optional<FerrydProcess>& process,
                          std::unique_ptr<IpcClient>& ipc);
  Result<void> cut_and_settle();
  Result<Filed> file_one();
  Result<Clock::time_point> wait_held(std::uint64_t seq, milliseconds interval,
                                      Clock::time_point deadline);
  Result<Backlog> file_backlog(CatchUpResult& out);
  Result<CatchUpResult> catch_up();
  Result<void> watch_drain(const Backlog& backlog, Clock::time_point healed, CatchUpResult& out);
  Result<void> measure_drain(const Backlog& backlog, CatchUpResult& out);
  Result<HealSample> heal_once();
  Result<void> wait_acknowledged();
  Result<void> check_delivered(RoundResult& result);
  Result<void> finish(RoundResult& result);

  const RoundOptions& options_;
  std::mt19937_64 rng_;
  std::uint64_t next_case_ = own_cases_first;
  std::uint64_t filed_ = 0;  // ops of the station, all of which must reach the hub
  Filed last_filed_;
  std::optional<TempDir> dir_;
  zmq::context_t context_;
  std::optional<SubmitFrame> frame_;
  NodeFiles hub_files_;
  NodeFiles station_files_;
  std::unique_ptr<LinkRelay> relay_;
  std::optional<FerrydProcess> hub_;
  std::optional<FerrydProcess> station_;
  std::unique_ptr<IpcClient> hub_ipc_;
  std::unique_ptr<IpcClient> station_ipc_;
  std::unique_ptr<FeedWatch> hub_watch_;  // the station's feed in the hub's store
};

Result<void> Round::start_node(const NodeFiles& files, std::optional<FerrydProcess>& process,
                               std::unique_ptr<IpcClient>& ipc) {
  auto started = FerrydProcess::start(options_.ferryd, files.files);
  if (!started) return tl::unexpected(started.error());
  process.emplace(std::move(*started));
  if (auto serving = process->wait_until_serving(context_, files.files.endpoint, start_timeout);
      !serving) {
    return serving;
  }
  ipc = std::make_unique<IpcClient>(context_, files.files.endpoint, ipc_timeout);
  return {};
}

// The hub, trusting the station; the station; the watch on the hub's store.
Result<void> Round::start_nodes() {
  if (auto started = start_node(hub_files_, hub_, hub_ipc_); !started) return started;
  auto trusted =
      hub_ipc_->call_ok(trust_add_request(station_name, station_files_.key_hex, "station"));
  if (!trusted) return tl::unexpected(trusted.error());
  if (auto started = start_node(station_files_, station_, station_ipc_); !started) return started;
  auto station_key = from_hex<public_key_bytes>(station_files_.key_hex);
  if (!station_key) return tl::unexpected(station_key.error());
  auto watch =
      FeedWatch::open(hub_files_.data_dir, *station_key, std::string("station/") + station_name);
  if (!watch) return tl::unexpected(watch.error());
  hub_watch_ = std::move(*watch);
  return {};
}

Result<void> Round::set_up() {
  auto dir = TempDir::create(options_.dir);
  if (!dir) return tl::unexpected(dir.error());
  dir_.emplace(std::move(*dir));
  auto frame = SubmitFrame::create();
  if (!frame) return tl::unexpected(frame.error());
  frame_.emplace(std::move(*frame));
  auto hub_port = free_loopback_port();
  if (!hub_port) return tl::unexpected(hub_port.error());
  auto relay = LinkRelay::start(*hub_port);
  if (!relay) return tl::unexpected(relay.error());
  relay_ = std::move(*relay);
  auto hub_files = create_hub(dir_->path(), *hub_port);
  if (!hub_files) return tl::unexpected(hub_files.error());
  hub_files_ = std::move(*hub_files);
  auto station_files = create_station_node(dir_->path(), hub_files_.key_hex, relay_->port());
  if (!station_files) return tl::unexpected(station_files.error());
  station_files_ = std::move(*station_files);
  if (auto started = start_nodes(); !started) return started;
  auto warm = file_one();
  if (!warm) return tl::unexpected(warm.error());
  auto held = wait_held(warm->seq, drain_poll, Clock::now() + setup_timeout);
  if (!held) return tl::unexpected(held.error());
  return wait_acknowledged();
}

Result<Filed> Round::file_one() {
  auto reply = station_ipc_->call_ok(frame_->stamp(next_case_++));
  if (!reply) return tl::unexpected(reply.error());
  auto id = reply_text(*reply, "id");
  auto seq = reply_uint(*reply, "seq");
  if (!id || !seq) return fail(Errc::malformed, "a submit reply without an id or a seq");
  ++filed_;
  last_filed_ = Filed{*id, *seq};
  return last_filed_;
}

// Watches the hub's store until the station's feed reaches `seq`; the time it was seen there.
Result<Clock::time_point> Round::wait_held(std::uint64_t seq, milliseconds interval,
                                           Clock::time_point deadline) {
  for (std::uint64_t poll = 0; poll < polls_max; ++poll) {
    auto head = hub_watch_->head_seq();
    const Clock::time_point now = Clock::now();
    if (!head) return tl::unexpected(head.error());
    if (*head >= seq) return now;
    if (now >= deadline) break;
    if (auto exited = hub_->reap_if_exited()) {
      return fail(Errc::io, "the hub " + describe_wait_status(*exited));
    }
    std::this_thread::sleep_for(interval);
  }
  return fail(Errc::timeout, "the hub's store did not reach seq " + std::to_string(seq) +
                                 " of the station's feed in time");
}

// Cuts the link, waits until the station has seen it go, and then long enough that the station
// retries its connection every reconnect_min, as on a link that has been down for a while. The
// extra random wait (one reconnect interval at most) spreads the heals over ZeroMQ's retry timer.
Result<void> Round::cut_and_settle() {
  relay_->cut();
  const std::vector<std::uint8_t> peers = command_request("peers");
  const Clock::time_point deadline = Clock::now() + disconnect_timeout;
  for (std::uint64_t poll = 0;; ++poll) {
    auto reply = station_ipc_->call_ok(peers);
    if (!reply) return tl::unexpected(reply.error());
    auto view = upstream_view(*reply);
    if (!view) return tl::unexpected(view.error());
    if (!view->connected) break;
    if (Clock::now() >= deadline || poll >= polls_max) {
      return fail(Errc::timeout, "the station still reports its upstream connected after a cut");
    }
    std::this_thread::sleep_for(disconnect_poll);
  }
  std::uniform_int_distribution<int> jitter(0, static_cast<int>(jitter_after_cut.count()));
  std::this_thread::sleep_for(settle_after_cut + milliseconds(jitter(rng_)));
  return {};
}

// Files options_.ops ops at the station while the link is cut: one single submit first and one
// last, the rest pipelined on load_clients DEALERs. The station must then hold them all unsent.
Result<Backlog> Round::file_backlog(CatchUpResult& out) {
  const Clock::time_point start = Clock::now();
  Backlog backlog;
  auto first = file_one();
  if (!first) return tl::unexpected(first.error());
  backlog.first = *first;
  const std::uint64_t middle = options_.ops - 2;
  const std::uint64_t piped = middle / load_clients * load_clients;
  auto load = SubmitLoad::create(station_files_.files.endpoint);
  if (!load) return tl::unexpected(load.error());
  auto loaded = (*load)->closed_loop(Style::pipelined, load_clients, Seconds(seconds_max), piped);
  if (!loaded) return tl::unexpected(loaded.error());
  if (loaded->refused != 0 || loaded->acknowledged != piped) {
    return fail(Errc::io, "the station acknowledged " + std::to_string(loaded->acknowledged) +
                              " of " + std::to_string(piped) +
                              " submits (first refusal: " + loaded->refusal + ")");
  }
  filed_ += piped;
  for (std::uint64_t single = piped; single < middle; ++single) {
    if (auto one = file_one(); !one) return tl::unexpected(one.error());
  }
  auto last = file_one();
  if (!last) return tl::unexpected(last.error());
  backlog.last = *last;
  out.ops = options_.ops;
  out.queue_time = since(start, Clock::now());
  auto reply = station_ipc_->call_ok(command_request("peers"));
  if (!reply) return tl::unexpected(reply.error());
  auto view = upstream_view(*reply);
  if (!view) return tl::unexpected(view.error());
  if (view->connected || view->backlog != options_.ops ||
      backlog.last.seq - backlog.first.seq + 1 != options_.ops) {
    return fail(Errc::corrupt, "before the heal the station reports its upstream " +
                                   std::string(view->connected ? "connected" : "cut") +
                                   " with a backlog of " + std::to_string(view->backlog) +
                                   " ops, expected cut and " + std::to_string(options_.ops));
  }
  return backlog;
}

// Watches the hub's store from the heal until it holds the last op; notes when it held the first,
// 10%, 90% and all of the backlog.
Result<void> Round::watch_drain(const Backlog& backlog, Clock::time_point healed,
                                CatchUpResult& out) {
  const std::uint64_t before = backlog.first.seq - 1;  // held at the hub before the heal
  const auto share = [&](double f) {
    return before + static_cast<std::uint64_t>(std::ceil(f * static_cast<double>(out.ops)));
  };
  const std::array<std::uint64_t, 4> marks = {backlog.first.seq, share(0.1), share(0.9),
                                              backlog.last.seq};
  std::array<Seconds*, 4> times = {&out.to_first, &out.to_tenth, &out.to_ninetieth, &out.to_last};
  std::size_t reached = 0;
  const Clock::time_point deadline = healed + drain_timeout;
  while (reached < marks.size()) {
    auto seen = wait_held(marks[reached], drain_poll, deadline);
    if (!seen) return tl::unexpected(seen.error());
    auto head = hub_watch_->head_seq();  // one read may pass several marks
    if (!head) return tl::unexpected(head.error());
    for (; reached < marks.size() && marks[reached] <= *head; ++reached) {
      *times[reached] = since(healed, *seen);
    }
  }
  return {};
}

// Heals the link and watches the drain; CPU, bytes and the hub's IPC reply times around it.
Result<void> Round::measure_drain(const Backlog& backlog, CatchUpResult& out) {
  const LinkCounters wire_before = relay_->counters();
  auto lo_before = loopback_counters();
  auto hub_before = process_cpu(hub_->pid());
  auto station_before = process_cpu(station_->pid());
  if (!lo_before || !hub_before || !station_before) {
    return fail(Errc::io, "cannot read /proc before the heal");
  }
  const double self_before = self_cpu_seconds();
  IpcProbe probe(context_, hub_files_.files.endpoint, track_request(backlog.last.id));
  auto healed = relay_->heal();
  if (!healed) return tl::unexpected(healed.error());
  if (auto watched = watch_drain(backlog, *healed, out); !watched) return watched;
  auto hub_after = process_cpu(hub_->pid());
  auto station_after = process_cpu(station_->pid());
  auto probed = probe.stop();
  if (!probed) return tl::unexpected(probed.error());
  out.hub_ipc_ms = std::move(*probed);
  out.bench_cpu = self_cpu_seconds() - self_before;
  std::this_thread::sleep_for(settle_after_held);
  auto lo_after = loopback_counters();
  if (!lo_after || !hub_after || !station_after) {
    return fail(Errc::io, "cannot read /proc after the drain");
  }
  const auto accepted = relay_->first_accept_after_heal();
  if (!accepted) return fail(Errc::corrupt, "the hub got ops but the relay accepted nothing");
  out.to_accept = since(*healed, *accepted);
  out.first_batch_ops =
      std::min<std::uint64_t>(options_.ops, config::ReplicationConfig{}.batch_ops_max);
  out.hub_cpu = *hub_after - *hub_before;
  out.station_cpu = *station_after - *station_before;
  out.wire = relay_->counters() - wire_before;
  out.loopback =
      InterfaceCounters{lo_after->bytes - lo_before->bytes, lo_after->packets - lo_before->packets};
  return {};
}

Result<CatchUpResult> Round::catch_up() {
  CatchUpResult out;
  if (auto cut = cut_and_settle(); !cut) return tl::unexpected(cut.error());
  auto backlog = file_backlog(out);
  if (!backlog) return tl::unexpected(backlog.error());
  std::printf("  filed %llu ops at the station with the link cut, in %.1f s\n",
              static_cast<unsigned long long>(out.ops), out.queue_time.count());
  std::fflush(stdout);
  auto sample = make_signed_ops(verify_sample_ops);
  if (!sample) return tl::unexpected(sample.error());
  auto one = measure_verify_rate(*sample, 1, options_.verify_seconds);
  if (!one) return tl::unexpected(one.error());
  auto two = measure_verify_rate(*sample, 2, options_.verify_seconds);
  if (!two) return tl::unexpected(two.error());
  out.verify_one = *one;
  out.verify_two = *two;
  std::printf("  verify baseline: %.0f/s on 1 thread, %.0f/s on 2 threads (%.1f us of CPU each)\n",
              one->per_second(), two->per_second(), one->cpu_us_per_verify());
  std::fflush(stdout);
  if (auto drained = measure_drain(*backlog, out); !drained) {
    return tl::unexpected(drained.error());
  }
  return out;
}

Result<HealSample> Round::heal_once() {
  if (auto cut = cut_and_settle(); !cut) return tl::unexpected(cut.error());
  auto filed = file_one();
  if (!filed) return tl::unexpected(filed.error());
  const LinkCounters wire_before = relay_->counters();
  auto healed = relay_->heal();
  if (!healed) return tl::unexpected(healed.error());
  auto held = wait_held(filed->seq, heal_poll, *healed + heal_timeout);
  if (!held) return tl::unexpected(held.error());
  const auto accepted = relay_->first_accept_after_heal();
  if (!accepted) return fail(Errc::corrupt, "the hub got an op but the relay accepted nothing");
  std::this_thread::sleep_for(settle_after_held);
  return HealSample{since(*healed, *accepted), since(*healed, *held),
                    relay_->counters() - wire_before};
}

Result<ReplicationView> status_view(IpcClient& ipc) {
  auto reply = ipc.call_ok(command_request("status"));
  if (!reply) return tl::unexpected(reply.error());
  return replication_view(*reply);
}

// Waits until the station holds the hub's acknowledgement of every op it filed: the hub may hold
// an op durably a moment before its ack has crossed the link.
Result<void> Round::wait_acknowledged() {
  const Clock::time_point deadline = Clock::now() + heal_timeout;
  for (std::uint64_t poll = 0;; ++poll) {
    auto reply = station_ipc_->call_ok(command_request("peers"));
    if (!reply) return tl::unexpected(reply.error());
    auto view = upstream_view(*reply);
    if (!view) return tl::unexpected(view.error());
    if (view->backlog == 0) return {};
    if (Clock::now() >= deadline || poll >= polls_max) {
      return fail(Errc::timeout, "the station still has " + std::to_string(view->backlog) +
                                     " ops the hub has not acknowledged");
    }
    std::this_thread::sleep_for(backlog_poll);
  }
}

// The station's backlog is empty and its last op known to the hub's IPC; the counters agree.
Result<void> Round::check_delivered(RoundResult& result) {
  if (auto acknowledged = wait_acknowledged(); !acknowledged) return acknowledged;
  if (auto tracked = hub_ipc_->call_ok(track_request(last_filed_.id)); !tracked) {
    return fail(Errc::corrupt,
                "the hub's IPC does not know the station's last op: " + tracked.error().detail);
  }
  auto hub = status_view(*hub_ipc_);
  if (!hub) return tl::unexpected(hub.error());
  auto station = status_view(*station_ipc_);
  if (!station) return tl::unexpected(station.error());
  if (hub->ops_received != filed_ || station->ops_sent < filed_) {
    return fail(Errc::corrupt, "the station filed " + std::to_string(filed_) + " ops and sent " +
                                   std::to_string(station->ops_sent) + "; the hub stored " +
                                   std::to_string(hub->ops_received));
  }
  result.hub = *hub;
  result.station = *station;
  result.resent = station->ops_sent - filed_;
  return {};
}

// Every op filed reached the hub once; both daemons stop cleanly; the ops' sizes.
Result<void> Round::finish(RoundResult& result) {
  if (auto delivered = check_delivered(result); !delivered) return delivered;
  hub_watch_.reset();
  if (auto stopped = station_->stop(stop_grace); !stopped) return stopped;
  if (auto stopped = hub_->stop(stop_grace); !stopped) return stopped;
  auto sizes = read_op_sizes(station_files_.data_dir, station_files_.key_hex, 2, 1 + options_.ops);
  if (!sizes) return tl::unexpected(sizes.error());
  if (sizes->ops != options_.ops) {
    return fail(Errc::corrupt, "the station's store holds " + std::to_string(sizes->ops) +
                                   " of the catch-up's ops");
  }
  result.sizes = *sizes;
  return {};
}

Result<RoundResult> Round::run() {
  RoundResult result;
  if (auto ready = set_up(); !ready) return tl::unexpected(ready.error());
  if (options_.keep) result.kept_dir = dir_->path();
  std::printf("  hub and station up in %s (relay on port %d)\n", dir_->path().c_str(),
              relay_->port());
  std::fflush(stdout);
  auto caught_up = catch_up();
  if (!caught_up) return tl::unexpected(caught_up.error());
  result.catch_up = std::move(*caught_up);
  std::printf("  heal → last op durable at the hub: %.2f s\n", result.catch_up.to_last.count());
  std::fflush(stdout);
  for (std::uint64_t i = 0; i < options_.heals; ++i) {
    auto sample = heal_once();
    if (!sample) return tl::unexpected(sample.error());
    result.heals.push_back(*sample);
  }
  if (auto finished = finish(result); !finished) return tl::unexpected(finished.error());
  return result;
}

void Round::print_logs() const {
  for (const NodeFiles* files : {&hub_files_, &station_files_}) {
    if (files->files.log_path.empty()) continue;
    std::fprintf(stderr, "%s, last lines:\n%s", files->files.log_path.c_str(),
                 log_tail(files->files.log_path, log_tail_lines).c_str());
  }
}

}  // namespace

Result<RoundResult> run_round(const RoundOptions& options) {
  Round round(options);
  auto result = round.run();
  if (!result) round.print_logs();
  return result;
}

}  // namespace ferry::bench
