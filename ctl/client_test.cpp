#include "ctl/client.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <zmq.hpp>

#include "ctl/fake_daemon.h"
#include "ctl/msgpack_json.h"
#include "tests/support/test_support.h"

namespace ferry::client {
namespace {

using fake::FakeDaemon;
using fake::FakeReply;
using fake::map_reply;
using nlohmann::json;
using namespace std::chrono_literals;

std::string endpoint_in(const test::TempDir& dir) { return "ipc://" + dir.file("fake.sock"); }

ClientOptions options_for(const std::string& endpoint, std::chrono::milliseconds timeout = 2000ms) {
  ClientOptions options;
  options.endpoint = endpoint;
  options.timeout = timeout;
  return options;
}

const std::string id_a(64, 'a');

json op_map(std::uint64_t arrival) {
  return {{"id", id_a},
          {"origin", std::string(64, 'b')},
          {"channel", "station/huaniao"},
          {"seq", arrival},
          {"prev", std::string(64, '0')},
          {"hlc", 117309ULL << 16},
          {"kind", "case.submit"},
          {"key", "HN-1"},
          {"deps", json::array()},
          {"author", nullptr},
          {"body", {{"service", "hukou"}}},
          {"arrival", arrival},
          {"stored_at", 1790000000000ULL}};
}

TEST_CASE("an ok reply is decoded into its fields, without ok") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json&) {
    return map_reply({{"ok", true},
                      {"node", {{"name", "huaniao"}, {"id", id_a}, {"role", "station"}}},
                      {"ops", 7},
                      {"version", "0.1.0"}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto status = client.status();
  REQUIRE(status.has_value());
  CHECK_FALSE(status->contains("ok"));
  CHECK((*status)["node"]["name"] == "huaniao");
  CHECK((*status)["ops"].get<std::uint64_t>() == 7);
  REQUIRE(fake.requests().size() == 1);
  CHECK(fake.requests()[0] == json{{"cmd", "status"}});
}

TEST_CASE("an error reply becomes an Error whose detail keeps the daemon's code") {
  const std::vector<std::pair<std::string, Errc>> codes = {{"bad_request", Errc::malformed},
                                                           {"unknown_command", Errc::malformed},
                                                           {"too_large", Errc::limit_exceeded},
                                                           {"not_found", Errc::not_found},
                                                           {"busy", Errc::busy},
                                                           {"storage_full", Errc::disk_full},
                                                           {"storage_error", Errc::io},
                                                           {"internal", Errc::io},
                                                           {"forbidden", Errc::unauthorized},
                                                           {"from_the_future", Errc::io}};
  test::TempDir dir;
  std::string code;
  FakeDaemon fake(endpoint_in(dir), [&code](const json&) {
    return map_reply({{"ok", false}, {"error", {{"code", code}, {"message", "it went wrong"}}}});
  });
  Client client(options_for(endpoint_in(dir)));
  for (const auto& [name, errc] : codes) {
    code = name;
    auto reply = client.call({{"cmd", "status"}});
    REQUIRE_FALSE(reply.has_value());
    CHECK(reply.error().code == errc);
    CHECK(reply.error().detail == name + ": it went wrong");
  }
}

TEST_CASE("op returns the op map and not_found is Errc::not_found") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json& request) {
    if (request["id"] == id_a) return map_reply({{"ok", true}, {"op", op_map(3)}});
    return map_reply({{"ok", false}, {"error", {{"code", "not_found"}, {"message", "no op"}}}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto op = client.op(std::string(64, 'A'));  // upper case is sent as lower case
  REQUIRE(op.has_value());
  CHECK((*op)["arrival"] == 3);
  CHECK((*op)["body"]["service"] == "hukou");
  auto missing = client.op(std::string(64, 'c'));
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(fake.requests().at(0) == json{{"cmd", "op"}, {"id", id_a}});
}

TEST_CASE("an id that is not 64 hex digits is refused before anything is sent") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json&) { return map_reply({{"ok", true}}); });
  Client client(options_for(endpoint_in(dir)));
  for (const std::string& bad : {std::string("abc"), std::string(64, 'g'), std::string(65, 'a')}) {
    auto op = client.op(bad);
    REQUIRE_FALSE(op.has_value());
    CHECK(op.error().code == Errc::malformed);
    CHECK_FALSE(client.track(bad).has_value());
  }
  CHECK(fake.requests().empty());
}

TEST_CASE("a daemon that does not answer is a bounded timeout, and the next call works") {
  test::TempDir dir;
  Client client(options_for(endpoint_in(dir), 200ms));
  auto start = std::chrono::steady_clock::now();
  auto status = client.status();  // nobody is bound to the endpoint yet
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(status.has_value());
  CHECK(status.error().code == Errc::timeout);
  CHECK(status.error().detail.find(endpoint_in(dir)) != std::string::npos);
  CHECK(status.error().detail.find("is ferryd running?") != std::string::npos);
  CHECK(elapsed >= 200ms);
  CHECK(elapsed < 2s);

  FakeDaemon fake(endpoint_in(dir), [](const json&) { return map_reply({{"ok", true}}); });
  auto again = client.status();
  REQUIRE(again.has_value());
  CHECK(again->empty());
}

TEST_CASE("a reply that comes after the timeout is never taken for the next reply") {
  test::TempDir dir;
  std::atomic<int> served{0};
  FakeDaemon fake(endpoint_in(dir), [&served](const json& request) {
    if (served++ == 0) std::this_thread::sleep_for(400ms);  // the client gave up on this one
    return map_reply({{"ok", true}, {"echo", request["key"]}});
  });
  Client client(options_for(endpoint_in(dir), 200ms));
  auto first = client.call({{"cmd", "echo"}, {"key", "first"}});
  REQUIRE_FALSE(first.has_value());
  CHECK(first.error().code == Errc::timeout);
  std::this_thread::sleep_for(300ms);  // the late reply is sent meanwhile
  auto second = client.call({{"cmd", "echo"}, {"key", "second"}});
  REQUIRE(second.has_value());
  CHECK((*second)["echo"] == "second");
}

TEST_CASE("a reply that breaks the protocol is malformed, and the next call works") {
  test::TempDir dir;
  std::atomic<int> served{0};
  FakeDaemon fake(endpoint_in(dir), [&served](const json&) -> std::optional<FakeReply> {
    switch (served++) {
      case 0:
        return FakeReply{{{0xc1}}};  // never valid msgpack
      case 1:
        return FakeReply{{json::to_msgpack({{"ok", true}}), json::to_msgpack({{"ok", true}})}};
      case 2:
        return map_reply(json::array({1, 2}));
      case 3:
        return map_reply({{"ok", "yes"}});
      case 4:
        return map_reply({{"ok", false}});
      default:
        return map_reply({{"ok", true}, {"fine", true}});
    }
  });
  Client client(options_for(endpoint_in(dir)));
  for (int i = 0; i < 5; ++i) {
    auto reply = client.call({{"cmd", "status"}});
    REQUIRE_FALSE(reply.has_value());
    CHECK(reply.error().code == Errc::malformed);
  }
  auto fine = client.call({{"cmd", "status"}});
  REQUIRE(fine.has_value());
  CHECK((*fine)["fine"] == true);
}

TEST_CASE("submit sends exactly the documented keys with their msgpack types") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json&) {
    return map_reply(
        {{"ok", true}, {"id", id_a}, {"seq", 4}, {"hlc", 99}, {"channel", "station/huaniao"}});
  });
  Client client(options_for(endpoint_in(dir)));
  Submission minimal{"case.submit", "HN-1", {{"service", "hukou"}, {"fee", 12}}, {}, {}, {}};
  auto submitted = client.submit(minimal);
  REQUIRE(submitted.has_value());
  CHECK(submitted->id == id_a);
  CHECK(submitted->seq == 4);
  CHECK(submitted->hlc == 99);
  CHECK(submitted->channel == "station/huaniao");

  Submission full = minimal;
  full.channel = "station/huaniao";
  full.author = "agent-7";
  full.deps = {std::string(64, 'D')};
  REQUIRE(client.submit(full).has_value());

  auto requests = fake.requests();
  REQUIRE(requests.size() == 2);
  std::set<std::string> keys;
  for (const auto& [k, v] : requests[0].items()) keys.insert(k);
  CHECK(keys == std::set<std::string>{"cmd", "kind", "key", "body"});
  CHECK(requests[0]["cmd"] == "submit");
  CHECK(requests[0]["body"] == json{{"service", "hukou"}, {"fee", 12}});
  CHECK(requests[0]["body"]["fee"].is_number_unsigned());  // a positive msgpack int
  keys.clear();
  for (const auto& [k, v] : requests[1].items()) keys.insert(k);
  CHECK(keys == std::set<std::string>{"cmd", "kind", "key", "body", "channel", "author", "deps"});
  CHECK(requests[1]["deps"] == json::array({std::string(64, 'd')}));
  CHECK(requests[1]["author"] == "agent-7");
}

