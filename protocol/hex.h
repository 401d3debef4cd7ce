// Lower-case hexadecimal text for ids, public keys and signatures.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "protocol/error.h"

namespace ferry {

std::string to_hex(std::span<const std::uint8_t> bytes);

// Appends the hex text of bytes to out (lets secret text go straight into a wiped buffer).
void append_hex(std::string& out, std::span<const std::uint8_t> bytes);

// Decodes exactly N bytes from 2N hex digits (either case); anything else is malformed.
template <std::size_t N>
Result<std::array<std::uint8_t, N>> from_hex(std::string_view text);

Result<void> hex_decode_into(std::string_view text, std::span<std::uint8_t> out);

template <std::size_t N>
Result<std::array<std::uint8_t, N>> from_hex(std::string_view text) {
  std::array<std::uint8_t, N> out{};
  auto decoded = hex_decode_into(text, out);
  if (!decoded) return tl::unexpected(decoded.error());
  return out;
}

}  // namespace ferry
