#include "daemon/service_notify.h"

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace ferry::daemon {

ServiceNotify::ServiceNotify() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && socket[0] != '\0';
  if (!enabled_) return;
  // sd_watchdog_enabled also checks WATCHDOG_PID: a watchdog meant for another process is not
  // ours (a child of a service whose environment leaked).
  std::uint64_t usec = 0;
  int watchdog = sd_watchdog_enabled(0, &usec);
  if (watchdog < 0) {
    spdlog::warn("service manager: ignoring a malformed WATCHDOG_USEC: {}",
                 std::strerror(-watchdog));
  } else if (watchdog > 0 && usec > 0) {
    // Half the interval, as sd_watchdog_enabled(3) advises: one late round does not kill us.
    ping_interval_ = std::chrono::microseconds(std::max<std::uint64_t>(usec / 2, 1));
    next_ping_ = Clock::now();
  }
}

void ServiceNotify::ready(const std::string& status) {
  if (!enabled_) return;
  if (!send("READY=1\nSTATUS=" + status)) {
    spdlog::warn("service manager: cannot send READY=1 to NOTIFY_SOCKET");
  }
}

void ServiceNotify::stopping() {
  if (!enabled_ || stopping_) return;
  stopping_ = true;
  if (!send("STOPPING=1\nSTATUS=stopping: answering what was read, then exiting")) {
    spdlog::warn("service manager: cannot send STOPPING=1 to NOTIFY_SOCKET");
  }
}

void ServiceNotify::tick(Clock::time_point now) {
  if (!enabled_ || !ping_interval_ || now < next_ping_) return;
  next_ping_ = now + *ping_interval_;
  if (!send("WATCHDOG=1") && !ping_failure_logged_) {
    // Once: a socket that is gone stays gone, and the log must not fill with it.
    ping_failure_logged_ = true;
    spdlog::warn("service manager: cannot send WATCHDOG=1 to NOTIFY_SOCKET");
  }
}

std::chrono::milliseconds ServiceNotify::timeout(Clock::time_point now) const {
  if (!enabled_ || !ping_interval_) return service_idle_timeout;
  if (now >= next_ping_) return std::chrono::milliseconds(0);
  // Rounded up: a wait rounded down would wake just before the ping is due and spin.
  return std::chrono::ceil<std::chrono::milliseconds>(next_ping_ - now);
}

bool ServiceNotify::send(const std::string& state) {
  // sd_notify returns > 0 when sent, 0 when NOTIFY_SOCKET is unset, < 0 (-errno) on failure.
  return sd_notify(0, state.c_str()) > 0;
}

}  // namespace ferry::daemon
