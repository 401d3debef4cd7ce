#include "bench/ipc/ipc_reply.h"

#include <exception>

namespace ferry::bench {

const msgpack::object* find_key(const msgpack::object& map, std::string_view key) {
  if (map.type != msgpack::type::MAP) return nullptr;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i) {
    const msgpack::object_kv& kv = map.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR) continue;
    if (std::string_view(kv.key.via.str.ptr, kv.key.via.str.size) == key) return &kv.val;
  }
  return nullptr;
}

std::optional<std::uint64_t> uint_at(const msgpack::object& map, std::string_view key) {
  const msgpack::object* value = find_key(map, key);
  if (value == nullptr || value->type != msgpack::type::POSITIVE_INTEGER) return std::nullopt;
  return value->via.u64;
}

Result<Reply> decode_reply(std::span<const std::uint8_t> frame) {
  Reply reply;
  try {
    reply.root = msgpack::unpack(reinterpret_cast<const char*>(frame.data()), frame.size());
  } catch (const std::exception& e) {
    return fail(Errc::malformed, std::string("a reply that is not msgpack: ") + e.what());
  }
  const msgpack::object* ok = find_key(reply.root.get(), "ok");
  if (ok == nullptr || ok->type != msgpack::type::BOOLEAN) {
    return fail(Errc::malformed, "a reply without a boolean \"ok\"");
  }
  reply.ok = ok->via.boolean;
  if (reply.ok) return reply;
  const msgpack::object* error = find_key(reply.root.get(), "error");
  const msgpack::object* code = error == nullptr ? nullptr : find_key(*error, "code");
  if (code == nullptr || code->type != msgpack::type::STR) {
    return fail(Errc::malformed, "a refusal without an error code");
  }
  reply.error_code.assign(code->via.str.ptr, code->via.str.size);
  return reply;
}

std::optional<std::uint64_t> reply_uint(const Reply& reply, std::string_view key) {
  return uint_at(reply.root.get(), key);
}

std::optional<std::uint64_t> reply_uint(const Reply& reply, std::string_view outer,
                                        std::string_view key) {
  const msgpack::object* inner = find_key(reply.root.get(), outer);
  return inner == nullptr ? std::nullopt : uint_at(*inner, key);
}

}  // namespace ferry::bench
