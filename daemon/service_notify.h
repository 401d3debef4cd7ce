// Tells the service manager how ferryd is doing (systemd's Type=notify protocol, sd_notify(3)).
//
// ferryd sends READY=1 (with a STATUS= line) once it serves, STOPPING=1 when the stop signal
// arrives, and WATCHDOG=1 at half the watchdog interval while its event loop turns, so that a
// hung loop is noticed and restarted (WatchdogSec= in deploy/systemd/ferryd@.service). The
// environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID) is read once, at construction:
// without NOTIFY_SOCKET every call is a no-op. One object lives on the event-loop thread and is
// only used from it. Sending never fails the daemon: a lost notification is logged, nothing more.
// sd_notify blocks while the manager's socket queue is full; systemd reads its socket at once,
// and a manager that stops reading stops the loop, which its watchdog then reports.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace ferry::daemon {

// The event loop's longest wait when there is no watchdog to feed; the loop's own limits apply.
inline constexpr std::chrono::milliseconds service_idle_timeout{60'000};

class ServiceNotify {
 public:
  using Clock = std::chrono::steady_clock;

  ServiceNotify();
  ServiceNotify(const ServiceNotify&) = delete;
  ServiceNotify& operator=(const ServiceNotify&) = delete;

  // Whether a service manager listens (NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  // How often WATCHDOG=1 is sent: half of WATCHDOG_USEC; nullopt without a watchdog.
  std::optional<std::chrono::microseconds> ping_interval() const { return ping_interval_; }

  // READY=1 and STATUS=<status>: the daemon serves.
  void ready(const std::string& status);
  // STOPPING=1: the stop signal arrived; the daemon finishes what it read and exits.
  void stopping();
  // Called every round of the event loop: sends WATCHDOG=1 when the ping is due.
  void tick(Clock::time_point now = Clock::now());
  // The longest the event loop may wait before the next tick() is due.
  std::chrono::milliseconds timeout(Clock::time_point now = Clock::now()) const;

 private:
  bool send(const std::string& state);

  bool enabled_ = false;
  std::optional<std::chrono::microseconds> ping_interval_;
  Clock::time_point next_ping_{};
  bool stopping_ = false;
  bool ping_failure_logged_ = false;
};

}  // namespace ferry::daemon
