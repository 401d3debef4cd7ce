// nfq_delay: the lab's link delay. It holds every packet of one NFQUEUE queue for a delay ± a
// jitter and then accepts it, because this kernel has no netem (../shared/LAB-NOTES.md).
//
// It runs inside the network namespace whose packets it delays (an NFQUEUE queue belongs to one
// namespace) and serves one queue number, which the lab's iptables rule sends packets to with
// --queue-bypass (so packets pass undelayed while no helper is bound). Packets leave in the
// order they came: a packet's release time is its arrival plus delay plus a uniform jitter, but
// never before the packet ahead of it (a link that delays does not reorder). At most
// --max packets are held; a packet beyond that is dropped and counted, as a full router queue
// drops. One thread; SIGTERM or SIGINT release every packet held and end it with exit 0.
//
//   nfq_delay --queue N --delay MS [--jitter MS] [--max PACKETS] [--seed S] [--stats FILE]
//
// Exit codes: 0 after a signal, 1 when the queue cannot be bound or served, 2 on bad arguments.
// It prints one "ready" line on stderr once the queue is bound; with --stats it rewrites FILE
// (one line of counters) at most once a second and at exit.
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>

extern "C" {
#include <libnetfilter_queue/libnetfilter_queue.h>
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct Options {
  std::uint16_t queue = 0;
  milliseconds delay{0};
  milliseconds jitter{0};
  std::size_t held_max = 10000;
  std::uint64_t seed = 0;
  bool seeded = false;
  std::string stats_path;
};

struct Counters {
  std::uint64_t queued = 0;     // packets taken into the hold queue
  std::uint64_t released = 0;   // packets accepted after their delay
  std::uint64_t dropped = 0;    // packets dropped because the hold queue was full
  std::uint64_t recv_lost = 0;  // netlink overruns: the kernel dropped those packets
};

struct Held {
  std::uint32_t id;
  Clock::time_point release;
};

// The state the packet callback works on; owned by main's stack frame.
struct Delay {
  Options options;
  std::mt19937_64 random;
  std::deque<Held> held;
  Clock::time_point last_release{};
  Counters counters;
  nfq_q_handle* queue = nullptr;
};

struct CloseNfq {
  void operator()(nfq_handle* h) const { nfq_close(h); }
};
using NfqHandle = std::unique_ptr<nfq_handle, CloseNfq>;

struct DestroyQueue {
  void operator()(nfq_q_handle* q) const { nfq_destroy_queue(q); }
};
using QueueHandle = std::unique_ptr<nfq_q_handle, DestroyQueue>;

// A file descriptor closed by its owner.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

void usage() {
  std::fprintf(stderr,
               "usage: nfq_delay --queue N --delay MS [--jitter MS] [--max PACKETS] [--seed S] "
               "[--stats FILE]\n");
}

std::optional<std::uint64_t> parse_u64(const char* text, std::uint64_t max) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || *end != '\0' || text[0] == '-' || v > max) return std::nullopt;
  return static_cast<std::uint64_t>(v);
}

// Fills `out` from argv; false (after a message) on anything it does not understand.
bool parse_options(int argc, char** argv, Options& out) {
  bool have_queue = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    std::optional<std::uint64_t> v;
    if (arg == "--queue" && (v = parse_u64(value, 65535))) {
      out.queue = static_cast<std::uint16_t>(*v);
      have_queue = true;
    } else if (arg == "--delay" && (v = parse_u64(value, 600000))) {
      out.delay = milliseconds(*v);
    } else if (arg == "--jitter" && (v = parse_u64(value, 600000))) {
      out.jitter = milliseconds(*v);
    } else if (arg == "--max" && (v = parse_u64(value, 1000000)) && *v > 0) {
      out.held_max = static_cast<std::size_t>(*v);
    } else if (arg == "--seed" && (v = parse_u64(value, UINT64_MAX))) {
      out.seed = *v;
      out.seeded = true;
    } else if (arg == "--stats" && value != nullptr && *value != '\0') {
      out.stats_path = value;
    } else {
      std::fprintf(stderr, "nfq_delay: bad argument: %s%s%s\n", argv[i], value ? " " : "",
                   value ? value : "");
      return false;
    }
    ++i;  // every option takes a value
  }
  if (!have_queue) std::fprintf(stderr, "nfq_delay: --queue is required\n");
  return have_queue;
}

