// The merge through the IPC on a real ferryd (docs/ipc.md: get, conflicts, the status digest, the
// submit body rules): records merged from set, inc, add and del submits; deps by default and as
// given; errors for bad and unknown keys; a status digest that `ferryctl rebuild` reproduces
// offline. Replication is not there yet, so the ops of a second origin (a hub) are ingested into
// the stopped node's store directly, through storage::OpStore, to make true concurrency.
#include <catch2/catch.hpp>
#include <memory>
#include <regex>

#include "protocol/hex.h"
#include "protocol/node_key.h"
#include "protocol/op.h"
#include "storage/op_store.h"
#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

const std::vector<std::string> record_keys = sorted(
    {"channel", "key", "fields", "counters", "sets", "heads", "conflicts", "ops", "updated_hlc"});

Value get_request(const std::string& key) { return Value::map({{"cmd", "get"}, {"key", key}}); }

Value get_request(const std::string& key, const std::string& channel) {
  return get_request(key).set("channel", channel);
}

Value update(const std::string& key, Value body) {
  return submit_request("case.update", key, std::move(body));
}

// The record of a successful get, its shape checked.
Value record_of(IpcClient& client, const Value& request) {
  Value r = client.call(request);
  INFO("get: " << r);
  REQUIRE(r["ok"].boolean());
  REQUIRE(r.keys() == sorted({"ok", "record"}));
  REQUIRE(r["record"].keys() == record_keys);
  return r["record"];
}

void check_error(const Value& reply, const std::string& code, const std::string& mentions) {
  INFO("reply: " << reply);
  REQUIRE(reply.keys() == sorted({"ok", "error"}));
  CHECK_FALSE(reply["ok"].boolean());
  CHECK(reply["error"]["code"].str() == code);
  CHECK_THAT(reply["error"]["message"].str(), Catch::Contains(mentions));
}

std::vector<std::string> deps_of(IpcClient& client, const Value& submitted) {
  Value op = client.call(op_request(submitted["id"].str()))["op"];
  std::vector<std::string> deps;
  for (const Value& dep : op["deps"].items()) deps.push_back(dep.str());
  return deps;
}

// The value printed after `label` on a line of ferryctl's text output.
std::string line_value(const std::string& out, const std::string& label) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("(^|\n)" + label + " +([^\n]*)"))) return {};
  return m[2];
}

// Ops written by another origin (a hub editing the station's records), stored into the node's
// data directory while ferryd is stopped, as replication will store them.
class Hub {
 public:
  // The next op of the hub's feed in `channel`, signed.
  SignedOp op(const std::string& channel, const std::string& key, const Value& body,
              std::uint64_t hlc, std::vector<OpId> deps) {
    FeedHead& head = heads_[channel];
    OpDraft draft;
    draft.channel = channel;
    draft.kind = "case.update";
    draft.key = key;
    draft.deps = std::move(deps);
    draft.author = "hub-desk";
    draft.body = body.pack();
    auto built = Op::build(key_.public_key(), head.seq + 1, head.id, hlc, draft);
    if (!built) throw HarnessError("hub op: " + built.error().detail);
    head = FeedHead{head.seq + 1, built->id()};
    return sign_op(std::move(*built), key_);
  }

  // Ingests the ops into the stopped node's store; every one must be stored.
  static void ingest(const TestNode& node, const std::vector<SignedOp>& ops) {
    SystemWallClock wall;
    auto store = storage::OpStore::open(node.data_dir(), wall);
    if (!store) throw HarnessError("open the store: " + store.error().detail);
    auto report = (*store)->ingest(ops);
    if (!report) throw HarnessError("ingest: " + report.error().detail);
    if (report->stored != ops.size()) {
      throw HarnessError("ingest stored " + std::to_string(report->stored) + " of " +
                         std::to_string(ops.size()) + " ops");
    }
  }

  std::string id_hex() const { return key_.public_key_hex(); }

 private:
  struct FeedHead {
    std::uint64_t seq = 0;
    OpId id{};
  };
  NodeKey key_ = NodeKey::generate();
  std::map<std::string, FeedHead> heads_;
};

}  // namespace

