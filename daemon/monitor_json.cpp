#include "daemon/monitor_json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

#include "protocol/hex.h"

namespace ferry::daemon {
namespace {

// A rate is measured over at least this long, so that the current bucket's first second does
// not show a burst as a huge rate.
constexpr std::uint64_t rate_span_min_ms = 1'000;
// Relays behind relays: how many hops of reports are followed.
constexpr int relay_hops_max = 4;

std::uint64_t u64(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number_integer()) return 0;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  std::int64_t v = it->get<std::int64_t>();  // msgpack may carry a count as a signed int
  return v < 0 ? 0 : static_cast<std::uint64_t>(v);
}

bool flag(const Json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

std::string text(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return {};
  return it->get<std::string>();
}

}  // namespace

// ---- Rates ----

void RateTracker::observe(const std::string& key, std::uint64_t total, std::uint64_t now_ms) {
  Series& s = series_[key];
  std::uint64_t bucket = now_ms / bucket_ms;
  // A wall clock stepped back: the buckets seen no longer line up with time; start over.
  if (now_ms < s.last_ms) s.starts.clear();
  s.starts.try_emplace(bucket, Start{total, now_ms});
  while (!s.starts.empty() && s.starts.begin()->first + buckets + 1 < bucket) {
    s.starts.erase(s.starts.begin());
  }
  s.total = total;
  s.last_ms = now_ms;
}

std::array<double, RateTracker::buckets> RateTracker::rates(const std::string& key,
                                                            std::uint64_t now_ms) const {
  std::array<double, buckets> out{};
  auto found = series_.find(key);
  if (found == series_.end()) return out;
  const Series& s = found->second;
  std::uint64_t current = now_ms / bucket_ms;
  for (std::size_t i = 0; i < buckets; ++i) {
    std::uint64_t bucket = current + 1 + i - buckets;
    auto start = s.starts.find(bucket);
    if (start == s.starts.end()) continue;
    std::uint64_t start_ms = start->second.at_ms;
    std::uint64_t end_total = s.total;
    std::uint64_t end_ms = std::max(now_ms, s.last_ms);
    // A bucket ends where the next one observed starts (there may be a gap between them).
    auto next = s.starts.upper_bound(bucket);
    if (next != s.starts.end()) {
      end_total = next->second.total;
      end_ms = next->second.at_ms;
    } else if (bucket != current) {
      end_ms = s.last_ms;  // observed no more after this bucket
    }
    if (end_total < start->second.total) continue;  // the total went down (a rebuilt store)
    std::uint64_t span = std::max(end_ms > start_ms ? end_ms - start_ms : 0, rate_span_min_ms);
    out[i] =
        static_cast<double>(end_total - start->second.total) * 1000.0 / static_cast<double>(span);
  }
  return out;
}

void RateTracker::forget_older(std::uint64_t before_ms) {
  for (auto it = series_.begin(); it != series_.end();) {
    if (it->second.last_ms < before_ms) {
      it = series_.erase(it);
    } else {
      ++it;
    }
  }
}

Json rate_json(const std::array<double, RateTracker::buckets>& rates) {
  Json out = Json::array();
  for (double r : rates) out.push_back(std::round(r * 100.0) / 100.0);
  return out;
}

// ---- Status reports ----

Json reason_counts(const std::array<std::uint64_t, sync::error_code_count>& counts) {
  Json out = Json::object();
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] == 0) continue;
    out[std::string(sync::error_code_name(static_cast<sync::ErrorCode>(i)))] = counts[i];
  }
  return out;
}

std::string feed_label(const FeedId& feed) { return to_hex(feed.origin) + "/" + feed.channel; }

Json status_fields(const StatusFacts& f) {
  Json peers = Json::array();
  for (const PeerReport& p : f.peers) {
    if (peers.size() >= status_peers_max) break;
    peers.push_back(Json{{"name", p.name},
                         {"key", to_hex(p.key)},
                         {"online", p.connected},
                         {"upstream", p.upstream}});
  }
  Json held = Json::object();
  for (const auto& [feed, seq] : f.held.entries()) {
    if (held.size() >= status_held_max) break;
    held[feed_label(feed)] = seq;
  }
  return Json{{"name", f.name},
              {"role", f.role},
              {"version", f.version},
              {"at_ms", f.at_ms},
              {"backlog_ops", f.backlog_ops},
              {"oldest_unsent_ms", f.oldest_unsent_ms},
              {"disk_free_bytes", f.disk_free_bytes},
              {"upstream_online", f.upstream_online},
              {"upstream_contact_ms", f.upstream_contact_ms},
              {"rejected", reason_counts(f.rejected)},
              {"peers", std::move(peers)},
              {"held", std::move(held)}};
}

