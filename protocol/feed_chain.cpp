#include "protocol/feed_chain.h"

#include <string>

namespace ferry {

Result<void> check_extends(const FeedHead& head, const OpHeader& op) {
  if (op.seq <= head.seq) {
    return fail(Errc::fork,
                "feed already holds seq " + std::to_string(op.seq) + " with another op");
  }
  if (op.seq != head.seq + 1) {
    return fail(Errc::out_of_order, "gap: feed head is seq " + std::to_string(head.seq) +
                                        ", op has seq " + std::to_string(op.seq));
  }
  if (op.prev != head.id) {
    return fail(Errc::out_of_order,
                "prev of seq " + std::to_string(op.seq) + " is not the id of the feed head");
  }
  return {};
}

}  // namespace ferry
