#include "protocol/ipc.h"

#include <algorithm>
#include <map>

#include "protocol/hex.h"
#include "protocol/limits.h"

namespace ferry::ipc {
namespace {

using Object = msgpack::object;

tl::unexpected<Failure> bad(std::string message) {
  return tl::unexpected(Failure{Code::bad_request, std::move(message)});
}

// The keys of one request map, checked off as they are read so that unknown keys are refused.
class Fields {
 public:
  explicit Fields(const Object& map) {
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
      const msgpack::object_kv& kv = map.via.map.ptr[i];
      std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
      if (!fields_.emplace(std::move(key), &kv.val).second) duplicate_ = true;
    }
  }

  bool duplicate() const { return duplicate_; }

  const Object* take(const std::string& key) {
    auto it = fields_.find(key);
    if (it == fields_.end()) return nullptr;
    const Object* value = it->second;
    fields_.erase(it);
    return value;
  }

  Parsed<void> none_left(std::string_view cmd) const {
    if (fields_.empty()) return {};
    return bad(std::string(cmd) + ": unknown key \"" + fields_.begin()->first + "\"");
  }

 private:
  std::map<std::string, const Object*> fields_;
  bool duplicate_ = false;
};

Parsed<std::string> text(const Object* o, std::string_view name) {
  if (o->type != msgpack::type::STR) return bad(std::string(name) + ": must be a string");
  return std::string(o->via.str.ptr, o->via.str.size);
}

Parsed<std::uint64_t> number(const Object* o, std::string_view name, std::uint64_t max) {
  if (o->type != msgpack::type::POSITIVE_INTEGER) {
    return bad(std::string(name) + ": must be a non-negative integer");
  }
  if (o->via.u64 > max) {
    return bad(std::string(name) + ": must be at most " + std::to_string(max));
  }
  return o->via.u64;
}

Parsed<OpId> id_field(const Object* o, std::string_view name) {
  auto hex = text(o, name);
  if (!hex) return tl::unexpected(hex.error());
  auto id = from_hex<digest_bytes>(*hex);
  if (!id) return bad(std::string(name) + ": must be 64 hex digits");
  return *id;
}

Parsed<Bytes> body_field(const Object* o) {
  if (o->type != msgpack::type::MAP) return bad("body: must be a map");
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, *o);  // the request's body, packed alone to become the draft's body
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  Bytes body(data, data + buffer.size());
  if (auto valid = validate_body(body); !valid) {
    if (valid.error().code == Errc::limit_exceeded) {
      return tl::unexpected(Failure{Code::too_large, valid.error().detail});
    }
    return bad(valid.error().detail);
  }
  return body;
}

Parsed<std::vector<OpId>> deps_field(const Object* o) {
  if (o->type != msgpack::type::ARRAY) return bad("deps: must be an array of ids");
  if (o->via.array.size > limits::deps_max) {
    return bad("deps: at most " + std::to_string(limits::deps_max) + " ids");
  }
  std::vector<OpId> deps;
  for (std::uint32_t i = 0; i < o->via.array.size; ++i) {
    auto id = id_field(&o->via.array.ptr[i], "deps");
    if (!id) return tl::unexpected(id.error());
    deps.push_back(*id);
  }
  return deps;
}

Parsed<Request> parse_submit(Fields& f) {
  SubmitRequest r;
  const Object* kind = f.take("kind");
  const Object* key = f.take("key");
  const Object* body = f.take("body");
  if (kind == nullptr || key == nullptr || body == nullptr) {
    return bad("submit: kind, key and body are required");
  }
  auto k = text(kind, "kind");
  if (!k) return tl::unexpected(k.error());
  r.draft.kind = std::move(*k);
  auto ky = text(key, "key");
  if (!ky) return tl::unexpected(ky.error());
  r.draft.key = std::move(*ky);
  auto b = body_field(body);
  if (!b) return tl::unexpected(b.error());
  r.draft.body = std::move(*b);
  if (const Object* channel = f.take("channel"); channel != nullptr) {
    auto c = text(channel, "channel");
    if (!c) return tl::unexpected(c.error());
    if (c->starts_with(system_channel_prefix)) {
      return bad("channel: channels starting with ferry/ are written by ferry itself");
    }
    if (c->empty()) return bad("channel: must not be empty");
    r.draft.channel = std::move(*c);
  }
  if (const Object* author = f.take("author"); author != nullptr) {
    auto a = text(author, "author");
    if (!a) return tl::unexpected(a.error());
    r.draft.author = std::move(*a);
  }
  if (const Object* deps = f.take("deps"); deps != nullptr) {
    auto d = deps_field(deps);
    if (!d) return tl::unexpected(d.error());
    r.draft.deps = std::move(*d);
  }
  if (auto rest = f.none_left("submit"); !rest) return tl::unexpected(rest.error());
  return r;
}

