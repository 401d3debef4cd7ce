// The IPC contract end to end on a real ferryd: every field of every reply of submit, op, track,
// pull and status, checked exactly against docs/ipc.md.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

std::uint64_t wall_ms() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<std::string> op_keys =
    sorted({"id", "origin", "channel", "seq", "prev", "hlc", "kind", "key", "deps", "author",
            "body", "arrival", "stored_at"});

Value application_body() {
  return Value::map({
      {"service", "household-registration"},
      {"applicant", "陈晓玲"},
      {"fee_cents", 1200},
      {"balance", -35},
      {"urgent", false},
      {"ratio", 0.25},
      {"note", Value::nil()},
      {"photo", Value::bin({0x00, 0xff, 0x10, 0x80})},
      {"documents", Value::array({"id-card", "household-book", Value::array({1, 2, 3})})},
      {"address", Value::map({{"island", "Huaniao"}, {"lot", 17}, {"empty", Value::map({})}})},
  });
}

// Checks one submit reply's exact shape; returns it.
const Value& check_submitted(const Value& r, std::uint64_t seq, const std::string& channel) {
  INFO(r);
  REQUIRE(r["ok"].boolean());
  CHECK(r.keys() == sorted({"ok", "id", "seq", "hlc", "channel"}));
  CHECK(is_id(r["id"]));
  CHECK(r["seq"].u64() == seq);
  CHECK(r["hlc"].u64() > 0);
  CHECK(r["channel"].str() == channel);
  return r;
}

}  // namespace

// A node that has stored three ops through submit (two in its default channel, one in another),
// with every field of the submit replies checked.
class RoundTrip {
 public:
  RoundTrip() {
    node.start();
    submit_three();
  }

 protected:
  void submit_three();

  TestNode node;
  IpcClient client{node.endpoint()};
  Value status0;
  Value s1;
  Value s2;
  Value s3;
  std::string dep1 = std::string(64, 'a');
  std::string dep2 = "0123456789ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef";
  std::string dep2_lower = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
  std::uint64_t before_ms = 0;
  std::uint64_t after_ms = 0;
};

void RoundTrip::submit_three() {
  status0 = client.call(status_request());
  INFO("status before: " << status0);
  REQUIRE(status0["ok"].boolean());
  CHECK(status0["node"]["name"].str() == "huaniao");
  CHECK(status0["node"]["id"].str() == node.node_id());
  CHECK(status0["node"]["role"].str() == "station");
  CHECK(status0["ops"].u64() == 0);
  CHECK(status0["feeds"].u64() == 0);
  CHECK(status0["last_arrival"].u64() == 0);

  before_ms = wall_ms();
  Value first = submit_request("case.submit", "HN-2026-0001", application_body());
  first.set("author", "agent-7 林");
  first.set("deps", Value::array({dep1, dep2}));
  s1 = client.call(first);
  check_submitted(s1, 1, "station/huaniao");
  s2 = client.call(submit_request("case.note", "HN-2026-0001", Value::map({{"n", 2}})));
  check_submitted(s2, 2, "station/huaniao");
  Value third = submit_request("permit.issue", "P-77", Value::map({{"x", "y"}}));
  third.set("channel", "desk/permits");
  s3 = client.call(third);
  check_submitted(s3, 1, "desk/permits");
  after_ms = wall_ms();
  CHECK(s1["id"].str() != s2["id"].str());
  CHECK(s1["hlc"].u64() < s2["hlc"].u64());
  CHECK(s2["hlc"].u64() < s3["hlc"].u64());
  // hlc: ms since the epoch << 16, plus a counter.
  CHECK((s1["hlc"].u64() >> 16) >= before_ms - 1000);
  CHECK((s1["hlc"].u64() >> 16) <= after_ms + 1000);
}

