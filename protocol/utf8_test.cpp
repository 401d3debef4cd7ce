#include "protocol/utf8.h"

#include <catch2/catch.hpp>
#include <string>

namespace {

using ferry::valid_utf8;

}  // namespace

TEST_CASE("valid_utf8 accepts ASCII, the empty string and multi-byte text") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("station/huaniao"));
  CHECK(valid_utf8(std::string("a\0b", 3)));  // NUL is a valid code point
  CHECK(valid_utf8("花鸟"));
  CHECK(valid_utf8("嵊山"));
  CHECK(valid_utf8("station/花鸟岛"));
  CHECK(valid_utf8("Größe"));  // two-byte forms
  CHECK(valid_utf8("😀🚢"));     // four-byte forms
}

TEST_CASE("valid_utf8 accepts the edges of each encoding length") {
  CHECK(valid_utf8("\x7f"));              // U+007F, last one-byte form
  CHECK(valid_utf8("\xc2\x80"));          // U+0080, first two-byte form
  CHECK(valid_utf8("\xdf\xbf"));          // U+07FF
  CHECK(valid_utf8("\xe0\xa0\x80"));      // U+0800, first three-byte form
  CHECK(valid_utf8("\xed\x9f\xbf"));      // U+D7FF, just below the surrogates
  CHECK(valid_utf8("\xee\x80\x80"));      // U+E000, just above the surrogates
  CHECK(valid_utf8("\xef\xbf\xbf"));      // U+FFFF
  CHECK(valid_utf8("\xf0\x90\x80\x80"));  // U+10000, first four-byte form
  CHECK(valid_utf8("\xf4\x8f\xbf\xbf"));  // U+10FFFF, the last code point
}

TEST_CASE("valid_utf8 rejects overlong encodings") {
  CHECK_FALSE(valid_utf8(std::string("\xc0\x80", 2)));  // U+0000 in two bytes
  CHECK_FALSE(valid_utf8("\xc1\xbf"));                  // U+007F in two bytes
  CHECK_FALSE(valid_utf8("\xe0\x80\x80"));              // U+0000 in three bytes
  CHECK_FALSE(valid_utf8("\xe0\x9f\xbf"));              // U+07FF in three bytes
  CHECK_FALSE(valid_utf8("\xf0\x80\x80\x80"));          // U+0000 in four bytes
  CHECK_FALSE(valid_utf8("\xf0\x8f\xbf\xbf"));          // U+FFFF in four bytes
  CHECK_FALSE(valid_utf8("a\xc0\xafz"));                // overlong '/' inside text
}

TEST_CASE("valid_utf8 rejects UTF-16 surrogates") {
  CHECK_FALSE(valid_utf8("\xed\xa0\x80"));              // U+D800
  CHECK_FALSE(valid_utf8("\xed\xaf\xbf"));              // U+DBFF
  CHECK_FALSE(valid_utf8("\xed\xb0\x80"));              // U+DC00
  CHECK_FALSE(valid_utf8("\xed\xbf\xbf"));              // U+DFFF
  CHECK_FALSE(valid_utf8("\xed\xa0\xbd\xed\xb8\x80"));  // a CESU-8 surrogate pair
}

TEST_CASE("valid_utf8 rejects code points above U+10FFFF and invalid lead bytes") {
  CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80"));  // U+110000
  CHECK_FALSE(valid_utf8("\xf5\x80\x80\x80"));
  CHECK_FALSE(valid_utf8("\xf7\xbf\xbf\xbf"));
  CHECK_FALSE(valid_utf8("\xf8\x88\x80\x80\x80"));  // five-byte form
  CHECK_FALSE(valid_utf8("\xfc\x84\x80\x80\x80\x80"));
  CHECK_FALSE(valid_utf8("\xfe"));
  CHECK_FALSE(valid_utf8("\xff"));
}

TEST_CASE("valid_utf8 rejects truncated sequences") {
  const std::string full = "嵊";  // three bytes
  REQUIRE(full.size() == 3);
  for (std::size_t n = 1; n < full.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_FALSE(valid_utf8(full.substr(0, n)));
    CHECK_FALSE(valid_utf8(full.substr(0, n) + "a"));  // cut short, then ASCII
  }
  const std::string four = "\xf0\x9f\x98\x80";
  for (std::size_t n = 1; n < four.size(); ++n) {
    INFO("prefix of " << n << " bytes of a four-byte form");
    CHECK_FALSE(valid_utf8(four.substr(0, n)));
    CHECK_FALSE(valid_utf8("ok" + four.substr(0, n)));
  }
  CHECK_FALSE(valid_utf8("\xc2"));
  CHECK_FALSE(valid_utf8("花\xe9\xb8"));  // the second character cut short
}

TEST_CASE("valid_utf8 rejects stray continuation bytes") {
  CHECK_FALSE(valid_utf8("\x80"));
  CHECK_FALSE(valid_utf8("\xbf"));
  CHECK_FALSE(valid_utf8("a\x80"));
  CHECK_FALSE(valid_utf8("花\x80"));  // one continuation too many
  CHECK_FALSE(valid_utf8("\x80\x80\x80"));
  CHECK_FALSE(valid_utf8("\xe8\x8a\xc2\xb1"));  // a lead byte where a continuation must be
}

TEST_CASE("valid_utf8 finds a bad byte and accepts a good form at every offset of ASCII text") {
  // The ASCII text is checked eight bytes at a time: every offset lands differently in a word.
  const std::string ascii(40, 'a');
  for (std::size_t at = 0; at <= ascii.size(); ++at) {
    INFO("at offset " << at);
    CHECK(valid_utf8(ascii.substr(0, at) + "嵊" + ascii.substr(at)));
    CHECK(valid_utf8(ascii.substr(0, at) + "\xc2\x80" + ascii.substr(at)));
    CHECK_FALSE(valid_utf8(ascii.substr(0, at) + "\xff" + ascii.substr(at)));
    CHECK_FALSE(valid_utf8(ascii.substr(0, at) + "\xed\xa0\x80" + ascii.substr(at)));
    CHECK_FALSE(valid_utf8(ascii.substr(0, at) + "\xe5\xb5" + ascii.substr(at)));  // cut short
  }
  CHECK(valid_utf8(ascii));
  CHECK_FALSE(valid_utf8(ascii + "\xe5\xb5"));  // cut short at the very end
}
