#include "bench/support/proc_stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace ferry::bench {
namespace {

constexpr std::size_t threads_max = 4096;  // a bound on the tasks read per process

// utime + stime of a /proc/.../stat line, in seconds; nullopt when unreadable.
std::optional<double> stat_cpu_seconds(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  const std::size_t close = line.rfind(')');  // the comm field may hold spaces
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  // After the comm: state is field 3; utime and stime are fields 14 and 15.
  std::uint64_t utime = 0;
  std::uint64_t stime = 0;
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::stoull(field);
    if (index == 15) stime = std::stoull(field);
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(ticks);
}

std::string read_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The run-queue delay of a task, in seconds (the second field of schedstat, in ns).
std::optional<double> run_delay_seconds(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t running_ns = 0;
  std::uint64_t waiting_ns = 0;
  if (!(in >> running_ns >> waiting_ns)) return std::nullopt;
  return static_cast<double>(waiting_ns) / 1e9;
}

}  // namespace

ProcessCpu operator-(const ProcessCpu& after, const ProcessCpu& before) {
  return ProcessCpu{after.total - before.total, after.main - before.main, after.zmq - before.zmq,
                    after.main_waiting - before.main_waiting};
}

Result<ProcessCpu> process_cpu(pid_t pid) {
  const std::string base = "/proc/" + std::to_string(pid);
  ProcessCpu cpu;
  try {
    auto total = stat_cpu_seconds(base + "/stat");
    if (!total) return fail(Errc::io, "cannot read " + base + "/stat");
    cpu.total = *total;
    std::error_code ec;
    std::size_t seen = 0;
    for (const auto& task : std::filesystem::directory_iterator(base + "/task", ec)) {
      if (++seen > threads_max) break;
      const std::string tid = task.path().filename().string();
      auto seconds = stat_cpu_seconds(task.path().string() + "/stat");
      if (!seconds) continue;  // the thread has just exited: its time is in the total
      if (tid == std::to_string(pid)) {
        cpu.main = *seconds;
        cpu.main_waiting = run_delay_seconds(task.path().string() + "/schedstat").value_or(0);
      } else if (read_line(task.path().string() + "/comm").starts_with("ZMQbg")) {
        cpu.zmq += *seconds;
      }
    }
    if (ec) return fail(Errc::io, "cannot list " + base + "/task: " + ec.message());
  } catch (const std::exception& e) {  // std::stoull on a malformed field
    return fail(Errc::malformed, base + ": " + e.what());
  }
  return cpu;
}

double self_cpu_seconds() {
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

Result<InterfaceCounters> loopback_counters() {
  std::ifstream in("/proc/net/dev");
  std::string line;
  for (std::size_t lines = 0; lines < 1024 && std::getline(in, line); ++lines) {
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::size_t name = line.find_first_not_of(' ');
    if (line.substr(name, colon - name) != "lo") continue;
    std::istringstream fields(line.substr(colon + 1));
    InterfaceCounters c;
    if (!(fields >> c.bytes >> c.packets)) break;
    return c;
  }
  return fail(Errc::not_found, "no lo line in /proc/net/dev");
}

}  // namespace ferry::bench
