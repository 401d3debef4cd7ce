#include "protocol/sync.h"

#include <algorithm>
#include <array>
#include <initializer_list>
#include <limits>
#include <map>
#include <msgpack.hpp>

#include "protocol/limits.h"
#include "protocol/utf8.h"

namespace ferry::sync {
namespace {

using Object = msgpack::object;
using Packer = msgpack::packer<msgpack::sbuffer>;

constexpr std::uint32_t message_keys_max = 32;  // no message has more than 7
// Containers nest at most three deep in any message: the map, a list, and an op pair or a
// vector entry. Anything deeper is no message at all.
constexpr std::size_t message_depth_max = 3;
constexpr std::uint32_t entry_fields = 3;    // [origin, channel, seq]
constexpr std::uint32_t op_fields = 2;       // [envelope, signature]
constexpr std::size_t shown_bytes_max = 64;  // of an unknown key or type, in an error detail

constexpr std::array<std::string_view, error_code_count> error_code_names = {
    "version", "malformed",    "unexpected", "identity", "bad_signature", "gap",
    "fork",    "unauthorized", "too_large",  "window",   "internal"};
static_assert(static_cast<std::size_t>(ErrorCode::internal) + 1 == error_code_count);

tl::unexpected<Error> malformed(std::string detail) {
  return fail(Errc::malformed, std::move(detail));
}

tl::unexpected<Error> wrong_type(std::string_view what, std::string_view expected) {
  return malformed(std::string(what) + ": expected " + std::string(expected));
}

tl::unexpected<Error> too_many(std::string_view what, std::size_t max, std::string_view items) {
  return fail(Errc::limit_exceeded,
              std::string(what) + ": more than " + std::to_string(max) + " " + std::string(items));
}

std::string shown(std::string_view text) {
  return std::string(text.substr(0, std::min(text.size(), shown_bytes_max)));
}

// msgpack-c throws on bad input; the exception stops here. Container sizes are bounded by the
// largest configured list so that a short frame cannot make the parser allocate much; one item
// more gets through, so that a list just over its limit is refused naming the field.
Result<msgpack::object_handle> unpack_frame(std::span<const std::uint8_t> frame,
                                            const Limits& limits) {
  const std::size_t lists_max = std::max({limits.vector_entries_max, limits.batch_ops_max,
                                          limits.channels_max, std::size_t{entry_fields}});
  const std::size_t items_max = std::min<std::size_t>(lists_max, UINT32_MAX - 1) + 1;
  const msgpack::unpack_limit unpack_limit(items_max, message_keys_max, frame.size(), frame.size(),
                                           frame.size(), message_depth_max);
  std::size_t offset = 0;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size(), offset,
                             nullptr, nullptr, unpack_limit);
  } catch (const msgpack::insufficient_bytes&) {
    return malformed("message: truncated");
  } catch (const msgpack::depth_size_overflow&) {
    return malformed("message: nested deeper than any message");
  } catch (const msgpack::size_overflow&) {
    return fail(Errc::limit_exceeded, "message: a declared size exceeds every limit");
  } catch (const std::exception& e) {
    return malformed(std::string("message: not msgpack (") + e.what() + ")");
  }
  if (offset != frame.size()) return malformed("message: trailing bytes after the map");
  return handle;
}

// The entries of the message map, by key; each message takes exactly the keys it names.
class Fields {
 public:
  static Result<Fields> read(const Object& map) {
    if (map.type != msgpack::type::MAP) return wrong_type("message", "a map");
    Fields fields;
    for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
      const Object& key = map.via.map.ptr[i].key;
      if (key.type != msgpack::type::STR) return wrong_type("message", "string keys");
      std::string_view name(key.via.str.ptr, key.via.str.size);
      if (!fields.values_.emplace(name, &map.via.map.ptr[i].val).second) {
        return malformed("message: key \"" + shown(name) + "\" appears twice");
      }
    }
    return fields;
  }

  // Checks that the map holds these keys and no others, naming the first one missing or unknown.
  Result<void> exactly(std::string_view type, std::initializer_list<std::string_view> keys) const {
    for (std::string_view key : keys) {
      if (!values_.contains(key)) {
        return malformed(std::string(type) + ": missing \"" + std::string(key) + "\"");
      }
    }
    for (const auto& [name, value] : values_) {
      if (std::find(keys.begin(), keys.end(), name) == keys.end()) {
        return malformed(std::string(type) + ": unknown key \"" + shown(name) + "\"");
      }
    }
    return {};
  }

  const Object* find(std::string_view key) const {
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : it->second;
  }

  // A key exactly() has checked.
  const Object& at(std::string_view key) const {
    const Object* value = find(key);
    FERRY_ASSERT(value != nullptr);
    return *value;
  }

 private:
  std::map<std::string_view, const Object*> values_;  // views into the unpacked object
};

