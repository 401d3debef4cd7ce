#include "ctl/commands.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "config/config.h"
#include "ctl/fake_daemon.h"
#include "protocol/hex.h"
#include "storage/data_dir_lock.h"
#include "storage/op_store.h"
#include "tests/support/test_support.h"

namespace ferry::ctl {
namespace {

using client::fake::error_reply;
using client::fake::FakeDaemon;
using client::fake::map_reply;
using nlohmann::json;
using namespace std::chrono_literals;

struct Ran {
  int code = -1;
  std::string out;
  std::string err;
};

// Runs ferryctl in this process with stdout and stderr captured.
Ran ferryctl(std::vector<std::string> args) {
  args.insert(args.begin(), "ferryctl");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::ostringstream out;
  std::ostringstream err;
  std::streambuf* old_out = std::cout.rdbuf(out.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(err.rdbuf());
  int code = run(static_cast<int>(argv.size()), argv.data());
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  return Ran{code, out.str(), err.str()};
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A node made by `ferryctl init` in a temp dir.
struct Node {
  ferry::test::TempDir dir;
  std::string config = dir.file("ferry.toml");
  std::string endpoint = "ipc://" + dir.file("ferryd.sock");

  Node() { REQUIRE(ferryctl({"init", "--dir", dir.str(), "--name", "huaniao"}).code == 0); }

  // Appends drafts with the node's own key, as ferryd would.
  void append(const std::vector<OpDraft>& drafts) {
    ferry::test::FakeWallClock wall;
    HybridClock clock(wall, 60s);
    auto key = NodeKey::load(dir.file("node.key"));
    REQUIRE(key);
    auto store = storage::OpStore::open(dir.str(), wall);
    REQUIRE(store);
    REQUIRE((*store)->append(*key, clock, drafts));
  }
};

json op_map(std::uint64_t arrival, const std::string& key) {
  return {{"id", std::string(63, 'a') + std::to_string(arrival % 10)},
          {"origin", std::string(64, 'b')},
          {"channel", "station/huaniao"},
          {"seq", arrival},
          {"prev", std::string(64, '0')},
          {"hlc", 1790000000000ULL << 16},
          {"kind", "case.submit"},
          {"key", key},
          {"deps", json::array()},
          {"author", nullptr},
          {"body", {{"photo", json::binary({0xca, 0xfe})}}},
          {"arrival", arrival},
          {"stored_at", 1790000000000ULL}};
}

TEST_CASE("submit --set values are JSON scalars when they parse as one, strings otherwise") {
  auto sets = body_from_sets({"n=12", "f=-1.5", "yes=true", "no=false", "none=null", "s=hello",
                              "zip=007", "empty=", "eq=a=b", "list=[1]", "name=陈晓玲"});
  REQUIRE(sets);
  REQUIRE(sets->size() == 1);  // the fields go to the merge's `set` part, nothing else
  auto body = &(*sets)["set"];
  CHECK((*body)["n"] == 12);
  CHECK((*body)["f"] == -1.5);
  CHECK((*body)["yes"] == true);
  CHECK((*body)["no"] == false);
  CHECK((*body)["none"].is_null());
  CHECK((*body)["s"] == "hello");
  CHECK((*body)["zip"] == "007");
  CHECK((*body)["empty"] == "");
  CHECK((*body)["eq"] == "a=b");
  CHECK((*body)["list"] == "[1]");
  CHECK((*body)["name"] == "陈晓玲");
  CHECK(body_from_sets({"novalue"}).error().code == Errc::malformed);
  CHECK(body_from_sets({"=1"}).error().code == Errc::malformed);
  CHECK(body_from_sets({"a=1", "a=2"}).error().code == Errc::malformed);
}

TEST_CASE("submit --body must be a JSON object") {
  CHECK(body_from_text(R"({"service": "hukou", "fee": 12})").has_value());
  CHECK(body_from_text("[1, 2]").error().code == Errc::malformed);
  CHECK(body_from_text("{nope").error().code == Errc::malformed);
}

TEST_CASE("times are shown as UTC with milliseconds") {
  CHECK(utc_text_ms(0) == "1970-01-01T00:00:00.000Z");
  CHECK(utc_text_ms(1'790'000'000'123) == "2026-09-21T14:13:20.123Z");
  CHECK(duration_text(999) == "0s");
  CHECK(duration_text(240'000) == "4m 0s");
  CHECK(duration_text(3'723'000) == "1h 2m 3s");
  CHECK(duration_text(183'845'000) == "2d 3h 4m 5s");
}

TEST_CASE("usage errors exit 2 and help exits 0") {
  CHECK(ferryctl({"--help"}).code == exit_ok);
  CHECK(ferryctl({}).code == exit_usage);
  CHECK(ferryctl({"--no-such-option"}).code == exit_usage);
  CHECK(ferryctl({"status", "--timeout", "0"}).code == exit_usage);
  CHECK(ferryctl({"submit", "--kind", "k", "--key", "x"}).code == exit_usage);  // no body
  CHECK(ferryctl({"init", "--dir", "/tmp/x", "--name", "n", "--role", "king"}).code == exit_usage);
}

const std::string hub_key = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const std::string peer_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

PublicKey key_of(const std::string& hex) {
  auto key = config::parse_public_key(hex);
  REQUIRE(key);
  return *key;
}

TEST_CASE("init --role hub makes the hub its own authority") {
  ferry::test::TempDir dir;
  auto ran = ferryctl({"init", "--dir", dir.str(), "--name", "dongji", "--role", "hub", "--listen",
                       "tcp://0.0.0.0:7470", "--json"});
  REQUIRE(ran.code == exit_ok);
  json printed = json::parse(ran.out);
  CHECK(printed["authority"] == printed["public_key"]);
  auto config = config::load_config(dir.file("ferry.toml"));
  REQUIRE(config);
  auto key = NodeKey::load(dir.file("node.key"));
  REQUIRE(key);
  REQUIRE(config->authority);
  CHECK(*config->authority == key->public_key());
  CHECK(config->listen_endpoint == "tcp://0.0.0.0:7470");
  CHECK(config->upstreams.empty());
  CHECK(config->node.role == config::Role::hub);
  auto text = ferryctl({"init", "--dir", dir.file("second"), "--name", "nanji", "--role", "hub"});
  REQUIRE(text.code == exit_ok);  // a hub with no peers yet still knows it is the authority
  CHECK(text.out.find("authority   ") != std::string::npos);
  CHECK(text.out.find(" (this node)\n") != std::string::npos);
}

TEST_CASE("init --role hub --authority takes the given key instead of its own") {
  ferry::test::TempDir dir;
  auto ran = ferryctl({"init", "--dir", dir.str(), "--name", "xiji", "--role", "hub", "--listen",
                       "tcp://0.0.0.0:7470", "--upstream", "tcp://10.0.0.1:7470", "--upstream-key",
                       hub_key, "--authority", hub_key});
  REQUIRE(ran.code == exit_ok);
  CHECK(ran.out.find("(this node)") == std::string::npos);
  auto config = config::load_config(dir.file("ferry.toml"));
  REQUIRE(config);
  CHECK(config->authority == key_of(hub_key));
  REQUIRE(config->upstreams.size() == 1);  // hub peering
  CHECK(config->upstreams[0].key == key_of(hub_key));
}

TEST_CASE("init of a station writes its upstreams, in order, and the authority") {
  ferry::test::TempDir dir;
  auto ran = ferryctl({"init", "--dir", dir.str(), "--name", "huaniao", "--upstream",
                       "tcp://10.0.0.1:7470", "--upstream", "ipc:///run/ferry/relay.sock",
                       "--upstream-key", hub_key, "--upstream-key", peer_key, "--authority",
                       hub_key, "--json"});
  REQUIRE(ran.code == exit_ok);
  CHECK(json::parse(ran.out)["authority"] == hub_key);
  auto config = config::load_config(dir.file("ferry.toml"));
  REQUIRE(config);
  CHECK(config->node.role == config::Role::station);
  CHECK(config->listen_endpoint.empty());
  REQUIRE(config->upstreams.size() == 2);
  CHECK(config->upstreams[0].endpoint == "tcp://10.0.0.1:7470");
  CHECK(config->upstreams[0].key == key_of(hub_key));
  CHECK(config->upstreams[1].endpoint == "ipc:///run/ferry/relay.sock");
  CHECK(config->upstreams[1].key == key_of(peer_key));
  CHECK(config->authority == key_of(hub_key));
}

TEST_CASE("init --monitor sets the monitor's address; off loopback it wants a token") {
  ferry::test::TempDir dir;
  auto ran = ferryctl(
      {"init", "--dir", dir.file("a"), "--name", "huaniao", "--monitor", "127.0.0.1:7481"});
  REQUIRE(ran.code == exit_ok);
  auto config = config::load_config(dir.file("a/ferry.toml"));
  REQUIRE(config);
  CHECK(config->monitor.host == "127.0.0.1");
  CHECK(config->monitor.port == 7481);
  auto defaulted = ferryctl({"init", "--dir", dir.file("b"), "--name", "shengshan"});
  REQUIRE(defaulted.code == exit_ok);
  config = config::load_config(dir.file("b/ferry.toml"));
  REQUIRE(config);
  CHECK(config->monitor.port == 7480);
  auto public_listen =
      ferryctl({"init", "--dir", dir.file("c"), "--name", "dongji", "--monitor", "0.0.0.0:7480"});
  CHECK(public_listen.code != exit_ok);
  CHECK(public_listen.err.find("token") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.file("c/ferry.toml")));
}

TEST_CASE("init without peer flags writes no authority for a station") {
  ferry::test::TempDir dir;
  auto ran = ferryctl({"init", "--dir", dir.str(), "--name", "huaniao", "--json"});
  REQUIRE(ran.code == exit_ok);
  CHECK(json::parse(ran.out)["authority"].is_null());
  auto config = config::load_config(dir.file("ferry.toml"));
  REQUIRE(config);
  CHECK_FALSE(config->authority);
  CHECK_FALSE(config->replicates());
}

TEST_CASE("init refuses bad peer flags with exit 2 and writes nothing") {
  ferry::test::TempDir dir;
  std::string node = dir.file("node");
  auto init = [&](std::vector<std::string> flags) {
    std::vector<std::string> args = {"init", "--dir", node, "--name", "huaniao"};
    args.insert(args.end(), flags.begin(), flags.end());
    return ferryctl(args);
  };
  std::string upper = hub_key;
  upper[0] = 'A';
  const std::vector<std::vector<std::string>> refused = {
      {"--upstream", "tcp://10.0.0.1:7470", "--authority", hub_key},  // no --upstream-key
      {"--upstream-key", peer_key, "--authority", hub_key},           // no --upstream
      {"--upstream", "tcp://a:1", "--upstream", "tcp://b:1", "--upstream-key", peer_key,
       "--authority", hub_key},
      {"--upstream", "tcp://a:1", "--upstream", "tcp://a:1", "--upstream-key", peer_key,
       "--upstream-key", hub_key, "--authority", hub_key},  // the same upstream twice
      {"--listen", "udp://0.0.0.0:7470", "--authority", hub_key},
      {"--listen", "tcp://0.0.0.0", "--authority", hub_key},
      {"--upstream", "tcp://a:70000", "--upstream-key", peer_key, "--authority", hub_key},
      {"--upstream", "tcp://a:1", "--upstream-key", peer_key.substr(1), "--authority", hub_key},
      {"--authority", upper},
      {"--authority", "nope"},
      {"--listen", "tcp://0.0.0.0:7470"},  // a station that replicates needs the authority
      {"--upstream", "tcp://a:1", "--upstream-key", peer_key, "--role", "relay"},
  };
  for (const auto& flags : refused) {
    auto ran = init(flags);
    std::string shown;
    for (const std::string& f : flags) shown += f + " ";
    INFO(shown);
    CHECK(ran.code == exit_usage);
    CHECK_FALSE(ran.err.empty());
    CHECK_FALSE(std::filesystem::exists(node));
  }
  auto mismatch = init({"--upstream", "tcp://a:1", "--authority", hub_key});
  CHECK(mismatch.err.find("--upstream and --upstream-key come in pairs") != std::string::npos);
  auto no_authority = init({"--listen", "tcp://0.0.0.0:7470"});
  CHECK(no_authority.err.find("--authority") != std::string::npos);
  auto bad_endpoint = init({"--listen", "udp://0.0.0.0:7470", "--authority", hub_key});
  CHECK(bad_endpoint.err.find("tcp://HOST:PORT or ipc://PATH") != std::string::npos);
}

TEST_CASE("verify passes a clean store and names the feed and seq of a damaged op") {
  Node node;
  node.append({ferry::test::draft("station/huaniao", "HN-1"),
               ferry::test::draft("station/huaniao", "HN-2"),
               ferry::test::draft("broadcast", "B")});
  auto clean = ferryctl({"-c", node.config, "verify"});
  CHECK(clean.code == exit_ok);
  CHECK(clean.out == "ok: 2 feeds, 3 ops verified\n");

  auto exported = ferryctl({"-c", node.config, "export"});
  REQUIRE(exported.code == exit_ok);
  auto lines = lines_of(exported.out);
  REQUIRE(lines.size() == 3);
  json second = json::parse(lines[1]);
  auto envelope = ferry::test::body_of({});  // any vector; replaced below
  envelope.resize(second["envelope"].get<std::string>().size() / 2);
  REQUIRE(hex_decode_into(second["envelope"].get<std::string>(), envelope));
  auto op = Op::decode(envelope);
  REQUIRE(op);
  CHECK(second["id"] == to_hex(op->id()));
  CHECK(second["seq"] == 2);
  CHECK(second["key"] == "HN-2");
  CHECK(second["body"] == json{{"status", "filed"}});
  CHECK(second["arrival"] == 2);
  CHECK(second["author"].is_null());

  {
    std::fstream db(node.dir.file("ferry.db"), std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(db)), std::istreambuf_iterator<char>());
    std::string needle(reinterpret_cast<const char*>(envelope.data()), envelope.size());
    auto at = bytes.find(needle);
    REQUIRE(at != std::string::npos);
    db.seekp(static_cast<std::streamoff>(at + needle.size() - 2));  // inside the body
    db.put('X');
  }
  auto damaged = ferryctl({"-c", node.config, "verify"});
  CHECK(damaged.code == exit_failure);
  auto origin = NodeKey::load(node.dir.file("node.key"))->public_key_hex();
  CHECK(damaged.out.find("feed " + origin.substr(0, 12) + "/station/huaniao seq 2: ") !=
        std::string::npos);
  auto as_json = ferryctl({"-c", node.config, "verify", "--json"});
  CHECK(as_json.code == exit_failure);
  CHECK(json::parse(as_json.out)["problems"][0]["seq"] == 2);
}

TEST_CASE("online commands print the daemon's replies") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json& request) {
    std::string cmd = request["cmd"];
    if (cmd == "status") {
      return map_reply(
          {{"ok", true},
           {"node", {{"name", "huaniao"}, {"id", std::string(64, 'b')}, {"role", "station"}}},
           {"ops", 5},
           {"feeds", 1},
           {"last_arrival", 5},
           {"uptime_ms", 3'723'000},
           {"version", "0.1.0"},
           {"digest", std::string(64, 'f')},
           {"channels", {{"station/huaniao", std::string(64, 'f')}}},
           {"digest_current", false},
           {"pending", 1},
           {"ipc", {{"requests", 9}, {"errors", {{"busy", 2}}}}}});
    }
    if (cmd == "submit") {
      return map_reply({{"ok", true},
                        {"id", std::string(64, 'c')},
                        {"seq", 6},
                        {"hlc", 1ULL << 16},
                        {"channel", "station/huaniao"}});
    }
    return map_reply(
        {{"ok", false}, {"error", {{"code", "not_found"}, {"message", "no such op"}}}});
  });
  auto status = ferryctl({"-c", node.config, "status"});
  CHECK(status.code == exit_ok);
  CHECK(status.out.find("huaniao (station)") != std::string::npos);
  CHECK(status.out.find("1h 2m 3s") != std::string::npos);
  CHECK(status.out.find("busy 2") != std::string::npos);
  CHECK(status.out.find("digest        " + std::string(64, 'f') +
                        " (1 channel, behind the newest ops)\n") != std::string::npos);
  CHECK(status.out.find("pending       1 ops waiting for their deps\n") != std::string::npos);
  CHECK(json::parse(ferryctl({"-c", node.config, "status", "--json"}).out)["ops"] == 5);