bool status_changed(const Json& last, const Json& now) {
  static const std::set<std::string> times = {"at_ms", "upstream_contact_ms", "disk_free_bytes"};
  for (const auto& [key, value] : now.items()) {
    if (times.contains(key)) continue;
    auto old = last.find(key);
    if (old == last.end() || *old != value) return true;
  }
  for (const auto& [key, value] : last.items()) {
    if (!now.contains(key)) return true;
  }
  std::uint64_t a = u64(last, "disk_free_bytes");
  std::uint64_t b = u64(now, "disk_free_bytes");
  std::uint64_t diff = a > b ? a - b : b - a;
  return diff > std::max(a, b) / 100;
}

std::vector<std::uint8_t> status_body(const Json& fields) {
  return Json::to_msgpack(Json{{"set", fields}});
}

// ---- Stations ----

std::uint64_t backlog_down(const VersionVector& ours, const TrustView& trust,
                           const PublicKey& reader, const Json& report) {
  const Json* held = nullptr;
  auto it = report.find("held");
  if (it != report.end() && it->is_object()) held = &*it;
  std::uint64_t total = 0;
  for (const auto& [feed, seq] : ours.entries()) {
    if (feed.origin == reader || !trust.may_read(reader, feed.channel)) continue;
    std::uint64_t theirs = held == nullptr ? 0 : u64(*held, feed_label(feed).c_str());
    if (seq > theirs) total += seq - theirs;
  }
  return total;
}

Json station_rows(const std::vector<StationFacts>& stations, std::uint64_t now_ms,
                  std::uint64_t silent_after_ms) {
  struct Row {
    bool online = false;
    std::string via;
    std::uint64_t last_seen_ms = 0;
  };
  std::map<PublicKey, Row> rows;
  for (const StationFacts& s : stations) {
    Row r;
    if (s.direct != nullptr) {
      r.online = s.direct->connected;
      r.last_seen_ms = s.direct->last_seen_ms;
    }
    if (s.report) r.last_seen_ms = std::max(r.last_seen_ms, u64(*s.report, "at_ms"));
    rows[s.entry.key] = r;
  }
  // A relay's latest report is the last word of the stations it lists as online below it, even
  // when the relay itself has gone quiet since.
  for (const StationFacts& relay : stations) {
    if (!relay.report) continue;
    auto peers = relay.report->find("peers");
    if (peers == relay.report->end() || !peers->is_array()) continue;
    std::uint64_t at = u64(*relay.report, "at_ms");
    for (const Json& p : *peers) {
      if (!p.is_object() || flag(p, "upstream") || !flag(p, "online")) continue;
      auto key = from_hex<public_key_bytes>(text(p, "key"));
      if (!key) continue;
      auto row = rows.find(*key);
      if (row != rows.end()) row->second.last_seen_ms = std::max(row->second.last_seen_ms, at);
    }
  }
  // A relay online here vouches for the stations its latest report lists as online below it.
  for (int hop = 0; hop < relay_hops_max; ++hop) {
    bool moved = false;
    for (const StationFacts& relay : stations) {
      const Row& rr = rows[relay.entry.key];
      if (!relay.report || !rr.online) continue;
      auto peers = relay.report->find("peers");
      if (peers == relay.report->end() || !peers->is_array()) continue;
      for (const Json& p : *peers) {
        if (!p.is_object() || flag(p, "upstream") || !flag(p, "online")) continue;
        auto key = from_hex<public_key_bytes>(text(p, "key"));
        if (!key) continue;
        auto row = rows.find(*key);
        if (row == rows.end() || row->second.online) continue;
        row->second.online = true;
        row->second.via = relay.entry.name;
        moved = true;
      }
    }
    if (!moved) break;
  }
  Json out = Json::array();
  std::vector<const StationFacts*> sorted;
  for (const StationFacts& s : stations) sorted.push_back(&s);
  std::sort(sorted.begin(), sorted.end(), [](const StationFacts* a, const StationFacts* b) {
    return a->entry.name != b->entry.name ? a->entry.name < b->entry.name
                                          : a->entry.key < b->entry.key;
  });
  for (const StationFacts* s : sorted) {
    const Row& r = rows[s->entry.key];
    bool silent = r.last_seen_ms == 0 || now_ms > r.last_seen_ms + silent_after_ms;
    Json row{{"name", s->entry.name},
             {"key", to_hex(s->entry.key)},
             {"role", s->entry.role},
             {"online", r.online},
             {"via", r.via},
             {"silent", silent && !r.online},
             {"last_seen_ms", r.last_seen_ms},
             {"open_conflicts", s->open_conflicts},
             {"ops_held", s->ops_held},
             {"rate", rate_json(s->rate)}};
    if (s->report) {
      const Json& rep = *s->report;
      row["last_report_ms"] = u64(rep, "at_ms");
      row["backlog_up"] = u64(rep, "backlog_ops");
      row["backlog_down"] = s->backlog_down;
      row["oldest_unsent_ms"] = u64(rep, "oldest_unsent_ms");
      row["disk_free_bytes"] = u64(rep, "disk_free_bytes");
      row["version"] = text(rep, "version");
      // A report is the station's own word: only counts are passed on.
      Json counts = Json::object();
      auto rejected = rep.find("rejected");
      if (rejected != rep.end() && rejected->is_object()) {
        for (const auto& [reason, count] : rejected->items()) {
          if (count.is_number_unsigned()) counts[reason] = count;
        }
      }
      row["rejected"] = std::move(counts);
    } else {
      row["last_report_ms"] = 0;
      row["backlog_up"] = nullptr;
      row["backlog_down"] = nullptr;
      row["oldest_unsent_ms"] = 0;
      row["disk_free_bytes"] = nullptr;
      row["version"] = "";
      row["rejected"] = Json::object();
    }
    out.push_back(std::move(row));
  }
  return out;
}

