#include "protocol/hex.h"

#include <array>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace {

using ferry::Errc;
using ferry::from_hex;
using ferry::to_hex;

}  // namespace

TEST_CASE("to_hex writes two lower-case digits per byte") {
  CHECK(to_hex(std::vector<std::uint8_t>{}).empty());
  std::array<std::uint8_t, 5> bytes{0x00, 0x0f, 0xa5, 0xf0, 0xff};
  CHECK(to_hex(bytes) == "000fa5f0ff");
  std::string out = "id=";
  ferry::append_hex(out, bytes);
  CHECK(out == "id=000fa5f0ff");
}

TEST_CASE("hex round trips every byte value") {
  std::array<std::uint8_t, 256> bytes{};
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i);
  std::string text = to_hex(bytes);
  REQUIRE(text.size() == 512);
  auto decoded = from_hex<256>(text);
  REQUIRE(decoded);
  CHECK(*decoded == bytes);
}

TEST_CASE("from_hex accepts upper-case and mixed-case digits") {
  auto upper = from_hex<4>("DEADBEEF");
  REQUIRE(upper);
  CHECK(*upper == std::array<std::uint8_t, 4>{0xde, 0xad, 0xbe, 0xef});
  auto mixed = from_hex<4>("dEaDbEeF");
  REQUIRE(mixed);
  CHECK(*mixed == *upper);
  auto zero = from_hex<0>("");
  CHECK(zero);
}

TEST_CASE("from_hex rejects text of the wrong length as malformed") {
  for (const char* text : {"", "a", "abcdef", "abcdef0", "abcdef012", "abcdef0123"}) {
    INFO("text: \"" << text << "\"");
    auto decoded = from_hex<4>(text);
    REQUIRE_FALSE(decoded);
    CHECK(decoded.error().code == Errc::malformed);
  }
  std::array<std::uint8_t, 2> out{};
  auto into = ferry::hex_decode_into("abc", out);
  REQUIRE_FALSE(into);
  CHECK(into.error().code == Errc::malformed);
}

TEST_CASE("from_hex rejects any non-hex character as malformed") {
  const std::string valid = "0123456789abcdef";
  // Each position in turn, and characters next to the digit ranges and outside ASCII.
  for (char bad : {'g', 'G', 'x', ' ', '/', ':', '@', '`', '-', '+', '\0', '\xff', '\x80'}) {
    for (std::size_t i = 0; i < valid.size(); ++i) {
      std::string text = valid;
      text[i] = bad;
      INFO("bad character code " << static_cast<int>(static_cast<unsigned char>(bad))
                                 << " at position " << i);
      auto decoded = from_hex<8>(text);
      REQUIRE_FALSE(decoded);
      CHECK(decoded.error().code == Errc::malformed);
    }
  }
  CHECK_FALSE(from_hex<1>("0x"));
  CHECK_FALSE(from_hex<2>("0x12"));
}