  auto submitted =
      ferryctl({"-c", node.config, "--json", "submit", "--kind", "case.submit", "--key", "HN-9",
                "--set", "fee=12", "--set", "who=陈晓玲", "--author", "agent-7"});
  CHECK(submitted.code == exit_ok);
  CHECK(json::parse(submitted.out)["seq"] == 6);
  json sent = fake.requests().back();
  CHECK(sent == json{{"cmd", "submit"},
                     {"kind", "case.submit"},
                     {"key", "HN-9"},
                     {"author", "agent-7"},
                     {"body", {{"set", {{"fee", 12}, {"who", "陈晓玲"}}}}}});

  auto missing = ferryctl({"-c", node.config, "op", std::string(64, 'e')});
  CHECK(missing.code == exit_failure);
  CHECK(missing.err == "ferryctl: not_found: no such op\n");
}

// A body that sets one field through the merge: {"set": {field: value}}.
std::vector<std::uint8_t> set_body(const std::string& field, const std::string& value) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pk.pack(std::string("set"));
  pk.pack_map(1);
  pk.pack(field);
  pk.pack(value);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

json conflicted_record() {
  return {{"channel", "station/huaniao"},
          {"key", "HH-42"},
          {"fields", {{"label", "Chen family"}, {"photo", json::binary({0xca, 0xfe})}}},
          {"counters", {{"visits", -2}}},
          {"sets", json::object()},
          {"heads", {std::string(64, 'a'), std::string(64, 'b')}},
          {"conflicts",
           {{{"field", "label"},
             {"values",
              {{{"value", "Chen family"},
                {"id", std::string(64, 'b')},
                {"origin", std::string(64, 'd')},
                {"author", "hub-desk"},
                {"hlc", 1790000000000ULL << 16}},
               {{"value", "Chen household"},
                {"id", std::string(64, 'a')},
                {"origin", std::string(64, 'e')},
                {"author", nullptr},
                {"hlc", 1789999999000ULL << 16}}}}}}},
          {"ops", 2},
          {"updated_hlc", 1790000000000ULL << 16}};
}

TEST_CASE("get prints the record's sections, and conflicts one line per record") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json& request) {
    if (request["cmd"] == "get" && request["key"] == "HH-42") {
      return map_reply({{"ok", true}, {"record", conflicted_record()}});
    }
    if (request["cmd"] == "get") {
      return map_reply(
          {{"ok", false}, {"error", {{"code", "not_found"}, {"message", "no record"}}}});
    }
    if (request.contains("limit")) return map_reply({{"ok", true}, {"conflicts", json::array()}});
    return map_reply(
        {{"ok", true},
         {"conflicts",
          {{{"channel", "station/huaniao"}, {"key", "HH-42"}, {"fields", {"label", "phone"}}}}}});
  });
  auto shown = ferryctl({"-c", node.config, "get", "HH-42", "--channel", "station/huaniao"});
  REQUIRE(shown.code == exit_ok);
  CHECK(shown.out ==
        "record    station/huaniao HH-42\n"
        "ops       2, updated 117309440000000000 (2026-09-21T14:13:20.000Z)\n"
        "heads     " +
            std::string(64, 'a') +
            "\n"
            "          " +
            std::string(64, 'b') +
            "\n"
            "fields    label = \"Chen family\"\n"
            "          photo = {\"bin\":\"cafe\"}\n"
            "counters  visits = -2\n"
            "sets      -\n"
            "conflicts label: 2 concurrent values, the first wins\n"
            "            \"Chen family\"  (2026-09-21T14:13:20.000Z, by hub-desk, op bbbbbbbbbbbb "
            "from "
            "dddddddddddd)\n"
            "            \"Chen household\"  (2026-09-21T14:13:19.000Z, op aaaaaaaaaaaa from "
            "eeeeeeeeeeee)\n");
  CHECK(fake.requests().back() ==
        json{{"cmd", "get"}, {"key", "HH-42"}, {"channel", "station/huaniao"}});
  auto as_json = ferryctl({"-c", node.config, "--json", "get", "HH-42"});
  REQUIRE(as_json.code == exit_ok);
  json printed = json::parse(as_json.out);
  CHECK(printed["conflicts"][0]["values"][1]["author"].is_null());
  CHECK(printed["fields"]["photo"] == json{{"bin", "cafe"}});
  CHECK(fake.requests().back() == json{{"cmd", "get"}, {"key", "HH-42"}});
  auto missing = ferryctl({"-c", node.config, "get", "HH-43"});
  CHECK(missing.code == exit_failure);
  CHECK(missing.err == "ferryctl: not_found: no record\n");
  CHECK(ferryctl({"-c", node.config, "get"}).code == exit_usage);

  auto listed = ferryctl({"-c", node.config, "conflicts"});
  REQUIRE(listed.code == exit_ok);
  CHECK(listed.out == "station/huaniao  HH-42  label, phone\n");
  CHECK(fake.requests().back() == json{{"cmd", "conflicts"}});
  auto none = ferryctl({"-c", node.config, "conflicts", "--limit", "3"});
  CHECK(none.out == "no conflicts\n");
  CHECK(fake.requests().back() == json{{"cmd", "conflicts"}, {"limit", 3}});
  CHECK(json::parse(ferryctl({"-c", node.config, "conflicts", "--json"}).out)[0]["key"] == "HH-42");
  CHECK(ferryctl({"-c", node.config, "conflicts", "--limit", "0"}).code == exit_usage);
  CHECK(ferryctl({"-c", node.config, "conflicts", "--limit", "1001"}).code == exit_usage);
}

