// Bounded conversion of msgpack bytes to nlohmann::json, for IPC replies and op bodies.
//
// nlohmann's own from_msgpack recurses once per nesting level without a bound, so bytes from
// outside are first unpacked by msgpack-c under explicit limits (depth, container and string
// sizes) and only then converted. Nothing here throws: every rejection is an Error with
// Errc::malformed, or Errc::limit_exceeded when a bound is hit. msgpack bin values become JSON
// binary values; extension types and map keys other than strings are refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>

#include "protocol/error.h"

namespace ferry::client {

struct MsgpackLimits {
  std::size_t depth_max = 64;                 // nesting of maps and arrays
  std::size_t container_items_max = 1 << 20;  // entries of one map or array
  std::size_t string_bytes_max = 64 << 20;    // one str or bin
};

// Decodes exactly one msgpack value that spans all of `bytes` (trailing bytes are refused).
[[nodiscard]] Result<nlohmann::json> json_from_msgpack(std::span<const std::uint8_t> bytes,
                                                       const MsgpackLimits& limits = {});

}  // namespace ferry::client
