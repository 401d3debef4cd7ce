// The replication monitor's event-loop side (docs/monitor.md).
//
// A Monitor lives on the daemon's event-loop thread beside the IPC server and the replicator.
// Every [monitor] refresh_ms it gathers the figures (node, peers, stations enrolled in the trust
// view and their latest status reports, conflicts) into JSON and Prometheus text, and publishes
// them as one immutable Snapshot that the HTTP threads (daemon/http_monitor.h) read under a
// mutex: the store and the replicator are only ever touched from the event loop. It also writes
// this node's own status reports (ferry.status ops) when it has an upstream, and probes that the
// store still takes writes.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "daemon/monitor_json.h"
#include "daemon/node.h"
#include "daemon/replicator.h"
#include "protocol/ipc.h"

namespace ferry::daemon {

class IpcServer;

// What the HTTP threads serve; built whole on the event loop and never changed after.
struct Snapshot {
  std::string status;     // /api/status
  std::string peers;      // /api/peers
  std::string stations;   // /api/stations
  std::string conflicts;  // /api/conflicts
  std::string metrics;    // /metrics
  bool store_writable = false;
};

class Monitor {
 public:
  Monitor(Node& node, IpcServer& server, Replicator* replicator, WallClock& wall);

  // Every round of the event loop: refreshes the snapshot and writes a status report when due.
  void tick();
  // How long the poll may wait before tick() has something to do.
  std::chrono::milliseconds timeout() const;

  // The IPC `monitor` reply, from figures at most refresh_ms old.
  ipc::Bytes ipc_reply();

  // ---- Any thread ----
  std::shared_ptr<const Snapshot> snapshot() const;
  // The event loop went round within loop_stall_max.
  bool loop_alive() const;

 private:
  void refresh(std::uint64_t now_ms);
  void report_status(std::uint64_t now_ms);
  Json stations_json(std::uint64_t now_ms, const std::vector<PeerReport>& peers,
                     const std::map<std::string, std::uint64_t>& conflicts);
  std::optional<Json> station_report(const TrustEntry& entry);
  std::uint64_t disk_free() const;

  Node& node_;
  IpcServer& server_;
  Replicator* replicator_;
  WallClock& wall_;
  const config::MonitorConfig& config_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point next_refresh_{};
  std::chrono::steady_clock::time_point next_probe_{};
  bool writable_ = true;
  RateTracker rates_;
  Json last_status_ = Json::object();
  Json last_peers_ = Json::array();
  Json last_stations_ = Json::array();

  // Reports of other nodes, read again only when their feed grew.
  struct CachedReport {
    std::uint64_t seq = 0;  // the head of its default feed when read
    std::optional<Json> report;
  };
  std::map<PublicKey, CachedReport> reports_;

  // This node's own status reports.
  std::optional<Json> last_report_;  // the fields written last
  std::optional<std::chrono::steady_clock::time_point> last_report_at_;
  std::deque<std::uint64_t> report_seqs_;  // seqs of the reports written, newest last

  mutable std::mutex mutex_;
  std::shared_ptr<const Snapshot> snapshot_;
  std::atomic<std::int64_t> last_tick_ms_{0};  // steady clock
};

// The stations listed at most, and conflicts listed by /api/conflicts.
inline constexpr std::size_t monitor_stations_max = 5'000;
inline constexpr std::size_t monitor_conflicts_max = 200;
inline constexpr std::size_t monitor_conflict_channels_max = 10'000;
// How often the store's writability is probed (a small unsynced write).
inline constexpr std::chrono::milliseconds store_probe_interval{5'000};
// /healthz fails when the event loop has not gone round for this long.
inline constexpr std::chrono::milliseconds loop_stall_max{15'000};
// Own status report seqs remembered (to leave them out of the backlog they report).
inline constexpr std::size_t report_seqs_max = 64;

}  // namespace ferry::daemon