TEST_CASE("rebuild recomputes the records offline and refuses while the directory is in use") {
  Node node;
  node.append({ferry::test::draft("station/huaniao", "HN-1", set_body("status", "filed")),
               ferry::test::draft("station/huaniao", "HN-1", set_body("status", "approved")),
               ferry::test::draft("broadcast", "B", set_body("notice", "ferry at 9"))});
  auto rebuilt = ferryctl({"-c", node.config, "rebuild"});
  INFO(rebuilt.out << rebuilt.err);
  REQUIRE(rebuilt.code == exit_ok);
  auto lines = lines_of(rebuilt.out);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0].starts_with("before    "));
  CHECK(lines[0].substr(10) == lines[1].substr(10));
  CHECK(lines[2] == "ops       3 folded into 2 records, 0 pending (waiting for deps)");
  CHECK(lines[3] == "ok: the records rebuilt from the ops match the incremental merge");

  auto as_json = ferryctl({"-c", node.config, "rebuild", "--json"});
  REQUIRE(as_json.code == exit_ok);
  json report = json::parse(as_json.out);
  CHECK(report["ok"] == true);
  CHECK(report["before"] == lines[0].substr(10));
  CHECK(report["after"] == report["before"]);
  CHECK(report["records"] == 2);
  CHECK(report["changed_channels"] == json::array());

  {
    auto lock = storage::DataDirLock::acquire(node.dir.str());  // as a running ferryd holds it
    REQUIRE(lock);
    auto refused = ferryctl({"-c", node.config, "rebuild"});
    CHECK(refused.code == exit_failure);
    CHECK(refused.err.find("is in use by another ferry process") != std::string::npos);
    CHECK(refused.err.find("stop ferryd first") != std::string::npos);
    CHECK(refused.out.empty());
  }

  Node empty;
  auto nothing = ferryctl({"-c", empty.config, "rebuild"});
  CHECK(nothing.code == exit_failure);
  CHECK(nothing.err.find("nothing to rebuild") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(empty.dir.file("ferry.db")));
}

