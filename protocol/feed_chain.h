// The feed chain rule: an op extends a feed only if seq = head seq + 1 and prev = head id.
#pragma once

#include <cstdint>

#include "protocol/op.h"

namespace ferry {

// The last op of a feed as a node holds it; seq 0 (and a zero id) for a feed not yet held.
struct FeedHead {
  std::uint64_t seq = 0;
  OpId id{};
};

// Errc::fork when the seq is already taken (the caller has ruled out the very same op),
// Errc::out_of_order for a gap or a prev that is not the head's id.
[[nodiscard]] Result<void> check_extends(const FeedHead& head, const OpHeader& op);

}  // namespace ferry
