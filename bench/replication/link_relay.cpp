#include "bench/replication/link_relay.h"

#include <arpa/inet.h>
#include <linux/tcp.h>  // struct tcp_info with tcpi_bytes_acked and tcpi_bytes_received
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <system_error>
#include <vector>

namespace ferry::bench {

namespace {

constexpr std::size_t relay_buffer_bytes = 256 * 1024;
constexpr int listen_backlog = 16;
// A bound on the reads of one direction of one connection (at 256 KiB or less each): far more
// than any run moves, so it never ends a healthy connection.
constexpr std::uint64_t reads_max = std::uint64_t{1} << 40;
// A bound on the accepts between one heal and the next cut.
constexpr std::uint64_t accepts_max = 1'000'000;

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  return addr;
}

void set_nodelay(int fd) {
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool write_all(int fd, const char* data, std::size_t size) {
  std::size_t done = 0;
  for (std::uint64_t attempt = 0; done < size && attempt < reads_max; ++attempt) {
    // MSG_NOSIGNAL: a peer that has gone (or a cut) is an error here, not a SIGPIPE.
    const ssize_t n = ::send(fd, data + done, size - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return done == size;
}

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

LinkCounters operator-(const LinkCounters& after, const LinkCounters& before) {
  return LinkCounters{after.connections - before.connections,
                      after.up_bytes - before.up_bytes,
                      after.down_bytes - before.down_bytes,
                      after.kernel_received_bytes - before.kernel_received_bytes,
                      after.kernel_acked_bytes - before.kernel_acked_bytes,
                      after.kernel_segments_in - before.kernel_segments_in,
                      after.kernel_segments_out - before.kernel_segments_out};
}

Result<std::unique_ptr<LinkRelay>> LinkRelay::start(int hub_port) {
  std::unique_ptr<LinkRelay> relay(new LinkRelay(hub_port, 0));
  relay->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (relay->wake_fd_ < 0) return fail(Errc::io, errno_text("eventfd"));
  auto healed = relay->heal();
  if (!healed) return tl::unexpected(healed.error());
  return relay;
}

LinkRelay::~LinkRelay() {
  cut();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Result<void> LinkRelay::listen_now() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::io, errno_text("socket"));
  int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(port_);
  socklen_t length = sizeof addr;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, listen_backlog) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    const std::string what = errno_text("listening on 127.0.0.1:" + std::to_string(port_));
    ::close(fd);
    return fail(Errc::io, what);
  }
  port_ = ntohs(addr.sin_port);
  listen_fd_ = fd;
  return {};
}

Result<LinkRelay::Clock::time_point> LinkRelay::heal() {
  if (up()) return fail(Errc::io, "the link is already up");
  std::uint64_t drained = 0;
  (void)!::read(wake_fd_, &drained, sizeof drained);  // a cut's wake-up, if one is left
  {
    std::lock_guard lock(mutex_);
    first_accept_.reset();
  }
  if (auto listening = listen_now(); !listening) return tl::unexpected(listening.error());
  const Clock::time_point healed = Clock::now();
  accepting_ = true;
  try {
    acceptor_ = std::thread([this] { accept_loop(); });
  } catch (const std::system_error& e) {
    accepting_ = false;
    ::close(listen_fd_);
    listen_fd_ = -1;
    return fail(Errc::io, std::string("cannot start the relay's accept thread: ") + e.what());
  }
  return healed;
}

void LinkRelay::cut() {
  if (acceptor_.joinable()) {
    accepting_ = false;
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    acceptor_.join();
  }
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  std::lock_guard lock(mutex_);
  for (Connection& c : connections_) {
    add_kernel_counters(c.station_fd, closed_);
    ::shutdown(c.station_fd, SHUT_RDWR);
    ::shutdown(c.hub_fd, SHUT_RDWR);
  }
  for (Connection& c : connections_) {  // the pumps take no lock: joining here is safe
    if (c.up.joinable()) c.up.join();
    if (c.down.joinable()) c.down.join();
    ::close(c.station_fd);
    ::close(c.hub_fd);
  }
  connections_.clear();
}

void LinkRelay::accept_loop() {
  for (std::uint64_t accepted = 0; accepted < accepts_max && accepting_.load();) {
    std::array<pollfd, 2> items = {pollfd{listen_fd_, POLLIN, 0}, pollfd{wake_fd_, POLLIN, 0}};
    if (::poll(items.data(), items.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if ((items[1].revents & POLLIN) != 0) return;
    if ((items[0].revents & POLLIN) == 0) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ++accepted;
    serve(fd);
  }
}

void LinkRelay::serve(int station_fd) {
  const Clock::time_point now = Clock::now();
  const int hub_fd = connect_to(hub_port_);
  if (hub_fd < 0) {  // the hub is not listening: the station sees its connection end
    ::close(station_fd);
    return;
  }
  set_nodelay(station_fd);
  set_nodelay(hub_fd);
  std::lock_guard lock(mutex_);
  if (!first_accept_) first_accept_ = now;
  Connection& c = connections_.emplace_back();
  c.station_fd = station_fd;
  c.hub_fd = hub_fd;
  ++closed_.connections;
  try {
    c.up = std::thread([this, &c] { pump(c, true); });
    c.down = std::thread([this, &c] { pump(c, false); });
  } catch (const std::system_error&) {
    ::shutdown(station_fd, SHUT_RDWR);  // the connection fails; cut() joins and closes it
    ::shutdown(hub_fd, SHUT_RDWR);
  }
}

void LinkRelay::pump(Connection& c, bool up) {
  const int from = up ? c.station_fd : c.hub_fd;
  const int to = up ? c.hub_fd : c.station_fd;
  std::atomic<std::uint64_t>& counted = up ? up_bytes_ : down_bytes_;
  std::vector<char> buffer(relay_buffer_bytes);
  for (std::uint64_t reads = 0; reads < reads_max; ++reads) {
    const ssize_t n = ::read(from, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (!write_all(to, buffer.data(), static_cast<std::size_t>(n))) break;
    counted.fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
  }
  // One side closed: close both, as a TCP proxy does, so that the other pump ends too.
  ::shutdown(c.station_fd, SHUT_RDWR);
  ::shutdown(c.hub_fd, SHUT_RDWR);
}

void LinkRelay::add_kernel_counters(int station_fd, LinkCounters& into) {
  tcp_info info{};
  socklen_t length = sizeof info;
  if (::getsockopt(station_fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return;
  into.kernel_received_bytes += info.tcpi_bytes_received;
  into.kernel_acked_bytes += info.tcpi_bytes_acked;
  into.kernel_segments_in += info.tcpi_segs_in;
  into.kernel_segments_out += info.tcpi_segs_out;
}

std::optional<LinkRelay::Clock::time_point> LinkRelay::first_accept_after_heal() const {
  std::lock_guard lock(mutex_);
  return first_accept_;
}

LinkCounters LinkRelay::counters() const {
  std::lock_guard lock(mutex_);
  LinkCounters total = closed_;
  for (const Connection& c : connections_) add_kernel_counters(c.station_fd, total);
  total.up_bytes = up_bytes_.load();
  total.down_bytes = down_bytes_.load();
  return total;
}

}  // namespace ferry::bench
