// The check every scenario ends with: `ferryctl verify` is clean on the node's data directory
// (every chain and signature), with its report in the failure message otherwise.
#pragma once

#include <catch2/catch.hpp>
#include <initializer_list>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {

inline void require_verified(const TestNode& node) {
  ProcessResult r = ferryctl_verify(node);
  INFO(node.name() << ": " << r.out << r.err);
  REQUIRE(r.status.ok());
}

// The end of a scenario: every node stopped (SIGTERM), then each data directory verified.
inline void stop_and_verify(std::initializer_list<TestNode*> nodes) {
  for (TestNode* node : nodes) node->stop();
  for (TestNode* node : nodes) require_verified(*node);
}

}  // namespace ferry::it