TEST_CASE("get returns the record merged from set, inc, add and del submits") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  Value s1 = node.submit_ok(
      client,
      update("HN-2026-0001",
             Value::map({{"set", Value::map({{"status", "filed"}, {"applicant", "陈晓玲"}})},
                         {"inc", Value::map({{"volunteer_hours", 3}})},
                         {"add", Value::map({{"documents",
                                              Value::array({"id-card", "household-book"})}})}})));
  Value s2 = node.submit_ok(
      client,
      update("HN-2026-0001",
             Value::map({{"set", Value::map({{"status", "approved"}})},
                         {"inc", Value::map({{"volunteer_hours", -1}})},
                         {"del", Value::map({{"documents", Value::array({"household-book"})}})},
                         {"add", Value::map({{"stamps", Value::array({1, 2})}})}})));
  Value s3 = node.submit_ok(
      client, update("HN-2026-0001", Value::map({{"inc", Value::map({{"volunteer_hours", 10}})},
                                                 {"note", "counted at the Huaniao station"}})));
  // Without deps each op names the record's heads: the op before it.
  CHECK(deps_of(client, s1).empty());
  CHECK(deps_of(client, s2) == std::vector<std::string>{s1["id"].str()});
  CHECK(deps_of(client, s3) == std::vector<std::string>{s2["id"].str()});

  Value record = record_of(client, get_request("HN-2026-0001"));
  INFO("record: " << record);
  CHECK(record["channel"].str() == node.default_channel());
  CHECK(record["key"].str() == "HN-2026-0001");
  CHECK(record["fields"] == Value::map({{"applicant", "陈晓玲"}, {"status", "approved"}}));
  CHECK(record["counters"] == Value::map({{"volunteer_hours", 12}}));
  CHECK(record["sets"] ==
        Value::map({{"documents", Value::array({"id-card"})}, {"stamps", Value::array({1, 2})}}));
  CHECK(record["heads"] == Value::array({s3["id"]}));
  CHECK(record["conflicts"] == Value::array({}));
  CHECK(record["ops"].u64() == 3);
  CHECK(record["updated_hlc"] == s3["hlc"]);

  // A counter may go below zero; floats keep their width.
  node.submit_ok(client,
                 update("HN-2026-0001", Value::map({{"inc", Value::map({{"volunteer_hours", -20}})},
                                                    {"set", Value::map({{"fee", 2.0}})}})));
  Value later = record_of(client, get_request("HN-2026-0001"));
  CHECK(later["counters"]["volunteer_hours"] == Value(-8));
  CHECK(later["fields"]["fee"] == Value(2.0));
  CHECK(later["ops"].u64() == 4);
}

TEST_CASE("explicit deps are used as given, and an origin's own earlier op is never concurrent") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  Value first = node.submit_ok(
      client, update("HH-0042", Value::map({{"set", Value::map({{"label", "Chen household"}})}})));
  Value second = update("HH-0042", Value::map({{"set", Value::map({{"label", "Chen family"}})}}));
  second.set("deps", Value::array({}));
  Value s2 = node.submit_ok(client, second);
  CHECK(deps_of(client, s2).empty());

  Value record = record_of(client, get_request("HH-0042"));
  INFO("record: " << record);
  CHECK(record["fields"] == Value::map({{"label", "Chen family"}}));
  CHECK(record["conflicts"] == Value::array({}));
  CHECK(record["heads"] == Value::array({s2["id"]}));
  CHECK(record["ops"].u64() == 2);

  // Deps naming the record's head explicitly: the same history.
  Value third = update("HH-0042", Value::map({{"set", Value::map({{"label", "Chen family 陈"}})}}));
  third.set("deps", Value::array({s2["id"]}));
  Value s3 = node.submit_ok(client, third);
  CHECK(deps_of(client, s3) == std::vector<std::string>{s2["id"].str()});
  Value after = record_of(client, get_request("HH-0042"));
  CHECK(after["fields"]["label"].str() == "Chen family 陈");
  CHECK(after["conflicts"] == Value::array({}));
  CHECK(after["heads"] == Value::array({s3["id"]}));
  CHECK(client.call(Value::map({{"cmd", "conflicts"}})) ==
        Value::map({{"ok", true}, {"conflicts", Value::array({})}}));
}

