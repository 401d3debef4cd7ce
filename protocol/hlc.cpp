#include "protocol/hlc.h"

#include <algorithm>
#include <string>

namespace ferry {

std::uint64_t SystemWallClock::now_ms() {
  auto since_epoch = std::chrono::system_clock::now().time_since_epoch();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count();
  return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

HybridClock::HybridClock(WallClock& wall, std::chrono::milliseconds drift_max)
    : wall_(wall), drift_max_(drift_max) {
  FERRY_ASSERT(drift_max.count() >= 0);
}

std::uint64_t HybridClock::wall_ms() { return std::min(wall_.now_ms(), hlc_ms_max); }

std::uint64_t HybridClock::now() {
  std::uint64_t wall = hlc_pack(wall_ms(), 0);
  // When the wall clock is behind (or equal), count up; a full counter carries into the
  // milliseconds, which keeps the clock monotonic at any rate of events.
  std::uint64_t next = std::max(wall, last_ + 1);
  FERRY_ASSERT(next > last_);
  last_ = next;
  return last_;
}

Result<void> HybridClock::observe(std::uint64_t remote) {
  std::uint64_t wall = wall_ms();
  std::uint64_t bound = wall + static_cast<std::uint64_t>(drift_max_.count());
  if (hlc_ms(remote) > bound) {
    return fail(Errc::limit_exceeded, "hlc: remote time is " +
                                          std::to_string(hlc_ms(remote) - wall) +
                                          " ms ahead of the local clock (drift max " +
                                          std::to_string(drift_max_.count()) + " ms)");
  }
  last_ = std::max(last_, remote);
  return {};
}

void HybridClock::restore(std::uint64_t hlc) { last_ = std::max(last_, hlc); }

}  // namespace ferry