TEST_CASE_METHOD(RoundTrip, "op returns every field of an op exactly as submitted") {
  Value r = client.call(op_request(s1["id"].str()));
  INFO(r);
  REQUIRE(r["ok"].boolean());
  CHECK(r.keys() == sorted({"ok", "op"}));
  const Value& op = r["op"];
  CHECK(op.keys() == op_keys);
  CHECK(op["id"] == s1["id"]);
  CHECK(op["origin"].str() == node.node_id());
  CHECK(op["channel"].str() == "station/huaniao");
  CHECK(op["seq"].u64() == 1);
  CHECK(op["prev"].str() == zero_id);
  CHECK(op["hlc"] == s1["hlc"]);
  CHECK(op["kind"].str() == "case.submit");
  CHECK(op["key"].str() == "HN-2026-0001");
  CHECK(op["deps"] == Value::array({dep1, dep2_lower}));
  CHECK(op["author"].str() == "agent-7 林");
  CHECK(op["body"] == application_body());
  CHECK(op["body"].pack() == application_body().pack());
  CHECK(op["arrival"].u64() == 1);
  CHECK(op["stored_at"].u64() >= before_ms);
  CHECK(op["stored_at"].u64() <= after_ms);

  Value r2 = client.call(op_request(s2["id"].str()));
  INFO(r2);
  CHECK(r2["op"]["seq"].u64() == 2);
  CHECK(r2["op"]["prev"] == s1["id"]);
  CHECK(r2["op"]["author"].is_nil());
  CHECK(r2["op"]["deps"] == Value::array({}));
  CHECK(r2["op"]["arrival"].u64() == 2);

  // Ids are accepted in upper case too.
  std::string upper = s3["id"].str();
  std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
  Value r3 = client.call(op_request(upper));
  INFO(r3);
  CHECK(r3["op"]["id"] == s3["id"]);
  CHECK(r3["op"]["channel"].str() == "desk/permits");
  CHECK(r3["op"]["prev"].str() == zero_id);
}

TEST_CASE_METHOD(RoundTrip, "track says stored, at the time op reports") {
  Value op = client.call(op_request(s2["id"].str()))["op"];
  Value r = client.call(track_request(s2["id"].str()));
  INFO(r);
  REQUIRE(r["ok"].boolean());
  CHECK(r.keys() == sorted({"ok", "state", "stored_at"}));
  CHECK(r["state"].str() == "stored");
  CHECK(r["stored_at"] == op["stored_at"]);
}

TEST_CASE_METHOD(
    RoundTrip,
    "pull returns the ops in arrival order, filtered by channel, then nothing past next") {
  Value r = client.call(pull_request(0, 100));
  INFO(r);
  REQUIRE(r["ok"].boolean());
  CHECK(r.keys() == sorted({"ok", "ops", "next"}));
  REQUIRE(r["ops"].size() == 3);
  const Value* submitted[] = {&s1, &s2, &s3};
  for (std::size_t i = 0; i < 3; ++i) {
    const Value& op = r["ops"][i];
    CHECK(op.keys() == op_keys);
    CHECK(op["id"] == (*submitted[i])["id"]);
    CHECK(op["arrival"].u64() == i + 1);
    CHECK(op == client.call(op_request(op["id"].str()))["op"]);
  }
  CHECK(r["next"].u64() == 3);

  Value page = client.call(pull_request(1, 1));
  INFO(page);
  REQUIRE(page["ops"].size() == 1);
  CHECK(page["ops"][0]["id"] == s2["id"]);
  CHECK(page["next"].u64() == 2);

  Value empty = client.call(pull_request(3, 100));
  INFO(empty);
  CHECK(empty["ops"].size() == 0);
  CHECK(empty["next"].u64() == 3);

  Value default_limit = client.call(Value::map({{"cmd", "pull"}, {"after", 0}}));
  CHECK(default_limit["ops"].size() == 3);

  // An empty channel list means every channel; a cursor past the newest arrival stays put.
  Value every = pull_request(0, 100);
  every.set("channels", Value::array({}));
  CHECK(client.call(every)["ops"].size() == 3);
  Value one_channel = pull_request(0, 100);
  one_channel.set("channels", Value::array({"desk/permits"}));
  Value permits = client.call(one_channel);
  INFO(permits);
  REQUIRE(permits["ops"].size() == 1);
  CHECK(permits["ops"][0]["id"] == s3["id"]);
  CHECK(permits["next"].u64() == 3);
  Value beyond = client.call(pull_request(1000, 100));
  INFO(beyond);
  CHECK(beyond["ops"].size() == 0);
  CHECK(beyond["next"].u64() == 1000);
}