TEST_CASE("log keeps the last N matching ops, newest last, and pull prints JSON lines") {
  Node node;
  const std::vector<std::string> keys = {"HN-1", "HN-2", "HN-1", "HN-3", "HN-1", "HN-2", "HN-1"};
  FakeDaemon fake(node.endpoint, [&keys](const json& request) {
    if (request["cmd"] == "status") return map_reply({{"ok", true}, {"last_arrival", keys.size()}});
    std::uint64_t after = request["after"];
    std::uint64_t limit = request.value("limit", 100);
    json ops = json::array();
    for (std::uint64_t a = after + 1;
         a <= keys.size() && ops.size() < std::min<std::uint64_t>(limit, 2); ++a) {
      ops.push_back(op_map(a, keys[a - 1]));
    }
    std::uint64_t next = ops.empty() ? after : ops.back()["arrival"].get<std::uint64_t>();
    return map_reply({{"ok", true}, {"ops", ops}, {"next", next}});
  });
  auto log = ferryctl({"-c", node.config, "log", "--key", "HN-1", "--limit", "3"});
  REQUIRE(log.code == exit_ok);
  auto lines = lines_of(log.out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0].starts_with(
      "3  2026-09-21T14:13:20.000Z  station/huaniao  #3  case.submit  HN-1  "));
  CHECK(lines[2].starts_with("7  "));
  auto log_json = json::parse(ferryctl({"-c", node.config, "log", "--json"}).out);
  REQUIRE(log_json.size() == 7);
  CHECK(log_json[6]["body"]["photo"] == json{{"bin", "cafe"}});

  auto pulled = ferryctl({"-c", node.config, "pull", "--after", "4"});
  REQUIRE(pulled.code == exit_ok);
  auto pulled_lines = lines_of(pulled.out);
  REQUIRE(pulled_lines.size() == 2);  // one page of the fake's two
  CHECK(json::parse(pulled_lines[0])["arrival"] == 5);
  CHECK(pulled.err == "next 6\n");
}

