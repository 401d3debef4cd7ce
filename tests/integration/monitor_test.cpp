// The replication monitor end to end (docs/monitor.md): real ferryd processes, their HTTP monitor
// read with a real HTTP client, status reports travelling up through a relay, a link cut and
// healed, Prometheus text checked by promtool, the bearer token, and the dashboard in Chromium.
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <nlohmann/json.hpp>

#include "tests/integration/daemon_harness.h"
#include "tests/integration/link_proxy.h"

using namespace ferry;
using namespace ferry::it;
using ferry::test::LinkProxy;
using Json = nlohmann::json;

namespace {

constexpr auto monitor_timeout = 60s;

struct HttpAnswer {
  int status = 0;  // 0: no answer
  std::string body;
};

// GET url+path ("http://127.0.0.1:PORT/" + "api/status"), with a bearer token when given.
HttpAnswer http_get(const std::string& url, const std::string& path,
                    const std::string& token = {}) {
  std::string rest = url.substr(std::string("http://").size());
  std::string host = rest.substr(0, rest.find(':'));
  int port = std::stoi(rest.substr(rest.find(':') + 1));
  httplib::Client client(host, port);
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client.Get(("/" + path).c_str(), headers);
  if (!res) return {};
  return {res->status, res->body};
}

Json get_json(const std::string& url, const std::string& path) {
  HttpAnswer a = http_get(url, path);
  if (a.status != 200) throw HarnessError(path + " answered " + std::to_string(a.status));
  return Json::parse(a.body);
}

const Json* station_row(const Json& stations, const std::string& name) {
  for (const Json& s : stations.at("stations")) {
    if (s.at("name") == name) return &s;
  }
  return nullptr;
}

int port_of(const std::string& endpoint) {
  return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

Value broadcast(std::string key) {
  Value r = submit_request("notice.publish", std::move(key),
                           Value::map({{"set", Value::map({{"text", "ferry times changed"}})}}));
  r.set("channel", "broadcast");
  return r;
}

std::string describe(const Json* row) { return row == nullptr ? "(no row)" : row->dump(); }

}  // namespace

TEST_CASE("the hub's monitor follows two stations behind a relay through a cut and a heal",
          "[monitor]") {
  TestNode hub(monitored("hub"));
  TestNode relay(monitored("township"));
  TestNode a(monitored("huaniao"));
  TestNode b(monitored("shengshan"));
  hub.replicate(hub_role(hub));
  relay.replicate(below(hub, hub.node_id(), "relay", true));
  LinkProxy link(port_of(relay.listen_endpoint()));
  Replication via_link = below(relay, hub.node_id(), "station");
  via_link.upstreams[0].first = link.endpoint();
  a.replicate(via_link);
  b.replicate(below(relay, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, relay, "relay");
  trust_add(hub, a, "station");
  trust_add(hub, b, "station");
  relay.start();
  a.start();
  b.start();
  const std::string url = hub.monitor_url();

  auto settled = [&](const std::string& name) {
    return [&, name] {
      Json stations = get_json(url, "api/stations");
      const Json* s = station_row(stations, name);
      return s != nullptr && s->at("online") == true && s->at("via") == "township" &&
             s->at("backlog_up") == 0 && s->at("backlog_down") == 0 && s->at("silent") == false;
    };
  };
  REQUIRE(wait_until(settled("huaniao"), monitor_timeout, 50ms));
  REQUIRE(wait_until(settled("shengshan"), monitor_timeout, 50ms));
  {
    Json stations = get_json(url, "api/stations");
    const Json* relay_row = station_row(stations, "township");
    REQUIRE(relay_row != nullptr);
    CHECK(relay_row->at("online") == true);
    CHECK(relay_row->at("via") == "");
    CHECK(relay_row->at("role") == "relay");
  }

  // The island is cut off: it keeps acknowledging its own submits, and its backlog grows.
  link.cut();
  IpcClient ac = a.client();
  for (int i = 0; i < 5; ++i) {
    a.submit_ok(ac, submit_request("case.submit", "case-" + std::to_string(i),
                                   Value::map({{"set", Value::map({{"status", "filed"}})}})));
  }
  const std::string a_url = a.monitor_url();
  REQUIRE(wait_until(
      [&] {
        Json peers = get_json(a_url, "api/peers");
        for (const Json& p : peers.at("peers")) {
          if (p.at("name") == "township") {
            return p.at("online") == false && p.at("backlog_out").get<int>() >= 5 &&
                   p.at("oldest_unsent_ms").get<std::uint64_t>() > 0;
          }
        }
        return false;
      },
      monitor_timeout, 50ms));
  // The hub learns from the relay's report that the island is gone; the other stays online.
  REQUIRE(wait_until(
      [&] {
        Json stations = get_json(url, "api/stations");
        const Json* sa = station_row(stations, "huaniao");
        const Json* sb = station_row(stations, "shengshan");
        return sa != nullptr && sb != nullptr && sa->at("online") == false &&
               sb->at("online") == true;
      },
      monitor_timeout, 50ms));
  // Notices from the hub wait for the island: they show as its backlog down.
  IpcClient h = hub.client();
  for (int i = 0; i < 3; ++i) hub.submit_ok(h, broadcast("notice-" + std::to_string(i)));
  REQUIRE(wait_until(
      [&] {
        Json stations = get_json(url, "api/stations");
        const Json* sa = station_row(stations, "huaniao");
        return sa != nullptr && sa->at("backlog_down").get<int>() >= 3;
      },
      monitor_timeout, 50ms));
  REQUIRE(wait_until(settled("shengshan"), monitor_timeout, 50ms));

  // Healed: everything drains both ways and the hub sees the island settled again.
  link.heal();
  REQUIRE(wait_until(settled("huaniao"), monitor_timeout, 50ms));
  Json stations = get_json(url, "api/stations");
  const Json* sa = station_row(stations, "huaniao");
  INFO(describe(sa));
  REQUIRE(sa != nullptr);
  CHECK(sa->at("ops_held").get<int>() >= 5);
  CHECK(sa->at("oldest_unsent_ms") == 0);
  CHECK(sa->at("last_report_ms").get<std::uint64_t>() > 0);
  CHECK(sa->at("disk_free_bytes").get<std::uint64_t>() > 0);
  CHECK(sa->at("rate").size() == 30);
  // The hub's peers: the relay, directly.
  Json peers = get_json(url, "api/peers");
  REQUIRE(peers.at("peers").size() == 1);
  CHECK(peers.at("peers")[0].at("name") == "township");
  CHECK(peers.at("peers")[0].at("online") == true);
}

TEST_CASE("/metrics passes promtool and its counters move on submits and refusals", "[monitor]") {
  REQUIRE(::access("/usr/bin/promtool", X_OK) == 0);  // Debian package prometheus
  TestNode hub(monitored("hub"));
  TestNode station(monitored("huaniao"));
  hub.replicate(hub_role(hub));
  station.replicate(below(hub, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, station, "station");
  station.start();
  const std::string url = station.monitor_url();

  auto sample = [](const std::string& text, const std::string& series) -> double {
    std::size_t at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
  };
  auto promtool = [&](const std::string& text) {
    std::string file = station.file("metrics.txt");
    write_file(file, text);
    return run_process({"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + file}, 60s);
  };

  std::string before = http_get(url, "metrics").body;
  INFO(before);
  auto checked = promtool(before);
  INFO(checked.out + checked.err);
  CHECK(checked.status.ok());
  double submits = sample(before, "ferry_submits_total");
  double forbidden = sample(before, "ferry_ipc_errors_total{code=\"forbidden\"}");
  double latency_count = sample(before, "ferry_submit_duration_seconds_count");
  REQUIRE(submits >= 0);
  REQUIRE(forbidden >= 0);

  IpcClient c = station.client();
  for (int i = 0; i < 3; ++i) {
    station.submit_ok(c, submit_request("case.submit", "case-" + std::to_string(i),
                                        Value::map({{"set", Value::map({{"status", "filed"}})}})));
  }
  // A station may not write the hub's channels: refused, and counted.
  Value refused = c.call(broadcast("notice-1"));
  REQUIRE_FALSE(refused["ok"].boolean());

  std::string after;
  REQUIRE(wait_until(
      [&] {
        after = http_get(url, "metrics").body;
        return sample(after, "ferry_submits_total") >= submits + 3 &&
               sample(after, "ferry_ipc_errors_total{code=\"forbidden\"}") >= forbidden + 1;
      },
      monitor_timeout, 50ms));
  CHECK(sample(after, "ferry_submits_total") == submits + 3);
  CHECK(sample(after, "ferry_ipc_errors_total{code=\"forbidden\"}") == forbidden + 1);
  CHECK(sample(after, "ferry_submit_duration_seconds_count") == latency_count + 3);
  CHECK(sample(after, "ferry_submit_duration_seconds_bucket{le=\"+Inf\"}") == latency_count + 3);
  CHECK(after.find("ferry_peer_up{peer=\"hub\",direction=\"up\"} 1") != std::string::npos);
  checked = promtool(after);
  INFO(after);
  INFO(checked.out + checked.err);
  CHECK(checked.status.ok());

  // The hub's metrics carry the station.
  const std::string hub_url = hub.monitor_url();
  REQUIRE(wait_until(
      [&] {
        return http_get(hub_url, "metrics").body.find("ferry_station_up{station=\"huaniao\"} 1") !=
               std::string::npos;
      },
      monitor_timeout, 50ms));
  checked = promtool(http_get(hub_url, "metrics").body);
  INFO(checked.out + checked.err);
  CHECK(checked.status.ok());
  CHECK(http_get(hub_url, "healthz").status == 200);
}

TEST_CASE("a bearer token guards the monitor; a public listen without one is refused",
          "[monitor]") {
  SECTION("non-loopback without a token: refused at start") {
    NodeSettings s = monitored("huaniao");
    s.monitor["listen"] = "\"127.0.0.1:0\"";
    TestNode node(s);
    std::string text = node.config_text();
    std::size_t at = text.find("listen = \"127.0.0.1:0\"");
    REQUIRE(at != std::string::npos);
    text.replace(at, std::string("listen = \"127.0.0.1:0\"").size(), "listen = \"0.0.0.0:0\"");
    std::string path = node.file("public.toml");
    write_file(path, text);
    pid_t pid = node.spawn({"--config", path}, "public listen");
    ExitStatus exit = node.wait(pid);
    CHECK(exit.exited);
    CHECK(exit.code == 3);
    CHECK(node.log_of(pid).find("token") != std::string::npos);
  }
  SECTION("with a token: requests without it get 401") {
    const std::string token = "island-ops-7f3a9c2e51d4";
    NodeSettings s = monitored("huaniao");
    s.monitor["token"] = "\"" + token + "\"";
    TestNode node(s);
    node.start();
    const std::string url = node.monitor_url();
    for (const char* path :
         {"api/status", "api/stations", "api/peers", "api/conflicts", "metrics", "healthz"}) {
      INFO(path);
      CHECK(http_get(url, path).status == 401);
      CHECK(http_get(url, path, "island-ops-wrong-token").status == 401);
      CHECK(http_get(url, path, token).status == 200);
    }
    // The page itself holds no data; it sends the token on its API requests.
    CHECK(http_get(url, "").status == 200);
    CHECK(http_get(url, "dashboard.js").status == 200);
    CHECK(http_get(url, "no-such-page", token).status == 404);
  }
}

TEST_CASE("the monitor's JSON API answers with the documented fields", "[monitor]") {
  TestNode node(monitored("hub"));
  node.replicate(hub_role(node));
  node.start();
  const std::string url = node.monitor_url();
  REQUIRE(wait_until([&] { return http_get(url, "api/status").status == 200; }, monitor_timeout));
  Json status = get_json(url, "api/status");
  CHECK(status.at("node").at("name") == "hub");
  CHECK(status.at("node").at("role") == "hub");
  CHECK(status.at("store_writable") == true);
  CHECK(status.at("replication").is_object());
  Json conflicts = get_json(url, "api/conflicts");
  CHECK(conflicts.at("conflicts").is_array());
  CHECK(conflicts.at("truncated") == false);
  CHECK(get_json(url, "api/stations").at("stations").empty());
  Json health = Json::parse(http_get(url, "healthz").body);
  CHECK(health.at("ok") == true);
  // The IPC command carries the same figures.
  IpcClient c = node.client();
  Value reply = c.call(Value::map({{"cmd", "monitor"}}));
  REQUIRE(reply["ok"].boolean());
  CHECK(reply["status"]["node"]["name"].str() == "hub");
  Value bad = c.call(Value::map({{"cmd", "monitor"}, {"extra", 1}}));
  CHECK_FALSE(bad["ok"].boolean());
  CHECK(bad["error"]["code"].str() == "bad_request");
}

namespace {

// The first of these that exists, or empty.
std::string find_tool(std::initializer_list<const char*> paths) {
  for (const char* p : paths) {
    if (::access(p, X_OK) == 0) return p;
  }
  return {};
}

// A hub with two stations connected to it directly, everything enrolled and running.
struct HubWithTwo {
  TestNode hub{monitored("hub")};
  TestNode huaniao{monitored("huaniao")};
  TestNode shengshan{monitored("shengshan")};

  HubWithTwo() {
    hub.replicate(hub_role(hub));
    huaniao.replicate(below(hub, hub.node_id(), "station"));
    shengshan.replicate(below(hub, hub.node_id(), "station"));
    hub.start();
    trust_add(hub, huaniao, "station");
    trust_add(hub, shengshan, "station");
    huaniao.start();
    shengshan.start();
  }
};

}  // namespace

TEST_CASE("the dashboard in headless Chromium shows both stations, then one going offline",
          "[monitor][browser]") {
  std::string node = find_tool({"/usr/bin/node", "/usr/local/bin/node"});
  INFO("needs Node.js, Chromium and tests/browser/node_modules (deploy/test.sh installs them)");
  REQUIRE_FALSE(node.empty());
  REQUIRE(::access("/usr/bin/chromium", X_OK) == 0);
  const std::string dir = FERRY_BROWSER_TEST_DIR;
  REQUIRE(::access((dir + "/node_modules/playwright-core/package.json").c_str(), R_OK) == 0);

  HubWithTwo nodes;
  const std::string screenshot = std::string(FERRY_TEST_ARTIFACTS_DIR) + "/dashboard.png";
  ::unlink(screenshot.c_str());
  ProcessResult run = run_process(
      {node, dir + "/dashboard_test.mjs", "--url", nodes.hub.monitor_url(), "--stations",
       "huaniao,shengshan", "--stop-pid", std::to_string(nodes.shengshan.pid()), "--stop-station",
       "shengshan", "--screenshot", screenshot, "--timeout-ms", "60000"},
      180s);
  INFO(run.out);
  INFO(run.err);
  CHECK(run.status.ok());
  struct stat st {};
  CHECK(::stat(screenshot.c_str(), &st) == 0);
  CHECK(st.st_size > 10'000);
  // The station the page saw go offline was stopped by the test's SIGTERM and exited cleanly.
  CHECK(nodes.shengshan.stop().ok());
}

TEST_CASE("ferryctl monitor renders the stations under tmux and quits on q", "[monitor][tmux]") {
  std::string tmux = find_tool({"/usr/bin/tmux"});
  REQUIRE_FALSE(tmux.empty());  // Debian package tmux
  REQUIRE_FALSE(ferryctl_path().empty());
  HubWithTwo nodes;
  REQUIRE(wait_until(
      [&] {
        Json stations = get_json(nodes.hub.monitor_url(), "api/stations");
        const Json* a = station_row(stations, "huaniao");
        const Json* b = station_row(stations, "shengshan");
        return a != nullptr && b != nullptr && a->at("online") == true && b->at("online") == true;
      },
      monitor_timeout, 50ms));

  const std::string socket = nodes.hub.file("tmux.sock");
  auto tmux_run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {tmux, "-S", socket});
    return run_process(args, 30s);
  };
  struct KillServer {  // the tmux server goes whatever happens
    std::function<void()> kill;
    ~KillServer() { kill(); }
  } cleanup{[&] { (void)tmux_run({"kill-server"}); }};
  std::string command =
      ferryctl_path() + " monitor --interval 300 --config " + nodes.hub.config_path();
  REQUIRE(
      tmux_run({"new-session", "-d", "-s", "mon", "-x", "80", "-y", "30", command}).status.ok());
  std::string screen;
  bool shown = wait_until(
      [&] {
        screen = tmux_run({"capture-pane", "-p", "-t", "mon"}).out;
        return screen.find("huaniao") != std::string::npos &&
               screen.find("shengshan") != std::string::npos &&
               screen.find("online") != std::string::npos;
      },
      monitor_timeout, 100ms);
  INFO(screen);
  REQUIRE(shown);
  std::size_t start = 0;
  while (start < screen.size()) {
    std::size_t end = screen.find('\n', start);
    if (end == std::string::npos) end = screen.size();
    CHECK(end - start <= 80);
    start = end + 1;
  }
  REQUIRE(tmux_run({"send-keys", "-t", "mon", "q"}).status.ok());
  // q quits ferryctl, which ends the session's only window.
  CHECK(wait_until([&] { return !tmux_run({"has-session", "-t", "mon"}).status.ok(); }, 30s, 50ms));
}

TEST_CASE("/healthz turns 503 while the store takes no writes, and 200 again after",
          "[monitor][mount]") {
  INFO("needs root: the data directory is a small tmpfs that the test fills up");
  REQUIRE(::geteuid() == 0);
  TestNode node(monitored("huaniao"));
  // The data directory moves onto a small tmpfs of its own, with the node key.
  const std::string data = node.data_dir();
  const std::string key = read_file(node.key_path());
  REQUIRE(run_process({"/bin/mount", "-t", "tmpfs", "-o", "size=4m,mode=0750", "ferrytest", data})
              .status.ok());
  struct Unmount {
    std::string dir;
    ~Unmount() { (void)run_process({"/bin/umount", "-l", dir}, 30s); }
  } unmount{data};
  write_file(node.key_path(), key);
  REQUIRE(::chmod(node.key_path().c_str(), 0600) == 0);
  node.start();
  const std::string url = node.monitor_url();
  REQUIRE(wait_until([&] { return http_get(url, "healthz").status == 200; }, monitor_timeout));

  // Disk full: a filler file takes every free block.
  const std::string filler = data + "/filler";
  (void)run_process({"/bin/dd", "if=/dev/zero", "of=" + filler, "bs=64k"}, 30s);
  IpcClient c = node.client();
  Value body =
      Value::map({{"set", Value::map({{"status", "filed"}})}, {"note", std::string(3000, 'x')}});
  // The daemon keeps serving: submits fail loudly, reads still answer.
  Value refused;
  for (int i = 0; i < 64; ++i) {
    refused = c.call(submit_request("case.submit", "case-" + std::to_string(i), body));
    if (!refused["ok"].boolean()) break;
  }
  CHECK_FALSE(refused["ok"].boolean());
  REQUIRE(wait_until([&] { return http_get(url, "healthz").status == 503; }, monitor_timeout));
  Json health = Json::parse(http_get(url, "healthz").body);
  CHECK(health.at("store_writable") == false);
  CHECK(health.at("event_loop") == true);
  CHECK(http_get(url, "metrics").body.find("\nferry_store_writable 0\n") != std::string::npos);
  CHECK(node.status()["ok"].boolean());

  REQUIRE(::unlink(filler.c_str()) == 0);
  REQUIRE(wait_until([&] { return http_get(url, "healthz").status == 200; }, monitor_timeout));
  CHECK(c.call(submit_request("case.submit", "case-after", body))["ok"].boolean());
  CHECK(node.stop().ok());
}

TEST_CASE("a second daemon on a taken monitor port serves without a monitor, not on a share",
          "[monitor]") {
  TestNode first(monitored("hub"));
  first.start();
  const std::string url = first.monitor_url();
  const std::string port = url.substr(url.rfind(':') + 1, url.size() - url.rfind(':') - 2);
  NodeSettings s = monitored("huaniao");
  s.monitor["listen"] = "\"127.0.0.1:" + port + "\"";
  TestNode second(s);
  second.start();  // it serves station software all the same
  CHECK(second.log().find("serving without it") != std::string::npos);
  // Every request still reaches the first daemon.
  for (int i = 0; i < 20; ++i) {
    CHECK(get_json(url, "api/status").at("node").at("name") == "hub");
  }
  IpcClient c = second.client();
  CHECK(second
            .submit_ok(c, submit_request("case.submit", "case-1",
                                         Value::map({{"set", Value::map({{"a", 1}})}})))["ok"]
            .boolean());
}
