#include "ctl/client.h"

#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <zmq.hpp>

#include "ctl/msgpack_json.h"

namespace ferry::client {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int socket_hwm = 16;               // one request is in flight at a time
constexpr std::size_t reply_frames_max = 2;  // the empty delimiter and the reply map
constexpr std::size_t id_hex_digits = 64;
// With a cancel flag, waits are cut into slices this long so that a signal that arrives just
// before a wait starts still ends the call soon.
constexpr std::chrono::milliseconds cancel_slice{200};

Error with_context(Error error, std::string_view context) {
  error.detail = std::string(context) + ": " + error.detail;
  return error;
}

bool is_hex_digits(std::string_view text) {
  return text.size() == id_hex_digits && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
         });
}

Result<void> check_id(std::string_view id_hex) {
  if (!is_hex_digits(id_hex)) {
    return fail(Errc::malformed, "an id is 64 hex digits, not \"" + std::string(id_hex) + "\"");
  }
  return {};
}

// A public key has as many hex digits as an id (32 bytes).
Result<void> check_key(std::string_view key_hex) {
  if (!is_hex_digits(key_hex)) {
    return fail(Errc::malformed,
                "a public key is 64 hex digits, not \"" + std::string(key_hex) + "\"");
  }
  return {};
}

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

Result<std::uint64_t> reply_uint(const json& reply, const char* key) {
  auto it = reply.find(key);
  if (it == reply.end() || !it->is_number_unsigned()) {
    return fail(Errc::malformed, std::string("reply lacks an unsigned integer `") + key + "`");
  }
  return it->get<std::uint64_t>();
}

Result<std::string> reply_text(const json& reply, const char* key) {
  auto it = reply.find(key);
  if (it == reply.end() || !it->is_string()) {
    return fail(Errc::malformed, std::string("reply lacks a string `") + key + "`");
  }
  return it->get<std::string>();
}

// The reply to a submit (or a trust op, committed like one): the op is durable.
Result<Submitted> submitted_from(const json& reply, std::string_view context) {
  auto id = reply_text(reply, "id");
  if (!id) return tl::unexpected(with_context(id.error(), context));
  auto seq = reply_uint(reply, "seq");
  if (!seq) return tl::unexpected(with_context(seq.error(), context));
  auto hlc = reply_uint(reply, "hlc");
  if (!hlc) return tl::unexpected(with_context(hlc.error(), context));
  auto channel = reply_text(reply, "channel");
  if (!channel) return tl::unexpected(with_context(channel.error(), context));
  return Submitted{*id, *seq, *hlc, *channel};
}

// The reply's array `key`, moved out.
Result<json> reply_array(json& reply, const char* key, std::string_view context) {
  auto it = reply.find(key);
  if (it == reply.end() || !it->is_array()) {
    return fail(Errc::malformed,
                std::string(context) + ": the reply lacks its `" + key + "` array");
  }
  return std::move(*it);
}

// The reply's fields without `ok`.
json without_ok(json reply) {
  reply.erase("ok");
  return reply;
}

// An `ok: false` reply as an Error that keeps the daemon's code in its detail.
Error error_from_reply(const json& reply) {
  auto error = reply.find("error");
  if (error == reply.end() || !error->is_object()) {
    return Error{Errc::malformed, "an error reply lacks its `error` map"};
  }
  auto code = reply_text(*error, "code");
  if (!code) return Error{Errc::malformed, "an error reply lacks its `error.code`"};
  auto message = reply_text(*error, "message");
  return Error{errc_for_ipc_code(*code), *code + ": " + message.value_or("")};
}

Result<json> check_reply(Result<json> reply) {
  if (!reply) return reply;
  if (!reply->is_object()) return fail(Errc::malformed, "the reply is not a msgpack map");
  auto ok = reply->find("ok");
  if (ok == reply->end() || !ok->is_boolean()) {
    return fail(Errc::malformed, "the reply lacks a boolean `ok`");
  }
  if (!ok->get<bool>()) return tl::unexpected(error_from_reply(*reply));
  return reply;
}