Parsed<OpId> parse_id_only(Fields& f, std::string_view cmd) {
  const Object* id = f.take("id");
  if (id == nullptr) return bad(std::string(cmd) + ": id is required");
  auto parsed = id_field(id, "id");
  if (!parsed) return parsed;
  if (auto rest = f.none_left(cmd); !rest) return tl::unexpected(rest.error());
  return parsed;
}

Parsed<Request> parse_pull(Fields& f, const RequestLimits& limits) {
  PullRequest r;
  const Object* after = f.take("after");
  if (after == nullptr) return bad("pull: after is required (0 to start)");
  auto a = number(after, "after", std::uint64_t{1} << 62);
  if (!a) return tl::unexpected(a.error());
  r.after = *a;
  r.limit = std::min(limits.pull_limit_default, limits.pull_limit_max);
  if (const Object* limit = f.take("limit"); limit != nullptr) {
    auto l = number(limit, "limit", limits.pull_limit_max);
    if (!l) return tl::unexpected(l.error());
    if (*l == 0) return bad("limit: must be at least 1");
    r.limit = static_cast<std::size_t>(*l);
  }
  if (const Object* wait = f.take("wait_ms"); wait != nullptr) {
    auto w = number(wait, "wait_ms", static_cast<std::uint64_t>(limits.pull_wait_max.count()));
    if (!w) return tl::unexpected(w.error());
    r.wait = std::chrono::milliseconds(*w);
  }
  if (const Object* channels = f.take("channels"); channels != nullptr) {
    if (channels->type != msgpack::type::ARRAY || channels->via.array.size > 64) {
      return bad("channels: must be an array of at most 64 channel names");
    }
    for (std::uint32_t i = 0; i < channels->via.array.size; ++i) {
      auto c = text(&channels->via.array.ptr[i], "channels");
      if (!c) return tl::unexpected(c.error());
      r.channels.push_back(std::move(*c));
    }
  }
  if (auto rest = f.none_left("pull"); !rest) return tl::unexpected(rest.error());
  return r;
}

Parsed<Request> dispatch(const std::string& cmd, Fields& f, const RequestLimits& limits) {
  if (cmd == "submit") return parse_submit(f);
  if (cmd == "op" || cmd == "track") {
    auto id = parse_id_only(f, cmd);
    if (!id) return tl::unexpected(id.error());
    if (cmd == "op") return OpRequest{*id};
    return TrackRequest{*id};
  }
  if (cmd == "pull") return parse_pull(f, limits);
  if (cmd == "status") {
    if (auto rest = f.none_left("status"); !rest) return tl::unexpected(rest.error());
    return StatusRequest{};
  }
  std::string shown = cmd.substr(0, 64);
  return tl::unexpected(Failure{Code::unknown_command, "unknown command \"" + shown + "\""});
}

}  // namespace

std::string_view code_name(Code code) {
  switch (code) {
    case Code::bad_request:
      return "bad_request";
    case Code::unknown_command:
      return "unknown_command";
    case Code::too_large:
      return "too_large";
    case Code::not_found:
      return "not_found";
    case Code::busy:
      return "busy";
    case Code::storage_full:
      return "storage_full";
    case Code::storage_error:
      return "storage_error";
    case Code::internal:
      return "internal";
  }
  return "internal";
}

Code code_for(const Error& error) {
  switch (error.code) {
    case Errc::malformed:
      return Code::bad_request;
    case Errc::limit_exceeded:
      return Code::too_large;
    case Errc::not_found:
      return Code::not_found;
    case Errc::busy:
      return Code::busy;
    case Errc::disk_full:
      return Code::storage_full;
    case Errc::io:
    case Errc::corrupt:
      return Code::storage_error;
    default:
      return Code::internal;
  }
}

