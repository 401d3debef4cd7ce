// The benchmark's load on ferryd's local IPC: client threads that submit 300-byte case bodies
// and count the acknowledgements.
//
// Each client is a thread with its own ZeroMQ socket, used only by that thread. Three styles:
// REQ, one submit outstanding per client; pipelined, a DEALER that keeps up to
// pipeline_window_ops submits in flight; paced, a DEALER that sends on a fixed schedule whatever
// the replies do and times each submit. Replies to one client's submits come back in order.
// Every run is bounded by a deadline or a count and by an op cap, and every wait for a reply by
// reply_timeout. A reply that is not ok:true is counted as refused, with its code; a missing or
// malformed reply ends the run with an error. cppzmq throws: each client thread catches and
// converts, so nothing escapes. A SubmitLoad is driven from one thread at a time.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "bench/support/bench_support.h"
#include "protocol/error.h"

namespace ferry::bench {

// Submits in flight per pipelined client (W).
inline constexpr std::size_t pipeline_window_ops = 64;
// Longest wait for any one reply; a daemon that stays silent this long has failed the run.
inline constexpr std::chrono::milliseconds reply_timeout{20'000};
// Send and receive queue limit of every client socket, in messages.
inline constexpr int socket_hwm = 10'000;
// A paced client gives up when this many of its submits wait for replies (the daemon stalls).
inline constexpr std::size_t paced_in_flight_max = 5'000;

static_assert(pipeline_window_ops < static_cast<std::size_t>(socket_hwm));
static_assert(paced_in_flight_max < static_cast<std::size_t>(socket_hwm));

// One submit request frame ({"cmd":"submit","kind","key","body"}) whose case number, in the key
// and in the 300-byte body, is rewritten in place for each submit: a client then spends almost
// nothing on building requests, and the CPU it saves is the daemon's on a 2-core machine.
class SubmitFrame {
 public:
  [[nodiscard]] static Result<SubmitFrame> create();
  // The frame for case n (n <= case_number_max).
  std::span<const std::uint8_t> stamp(std::uint64_t n);

 private:
  SubmitFrame(std::vector<std::uint8_t> bytes, std::size_t key_digits_at,
              std::size_t body_digits_at)
      : bytes_(std::move(bytes)), digits_at_{key_digits_at, body_digits_at} {}
  std::vector<std::uint8_t> bytes_;
  std::array<std::size_t, 2> digits_at_;  // where the 8 digits of the case number start
};

enum class Style { req, pipelined };

struct LoadResult {
  std::uint64_t acknowledged = 0;    // replies with ok:true
  std::uint64_t refused = 0;         // replies with ok:false
  std::string refusal;               // the code of the first refusal
  Seconds elapsed{};                 // from the common start until the last client finished
  std::vector<double> latencies_ms;  // paced clients: send to reply, one per reply
  double send_lag_max_ms = 0;        // paced clients: the latest send behind its schedule
};

class SubmitLoad {
 public:
  // Builds the submit frame; the clients connect to `endpoint` when a run starts.
  [[nodiscard]] static Result<std::unique_ptr<SubmitLoad>> create(std::string endpoint);
  SubmitLoad(std::string endpoint, SubmitFrame frame)
      : endpoint_(std::move(endpoint)), frame_(std::move(frame)) {}
  SubmitLoad(const SubmitLoad&) = delete;
  SubmitLoad& operator=(const SubmitLoad&) = delete;
  zmq::context_t& context() { return context_; }
  const std::string& endpoint() const { return endpoint_; }

  // `clients` threads submit in `style` until `duration` has passed since their common start or
  // they have sent submits_max submits in all, then wait for the replies still due.
  [[nodiscard]] Result<LoadResult> closed_loop(Style style, std::size_t clients, Seconds duration,
                                               std::uint64_t submits_max);

  // `clients` DEALER threads offer `rate` submits/s in all for `duration`, each on a fixed
  // schedule of rate/clients per second (staggered), and time every submit.
  [[nodiscard]] Result<LoadResult> paced(std::size_t clients, double rate, Seconds duration);

 private:
  using Client = std::function<Result<LoadResult>(std::size_t index, zmq::socket_t& socket,
                                                  Clock::time_point start)>;
  Result<LoadResult> run_clients(zmq::socket_type type, std::size_t clients, const Client& client);
  Result<zmq::socket_t> open_socket(zmq::socket_type type);

  zmq::context_t context_{1};
  std::string endpoint_;
  SubmitFrame frame_;                        // copied by each client
  std::atomic<std::uint64_t> next_case_{1};  // every submit of every run gets its own
};

}  // namespace ferry::bench
