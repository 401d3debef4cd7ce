// A stand-in for ferryd's IPC in tests: a ROUTER on an endpoint that answers each request with
// whatever the test's handler returns, on its own thread, and records the requests it got.
#pragma once

#include <zmq.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "ctl/msgpack_json.h"

namespace ferry::client::fake {

using nlohmann::json;

// What the fake daemon does with one request: reply with these frames (after the delimiter),
// or stay silent.
struct FakeReply {
  std::vector<std::vector<std::uint8_t>> frames;
};
using Handler = std::function<std::optional<FakeReply>(const json& request)>;

inline FakeReply map_reply(const json& reply) { return FakeReply{{json::to_msgpack(reply)}}; }

// An `ok: false` reply with this IPC error code and message, as ferryd sends it.
inline FakeReply error_reply(const std::string& code, const std::string& message) {
  return map_reply({{"ok", false}, {"error", {{"code", code}, {"message", message}}}});
}

// A ROUTER on an ipc:// endpoint that answers like ferryd with canned replies, on its own thread.
class FakeDaemon {
 public:
  FakeDaemon(std::string endpoint, Handler handler)
      : endpoint_(std::move(endpoint)), handler_(std::move(handler)) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(endpoint_);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeDaemon() {
    stop_ = true;
    thread_.join();
  }

  std::vector<json> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  void serve() {
    while (!stop_) {
      zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&item, 1, 20) <= 0) continue;
      std::vector<zmq::message_t> frames;
      bool more = true;
      while (more) {
        zmq::message_t frame;
        (void)socket_.recv(frame);
        more = frame.more();
        frames.push_back(std::move(frame));
      }
      // Catch's assertions are not thread-safe: a bad request is recorded for the test to see.
      Result<json> request = fail(Errc::malformed, "not an identity, a delimiter and one frame");
      if (frames.size() == 3 && frames[1].size() == 0) {
        request = json_from_msgpack({frames[2].data<std::uint8_t>(), frames[2].size()});
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        requests_.push_back(request ? *request
                                    : json{{"fake: bad request", request.error().detail}});
      }
      if (!request) continue;
      auto reply = handler_(*request);
      if (!reply) continue;
      socket_.send(frames[0], zmq::send_flags::sndmore);
      socket_.send(zmq::message_t(), zmq::send_flags::sndmore);
      for (std::size_t i = 0; i < reply->frames.size(); ++i) {
        const auto& f = reply->frames[i];
        auto flags =
            i + 1 < reply->frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
        socket_.send(zmq::message_t(f.data(), f.size()), flags);
      }
    }
  }

  std::string endpoint_;
  Handler handler_;
  zmq::context_t context_;
  zmq::socket_t socket_{context_, zmq::socket_type::router};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<json> requests_;
  std::thread thread_;
};

}  // namespace ferry::client::fake
