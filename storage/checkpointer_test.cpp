#include "storage/checkpointer.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace ferry::storage;

namespace {

// Bounded wait for a condition another thread makes true.
template <typename Condition>
bool eventually(Condition condition) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

TEST_CASE("the write gate lets a waiting checkpoint in before the writer's next transaction") {
  WriteGate gate;
  std::mutex order_mutex;
  std::vector<std::string> order;
  auto note = [&](const char* who) {
    std::lock_guard lock(order_mutex);
    order.emplace_back(who);
  };
  gate.lock();  // a transaction in progress
  std::thread checkpoint([&] {
    gate.lock_for_checkpoint();
    note("checkpoint");
    gate.unlock_for_checkpoint();
  });
  REQUIRE(eventually([&] { return gate.checkpoint_waiting(); }));
  {
    std::lock_guard lock(order_mutex);
    CHECK(order.empty());  // it waits for the transaction to end
  }
  gate.unlock();
  gate.lock();  // the writer's next transaction comes after the checkpoint, however fast it asks
  note("writer");
  gate.unlock();
  checkpoint.join();
  CHECK(order == std::vector<std::string>{"checkpoint", "writer"});
  CHECK_FALSE(gate.checkpoint_waiting());
}

TEST_CASE("the write gate keeps the writer out while a checkpoint holds it") {
  WriteGate gate;
  gate.lock_for_checkpoint();
  std::atomic<bool> writer_in{false};
  std::thread writer([&] {
    gate.lock();
    writer_in = true;
    gate.unlock();
  });
  // The writer cannot get in: give it every chance for a while, then let the checkpoint go.
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    CHECK_FALSE(writer_in.load());
  }
  gate.unlock_for_checkpoint();
  CHECK(eventually([&] { return writer_in.load(); }));
  writer.join();
}