// When a packet arriving now leaves: arrival + delay + jitter, never before the one ahead.
Clock::time_point release_time(Delay& d, Clock::time_point now) {
  std::int64_t jitter_ms = d.options.jitter.count();
  std::int64_t offset = d.options.delay.count();
  if (jitter_ms > 0) {
    std::uniform_int_distribution<std::int64_t> spread(-jitter_ms, jitter_ms);
    offset += spread(d.random);
  }
  if (offset < 0) offset = 0;
  Clock::time_point at = now + milliseconds(offset);
  if (at < d.last_release) at = d.last_release;
  d.last_release = at;
  return at;
}

int on_packet(nfq_q_handle* queue, nfgenmsg* /*message*/, nfq_data* data, void* context) {
  auto& d = *static_cast<Delay*>(context);
  nfqnl_msg_packet_hdr* header = nfq_get_msg_packet_hdr(data);
  if (header == nullptr) return 0;
  std::uint32_t id = ntohl(header->packet_id);
  if (d.held.size() >= d.options.held_max) {
    ++d.counters.dropped;
    return nfq_set_verdict(queue, id, NF_DROP, 0, nullptr) < 0 ? -1 : 0;
  }
  d.held.push_back(Held{id, release_time(d, Clock::now())});
  ++d.counters.queued;
  return 0;
}

// Accepts every held packet whose time has come (all of them when `all`).
bool release_due(Delay& d, bool all) {
  Clock::time_point now = Clock::now();
  while (!d.held.empty() && (all || d.held.front().release <= now)) {
    if (nfq_set_verdict(d.queue, d.held.front().id, NF_ACCEPT, 0, nullptr) < 0) {
      std::fprintf(stderr, "nfq_delay: verdict failed: %s\n", std::strerror(errno));
      return false;
    }
    d.held.pop_front();
    ++d.counters.released;
  }
  return true;
}

void write_stats(const Delay& d) {
  if (d.options.stats_path.empty()) return;
  std::string tmp = d.options.stats_path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) return;
  std::fprintf(f,
               "queue=%u delay_ms=%lld jitter_ms=%lld held=%zu held_max=%zu queued=%" PRIu64
               " released=%" PRIu64 " dropped_full=%" PRIu64 " recv_lost=%" PRIu64 "\n",
               static_cast<unsigned>(d.options.queue),
               static_cast<long long>(d.options.delay.count()),
               static_cast<long long>(d.options.jitter.count()), d.held.size(), d.options.held_max,
               d.counters.queued, d.counters.released, d.counters.dropped, d.counters.recv_lost);
  std::fclose(f);
  std::rename(tmp.c_str(), d.options.stats_path.c_str());
}

// Binds the queue: metadata only (no payload copied), whole GSO packets, a kernel queue a little
// longer than ours so that our bound, which is counted, is the one that drops.
QueueHandle bind_queue(nfq_handle* h, Delay& d) {
  QueueHandle queue(nfq_create_queue(h, d.options.queue, &on_packet, &d));
  if (!queue) {
    std::fprintf(stderr, "nfq_delay: cannot bind queue %u: %s (another helper on it?)\n",
                 static_cast<unsigned>(d.options.queue), std::strerror(errno));
    return queue;
  }
  bool ok =
      nfq_set_mode(queue.get(), NFQNL_COPY_META, 0) >= 0 &&
      nfq_set_queue_maxlen(queue.get(), static_cast<std::uint32_t>(d.options.held_max + 1024)) >= 0;
  // Older kernels refuse the GSO flag; the queue then works on segments, which is fine.
  (void)nfq_set_queue_flags(queue.get(), NFQA_CFG_F_GSO, NFQA_CFG_F_GSO);
  if (!ok) {
    std::fprintf(stderr, "nfq_delay: cannot configure queue %u: %s\n",
                 static_cast<unsigned>(d.options.queue), std::strerror(errno));
    queue.reset();
  }
  return queue;
}

