// Every size limit of the op format, in one place.
//
// The decoder enforces these on every op, local or remote; a change here is a change of the wire
// format's accepted range, so it is versioned with the envelope.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ferry::limits {

inline constexpr std::size_t op_bytes_max = 64 * 1024;  // one encoded envelope
inline constexpr std::size_t channel_bytes_max = 128;
inline constexpr std::size_t kind_bytes_max = 64;
inline constexpr std::size_t key_bytes_max = 256;
inline constexpr std::size_t author_bytes_max = 128;
inline constexpr std::size_t deps_max = 32;
inline constexpr std::size_t body_depth_max = 16;  // nesting of maps and arrays in a body
inline constexpr std::size_t body_container_items_max = 4096;  // entries of one map or array

static_assert(channel_bytes_max + kind_bytes_max + key_bytes_max + author_bytes_max +
                      deps_max * 34 <
                  op_bytes_max,
              "the fixed fields of an op must fit well within one op");

}  // namespace ferry::limits
