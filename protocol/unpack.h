// Unpacking one msgpack object from bytes that must hold exactly it (op bodies, stored state).
#pragma once

#include <cstdint>
#include <msgpack.hpp>
#include <optional>
#include <span>

#include "protocol/error.h"
#include "protocol/limits.h"

namespace ferry {

// The one object the bytes hold, within `limit`; nullopt for anything else (bad msgpack, an
// exceeded limit, trailing bytes). msgpack-c throws on bad input and the exception stops here,
// but only its unpack errors are caught: were std::bad_alloc read as "no value", one replica
// short of memory would read an op differently from the others.
inline std::optional<msgpack::object_handle> unpack_one(std::span<const std::uint8_t> bytes,
                                                        const msgpack::unpack_limit& limit) {
  try {
    std::size_t offset = 0;
    msgpack::object_handle h = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()),
                                               bytes.size(), offset, nullptr, nullptr, limit);
    if (offset != bytes.size()) return std::nullopt;
    return h;
  } catch (const msgpack::unpack_error&) {
    return std::nullopt;
  }
}

// The bounds of an op body (as op.cpp checks them; decoded ops already passed them).
inline const msgpack::unpack_limit& op_body_limit() {
  static const msgpack::unpack_limit limit(
      limits::body_container_items_max, limits::body_container_items_max, limits::op_bytes_max,
      limits::op_bytes_max, limits::op_bytes_max, limits::body_depth_max + 1);
  return limit;
}

// validate_body() (protocol/op.h) that also hands back the map it unpacked, for a caller that reads
// the body further: one unpack instead of two.
[[nodiscard]] Result<msgpack::object_handle> unpack_body(std::span<const std::uint8_t> body);

}  // namespace ferry
