// Decoding the replies of ferryd's local IPC (docs/ipc.md) for the benchmark's clients.
//
// A reply frame is one msgpack map with "ok"; a refusal carries "error": {"code", "message"}.
// msgpack-c throws, so decode_reply catches and returns Errc::malformed. Pure code, no sockets;
// any thread may call it.
#pragma once

#include <cstdint>
#include <msgpack.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "protocol/error.h"

namespace ferry::bench {

struct Reply {
  bool ok = false;
  std::string error_code;  // the refusal's "code" when !ok
  msgpack::object_handle root;
};

// Errc::malformed when the frame is not one map with a boolean "ok" (and, when false, an
// "error" map with a string "code").
[[nodiscard]] Result<Reply> decode_reply(std::span<const std::uint8_t> frame);

// The value at `key` of a map, or nullptr when absent or `map` is not a map.
const msgpack::object* find_key(const msgpack::object& map, std::string_view key);

// The unsigned integer at `key` of a map, or nullopt.
std::optional<std::uint64_t> uint_at(const msgpack::object& map, std::string_view key);

// The unsigned integer at `key` of the reply map, or of the map at `outer` inside it.
std::optional<std::uint64_t> reply_uint(const Reply& reply, std::string_view key);
std::optional<std::uint64_t> reply_uint(const Reply& reply, std::string_view outer,
                                        std::string_view key);

}  // namespace ferry::bench