// Reads the packets waiting on the netlink socket (at most 256 messages a round, so that due
// packets are released on time). False on an error that ends the helper.
bool read_packets(nfq_handle* h, int fd, Delay& d) {
  alignas(16) static char buffer[65536];
  for (int round = 0; round < 256; ++round) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) {
      nfq_handle_packet(h, buffer, static_cast<int>(n));
      continue;
    }
    if (n < 0 && errno == ENOBUFS) {  // the kernel dropped packets it could not hand us
      ++d.counters.recv_lost;
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    std::fprintf(stderr, "nfq_delay: recv failed: %s\n", n == 0 ? "closed" : std::strerror(errno));
    return false;
  }
  return true;
}

// How long to wait for the next event: until the head packet is due, or indefinitely.
timespec wait_time(const Delay& d) {
  timespec ts{1, 0};  // stats are rewritten at most once a second anyway
  if (d.held.empty()) return ts;
  auto left = d.held.front().release - Clock::now();
  if (left < Clock::duration::zero()) left = Clock::duration::zero();
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
  if (ns < 1'000'000'000) {
    ts.tv_sec = 0;
    ts.tv_nsec = static_cast<long>(ns);
  }
  return ts;
}

// Serves the queue until a signal arrives. Returns the exit code.
int serve(nfq_handle* h, int signal_fd, Delay& d) {
  int fd = nfq_fd(h);
  Clock::time_point stats_at = Clock::now();
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    timespec ts = wait_time(d);
    if (::ppoll(fds, 2, &ts, nullptr) < 0 && errno != EINTR) {
      std::fprintf(stderr, "nfq_delay: poll failed: %s\n", std::strerror(errno));
      return 1;
    }
    if ((fds[1].revents & POLLIN) != 0) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) return 0;
    }
    if ((fds[0].revents & POLLIN) != 0 && !read_packets(h, fd, d)) return 1;
    if (!release_due(d, false)) return 1;
    if (Clock::now() - stats_at >= std::chrono::seconds(1)) {
      write_stats(d);
      stats_at = Clock::now();
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Delay d;
  if (!parse_options(argc, argv, d.options)) {
    usage();
    return 2;
  }
  if (!d.options.seeded) d.options.seed = std::random_device{}();
  d.random.seed(d.options.seed);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  Fd signal_fd(::signalfd(-1, &mask, SFD_CLOEXEC));
  if (signal_fd.get() < 0) {
    std::fprintf(stderr, "nfq_delay: signalfd failed: %s\n", std::strerror(errno));
    return 1;
  }

  NfqHandle h(nfq_open());
  if (!h) {
    std::fprintf(stderr, "nfq_delay: nfq_open failed: %s (root? CONFIG_NETFILTER_NETLINK_QUEUE?)\n",
                 std::strerror(errno));
    return 1;
  }
  nfnl_rcvbufsiz(nfq_nfnlh(h.get()), 8u << 20);  // room for bursts; overruns are counted
  QueueHandle queue = bind_queue(h.get(), d);
  if (!queue) return 1;
  d.queue = queue.get();
  std::fprintf(
      stderr, "nfq_delay: ready queue=%u delay_ms=%lld jitter_ms=%lld max=%zu seed=%" PRIu64 "\n",
      static_cast<unsigned>(d.options.queue), static_cast<long long>(d.options.delay.count()),
      static_cast<long long>(d.options.jitter.count()), d.options.held_max, d.options.seed);
  write_stats(d);

  int code = serve(h.get(), signal_fd.get(), d);
  // Nothing stays held: what the kernel still queues for us would be dropped at unbind.
  if (!read_packets(h.get(), nfq_fd(h.get()), d) || !release_due(d, true)) code = 1;
  write_stats(d);
  std::fprintf(stderr,
               "nfq_delay: exit queued=%" PRIu64 " released=%" PRIu64 " dropped_full=%" PRIu64
               " recv_lost=%" PRIu64 "\n",
               d.counters.queued, d.counters.released, d.counters.dropped, d.counters.recv_lost);
  return code;
}