TEST_CASE("pull --follow keeps pulling until SIGTERM, then exits 0") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json& request) {
    std::uint64_t after = request["after"];
    if (after < 3)
      return map_reply({{"ok", true}, {"ops", {op_map(after + 1, "K")}}, {"next", after + 1}});
    std::this_thread::sleep_for(50ms);  // a waiting pull that times out empty
    return map_reply({{"ok", true}, {"ops", json::array()}, {"next", after}});
  });
  std::thread stopper([] {
    std::this_thread::sleep_for(500ms);
    ::kill(::getpid(), SIGTERM);
  });
  auto followed = ferryctl({"-c", node.config, "pull", "--follow"});
  stopper.join();
  CHECK(followed.code == exit_ok);
  CHECK(lines_of(followed.out).size() == 3);
  CHECK(followed.err == "next 3\n");
  CHECK(fake.requests().at(0)["wait_ms"] == 10000);
}

TEST_CASE("online commands without a daemon say it is not running and exit 1") {
  Node node;
  auto status = ferryctl({"-c", node.config, "status", "--timeout", "100"});
  CHECK(status.code == exit_failure);
  CHECK(status.err.find("ferryctl: ferryd is not running at " + node.endpoint) == 0);
  {
    zmq::context_t context;
    zmq::socket_t silent(context, zmq::socket_type::router);  // bound, but never answers
    silent.set(zmq::sockopt::linger, 0);
    silent.bind(node.endpoint);
    auto start = std::chrono::steady_clock::now();
    auto slow = ferryctl({"-c", node.config, "status", "--timeout", "100"});
    CHECK(std::chrono::steady_clock::now() - start < 2s);
    CHECK(slow.code == exit_failure);
    CHECK(slow.err ==
          "ferryctl: ferryd is not running at " + node.endpoint + " (no answer within 100 ms)\n");
  }
}

// ---- replication commands ----------------------------------------------------------------------

const std::string op_id(64, 'c');

json submitted_reply() {
  return {{"ok", true}, {"id", op_id}, {"seq", 3}, {"hlc", 1ULL << 16}, {"channel", "ferry/trust"}};
}

TEST_CASE("trust add sends the name, key, role and patterns given, and prints the op id") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json&) { return map_reply(submitted_reply()); });
  auto added = ferryctl({"-c", node.config, "trust", "add", "huaniao", peer_key});
  INFO(added.err);
  REQUIRE(added.code == exit_ok);
  CHECK(added.out == "id       " + op_id + "\ntrusted  huaniao as station, key d75a980182b10ab7\n");
  CHECK(fake.requests().back() ==
        json{{"cmd", "trust_add"}, {"name", "huaniao"}, {"key", peer_key}});

  auto relay = ferryctl({"-c", node.config, "trust", "add", "township", peer_key, "--role", "relay",
                         "--read", "station/*, broadcast", "--write", "", "--json"});
  INFO(relay.err);
  REQUIRE(relay.code == exit_ok);
  CHECK(json::parse(relay.out) ==
        json{{"id", op_id}, {"seq", 3}, {"hlc", 1ULL << 16}, {"channel", "ferry/trust"}});
  CHECK(fake.requests().back() == json{{"cmd", "trust_add"},
                                       {"name", "township"},
                                       {"key", peer_key},
                                       {"role", "relay"},
                                       {"read", {"station/*", "broadcast"}},
                                       {"write", json::array()}});
}

TEST_CASE("trust add and revoke refuse bad input with exit 2 and send nothing") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json&) { return map_reply(submitted_reply()); });
  std::string upper = peer_key;
  upper[0] = 'D';
  const std::vector<std::vector<std::string>> refused = {
      {"trust", "add", "no spaces", peer_key},
      {"trust", "add", std::string(65, 'n'), peer_key},
      {"trust", "add", "", peer_key},
      {"trust", "add", "huaniao", peer_key.substr(1)},
      {"trust", "add", "huaniao", upper},
      {"trust", "add", "huaniao", std::string(64, 'g')},
      {"trust", "add", "huaniao"},
      {"trust", "add", "huaniao", peer_key, "--role", "king"},
      {"trust", "add", "huaniao", peer_key, "--read", "station/*/x,a*b"},
      {"trust", "add", "huaniao", peer_key, "--read", "broadcast,,station/huaniao"},
      {"trust", "add", "huaniao", peer_key, "--write", "*station"},
      {"trust", "revoke", "no/slash"},
      {"trust", "revoke"},
      {"trust"},
      {"trust", "nope"},
  };
  for (auto args : refused) {
    std::string shown;
    for (const std::string& a : args) shown += a + " ";
    INFO(shown);
    args.insert(args.begin(), {"-c", node.config});
    auto ran = ferryctl(args);
    CHECK(ran.code == exit_usage);
    CHECK_FALSE(ran.err.empty());
    CHECK(ran.out.empty());
  }
  CHECK(fake.requests().empty());
  auto pattern = ferryctl({"-c", node.config, "trust", "add", "h", peer_key, "--read", "a*b"});
  CHECK(pattern.err.find("'*'") != std::string::npos);
  auto name = ferryctl({"-c", node.config, "trust", "add", "a b", peer_key});
  CHECK(name.err.find("A-Z a-z 0-9 . _ -") != std::string::npos);
}

