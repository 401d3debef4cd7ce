#include "protocol/hex.h"

namespace ferry {
namespace {

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void append_hex(std::string& out, std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  for (std::uint8_t b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 0x0f]);
  }
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  append_hex(out, bytes);
  return out;
}

Result<void> hex_decode_into(std::string_view text, std::span<std::uint8_t> out) {
  if (text.size() != out.size() * 2) {
    return fail(Errc::malformed, "expected " + std::to_string(out.size() * 2) +
                                     " hex digits, got " + std::to_string(text.size()));
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(text[2 * i]);
    int lo = nibble(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return fail(Errc::malformed, "not a hex digit in input");
    out[i] = static_cast<std::uint8_t>((hi << 4) | lo);
  }
  return {};
}

}  // namespace ferry
