// Crashes and stops under load: an acknowledged submit is durable whatever happens to ferryd
// after the reply left, and the node's feed never forks.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

constexpr int submitter_threads = 8;

long long ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// After a restart: every acknowledged id is stored, the node's feed is one chain of all the ops
// the node holds, verify agrees, and the next submit extends the chain (seq N+1, prev = head).
// Returns the new submit's id.
std::string check_after_restart(TestNode& node, const std::vector<std::string>& acked) {
  IpcClient client = node.client();
  std::string missing = first_missing_op(node.endpoint(), acked);
  INFO("an acknowledged op that is not stored: " << missing);
  REQUIRE(missing.empty());
  std::vector<Value> ops = pull_all(client);
  std::uint64_t length = 0;
  std::string broken = feed_break(ops, node.default_channel(), length);
  INFO(broken);
  REQUIRE(broken.empty());
  REQUIRE(length == ops.size());
  Value status = client.call(status_request());
  INFO(status);
  REQUIRE(status["ops"].u64() == length);
  if (!ferryctl_path().empty()) {
    ProcessResult verify = ferryctl_verify(node);
    INFO(verify.out << verify.err);
    REQUIRE(verify.status.text() == "exit code 0");
  }
  Value next = client.call(submit_request("case.submit", "after-restart", Value::map({})));
  INFO(next);
  REQUIRE(next["ok"].boolean());
  REQUIRE(next["seq"].u64() == length + 1);
  Value op = client.call(op_request(next["id"].str()));
  REQUIRE(op["op"]["prev"] == (length == 0 ? Value(zero_id) : ops.back()["id"]));
  return next["id"].str();
}

}  // namespace

TEST_CASE("kill -9 during concurrent submits loses no acknowledged op and forks no feed") {
  std::uint64_t seed = test_seed("kill -9 during concurrent submits");
  INFO("seed " << seed << " (FERRY_TEST_SEED)");
  std::mt19937_64 rng(seed);
  TestNode node;
  node.start();
  std::vector<std::string> acked_all;
  for (int run = 0; run < 10; ++run) {
    std::uint64_t kill_after = std::uniform_int_distribution<std::uint64_t>(1, 800)(rng);
    auto jitter = std::chrono::microseconds(std::uniform_int_distribution<int>(0, 2000)(rng));
    INFO("run " << run << ": kill -9 after " << kill_after << " acks + " << jitter.count()
                << " us");
    Submitters submitters(node.endpoint(), submitter_threads, "run" + std::to_string(run));
    bool reached = wait_until([&] { return submitters.acked() >= kill_after; }, 120s, 1ms);
    // A random extra moment: the kill lands anywhere in the sign/commit/reply cycle.
    std::this_thread::sleep_for(jitter);
    ExitStatus killed = node.kill9();
    submitters.stop();
    CHECK(killed.text() == "killed by signal 9 (Killed)");
    REQUIRE(reached);
    std::vector<std::string> problems = submitters.problems();
    INFO((problems.empty() ? std::string() : problems.front()));
    REQUIRE(problems.empty());
    std::vector<std::string> acked = submitters.acked_ids();
    REQUIRE(acked.size() >= kill_after);
    auto restarted = Clock::now();
    node.start();
    auto checked = Clock::now();
    acked.push_back(check_after_restart(node, acked));
    acked_all.insert(acked_all.end(), acked.begin(), acked.end());
    std::printf("run %d: killed after %zu acks; restart %lld ms, checks %lld ms\n", run,
                acked.size() - 1, static_cast<long long>(ms_since(restarted) - ms_since(checked)),
                static_cast<long long>(ms_since(checked)));
  }
  IpcClient client = node.client();
  std::set<std::string> stored;
  for (const Value& op : pull_all(client)) stored.insert(op["id"].str());
  for (const std::string& id : acked_all) {
    INFO(id);
    CHECK(stored.count(id) == 1);
  }
  CHECK(node.stop().text() == "exit code 0");
}

TEST_CASE("SIGTERM while clients submit: ferryd exits 0 and every acknowledged op is kept") {
  std::uint64_t seed = test_seed("SIGTERM while clients submit");
  INFO("seed " << seed << " (FERRY_TEST_SEED)");
  std::mt19937_64 rng(seed);
  TestNode node;
  node.start();
  for (int run = 0; run < 3; ++run) {
    std::uint64_t stop_after = std::uniform_int_distribution<std::uint64_t>(1, 1500)(rng);
    INFO("run " << run << ": SIGTERM after " << stop_after << " acks");
    Submitters submitters(node.endpoint(), submitter_threads, "run" + std::to_string(run));
    bool reached = wait_until([&] { return submitters.acked() >= stop_after; }, 120s, 1ms);
    auto asked = Clock::now();
    ExitStatus stopped = node.stop();
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - asked);
    submitters.stop();
    REQUIRE(reached);
    CHECK(stopped.text() == "exit code 0");
    // Stopping commits what was read and lingers at most 2 s for the last replies.
    CHECK(took < 10s);
    std::vector<std::string> problems = submitters.problems();
    INFO((problems.empty() ? std::string() : problems.front()));
    REQUIRE(problems.empty());
    std::vector<std::string> acked = submitters.acked_ids();
    node.start();
    check_after_restart(node, acked);
  }
  CHECK(node.stop().text() == "exit code 0");
}

}  // namespace ferry::it
