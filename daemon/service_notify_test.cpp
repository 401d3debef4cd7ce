#include "daemon/service_notify.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace {

using namespace std::chrono_literals;
using ferry::daemon::ServiceNotify;

// A service manager's end: an AF_UNIX datagram socket in a temp dir, named by NOTIFY_SOCKET for
// as long as it lives (the environment is restored after).
class FakeManager {
 public:
  explicit FakeManager(const char* watchdog_usec) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    std::string path = dir_.file("notify.sock");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
    ::unsetenv("WATCHDOG_PID");
    if (watchdog_usec == nullptr) {
      ::unsetenv("WATCHDOG_USEC");
    } else {
      ::setenv("WATCHDOG_USEC", watchdog_usec, 1);
    }
  }
  ~FakeManager() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::close(fd_);
  }
  FakeManager(const FakeManager&) = delete;
  FakeManager& operator=(const FakeManager&) = delete;

  // Every datagram waiting now (sd_notify has returned, so what it sent is queued).
  std::vector<std::string> received() {
    std::vector<std::string> out;
    for (int n = 0; n < 1000; ++n) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
      char buffer[4096];
      ssize_t got = ::recv(fd_, buffer, sizeof buffer, 0);
      REQUIRE(got >= 0);
      out.emplace_back(buffer, static_cast<std::size_t>(got));
    }
    return out;
  }

 private:
  ferry::test::TempDir dir_;
  int fd_ = -1;
};

const ServiceNotify::Clock::time_point t0{std::chrono::hours(1)};

}  // namespace

TEST_CASE("without NOTIFY_SOCKET every notification is a no-op") {
  ::unsetenv("NOTIFY_SOCKET");
  ::setenv("WATCHDOG_USEC", "500000", 1);
  ServiceNotify service;
  ::unsetenv("WATCHDOG_USEC");
  CHECK_FALSE(service.enabled());
  CHECK_FALSE(service.ping_interval());
  service.ready("serving");
  service.tick(t0);
  service.stopping();
  CHECK(service.timeout(t0) == ferry::daemon::service_idle_timeout);
}

TEST_CASE("ready sends READY=1 with a STATUS line, stopping sends STOPPING=1 once") {
  FakeManager manager(nullptr);
  ServiceNotify service;
  REQUIRE(service.enabled());
  CHECK_FALSE(service.ping_interval());
  service.ready("serving 7 ops on ipc:///x");
  service.stopping();
  service.stopping();
  auto got = manager.received();
  REQUIRE(got.size() == 2);
  CHECK(got[0] == "READY=1\nSTATUS=serving 7 ops on ipc:///x");
  CHECK(got[1].starts_with("STOPPING=1\nSTATUS="));
}

TEST_CASE("without a watchdog no WATCHDOG=1 is sent and the loop may wait long") {
  FakeManager manager(nullptr);
  ServiceNotify service;
  for (int i = 0; i < 10; ++i) service.tick(t0 + i * 1h);
  CHECK(manager.received().empty());
  CHECK(service.timeout(t0) == ferry::daemon::service_idle_timeout);
}

TEST_CASE("the watchdog is fed at half its interval, and the loop never waits past a ping") {
  FakeManager manager("500000");
  ServiceNotify service;
  REQUIRE(service.ping_interval() == std::chrono::microseconds(250'000));
  // The first tick pings at once (the construction time is already past).
  auto start = ServiceNotify::Clock::now() + 1s;
  service.tick(start);
  CHECK(manager.received() == std::vector<std::string>{"WATCHDOG=1"});
  CHECK(service.timeout(start) == 250ms);
  CHECK(service.timeout(start + 100ms) == 150ms);
  // Rounded up, never down: 0.4 ms left waits 1 ms rather than spinning.
  CHECK(service.timeout(start + 249'600us) == 1ms);
  service.tick(start + 249ms);  // not yet due
  CHECK(manager.received().empty());
  service.tick(start + 250ms);
  CHECK(manager.received() == std::vector<std::string>{"WATCHDOG=1"});
  CHECK(service.timeout(start + 600ms) == 0ms);  // overdue: poll without waiting
  service.tick(start + 600ms);
  service.tick(start + 600ms);
  CHECK(manager.received() == std::vector<std::string>{"WATCHDOG=1"});
}

TEST_CASE("a watchdog meant for another process is ignored") {
  FakeManager manager("500000");
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  ServiceNotify service;
  ::unsetenv("WATCHDOG_PID");
  CHECK(service.enabled());
  CHECK_FALSE(service.ping_interval());
}

TEST_CASE("a malformed WATCHDOG_USEC turns the watchdog off, not the daemon") {
  FakeManager manager("soon");
  ServiceNotify service;
  CHECK(service.enabled());
  CHECK_FALSE(service.ping_interval());
  service.ready("serving");
  CHECK(manager.received().size() == 1);
}