TEST_CASE("get picks the record by channel; unknown keys are not_found, bad keys bad_request") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  node.submit_ok(client, update("P-77", Value::map({{"set", Value::map({{"desk", "station"}})}})));
  Value in_permits = update("P-77", Value::map({{"set", Value::map({{"desk", "permits"}})}}));
  in_permits.set("channel", "desk/permits");
  Value s2 = node.submit_ok(client, in_permits);

  Value own = record_of(client, get_request("P-77"));
  CHECK(own["channel"].str() == node.default_channel());
  CHECK(own["fields"]["desk"].str() == "station");
  CHECK(own["ops"].u64() == 1);
  Value named = record_of(client, get_request("P-77", node.default_channel()));
  CHECK(named == own);
  Value permits = record_of(client, get_request("P-77", "desk/permits"));
  CHECK(permits["channel"].str() == "desk/permits");
  CHECK(permits["fields"]["desk"].str() == "permits");
  CHECK(permits["heads"] == Value::array({s2["id"]}));

  check_error(client.call(get_request("P-78")), "not_found", "P-78");
  check_error(client.call(get_request("P-77", "desk/none")), "not_found", "P-77");
  check_error(client.call(Value::map({{"cmd", "get"}, {"key", 77}})), "bad_request", "key");
  check_error(client.call(get_request("")), "bad_request", "key");
  check_error(client.call(get_request(std::string(257, 'k'))), "bad_request", "key");
  check_error(client.call(Value::map({{"cmd", "get"}})), "bad_request", "key");
  check_error(client.call(get_request("P-77", "").set("channel", Value::array({}))), "bad_request",
              "channel");
  check_error(client.call(get_request("P-77").set("fields", Value::array({"desk"}))), "bad_request",
              "fields");
  Value status = client.call(status_request());
  INFO("status: " << status);
  CHECK(status["ipc"]["errors"]["not_found"].u64() == 2);
  CHECK(status["ipc"]["errors"]["bad_request"].u64() == 6);
}

TEST_CASE("conflicts answers an empty list in its documented shape and checks its limit") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  node.submit_ok(client, update("HN-1", Value::map({{"set", Value::map({{"a", 1}})}})));
  Value r = client.call(Value::map({{"cmd", "conflicts"}}));
  INFO(r);
  CHECK(r == Value::map({{"ok", true}, {"conflicts", Value::array({})}}));
  Value limited = client.call(Value::map({{"cmd", "conflicts"}, {"limit", 1000}}));
  CHECK(limited == Value::map({{"ok", true}, {"conflicts", Value::array({})}}));
  check_error(client.call(Value::map({{"cmd", "conflicts"}, {"limit", 0}})), "bad_request",
              "limit");
  check_error(client.call(Value::map({{"cmd", "conflicts"}, {"limit", 1001}})), "bad_request",
              "limit");
  check_error(client.call(Value::map({{"cmd", "conflicts"}, {"limit", "10"}})), "bad_request",
              "limit");
  check_error(client.call(Value::map({{"cmd", "conflicts"}, {"key", "HN-1"}})), "bad_request",
              "key");
}

TEST_CASE("a submit whose merge parts the merge would not read is refused and stores nothing") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  Value before = client.call(status_request());
  struct Bad {
    Value body;
    std::string mentions;
  };
  const std::vector<Bad> bad = {
      {Value::map({{"inc", Value::map({{"n", "x"}})}}), "inc: field 'n'"},
      {Value::map({{"inc", Value::map({{"n", 1.5}})}}), "inc: field 'n'"},
      {Value::map({{"set", "status=approved"}}), "set"},
      {Value::map({{"add", Value::map({{"documents", "id-card"}})}}), "add: field 'documents'"},
      {Value::map({{"del", Value::array({"id-card"})}}), "del"},
      {Value::map(
           {{"set", Value::map({{"ok", true}})}, {"inc", Value::map({{"n", Value::nil()}})}}),
       "inc: field 'n'"},
  };
  for (const Bad& b : bad) {
    Value r = client.call(update("HN-BAD", b.body));
    check_error(r, "bad_request", b.mentions);
    CHECK_THAT(r["error"]["message"].str(), Catch::StartsWith("body: "));
  }
  Value after = client.call(status_request());
  INFO("before: " << before << "\nafter: " << after);
  CHECK(after["ops"].u64() == 0);
  CHECK(after["digest"] == before["digest"]);
  CHECK(after["ipc"]["errors"]["bad_request"].u64() == bad.size());
  check_error(client.call(get_request("HN-BAD")), "not_found", "HN-BAD");
}

