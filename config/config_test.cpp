#include "config/config.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::config;

namespace {

const std::string minimal = "[node]\nname = \"huaniao\"\ndata_dir = \"/var/lib/ferry/huaniao\"\n";
const std::string hub_hex = "3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
const std::string upstream_hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
const std::string authority = "[authority]\nkey = \"" + hub_hex + "\"\n";

PublicKey key_of(const std::string& hex) {
  auto key = parse_public_key(hex);
  REQUIRE(key);
  return *key;
}

std::string upstream(const std::string& endpoint, const std::string& hex = upstream_hex) {
  return "[[upstream]]\nendpoint = \"" + endpoint + "\"\nkey = \"" + hex + "\"\n";
}

std::string replication(const std::string& lines) { return minimal + "[replication]\n" + lines; }

Error refused(const std::string& text) {
  auto config = parse_config(text, "/etc/ferry/station.toml");
  REQUIRE_FALSE(config);
  CHECK(config.error().code == Errc::malformed);
  CHECK(config.error().detail.find("/etc/ferry/station.toml") == 0);
  return config.error();
}

}  // namespace

TEST_CASE("a minimal config gets the documented defaults") {
  auto config = parse_config(minimal, "/etc/ferry/station.toml");
  REQUIRE(config);
  CHECK(config->node.name == "huaniao");
  CHECK(config->node.data_dir == "/var/lib/ferry/huaniao");
  CHECK(config->node.role == Role::station);
  CHECK(config->ipc.endpoint == "ipc:///var/lib/ferry/huaniao/ferryd.sock");
  CHECK(config->ipc.socket_mode == 0660);
  CHECK(config->limits.batch_ops_max == 1024);
  CHECK(config->log_level == LogLevel::info);
  CHECK(node_key_path(*config) == "/var/lib/ferry/huaniao/node.key");
}

TEST_CASE("a relative data_dir is taken from the config file's directory") {
  auto config = parse_config("[node]\nname = \"a\"\ndata_dir = \"data/../node\"\n",
                             "/etc/ferry/station.toml");
  REQUIRE(config);
  CHECK(config->node.data_dir == "/etc/ferry/node");
}

TEST_CASE("every key can be set") {
  auto config = parse_config(minimal +
                                 "role = \"relay\"\n[ipc]\nendpoint = \"tcp://127.0.0.1:7400\"\n"
                                 "socket_mode = \"0600\"\n[limits]\nrequest_bytes_max = 4096\n"
                                 "batch_ops_max = 8\npull_limit_max = 50\npull_wait_max_ms = 100\n"
                                 "pull_waiting_max = 4\nsubmit_queue_max = 16\n"
                                 "clock_drift_max_ms = 1000\nsign_threads = 1\n"
                                 "[log]\nlevel = \"debug\"\n",
                             "f.toml");
  REQUIRE(config);
  CHECK(config->node.role == Role::relay);
  CHECK(config->ipc.endpoint == "tcp://127.0.0.1:7400");
  CHECK(config->ipc.socket_mode == 0600);
  CHECK(config->limits.request_bytes_max == 4096);
  CHECK(config->limits.batch_ops_max == 8);
  CHECK(config->limits.pull_limit_max == 50);
  CHECK(config->limits.pull_wait_max == std::chrono::milliseconds(100));
  CHECK(config->limits.pull_waiting_max == 4);
  CHECK(config->limits.submit_queue_max == 16);
  CHECK(config->limits.clock_drift_max == std::chrono::milliseconds(1000));
  CHECK(config->limits.sign_threads == 1);
  CHECK(config->log_level == LogLevel::debug);
}

TEST_CASE("unknown keys and sections are refused with the file and the key") {
  CHECK(refused(minimal + "colour = \"blue\"\n").detail.find("node.colour: unknown key") !=
        std::string::npos);
  CHECK(refused(minimal + "[limits]\nbatch_size = 3\n").detail.find("limits.batch_size") !=
        std::string::npos);
  CHECK(refused(minimal + "[replication]\nx = 1\n").detail.find("replication.x: unknown key") !=
        std::string::npos);
  CHECK(refused(minimal + "[peers]\nx = 1\n").detail.find("peers: unknown section") !=
        std::string::npos);
  CHECK(refused(minimal + "[listen]\nendpoint = \"tcp://a:1\"\nport = 1\n" + authority)
            .detail.find("listen.port: unknown key") != std::string::npos);
  CHECK(refused(minimal + authority + upstream("tcp://a:1") + "name = \"a\"\n")
            .detail.find("upstream[1].name: unknown key") != std::string::npos);
  CHECK(refused(minimal + authority + "owner = \"x\"\n").detail.find("authority.owner") !=
        std::string::npos);
}

