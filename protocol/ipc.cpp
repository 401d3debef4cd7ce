#include "protocol/ipc.h"

#include <algorithm>
#include <deque>
#include <map>
#include <memory>

#include "protocol/hex.h"
#include "protocol/limits.h"
#include "protocol/merge.h"
#include "protocol/trust.h"

namespace ferry::ipc {
namespace {

using Object = msgpack::object;

constexpr std::uint32_t request_keys_max = 32;  // no command has more

tl::unexpected<Failure> bad(std::string message) {
  return tl::unexpected(Failure{Code::bad_request, std::move(message)});
}

// One value of the request map: the decoded object (in the zone of its Fields) and the exact
// bytes it was read from. The body is not decoded here (its object stays nil): body_field()
// unpacks it once, with the bounds of a body.
struct Field {
  Object object;
  std::span<const std::uint8_t> bytes;
};

constexpr std::string_view body_key = "body";

// Walks one msgpack value without building it, refusing more than `depth_max` nested containers.
struct SkipValue : msgpack::null_visitor {
  explicit SkipValue(std::size_t max) : depth_max(max) {}
  bool enter() {
    too_deep = ++depth > depth_max;
    return !too_deep;
  }
  bool start_array(std::uint32_t) { return enter(); }
  bool end_array() {
    --depth;
    return true;
  }
  bool start_map(std::uint32_t) { return enter(); }
  bool end_map() {
    --depth;
    return true;
  }
  std::size_t depth_max;
  std::size_t depth = 0;
  bool too_deep = false;
};

// A msgpack map starts with a fixmap (0x80..0x8f), map 16 (0xde) or map 32 (0xdf) byte.
bool starts_map(std::span<const std::uint8_t> bytes) {
  return !bytes.empty() && ((bytes[0] & 0xf0) == 0x80 || bytes[0] == 0xde || bytes[0] == 0xdf);
}

// The keys of one request map, checked off as they are read so that unknown keys are refused.
class Fields {
 public:
  // false when a key appears twice
  bool add(std::string key, Field field) {
    return fields_.emplace(std::move(key), std::move(field)).second;
  }

  const Field* take_field(const std::string& key) {
    auto it = fields_.find(key);
    if (it == fields_.end()) return nullptr;
    taken_.push_back(std::move(it->second));
    fields_.erase(it);
    return &taken_.back();
  }

  const Object* take(const std::string& key) {
    const Field* field = take_field(key);
    return field == nullptr ? nullptr : &field->object;
  }

  // Where the keys and values of the request are decoded: one zone for the whole request.
  msgpack::zone& zone() { return *zone_; }

  Parsed<void> none_left(std::string_view cmd) const {
    if (fields_.empty()) return {};
    return bad(std::string(cmd) + ": unknown key \"" + fields_.begin()->first + "\"");
  }