TEST_CASE("submit refuses a body that is not a map and a dep that is not an id") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json&) { return map_reply({{"ok", true}}); });
  Client client(options_for(endpoint_in(dir)));
  Submission bad_body{"case.submit", "HN-1", json::array({1}), {}, {}, {}};
  CHECK(client.submit(bad_body).error().code == Errc::malformed);
  Submission bad_dep{"case.submit", "HN-1", json::object(), {}, {}, {"nope"}};
  CHECK(client.submit(bad_dep).error().code == Errc::malformed);
  // A reply without the documented fields is malformed too.
  Submission good{"case.submit", "HN-1", json::object(), {}, {}, {}};
  CHECK(client.submit(good).error().code == Errc::malformed);
  CHECK(fake.requests().size() == 1);
}

TEST_CASE("pull sends the cursor, limit, wait and channels and returns ops and next") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json& request) {
    std::uint64_t after = request["after"];
    return map_reply(
        {{"ok", true}, {"ops", {op_map(after + 1), op_map(after + 2)}}, {"next", after + 2}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto page = client.pull(5, 2, 1500ms, {"broadcast"});
  REQUIRE(page.has_value());
  REQUIRE(page->ops.size() == 2);
  CHECK(page->ops[1]["arrival"] == 7);
  CHECK(page->next == 7);
  auto plain = client.pull(0);
  REQUIRE(plain.has_value());
  auto requests = fake.requests();
  CHECK(requests[0] == json{{"cmd", "pull"},
                            {"after", 5},
                            {"limit", 2},
                            {"wait_ms", 1500},
                            {"channels", {"broadcast"}}});
  CHECK(requests[1] == json{{"cmd", "pull"}, {"after", 0}});
}

TEST_CASE("a pull's wait is added to the timeout") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json&) {
    std::this_thread::sleep_for(400ms);  // the daemon holds a waiting pull
    return map_reply({{"ok", true}, {"ops", json::array()}, {"next", 0}});
  });
  Client client(options_for(endpoint_in(dir), 200ms));
  auto page = client.pull(0, 0, 1000ms);
  REQUIRE(page.has_value());
  CHECK(page->ops.empty());
}