TEST_CASE_METHOD(RoundTrip, "status reports the node, its ops, feeds and request counters") {
  Value r = client.call(status_request());
  INFO(r);
  REQUIRE(r["ok"].boolean());
  CHECK(r.keys() == sorted({"ok", "node", "ops", "feeds", "last_arrival", "uptime_ms", "version",
                            "hlc", "digest", "channels", "digest_current", "pending", "ipc"}));
  CHECK(r["node"].keys() == sorted({"name", "id", "role"}));
  CHECK(r["ops"].u64() == 3);
  CHECK(r["feeds"].u64() == 2);
  CHECK(r["last_arrival"].u64() == 3);
  CHECK(r["hlc"].u64() >= s3["hlc"].u64());
  CHECK(r["uptime_ms"].u64() >= status0["uptime_ms"].u64());
  CHECK(r["version"].str() == "0.1.0");
  CHECK(is_id(r["digest"]));
  CHECK(r["digest"] != status0["digest"]);
  // s1 names deps this node does not hold, so it waits, and s2 (after it in the same record and
  // feed) waits for it: only P-77 is merged (merge_ipc_test.cpp checks how digests change).
  CHECK(r["pending"].u64() == 2);
  CHECK(r["channels"].keys() == std::vector<std::string>{"desk/permits"});
  CHECK(is_id(r["channels"]["desk/permits"]));
  const Value& ipc = r["ipc"];
  CHECK(ipc.keys() == sorted({"requests", "errors", "submit_queue", "pulls_waiting", "disconnects",
                              "unsent_replies"}));
  // status0, three submits and this status.
  CHECK(ipc["requests"].u64() == status0["ipc"]["requests"].u64() + 4);
  CHECK(ipc["errors"].keys() ==
        sorted({"bad_request", "unknown_command", "too_large", "not_found", "busy", "storage_full",
                "storage_error", "internal", "forbidden"}));
  for (const auto& [code, count] : ipc["errors"].fields()) {
    INFO(code);
    CHECK(count.u64() == 0);
  }
  CHECK(ipc["submit_queue"].u64() == 0);
  CHECK(ipc["pulls_waiting"].u64() == 0);
  CHECK(ipc["unsent_replies"].u64() == 0);
}

TEST_CASE_METHOD(RoundTrip, "ops survive a restart and the feed goes on from its head") {
  node.restart();
  IpcClient again = node.client();
  Value r = again.call(op_request(s1["id"].str()));
  INFO(r);
  CHECK(r["op"]["body"] == application_body());
  Value status = again.call(status_request());
  INFO(status);
  CHECK(status["ops"].u64() == 3);
  CHECK(status["last_arrival"].u64() == 3);
  CHECK(status["feeds"].u64() == 2);
  Value s4 = again.call(submit_request("case.note", "HN-2026-0001", Value::map({{"n", 4}})));
  check_submitted(s4, 3, "station/huaniao");
  CHECK(s4["hlc"].u64() > s3["hlc"].u64());
  CHECK(again.call(op_request(s4["id"].str()))["op"]["prev"] == s2["id"]);
}

TEST_CASE("an unknown id gets not_found from op and track, counted in status errors") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  node.submit_ok(client, submit_request("case.submit", "HN-1", Value::map({})));
  std::string unknown(64, 'e');
  for (const Value& request : {op_request(unknown), track_request(unknown)}) {
    Value r = client.call(request);
    INFO(r);
    REQUIRE_FALSE(r["ok"].boolean());
    CHECK(r.keys() == sorted({"ok", "error"}));
    CHECK(r["error"].keys() == sorted({"code", "message"}));
    CHECK(r["error"]["code"].str() == "not_found");
    CHECK_FALSE(r["error"]["message"].str().empty());
  }
  Value r = client.call(status_request());
  INFO(r);
  CHECK(r["ops"].u64() == 1);
  // docs/ipc.md: "errors" counts the error replies by code since start.
  CHECK(r["ipc"]["errors"]["not_found"].u64() == 2);
}

TEST_CASE("a body comes back exactly as submitted, floats with integral values included") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  // What a Python or JavaScript client sends for 2.0: a float64, not an int.
  Value body = Value::map({{"amount", 2.0},
                           {"zero", 0.0},
                           {"negative", -3.0},
                           {"half", 0.5},
                           {"single", Value::float32(1.0f)},
                           {"count", 2}});
  Value r = client.call(submit_request("fee.paid", "HN-9", body));
  INFO(r);
  REQUIRE(r["ok"].boolean());
  Value op = client.call(op_request(r["id"].str()));
  INFO(op);
  CHECK(op["op"]["body"] == body);
  CHECK(op["op"]["body"].pack() == body.pack());
  Value pulled = client.call(pull_request(0, 10));
  CHECK(pulled["ops"][0]["body"] == body);
}

}  // namespace ferry::it