Json peer_row(const PeerReport& p, const std::array<double, RateTracker::buckets>& rate) {
  return Json{{"name", p.name},
              {"key", to_hex(p.key)},
              {"upstream", p.upstream},
              {"endpoint", p.endpoint},
              {"online", p.connected},
              {"last_seen_ms", p.last_seen_ms},
              {"backlog_out", p.backlog},
              {"backlog_in", p.backlog_in},
              {"oldest_unsent_ms", p.oldest_unsent_ms},
              {"ops_sent", p.ops_sent},
              {"ops_received", p.ops_received},
              {"rejected", reason_counts(p.rejected)},
              {"last_error", p.last_error},
              {"rate", rate_json(rate)}};
}

// ---- Prometheus ----

namespace {

std::string label_value(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

class Exposition {
 public:
  // Starts a metric family; samples follow with sample().
  void family(const std::string& name, const char* type, const char* help) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void sample(const std::string& name,
              const std::vector<std::pair<std::string, std::string>>& labels, double value) {
    out_ << name;
    if (!labels.empty()) {
      out_ << "{";
      for (std::size_t i = 0; i < labels.size(); ++i) {
        out_ << (i ? "," : "") << labels[i].first << "=\"" << label_value(labels[i].second) << "\"";
      }
      out_ << "}";
    }
    out_ << " " << number(value) << "\n";
  }
  void one(const std::string& name, const char* type, const char* help, double value) {
    family(name, type, help);
    sample(name, {}, value);
  }
  std::string take() { return out_.str(); }

 private:
  std::ostringstream out_;
};

double num(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return 0;
  return it->get<double>();
}

// A number that may be null (a station without a report): no sample then.
std::optional<double> maybe_num(const Json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

double age_seconds(std::uint64_t now_ms, std::uint64_t at_ms) {
  if (at_ms == 0 || at_ms > now_ms) return 0;
  return static_cast<double>(now_ms - at_ms) / 1000.0;
}

std::string peer_label(const Json& p) {
  std::string name = text(p, "name");
  return name.empty() ? text(p, "key").substr(0, 16) : name;
}

// One family with a sample per (row, reason) of a `rejected` map.
void reasons(Exposition& e, const std::string& name, const char* help, const Json& rows,
             const char* label, std::string (*label_of)(const Json&)) {
  e.family(name, "counter", help);
  for (const Json& row : rows) {
    auto rejected = row.find("rejected");
    if (rejected == row.end() || !rejected->is_object()) continue;
    for (const auto& [reason, count] : rejected->items()) {
      if (count.is_number())
        e.sample(name, {{label, label_of(row)}, {"reason", reason}}, count.get<double>());
    }
  }
}

std::string station_label(const Json& s) { return text(s, "name"); }

}  // namespace

std::string metrics_text(const MetricsInput& in) {
  Exposition e;
  const Json& st = *in.status;
  const Json& node = st.at("node");
  e.family("ferry_info", "gauge", "This node: name, role and ferryd version (always 1).");
  e.sample("ferry_info",
           {{"node", text(node, "name")},
            {"role", text(node, "role")},
            {"version", text(node, "version")}},
           1);
  e.one("ferry_ops", "gauge", "Ops held in the store.", num(st, "ops"));
  e.one("ferry_feeds", "gauge", "Feeds (origin, channel) held in the store.", num(st, "feeds"));
  e.one("ferry_open_conflicts", "gauge", "Records with open conflicts.", num(st, "open_conflicts"));
  e.one("ferry_submit_queue_length", "gauge", "Submits waiting for a commit.",
        num(st, "submit_queue"));
  e.one("ferry_disk_free_bytes", "gauge", "Free space on the data directory's file system.",
        num(st, "disk_free_bytes"));
  e.one("ferry_store_writable", "gauge", "1 when the last write probe of the store succeeded.",
        flag(st, "store_writable") ? 1 : 0);
  e.one("ferry_uptime_seconds", "gauge", "Time since the daemon started.",
        num(st, "uptime_ms") / 1000.0);

  const IpcCounters& ipc = *in.ipc;
  e.one("ferry_ipc_requests_total", "counter", "IPC requests received.",
        static_cast<double>(ipc.requests));
  e.family("ferry_ipc_errors_total", "counter", "IPC requests refused, by error code.");
  for (std::size_t i = 0; i < ipc.errors.size(); ++i) {
    e.sample("ferry_ipc_errors_total",
             {{"code", std::string(ipc::code_name(static_cast<ipc::Code>(i)))}},
             static_cast<double>(ipc.errors[i]));
  }
  e.one("ferry_submits_total", "counter", "Submits acknowledged after their durable commit.",
        static_cast<double>(ipc.submits));
  e.family("ferry_submit_duration_seconds", "histogram",
           "Time from a submit's arrival to its acknowledgement.");
  std::uint64_t cumulative = 0;
  const LatencyHistogram& h = ipc.submit_latency;
  for (std::size_t i = 0; i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    double bound = i < h.bounds.size() ? h.bounds[i] : INFINITY;
    e.sample("ferry_submit_duration_seconds_bucket", {{"le", number(bound)}},
             static_cast<double>(cumulative));
  }
  e.sample("ferry_submit_duration_seconds_sum", {}, h.sum_seconds);
  e.sample("ferry_submit_duration_seconds_count", {}, static_cast<double>(h.count));

  auto rep = st.find("replication");
  if (rep != st.end() && rep->is_object()) {
    e.one("ferry_replication_sessions_opened_total", "counter", "Peer sessions opened.",
          num(*rep, "sessions_opened"));
    e.one("ferry_replication_sessions_lost_total", "counter",
          "Peer sessions ended by a timeout, a disconnect or an error.",
          num(*rep, "sessions_lost"));
    e.one("ferry_replication_ops_sent_total", "counter", "Ops sent to peers.",
          num(*rep, "ops_sent"));
    e.one("ferry_replication_ops_received_total", "counter", "Ops received from peers and stored.",
          num(*rep, "ops_received"));
    e.one("ferry_replication_duplicate_ops_total", "counter",
          "Ops received from peers that were already held.", num(*rep, "duplicates"));
    e.one("ferry_replication_zap_refused_total", "counter",
          "Peer handshakes refused: key not admitted.", num(*rep, "zap_refused"));
    for (const auto& [field, name, help] :
         {std::tuple{"rejected", "ferry_replication_rejected_total",
                     "Ops and messages refused from peers, by reason."},
          std::tuple{"errors_received", "ferry_replication_errors_received_total",
                     "Errors peers sent to this node, by reason."}}) {
      e.family(name, "counter", help);
      auto counts = rep->find(field);
      if (counts == rep->end() || !counts->is_object()) continue;
      for (const auto& [reason, count] : counts->items()) {
        if (count.is_number()) e.sample(name, {{"reason", reason}}, count.get<double>());
      }
    }
  }

  if (in.peers != nullptr) {
    const Json& peers = *in.peers;
    auto per_peer = [&](const std::string& name, const char* type, const char* help, auto value) {
      e.family(name, type, help);
      for (const Json& p : peers) {
        e.sample(name,
                 {{"peer", peer_label(p)}, {"direction", flag(p, "upstream") ? "up" : "down"}},
                 value(p));
      }
    };
    per_peer("ferry_peer_up", "gauge", "1 while a session with the peer is open.",
             [](const Json& p) { return flag(p, "online") ? 1.0 : 0.0; });
    per_peer("ferry_peer_last_seen_timestamp_seconds", "gauge",
             "Unix time of the last message from the peer (0: never).",
             [](const Json& p) { return num(p, "last_seen_ms") / 1000.0; });
    per_peer("ferry_peer_backlog_out_ops", "gauge",
             "Ops held here that the peer may read and has not acknowledged.",
             [](const Json& p) { return num(p, "backlog_out"); });
    per_peer("ferry_peer_backlog_in_ops", "gauge",
             "Ops the peer reported holding that this node does not hold.",
             [](const Json& p) { return num(p, "backlog_in"); });
    per_peer("ferry_peer_oldest_unsent_age_seconds", "gauge",
             "Age of the oldest op the peer has not acknowledged (0: none).", [&](const Json& p) {
               return age_seconds(in.now_ms,
                                  static_cast<std::uint64_t>(num(p, "oldest_unsent_ms")));
             });
    per_peer("ferry_peer_ops_sent_total", "counter", "Ops sent to the peer.",
             [](const Json& p) { return num(p, "ops_sent"); });
    per_peer("ferry_peer_ops_received_total", "counter", "Ops received from the peer and stored.",
             [](const Json& p) { return num(p, "ops_received"); });
    reasons(e, "ferry_peer_rejected_total", "Ops and messages of the peer refused, by reason.",
            peers, "peer", &peer_label);
  }

  if (in.stations != nullptr) {
    const Json& stations = *in.stations;
    auto per_station = [&](const std::string& name, const char* help, auto value) {
      e.family(name, "gauge", help);
      for (const Json& s : stations) {
        auto v = value(s);
        if (v) e.sample(name, {{"station", text(s, "name")}}, *v);
      }
    };
    using Opt = std::optional<double>;
    per_station("ferry_station_up", "1 while the station is online (directly or via a relay).",
                [](const Json& s) -> Opt { return flag(s, "online") ? 1.0 : 0.0; });
    per_station("ferry_station_silent",
                "1 when the station has not been heard from for longer "
                "than silent_after_ms.",
                [](const Json& s) -> Opt { return flag(s, "silent") ? 1.0 : 0.0; });
    per_station("ferry_station_last_seen_timestamp_seconds",
                "Unix time the station was last heard of (0: never).",
                [](const Json& s) -> Opt { return num(s, "last_seen_ms") / 1000.0; });
    per_station("ferry_station_last_report_timestamp_seconds",
                "Unix time of the station's latest status report held here (0: none).",
                [](const Json& s) -> Opt { return num(s, "last_report_ms") / 1000.0; });
    per_station("ferry_station_backlog_up_ops",
                "Ops the station had not got acknowledged upstream, as of its latest report.",
                [](const Json& s) { return maybe_num(s, "backlog_up"); });
    per_station("ferry_station_backlog_down_ops",
                "Ops held here for the station beyond what its latest report says it holds.",
                [](const Json& s) { return maybe_num(s, "backlog_down"); });
    per_station("ferry_station_oldest_unsent_age_seconds",
                "Age of the station's oldest op not acknowledged upstream, as of its latest "
                "report (0: none).",
                [&](const Json& s) -> Opt {
                  return age_seconds(in.now_ms,
                                     static_cast<std::uint64_t>(num(s, "oldest_unsent_ms")));
                });
    per_station("ferry_station_disk_free_bytes",
                "Free space on the station's data file system, as of its latest report.",
                [](const Json& s) { return maybe_num(s, "disk_free_bytes"); });
    per_station("ferry_station_open_conflicts",
                "Records of the station's channel with open conflicts, held here.",
                [](const Json& s) -> Opt { return num(s, "open_conflicts"); });
    per_station("ferry_station_ops", "Ops of the station's feeds held here.",
                [](const Json& s) -> Opt { return num(s, "ops_held"); });
    reasons(e, "ferry_station_rejected_total",
            "Ops and messages the station refused from its peers, by reason, as of its latest "
            "report.",
            stations, "station", &station_label);
  }
  return e.take();
}

}  // namespace ferry::daemon
