#include "bench/ipc/submit_load.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <latch>
#include <msgpack.hpp>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>

#include "bench/ipc/ipc_reply.h"

namespace ferry::bench {
namespace {

using Milliseconds = std::chrono::duration<double, std::milli>;

constexpr std::string_view case_prefix = "HN-2026-";
constexpr std::size_t case_digits = 8;
constexpr std::int64_t reply_bytes_max = 1 << 20;

void pack_text(msgpack::packer<msgpack::sbuffer>& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

// Every place where `needle` occurs in `bytes`.
std::vector<std::size_t> find_all(std::span<const std::uint8_t> bytes, std::string_view needle) {
  std::vector<std::size_t> found;
  const std::string_view hay(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  for (std::size_t at = hay.find(needle); at != std::string_view::npos && found.size() < 8;
       at = hay.find(needle, at + 1)) {
    found.push_back(at);
  }
  return found;
}

Result<std::vector<std::uint8_t>> pack_submit(std::span<const std::uint8_t> body) {
  try {
    msgpack::sbuffer buffer(512);
    msgpack::packer<msgpack::sbuffer> pk(buffer);
    pk.pack_map(4);
    pack_text(pk, "cmd");
    pack_text(pk, "submit");
    pack_text(pk, "kind");
    pack_text(pk, "case.submit");
    pack_text(pk, "key");
    pack_text(pk, "case/" + case_number(0));
    pack_text(pk, "body");
    buffer.write(reinterpret_cast<const char*>(body.data()), body.size());  // already msgpack
    const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
    return std::vector<std::uint8_t>(data, data + buffer.size());
  } catch (const std::exception& e) {
    return fail(Errc::io, std::string("packing a submit: ") + e.what());
  }
}

// Sends one request on a DEALER: the empty delimiter frame, then the request. Never blocks.
Result<void> send_delimited(zmq::socket_t& socket, std::span<const std::uint8_t> request) {
  if (!socket.send(zmq::message_t(), zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
      !socket.send(zmq::buffer(request.data(), request.size()), zmq::send_flags::dontwait)) {
    return fail(Errc::limit_exceeded, "the client's send queue is full");
  }
  return {};
}

// Receives one reply (after its delimiter on a DEALER) and tallies it. False when none was
// waiting (dontwait) or none came within the socket's receive timeout.
Result<bool> receive_reply(zmq::socket_t& socket, bool delimited, zmq::recv_flags flags,
                           LoadResult& tally) {
  zmq::message_t frame;
  if (!socket.recv(frame, flags)) return false;
  if (delimited) {
    if (frame.size() != 0 || !frame.more()) {
      return fail(Errc::malformed, "a reply without the empty delimiter frame");
    }
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) {
      return fail(Errc::malformed, "a reply with nothing after its delimiter");
    }
  }
  if (frame.more()) return fail(Errc::malformed, "a reply of more than one frame");
  auto reply = decode_reply({static_cast<const std::uint8_t*>(frame.data()), frame.size()});
  if (!reply) return tl::unexpected(reply.error());
  if (reply->ok) {
    ++tally.acknowledged;
  } else if (tally.refused++ == 0) {
    tally.refusal = reply->error_code;
  }
  return true;
}

Error no_reply() {
  return Error{Errc::timeout, "no reply within " + std::to_string(reply_timeout.count()) + " ms"};
}

Result<LoadResult> req_client(zmq::socket_t& socket, SubmitFrame frame,
                              std::atomic<std::uint64_t>& next_case, Clock::time_point deadline,
                              std::uint64_t submits_max) {
  LoadResult tally;
  for (std::uint64_t sent = 0; sent < submits_max && Clock::now() < deadline; ++sent) {
    const auto request = frame.stamp(next_case.fetch_add(1, std::memory_order_relaxed));
    if (!socket.send(zmq::buffer(request.data(), request.size()), zmq::send_flags::none)) {
      return fail(Errc::timeout, "a submit could not be sent");
    }
    auto received = receive_reply(socket, false, zmq::recv_flags::none, tally);
    if (!received) return tl::unexpected(received.error());
    if (!*received) return tl::unexpected(no_reply());
  }
  return tally;
}

Result<LoadResult> pipelined_client(zmq::socket_t& socket, SubmitFrame frame,
                                    std::atomic<std::uint64_t>& next_case,
                                    Clock::time_point deadline, std::uint64_t submits_max) {
  LoadResult tally;
  std::uint64_t sent = 0;
  std::uint64_t in_flight = 0;
  const std::uint64_t steps_max = submits_max + pipeline_window_ops + 1;  // one reply per step
  for (std::uint64_t step = 0; step < steps_max; ++step) {
    const bool sending = Clock::now() < deadline;
    for (; sending && in_flight < pipeline_window_ops && sent < submits_max; ++in_flight, ++sent) {
      const auto request = frame.stamp(next_case.fetch_add(1, std::memory_order_relaxed));
      if (auto queued = send_delimited(socket, request); !queued) {
        return tl::unexpected(queued.error());
      }
    }
    if (in_flight == 0) return tally;
    auto received = receive_reply(socket, true, zmq::recv_flags::none, tally);
    if (!received) return tl::unexpected(received.error());
    if (!*received) return tl::unexpected(no_reply());
    --in_flight;
  }
  return fail(Errc::limit_exceeded, "a pipelined client overran its step bound");
}

struct Schedule {
  Clock::time_point first_send;
  Clock::duration period;
  std::uint64_t count = 0;
};

// Waits for a reply or the next send, whichever comes first; times the reply if one came.
Result<void> paced_wait(zmq::socket_t& socket, Clock::time_point due, bool sending,
                        std::deque<Clock::time_point>& sent_at, LoadResult& tally) {
  const auto wait =
      sending ? std::chrono::ceil<std::chrono::milliseconds>(due - Clock::now()) : reply_timeout;
  zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, std::max(wait, std::chrono::milliseconds(0))) == 0) {
    if (!sending) return tl::unexpected(no_reply());
    return {};
  }
  auto received = receive_reply(socket, true, zmq::recv_flags::dontwait, tally);
  const Clock::time_point now = Clock::now();
  if (!received) return tl::unexpected(received.error());
  if (!*received) return {};
  FERRY_ASSERT(!sent_at.empty());  // the daemon answers only what was sent
  tally.latencies_ms.push_back(Milliseconds(now - sent_at.front()).count());
  sent_at.pop_front();
  return {};
}

Result<LoadResult> paced_client(zmq::socket_t& socket, SubmitFrame frame,
                                std::atomic<std::uint64_t>& next_case, const Schedule& schedule) {
  LoadResult tally;
  tally.latencies_ms.reserve(schedule.count);
  std::deque<Clock::time_point> sent_at;  // send times of the submits awaiting replies
  std::uint64_t sent = 0;
  // A step sends, receives or waits at least until the next due send, or up to reply_timeout.
  const std::uint64_t steps_max = 16 * (schedule.count + 1) + 1'000'000;
  for (std::uint64_t step = 0; step < steps_max; ++step) {
    if (sent == schedule.count && sent_at.empty()) return tally;
    const Clock::time_point due =
        schedule.first_send + schedule.period * static_cast<Clock::rep>(sent);
    const Clock::time_point now = Clock::now();
    if (sent < schedule.count && now >= due) {
      if (sent_at.size() >= paced_in_flight_max) {
        return fail(Errc::limit_exceeded, "too many submits wait for replies");
      }
      tally.send_lag_max_ms = std::max(tally.send_lag_max_ms, Milliseconds(now - due).count());
      const auto request = frame.stamp(next_case.fetch_add(1, std::memory_order_relaxed));
      sent_at.push_back(Clock::now());
      if (auto queued = send_delimited(socket, request); !queued) {
        return tl::unexpected(queued.error());
      }
      ++sent;
      continue;
    }
    if (auto waited = paced_wait(socket, due, sent < schedule.count, sent_at, tally); !waited) {
      return tl::unexpected(waited.error());
    }
  }
  return fail(Errc::limit_exceeded, "a paced client overran its step bound");
}

// Adds one client's tally to the run's.
void merge(LoadResult& total, LoadResult&& client) {
  total.acknowledged += client.acknowledged;
  if (total.refused == 0) total.refusal = client.refusal;
  total.refused += client.refused;
  total.latencies_ms.insert(total.latencies_ms.end(), client.latencies_ms.begin(),
                            client.latencies_ms.end());
  total.send_lag_max_ms = std::max(total.send_lag_max_ms, client.send_lag_max_ms);
}

}  // namespace

Result<SubmitFrame> SubmitFrame::create() {
  auto note_bytes = note_bytes_for_body();
  if (!note_bytes) return tl::unexpected(note_bytes.error());
  auto body = pack_body(0, *note_bytes);
  if (!body) return tl::unexpected(body.error());
  FERRY_ASSERT(body->size() == body_bytes);
  auto bytes = pack_submit(*body);
  if (!bytes) return tl::unexpected(bytes.error());
  const std::vector<std::size_t> found = find_all(*bytes, case_number(0));
  if (found.size() != 2) {
    return fail(Errc::malformed, "the submit frame does not hold its case number twice");
  }
  return SubmitFrame(std::move(*bytes), found[0] + case_prefix.size(),
                     found[1] + case_prefix.size());
}

std::span<const std::uint8_t> SubmitFrame::stamp(std::uint64_t n) {
  FERRY_ASSERT(n <= case_number_max);
  char digits[case_digits + 1];
  std::snprintf(digits, sizeof digits, "%08llu", static_cast<unsigned long long>(n));
  for (std::size_t at : digits_at_) {
    FERRY_ASSERT(at + case_digits <= bytes_.size());
    std::memcpy(bytes_.data() + at, digits, case_digits);
  }
  return bytes_;
}

Result<std::unique_ptr<SubmitLoad>> SubmitLoad::create(std::string endpoint) {
  auto frame = SubmitFrame::create();
  if (!frame) return tl::unexpected(frame.error());
  return std::make_unique<SubmitLoad>(std::move(endpoint), std::move(*frame));
}

Result<zmq::socket_t> SubmitLoad::open_socket(zmq::socket_type type) {
  try {
    zmq::socket_t socket(context_, type);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndhwm, socket_hwm);
    socket.set(zmq::sockopt::rcvhwm, socket_hwm);
    socket.set(zmq::sockopt::sndtimeo, static_cast<int>(reply_timeout.count()));
    socket.set(zmq::sockopt::rcvtimeo, static_cast<int>(reply_timeout.count()));
    socket.set(zmq::sockopt::maxmsgsize, reply_bytes_max);
    socket.connect(endpoint_);
    return socket;
  } catch (const zmq::error_t& e) {
    return fail(Errc::io, "client socket on " + endpoint_ + ": " + e.what());
  }
}

