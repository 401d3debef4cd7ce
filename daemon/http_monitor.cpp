#include "daemon/http_monitor.h"

#include <httplib.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>

#include "daemon/monitor_assets.h"

namespace ferry::daemon {
namespace {

constexpr const char* json_type = "application/json";
constexpr const char* metrics_type = "text/plain; version=0.0.4; charset=utf-8";

std::string_view content_type(std::string_view path) {
  if (path.ends_with(".js")) return "application/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  return "text/html; charset=utf-8";
}

// Constant time in the token's length: a wrong guess says nothing of how close it was.
bool token_matches(const std::string& header, const std::string& token) {
  constexpr std::string_view scheme = "Bearer ";
  if (!header.starts_with(scheme)) return false;
  std::string_view given = std::string_view(header).substr(scheme.size());
  if (given.size() != token.size()) return false;
  return sodium_memcmp(given.data(), token.data(), token.size()) == 0;
}

}  // namespace

HttpMonitor::HttpMonitor(const config::MonitorConfig& config, const Monitor& monitor)
    : config_(config), monitor_(monitor), server_(std::make_unique<httplib::Server>()) {}

HttpMonitor::~HttpMonitor() { stop(); }

void HttpMonitor::routes() {
  httplib::Server& s = *server_;
  s.new_task_queue = [] { return new httplib::ThreadPool(http_threads); };
  // cpp-httplib sets SO_REUSEPORT by default: a second daemon on the same port would then share
  // it silently, the kernel handing each request to either. SO_REUSEADDR alone still lets a
  // restarted daemon bind while old connections linger, and a taken port fails to bind.
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  s.set_payload_max_length(http_request_bytes_max);
  s.set_read_timeout(http_io_timeout_seconds, 0);
  s.set_write_timeout(http_io_timeout_seconds, 0);
  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    // The page and its two files hold no data: a browser opening the dashboard's link cannot
    // send a header, so they are served to anyone; the page sends ?token= as a bearer token.
    bool asset =
        std::ranges::any_of(embedded_assets(), [&](const Asset& a) { return a.path == req.path; });
    if (asset || config_.token.empty() ||
        token_matches(req.get_header_value("Authorization"), config_.token)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.status = 401;
    res.set_header("WWW-Authenticate", "Bearer realm=\"ferry\"");
    res.set_content("{\"error\":\"a bearer token is required\"}\n", json_type);
    return httplib::Server::HandlerResponse::Handled;
  });
  auto serve = [this](std::string Snapshot::*field, const char* type) {
    return [this, field, type](const httplib::Request&, httplib::Response& res) {
      auto snap = monitor_.snapshot();
      if (!snap) {
        res.status = 503;
        res.set_content("{\"error\":\"starting\"}\n", json_type);
        return;
      }
      res.set_header("Cache-Control", "no-store");
      res.set_content((*snap).*field, type);
    };
  };
  s.Get("/api/status", serve(&Snapshot::status, json_type));
  s.Get("/api/peers", serve(&Snapshot::peers, json_type));
  s.Get("/api/stations", serve(&Snapshot::stations, json_type));
  s.Get("/api/conflicts", serve(&Snapshot::conflicts, json_type));
  s.Get("/metrics", serve(&Snapshot::metrics, metrics_type));
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    auto snap = monitor_.snapshot();
    bool alive = monitor_.loop_alive();
    bool writable = snap && snap->store_writable;
    res.status = alive && writable ? 200 : 503;
    std::string body = std::string("{\"ok\":") + (res.status == 200 ? "true" : "false") +
                       ",\"event_loop\":" + (alive ? "true" : "false") +
                       ",\"store_writable\":" + (writable ? "true" : "false") + "}\n";
    res.set_header("Cache-Control", "no-store");
    res.set_content(body, json_type);
  });
  for (const Asset& asset : embedded_assets()) {
    s.Get(std::string(asset.path), [&asset](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(asset.text), std::string(content_type(asset.path)));
    });
  }
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content("{\"error\":\"" + std::to_string(res.status) + "\"}\n", json_type);
    }
  });
}

Result<std::string> HttpMonitor::start() {
  routes();
  int port = config_.port;
  bool bound = false;
  if (port == 0) {
    port = server_->bind_to_any_port(config_.host);
    bound = port > 0;
  } else {
    bound = server_->bind_to_port(config_.host, port);
  }
  std::string host =
      config_.host.find(':') != std::string::npos ? "[" + config_.host + "]" : config_.host;
  std::string where = host + ":" + std::to_string(config_.port);
  if (!bound)
    return fail(Errc::io, "cannot listen on " + where + " (in use, or not an address here)");
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // stop() only stops a server that runs: wait (bounded) until it does.
  auto deadline = std::chrono::steady_clock::now() + http_start_wait;
  while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return "http://" + host + ":" + std::to_string(port) + "/";
}

void HttpMonitor::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace ferry::daemon