TEST_CASE("wrong types and bad values are refused with what is wrong") {
  CHECK(refused(minimal + "[limits]\nbatch_ops_max = \"many\"\n").detail.find("integer") !=
        std::string::npos);
  CHECK(refused(minimal + "[limits]\nbatch_ops_max = 0\n").detail.find("between 1 and") !=
        std::string::npos);
  CHECK(refused(minimal + "role = \"ferry\"\n").detail.find("station, relay or hub") !=
        std::string::npos);
  CHECK(refused(minimal + "[ipc]\nsocket_mode = \"0666\"\n").detail.find("others") !=
        std::string::npos);
  CHECK(refused(minimal + "[ipc]\nsocket_mode = \"rw\"\n").detail.find("octal") !=
        std::string::npos);
  CHECK(refused(minimal + "[ipc]\nendpoint = \"tcp://0.0.0.0:1\"\n").detail.find("loopback") !=
        std::string::npos);
  CHECK(refused(minimal + "[log]\nlevel = \"loud\"\n").detail.find("log.level") !=
        std::string::npos);
  CHECK(refused("[node]\nname = \"bad name\"\ndata_dir = \"/x\"\n").detail.find("node.name") !=
        std::string::npos);
  CHECK(refused("[node]\nname = \"a\"\n").detail.find("node.data_dir: required") !=
        std::string::npos);
  CHECK(refused("[log]\nlevel = \"info\"\n").detail.find("[node]") != std::string::npos);
  CHECK(refused("node = 3\n").detail.find("must be a section") != std::string::npos);
}

TEST_CASE("a TOML syntax error names the line") {
  CHECK(refused(minimal + "[limits\n").detail.find("station.toml:4") != std::string::npos);
}

void check_replication_defaults(const ReplicationConfig& r) {
  CHECK(r.message_bytes_max == 8388608);
  CHECK(r.batch_ops_max == 512);
  CHECK(r.batch_bytes_max == 1048576);
  CHECK(r.window_batches == 4);
  CHECK(r.heartbeat_interval == std::chrono::milliseconds(1000));
  CHECK(r.heartbeat_timeout == std::chrono::milliseconds(5000));
  CHECK(r.reconnect_min == std::chrono::milliseconds(100));
  CHECK(r.reconnect_max == std::chrono::milliseconds(5000));
  CHECK(r.reconnect_jitter_percent == 20);
  CHECK(r.receipt_interval == std::chrono::milliseconds(1000));
  CHECK(r.peers_max == 256);
  CHECK(r.vector_entries_max == 65536);
}

TEST_CASE("the rendered config of a new node parses back to the same settings") {
  NodeConfig node{"dongji", "/var/lib/ferry/dongji", Role::hub};
  std::string text = render_config(node);
  auto config = parse_config(text, "/etc/ferry/hub.toml");
  REQUIRE(config);
  CHECK(config->node.name == "dongji");
  CHECK(config->node.data_dir == "/var/lib/ferry/dongji");
  CHECK(config->node.role == Role::hub);
  LimitsConfig defaults;
  CHECK(config->limits.submit_queue_max == defaults.submit_queue_max);
  CHECK(config->limits.pull_wait_max == defaults.pull_wait_max);
  CHECK(config->listen_endpoint.empty());
  CHECK(config->upstreams.empty());
  CHECK_FALSE(config->authority);
  CHECK(text.find("\n[replication]\n") != std::string::npos);  // always written out
  CHECK(text.find("\nvector_entries_max = 65536\n") != std::string::npos);
  check_replication_defaults(config->replication);
}

