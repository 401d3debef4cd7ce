#include "protocol/receipt.h"

#include <catch2/catch.hpp>
#include <msgpack.hpp>
#include <string>
#include <vector>

#include "protocol/hex.h"
#include "protocol/op.h"
#include "tests/support/test_support.h"

namespace {

using Bytes = std::vector<std::uint8_t>;
using ferry::test::packed;
using ferry::test::Packer;

ferry::PublicKey key_of(std::uint8_t fill) {
  ferry::PublicKey key{};
  key.fill(fill);
  return key;
}

}  // namespace

TEST_CASE("a receipt body round-trips and is a valid op body", "[receipt]") {
  ferry::ReceiptFeeds feeds{{key_of(1), 7}, {key_of(2), 1}};
  Bytes body = ferry::encode_receipt_body(feeds);
  REQUIRE(ferry::validate_body(body));
  auto parsed = ferry::parse_receipt_body(body);
  REQUIRE(parsed);
  CHECK(*parsed == feeds);
}

TEST_CASE("a receipt body is parsed strictly", "[receipt]") {
  std::string hex = ferry::to_hex(key_of(3));
  auto refused = [](const Bytes& body) {
    auto parsed = ferry::parse_receipt_body(body);
    REQUIRE_FALSE(parsed);
    CHECK(parsed.error().code == ferry::Errc::malformed);
  };
  refused(packed([](Packer& pk) { pk.pack_array(0); }));
  refused(packed([](Packer& pk) { pk.pack_map(0); }));
  refused(packed([&](Packer& pk) {
    pk.pack_map(2);
    pk.pack(std::string("feeds"));
    pk.pack_map(1);
    pk.pack(hex);
    pk.pack(1);
    pk.pack(std::string("extra"));
    pk.pack(1);
  }));
  refused(packed([](Packer& pk) {
    pk.pack_map(1);
    pk.pack(std::string("feeds"));
    pk.pack_map(0);
  }));
  refused(packed([&](Packer& pk) {  // seq 0
    pk.pack_map(1);
    pk.pack(std::string("feeds"));
    pk.pack_map(1);
    pk.pack(hex);
    pk.pack(0);
  }));
  refused(packed([&](Packer& pk) {  // negative seq
    pk.pack_map(1);
    pk.pack(std::string("feeds"));
    pk.pack_map(1);
    pk.pack(hex);
    pk.pack(-1);
  }));
  refused(packed([](Packer& pk) {  // not hex
    pk.pack_map(1);
    pk.pack(std::string("feeds"));
    pk.pack_map(1);
    pk.pack(std::string("zz"));
    pk.pack(1);
  }));
  refused(packed([&](Packer& pk) {  // an origin twice
    pk.pack_map(1);
    pk.pack(std::string("feeds"));
    pk.pack_map(2);
    pk.pack(hex);
    pk.pack(1);
    pk.pack(hex);
    pk.pack(2);
  }));
  Bytes truncated = ferry::encode_receipt_body({{key_of(4), 9}});
  truncated.pop_back();
  refused(truncated);
  Bytes trailing = ferry::encode_receipt_body({{key_of(4), 9}});
  trailing.push_back(0xc0);
  refused(trailing);
}
