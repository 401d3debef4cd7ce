// One round of the replication benchmark: a hub and a station (real ferryd processes on loopback
// TCP, CurveZMQ on), the link between them cut while the station files ops, then healed, timed
// until the hub holds them durably; then single-op heals, timed until the op is durable at the hub.
//
// What a round does, in order:
//   1. set up: a fresh temp directory; the hub, which trusts the station (trust_add); the station,
//      whose upstream is the benchmark's LinkRelay; one op filed at the station and held at the
//      hub (so the station holds the trust ops and a session has worked once);
//   2. catch-up: the link is cut; the station files `ops` ops (acknowledged, durable there) while
//      it cannot reach the hub; the Ed25519 verify rate is measured on 1 and 2 threads (the
//      baseline, with both daemons idle); the link is healed, and the hub's store is watched
//      (FeedWatch: the station feed's head seq, every 2 ms) until it holds the first and then the
//      last of those ops durably. The relay counts the bytes, /proc the CPU time, and a probe
//      thread times the hub's IPC replies (track, every 10 ms) meanwhile;
//   3. heals: `heals` times, the link is cut, one op is filed at the station, the link is healed,
//      and the hub's store is watched (every millisecond) until it holds that op;
//   4. checks and stop: nothing left unacknowledged, the hub's IPC knows the last op, the counters
//      agree, both daemons stop with status 0; the station's own store gives the ops' sizes.
// Every wait is bounded. On any error the round returns it and its destructor kills both
// daemons (FerrydProcess), cuts the relay and removes the directory (unless kept).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bench/replication/link_relay.h"
#include "bench/replication/replication_nodes.h"
#include "bench/replication/verify_rate.h"
#include "bench/support/bench_support.h"
#include "bench/support/proc_stats.h"
#include "protocol/error.h"

namespace ferry::bench {

struct RoundOptions {
  std::string dir;     // parent of the round's temp directory
  std::string ferryd;  // the ferryd binary to run
  std::uint64_t ops = 0;
  std::uint64_t heals = 0;
  Seconds verify_seconds{};
  bool keep = false;  // leave the temp directory (node dirs, logs) in place
  std::uint64_t seed = 0;
};

struct CatchUpResult {
  std::uint64_t ops = 0;  // filed at the station while the link was cut
  Seconds queue_time{};   // to file them, acknowledged
  VerifyRate verify_one;
  VerifyRate verify_two;
  Seconds to_accept{};  // heal → the relay accepted the station's connection
  Seconds to_first{};   // heal → the first op held at the hub (its first batch committed)
  Seconds to_last{};    // heal → the last op held at the hub
  std::uint64_t first_batch_ops = 0;  // ops committed with the first one ([replication] batch)
  Seconds to_tenth{};                 // heal → 10% of the ops held at the hub
  Seconds to_ninetieth{};             // heal → 90%
  ProcessCpu hub_cpu;                 // heal → last
  ProcessCpu station_cpu;
  double bench_cpu = 0;  // the relay, the watcher and the IPC probe
  LinkCounters wire;     // heal → last, and a short settle for the last acknowledgement
  InterfaceCounters loopback;
  std::vector<double> hub_ipc_ms;  // reply times of the hub's IPC (track) during the drain

  double drain_per_second() const { return static_cast<double>(ops) / to_last.count(); }
  // Between 10% and 90% held: the drain without the session setup and the last batches.
  double steady_per_second() const {
    return 0.8 * static_cast<double>(ops) / (to_ninetieth - to_tenth).count();
  }
};

struct HealSample {
  Seconds to_accept{};  // heal → the relay accepted the station's connection
  Seconds to_held{};    // heal → the op durable at the hub
  LinkCounters wire;    // heal → held, and a short settle
};

struct OpSizes {
  std::uint64_t ops = 0;
  double envelope_bytes = 0;  // mean encoded envelope
  double signature_bytes = 0;
};

struct RoundResult {
  std::string kept_dir;  // set with --keep
  CatchUpResult catch_up;
  std::vector<HealSample> heals;
  OpSizes sizes;
  ReplicationView hub;       // at the end
  ReplicationView station;   // at the end
  std::uint64_t resent = 0;  // ops the station sent more than once
};

[[nodiscard]] Result<RoundResult> run_round(const RoundOptions& options);

}  // namespace ferry::bench