TEST_CASE("the rendered config keeps listen, upstreams and the authority") {
  NewNodeSettings settings{NodeConfig{"relay-1", "/srv/ferry/a \"quoted\" dir", Role::relay},
                           "tcp://0.0.0.0:7470",
                           {UpstreamConfig{"tcp://10.0.0.1:7470", key_of(upstream_hex)},
                            UpstreamConfig{"ipc:///run/ferry/hub.sock", key_of(hub_hex)}},
                           key_of(hub_hex),
                           "[::1]:7490"};
  auto config = parse_config(render_config(settings), "/etc/ferry/relay.toml");
  REQUIRE(config);
  CHECK(config->node.name == "relay-1");
  CHECK(config->node.data_dir == "/srv/ferry/a \"quoted\" dir");
  CHECK(config->node.role == Role::relay);
  CHECK(config->listen_endpoint == "tcp://0.0.0.0:7470");
  REQUIRE(config->upstreams.size() == 2);
  CHECK(config->upstreams[0].endpoint == "tcp://10.0.0.1:7470");
  CHECK(config->upstreams[0].key == key_of(upstream_hex));
  CHECK(config->upstreams[1].endpoint == "ipc:///run/ferry/hub.sock");
  CHECK(config->upstreams[1].key == key_of(hub_hex));
  REQUIRE(config->authority);
  CHECK(*config->authority == key_of(hub_hex));
  CHECK(config->ipc.endpoint == "ipc:///srv/ferry/a \"quoted\" dir/ferryd.sock");
  check_replication_defaults(config->replication);
  CHECK(config->monitor.host == "::1");
  CHECK(config->monitor.port == 7490);
}

TEST_CASE("a config without peers replicates nothing and gets the replication defaults") {
  auto config = parse_config(minimal, "f.toml");
  REQUIRE(config);
  CHECK_FALSE(config->replicates());
  CHECK(config->listen_endpoint.empty());
  CHECK(config->upstreams.empty());
  CHECK_FALSE(config->authority);
  check_replication_defaults(config->replication);
  auto hub_only = parse_config(minimal + authority, "f.toml");  // a hub before its first peer
  REQUIRE(hub_only);
  CHECK_FALSE(hub_only->replicates());
  CHECK(hub_only->authority);
}

TEST_CASE("listen, upstreams and the authority are read") {
  auto config =
      parse_config(minimal + "role = \"hub\"\n[listen]\nendpoint = \"tcp://[::]:7470\"\n" +
                       upstream("tcp://hub-b.example.org:7470") +
                       upstream("ipc://@ferry-peer", hub_hex) + authority,
                   "f.toml");
  REQUIRE(config);
  CHECK(config->replicates());
  CHECK(config->node.role == Role::hub);  // a hub may peer with another hub
  CHECK(config->listen_endpoint == "tcp://[::]:7470");
  REQUIRE(config->upstreams.size() == 2);
  CHECK(config->upstreams[0].endpoint == "tcp://hub-b.example.org:7470");
  CHECK(config->upstreams[0].key == key_of(upstream_hex));
  CHECK(config->upstreams[1].endpoint == "ipc://@ferry-peer");
  CHECK(config->upstreams[1].key == key_of(hub_hex));
  CHECK(config->authority == key_of(hub_hex));
  auto inline_tables = parse_config(
      "upstream = [{endpoint = \"tcp://a:1\", key = \"" + hub_hex + "\"}]\n" + minimal + authority,
      "f.toml");
  REQUIRE(inline_tables);
  CHECK(inline_tables->upstreams.size() == 1);
}

TEST_CASE("a node that replicates needs the authority's key") {
  std::string listen = "[listen]\nendpoint = \"tcp://0.0.0.0:7470\"\n";
  CHECK(refused(minimal + listen).detail.find("authority.key: required when the node replicates") !=
        std::string::npos);
  CHECK(refused(minimal + upstream("tcp://10.0.0.1:7470"))
            .detail.find("authority.key: required when the node replicates") != std::string::npos);
  CHECK(refused(minimal + "[authority]\n").detail.find("authority.key: required") !=
        std::string::npos);
  CHECK(parse_config(minimal + listen + authority, "f.toml"));
}