TEST_CASE("trust add on a node that is not the authority says so and exits 1") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json& request) {
    if (request["cmd"] == "trust_revoke" && request["who"] == "nobody") {
      return error_reply("not_found", "no trusted node nobody");
    }
    return error_reply("forbidden", "trust is written on the authority's daemon only");
  });
  auto added = ferryctl({"-c", node.config, "trust", "add", "huaniao", peer_key});
  CHECK(added.code == exit_failure);
  CHECK(added.out.empty());
  CHECK(added.err.starts_with(
      "ferryctl: forbidden: trust is written on the authority's daemon only (this node is not "
      "the trust authority: "));
  auto revoked = ferryctl({"-c", node.config, "trust", "revoke", "huaniao"});
  CHECK(revoked.code == exit_failure);
  CHECK(revoked.err.find("not the trust authority") != std::string::npos);
  auto unknown = ferryctl({"-c", node.config, "trust", "revoke", "nobody"});
  CHECK(unknown.code == exit_failure);
  CHECK(unknown.err == "ferryctl: not_found: no trusted node nobody\n");
}

TEST_CASE("trust revoke sends a name or a key as it is and prints the op id") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json&) { return map_reply(submitted_reply()); });
  auto by_name = ferryctl({"-c", node.config, "trust", "revoke", "huaniao"});
  REQUIRE(by_name.code == exit_ok);
  CHECK(by_name.out == "id       " + op_id + "\nrevoked  huaniao\n");
  CHECK(fake.requests().back() == json{{"cmd", "trust_revoke"}, {"who", "huaniao"}});
  auto by_key = ferryctl({"-c", node.config, "--json", "trust", "revoke", peer_key});
  REQUIRE(by_key.code == exit_ok);
  CHECK(json::parse(by_key.out)["id"] == op_id);
  CHECK(fake.requests().back() == json{{"cmd", "trust_revoke"}, {"who", peer_key}});
}

json trust_list_reply() {
  return {{"ok", true},
          {"authority", hub_key},
          {"trust",
           {{{"name", "huaniao"},
             {"key", peer_key},
             {"role", "station"},
             {"read", {"station/huaniao", "broadcast", "ferry/trust"}},
             {"write", {"station/huaniao"}},
             {"revoked", false}}}}};
}

TEST_CASE("trust list prints the authority and a table, --json the list and the authority") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json&) { return map_reply(trust_list_reply()); });
  auto listed = ferryctl({"-c", node.config, "trust", "list"});
  REQUIRE(listed.code == exit_ok);
  CHECK(listed.out ==
        "authority  " + hub_key +
            "\n"
            "NAME     ROLE     FINGERPRINT       REVOKED  READ             WRITE\n"
            "huaniao  station  d75a980182b10ab7  no       station/huaniao  station/huaniao\n"
            "                                             broadcast\n"
            "                                             ferry/trust\n");
  CHECK(fake.requests().back() == json{{"cmd", "trust_list"}});
  auto as_json = ferryctl({"-c", node.config, "trust", "list", "--json"});
  REQUIRE(as_json.code == exit_ok);
  json expected = trust_list_reply();
  expected.erase("ok");
  CHECK(json::parse(as_json.out) == expected);
}

json peers_reply() {
  return {{"ok", true},
          {"peers",
           {{{"name", "hub"},
             {"key", hub_key},
             {"upstream", true},
             {"endpoint", "tcp://10.0.0.1:7470"},
             {"connected", false},
             {"last_seen", 1'790'000'000'000ULL},
             {"backlog", 12},
             {"ops_sent", 1204},
             {"ops_received", 3},
             {"last_error", "resync requested"}},
            {{"name", "huaniao"},
             {"key", peer_key},
             {"upstream", false},
             {"endpoint", ""},
             {"connected", true},
             {"last_seen", 0},
             {"backlog", 0},
             {"ops_sent", 0},
             {"ops_received", 0},
             {"last_error", ""}}}}};
}

TEST_CASE("peers prints a row per peer with when it was last seen, --json the peers") {
  Node node;
  std::atomic<bool> none{false};  // read on the fake's thread
  FakeDaemon fake(node.endpoint, [&none](const json&) {
    return none ? map_reply({{"ok", true}, {"peers", json::array()}}) : map_reply(peers_reply());
  });
  auto shown = ferryctl({"-c", node.config, "peers"});
  REQUIRE(shown.code == exit_ok);
  auto lines = lines_of(shown.out);
  REQUIRE(lines.size() == 6);
  CHECK(lines[0] ==
        "NAME          FINGERPRINT       DIRECTION   CONN  BACKLOG  OPS SENT  OPS RECV");
  CHECK(lines[1] ==
        "hub           3b6a27bcceb6a42d  upstream    no         12      1204         3");
  CHECK(lines[2].starts_with("              last seen 2026-09-21T14:13:20.000Z ("));
  CHECK(lines[2].ends_with(")"));
  CHECK(lines[3] == "              last error: resync requested");
  CHECK(lines[4] ==
        "huaniao       d75a980182b10ab7  downstream  yes         0         0         0");
  CHECK(lines[5] == "              last seen never");
  CHECK(fake.requests().back() == json{{"cmd", "peers"}});
  auto as_json = ferryctl({"-c", node.config, "--json", "peers"});
  REQUIRE(as_json.code == exit_ok);
  CHECK(json::parse(as_json.out) == peers_reply()["peers"]);
  none = true;
  auto empty = ferryctl({"-c", node.config, "peers"});
  CHECK(empty.out == "no peers: this node has no [[upstream]] and no peer has connected to it\n");
}