// Runs fn and turns any exception (allocation, nlohmann, cppzmq) into an Error: exceptions never
// leave the client.
template <class F>
auto guarded(F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::exception& e) {
    return fail(Errc::io, std::string("ferry client: ") + e.what());
  }
}

}  // namespace

Errc errc_for_ipc_code(std::string_view code) {
  if (code == "bad_request" || code == "unknown_command") return Errc::malformed;
  if (code == "too_large") return Errc::limit_exceeded;
  if (code == "not_found") return Errc::not_found;
  if (code == "busy") return Errc::busy;
  if (code == "storage_full") return Errc::disk_full;
  if (code == "forbidden") return Errc::unauthorized;
  return Errc::io;  // storage_error, internal, and codes newer than this client
}

struct Client::Impl {
  explicit Impl(ClientOptions o) : options(std::move(o)) {}

  ClientOptions options;
  std::unique_ptr<zmq::context_t> context;
  std::unique_ptr<zmq::socket_t> socket;  // destroyed before the context (declared after it)

  Result<void> open();
  Result<void> send(std::span<const std::uint8_t> request);
  Result<void> wait_readable(Clock::time_point deadline);
  Result<std::vector<std::uint8_t>> receive();
  Result<json> exchange(const json& request, std::chrono::milliseconds extra_wait);
  Result<json> call(const json& request, std::chrono::milliseconds extra_wait);
  Error timed_out() const;
};

Result<void> Client::Impl::open() {
  if (socket) return {};
  if (!context) context = std::make_unique<zmq::context_t>(1);
  auto s = std::make_unique<zmq::socket_t>(*context, zmq::socket_type::dealer);
  s->set(zmq::sockopt::linger, 0);
  s->set(zmq::sockopt::sndhwm, socket_hwm);
  s->set(zmq::sockopt::rcvhwm, socket_hwm);
  auto max = std::min<std::size_t>(
      options.reply_bytes_max, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()));
  s->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(max));
  try {
    s->connect(options.endpoint);
  } catch (const zmq::error_t& e) {
    return fail(Errc::malformed, "cannot connect to \"" + options.endpoint + "\": " + e.what());
  }
  socket = std::move(s);
  return {};
}

