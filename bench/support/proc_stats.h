// What the kernel counts for the benchmark: the CPU time of a ferryd and of its threads, the
// benchmark's own CPU time, and the bytes through the loopback interface.
//
// Read from /proc (Linux only). A process's total includes the time of its threads that have
// already exited (the verification helpers that ingest starts per batch, for one). Pure reads of
// kernel files; any thread may call these. Errors are Result values.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "protocol/error.h"

namespace ferry::bench {

// Seconds of CPU (user + system) since the process started.
struct ProcessCpu {
  double total = 0;  // every thread, exited ones included
  double main = 0;   // the main thread: ferryd's event loop (IPC, replication, commits)
  double zmq = 0;    // ZeroMQ's background threads (ZMQbg/...): socket I/O and CurveZMQ
  // Time the main thread was runnable but waited for a core (/proc/PID/task/PID/schedstat):
  // on a busy machine, what other processes took from the event loop.
  double main_waiting = 0;
  double other() const { return total - main - zmq; }  // signers, verifiers, checkpointer
};

ProcessCpu operator-(const ProcessCpu& after, const ProcessCpu& before);

[[nodiscard]] Result<ProcessCpu> process_cpu(pid_t pid);

// CPU seconds of the benchmark process itself (getrusage RUSAGE_SELF): the relay, the poller.
double self_cpu_seconds();

// The loopback interface's receive counters from /proc/net/dev (on lo, received = sent).
struct InterfaceCounters {
  std::uint64_t bytes = 0;
  std::uint64_t packets = 0;
};

[[nodiscard]] Result<InterfaceCounters> loopback_counters();

}  // namespace ferry::bench