TEST_CASE("listen and upstream endpoints must be tcp://HOST:PORT or ipc://PATH") {
  for (const char* good :
       {"tcp://10.0.0.1:7470", "tcp://localhost:1", "tcp://hub.example.org:65535",
        "tcp://[fe80::1]:7470", "ipc:///run/ferry/peer.sock", "ipc://peer.sock"}) {
    INFO(good);
    CHECK(check_peer_endpoint(good));
    CHECK(parse_config(minimal + authority + "[listen]\nendpoint = \"" + good + "\"\n", "f.toml"));
  }
  for (const char* bad :
       {"", "10.0.0.1:7470", "udp://10.0.0.1:7470", "tcp://10.0.0.1", "tcp://:7470",
        "tcp://10.0.0.1:0", "tcp://10.0.0.1:65536", "tcp://10.0.0.1:74x0", "tcp://10.0.0.1:+7470",
        "tcp://a b:1", "tcp://*:7470", "tcp://a;b:1", "ipc://", "ipc://a\tb", "tcp://[]:1"}) {
    INFO(bad);
    CHECK(check_peer_endpoint(bad).error().code == Errc::malformed);
  }
  CHECK(check_peer_endpoint("ipc:///" + std::string(106, 'p')));
  CHECK_FALSE(check_peer_endpoint("ipc:///" + std::string(107, 'p')));
  CHECK(refused(minimal + authority + "[listen]\nendpoint = \"udp://x:1\"\n")
            .detail.find("listen.endpoint: must be tcp://HOST:PORT or ipc://PATH") !=
        std::string::npos);
  CHECK(refused(minimal + authority + "[listen]\nendpoint = 7470\n")
            .detail.find("listen.endpoint: must be a string") != std::string::npos);
  CHECK(refused(minimal + authority + "[listen]\n").detail.find("listen.endpoint: required") !=
        std::string::npos);
  CHECK(refused(minimal + authority + upstream("tcp://10.0.0.1:99999"))
            .detail.find("upstream[1].endpoint: the tcp:// port must be 1..65535") !=
        std::string::npos);
}

TEST_CASE("keys must be 64 lower-case hex digits") {
  CHECK(parse_public_key(hub_hex));
  std::string upper = hub_hex;
  upper[0] = 'B';
  for (const std::string& bad : {upper, hub_hex.substr(2), hub_hex + "00", std::string(64, 'g'),
                                 std::string(), " " + hub_hex.substr(1)}) {
    INFO(bad);
    CHECK(parse_public_key(bad).error().code == Errc::malformed);
  }
  CHECK(refused(minimal + "[authority]\nkey = \"" + upper + "\"\n")
            .detail.find("authority.key: must be a public key") != std::string::npos);
  CHECK(
      refused(minimal + "[authority]\nkey = 12\n").detail.find("authority.key: must be a string") !=
      std::string::npos);
  CHECK(refused(minimal + authority + upstream("tcp://a:1", hub_hex.substr(1)))
            .detail.find("upstream[1].key: must be a public key") != std::string::npos);
  CHECK(refused(minimal + authority + "[[upstream]]\nendpoint = \"tcp://a:1\"\n")
            .detail.find("upstream[1].key: required") != std::string::npos);
  CHECK(refused(minimal + authority + "[[upstream]]\nkey = \"" + hub_hex + "\"\n")
            .detail.find("upstream[1].endpoint: required") != std::string::npos);
}

TEST_CASE("two upstreams with the same endpoint are refused") {
  CHECK(refused(minimal + authority + upstream("tcp://a:1") + upstream("tcp://b:1") +
                upstream("tcp://a:1", hub_hex))
            .detail.find("upstream[3].endpoint: upstream[1] has the same endpoint") !=
        std::string::npos);
}