Result<std::uint64_t> read_uint(const Object& o, std::string_view what) {
  if (o.type != msgpack::type::POSITIVE_INTEGER) return wrong_type(what, "unsigned integer");
  return o.via.u64;
}

Result<std::uint64_t> read_batch(const Object& o) {
  auto batch = read_uint(o, "batch");
  if (!batch) return batch;
  if (*batch == 0) return malformed("batch: must be at least 1");
  return batch;
}

Result<std::string> read_text(const Object& o, std::string_view what, std::size_t bytes_max) {
  if (o.type != msgpack::type::STR) return wrong_type(what, "string");
  std::string_view text(o.via.str.ptr, o.via.str.size);
  if (text.size() > bytes_max) {
    return fail(Errc::limit_exceeded,
                std::string(what) + ": longer than " + std::to_string(bytes_max) + " bytes");
  }
  if (!valid_utf8(text)) return malformed(std::string(what) + ": invalid UTF-8");
  return std::string(text);
}

// A feed's channel follows the op format's channel rules: no op could name any other.
Result<std::string> read_feed_channel(const Object& o, std::string_view what) {
  auto channel = read_text(o, what, limits::channel_bytes_max);
  if (!channel) return channel;
  if (channel->empty()) return malformed(std::string(what) + ": empty");
  bool control = std::any_of(channel->begin(), channel->end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (control) return malformed(std::string(what) + ": control character");
  return channel;
}

template <std::size_t N>
Result<std::array<std::uint8_t, N>> read_fixed_bin(const Object& o, std::string_view what) {
  if (o.type != msgpack::type::BIN || o.via.bin.size != N) {
    return wrong_type(what, std::to_string(N) + "-byte binary");
  }
  std::array<std::uint8_t, N> out{};
  std::copy_n(reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr), N, out.begin());
  return out;
}

Result<std::span<const Object>> read_list(const Object& o, std::string_view what,
                                          std::size_t items_max, std::string_view items) {
  if (o.type != msgpack::type::ARRAY) return wrong_type(what, "array");
  if (o.via.array.size > items_max) return too_many(what, items_max, items);
  return std::span<const Object>(o.via.array.ptr, o.via.array.size);
}

Result<std::vector<std::string>> read_channels(const Object& o, const Limits& limits) {
  auto list = read_list(o, "channels", limits.channels_max, "channels");
  if (!list) return tl::unexpected(list.error());
  std::vector<std::string> channels;
  channels.reserve(list->size());
  for (std::size_t i = 0; i < list->size(); ++i) {
    auto channel =
        read_text((*list)[i], "channels[" + std::to_string(i) + "]", limits.text_bytes_max);
    if (!channel) return tl::unexpected(channel.error());
    channels.push_back(std::move(*channel));
  }
  return channels;
}

Result<void> read_entry(const Object& o, const std::string& what, VersionVector& vector) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != entry_fields) {
    return wrong_type(what, "[origin, channel, seq]");
  }
  const Object* fields = o.via.array.ptr;
  auto origin = read_fixed_bin<public_key_bytes>(fields[0], what + ".origin");
  if (!origin) return tl::unexpected(origin.error());
  auto channel = read_feed_channel(fields[1], what + ".channel");
  if (!channel) return tl::unexpected(channel.error());
  auto seq = read_uint(fields[2], what + ".seq");
  if (!seq) return tl::unexpected(seq.error());
  if (*seq == 0) return malformed(what + ".seq: must be at least 1");
  FeedId feed{*origin, std::move(*channel)};
  if (vector.seq(feed) != 0) return malformed(what + ": a feed appears twice");
  vector.raise(feed, *seq);
  return {};
}

Result<VersionVector> read_vector(const Object& o, const Limits& limits) {
  auto list = read_list(o, "vector", limits.vector_entries_max, "entries");
  if (!list) return tl::unexpected(list.error());
  VersionVector vector;
  for (std::size_t i = 0; i < list->size(); ++i) {
    auto entry = read_entry((*list)[i], "vector[" + std::to_string(i) + "]", vector);
    if (!entry) return tl::unexpected(entry.error());
  }
  return vector;
}

Result<SignedOp> read_op(const Object& o, const std::string& what) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != op_fields) {
    return wrong_type(what, "[envelope, signature]");
  }
  const Object& envelope = o.via.array.ptr[0];
  if (envelope.type != msgpack::type::BIN) return wrong_type(what + ".envelope", "binary");
  auto op = Op::decode(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(envelope.via.bin.ptr), envelope.via.bin.size));
  // Whatever Op::decode refuses, an op the origin could not have signed is malformed.
  if (!op) return malformed(what + ": " + op.error().detail);
  auto signature = read_fixed_bin<signature_bytes>(o.via.array.ptr[1], what + ".signature");
  if (!signature) return tl::unexpected(signature.error());
  return SignedOp{std::move(*op), *signature};
}

