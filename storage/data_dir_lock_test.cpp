#include "storage/data_dir_lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::storage;

TEST_CASE("a second lock on the same data directory is refused while the first is held") {
  test::TempDir dir;
  auto first = DataDirLock::acquire(dir.str());
  REQUIRE(first);
  auto second = DataDirLock::acquire(dir.str());
  REQUIRE_FALSE(second);
  CHECK(second.error().code == Errc::busy);
  CHECK(second.error().detail.find(dir.str()) != std::string::npos);
  CHECK(second.error().detail.find(std::to_string(::getpid())) != std::string::npos);
}

TEST_CASE("another process is refused the lock, and gets it once the holder lets go") {
  test::TempDir dir;
  auto try_in_child = [&]() {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto lock = DataDirLock::acquire(dir.str());
      ::_exit(lock ? 0 : (lock.error().code == Errc::busy ? 3 : 4));
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    return WEXITSTATUS(status);
  };
  {
    auto held = DataDirLock::acquire(dir.str());
    REQUIRE(held);
    CHECK(try_in_child() == 3);
  }
  CHECK(try_in_child() == 0);
}

TEST_CASE("a lock in a missing directory fails with an io error") {
  test::TempDir dir;
  auto lock = DataDirLock::acquire(dir.file("absent"));
  REQUIRE_FALSE(lock);
  CHECK(lock.error().code == Errc::io);
}
