// Hybrid logical clock: 48 bits of milliseconds since the Unix epoch and a 16-bit counter.
//
// It orders last-writer-wins fields without trusting wall clocks: now() never goes backwards even
// when the wall clock steps back, and observe() folds in the time of a received op, but never
// further ahead of the local wall clock than drift_max. The wall clock is injected so tests can
// step it. A HybridClock is used from one thread.
#pragma once

#include <chrono>
#include <cstdint>

#include "protocol/error.h"

namespace ferry {

inline constexpr unsigned hlc_counter_bits = 16;
inline constexpr std::uint64_t hlc_counter_max = (std::uint64_t{1} << hlc_counter_bits) - 1;
inline constexpr std::uint64_t hlc_ms_max = (std::uint64_t{1} << 48) - 1;

constexpr std::uint64_t hlc_pack(std::uint64_t ms, std::uint64_t counter) {
  return (ms << hlc_counter_bits) | counter;
}
constexpr std::uint64_t hlc_ms(std::uint64_t hlc) { return hlc >> hlc_counter_bits; }
constexpr std::uint64_t hlc_counter(std::uint64_t hlc) { return hlc & hlc_counter_max; }

// The source of wall time, in milliseconds since the Unix epoch.
class WallClock {
 public:
  virtual ~WallClock() = default;
  virtual std::uint64_t now_ms() = 0;
};

class SystemWallClock final : public WallClock {
 public:
  std::uint64_t now_ms() override;
};

class HybridClock {
 public:
  HybridClock(WallClock& wall, std::chrono::milliseconds drift_max);

  // A timestamp for a local event, greater than every timestamp returned or observed before.
  std::uint64_t now();

  // Folds in a remote timestamp. Errc::limit_exceeded, and the clock unchanged, when the remote
  // time is more than drift_max ahead of the local wall clock.
  [[nodiscard]] Result<void> observe(std::uint64_t remote);

  // Raises the clock to at least `hlc` without the drift check: for our own history on restart.
  void restore(std::uint64_t hlc);

  std::uint64_t last() const { return last_; }

 private:
  std::uint64_t wall_ms();
  WallClock& wall_;
  std::chrono::milliseconds drift_max_;
  std::uint64_t last_ = 0;
};

}  // namespace ferry