TEST_CASE("the status digest follows the records, and ferryctl rebuild reaches the same one") {
  REQUIRE_FALSE(ferryctl_path().empty());  // this test needs ferryctl (ctl/)
  TestNode node;
  node.start();
  IpcClient client = node.client();
  Value empty = client.call(status_request());
  INFO("empty: " << empty);
  CHECK(is_id(empty["digest"]));
  CHECK(empty["digest_current"] == Value(true));
  CHECK(empty["channels"] == Value::map({}));
  CHECK(empty["pending"].u64() == 0);

  node.submit_ok(client, update("HN-1", Value::map({{"set", Value::map({{"status", "filed"}})}})));
  Value one = client.call(status_request());
  INFO("one: " << one);
  CHECK(one["digest"] != empty["digest"]);
  CHECK(one["digest_current"] == Value(true));  // a pass over one record is always redone
  REQUIRE(one["channels"].keys() == std::vector<std::string>{node.default_channel()});
  CHECK(is_id(one["channels"][node.default_channel()]));

  Value permit = update("P-1", Value::map({{"add", Value::map({{"stamps", Value::array({7})}})}}));
  permit.set("channel", "desk/permits");
  node.submit_ok(client, permit);
  Value two = client.call(status_request());
  INFO("two: " << two);
  CHECK(two["digest"] != one["digest"]);
  CHECK(two["channels"].keys() == sorted({node.default_channel(), "desk/permits"}));
  // A channel's digest depends on its own records only.
  CHECK(two["channels"][node.default_channel()] == one["channels"][node.default_channel()]);
  // A data-only op changes the record (its heads and op count), so the digest too.
  node.submit_ok(client, update("HN-1", Value::map({{"note", "called the applicant"}})));
  Value three = client.call(status_request());
  CHECK(three["digest"] != two["digest"]);
  CHECK(three["channels"]["desk/permits"] == two["channels"]["desk/permits"]);

  ProcessResult refused = run_process({ferryctl_path(), "-c", node.config_path(), "rebuild"});
  INFO("rebuild beside ferryd: " << refused.out << refused.err);
  CHECK(refused.status.text() == "exit code 1");
  CHECK_THAT(refused.err, Catch::Contains("stop ferryd first"));

  CHECK(node.stop().text() == "exit code 0");
  ProcessResult rebuilt = run_process({ferryctl_path(), "-c", node.config_path(), "rebuild"});
  INFO("rebuild: " << rebuilt.out << rebuilt.err);
  CHECK(rebuilt.status.text() == "exit code 0");
  CHECK(line_value(rebuilt.out, "before") == three["digest"].str());
  CHECK(line_value(rebuilt.out, "after") == three["digest"].str());
  CHECK(line_value(rebuilt.out, "ops") == "3 folded into 2 records, 0 pending (waiting for deps)");
  CHECK_THAT(rebuilt.out, Catch::Contains("ok: "));

  node.start();
  Value restarted = node.status();
  INFO("restarted: " << restarted);
  CHECK(restarted["digest"] == three["digest"]);
  CHECK(restarted["channels"] == three["channels"]);
}

