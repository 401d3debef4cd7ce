// The monitor's figures as JSON and as Prometheus text (docs/monitor.md), built from plain facts.
//
// Pure functions, no I/O: daemon/monitor.h gathers the facts on the event loop and calls these.
// Station rows are decided here (online, via which relay, silent, backlog down), so that the
// rules are tested without daemons.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "daemon/node.h"
#include "daemon/replicator.h"
#include "protocol/status_report.h"
#include "protocol/trust.h"
#include "protocol/version_vector.h"

namespace ferry::daemon {

using Json = nlohmann::json;

// Ops per second in the 30-second buckets of the last 15 minutes, oldest first; the last
// bucket is the current one. Fed with a running total (ops held, ops exchanged) per key.
class RateTracker {
 public:
  static constexpr std::size_t buckets = 30;
  static constexpr std::uint64_t bucket_ms = 30'000;

  void observe(const std::string& key, std::uint64_t total, std::uint64_t now_ms);
  std::array<double, buckets> rates(const std::string& key, std::uint64_t now_ms) const;
  // Forgets keys not observed since `before_ms` (a station removed, a peer forgotten).
  void forget_older(std::uint64_t before_ms);

 private:
  struct Start {  // the first observation in a bucket
    std::uint64_t total = 0;
    std::uint64_t at_ms = 0;
  };
  struct Series {
    std::map<std::uint64_t, Start> starts;  // by bucket number
    std::uint64_t total = 0;
    std::uint64_t last_ms = 0;
  };
  std::map<std::string, Series> series_;
};

Json rate_json(const std::array<double, RateTracker::buckets>& rates);

// A status report (docs/monitor.md) as this node writes it: the `set` fields.
struct StatusFacts {
  std::string name;
  std::string role;
  std::string version;
  std::uint64_t at_ms = 0;
  std::uint64_t backlog_ops = 0;
  std::uint64_t oldest_unsent_ms = 0;
  std::uint64_t disk_free_bytes = 0;
  bool upstream_online = false;
  std::uint64_t upstream_contact_ms = 0;
  std::array<std::uint64_t, sync::error_code_count> rejected{};
  std::vector<PeerReport> peers;  // at most status_peers_max are written
  VersionVector held;             // feeds of other origins; at most status_held_max are written
};

inline constexpr std::size_t status_peers_max = 64;
inline constexpr std::size_t status_held_max = 64;

// The `set` map of a report.
Json status_fields(const StatusFacts& facts);

// Whether a new report says something the last one did not: every field but the times, with
// disk space compared at 1% (it moves by a few bytes all the time).
bool status_changed(const Json& last, const Json& now);

// The op body: {"set": fields}, msgpack.
std::vector<std::uint8_t> status_body(const Json& fields);

// "ORIGINHEX/CHANNEL", how a report's `held` names a feed.
std::string feed_label(const FeedId& feed);

// A node enrolled in the trust view, and what this node knows of it.
struct StationFacts {
  TrustEntry entry;
  std::optional<Json> report;  // the `ferry.status` record's fields; nullopt: no report held
  const PeerReport* direct = nullptr;  // a peer of this node with the same key
  std::uint64_t ops_held = 0;          // of its feeds, held here
  std::uint64_t open_conflicts = 0;    // records of station/<name> with open conflicts
  std::uint64_t backlog_down = 0;      // meaningful only with a report (see station_rows)
  std::array<double, RateTracker::buckets> rate{};
};

// The rows of /api/stations (without now_ms), in name order. `now_ms` and `silent_after_ms`
// decide `silent`; relays' reports decide `online` and `via` of the stations behind them.
Json station_rows(const std::vector<StationFacts>& stations, std::uint64_t now_ms,
                  std::uint64_t silent_after_ms);

// ops held here, in channels `reader` may read and of other origins, beyond what its report's
// `held` names (a feed it does not name counts from 0).
std::uint64_t backlog_down(const VersionVector& ours, const TrustView& trust,
                           const PublicKey& reader, const Json& report);

Json peer_row(const PeerReport& peer, const std::array<double, RateTracker::buckets>& rate);

Json reason_counts(const std::array<std::uint64_t, sync::error_code_count>& counts);

// The Prometheus text exposition of the figures (version 0.0.4).
struct MetricsInput {
  const Json* status = nullptr;    // /api/status
  const Json* peers = nullptr;     // /api/peers "peers"
  const Json* stations = nullptr;  // /api/stations "stations"
  const IpcCounters* ipc = nullptr;
  std::uint64_t now_ms = 0;
};
std::string metrics_text(const MetricsInput& in);

}  // namespace ferry::daemon
