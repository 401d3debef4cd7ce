#include "ctl/msgpack_json.h"

#include <catch2/catch.hpp>
#include <msgpack.hpp>

namespace ferry::client {
namespace {

using nlohmann::json;

std::vector<std::uint8_t> bytes_of(const msgpack::sbuffer& buffer) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

TEST_CASE("msgpack values become the matching JSON values") {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(7);
  pk.pack(std::string("nil"));
  pk.pack_nil();
  pk.pack(std::string("yes"));
  pk.pack(true);
  pk.pack(std::string("big"));
  pk.pack(std::uint64_t{18446744073709551615ULL});
  pk.pack(std::string("neg"));
  pk.pack(std::int64_t{-5});
  pk.pack(std::string("pi"));
  pk.pack(3.5);
  pk.pack(std::string("text"));
  pk.pack(std::string("陈晓玲"));
  pk.pack(std::string("raw"));
  pk.pack_bin(2);
  pk.pack_bin_body("\x01\xff", 2);
  auto out = json_from_msgpack(bytes_of(buffer));
  REQUIRE(out.has_value());
  CHECK((*out)["nil"].is_null());
  CHECK((*out)["yes"] == true);
  CHECK((*out)["big"].get<std::uint64_t>() == 18446744073709551615ULL);
  CHECK((*out)["neg"].get<std::int64_t>() == -5);
  CHECK((*out)["pi"] == 3.5);
  CHECK((*out)["text"] == "陈晓玲");
  REQUIRE((*out)["raw"].is_binary());
  const std::vector<std::uint8_t>& raw = (*out)["raw"].get_binary();
  CHECK(raw == std::vector<std::uint8_t>{0x01, 0xff});
}

TEST_CASE("msgpack that is truncated, trailed, foreign or too deep is refused") {
  using Bytes = std::vector<std::uint8_t>;
  CHECK(json_from_msgpack(Bytes{}).error().code == Errc::malformed);
  CHECK(json_from_msgpack(Bytes{0x82, 0xa1, 'a'}).error().code == Errc::malformed);
  CHECK(json_from_msgpack(Bytes{0x80, 0x00}).error().code == Errc::malformed);  // trailing
  CHECK(json_from_msgpack(Bytes{0xc1}).error().code == Errc::malformed);
  CHECK(json_from_msgpack(Bytes{0xd4, 0x01, 0x00}).error().code == Errc::malformed);  // ext
  CHECK(json_from_msgpack(Bytes{0x81, 0x01, 0x02}).error().code == Errc::malformed);  // int key
  CHECK(json_from_msgpack(Bytes{0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02}).error().code ==
        Errc::malformed);  // a key twice
  MsgpackLimits limits;
  limits.depth_max = 3;
  CHECK(json_from_msgpack(Bytes{0x91, 0x91, 0x91, 0x01}, limits).has_value());
  CHECK(json_from_msgpack(Bytes{0x91, 0x91, 0x91, 0x91, 0x01}, limits).error().code ==
        Errc::limit_exceeded);
  Bytes deep(1'000'000, 0x91);  // a million nested arrays: refused, never recursed into
  deep.push_back(0x01);
  CHECK(json_from_msgpack(deep).error().code == Errc::limit_exceeded);
  limits = MsgpackLimits{};
  limits.string_bytes_max = 2;
  CHECK(json_from_msgpack(Bytes{0xa3, 'a', 'b', 'c'}, limits).error().code == Errc::limit_exceeded);
}

}  // namespace
}  // namespace ferry::client
