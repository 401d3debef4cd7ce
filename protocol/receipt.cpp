#include "protocol/receipt.h"

#include <msgpack.hpp>

#include "protocol/hex.h"
#include "protocol/unpack.h"

namespace ferry {

std::vector<std::uint8_t> encode_receipt_body(const ReceiptFeeds& feeds) {
  FERRY_ASSERT(!feeds.empty() && feeds.size() <= receipt_feeds_max);
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pk.pack(std::string_view("feeds"));
  pk.pack_map(static_cast<std::uint32_t>(feeds.size()));
  for (const auto& [origin, seq] : feeds) {
    pk.pack(to_hex(origin));
    pk.pack(seq);
  }
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

Result<ReceiptFeeds> parse_receipt_body(std::span<const std::uint8_t> body) {
  // The body already passed the op's own checks; the limits only keep a hostile one small.
  static const msgpack::unpack_limit limit(2, receipt_feeds_max, 64, 0, 0, 3);
  auto handle = unpack_one(body, limit);
  if (!handle) {
    return fail(Errc::malformed, "receipt: not one msgpack map within a receipt's bounds");
  }
  const msgpack::object& root = handle->get();
  if (root.type != msgpack::type::MAP || root.via.map.size != 1) {
    return fail(Errc::malformed, "receipt: body must be a map with the one field \"feeds\"");
  }
  const msgpack::object_kv& field = root.via.map.ptr[0];
  if (field.key.type != msgpack::type::STR || field.key.as<std::string_view>() != "feeds" ||
      field.val.type != msgpack::type::MAP) {
    return fail(Errc::malformed, "receipt: \"feeds\" must be a map of origin -> seq");
  }
  const auto& map = field.val.via.map;
  if (map.size == 0 || map.size > receipt_feeds_max) {
    return fail(Errc::malformed,
                "receipt: 1 to " + std::to_string(receipt_feeds_max) + " feeds in one receipt");
  }
  ReceiptFeeds feeds;
  for (std::uint32_t i = 0; i < map.size; ++i) {
    const msgpack::object_kv& kv = map.ptr[i];
    if (kv.key.type != msgpack::type::STR || kv.val.type != msgpack::type::POSITIVE_INTEGER ||
        kv.val.via.u64 == 0) {
      return fail(Errc::malformed, "receipt: each feed is \"<origin hex>\": seq >= 1");
    }
    auto origin = from_hex<public_key_bytes>(kv.key.as<std::string_view>());
    if (!origin) return fail(Errc::malformed, "receipt: origin: " + origin.error().detail);
    if (!feeds.emplace(*origin, kv.val.via.u64).second) {
      return fail(Errc::malformed, "receipt: an origin is named twice");
    }
  }
  return feeds;
}

}  // namespace ferry
