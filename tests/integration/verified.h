// The check every scenario ends with: `ferryctl verify` is clean on the node's data directory
// (every chain and signature), with its report in the failure message otherwise.
#pragma once

#include <catch2/catch.hpp>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {

inline void require_verified(const TestNode& node) {
  ProcessResult r = ferryctl_verify(node);
  INFO(node.name() << ": " << r.out << r.err);
  REQUIRE(r.status.ok());
}

}  // namespace ferry::it