Parsed<Request> parse_request(std::span<const std::uint8_t> frame, const RequestLimits& limits) {
  if (frame.size() > limits.request_bytes_max) {
    return tl::unexpected(Failure{Code::too_large, "request of " + std::to_string(frame.size()) +
                                                       " bytes; the limit is " +
                                                       std::to_string(limits.request_bytes_max)});
  }
  msgpack::object_handle handle;
  try {
    std::size_t offset = 0;
    msgpack::unpack_limit unpack_limit(limits::body_container_items_max,
                                       limits::body_container_items_max, frame.size(), frame.size(),
                                       frame.size(), limits::body_depth_max + 2);
    handle = msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size(), offset,
                             nullptr, nullptr, unpack_limit);
    if (offset != frame.size()) return bad("request: trailing bytes after the map");
  } catch (const msgpack::size_overflow&) {
    return bad("request: nested too deep or too many entries");
  } catch (const std::exception& e) {
    return bad(std::string("request: not msgpack (") + e.what() + ")");
  }
  const Object& map = handle.get();
  if (map.type != msgpack::type::MAP) return bad("request: must be a msgpack map");
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    if (map.via.map.ptr[i].key.type != msgpack::type::STR) {
      return bad("request: map keys must be strings");
    }
  }
  Fields fields(map);
  if (fields.duplicate()) return bad("request: a key appears twice");
  const Object* cmd = fields.take("cmd");
  if (cmd == nullptr) return bad("request: cmd is required");
  auto name = text(cmd, "cmd");
  if (!name) return tl::unexpected(name.error());
  return dispatch(*name, fields, limits);
}

ReplyWriter::ReplyWriter() : packer_(buffer_) {}

void ReplyWriter::key(std::string_view k) {
  packer_.pack_str(static_cast<std::uint32_t>(k.size()));
  packer_.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
}

void ReplyWriter::text(std::string_view v) { key(v); }

void ReplyWriter::id(const Digest& d) { text(to_hex(d)); }

void ReplyWriter::op(const SignedOp& signed_op, std::uint64_t arrival, std::uint64_t stored_at) {
  const OpHeader& h = signed_op.op.header();
  packer_.pack_map(13);
  key("id");
  id(signed_op.op.id());
  key("origin");
  id(h.origin);
  key("channel");
  text(h.channel);
  key("seq");
  packer_.pack_uint64(h.seq);
  key("prev");
  id(h.prev);
  key("hlc");
  packer_.pack_uint64(h.hlc);
  key("kind");
  text(h.kind);
  key("key");
  text(h.key);
  key("deps");
  packer_.pack_array(static_cast<std::uint32_t>(h.deps.size()));
  for (const OpId& dep : h.deps) id(dep);
  key("author");
  if (h.author) {
    text(*h.author);
  } else {
    packer_.pack_nil();
  }
  key("body");
  auto body = signed_op.op.body();  // the body's own bytes, exactly as the origin wrote them
  buffer_.write(reinterpret_cast<const char*>(body.data()), body.size());
  key("arrival");
  packer_.pack_uint64(arrival);
  key("stored_at");
  packer_.pack_uint64(stored_at);
}

Bytes ReplyWriter::take() {
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer_.data());
  Bytes out(data, data + buffer_.size());
  buffer_.clear();
  return out;
}

Bytes encode_failure(const Failure& failure) {
  ReplyWriter w;
  w.packer().pack_map(2);
  w.key("ok");
  w.packer().pack_false();
  w.key("error");
  w.packer().pack_map(2);
  w.key("code");
  w.text(code_name(failure.code));
  w.key("message");
  w.text(failure.message);
  return w.take();
}

Bytes encode_submitted(const OpId& id, std::uint64_t seq, std::uint64_t hlc,
                       std::string_view channel) {
  ReplyWriter w;
  w.packer().pack_map(5);
  w.key("ok");
  w.packer().pack_true();
  w.key("id");
  w.id(id);
  w.key("seq");
  w.packer().pack_uint64(seq);
  w.key("hlc");
  w.packer().pack_uint64(hlc);
  w.key("channel");
  w.text(channel);
  return w.take();
}

Bytes encode_track(std::uint64_t stored_at_ms) {
  ReplyWriter w;
  w.packer().pack_map(3);
  w.key("ok");
  w.packer().pack_true();
  w.key("state");
  w.text("stored");
  w.key("stored_at");
  w.packer().pack_uint64(stored_at_ms);
  return w.take();
}

}  // namespace ferry::ipc