Result<Message> read_ops(const Fields& f, const Limits& limits) {
  if (auto keys = f.exactly("ops", {"type", "batch", "ops"}); !keys) {
    return tl::unexpected(keys.error());
  }
  OpsBatch message;
  auto batch = read_batch(f.at("batch"));
  if (!batch) return tl::unexpected(batch.error());
  message.batch = *batch;
  auto list = read_list(f.at("ops"), "ops", limits.batch_ops_max, "ops");
  if (!list) return tl::unexpected(list.error());
  if (list->empty()) return malformed("ops: must hold at least one op");
  message.ops.reserve(list->size());
  for (std::size_t i = 0; i < list->size(); ++i) {
    auto op = read_op((*list)[i], "ops[" + std::to_string(i) + "]");
    if (!op) return tl::unexpected(op.error());
    message.ops.push_back(std::move(*op));
  }
  return message;
}

Result<Greeting> read_greeting(const Fields& f, std::string_view type, const Limits& limits) {
  auto keys = f.exactly(type, {"type", "version", "name", "key", "role", "channels", "vector"});
  if (!keys) return tl::unexpected(keys.error());
  Greeting g;
  auto version = read_uint(f.at("version"), "version");
  if (!version) return tl::unexpected(version.error());
  g.version = *version;
  auto name = read_text(f.at("name"), "name", limits.text_bytes_max);
  if (!name) return tl::unexpected(name.error());
  g.name = std::move(*name);
  auto key = read_fixed_bin<public_key_bytes>(f.at("key"), "key");
  if (!key) return tl::unexpected(key.error());
  g.key = *key;
  auto role = read_text(f.at("role"), "role", limits.text_bytes_max);
  if (!role) return tl::unexpected(role.error());
  g.role = std::move(*role);
  auto channels = read_channels(f.at("channels"), limits);
  if (!channels) return tl::unexpected(channels.error());
  g.channels = std::move(*channels);
  auto vector = read_vector(f.at("vector"), limits);
  if (!vector) return tl::unexpected(vector.error());
  g.vector = std::move(*vector);
  return g;
}

Result<Message> read_ack(const Fields& f, const Limits& limits) {
  if (auto keys = f.exactly("ack", {"type", "batch", "vector"}); !keys) {
    return tl::unexpected(keys.error());
  }
  auto batch = read_batch(f.at("batch"));
  if (!batch) return tl::unexpected(batch.error());
  auto vector = read_vector(f.at("vector"), limits);
  if (!vector) return tl::unexpected(vector.error());
  return Ack{*batch, std::move(*vector)};
}

Result<Message> read_error(const Fields& f, const Limits& limits) {
  if (auto keys = f.exactly("error", {"type", "code", "message"}); !keys) {
    return tl::unexpected(keys.error());
  }
  auto code = read_text(f.at("code"), "code", limits.text_bytes_max);
  if (!code) return tl::unexpected(code.error());
  auto message = read_text(f.at("message"), "message", limits.text_bytes_max);
  if (!message) return tl::unexpected(message.error());
  return ErrorMessage{std::move(*code), std::move(*message)};
}

Result<Message> read_message(const Fields& f, std::string_view type, const Limits& limits) {
  if (type == "hello" || type == "welcome") {
    auto greeting = read_greeting(f, type, limits);
    if (!greeting) return tl::unexpected(greeting.error());
    if (type == "hello") return Hello{std::move(*greeting)};
    return Welcome{std::move(*greeting)};
  }
  if (type == "ops") return read_ops(f, limits);
  if (type == "ack") return read_ack(f, limits);
  if (type == "heartbeat") {
    if (auto keys = f.exactly("heartbeat", {"type"}); !keys) return tl::unexpected(keys.error());
    return Heartbeat{};
  }
  if (type == "error") return read_error(f, limits);
  return malformed("type: unknown message type \"" + shown(type) + "\"");
}

// ---- Encoding ----

void pack_text(Packer& pk, std::string_view text) {
  FERRY_ASSERT(text.size() <= std::numeric_limits<std::uint32_t>::max());
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

void pack_bin(Packer& pk, std::span<const std::uint8_t> bytes) {
  FERRY_ASSERT(bytes.size() <= std::numeric_limits<std::uint32_t>::max());
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::uint32_t>(bytes.size()));
}

void pack_count(Packer& pk, std::size_t count) {
  FERRY_ASSERT(count <= std::numeric_limits<std::uint32_t>::max());
  pk.pack_array(static_cast<std::uint32_t>(count));
}