TEST_CASE("upstream must be an array of tables") {
  for (const std::string& bad :
       {std::string("[upstream]\nendpoint = \"tcp://a:1\"\n"), std::string("upstream = 1\n"),
        std::string("upstream = []\n"), std::string("upstream = [\"tcp://a:1\"]\n"),
        "upstream = [{endpoint = \"tcp://a:1\", key = \"" + hub_hex + "\"}, 3]\n"}) {
    INFO(bad);
    CHECK(refused(bad + minimal + authority).detail.find("upstream: must be [[upstream]] tables") !=
          std::string::npos);
  }
  CHECK(refused("listen = \"tcp://a:1\"\n" + minimal).detail.find("listen: must be a section") !=
        std::string::npos);
  CHECK(refused(minimal + "[[authority]]\nkey = \"" + hub_hex + "\"\n")
            .detail.find("authority: must be a section") != std::string::npos);
  CHECK(refused(minimal + "[[replication]]\n").detail.find("replication: must be a section") !=
        std::string::npos);
}

TEST_CASE("every replication key can be set") {
  auto config = parse_config(
      replication("message_bytes_max = 65536\nbatch_ops_max = 1\nbatch_bytes_max = 4096\n"
                  "window_batches = 64\nheartbeat_interval_ms = 50\nheartbeat_timeout_ms = 101\n"
                  "reconnect_min_ms = 10\nreconnect_max_ms = 10\nreconnect_jitter_percent = 0\n"
                  "receipt_interval_ms = 3600000\npeers_max = 10000\nvector_entries_max = 16\n"),
      "f.toml");
  REQUIRE(config);
  const ReplicationConfig& r = config->replication;
  CHECK(r.message_bytes_max == 65536);
  CHECK(r.batch_ops_max == 1);
  CHECK(r.batch_bytes_max == 4096);
  CHECK(r.window_batches == 64);
  CHECK(r.heartbeat_interval == std::chrono::milliseconds(50));
  CHECK(r.heartbeat_timeout == std::chrono::milliseconds(101));
  CHECK(r.reconnect_min == std::chrono::milliseconds(10));
  CHECK(r.reconnect_max == std::chrono::milliseconds(10));
  CHECK(r.reconnect_jitter_percent == 0);
  CHECK(r.receipt_interval == std::chrono::milliseconds(3600000));
  CHECK(r.peers_max == 10000);
  CHECK(r.vector_entries_max == 16);
}

struct Range {
  const char* key;
  std::int64_t min;
  std::int64_t max;
  const char* context;  // other keys that make min and max valid on their own
};

TEST_CASE("each replication limit is refused one below its minimum and one above its maximum") {
  const Range ranges[] = {
      {"message_bytes_max", 65536, 67108864, "batch_bytes_max = 4096\n"},
      {"batch_ops_max", 1, 10000, ""},
      {"batch_bytes_max", 4096, 33554432, "message_bytes_max = 67108864\n"},
      {"window_batches", 1, 64, ""},
      {"heartbeat_interval_ms", 50, 60000, "heartbeat_timeout_ms = 600000\n"},
      {"heartbeat_timeout_ms", 101, 600000, "heartbeat_interval_ms = 50\n"},
      {"reconnect_min_ms", 10, 60000, "reconnect_max_ms = 60000\n"},
      {"reconnect_max_ms", 10, 600000, "reconnect_min_ms = 10\n"},
      {"reconnect_jitter_percent", 0, 100, ""},
      {"receipt_interval_ms", 50, 3600000, ""},
      {"peers_max", 1, 10000, ""},
      {"vector_entries_max", 16, 1000000, ""},
  };
  for (const Range& range : ranges) {
    INFO(range.key);
    auto with = [&](std::int64_t value) {
      return replication(range.context + std::string(range.key) + " = " + std::to_string(value) +
                         "\n");
    };
    CHECK(parse_config(with(range.min), "f.toml"));
    CHECK(parse_config(with(range.max), "f.toml"));
    std::string key = "replication." + std::string(range.key) + ": ";
    CHECK(refused(with(range.min - 1)).detail.find(key) != std::string::npos);
    CHECK(refused(with(range.max + 1)).detail.find(key) != std::string::npos);
    CHECK(refused(replication(std::string(range.key) + " = \"1\"\n"))
              .detail.find(key + "must be an integer") != std::string::npos);
    CHECK(refused(replication(std::string(range.key) + " = 1.5\n"))
              .detail.find(key + "must be an integer") != std::string::npos);
  }
}

