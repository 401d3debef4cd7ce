// The monitor over HTTP (docs/monitor.md): the dashboard, the JSON API, /metrics and /healthz.
//
// cpp-httplib serves on its own small pool of threads; every answer comes from the Monitor's
// latest Snapshot (daemon/monitor.h), so no HTTP thread touches the store or the replicator.
// With a token configured every request must carry `Authorization: Bearer TOKEN`, compared in
// constant time; without one the server may only listen on loopback (config/config.h checks).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "config/config.h"
#include "daemon/monitor.h"
#include "protocol/error.h"

namespace httplib {
class Server;
}

namespace ferry::daemon {

class HttpMonitor {
 public:
  HttpMonitor(const config::MonitorConfig& config, const Monitor& monitor);
  ~HttpMonitor();
  HttpMonitor(const HttpMonitor&) = delete;
  HttpMonitor& operator=(const HttpMonitor&) = delete;

  // Binds and starts serving on a thread of its own; the URL it serves (port 0 resolved).
  [[nodiscard]] Result<std::string> start();
  void stop();

 private:
  void routes();

  const config::MonitorConfig& config_;
  const Monitor& monitor_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

// Connections served at once; more wait in the kernel's queue.
inline constexpr int http_threads = 4;
inline constexpr std::size_t http_request_bytes_max = 64 * 1024;
inline constexpr int http_io_timeout_seconds = 5;
inline constexpr std::chrono::milliseconds http_start_wait{2'000};

}  // namespace ferry::daemon