void pack_vector(Packer& pk, const VersionVector& vector) {
  pack_count(pk, vector.entries().size());
  for (const auto& [feed, seq] : vector.entries()) {
    FERRY_ASSERT(seq > 0);
    pk.pack_array(entry_fields);
    pack_bin(pk, feed.origin);
    pack_text(pk, feed.channel);
    pk.pack_uint64(seq);
  }
}

void pack_greeting(Packer& pk, std::string_view type, const Greeting& g) {
  pk.pack_map(7);
  pack_text(pk, "type");
  pack_text(pk, type);
  pack_text(pk, "version");
  pk.pack_uint64(g.version);
  pack_text(pk, "name");
  pack_text(pk, g.name);
  pack_text(pk, "key");
  pack_bin(pk, g.key);
  pack_text(pk, "role");
  pack_text(pk, g.role);
  pack_text(pk, "channels");
  pack_count(pk, g.channels.size());
  for (const std::string& channel : g.channels) pack_text(pk, channel);
  pack_text(pk, "vector");
  pack_vector(pk, g.vector);
}

void pack_message(Packer& pk, const OpsBatch& m) {
  FERRY_ASSERT(m.batch > 0);
  FERRY_ASSERT(!m.ops.empty());
  pk.pack_map(3);
  pack_text(pk, "type");
  pack_text(pk, "ops");
  pack_text(pk, "batch");
  pk.pack_uint64(m.batch);
  pack_text(pk, "ops");
  pack_count(pk, m.ops.size());
  for (const SignedOp& op : m.ops) {
    pk.pack_array(op_fields);
    pack_bin(pk, op.op.bytes());
    pack_bin(pk, op.signature);
  }
}

void pack_message(Packer& pk, const Ack& m) {
  FERRY_ASSERT(m.batch > 0);
  pk.pack_map(3);
  pack_text(pk, "type");
  pack_text(pk, "ack");
  pack_text(pk, "batch");
  pk.pack_uint64(m.batch);
  pack_text(pk, "vector");
  pack_vector(pk, m.vector);
}

void pack_message(Packer& pk, const ErrorMessage& m) {
  pk.pack_map(3);
  pack_text(pk, "type");
  pack_text(pk, "error");
  pack_text(pk, "code");
  pack_text(pk, m.code);
  pack_text(pk, "message");
  pack_text(pk, m.message);
}

void pack_message(Packer& pk, const Hello& m) { pack_greeting(pk, "hello", m); }

void pack_message(Packer& pk, const Welcome& m) { pack_greeting(pk, "welcome", m); }

void pack_message(Packer& pk, const Heartbeat&) {
  pk.pack_map(1);
  pack_text(pk, "type");
  pack_text(pk, "heartbeat");
}

}  // namespace

std::string_view error_code_name(ErrorCode code) {
  auto index = static_cast<std::size_t>(code);
  FERRY_ASSERT(index < error_code_names.size());
  return error_code_names[index];
}

std::optional<ErrorCode> error_code_from_name(std::string_view name) {
  for (std::size_t i = 0; i < error_code_names.size(); ++i) {
    if (error_code_names[i] == name) return static_cast<ErrorCode>(i);
  }
  return std::nullopt;
}

ErrorMessage error_message(ErrorCode code, std::string message) {
  return ErrorMessage{std::string(error_code_name(code)), std::move(message)};
}

std::string_view type_name(const Message& message) {
  static constexpr std::array<std::string_view, std::variant_size_v<Message>> names = {
      "hello", "welcome", "ops", "ack", "heartbeat", "error"};
  return names[message.index()];
}

Result<Message> decode(std::span<const std::uint8_t> frame, const Limits& limits) {
  if (frame.size() > limits.message_bytes_max) {
    return fail(Errc::limit_exceeded, "message: " + std::to_string(frame.size()) +
                                          " bytes; the limit is " +
                                          std::to_string(limits.message_bytes_max));
  }
  auto handle = unpack_frame(frame, limits);
  if (!handle) return tl::unexpected(handle.error());
  auto fields = Fields::read(handle->get());
  if (!fields) return tl::unexpected(fields.error());
  const Object* type = fields->find("type");
  if (type == nullptr) return malformed("message: missing \"type\"");
  if (type->type != msgpack::type::STR) return wrong_type("type", "string");
  return read_message(*fields, std::string_view(type->via.str.ptr, type->via.str.size), limits);
}

Bytes encode(const Message& message) {
  msgpack::sbuffer buffer;
  Packer pk(buffer);
  std::visit([&](const auto& m) { pack_message(pk, m); }, message);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return Bytes(data, data + buffer.size());
}

}  // namespace ferry::sync
