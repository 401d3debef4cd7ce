// ferryd under a service manager (systemd's Type=notify, docs/ferryd.md): the test plays the
// manager's part with an AF_UNIX datagram socket named by NOTIFY_SOCKET, as systemd-notify
// would see it, and checks READY=1, the watchdog pings and STOPPING=1 of a real daemon.
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

// The manager's end of NOTIFY_SOCKET, in its own temp dir. A thread reads every datagram as it
// arrives, as systemd does: the kernel queues only a few (net.unix.max_dgram_qlen, often 10)
// and then blocks the sender, which would stall the daemon's loop while the test waits on it.
// The thread makes no Catch assertions (Catch is not thread-safe); read errors end the reading.
class NotifySocket {
 public:
  NotifySocket() : path_(dir_.file("notify.sock")) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw HarnessError("socket(AF_UNIX, SOCK_DGRAM) failed");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) throw HarnessError("temp path too long");
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    if (::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw HarnessError("cannot bind " + path_ + ": " + std::strerror(errno));
    }
    reader_ = std::thread([this] { read_until_stopped(); });
  }
  ~NotifySocket() {
    stop_ = true;
    reader_.join();
    ::close(fd_);
  }
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }

  // Waits until `count` datagrams holding the line `state` have arrived in all (true), or
  // `timeout` passes (false).
  bool wait_for(const std::string& state, std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return arrived_.wait_for(lock, timeout, [&] { return count_locked(state) >= count; });
  }

  std::size_t count(const std::string& state) {
    std::lock_guard lock(mutex_);
    return count_locked(state);
  }

  std::vector<std::string> datagrams() {
    std::lock_guard lock(mutex_);
    return datagrams_;
  }

  // Every datagram so far, for failure messages.
  std::string seen() {
    std::string out;
    for (const std::string& d : datagrams()) out += "[" + d + "] ";
    return out;
  }

  // One line of a notification is exactly `state` (READY=1 is not matched by XREADY=1).
  static bool has_state(const std::string& datagram, const std::string& state) {
    std::istringstream lines(datagram);
    std::string line;
    while (std::getline(lines, line)) {
      if (line == state) return true;
    }
    return false;
  }

 private:
  void read_until_stopped() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      char buffer[4096];
      ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      if (got < 0) return;
      std::lock_guard lock(mutex_);
      datagrams_.emplace_back(buffer, static_cast<std::size_t>(got));
      arrived_.notify_all();
    }
  }

  std::size_t count_locked(const std::string& state) const {
    return static_cast<std::size_t>(
        std::count_if(datagrams_.begin(), datagrams_.end(),
                      [&](const std::string& d) { return has_state(d, state); }));
  }

  test::TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::vector<std::string> datagrams_;
  std::thread reader_;
};

NodeSettings notified(const NotifySocket& socket, std::optional<std::string> watchdog_usec) {
  NodeSettings settings;
  settings.env["NOTIFY_SOCKET"] = socket.path();
  if (watchdog_usec) settings.env["WATCHDOG_USEC"] = *watchdog_usec;
  return settings;
}

}  // namespace

TEST_CASE("ferryd notifies READY=1, feeds the watchdog, and notifies STOPPING=1 on SIGTERM") {
  NotifySocket manager;
  TestNode node(notified(manager, "500000"));
  node.start();
  // READY=1 is sent before the loop serves, so it has been sent by the time status is answered.
  REQUIRE(manager.wait_for("READY=1", 1, 10s));
  INFO("notifications: " << manager.seen());
  std::vector<std::string> first = manager.datagrams();
  CHECK(NotifySocket::has_state(first.front(), "READY=1"));
  CHECK_THAT(first.front(), Catch::Contains("STATUS=serving 0 ops on " + node.endpoint()));

  // Half of 500 ms: four pings take about a second; the bound is generous for loaded machines.
  REQUIRE(manager.wait_for("WATCHDOG=1", 4, 10s));
  // The daemon still serves while it pings, and keeps pinging.
  IpcClient client = node.client();
  node.submit_ok(client, submit_request("case.submit", "HN-1", Value::map({})));
  std::size_t pings = manager.count("WATCHDOG=1");
  REQUIRE(manager.wait_for("WATCHDOG=1", pings + 2, 10s));

  ExitStatus stopped = node.stop();
  INFO("notifications: " << manager.seen() << "\nlog:\n" << node.log());
  CHECK(stopped.text() == "exit code 0");
  // The daemon has exited: everything it sent has arrived or is queued.
  CHECK(manager.wait_for("STOPPING=1", 1, 5s));
  CHECK(manager.count("READY=1") == 1);
  std::vector<std::string> all = manager.datagrams();
  CHECK(NotifySocket::has_state(all.back(), "STOPPING=1"));  // nothing after it
}

TEST_CASE("without WATCHDOG_USEC ferryd notifies READY=1 and STOPPING=1 and never pings") {
  NotifySocket manager;
  TestNode node(notified(manager, std::nullopt));
  node.start();
  REQUIRE(manager.wait_for("READY=1", 1, 10s));
  IpcClient client = node.client();
  node.submit_ok(client, submit_request("case.submit", "HN-1", Value::map({})));
  CHECK(node.stop().text() == "exit code 0");
  REQUIRE(manager.wait_for("STOPPING=1", 1, 5s));
  INFO("notifications: " << manager.seen());
  CHECK(manager.datagrams().size() == 2);
  CHECK(manager.count("WATCHDOG=1") == 0);
}

}  // namespace ferry::it