TEST_CASE("sync says which upstreams ferryd reconnects, and a node without one exits 1") {
  Node node;
  std::atomic<bool> has_upstream{true};  // read on the fake's thread
  FakeDaemon fake(node.endpoint, [&has_upstream](const json& request) {
    if (request["cmd"] == "peers") return map_reply(peers_reply());
    if (!has_upstream) return error_reply("bad_request", "this node has no upstream to sync with");
    return map_reply({{"ok", true}});
  });
  auto synced = ferryctl({"-c", node.config, "sync"});
  REQUIRE(synced.code == exit_ok);
  CHECK(synced.out ==
        "ferryd dropped its upstream sessions and is reconnecting now:\n"
        "  hub  3b6a27bcceb6a42d  tcp://10.0.0.1:7470\n"
        "ferryctl peers shows when they are connected\n");
  auto requests = fake.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0] == json{{"cmd", "sync"}});
  auto as_json = ferryctl({"-c", node.config, "sync", "--json"});
  REQUIRE(as_json.code == exit_ok);
  json printed = json::parse(as_json.out);
  REQUIRE(printed["reconnecting"].size() == 1);
  CHECK(printed["reconnecting"][0]["name"] == "hub");
  has_upstream = false;
  auto refused = ferryctl({"-c", node.config, "sync"});
  CHECK(refused.code == exit_failure);
  CHECK(refused.out.empty());
  CHECK(refused.err == "ferryctl: bad_request: this node has no upstream to sync with\n");
}

TEST_CASE("track shows forwarded and delivered as sentences, --json the reply") {
  Node node;
  const std::string forwarded_id(64, 'd');
  const std::string stored_id(64, 'a');
  const json delivered = {
      {"ok", true},
      {"state", "delivered"},
      {"stored_at", 1'790'000'000'000ULL},
      {"forwarded", {{"peer", hub_key}, {"name", "hub"}, {"at", 1'790'000'000'500ULL}}},
      {"delivered",
       {{"receipt", std::string(64, 'e')}, {"hlc", 1ULL << 16}, {"at", 1'790'000'001'000ULL}}}};
  const std::string stranger_id(64, 'f');
  FakeDaemon fake(node.endpoint, [&](const json& request) {
    if (request["cmd"] == "peers") return map_reply(peers_reply());
    // The upstream has no trust entry here (the authority has none): no name.
    if (request["id"] == forwarded_id || request["id"] == stranger_id) {
      std::string peer = request["id"] == forwarded_id ? hub_key : std::string(64, '9');
      return map_reply(
          {{"ok", true},
           {"state", "forwarded"},
           {"stored_at", 1'790'000'000'000ULL},
           {"forwarded", {{"peer", peer}, {"name", ""}, {"at", 1'790'000'000'500ULL}}}});
    }
    if (request["id"] == stored_id) {
      return map_reply({{"ok", true}, {"state", "stored"}, {"stored_at", 1'790'000'000'000ULL}});
    }
    return map_reply(delivered);
  });
  auto shown = ferryctl({"-c", node.config, "track", op_id});
  REQUIRE(shown.code == exit_ok);
  CHECK(shown.out ==
        "state     delivered\n"
        "stored_at 1790000000000 (2026-09-21T14:13:20.000Z)\n"
        "forwarded to hub (3b6a27bcceb6a42d) at 2026-09-21T14:13:20.500Z\n"
        "delivered: receipt " +
            std::string(64, 'e') + " (at 2026-09-21T14:13:21.000Z)\n");
  auto as_json = ferryctl({"-c", node.config, "track", op_id, "--json"});
  json expected = delivered;
  expected.erase("ok");
  CHECK(json::parse(as_json.out) == expected);

  CHECK(fake.requests().size() == 2);  // a named peer needs no peers request
  auto unnamed = ferryctl({"-c", node.config, "track", forwarded_id});
  REQUIRE(unnamed.code == exit_ok);
  CHECK(unnamed.out ==
        "state     forwarded\n"
        "stored_at 1790000000000 (2026-09-21T14:13:20.000Z)\n"
        "forwarded to hub (3b6a27bcceb6a42d) at 2026-09-21T14:13:20.500Z\n");
  CHECK(fake.requests().back() == json{{"cmd", "peers"}});
  auto stranger = ferryctl({"-c", node.config, "track", stranger_id});
  REQUIRE(stranger.code == exit_ok);
  CHECK(stranger.out.find("forwarded to peer 9999999999999999 at ") != std::string::npos);
  auto stored = ferryctl({"-c", node.config, "track", stored_id});
  CHECK(stored.out ==
        "state     stored\n"
        "stored_at 1790000000000 (2026-09-21T14:13:20.000Z)\n");
}

TEST_CASE("status adds the replication counters when the node replicates") {
  Node node;
  json codes = json::object();
  for (const char* code : {"version", "gap", "fork", "unauthorized"}) codes[code] = 0;
  json sent = codes;
  sent["gap"] = 2;
  json received = codes;
  FakeDaemon fake(node.endpoint, [&](const json&) {
    return map_reply({{"ok", true},
                      {"node", {{"name", "dongji"}, {"id", hub_key}, {"role", "hub"}}},
                      {"ipc", {{"requests", 9}, {"errors", json::object()}}},
                      {"replication",
                       {{"errors_sent", sent},
                        {"errors_received", received},
                        {"zap_refused", 1},
                        {"sessions_opened", 4},
                        {"sessions_lost", 3},
                        {"ops_sent", 1200},
                        {"ops_received", 40},
                        {"duplicates", 0},
                        {"revoked_skipped", 0},
                        {"receipts_written", 2},
                        {"trusted", 3},
                        {"authority", true}}}});
  });
  auto shown = ferryctl({"-c", node.config, "status"});
  REQUIRE(shown.code == exit_ok);
  CHECK(shown.out.find("unsent replies 0\n"
                       "sessions      4 opened, 3 lost\n"
                       "peer ops      1200 sent, 40 received\n"
                       "zap refusals  1 (handshakes of untrusted keys)\n"
                       "peer errors   sent: gap 2; received: none\n"
                       "trust         3 entries, this node is the authority: yes\n") !=
        std::string::npos);
}