Result<void> Client::Impl::send(std::span<const std::uint8_t> request) {
  // The socket holds at most this one request, so the queue is never full; dontwait keeps a
  // broken socket from blocking the caller all the same.
  auto delimiter =
      socket->send(zmq::message_t(), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
  if (!delimiter) return tl::unexpected(timed_out());
  auto body =
      socket->send(zmq::message_t(request.data(), request.size()), zmq::send_flags::dontwait);
  if (!body) return tl::unexpected(timed_out());
  return {};
}

Error Client::Impl::timed_out() const {
  return Error{Errc::timeout, "ferryd at " + options.endpoint + " did not answer within " +
                                  std::to_string(options.timeout.count()) +
                                  " ms (is ferryd running?)"};
}

Result<void> Client::Impl::wait_readable(Clock::time_point deadline) {
  for (;;) {
    if (options.cancel != nullptr && options.cancel->load()) {
      return fail(Errc::timeout, "cancelled");
    }
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return tl::unexpected(timed_out());
    if (options.cancel != nullptr) left = std::min(left, cancel_slice);
    zmq_pollitem_t item{socket->handle(), 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&item, 1, static_cast<long>(left.count()));
    if (rc > 0) return {};
    if (rc < 0 && zmq_errno() != EINTR) {
      return fail(Errc::io, std::string("waiting for ferryd: ") + zmq_strerror(zmq_errno()));
    }
  }
}

Result<std::vector<std::uint8_t>> Client::Impl::receive() {
  std::vector<zmq::message_t> frames;
  bool more = true;
  while (more) {
    zmq::message_t frame;
    if (!socket->recv(frame, zmq::recv_flags::dontwait)) break;  // parts arrive together
    more = frame.more();
    frames.push_back(std::move(frame));
    if (more && frames.size() == reply_frames_max) {
      return fail(Errc::malformed, "the reply has more than one frame after the delimiter");
    }
  }
  if (frames.size() != reply_frames_max || frames[0].size() != 0) {
    return fail(Errc::malformed, "the reply is not an empty delimiter frame and one map frame");
  }
  const auto* data = frames[1].data<std::uint8_t>();
  return std::vector<std::uint8_t>(data, data + frames[1].size());
}

// One request, one reply map. Any failure drops the socket, so that a late reply to this request
// can never be taken for the reply to the next one.
Result<json> Client::Impl::exchange(const json& request, std::chrono::milliseconds extra_wait) {
  auto deadline = Clock::now() + options.timeout + extra_wait;
  Result<json> reply = [&]() -> Result<json> {
    if (auto opened = open(); !opened) return tl::unexpected(opened.error());
    std::vector<std::uint8_t> bytes = json::to_msgpack(request);
    if (auto sent = send(bytes); !sent) return tl::unexpected(sent.error());
    if (auto ready = wait_readable(deadline); !ready) return tl::unexpected(ready.error());
    auto frame = receive();
    if (!frame) return tl::unexpected(frame.error());
    MsgpackLimits limits;
    limits.string_bytes_max = options.reply_bytes_max;
    auto decoded = json_from_msgpack(*frame, limits);
    if (!decoded) return tl::unexpected(with_context(decoded.error(), "the reply from ferryd"));
    return decoded;
  }();
  if (!reply) socket.reset();
  return reply;
}

Result<json> Client::Impl::call(const json& request, std::chrono::milliseconds extra_wait) {
  if (!request.is_object()) return fail(Errc::malformed, "a request must be a map");
  try {
    return check_reply(exchange(request, extra_wait));
  } catch (const std::exception& e) {  // cppzmq and nlohmann throw; nothing leaves the client
    socket.reset();
    return fail(Errc::io, std::string("IPC with ferryd at ") + options.endpoint + ": " + e.what());
  }
}

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

const ClientOptions& Client::options() const { return impl_->options; }

Result<json> Client::call(const json& request) { return impl_->call(request, {}); }

Result<Submitted> Client::submit(const Submission& submission) {
  return guarded([&]() -> Result<Submitted> {
    if (!submission.body.is_object()) return fail(Errc::malformed, "a submit body must be a map");
    json request = {{"cmd", "submit"},
                    {"kind", submission.kind},
                    {"key", submission.key},
                    {"body", submission.body}};
    if (submission.channel) request["channel"] = *submission.channel;
    if (submission.author) request["author"] = *submission.author;
    if (!submission.deps.empty()) {
      json deps = json::array();
      for (const std::string& dep : submission.deps) {
        if (auto valid = check_id(dep); !valid) return tl::unexpected(valid.error());
        deps.push_back(lower(dep));
      }
      request["deps"] = std::move(deps);
    }
    auto reply = impl_->call(request, {});
    if (!reply) return tl::unexpected(reply.error());
    return submitted_from(*reply, "submit");
  });
}

Result<json> Client::op(std::string_view id_hex) {
  return guarded([&]() -> Result<json> {
    if (auto valid = check_id(id_hex); !valid) return tl::unexpected(valid.error());
    auto reply = impl_->call({{"cmd", "op"}, {"id", lower(id_hex)}}, {});
    if (!reply) return reply;
    auto it = reply->find("op");
    if (it == reply->end() || !it->is_object()) {
      return fail(Errc::malformed, "op: the reply lacks its `op` map");
    }
    return std::move(*it);
  });
}

Result<json> Client::track(std::string_view id_hex) {
  return guarded([&]() -> Result<json> {
    if (auto valid = check_id(id_hex); !valid) return tl::unexpected(valid.error());
    auto reply = impl_->call({{"cmd", "track"}, {"id", lower(id_hex)}}, {});
    if (!reply) return reply;
    if (auto state = reply_text(*reply, "state"); !state) {
      return tl::unexpected(with_context(state.error(), "track"));
    }
    return without_ok(std::move(*reply));
  });
}

Result<PullResult> Client::pull(std::uint64_t after, std::size_t limit,
                                std::chrono::milliseconds wait,
                                const std::vector<std::string>& channels) {
  return guarded([&]() -> Result<PullResult> {
    json request = {{"cmd", "pull"}, {"after", after}};
    if (limit > 0) request["limit"] = limit;
    if (wait.count() > 0) request["wait_ms"] = static_cast<std::uint64_t>(wait.count());
    if (!channels.empty()) request["channels"] = channels;
    auto reply = impl_->call(request, std::max(wait, std::chrono::milliseconds{0}));
    if (!reply) return tl::unexpected(reply.error());
    auto next = reply_uint(*reply, "next");
    if (!next) return tl::unexpected(with_context(next.error(), "pull"));
    auto ops = reply->find("ops");
    if (ops == reply->end() || !ops->is_array()) {
      return fail(Errc::malformed, "pull: the reply lacks its `ops` array");
    }
    PullResult out{{}, *next};
    out.ops.reserve(ops->size());
    for (json& op : *ops) {
      if (!op.is_object()) return fail(Errc::malformed, "pull: an element of `ops` is not a map");
      out.ops.push_back(std::move(op));
    }
    return out;
  });
}

Result<json> Client::status() {
  return guarded([&]() -> Result<json> {
    auto reply = impl_->call({{"cmd", "status"}}, {});
    if (!reply) return reply;
    return without_ok(std::move(*reply));
  });
}

Result<json> Client::get(std::string_view key, std::optional<std::string> channel) {
  return guarded([&]() -> Result<json> {
    json request = {{"cmd", "get"}, {"key", std::string(key)}};
    if (channel) request["channel"] = std::move(*channel);
    auto reply = impl_->call(request, {});
    if (!reply) return reply;
    auto it = reply->find("record");
    if (it == reply->end() || !it->is_object()) {
      return fail(Errc::malformed, "get: the reply lacks its `record` map");
    }
    return std::move(*it);
  });
}

Result<json> Client::conflicts(std::size_t limit) {
  return guarded([&]() -> Result<json> {
    json request = {{"cmd", "conflicts"}};
    if (limit > 0) request["limit"] = limit;
    auto reply = impl_->call(request, {});
    if (!reply) return reply;
    return reply_array(*reply, "conflicts", "conflicts");
  });
}

Result<json> Client::peers() {
  return guarded([&]() -> Result<json> {
    auto reply = impl_->call({{"cmd", "peers"}}, {});
    if (!reply) return reply;
    return reply_array(*reply, "peers", "peers");
  });
}

Result<json> Client::sync() {
  return guarded([&]() -> Result<json> {
    auto reply = impl_->call({{"cmd", "sync"}}, {});
    if (!reply) return reply;
    return without_ok(std::move(*reply));
  });
}

Result<json> Client::trust_list() {
  return guarded([&]() -> Result<json> {
    auto reply = impl_->call({{"cmd", "trust_list"}}, {});
    if (!reply) return reply;
    auto it = reply->find("trust");
    if (it == reply->end() || !it->is_array()) {
      return fail(Errc::malformed, "trust_list: the reply lacks its `trust` array");
    }
    return without_ok(std::move(*reply));
  });
}

Result<Submitted> Client::trust_add(std::string_view name, std::string_view key_hex,
                                    std::string_view role,
                                    const std::optional<std::vector<std::string>>& read,
                                    const std::optional<std::vector<std::string>>& write) {
  return guarded([&]() -> Result<Submitted> {
    if (auto valid = check_key(key_hex); !valid) return tl::unexpected(valid.error());
    json request = {{"cmd", "trust_add"}, {"name", std::string(name)}, {"key", lower(key_hex)}};
    if (!role.empty()) request["role"] = std::string(role);
    if (read) request["read"] = *read;
    if (write) request["write"] = *write;
    auto reply = impl_->call(request, {});
    if (!reply) return tl::unexpected(reply.error());
    return submitted_from(*reply, "trust_add");
  });
}

Result<Submitted> Client::trust_revoke(std::string_view who) {
  return guarded([&]() -> Result<Submitted> {
    auto reply = impl_->call({{"cmd", "trust_revoke"}, {"who", std::string(who)}}, {});
    if (!reply) return tl::unexpected(reply.error());
    return submitted_from(*reply, "trust_revoke");
  });
}

}  // namespace ferry::client
