// When status recomputes the state digests (DigestPacer in daemon/node.h).
#include <catch2/catch.hpp>

#include "daemon/node.h"

namespace {

using namespace std::chrono_literals;
using ferry::daemon::digest_cost_factor;
using ferry::daemon::digest_cost_free;
using ferry::daemon::DigestPacer;

}  // namespace

TEST_CASE("the digest pacer lets the first pass and every quick pass run") {
  DigestPacer pacer;
  DigestPacer::Clock::time_point t0{};
  CHECK(pacer.due(t0));
  pacer.computed(t0, t0 + digest_cost_free - 1ms);
  CHECK(pacer.due(t0 + digest_cost_free));  // right after a quick pass
}

TEST_CASE("the digest pacer holds a slow pass back for its cost times the factor") {
  DigestPacer pacer;
  DigestPacer::Clock::time_point t0{};
  const auto cost = digest_cost_free * 3;
  const auto ended = t0 + cost;
  pacer.computed(t0, ended);
  CHECK_FALSE(pacer.due(ended));
  CHECK_FALSE(pacer.due(ended + cost * digest_cost_factor - 1ms));
  CHECK(pacer.due(ended + cost * digest_cost_factor));
  // A quick pass after it lifts the hold.
  pacer.computed(ended + 10s, ended + 10s + 1ms);
  CHECK(pacer.due(ended + 10s + 2ms));
}
