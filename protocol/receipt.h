// Receipts: the authority's signed statement that it holds a station's ops.
//
// The authority (the city hub) writes a receipt as an ordinary signed op of kind ferry.receipt in
// the channel of the ops it covers, so receipts travel down through relays like any decision and
// can be checked offline. Its body names, for each feed of that channel, the highest contiguous
// seq the authority holds: {"feeds": {"<origin hex>": seq, ...}}. A receipt covers an op when the
// op's feed is named with a seq at least the op's. Pure code; no I/O.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string_view>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/error.h"

namespace ferry {

inline constexpr std::string_view receipt_kind = "ferry.receipt";
inline constexpr std::string_view receipt_key = "ferry.receipt";
// Feeds named by one receipt; a channel with more writers gets several receipts.
inline constexpr std::size_t receipt_feeds_max = 256;

using ReceiptFeeds = std::map<PublicKey, std::uint64_t>;  // origin -> highest seq held

// The body of a receipt op (a msgpack map). feeds must not be empty nor exceed receipt_feeds_max.
std::vector<std::uint8_t> encode_receipt_body(const ReceiptFeeds& feeds);

// Strict: Errc::malformed for anything but the shape above (seq >= 1, hex keys, no other field).
[[nodiscard]] Result<ReceiptFeeds> parse_receipt_body(std::span<const std::uint8_t> body);

}  // namespace ferry