TEST_CASE("a set cancel flag ends a wait early") {
  test::TempDir dir;
  std::atomic<bool> cancel{false};
  ClientOptions options = options_for(endpoint_in(dir), 5000ms);
  options.cancel = &cancel;
  Client client(options);
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(100ms);
    cancel = true;
  });
  auto start = std::chrono::steady_clock::now();
  auto status = client.status();
  canceller.join();
  REQUIRE_FALSE(status.has_value());
  CHECK(status.error().code == Errc::timeout);
  CHECK(status.error().detail == "cancelled");
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

TEST_CASE("a bad endpoint and a request that is not a map are malformed") {
  Client client(options_for("nonsense"));
  CHECK(client.status().error().code == Errc::malformed);
  Client other(options_for("ipc:///nonexistent/ferry.sock", 50ms));
  CHECK(other.call(json::array({"status"})).error().code == Errc::malformed);
}

json record_map() {
  return {{"channel", "station/huaniao"},         {"key", "HN-1"},
          {"fields", {{"status", "approved"}}},   {"counters", {{"hours", -2}}},
          {"sets", {{"documents", {"id-card"}}}}, {"heads", {id_a}},
          {"conflicts", json::array()},           {"ops", 3},
          {"updated_hlc", 117309ULL << 16}};
}

