#include "tests/integration/link_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace ferry::test {
namespace {

constexpr int poll_interval_ms = 50;
constexpr std::size_t chunk_bytes = 64 * 1024;

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Copies what is readable on `from` to `to`; false when either side is done.
bool pump(int from, int to) {
  char buf[chunk_bytes];
  ssize_t n = ::read(from, buf, sizeof buf);
  if (n <= 0) return false;
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

}  // namespace

LinkProxy::LinkProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 16) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    throw std::runtime_error("link proxy: cannot listen on loopback");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

LinkProxy::~LinkProxy() {
  stop_ = true;
  (void)::write(wake_[1], "x", 1);
  thread_.join();
  close_all();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

std::string LinkProxy::endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

void LinkProxy::cut() {
  cut_ = true;
  (void)::write(wake_[1], "c", 1);
}

void LinkProxy::heal() { cut_ = false; }

void LinkProxy::close_all() {
  for (Pair& p : pairs_) {
    ::close(p.client);
    ::close(p.server);
  }
  pairs_.clear();
}

void LinkProxy::run() {
  while (!stop_) {
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    for (const Pair& p : pairs_) {
      fds.push_back({p.client, POLLIN, 0});
      fds.push_back({p.server, POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), poll_interval_ms) < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) {
      char drain[64];
      while (::read(wake_[0], drain, sizeof drain) > 0) {
      }
    }
    if (cut_) close_all();
    std::size_t polled = pairs_.size();  // the pairs fds[2..] belong to
    if (fds[0].revents & POLLIN) {
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        int server = cut_ || pairs_.size() >= links_max ? -1 : connect_to(target_port_);
        if (server < 0) {
          ::close(client);  // a cut link: the connection drops at once
        } else {
          int one = 1;
          ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          pairs_.push_back({client, server});
        }
      }
    }
    if (cut_) continue;
    std::vector<Pair> alive;
    for (std::size_t i = 0; i < polled; ++i) {
      const pollfd& c = fds[2 + 2 * i];
      const pollfd& s = fds[3 + 2 * i];
      bool ok = true;
      if (c.revents & (POLLIN | POLLHUP | POLLERR)) ok = pump(pairs_[i].client, pairs_[i].server);
      if (ok && (s.revents & (POLLIN | POLLHUP | POLLERR))) {
        ok = pump(pairs_[i].server, pairs_[i].client);
      }
      if (ok) {
        alive.push_back(pairs_[i]);
      } else {
        ::close(pairs_[i].client);
        ::close(pairs_[i].server);
      }
    }
    // Pairs accepted in this round were not polled yet: keep them.
    for (std::size_t i = polled; i < pairs_.size(); ++i) alive.push_back(pairs_[i]);
    pairs_ = std::move(alive);
  }
}

}  // namespace ferry::test
