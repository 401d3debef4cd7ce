// ferryd: runs one ferry node in the foreground. See docs/ferryd.md for options and exit codes.
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "config/config.h"
#include "daemon/http_monitor.h"
#include "daemon/ipc_server.h"
#include "daemon/monitor.h"
#include "daemon/node.h"
#include "daemon/replicator.h"
#include "daemon/service_notify.h"
#include "storage/sqlite.h"

namespace {

// Documented in docs/ferryd.md; tests and service managers branch on them.
enum ExitCode : int {
  exit_ok = 0,
  exit_runtime = 1,
  exit_usage = 2,
  exit_config = 3,
  exit_key = 4,
  exit_storage = 5,
  exit_ipc = 6,
  exit_replication = 7,
};

spdlog::level::level_enum spd_level(ferry::config::LogLevel level) {
  using ferry::config::LogLevel;
  switch (level) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
    case LogLevel::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// SIGTERM and SIGINT arrive on a file descriptor the event loop polls. They are blocked before
// any thread starts (ZeroMQ's and the signing threads inherit the mask).
int block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) return -1;
  return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

// <data_dir>/monitor.url: where the monitor listens (its port may be chosen by the kernel).
void write_monitor_url(const std::string& data_dir, const std::string& url) {
  std::string path = data_dir + "/monitor.url";
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    spdlog::warn("cannot write {}", path);
    return;
  }
  std::fprintf(f, "%s\n", url.c_str());
  std::fclose(f);
}

int serve(const ferry::config::Config& config) {
  using namespace ferry;
  auto key = NodeKey::load(config::node_key_path(config));
  if (!key) {
    spdlog::critical("node key: {} (create one with: ferryctl init)", to_string(key.error()));
    return exit_key;
  }
  int signal_fd = block_stop_signals();
  if (signal_fd < 0) {
    spdlog::critical("cannot set up signal handling");
    return exit_runtime;
  }
  SystemWallClock wall;
  storage::StoreOptions options;
  options.sign_threads = config.limits.sign_threads;
  options.authority = config.authority;
  auto store = storage::OpStore::open(config.node.data_dir, wall, options);
  if (!store) {
    spdlog::critical("store: {}", to_string(store.error()));
    return exit_storage;
  }
  std::string id = key->public_key_hex();
  daemon::Node node(config, std::move(*key), std::move(*store), wall);
  daemon::IpcServer server(node);
  if (auto bound = server.bind(); !bound) {
    spdlog::critical("ipc: {}", to_string(bound.error()));
    return exit_ipc;
  }
  std::optional<daemon::Replicator> replicator;
  if (config.replicates()) {
    replicator.emplace(node, wall,
                       [&server](OpDraft draft) { server.submit_internal(std::move(draft)); });
    if (auto started = replicator->start(); !started) {
      spdlog::critical("replication: {}", to_string(started.error()));
      return exit_replication;
    }
    server.attach(&*replicator);
    if (!config.listen_endpoint.empty()) {
      spdlog::info("listening for peers on {}", config.listen_endpoint);
    }
  }
  daemon::Monitor monitor(node, server, replicator ? &*replicator : nullptr, wall);
  server.attach(&monitor);
  // The first snapshot exists before the monitor listens: a scrape right after start (or right
  // after monitor.url appears) gets figures, not 503 "starting".
  monitor.tick();
  std::optional<daemon::HttpMonitor> http;
  if (config.monitor.enabled) {
    // The monitor is for operators: without it the node still serves station software.
    http.emplace(config.monitor, monitor);
    if (auto url = http->start(); !url) {
      spdlog::error("monitor: {}; serving without it", to_string(url.error()));
      http.reset();
    } else {
      spdlog::info("monitor on {}", *url);
      write_monitor_url(config.node.data_dir, *url);
    }
  }
  spdlog::info("ferryd {} ({}, {}) serving {} ops on {}", config.node.name,
               config::role_name(config.node.role), id.substr(0, 16), node.last_arrival(),
               config.ipc.endpoint);
  // Under systemd (Type=notify): ready now that the socket is bound and replication and the
  // monitor run; the loop feeds the watchdog and reports the stop. A no-op elsewhere.
  daemon::ServiceNotify service;
  server.attach(&service);
  service.ready(fmt::format("serving {} ops on {}", node.last_arrival(), config.ipc.endpoint));
  server.run(signal_fd);
  if (http) http->stop();
  ::close(signal_fd);
  spdlog::info("ferryd {} stopped cleanly", config.node.name);
  return exit_ok;
}

}  // namespace

int main(int argc, char** argv) {
  // The store holds citizens' transactions: nothing the daemon creates is for other users.
  ::umask(027);
  try {
    auto logger = spdlog::stderr_color_mt("ferryd");
    spdlog::set_default_logger(logger);
    // Before anything uses SQLite: the setting is taken only then.
    if (!ferry::storage::sqlite_memory_statistics_off()) {
      spdlog::warn("SQLite was in use before its memory statistics could be turned off");
    }
    CLI::App app{"ferryd: one ferry node (station, relay or hub), in the foreground"};
    std::string config_path;
    std::string check_path;
    auto* run = app.add_option("-c,--config", config_path, "run the node of this config file");
    auto* check = app.add_option("--check-config", check_path, "check a config file and exit");
    run->excludes(check);
    app.require_option(1);
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e) == 0 ? exit_ok : exit_usage;
    }
    std::string path = check_path.empty() ? config_path : check_path;
    auto config = ferry::config::load_config(path);
    if (!config) {
      spdlog::critical("config: {}", config.error().detail);
      return exit_config;
    }
    if (!check_path.empty()) {
      std::printf("%s: ok (node %s, data_dir %s, ipc %s)\n", path.c_str(),
                  config->node.name.c_str(), config->node.data_dir.c_str(),
                  config->ipc.endpoint.c_str());
      return exit_ok;
    }
    spdlog::set_level(spd_level(config->log_level));
    return serve(*config);
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return exit_runtime;
  }
}