TEST_CASE("get sends the key and the channel only when given, and returns the record map") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json& request) {
    if (request["key"] == "HN-404") {
      return map_reply(
          {{"ok", false}, {"error", {{"code", "not_found"}, {"message", "no record HN-404"}}}});
    }
    if (request["key"] == "HN-odd") return map_reply({{"ok", true}, {"record", "HN-odd"}});
    return map_reply({{"ok", true}, {"record", record_map()}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto record = client.get("HN-1");
  REQUIRE(record.has_value());
  CHECK(*record == record_map());
  CHECK(client.get("HN-1", "desk/permits").has_value());
  auto missing = client.get("HN-404");
  REQUIRE_FALSE(missing.has_value());
  CHECK(missing.error().code == Errc::not_found);
  CHECK(missing.error().detail == "not_found: no record HN-404");
  CHECK(client.get("HN-odd").error().code == Errc::malformed);
  auto requests = fake.requests();
  REQUIRE(requests.size() == 4);
  CHECK(requests[0] == json{{"cmd", "get"}, {"key", "HN-1"}});
  CHECK(requests[1] == json{{"cmd", "get"}, {"key", "HN-1"}, {"channel", "desk/permits"}});
}

TEST_CASE("conflicts sends the limit only when given, and returns the conflicts array") {
  test::TempDir dir;
  const json listed = json::array(
      {{{"channel", "station/huaniao"}, {"key", "HH-42"}, {"fields", {"label", "phone"}}}});
  FakeDaemon fake(endpoint_in(dir), [&listed](const json& request) {
    if (request.contains("limit") && request["limit"] == 7) {
      return map_reply({{"ok", true}, {"conflicts", {{"channel", "x"}}}});
    }
    return map_reply({{"ok", true}, {"conflicts", listed}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto all = client.conflicts();
  REQUIRE(all.has_value());
  CHECK(*all == listed);
  CHECK(client.conflicts(5).has_value());
  CHECK(client.conflicts(7).error().code == Errc::malformed);  // not an array
  auto requests = fake.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0] == json{{"cmd", "conflicts"}});
  CHECK(requests[1] == json{{"cmd", "conflicts"}, {"limit", 5}});
}

const std::string key_a(64, 'a');

TEST_CASE("peers, sync and trust_list send their command and return the documented parts") {
  test::TempDir dir;
  const json peers = json::array({{{"name", "hub"}, {"key", key_a}, {"connected", true}}});
  FakeDaemon fake(endpoint_in(dir), [&peers](const json& request) {
    if (request["cmd"] == "peers") return map_reply({{"ok", true}, {"peers", peers}});
    if (request["cmd"] == "sync") return map_reply({{"ok", true}});
    return map_reply({{"ok", true}, {"authority", key_a}, {"trust", json::array()}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto listed = client.peers();
  REQUIRE(listed.has_value());
  CHECK(*listed == peers);
  auto synced = client.sync();
  REQUIRE(synced.has_value());
  CHECK(synced->empty());
  auto trust = client.trust_list();
  REQUIRE(trust.has_value());
  CHECK(*trust == json{{"authority", key_a}, {"trust", json::array()}});
  auto requests = fake.requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0] == json{{"cmd", "peers"}});
  CHECK(requests[1] == json{{"cmd", "sync"}});
  CHECK(requests[2] == json{{"cmd", "trust_list"}});
}

TEST_CASE("peers and trust_list replies without their array are malformed") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json&) {
    return map_reply({{"ok", true}, {"peers", "none"}, {"trust", {{"name", "x"}}}});
  });
  Client client(options_for(endpoint_in(dir)));
  CHECK(client.peers().error().code == Errc::malformed);
  CHECK(client.trust_list().error().code == Errc::malformed);
}

TEST_CASE("trust_add sends the patterns only when given, and returns the trust op") {
  test::TempDir dir;
  FakeDaemon fake(endpoint_in(dir), [](const json& request) {
    if (request["cmd"] == "trust_revoke" && request["who"] == "nobody") {
      return map_reply(
          {{"ok", false}, {"error", {{"code", "not_found"}, {"message", "no trusted node"}}}});
    }
    if (request.contains("role") && request["role"] == "hub") {
      return map_reply({{"ok", false}, {"error", {{"code", "forbidden"}, {"message", "no"}}}});
    }
    return map_reply(
        {{"ok", true}, {"id", id_a}, {"seq", 2}, {"hlc", 7}, {"channel", "ferry/trust"}});
  });
  Client client(options_for(endpoint_in(dir)));
  auto added = client.trust_add("huaniao", std::string(64, 'B'));
  REQUIRE(added.has_value());
  CHECK(added->id == id_a);
  CHECK(added->channel == "ferry/trust");
  REQUIRE(client
              .trust_add("township", key_a, "relay", std::vector<std::string>{"station/*"},
                         std::vector<std::string>{})
              .has_value());
  auto forbidden = client.trust_add("dongji", key_a, "hub");
  REQUIRE_FALSE(forbidden.has_value());
  CHECK(forbidden.error().code == Errc::unauthorized);
  CHECK(forbidden.error().detail == "forbidden: no");
  CHECK(client.trust_add("huaniao", "not-a-key").error().code == Errc::malformed);
  auto revoked = client.trust_revoke("huaniao");
  REQUIRE(revoked.has_value());
  CHECK(revoked->seq == 2);
  CHECK(client.trust_revoke("nobody").error().code == Errc::not_found);
  auto requests = fake.requests();
  REQUIRE(requests.size() == 5);  // the bad key was never sent
  CHECK(requests[0] ==
        json{{"cmd", "trust_add"}, {"name", "huaniao"}, {"key", std::string(64, 'b')}});
  CHECK(requests[1] == json{{"cmd", "trust_add"},
                            {"name", "township"},
                            {"key", key_a},
                            {"role", "relay"},
                            {"read", {"station/*"}},
                            {"write", json::array()}});
  CHECK(requests[3] == json{{"cmd", "trust_revoke"}, {"who", "huaniao"}});
}

TEST_CASE("IPC error codes map to Errc") {
  CHECK(errc_for_ipc_code("bad_request") == Errc::malformed);
  CHECK(errc_for_ipc_code("forbidden") == Errc::unauthorized);
  CHECK(errc_for_ipc_code("storage_full") == Errc::disk_full);
  CHECK(errc_for_ipc_code("anything else") == Errc::io);
}

}  // namespace
}  // namespace ferry::client