TEST_CASE("status without replication prints no replication lines") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json&) {
    return map_reply({{"ok", true}, {"node", {{"name", "huaniao"}}}});
  });
  auto shown = ferryctl({"-c", node.config, "status"});
  REQUIRE(shown.code == exit_ok);
  CHECK(shown.out.find("sessions") == std::string::npos);
  CHECK(shown.out.find("trust ") == std::string::npos);
}

// ---- monitor -----------------------------------------------------------------------------------

json monitor_reply() {
  auto station = [](const std::string& name, bool online) {
    return json{{"name", name},
                {"online", online},
                {"via", ""},
                {"silent", !online},
                {"last_seen_ms", online ? 1'789'999'988'000ULL : 0ULL},
                {"backlog_up", online ? json(0) : json(nullptr)},
                {"backlog_down", online ? json(4) : json(nullptr)},
                {"oldest_unsent_ms", 0},
                {"rejected", json::object()},
                {"open_conflicts", 0},
                {"rate", {0, 0.5}}};
  };
  return {{"ok", true},
          {"status",
           {{"now_ms", 1'790'000'000'000ULL},
            {"node", {{"name", "dongji"}, {"id", hub_key}, {"role", "hub"}}},
            {"ops", 40},
            {"open_conflicts", 0}}},
          {"peers",
           {{{"name", "huaniao"},
             {"upstream", false},
             {"online", true},
             {"last_seen_ms", 1'789'999'999'000ULL},
             {"backlog_out", 0},
             {"backlog_in", 0},
             {"last_error", ""}}}},
          {"stations", {station("huaniao", true), station("花鸟", false)}}};
}

TEST_CASE("monitor --once prints one frame with the station names, --json the reply") {
  Node node;
  FakeDaemon fake(node.endpoint, [](const json&) { return map_reply(monitor_reply()); });
  auto shown = ferryctl({"-c", node.config, "monitor", "--once"});
  REQUIRE(shown.code == exit_ok);
  CHECK(shown.err.empty());
  CHECK(shown.out.find('\x1b') == std::string::npos);  // no terminal control codes
  INFO(shown.out);
  auto lines = lines_of(shown.out);
  REQUIRE(lines.size() >= 6);
  CHECK(lines[0].starts_with("ferry dongji (hub)  ops 40  open conflicts 0"));
  CHECK(lines[0].ends_with("2026-09-21 14:13:20Z"));
  CHECK(std::find(lines.begin(), lines.end(),
                  "huaniao online  -     12s      0      4      -    0.5     0     0") !=
        lines.end());
  CHECK(std::find(lines.begin(), lines.end(),
                  "花鸟    SILENT  -   never      -      -      -    0.5     0     0") !=
        lines.end());
  for (const std::string& line : lines) CHECK(line.size() <= 80);  // bytes: ASCII but 花鸟
  CHECK(fake.requests().back() == json{{"cmd", "monitor"}});
  auto as_json = ferryctl({"-c", node.config, "monitor", "--once", "--json"});
  REQUIRE(as_json.code == exit_ok);
  json expected = monitor_reply();
  expected.erase("ok");
  CHECK(json::parse(as_json.out) == expected);
}

TEST_CASE("monitor --once exits 1 without a daemon or with a reply of the wrong shape") {
  Node node;
  auto away = ferryctl({"-c", node.config, "monitor", "--once"});
  CHECK(away.code == exit_failure);
  CHECK(away.err.find("ferryctl: ferryd is not running at " + node.endpoint) == 0);
  FakeDaemon fake(node.endpoint, [](const json&) {
    json reply = monitor_reply();
    reply["stations"] = "none";
    return map_reply(reply);
  });
  auto bad = ferryctl({"-c", node.config, "monitor", "--once"});
  CHECK(bad.code == exit_failure);
  CHECK(bad.err == "ferryctl: monitor reply: `stations` is a string, not an array\n");
}

TEST_CASE("monitor refuses --json without --once and an interval out of bounds") {
  Node node;
  CHECK(ferryctl({"-c", node.config, "monitor", "--json"}).code == exit_usage);
  CHECK(ferryctl({"-c", node.config, "monitor", "--interval", "199"}).code == exit_usage);
  CHECK(ferryctl({"-c", node.config, "monitor", "--interval", "60001"}).code == exit_usage);
  CHECK(ferryctl({"-c", node.config, "monitor", "--interval", "x"}).code == exit_usage);
}

std::size_t count_of(const std::string& text, const std::string& part) {
  std::size_t count = 0;
  for (auto at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++count;
  return count;
}

// Runs the live monitor for about `run_for`, then sends SIGTERM.
Ran live_monitor(const Node& node, std::chrono::milliseconds run_for) {
  std::thread stopper([run_for] {
    std::this_thread::sleep_for(run_for);
    ::kill(::getpid(), SIGTERM);
  });
  auto ran = ferryctl({"-c", node.config, "monitor", "--interval", "200"});
  stopper.join();
  return ran;
}

TEST_CASE("the live monitor redraws, keeps retrying while ferryd is away, and stops on SIGTERM") {
  Node node;
  auto away = live_monitor(node, 700ms);
  CHECK(away.code == exit_ok);
  CHECK(away.out.starts_with("\x1b[?25l\x1b[2J"));  // cursor hidden, screen cleared
  CHECK(away.out.ends_with("\n\x1b[?25h"));         // and shown again on the way out
  CHECK(away.out.find("no update: ferryd is not running at") != std::string::npos);
  // The rest of the error line ("; retrying every 200 ms") wraps and may be cut at the 4th line
  // when the socket path is long (monitor_view_test.cpp checks the wording).
  CHECK(count_of(away.out, "\x1b[H") >= 2);  // it tried again
  FakeDaemon fake(node.endpoint, [](const json&) { return map_reply(monitor_reply()); });
  auto live = live_monitor(node, 700ms);
  CHECK(live.code == exit_ok);
  CHECK(live.out.find("huaniao online") != std::string::npos);
  CHECK(live.out.find("no update") == std::string::npos);
  CHECK(fake.requests().size() >= 2);
}

}  // namespace
}  // namespace ferry::ctl
