#include "config/config.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::config;

namespace {

const std::string minimal = "[node]\nname = \"huaniao\"\ndata_dir = \"/var/lib/ferry/huaniao\"\n";

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
  CHECK(refused(minimal + "[replication]\nx = 1\n").detail.find("replication: unknown section") !=
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

TEST_CASE("the rendered config of a new node parses back to the same settings") {
  NodeConfig node{"dongji", "/var/lib/ferry/dongji", Role::hub};
  auto config = parse_config(render_config(node), "/etc/ferry/hub.toml");
  REQUIRE(config);
  CHECK(config->node.name == "dongji");
  CHECK(config->node.data_dir == "/var/lib/ferry/dongji");
  CHECK(config->node.role == Role::hub);
  LimitsConfig defaults;
  CHECK(config->limits.submit_queue_max == defaults.submit_queue_max);
  CHECK(config->limits.pull_wait_max == defaults.pull_wait_max);
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