Result<LoadResult> SubmitLoad::run_clients(zmq::socket_type type, std::size_t clients,
                                           const Client& client) {
  FERRY_ASSERT(clients > 0);
  std::vector<Result<LoadResult>> results(clients);
  std::latch ready(static_cast<std::ptrdiff_t>(clients));
  std::latch go(1);
  std::atomic<bool> abandon{false};
  Clock::time_point start;  // written before go opens, read after
  auto body = [&](std::size_t index) {
    auto socket = open_socket(type);
    ready.count_down();
    go.wait();
    if (!socket) {
      results[index] = tl::unexpected(socket.error());
    } else if (abandon.load()) {
      results[index] = fail(Errc::io, "abandoned");
    } else {
      try {
        results[index] = client(index, *socket, start);
      } catch (const std::exception& e) {
        results[index] = fail(Errc::io, std::string("client: ") + e.what());
      }
    }
  };
  std::vector<std::jthread> threads;
  threads.reserve(clients);
  try {
    for (std::size_t i = 0; i < clients; ++i) threads.emplace_back(body, i);
  } catch (const std::system_error& e) {
    abandon = true;
    ready.count_down(static_cast<std::ptrdiff_t>(clients - threads.size()));
    go.count_down();
    threads.clear();  // joins
    return fail(Errc::io, std::string("cannot start a client thread: ") + e.what());
  }
  ready.wait();
  start = Clock::now();
  go.count_down();
  threads.clear();  // joins
  LoadResult total;
  total.elapsed = std::chrono::duration_cast<Seconds>(Clock::now() - start);
  for (Result<LoadResult>& r : results) {
    if (!r) return tl::unexpected(r.error());
    merge(total, std::move(*r));
  }
  return total;
}

