// Waiting pulls: a pull with wait_ms comes back as soon as a matching op is stored, holds nobody
// else up, waits through ops of other channels, and answers ops:[] when its wait runs out.
#include <catch2/catch.hpp>
#include <cstdio>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

std::chrono::milliseconds since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t);
}

// Waits (bounded) until status shows `count` waiting pulls: the pull has reached the daemon.
void wait_for_waiting_pulls(IpcClient& other, std::uint64_t count) {
  bool parked = wait_until(
      [&] { return other.call(status_request())["ipc"]["pulls_waiting"].u64() == count; }, 10s);
  REQUIRE(parked);
}

Value submit_to(IpcClient& client, const std::string& channel, const std::string& key) {
  Value request = submit_request("case.submit", key, Value::map({{"k", key}}));
  request.set("channel", channel);
  Value r = client.call(request);
  INFO(r);
  REQUIRE(r["ok"].boolean());
  return r;
}

}  // namespace

TEST_CASE("a waiting pull returns as soon as an op arrives while other clients are served") {
  TestNode node;
  node.start();
  IpcClient puller = node.client();
  IpcClient other = node.client();

  auto asked = Clock::now();
  puller.send(pull_request(0, 100, 10'000));
  wait_for_waiting_pulls(other, 1);
  // Served while the pull waits: status (above) and a submit.
  auto submitted_at = Clock::now();
  Value s = submit_to(other, node.default_channel(), "HN-1");
  CHECK(since(submitted_at) < 5s);
  auto reply = puller.receive(9s);
  auto waited = since(asked);
  REQUIRE(reply.has_value());
  INFO(*reply);
  REQUIRE((*reply)["ok"].boolean());
  REQUIRE((*reply)["ops"].size() == 1);
  CHECK((*reply)["ops"][0]["id"] == s["id"]);
  CHECK((*reply)["next"] == (*reply)["ops"][0]["arrival"]);
  // Well before the 10 s wait: as soon as the op was stored.
  CHECK(waited < 5s);
  std::printf("waiting pull answered %lld ms after the submit was acknowledged\n",
              static_cast<long long>(since(submitted_at).count()));
  CHECK(other.call(status_request())["ipc"]["pulls_waiting"].u64() == 0);
}

TEST_CASE("a waiting pull with channels waits through other channels' ops") {
  TestNode node;
  node.start();
  IpcClient puller = node.client();
  IpcClient other = node.client();
  Value before = submit_to(other, "desk/b", "old");  // arrival 1: not after the pull's cursor

  Value filtered = pull_request(1, 100, 10'000);
  filtered.set("channels", Value::array({"desk/b"}));
  puller.send(filtered);
  wait_for_waiting_pulls(other, 1);
  std::vector<Value> skipped;
  for (int i = 0; i < 3; ++i)
    skipped.push_back(submit_to(other, "desk/a", "A" + std::to_string(i)));
  // Status is answered after the commit that woke the waiters: the pull still waits.
  CHECK(other.call(status_request())["ipc"]["pulls_waiting"].u64() == 1);
  CHECK_FALSE(puller.receive(0ms).has_value());
  Value wanted = submit_to(other, "desk/b", "B1");
  auto reply = puller.receive(9s);
  REQUIRE(reply.has_value());
  INFO(*reply);
  REQUIRE((*reply)["ok"].boolean());
  REQUIRE((*reply)["ops"].size() == 1);
  CHECK((*reply)["ops"][0]["id"] == wanted["id"]);
  CHECK((*reply)["ops"][0]["channel"].str() == "desk/b");
  CHECK((*reply)["next"].u64() == 5);  // past the three skipped ops, at the one returned
}

TEST_CASE("an expired pull wait answers ops [] and a next past the skipped ops") {
  TestNode node;
  node.start();
  IpcClient puller = node.client();
  IpcClient other = node.client();
  submit_to(other, node.default_channel(), "first");

  SECTION("nothing arrived: next stays at after") {
    auto asked = Clock::now();
    Value r = puller.call(pull_request(1, 100, 300));
    auto waited = since(asked);
    INFO(r);
    REQUIRE(r["ok"].boolean());
    CHECK(r.keys() == std::vector<std::string>{"next", "ok", "ops"});
    CHECK(r["ops"].size() == 0);
    CHECK(r["next"].u64() == 1);
    CHECK(waited >= 290ms);
    CHECK(waited < 5s);
  }
  SECTION("only other channels' ops arrived: next moves past them") {
    Value filtered = pull_request(1, 100, 1500);
    filtered.set("channels", Value::array({"desk/nobody"}));
    auto asked = Clock::now();
    puller.send(filtered);
    wait_for_waiting_pulls(other, 1);
    Value skipped = submit_to(other, "desk/a", "skipped");
    auto reply = puller.receive(10s);
    auto waited = since(asked);
    REQUIRE(reply.has_value());
    INFO(*reply);
    CHECK((*reply)["ops"].size() == 0);
    CHECK((*reply)["next"].u64() == 2);
    CHECK(waited >= 1490ms);
  }
  SECTION("a pull without wait_ms answers at once") {
    auto asked = Clock::now();
    Value r = puller.call(pull_request(1, 100));
    CHECK(r["ops"].size() == 0);
    CHECK(since(asked) < 2s);
  }
}

TEST_CASE("SIGTERM answers every waiting pull, then ferryd exits 0") {
  TestNode node;
  node.start();
  IpcClient a = node.client();
  IpcClient b = node.client();
  IpcClient other = node.client();
  a.send(pull_request(0, 100, 30'000));
  b.send(pull_request(0, 100, 30'000));
  wait_for_waiting_pulls(other, 2);
  auto asked = Clock::now();
  ExitStatus stopped = node.stop();
  CHECK(stopped.text() == "exit code 0");
  for (IpcClient* c : {&a, &b}) {
    auto reply = c->receive(5s);
    REQUIRE(reply.has_value());
    INFO(*reply);
    CHECK((*reply)["ok"].boolean());
    CHECK((*reply)["ops"].size() == 0);
    CHECK((*reply)["next"].u64() == 0);
  }
  CHECK(since(asked) < 10s);
}

TEST_CASE("pulls beyond pull_waiting_max get busy") {
  NodeSettings settings;
  settings.limits = {{"pull_waiting_max", "2"}};
  TestNode node(settings);
  node.start();
  IpcClient a = node.client();
  IpcClient b = node.client();
  IpcClient c = node.client();
  IpcClient other = node.client();
  a.send(pull_request(0, 100, 30'000));
  b.send(pull_request(0, 100, 30'000));
  wait_for_waiting_pulls(other, 2);  // at the limit: both wait
  Value r = c.call(pull_request(0, 100, 30'000));
  INFO(r);
  REQUIRE_FALSE(r["ok"].boolean());
  CHECK(r["error"]["code"].str() == "busy");
  CHECK(other.call(status_request())["ipc"]["errors"]["busy"].u64() == 1);
  // The waiting pulls still get the next op.
  Value s = submit_to(other, node.default_channel(), "x");
  for (IpcClient* p : {&a, &b}) {
    auto reply = p->receive(10s);
    REQUIRE(reply.has_value());
    CHECK((*reply)["ops"][0]["id"] == s["id"]);
  }
}

}  // namespace ferry::it
