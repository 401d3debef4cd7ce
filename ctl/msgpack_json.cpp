#include "ctl/msgpack_json.h"

#include <msgpack.hpp>
#include <string>

namespace ferry::client {
namespace {

using nlohmann::json;

// msgpack-c has already bounded the depth, so this recursion is bounded too.
Result<json> convert(const msgpack::object& o);

Result<json> convert_map(const msgpack::object& o) {
  json out = json::object();
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const msgpack::object_kv& kv = o.via.map.ptr[i];
    if (kv.key.type != msgpack::type::STR)
      return fail(Errc::malformed, "a map key is not a string");
    auto value = convert(kv.val);
    if (!value) return value;
    std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
    if (out.contains(key)) return fail(Errc::malformed, "map key \"" + key + "\" appears twice");
    out.emplace(std::move(key), std::move(*value));
  }
  return out;
}

Result<json> convert_array(const msgpack::object& o) {
  json out = json::array();
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    auto value = convert(o.via.array.ptr[i]);
    if (!value) return value;
    out.push_back(std::move(*value));
  }
  return out;
}

Result<json> convert(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return json(nullptr);
    case msgpack::type::BOOLEAN:
      return json(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      return json(o.via.u64);
    case msgpack::type::NEGATIVE_INTEGER:
      return json(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return json(o.via.f64);
    case msgpack::type::STR:
      return json(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: {
      const auto* data = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      return json::binary(std::vector<std::uint8_t>(data, data + o.via.bin.size));
    }
    case msgpack::type::ARRAY:
      return convert_array(o);
    case msgpack::type::MAP:
      return convert_map(o);
    default:
      return fail(Errc::malformed, "msgpack extension types are not allowed");
  }
}

}  // namespace

Result<json> json_from_msgpack(std::span<const std::uint8_t> bytes, const MsgpackLimits& limits) {
  if (bytes.empty()) return fail(Errc::malformed, "no msgpack bytes");
  const msgpack::unpack_limit bounds(limits.container_items_max, limits.container_items_max,
                                     limits.string_bytes_max, limits.string_bytes_max,
                                     limits.string_bytes_max, limits.depth_max);
  try {
    std::size_t offset = 0;
    msgpack::object_handle handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()),
                                                    bytes.size(), offset, nullptr, nullptr, bounds);
    if (offset != bytes.size()) {
      return fail(Errc::malformed, std::to_string(bytes.size() - offset) +
                                       " trailing bytes after the msgpack value");
    }
    return convert(handle.get());
  } catch (const msgpack::insufficient_bytes&) {
    return fail(Errc::malformed, "truncated msgpack");
  } catch (const msgpack::size_overflow& e) {
    return fail(Errc::limit_exceeded, std::string("msgpack exceeds a limit: ") + e.what());
  } catch (const std::exception& e) {
    return fail(Errc::malformed, std::string("not valid msgpack: ") + e.what());
  }
}

}  // namespace ferry::client
