// The Python example client (examples/python/ferry_client.py, written from docs/ipc.md alone)
// against a live ferryd: its own test script must pass.
#include <catch2/catch.hpp>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {

TEST_CASE("the Python example client passes its test script against a live ferryd") {
  TestNode node;
  node.start();
  ProcessResult r = run_process(
      {"/usr/bin/python3", FERRY_PYTHON_EXAMPLES_DIR "/test_ferry_client.py", node.endpoint()},
      120s);
  INFO("stdout:\n" << r.out << "\nstderr:\n" << r.err);
  CHECK(r.status.text() == "exit code 0");
  // The script stored ops on this daemon: it really talked to it.
  CHECK(node.status()["ops"].u64() > 0);
  CHECK(node.stop().text() == "exit code 0");
}

}  // namespace ferry::it