 private:
  std::unique_ptr<msgpack::zone> zone_ = std::make_unique<msgpack::zone>();  // moves with Fields
  std::map<std::string, Field> fields_;
  std::deque<Field> taken_;  // stable addresses for what take() handed out
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

// The body keeps the request's own bytes: re-encoding could change them (msgpack-c writes a
// whole-number float as an integer), and the body must come back exactly as it was submitted.
// The body is unpacked once, by validate_merge_body(), and the draft says so (body_validated).
Parsed<Bytes> body_field(const Field& field) {
  if (!starts_map(field.bytes)) return bad("body: must be a map");
  if (field.bytes.size() > limits::op_bytes_max) {
    return tl::unexpected(Failure{Code::too_large, "body: larger than an op may be"});
  }
  // validate_body()'s checks, and the merge's: the merge would ignore a malformed `set`, `inc`,
  // `add` or `del` part, so the writer learns of it now rather than never.
  if (auto merged = validate_merge_body(field.bytes); !merged) {
    const std::string& detail = merged.error().detail;
    return bad(detail.starts_with("body:") ? detail : "body: " + detail);
  }
  return Bytes(field.bytes.begin(), field.bytes.end());
}

// The documented length of a text field; longer is a value out of range (bad_request).
Parsed<std::string> bounded_text(const Object* o, std::string_view name, std::size_t bytes_max) {
  auto t = text(o, name);
  if (!t) return t;
  if (t->empty()) return bad(std::string(name) + ": must not be empty");
  if (t->size() > bytes_max) {
    return bad(std::string(name) + ": longer than " + std::to_string(bytes_max) + " bytes");
  }
  return t;
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
  const Field* body = f.take_field(std::string(body_key));
  if (kind == nullptr || key == nullptr || body == nullptr) {
    return bad("submit: kind, key and body are required");
  }
  auto k = bounded_text(kind, "kind", limits::kind_bytes_max);
  if (!k) return tl::unexpected(k.error());
  r.draft.kind = std::move(*k);
  auto ky = bounded_text(key, "key", limits::key_bytes_max);
  if (!ky) return tl::unexpected(ky.error());
  r.draft.key = std::move(*ky);
  auto b = body_field(*body);
  if (!b) return tl::unexpected(b.error());
  r.draft.body = std::move(*b);
  r.draft.body_validated = true;
  if (const Object* channel = f.take("channel"); channel != nullptr) {
    auto c = bounded_text(channel, "channel", limits::channel_bytes_max);
    if (!c) return tl::unexpected(c.error());
    if (c->starts_with(system_channel_prefix)) {
      return bad("channel: channels starting with ferry/ are written by ferry itself");
    }
    r.draft.channel = std::move(*c);
  }
  if (const Object* author = f.take("author"); author != nullptr) {
    auto a = bounded_text(author, "author", limits::author_bytes_max);
    if (!a) return tl::unexpected(a.error());
    r.draft.author = std::move(*a);
  }
  // Without deps the store names the record's current heads; explicit deps, even none, are kept.
  if (const Object* deps = f.take("deps"); deps != nullptr) {
    auto d = deps_field(deps);
    if (!d) return tl::unexpected(d.error());
    r.draft.deps = std::move(*d);
  } else {
    r.draft.deps_from_heads = true;
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

Parsed<Request> parse_get(Fields& f) {
  GetRequest r;
  const Object* key = f.take("key");
  if (key == nullptr) return bad("get: key is required");
  auto k = bounded_text(key, "key", limits::key_bytes_max);
  if (!k) return tl::unexpected(k.error());
  r.key = std::move(*k);
  if (const Object* channel = f.take("channel"); channel != nullptr) {
    auto c = bounded_text(channel, "channel", limits::channel_bytes_max);
    if (!c) return tl::unexpected(c.error());
    r.channel = std::move(*c);
  }
  if (auto rest = f.none_left("get"); !rest) return tl::unexpected(rest.error());
  return r;
}

Parsed<Request> parse_conflicts(Fields& f) {
  ConflictsRequest r{conflicts_limit_default};
  if (const Object* limit = f.take("limit"); limit != nullptr) {
    auto l = number(limit, "limit", conflicts_limit_max);
    if (!l) return tl::unexpected(l.error());
    if (*l == 0) return bad("limit: must be at least 1");
    r.limit = static_cast<std::size_t>(*l);
  }
  if (auto rest = f.none_left("conflicts"); !rest) return tl::unexpected(rest.error());
  return r;
}

Parsed<std::vector<std::string>> pattern_list(const Object* list, std::string_view field) {
  if (list->type != msgpack::type::ARRAY || list->via.array.size > trust_patterns_max) {
    return bad(std::string(field) + ": must be an array of at most " +
               std::to_string(trust_patterns_max) + " channel patterns");
  }
  std::vector<std::string> out;
  for (std::uint32_t i = 0; i < list->via.array.size; ++i) {
    auto p = bounded_text(&list->via.array.ptr[i], field, limits::channel_bytes_max);
    if (!p) return tl::unexpected(p.error());
    if (auto valid = check_pattern(*p); !valid) {
      return bad(std::string(field) + ": " + valid.error().detail);
    }
    out.push_back(std::move(*p));
  }
  return out;
}

Parsed<Request> parse_trust_add(Fields& f) {
  TrustAddRequest r;
  const Object* name = f.take("name");
  if (name == nullptr) return bad("trust_add: name is required");
  auto n = bounded_text(name, "name", node_name_bytes_max);
  if (!n) return tl::unexpected(n.error());
  r.name = std::move(*n);
  const Object* key = f.take("key");
  if (key == nullptr) return bad("trust_add: key is required");
  auto k = id_field(key, "key");
  if (!k) return tl::unexpected(k.error());
  r.key = *k;
  if (const Object* role = f.take("role"); role != nullptr) {
    auto ro = bounded_text(role, "role", 16);
    if (!ro) return tl::unexpected(ro.error());
    r.role = std::move(*ro);
  }
  if (const Object* read = f.take("read"); read != nullptr) {
    auto p = pattern_list(read, "read");
    if (!p) return tl::unexpected(p.error());
    r.read = std::move(*p);
    r.has_read = true;
  }
  if (const Object* write = f.take("write"); write != nullptr) {
    auto p = pattern_list(write, "write");
    if (!p) return tl::unexpected(p.error());
    r.write = std::move(*p);
    r.has_write = true;
  }
  if (auto rest = f.none_left("trust_add"); !rest) return tl::unexpected(rest.error());
  return r;
}

Parsed<Request> parse_trust_revoke(Fields& f) {
  const Object* who = f.take("who");
  if (who == nullptr) return bad("trust_revoke: who (a node name or public key) is required");
  auto w = bounded_text(who, "who", 2 * public_key_bytes);
  if (!w) return tl::unexpected(w.error());
  if (auto rest = f.none_left("trust_revoke"); !rest) return tl::unexpected(rest.error());
  return TrustRevokeRequest{std::move(*w)};
}

Parsed<Request> dispatch(const std::string& cmd, Fields& f, const RequestLimits& limits) {
  if (cmd == "trust_add") return parse_trust_add(f);
  if (cmd == "trust_revoke") return parse_trust_revoke(f);
  if (cmd == "peers" || cmd == "sync" || cmd == "trust_list" || cmd == "monitor") {
    if (auto rest = f.none_left(cmd); !rest) return tl::unexpected(rest.error());
    if (cmd == "peers") return PeersRequest{};
    if (cmd == "monitor") return MonitorRequest{};
    if (cmd == "sync") return SyncRequest{};
    return TrustListRequest{};
  }
  if (cmd == "submit") return parse_submit(f);
  if (cmd == "op" || cmd == "track") {
    auto id = parse_id_only(f, cmd);
    if (!id) return tl::unexpected(id.error());
    if (cmd == "op") return OpRequest{*id};
    return TrackRequest{*id};
  }
  if (cmd == "pull") return parse_pull(f, limits);
  if (cmd == "get") return parse_get(f);
  if (cmd == "conflicts") return parse_conflicts(f);
  if (cmd == "status") {
    if (auto rest = f.none_left("status"); !rest) return tl::unexpected(rest.error());
    return StatusRequest{};
  }
  std::string shown = cmd.substr(0, 64);
  return tl::unexpected(Failure{Code::unknown_command, "unknown command \"" + shown + "\""});
}

// The number of entries of the map that starts the frame, or nullopt if it is no map.
std::optional<std::uint32_t> map_entries(std::span<const std::uint8_t> frame) {
  if (frame.empty()) return std::nullopt;
  std::uint8_t first = frame[0];
  if ((first & 0xf0) == 0x80) return first & 0x0fu;
  if (first == 0xde && frame.size() >= 3)
    return static_cast<std::uint32_t>(frame[1] << 8 | frame[2]);
  if (first == 0xdf && frame.size() >= 5) {
    return static_cast<std::uint32_t>(frame[1]) << 24 | static_cast<std::uint32_t>(frame[2]) << 16 |
           static_cast<std::uint32_t>(frame[3]) << 8 | frame[4];
  }
  return std::nullopt;
}

// Reads the request map entry by entry, so that each value's own bytes are known.
Parsed<Fields> read_map(std::span<const std::uint8_t> frame) {
  auto entries = map_entries(frame);
  if (!entries) return bad("request: must be a msgpack map");
  if (*entries > request_keys_max) return bad("request: too many keys");
  std::size_t offset = frame[0] == 0xde ? 3 : frame[0] == 0xdf ? 5 : 1;
  const msgpack::unpack_limit unpack_limit(limits::body_container_items_max,
                                           limits::body_container_items_max, frame.size(),
                                           frame.size(), frame.size(), limits::body_depth_max + 1);
  Fields fields;
  try {
    for (std::uint32_t i = 0; i < *entries; ++i) {
      bool referenced = false;
      Object key =
          msgpack::unpack(fields.zone(), reinterpret_cast<const char*>(frame.data()), frame.size(),
                          offset, referenced, nullptr, nullptr, unpack_limit);
      if (key.type != msgpack::type::STR) return bad("request: map keys must be strings");
      std::string name(key.via.str.ptr, key.via.str.size);
      std::size_t start = offset;
      Field value;
      if (name == body_key) {
        SkipValue skip(limits::body_depth_max + 1);
        if (!msgpack::parse(reinterpret_cast<const char*>(frame.data()), frame.size(), offset,
                            skip)) {
          return bad(skip.too_deep ? "request: nested too deep or too many entries"
                                   : "request: not msgpack (a truncated or malformed body)");
        }
      } else {
        value.object =
            msgpack::unpack(fields.zone(), reinterpret_cast<const char*>(frame.data()),
                            frame.size(), offset, referenced, nullptr, nullptr, unpack_limit);
      }
      value.bytes = frame.subspan(start, offset - start);
      if (!fields.add(std::move(name), std::move(value)))
        return bad("request: a key appears twice");
    }
  } catch (const msgpack::size_overflow&) {
    return bad("request: nested too deep or too many entries");
  } catch (const std::exception& e) {
    return bad(std::string("request: not msgpack (") + e.what() + ")");
  }
  if (offset != frame.size()) return bad("request: trailing bytes after the map");
  return fields;
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
    case Code::forbidden:
      return "forbidden";
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
    case Errc::unauthorized:
      return Code::forbidden;
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
  auto fields = read_map(frame);
  if (!fields) return tl::unexpected(fields.error());
  const Object* cmd = fields->take("cmd");
  if (cmd == nullptr) return bad("request: cmd is required");
  auto name = text(cmd, "cmd");
  if (!name) return tl::unexpected(name.error());
  return dispatch(*name, *fields, limits);
}

ReplyWriter::ReplyWriter() : packer_(buffer_) {}

void ReplyWriter::key(std::string_view k) {
  packer_.pack_str(static_cast<std::uint32_t>(k.size()));
  packer_.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
}

void ReplyWriter::text(std::string_view v) { key(v); }

void ReplyWriter::id(const Digest& d) { text(to_hex(d)); }

void ReplyWriter::value(std::span<const std::uint8_t> encoded) {
  buffer_.write(reinterpret_cast<const char*>(encoded.data()), encoded.size());
}

void ReplyWriter::record(std::string_view channel, std::string_view record_key,
                         const RecordState& state) {
  packer_.pack_map(9);
  key("channel");
  text(channel);
  key("key");
  text(record_key);
  key("fields");
  auto fields = winning_values(state);
  packer_.pack_map(static_cast<std::uint32_t>(fields.size()));
  for (const auto& [field, encoded] : fields) {
    key(field);
    value(encoded);
  }
  key("counters");
  packer_.pack_map(static_cast<std::uint32_t>(state.counters.size()));
  for (const auto& [field, sum] : state.counters) {
    key(field);
    packer_.pack_int64(sum);
  }
  key("sets");
  auto sets = set_elements(state);
  packer_.pack_map(static_cast<std::uint32_t>(sets.size()));
  for (const auto& [field, elements] : sets) {
    key(field);
    packer_.pack_array(static_cast<std::uint32_t>(elements.size()));
    for (const auto& element : elements) value(element);
  }
  key("heads");
  packer_.pack_array(static_cast<std::uint32_t>(state.heads.size()));
  for (const auto& [dot, head] : state.heads) id(head);
  key("conflicts");
  conflict_views(conflicts(state));
  key("ops");
  packer_.pack_uint64(state.ops);
  key("updated_hlc");
  packer_.pack_uint64(state.updated_hlc);
}

void ReplyWriter::conflict_views(const std::vector<ConflictView>& views) {
  packer_.pack_array(static_cast<std::uint32_t>(views.size()));
  for (const ConflictView& view : views) {
    packer_.pack_map(2);
    key("field");
    text(view.field);
    key("values");
    packer_.pack_array(static_cast<std::uint32_t>(view.values.size()));
    for (const ConflictValue& v : view.values) {
      packer_.pack_map(5);
      key("value");
      value(v.value);
      key("id");
      id(v.id);
      key("origin");
      id(v.origin);
      key("author");
      if (v.author) {
        text(*v.author);
      } else {
        packer_.pack_nil();
      }
      key("hlc");
      packer_.pack_uint64(v.hlc);
    }
  }
}

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
