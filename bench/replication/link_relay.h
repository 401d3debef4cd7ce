// The link between the station and the hub, as the benchmark controls it: a loopback TCP relay
// that the station's [[upstream]] points at, which the benchmark cuts and heals, and which counts
// every byte that crosses it.
//
// The relay listens on 127.0.0.1 (a port the kernel chose at start) and forwards each connection
// it accepts to the hub's port, byte for byte, in both directions, one thread per direction. cut()
// closes the listener and every connection, so the station sees its connection end and then its
// reconnects refused, as on a link that is down; heal() listens again on the same port, and the
// station's next reconnect gets through. The byte counts are the TCP payload that crossed the
// relay (ZMTP framing and CurveZMQ boxes included, IP and TCP headers not), counted by the relay
// and, as a cross-check, by the kernel's TCP_INFO of the station-facing sockets. A LinkRelay is
// driven from one thread; its own threads only relay and count. Nothing throws out of it: errors
// are Result values, and the destructor cuts the link and joins every thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "protocol/error.h"

namespace ferry::bench {

struct LinkCounters {
  std::uint64_t connections = 0;  // accepted from the station
  std::uint64_t up_bytes = 0;     // station → hub, as relayed
  std::uint64_t down_bytes = 0;   // hub → station, as relayed
  // The kernel's counters of the station-facing sockets (struct tcp_info).
  std::uint64_t kernel_received_bytes = 0;  // tcpi_bytes_received: station → relay
  std::uint64_t kernel_acked_bytes = 0;     // tcpi_bytes_acked: relay → station, acknowledged
  std::uint64_t kernel_segments_in = 0;     // tcpi_segs_in
  std::uint64_t kernel_segments_out = 0;    // tcpi_segs_out
};

LinkCounters operator-(const LinkCounters& after, const LinkCounters& before);

class LinkRelay {
 public:
  using Clock = std::chrono::steady_clock;

  // Listens on a free loopback port and forwards to 127.0.0.1:hub_port.
  [[nodiscard]] static Result<std::unique_ptr<LinkRelay>> start(int hub_port);
  ~LinkRelay();
  LinkRelay(const LinkRelay&) = delete;
  LinkRelay& operator=(const LinkRelay&) = delete;

  int port() const { return port_; }

  // Closes the listener and every connection, and joins their threads. Idempotent.
  void cut();
  // Listens again on the same port; returns the time just after listen() succeeded.
  [[nodiscard]] Result<Clock::time_point> heal();
  bool up() const { return listen_fd_ >= 0; }

  // When the first connection after the last heal() was accepted; nullopt while none was.
  std::optional<Clock::time_point> first_accept_after_heal() const;

  // Totals over every connection so far, live ones included.
  LinkCounters counters() const;

 private:
  struct Connection {
    int station_fd = -1;
    int hub_fd = -1;
    std::thread up;    // station → hub
    std::thread down;  // hub → station
  };
  LinkRelay(int hub_port, int port) : hub_port_(hub_port), port_(port) {}
  [[nodiscard]] Result<void> listen_now();
  void accept_loop();
  void serve(int station_fd);
  void pump(Connection& c, bool up);
  static void add_kernel_counters(int station_fd, LinkCounters& into);

  const int hub_port_;
  int port_;  // 0 until the first listen() picks one; the same port after every heal()
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd that ends accept_loop
  std::thread acceptor_;
  std::atomic<bool> accepting_{false};
  mutable std::mutex mutex_;  // guards everything below
  std::list<Connection> connections_;
  LinkCounters closed_;  // kernel counters of the connections already closed
  std::optional<Clock::time_point> first_accept_;
  std::atomic<std::uint64_t> up_bytes_{0};
  std::atomic<std::uint64_t> down_bytes_{0};
};

}  // namespace ferry::bench