TEST_CASE("concurrent writes from another origin show as a conflict until a covering write") {
  REQUIRE_FALSE(ferryctl_path().empty());  // this test prints the conflict with ferryctl too
  TestNode node;
  node.start();
  IpcClient first = node.client();
  Value station = update(
      "HH-0042",
      Value::map({{"set", Value::map({{"label", "Chen household"}, {"island", "Huaniao"}})}}));
  station.set("author", "agent-7");
  Value s1 = node.submit_ok(first, station);
  CHECK(node.stop().text() == "exit code 0");

  // The hub edits the label without having seen the station's op, a little later by its clock;
  // one more hub op waits for an op nobody holds.
  Hub hub;
  const std::string channel = node.default_channel();
  SignedOp h1 = hub.op(channel, "HH-0042",
                       Value::map({{"set", Value::map({{"label", "Chen family"}})},
                                   {"inc", Value::map({{"visits", 1}})}}),
                       s1["hlc"].u64() + (1 << 16), {});
  OpId h1_id = h1.op.id();
  OpId unknown{};
  unknown.fill(0x5a);
  SignedOp h2 = hub.op(channel, "HH-0099", Value::map({{"set", Value::map({{"a", 1}})}}),
                       s1["hlc"].u64() + (2 << 16), {unknown});
  Hub::ingest(node, {h1, std::move(h2)});
  node.start();
  IpcClient client = node.client();

  Value record = record_of(client, get_request("HH-0042"));
  INFO("record: " << record);
  CHECK(record["fields"] == Value::map({{"island", "Huaniao"}, {"label", "Chen family"}}));
  CHECK(record["counters"] == Value::map({{"visits", 1}}));
  CHECK(sorted({record["heads"][0].str(), record["heads"][1].str()}) ==
        sorted({s1["id"].str(), to_hex(h1_id)}));
  CHECK(record["ops"].u64() == 2);
  REQUIRE(record["conflicts"].size() == 1);
  const Value& conflict = record["conflicts"][0];
  CHECK(conflict.keys() == sorted({"field", "values"}));
  CHECK(conflict["field"].str() == "label");
  REQUIRE(conflict["values"].size() == 2);
  const Value& winner = conflict["values"][0];
  CHECK(winner.keys() == sorted({"value", "id", "origin", "author", "hlc"}));
  CHECK(winner == Value::map({{"value", "Chen family"},
                              {"id", to_hex(h1_id)},
                              {"origin", hub.id_hex()},
                              {"author", "hub-desk"},
                              {"hlc", s1["hlc"].u64() + (1 << 16)}}));
  CHECK(conflict["values"][1] == Value::map({{"value", "Chen household"},
                                             {"id", s1["id"]},
                                             {"origin", node.node_id()},
                                             {"author", "agent-7"},
                                             {"hlc", s1["hlc"]}}));
  Value listed = client.call(Value::map({{"cmd", "conflicts"}}));
  CHECK(listed ==
        Value::map(
            {{"ok", true},
             {"conflicts", Value::array({Value::map({{"channel", channel},
                                                     {"key", "HH-0042"},
                                                     {"fields", Value::array({"label"})}})})}}));
  Value status = client.call(status_request());
  CHECK(status["pending"].u64() == 1);
  check_error(client.call(get_request("HH-0099")), "not_found", "HH-0099");

  ProcessResult shown = run_process({ferryctl_path(), "-c", node.config_path(), "get", "HH-0042"});
  INFO("ferryctl get: " << shown.out << shown.err);
  CHECK(shown.status.text() == "exit code 0");
  CHECK_THAT(shown.out, Catch::Contains("label: 2 concurrent values, the first wins"));
  CHECK_THAT(shown.out, Catch::Contains("\"Chen household\"  ("));
  ProcessResult listed_text = run_process({ferryctl_path(), "-c", node.config_path(), "conflicts"});
  CHECK(listed_text.out == channel + "  HH-0042  label\n");

  // A write whose deps default to both heads resolves the conflict.
  Value s2 = node.submit_ok(
      client, update("HH-0042", Value::map({{"set", Value::map({{"label", "Chen family 陈"}})}})));
  CHECK(sorted(deps_of(client, s2)) == sorted({s1["id"].str(), to_hex(h1_id)}));
  Value resolved = record_of(client, get_request("HH-0042"));
  INFO("resolved: " << resolved);
  CHECK(resolved["fields"]["label"].str() == "Chen family 陈");
  CHECK(resolved["conflicts"] == Value::array({}));
  CHECK(resolved["heads"] == Value::array({s2["id"]}));
  CHECK(client.call(Value::map({{"cmd", "conflicts"}})) ==
        Value::map({{"ok", true}, {"conflicts", Value::array({})}}));
  ProcessResult none = run_process({ferryctl_path(), "-c", node.config_path(), "conflicts"});
  CHECK(none.out == "no conflicts\n");

  Value digest = client.call(status_request())["digest"];
  CHECK(node.stop().text() == "exit code 0");
  ProcessResult rebuilt =
      run_process({ferryctl_path(), "-c", node.config_path(), "rebuild", "--json"});
  INFO("rebuild: " << rebuilt.out << rebuilt.err);
  CHECK(rebuilt.status.text() == "exit code 0");
  CHECK_THAT(rebuilt.out, Catch::Contains("\"after\": \"" + digest.str() + "\""));
  CHECK_THAT(rebuilt.out, Catch::Contains("\"pending\": 1"));
}

}  // namespace ferry::it