TEST_CASE("replication limits that depend on another key are checked against its value") {
  CHECK(refused(replication("message_bytes_max = 65536\nbatch_bytes_max = 32769\n"))
            .detail.find("replication.batch_bytes_max: must be at most message_bytes_max / 2 = "
                         "32768, not 32769") != std::string::npos);
  CHECK(
      parse_config(replication("message_bytes_max = 65536\nbatch_bytes_max = 32768\n"), "f.toml"));
  // The default of the other key counts, and the message says it is the default.
  CHECK(refused(replication("message_bytes_max = 65536\n"))
            .detail.find("batch_bytes_max: must be at most message_bytes_max / 2 = 32768, not "
                         "1048576 (its default)") != std::string::npos);
  CHECK(refused(replication("heartbeat_interval_ms = 2500\n"))
            .detail.find("heartbeat_timeout_ms: must be more than 2 x heartbeat_interval_ms = "
                         "5000, not 5000 (its default)") != std::string::npos);
  CHECK(refused(replication("heartbeat_interval_ms = 1000\nheartbeat_timeout_ms = 2000\n"))
            .detail.find("heartbeat_timeout_ms: must be more than") != std::string::npos);
  CHECK(parse_config(replication("heartbeat_interval_ms = 1000\nheartbeat_timeout_ms = 2001\n"),
                     "f.toml"));
  CHECK(refused(replication("reconnect_min_ms = 200\nreconnect_max_ms = 199\n"))
            .detail.find("reconnect_max_ms: must be at least reconnect_min_ms = 200, not 199") !=
        std::string::npos);
  CHECK(refused(replication("reconnect_min_ms = 6000\n"))
            .detail.find("reconnect_max_ms: must be at least reconnect_min_ms = 6000, not 5000 "
                         "(its default)") != std::string::npos);
  CHECK(parse_config(replication("reconnect_min_ms = 200\nreconnect_max_ms = 200\n"), "f.toml"));
}

TEST_CASE("load_config reads a file and reports a missing one") {
  test::TempDir dir;
  CHECK(load_config(dir.file("absent.toml")).error().code == Errc::not_found);
  {
    std::ofstream out(dir.file("ferry.toml"));
    out << minimal;
  }
  auto config = load_config(dir.file("ferry.toml"));
  REQUIRE(config);
  CHECK(config->path == dir.file("ferry.toml"));
}

// ---- [monitor] ----

namespace {

std::string monitor(const std::string& lines) { return minimal + "[monitor]\n" + lines; }

const std::string token16 = "0123456789abcdef";

}  // namespace

