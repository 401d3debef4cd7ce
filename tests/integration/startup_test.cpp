// What ferryd refuses at start, with which exit code (docs/ferryd.md) and which message: a
// second daemon on a data directory, unsafe or missing keys, bad configs, bad command lines.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  std::size_t at = text.find(from);
  if (at == std::string::npos) throw HarnessError("\"" + from + "\" not in the text");
  return text.replace(at, from.size(), to);
}

bool alive(pid_t pid) { return !wait_exit(pid, 0ms).has_value(); }

}  // namespace

TEST_CASE("a second ferryd on the same data directory exits 5 and the first keeps serving") {
  TestNode node;
  node.start();
  IpcClient client = node.client();
  Value first = node.submit_ok(client, submit_request("case.submit", "HN-1", Value::map({})));
  std::string other_socket = node.file("other.sock");
  pid_t second = -1;
  SECTION("started with the same config") {
    second = node.spawn({"--config", node.config_path()}, "second, same config");
  }
  SECTION("started with another config and endpoint for the same data directory") {
    std::string config = node.file("second.toml");
    write_file(config, replaced(node.config_text(), node.endpoint(), "ipc://" + other_socket));
    second = node.spawn({"--config", config}, "second, other endpoint");
  }
  ExitStatus refused = node.wait(second);
  std::string log = node.log_of(second);
  INFO("second ferryd's stderr:\n" << log);
  CHECK(refused.text() == "exit code 5");
  CHECK_THAT(log, Catch::Contains(node.data_dir()));
  CHECK_THAT(log, Catch::Contains("in use"));
  CHECK(::access(other_socket.c_str(), F_OK) != 0);  // it never bound

  REQUIRE(alive(node.pid()));
  Value status = client.call(status_request());
  INFO(status);
  CHECK(status["ok"].boolean());
  CHECK(status["ops"].u64() == 1);
  Value next = node.submit_ok(client, submit_request("case.submit", "HN-2", Value::map({})));
  CHECK(next["seq"].u64() == 2);
  CHECK(client.call(op_request(first["id"].str()))["ok"].boolean());
  IpcClient fresh = node.client();  // the socket file is still the first daemon's
  CHECK(fresh.call(status_request())["ipc"]["requests"].u64() > 0);
  CHECK(node.stop().text() == "exit code 0");
}

TEST_CASE("a node key that group or others may read stops ferryd with exit 4") {
  TestNode node;
  mode_t mode = 0644;
  std::string shown = "0644";
  SECTION("0644") {}
  SECTION("0640") {
    mode = 0640;
    shown = "0640";
  }
  SECTION("0604") {
    mode = 0604;
    shown = "0604";
  }
  REQUIRE(::chmod(node.key_path().c_str(), mode) == 0);
  pid_t pid = node.spawn({"--config", node.config_path()}, "key mode " + shown);
  ExitStatus status = node.wait(pid);
  std::string log = node.log_of(pid);
  INFO(log);
  CHECK(status.text() == "exit code 4");
  CHECK_THAT(log, Catch::Contains(node.key_path()));
  CHECK_THAT(log, Catch::Contains("mode " + shown));
  CHECK_THAT(log, Catch::Contains("chmod 600"));
  // Nothing was opened or bound.
  CHECK(::access(node.endpoint().substr(6).c_str(), F_OK) != 0);
  CHECK(::access((node.data_dir() + "/ferry.db").c_str(), F_OK) != 0);

  REQUIRE(::chmod(node.key_path().c_str(), 0600) == 0);
  node.start();
  CHECK(node.stop().text() == "exit code 0");
}

TEST_CASE("a missing node key stops ferryd with exit 4") {
  TestNode node;
  REQUIRE(::unlink(node.key_path().c_str()) == 0);
  pid_t pid = node.spawn({"--config", node.config_path()}, "no key");
  ExitStatus status = node.wait(pid);
  std::string log = node.log_of(pid);
  INFO(log);
  CHECK(status.text() == "exit code 4");
  CHECK_THAT(log, Catch::Contains(node.key_path()));
  CHECK(::access((node.data_dir() + "/ferry.db").c_str(), F_OK) != 0);
}

TEST_CASE("a config with an unknown key: ferryd and --check-config exit 3 naming file and key") {
  TestNode node;
  std::string bad = node.file("bad.toml");
  write_file(bad, replaced(node.config_text(), "[node]\n", "[node]\ncolour = \"blue\"\n"));

  pid_t pid = node.spawn({"--config", bad}, "unknown config key");
  ExitStatus status = node.wait(pid);
  std::string log = node.log_of(pid);
  INFO(log);
  CHECK(status.text() == "exit code 3");
  CHECK_THAT(log, Catch::Contains(bad));
  CHECK_THAT(log, Catch::Contains("node.colour"));
  CHECK(::access((node.data_dir() + "/ferry.db").c_str(), F_OK) != 0);

  ProcessResult check = run_process({ferryd_path(), "--check-config", bad}, 30s);
  INFO(check.out << check.err);
  CHECK(check.status.text() == "exit code 3");
  CHECK_THAT(check.out + check.err, Catch::Contains(bad));
  CHECK_THAT(check.out + check.err, Catch::Contains("node.colour"));

  std::string limits = node.file("limits.toml");
  write_file(limits, replaced(node.config_text(), "batch_ops_max = 1024", "batch_ops_max = 0"));
  ProcessResult range = run_process({ferryd_path(), "--check-config", limits}, 30s);
  INFO(range.out << range.err);
  CHECK(range.status.text() == "exit code 3");
  CHECK_THAT(range.err, Catch::Contains("limits.batch_ops_max"));

  ProcessResult missing = run_process({ferryd_path(), "--check-config", node.file("none.toml")});
  INFO(missing.out << missing.err);
  CHECK(missing.status.text() == "exit code 3");
  CHECK_THAT(missing.err, Catch::Contains(node.file("none.toml")));
}

TEST_CASE("ferryd --check-config of a good config exits 0 without touching the data directory") {
  TestNode node;
  ProcessResult check = run_process({ferryd_path(), "--check-config", node.config_path()}, 30s);
  INFO(check.out << check.err);
  CHECK(check.status.text() == "exit code 0");
  CHECK_THAT(check.out, Catch::Contains(node.config_path()));
  CHECK_THAT(check.out, Catch::Contains("ok"));
  CHECK(::access((node.data_dir() + "/ferry.db").c_str(), F_OK) != 0);
  CHECK(::access((node.data_dir() + "/ferry.lock").c_str(), F_OK) != 0);
}

TEST_CASE("ferryd with a bad command line exits 2") {
  std::vector<std::vector<std::string>> lines = {
      {},
      {"--no-such-option"},
      {"--config"},
      {"--config", "a.toml", "--check-config", "b.toml"},
  };
  for (const auto& args : lines) {
    std::vector<std::string> argv{ferryd_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult r = run_process(argv, 30s);
    INFO("args: " << args.size() << " " << (args.empty() ? "" : args[0]) << "\n" << r.out << r.err);
    CHECK(r.status.text() == "exit code 2");
  }
}

}  // namespace ferry::it