Result<LoadResult> SubmitLoad::closed_loop(Style style, std::size_t clients, Seconds duration,
                                           std::uint64_t submits_max) {
  FERRY_ASSERT(clients > 0);
  const std::uint64_t client_ops_max = std::max<std::uint64_t>(1, submits_max / clients);
  const auto span = std::chrono::duration_cast<Clock::duration>(duration);
  auto client = [&](std::size_t, zmq::socket_t& socket, Clock::time_point start) {
    if (style == Style::req) {
      return req_client(socket, frame_, next_case_, start + span, client_ops_max);
    }
    return pipelined_client(socket, frame_, next_case_, start + span, client_ops_max);
  };
  const auto type = style == Style::req ? zmq::socket_type::req : zmq::socket_type::dealer;
  return run_clients(type, clients, client);
}

Result<LoadResult> SubmitLoad::paced(std::size_t clients, double rate, Seconds duration) {
  FERRY_ASSERT(clients > 0);
  FERRY_ASSERT(rate > 0);
  const auto period =
      std::chrono::duration_cast<Clock::duration>(Seconds(static_cast<double>(clients) / rate));
  const auto count = static_cast<std::uint64_t>(rate * duration.count()) / clients;
  auto client = [&](std::size_t index, zmq::socket_t& socket, Clock::time_point start) {
    // Staggered so that the clients' sends interleave evenly.
    const Clock::duration offset =
        period * static_cast<Clock::rep>(index) / static_cast<Clock::rep>(clients);
    return paced_client(socket, frame_, next_case_, Schedule{start + offset, period, count});
  };
  return run_clients(zmq::socket_type::dealer, clients, client);
}

}  // namespace ferry::bench
