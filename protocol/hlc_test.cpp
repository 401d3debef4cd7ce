#include "protocol/hlc.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdint>

namespace {

using ferry::hlc_counter;
using ferry::hlc_ms;
using ferry::hlc_pack;
using ferry::HybridClock;

using namespace std::chrono_literals;

// A wall clock the test steps by hand.
class FakeWallClock final : public ferry::WallClock {
 public:
  explicit FakeWallClock(std::uint64_t ms) : ms_(ms) {}
  std::uint64_t now_ms() override { return ms_; }
  void set(std::uint64_t ms) { ms_ = ms; }
  void advance(std::uint64_t ms) { ms_ += ms; }
  void rewind(std::uint64_t ms) { ms_ -= ms; }

 private:
  std::uint64_t ms_;
};

constexpr std::uint64_t start_ms = 1'700'000'000'000;  // November 2023
constexpr auto drift_max = 60'000ms;

}  // namespace

TEST_CASE("hlc_pack, hlc_ms and hlc_counter round trip") {
  for (std::uint64_t ms : {std::uint64_t{0}, std::uint64_t{1}, start_ms, ferry::hlc_ms_max}) {
    for (std::uint64_t counter :
         {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{0x1234}, ferry::hlc_counter_max}) {
      INFO("ms " << ms << " counter " << counter);
      std::uint64_t hlc = hlc_pack(ms, counter);
      CHECK(hlc_ms(hlc) == ms);
      CHECK(hlc_counter(hlc) == counter);
    }
  }
  CHECK(hlc_pack(1, 0) == 0x10000);
  CHECK(hlc_pack(ferry::hlc_ms_max, ferry::hlc_counter_max) == UINT64_MAX);
  // Packed values order by milliseconds first, then by counter.
  CHECK(hlc_pack(5, ferry::hlc_counter_max) < hlc_pack(6, 0));
  CHECK(hlc_pack(5, 1) < hlc_pack(5, 2));
}

TEST_CASE("hlc now() starts at the wall clock and strictly increases") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  std::uint64_t first = clock.now();
  CHECK(hlc_ms(first) == start_ms);
  CHECK(hlc_counter(first) == 0);
  CHECK(clock.last() == first);
  std::uint64_t previous = first;
  for (int i = 0; i < 1000; ++i) {
    std::uint64_t next = clock.now();
    REQUIRE(next > previous);
    REQUIRE(hlc_ms(next) == start_ms);  // the wall clock stands still, the counter counts
    previous = next;
  }
  CHECK(hlc_counter(previous) == 1000);
}

TEST_CASE("hlc now() keeps increasing when the wall clock steps back") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  std::uint64_t before = clock.now();
  wall.rewind(10'000);
  std::uint64_t previous = before;
  for (int i = 0; i < 100; ++i) {
    std::uint64_t next = clock.now();
    REQUIRE(next > previous);
    REQUIRE(hlc_ms(next) >= hlc_ms(before));
    previous = next;
  }
  CHECK(hlc_ms(previous) == start_ms);
  // Once the wall clock has caught up and passed, the clock follows it again.
  wall.set(start_ms + 5);
  std::uint64_t caught_up = clock.now();
  CHECK(caught_up > previous);
  CHECK(hlc_ms(caught_up) == start_ms + 5);
  CHECK(hlc_counter(caught_up) == 0);
}

TEST_CASE("hlc now() follows the wall clock forward") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  clock.now();
  clock.now();
  wall.advance(1);
  std::uint64_t a = clock.now();
  CHECK(hlc_ms(a) == start_ms + 1);
  CHECK(hlc_counter(a) == 0);
  wall.advance(250);
  std::uint64_t b = clock.now();
  CHECK(b == hlc_pack(start_ms + 251, 0));
}

TEST_CASE("hlc counter carries into the milliseconds after 65536 events in one millisecond") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  std::uint64_t previous = clock.now();
  REQUIRE(previous == hlc_pack(start_ms, 0));
  for (std::uint64_t i = 1; i <= ferry::hlc_counter_max; ++i) {
    std::uint64_t next = clock.now();
    REQUIRE(next > previous);
    previous = next;
  }
  CHECK(previous == hlc_pack(start_ms, ferry::hlc_counter_max));
  std::uint64_t carried = clock.now();
  CHECK(carried > previous);
  CHECK(carried == hlc_pack(start_ms + 1, 0));
  std::uint64_t after = clock.now();
  CHECK(after == hlc_pack(start_ms + 1, 1));
  // The wall clock reaching the carried millisecond does not make the clock repeat itself.
  wall.set(start_ms + 1);
  CHECK(clock.now() == hlc_pack(start_ms + 1, 2));
}

TEST_CASE("hlc observe() of a remote time within drift raises the clock past it") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  clock.now();
  std::uint64_t remote = hlc_pack(start_ms + 30'000, 7);
  REQUIRE(clock.observe(remote));
  CHECK(clock.last() == remote);
  std::uint64_t next = clock.now();
  CHECK(next > remote);
  CHECK(next == hlc_pack(start_ms + 30'000, 8));

  // A remote time in the past changes nothing.
  std::uint64_t last = clock.last();
  REQUIRE(clock.observe(hlc_pack(start_ms - 5'000, 0)));
  CHECK(clock.last() == last);
  CHECK(clock.now() > last);
}

TEST_CASE("hlc observe() refuses a remote time beyond drift_max and leaves the clock unchanged") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  std::uint64_t local = clock.now();
  const std::uint64_t bound_ms = start_ms + static_cast<std::uint64_t>(drift_max.count());

  SECTION("one millisecond past the bound") {
    auto observed = clock.observe(hlc_pack(bound_ms + 1, 0));
    REQUIRE_FALSE(observed);
    CHECK(observed.error().code == ferry::Errc::limit_exceeded);
    CHECK(clock.last() == local);
    CHECK(clock.now() == hlc_pack(start_ms, 1));
  }
  SECTION("far in the future") {
    auto observed = clock.observe(hlc_pack(ferry::hlc_ms_max, ferry::hlc_counter_max));
    REQUIRE_FALSE(observed);
    CHECK(observed.error().code == ferry::Errc::limit_exceeded);
    CHECK(clock.last() == local);
  }
  SECTION("exactly at the bound is accepted, at any counter") {
    std::uint64_t at_bound = hlc_pack(bound_ms, ferry::hlc_counter_max);
    REQUIRE(clock.observe(at_bound));
    CHECK(clock.last() == at_bound);
    CHECK(clock.now() > at_bound);
  }
  SECTION("the bound moves with the wall clock") {
    REQUIRE_FALSE(clock.observe(hlc_pack(bound_ms + 1, 0)));
    wall.advance(1);
    CHECK(clock.observe(hlc_pack(bound_ms + 1, 0)));
  }
}

TEST_CASE("hlc restore() raises the clock without the drift check") {
  FakeWallClock wall(start_ms);
  HybridClock clock(wall, drift_max);
  std::uint64_t far = hlc_pack(start_ms + 3'600'000, 3);
  clock.restore(far);
  CHECK(clock.last() == far);
  CHECK(clock.now() > far);
  clock.restore(hlc_pack(start_ms, 0));  // never lowers it
  CHECK(clock.last() > far);
}

TEST_CASE("the system wall clock reads a plausible time") {
  ferry::SystemWallClock wall;
  std::uint64_t ms = wall.now_ms();
  CHECK(ms > start_ms);
  CHECK(ms < ferry::hlc_ms_max);
}
