// The integration tests' main: Catch2, plus a listener that prints the stderr of every ferryd a
// failed test case started (the harness keeps them; a passing test case drops them).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <cstdio>

#include "tests/integration/daemon_harness.h"

namespace {

class DaemonLogReporter : public Catch::TestEventListenerBase {
 public:
  using TestEventListenerBase::TestEventListenerBase;

  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    std::string logs = ferry::it::take_report_logs();
    if (stats.totals.assertions.failed > 0 && !logs.empty()) {
      std::fprintf(stderr, "\n==== ferryd logs of the failed test \"%s\" ====\n%s\n",
                   stats.testInfo.name.c_str(), logs.c_str());
    }
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(DaemonLogReporter)