TEST_CASE("the monitor gets the documented defaults") {
  auto config = parse_config(minimal, "f.toml");
  REQUIRE(config);
  const MonitorConfig& m = config->monitor;
  CHECK(m.enabled);
  CHECK(m.host == "127.0.0.1");
  CHECK(m.port == 7480);
  CHECK(m.loopback());
  CHECK(m.token.empty());
  CHECK(m.refresh == std::chrono::milliseconds(1'000));
  CHECK(m.silent_after == std::chrono::milliseconds(1'800'000));
  CHECK(m.status_interval == std::chrono::milliseconds(60'000));
  CHECK(m.status_keepalive == std::chrono::milliseconds(600'000));
  // An empty [monitor] is the same.
  auto empty = parse_config(monitor(""), "f.toml");
  REQUIRE(empty);
  CHECK(empty->monitor.host == "127.0.0.1");
  CHECK(empty->monitor.port == 7480);
}

TEST_CASE("every monitor key can be set") {
  auto config = parse_config(monitor("enabled = false\nlisten = \"127.0.0.2:8080\"\n"
                                     "token = \"" +
                                     token16 +
                                     "\"\nrefresh_ms = 500\nsilent_after_ms = 60000\n"
                                     "status_interval_ms = 10000\nstatus_keepalive_ms = 20000\n"),
                             "f.toml");
  REQUIRE(config);
  const MonitorConfig& m = config->monitor;
  CHECK_FALSE(m.enabled);
  CHECK(m.host == "127.0.0.2");
  CHECK(m.port == 8080);
  CHECK(m.token == token16);
  CHECK(m.refresh == std::chrono::milliseconds(500));
  CHECK(m.silent_after == std::chrono::milliseconds(60'000));
  CHECK(m.status_interval == std::chrono::milliseconds(10'000));
  CHECK(m.status_keepalive == std::chrono::milliseconds(20'000));
}

TEST_CASE("monitor listen is HOST:PORT, IPv6 hosts in brackets, port 0 allowed") {
  auto v6 = parse_config(monitor("listen = \"[::1]:7480\"\n"), "f.toml");
  REQUIRE(v6);
  CHECK(v6->monitor.host == "::1");
  CHECK(v6->monitor.port == 7480);
  CHECK(v6->monitor.loopback());
  auto any_port = parse_config(monitor("listen = \"localhost:0\"\n"), "f.toml");
  REQUIRE(any_port);
  CHECK(any_port->monitor.host == "localhost");
  CHECK(any_port->monitor.port == 0);
  CHECK(any_port->monitor.loopback());
  auto top = parse_config(monitor("listen = \"127.0.0.1:65535\"\n"), "f.toml");
  REQUIRE(top);
  CHECK(top->monitor.port == 65535);
}

TEST_CASE("a bad monitor listen is refused with what is wrong") {
  for (const char* port : {"127.0.0.1:65536", "127.0.0.1:70000", "127.0.0.1:x", "127.0.0.1:-1",
                           "127.0.0.1:", "127.0.0.1:123456", "[::1]"}) {
    INFO(port);
    CHECK(refused(monitor("listen = \"" + std::string(port) + "\"\n"))
              .detail.find("monitor.listen: the port must be 0..65535") != std::string::npos);
  }
  for (const char* missing : {"127.0.0.1", "localhost", ""}) {
    INFO(missing);
    CHECK(refused(monitor("listen = \"" + std::string(missing) + "\"\n"))
              .detail.find("monitor.listen: must be HOST:PORT") != std::string::npos);
  }
  for (const char* host :
       {":7480", "bad host:7480", "[::1:7480", "a/b:7480", "[]:7480", "h\\u00e9te:7480"}) {
    INFO(host);
    CHECK(refused(monitor("listen = \"" + std::string(host) + "\"\n"))
              .detail.find("monitor.listen: must be HOST:PORT with an address or a host name") !=
          std::string::npos);
  }
  CHECK(refused(monitor("listen = 7480\n")).detail.find("monitor.listen: must be a string") !=
        std::string::npos);
}

TEST_CASE("a monitor on a non-loopback address needs a token") {
  Error e = refused(monitor("listen = \"0.0.0.0:7480\"\n"));
  CHECK(e.detail.find("monitor.token") != std::string::npos);
  CHECK(refused(monitor("listen = \"[::]:7480\"\n")).detail.find("monitor.token") !=
        std::string::npos);
  CHECK(refused(monitor("listen = \"hub.example:7480\"\n")).detail.find("monitor.token") !=
        std::string::npos);
  auto with_token =
      parse_config(monitor("listen = \"0.0.0.0:7480\"\ntoken = \"" + token16 + "\"\n"), "f.toml");
  REQUIRE(with_token);
  CHECK(with_token->monitor.host == "0.0.0.0");
  CHECK_FALSE(with_token->monitor.loopback());
  CHECK(with_token->monitor.token == token16);
  // Any 127.x.y.z address is loopback.
  auto loop = parse_config(monitor("listen = \"127.1.2.3:7480\"\n"), "f.toml");
  REQUIRE(loop);
  CHECK(loop->monitor.loopback());
  // A monitor that is off serves nothing, so it needs no token.
  CHECK(parse_config(monitor("enabled = false\nlisten = \"0.0.0.0:7480\"\n"), "f.toml"));
}

// Only an address literal in 127.0.0.0/8 is loopback: a host name such as 127.attacker.example
// resolves wherever its owner wants, so it needs a token like any other.
TEST_CASE("a host name that merely starts with 127. is not a loopback address", "[monitor]") {
  auto config = parse_config(monitor("listen = \"127.attacker.example:7480\"\n"), "f.toml");
  CHECK_FALSE(config);
  CHECK_FALSE(parse_config(monitor("listen = \"127.0.0.1.nip.io:7480\"\n"), "f.toml"));
}

TEST_CASE("a monitor token is 16 to 256 printable characters without spaces") {
  CHECK(parse_config(monitor("token = \"" + token16 + "\"\n"), "f.toml"));
  CHECK(parse_config(monitor("token = \"" + std::string(256, 'x') + "\"\n"), "f.toml"));
  CHECK(refused(monitor("token = \"" + token16.substr(1) + "\"\n"))
            .detail.find("monitor.token: must be 16 to 256 characters") != std::string::npos);
  CHECK(refused(monitor("token = \"" + std::string(257, 'x') + "\"\n"))
            .detail.find("monitor.token: must be 16 to 256 characters") != std::string::npos);
  for (const char* bad : {"0123456789 abcdef", "0123456789\\tabcdef", "0123456789abcdef\\u00e9",
                          "0123456789abcdef\\u007f"}) {
    INFO(bad);
    CHECK(refused(monitor("token = \"" + std::string(bad) + "\"\n"))
              .detail.find("monitor.token: must be printable ASCII without spaces") !=
          std::string::npos);
  }
  CHECK(refused(monitor("token = 1234567890123456\n")).detail.find("monitor.token") !=
        std::string::npos);
}

TEST_CASE("status_keepalive_ms must be at least status_interval_ms") {
  CHECK(refused(monitor("status_interval_ms = 60000\nstatus_keepalive_ms = 59999\n"))
            .detail.find("monitor.status_keepalive_ms: must be at least status_interval_ms = "
                         "60000, not 59999") != std::string::npos);
  CHECK(refused(monitor("status_interval_ms = 700000\n"))
            .detail.find("status_keepalive_ms: must be at least status_interval_ms = 700000, not "
                         "600000 (its default)") != std::string::npos);
  CHECK(
      parse_config(monitor("status_interval_ms = 60000\nstatus_keepalive_ms = 60000\n"), "f.toml"));
  // Without reports there is nothing to keep alive.
  auto off = parse_config(monitor("status_interval_ms = 0\nstatus_keepalive_ms = 100\n"), "f.toml");
  REQUIRE(off);
  CHECK(off->monitor.status_interval == std::chrono::milliseconds(0));
}

TEST_CASE("monitor durations are refused outside their ranges") {
  for (const char* line :
       {"refresh_ms = 99", "refresh_ms = 60001", "silent_after_ms = 999", "status_interval_ms = -1",
        "status_keepalive_ms = 99", "status_interval_ms = 86400001"}) {
    INFO(line);
    CHECK(refused(monitor(std::string(line) + "\n")).detail.find("must be between") !=
          std::string::npos);
  }
}

TEST_CASE("unknown monitor keys and wrong types are refused") {
  CHECK(refused(monitor("port = 7480\n")).detail.find("monitor.port: unknown key") !=
        std::string::npos);
  CHECK(refused(monitor("enabled = \"yes\"\n"))
            .detail.find("monitor.enabled: must be true or false") != std::string::npos);
  CHECK(refused(monitor("refresh_ms = \"1s\"\n")).detail.find("monitor.refresh_ms") !=
        std::string::npos);
  CHECK(refused(minimal + "monitor = true\n").detail.find("node.monitor: unknown key") !=
        std::string::npos);
  CHECK(refused("monitor = true\n" + minimal).detail.find("monitor: must be a section") !=
        std::string::npos);
}

TEST_CASE("the rendered config writes [monitor] at its defaults and parses back") {
  NodeConfig node{"dongji", "/var/lib/ferry/dongji", Role::hub};
  std::string text = render_config(node);
  CHECK(text.find("\n[monitor]\n") != std::string::npos);
  CHECK(text.find("\nlisten = \"127.0.0.1:7480\"\n") != std::string::npos);
  auto config = parse_config(text, "/etc/ferry/hub.toml");
  REQUIRE(config);
  MonitorConfig d;
  const MonitorConfig& m = config->monitor;
  CHECK(m.enabled == d.enabled);
  CHECK(m.host == d.host);
  CHECK(m.port == d.port);
  CHECK(m.token == d.token);
  CHECK(m.refresh == d.refresh);
  CHECK(m.silent_after == d.silent_after);
  CHECK(m.status_interval == d.status_interval);
  CHECK(m.status_keepalive == d.status_keepalive);
}
