#include "daemon/monitor.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

#include <algorithm>

#include "daemon/ipc_server.h"
#include "protocol/hex.h"
#include "protocol/merge.h"

namespace ferry::daemon {
namespace {

std::int64_t steady_ms(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string default_channel(const config::Config& config) { return "station/" + config.node.name; }

// Disk space is reported in whole MiB: the bytes below move all the time.
constexpr std::uint64_t disk_free_unit = 1 << 20;

}  // namespace

Monitor::Monitor(Node& node, IpcServer& server, Replicator* replicator, WallClock& wall)
    : node_(node),
      server_(server),
      replicator_(replicator),
      wall_(wall),
      config_(node.config().monitor),
      started_(std::chrono::steady_clock::now()) {
  last_tick_ms_ = steady_ms(started_);
}

std::shared_ptr<const Snapshot> Monitor::snapshot() const {
  std::lock_guard lock(mutex_);
  return snapshot_;
}

bool Monitor::loop_alive() const {
  auto now = steady_ms(std::chrono::steady_clock::now());
  return now - last_tick_ms_.load() <= loop_stall_max.count();
}

std::chrono::milliseconds Monitor::timeout() const {
  auto left = next_refresh_ - std::chrono::steady_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(left);
  return std::clamp(ms + std::chrono::milliseconds(1), std::chrono::milliseconds(0),
                    config_.refresh);
}

void Monitor::tick() {
  auto now = std::chrono::steady_clock::now();
  last_tick_ms_ = steady_ms(now);
  if (now < next_refresh_) return;
  next_refresh_ = now + config_.refresh;
  std::uint64_t now_ms = wall_.now_ms();
  if (now >= next_probe_) {
    next_probe_ = now + store_probe_interval;
    auto probed = node_.store().probe_write(now_ms);
    if (!probed && writable_)
      spdlog::error("the store takes no writes: {}", to_string(probed.error()));
    if (probed && !writable_) spdlog::info("the store takes writes again");
    writable_ = probed.has_value();
  }
  report_status(now_ms);
  refresh(now_ms);
}

ipc::Bytes Monitor::ipc_reply() {
  if (!snapshot()) refresh(wall_.now_ms());
  Json reply{{"ok", true},
             {"now_ms", last_status_.value("now_ms", std::uint64_t{0})},
             {"status", last_status_},
             {"peers", last_peers_},
             {"stations", last_stations_}};
  return Json::to_msgpack(reply);
}

std::uint64_t Monitor::disk_free() const {
  struct statvfs fs {};
  if (::statvfs(node_.config().node.data_dir.c_str(), &fs) != 0) return 0;
  std::uint64_t bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  return bytes / disk_free_unit * disk_free_unit;
}

// ---- Figures ----

void Monitor::refresh(std::uint64_t now_ms) {
  storage::OpStore& store = node_.store();
  const IpcCounters& counters = server_.counters();
  std::vector<PeerReport> peers;
  if (replicator_ != nullptr) peers = replicator_->peers();
  auto conflicts_by_channel = store.conflicts_by_channel(monitor_conflict_channels_max);
  std::map<std::string, std::uint64_t> by_channel;
  if (conflicts_by_channel) {
    by_channel = std::move(*conflicts_by_channel);
  } else {
    spdlog::warn("monitor: conflicts: {}", to_string(conflicts_by_channel.error()));
  }
  std::uint64_t open_conflicts = 0;
  for (const auto& [channel, count] : by_channel) open_conflicts += count;

  const config::Config& config = node_.config();
  Json status{{"now_ms", now_ms},
              {"node",
               {{"name", config.node.name},
                {"id", to_hex(node_.public_key())},
                {"role", config::role_name(config.node.role)},
                {"version", ferry_version()}}},
              {"ops", store.op_count()},
              {"feeds", store.version_vector().entries().size()},
              {"open_conflicts", open_conflicts},
              {"submit_queue", counters.submit_queue},
              {"disk_free_bytes", disk_free()},
              {"store_writable", writable_},
              {"uptime_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - started_)
                                .count()},
              {"silent_after_ms", config_.silent_after.count()},
              {"replication", nullptr}};
  if (counters.replication) {
    const ReplicationCounters& r = *counters.replication;
    status["replication"] = Json{{"sessions_opened", r.sessions_opened},
                                 {"sessions_lost", r.sessions_lost},
                                 {"ops_sent", r.ops_sent},
                                 {"ops_received", r.ops_received},
                                 {"duplicates", r.duplicates},
                                 {"zap_refused", r.zap_refused},
                                 {"rejected", reason_counts(r.errors_sent)},
                                 {"errors_received", reason_counts(r.errors_received)}};
  }

  Json peer_rows = Json::array();
  for (const PeerReport& p : peers) {
    std::string key = "peer/" + to_hex(p.key);
    rates_.observe(key, p.ops_sent + p.ops_received, now_ms);
    peer_rows.push_back(peer_row(p, rates_.rates(key, now_ms)));
  }
  Json stations = stations_json(now_ms, peers, by_channel);
  rates_.forget_older(now_ms > 2 * RateTracker::bucket_ms * RateTracker::buckets
                          ? now_ms - 2 * RateTracker::bucket_ms * RateTracker::buckets
                          : 0);

  Json conflicts = Json::array();
  bool truncated = false;
  if (auto listed = store.conflicted(monitor_conflicts_max + 1)) {
    truncated = listed->size() > monitor_conflicts_max;
    for (std::size_t i = 0; i < listed->size() && i < monitor_conflicts_max; ++i) {
      const storage::Record& rec = (*listed)[i];
      Json fields = Json::array();
      for (const auto& [field, reg] : rec.state.registers) {
        if (reg.size() > 1) fields.push_back(field);
      }
      conflicts.push_back(Json{{"channel", rec.channel}, {"key", rec.key}, {"fields", fields}});
    }
  }

  MetricsInput metrics{&status, &peer_rows, &stations, &counters, now_ms};
  auto snap = std::make_shared<Snapshot>();
  snap->status = status.dump();
  snap->peers = Json{{"now_ms", now_ms}, {"peers", peer_rows}}.dump();
  snap->stations = Json{
      {"now_ms", now_ms},
      {"silent_after_ms", config_.silent_after.count()},
      {"stations",
       stations}}.dump();
  snap->conflicts = Json{
      {"now_ms", now_ms},
      {"truncated", truncated},
      {"by_channel", by_channel},
      {"conflicts",
       conflicts}}.dump();
  snap->metrics = metrics_text(metrics);
  snap->store_writable = writable_;
  last_status_ = std::move(status);
  last_peers_ = std::move(peer_rows);
  last_stations_ = std::move(stations);
  std::lock_guard lock(mutex_);
  snapshot_ = std::move(snap);
}

std::optional<Json> Monitor::station_report(const TrustEntry& entry) {
  FeedId feed{entry.key, "station/" + entry.name};
  std::uint64_t seq = node_.store().version_vector().seq(feed);
  CachedReport& cached = reports_[entry.key];
  if (cached.seq == seq && seq != 0) return cached.report;
  cached.seq = seq;
  cached.report.reset();
  if (seq == 0) return std::nullopt;
  auto record = node_.store().record(feed.channel, std::string(status_key));
  if (!record) return std::nullopt;
  Json fields = Json::object();
  for (const auto& [field, value] : winning_values(record->state)) {
    // Values are msgpack written by the station; one that is not valid is left out.
    Json decoded = Json::from_msgpack(value, true, false);
    if (!decoded.is_discarded()) fields[field] = std::move(decoded);
  }
  cached.report = std::move(fields);
  return cached.report;
}

Json Monitor::stations_json(std::uint64_t now_ms, const std::vector<PeerReport>& peers,
                            const std::map<std::string, std::uint64_t>& conflicts) {
  const TrustView* trust = node_.trust();
  if (trust == nullptr) return Json::array();
  const VersionVector& ours = node_.store().version_vector();
  std::map<PublicKey, std::uint64_t> held_by_origin;
  for (const auto& [feed, seq] : ours.entries()) held_by_origin[feed.origin] += seq;
  std::vector<StationFacts> facts;
  for (const auto& [key, entry] : trust->entries()) {
    if (facts.size() >= monitor_stations_max) break;
    if (entry.revoked || key == node_.public_key() || entry.role == role_hub) continue;
    StationFacts f;
    f.entry = entry;
    f.report = station_report(entry);
    for (const PeerReport& p : peers) {
      if (p.key == key) f.direct = &p;
    }
    auto held = held_by_origin.find(key);
    f.ops_held = held == held_by_origin.end() ? 0 : held->second;
    auto c = conflicts.find("station/" + entry.name);
    f.open_conflicts = c == conflicts.end() ? 0 : c->second;
    if (f.report) f.backlog_down = backlog_down(ours, *trust, key, *f.report);
    std::string rate_key = "station/" + to_hex(key);
    rates_.observe(rate_key, f.ops_held, now_ms);
    f.rate = rates_.rates(rate_key, now_ms);
    facts.push_back(std::move(f));
  }
  return station_rows(facts, now_ms, static_cast<std::uint64_t>(config_.silent_after.count()));
}

// ---- This node's status reports ----

void Monitor::report_status(std::uint64_t now_ms) {
  if (replicator_ == nullptr || config_.status_interval.count() == 0) return;
  if (node_.config().upstreams.empty()) return;
  auto now = std::chrono::steady_clock::now();
  if (last_report_at_ && now - *last_report_at_ < config_.status_interval) return;
  UpstreamState up = replicator_->upstream_state();
  // The reports themselves are not backlog worth reporting.
  FeedId own{node_.public_key(), default_channel(node_.config())};
  std::uint64_t acked_own = up.acked.seq(own);
  auto unacked_reports = static_cast<std::uint64_t>(
      std::ranges::count_if(report_seqs_, [&](std::uint64_t seq) { return seq > acked_own; }));
  StatusFacts facts;
  facts.name = node_.config().node.name;
  facts.role = std::string(config::role_name(node_.config().node.role));
  facts.version = std::string(ferry_version());
  facts.at_ms = now_ms;
  facts.backlog_ops = up.backlog > unacked_reports ? up.backlog - unacked_reports : 0;
  facts.oldest_unsent_ms = facts.backlog_ops == 0 ? 0 : up.oldest_unsent_ms;
  facts.disk_free_bytes = disk_free();
  facts.upstream_online = up.online;
  facts.upstream_contact_ms = up.last_contact_ms;
  facts.rejected = replicator_->counters().errors_sent;
  facts.peers = replicator_->peers();
  for (const auto& [feed, seq] : node_.store().version_vector().entries()) {
    if (feed.origin != node_.public_key()) facts.held.raise(feed, seq);
  }
  Json fields = status_fields(facts);
  bool keepalive = !last_report_at_ || now - *last_report_at_ >= config_.status_keepalive;
  if (!keepalive && last_report_ && !status_changed(*last_report_, fields)) return;
  OpDraft draft;
  draft.channel = own.channel;
  draft.kind = std::string(status_kind);
  draft.key = std::string(status_key);
  draft.body = status_body(fields);
  draft.deps_from_heads = true;
  last_report_ = std::move(fields);
  last_report_at_ = now;
  server_.submit_internal(std::move(draft), [this](const storage::Appended& a) {
    report_seqs_.push_back(a.seq);
    while (report_seqs_.size() > report_seqs_max) report_seqs_.pop_front();
  });
}

}  // namespace ferry::daemon
