// Many clients at once: group commit must store every acknowledged submit exactly once and keep
// the node's feed one unbroken chain.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <numeric>
#include <set>
#include <thread>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {

// The ops pulled back from a node whose only writers were these submits: each acknowledged op
// once, in the node's own feed, with seqs 1..n and one unbroken chain.
void check_stored_once(const TestNode& node, const std::vector<Value>& ops,
                       const std::set<std::string>& acked_ids) {
  std::set<std::string> stored_ids;
  std::vector<std::uint64_t> seqs;
  for (const Value& op : ops) {
    CHECK(stored_ids.insert(op["id"].str()).second);  // no op twice
    CHECK(op["channel"].str() == node.default_channel());
    seqs.push_back(op["seq"].u64());
  }
  CHECK(ops.size() == acked_ids.size());
  CHECK(stored_ids == acked_ids);
  std::sort(seqs.begin(), seqs.end());
  std::vector<std::uint64_t> one_to_n(acked_ids.size());
  std::iota(one_to_n.begin(), one_to_n.end(), 1);
  CHECK(seqs == one_to_n);
  std::uint64_t length = 0;
  CHECK(feed_break(ops, node.default_channel(), length).empty());
}

TEST_CASE("16 concurrent clients x 1000 submits: each acknowledged op stored exactly once") {
  constexpr int clients = 16;
  constexpr int submits_per_client = 1000;
  constexpr std::uint64_t total = clients * submits_per_client;
  TestNode node;
  node.start();

  struct Acked {
    std::string id;
    std::uint64_t seq = 0;
  };
  std::vector<std::vector<Acked>> acked(clients);
  std::vector<std::string> problems(clients);
  auto started = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        IpcClient client(node.endpoint(), 60s);
        for (int n = 0; n < submits_per_client; ++n) {
          Value body = Value::map({{"client", c}, {"n", n}, {"service", "fishing-licence"}});
          Value r = client.call(submit_request(
              "case.submit", "C" + std::to_string(c) + "-" + std::to_string(n), body));
          if (!r["ok"].boolean()) {
            problems[static_cast<std::size_t>(c)] = "refused: " + r.dump();
            return;
          }
          acked[static_cast<std::size_t>(c)].push_back(Acked{r["id"].str(), r["seq"].u64()});
        }
      } catch (const std::exception& e) {
        problems[static_cast<std::size_t>(c)] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  std::printf("16 x 1000 submits: %lld ms (%.0f submits/s)\n", static_cast<long long>(took.count()),
              static_cast<double>(total) * 1000.0 / static_cast<double>(took.count() + 1));
  for (int c = 0; c < clients; ++c) {
    INFO("client " << c);
    REQUIRE(problems[static_cast<std::size_t>(c)].empty());
    REQUIRE(acked[static_cast<std::size_t>(c)].size() == submits_per_client);
  }

  std::set<std::string> acked_ids;
  for (const auto& list : acked) {
    std::uint64_t last_seq = 0;
    for (const Acked& a : list) {
      CHECK(acked_ids.insert(a.id).second);
      // One client's submits are sequential, so its seqs only grow.
      CHECK(a.seq > last_seq);
      last_seq = a.seq;
    }
  }
  REQUIRE(acked_ids.size() == total);

  IpcClient client = node.client();
  auto pull_started = Clock::now();
  std::vector<Value> ops = pull_all(client);
  std::printf("pulling the 16000 ops back: %lld ms\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - pull_started)
                      .count()));
  check_stored_once(node, ops, acked_ids);

  Value status = client.call(status_request());
  INFO(status);
  CHECK(status["ops"].u64() == total);
  CHECK(status["last_arrival"].u64() == total);
  for (const auto& [code, count] : status["ipc"]["errors"].fields()) {
    INFO(code);
    CHECK(count.u64() == 0);
  }
  CHECK(status["ipc"]["unsent_replies"].u64() == 0);

  if (ferryctl_path().empty()) {
    WARN("ferryctl was not built: verify skipped");
  } else {
    ProcessResult verify = ferryctl_verify(node);
    std::printf("ferryctl verify of 16000 ops: %lld ms\n",
                static_cast<long long>(verify.elapsed.count()));
    INFO(verify.out << verify.err);
    CHECK(verify.status.text() == "exit code 0");
    CHECK_THAT(verify.out, Catch::Contains("16000 ops"));
  }
  CHECK(node.stop().text() == "exit code 0");
}

// Pipelined clients with thousands of submits outstanding fill whole batches (batch_ops_max, 1024
// by default), and each batch goes to the signing threads in parts (sign_part_ops, 128) as it is
// built. The signatures must come back to their own ops in order: ferryctl verify checks each.
TEST_CASE(
    "pipelined bursts fill batches signed in parts: every op stored once, each signature valid") {
  constexpr int clients = 8;
  constexpr std::size_t submits_per_client = 1000;  // 256 in flight per client: 2,048 at once
  constexpr std::uint64_t total = clients * submits_per_client;
  TestNode node;
  node.start();
  std::vector<std::vector<std::string>> ids(clients);
  std::vector<std::string> problems(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        ids[static_cast<std::size_t>(c)] =
            submit_many(node, submits_per_client, "burst" + std::to_string(c));
      } catch (const std::exception& e) {
        problems[static_cast<std::size_t>(c)] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<std::string> acked_ids;
  for (int c = 0; c < clients; ++c) {
    INFO("client " << c);
    REQUIRE(problems[static_cast<std::size_t>(c)].empty());
    REQUIRE(ids[static_cast<std::size_t>(c)].size() == submits_per_client);
    acked_ids.insert(ids[static_cast<std::size_t>(c)].begin(),
                     ids[static_cast<std::size_t>(c)].end());
  }
  REQUIRE(acked_ids.size() == total);

  IpcClient client = node.client();
  std::vector<Value> ops = pull_all(client);
  check_stored_once(node, ops, acked_ids);
  CHECK(node.stop().text() == "exit code 0");
  if (ferryctl_path().empty()) {
    WARN("ferryctl was not built: verify skipped");
  } else {
    ProcessResult verify = ferryctl_verify(node);
    INFO(verify.out << verify.err);
    CHECK(verify.status.text() == "exit code 0");
    CHECK_THAT(verify.out, Catch::Contains(std::to_string(total) + " ops"));
  }
}

}  // namespace ferry::it
