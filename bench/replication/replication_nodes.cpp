#include "bench/replication/replication_nodes.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <msgpack.hpp>

#include "config/config.h"
#include "protocol/hex.h"
#include "protocol/node_key.h"

namespace ferry::bench {
namespace {

constexpr std::int64_t reply_bytes_max = 8 << 20;

std::vector<std::uint8_t> bytes_of(const msgpack::sbuffer& buffer) {
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

void pack_text(msgpack::packer<msgpack::sbuffer>& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

Result<void> write_new_file(const std::string& path, const std::string& text) {
  std::FILE* file = std::fopen(path.c_str(), "wx");
  if (file == nullptr) return fail(Errc::io, "cannot create " + path + ": " + std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), file) == text.size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) return fail(Errc::io, "cannot write " + path);
  return {};
}

// dir/name as a new node directory with a fresh key and the config of `settings` (whose node's
// data_dir is filled in here).
Result<NodeFiles> create_node(const std::string& dir, config::NewNodeSettings settings,
                              const NodeKey& key) {
  std::error_code ec;
  const std::string data_dir =
      std::filesystem::absolute(dir + "/" + settings.node.name, ec).string();
  if (ec) return fail(Errc::io, "cannot make " + dir + " absolute: " + ec.message());
  if (::mkdir(data_dir.c_str(), 0700) != 0) {
    return fail(Errc::io, "cannot create " + data_dir + ": " + std::strerror(errno));
  }
  if (auto saved = key.save(data_dir + "/" + config::node_key_file_name); !saved) {
    return tl::unexpected(saved.error());
  }
  settings.node.data_dir = data_dir;
  const std::string config_path = data_dir + "/" + config::config_file_name;
  std::string text = config::render_config(settings);
  // No status reports (docs/monitor.md): a report is an op of the station's own, which would
  // make the ops the station sends differ from the ops the benchmark filed.
  const std::string reports = "\nstatus_interval_ms = ";
  const std::size_t at = text.find(reports);
  if (at == std::string::npos) return fail(Errc::malformed, "no status_interval_ms in the config");
  const std::size_t value = at + reports.size();
  text.replace(value, text.find('\n', value) - value, "0");
  if (auto parsed = config::parse_config(text, config_path); !parsed) {
    return tl::unexpected(parsed.error());
  }
  if (auto written = write_new_file(config_path, text); !written) {
    return tl::unexpected(written.error());
  }
  auto loaded = config::load_config(config_path);
  if (!loaded) return tl::unexpected(loaded.error());
  return NodeFiles{StationFiles{config_path, loaded->ipc.endpoint, data_dir + "/ferryd.log"},
                   data_dir, key.public_key_hex()};
}

std::string loopback_endpoint(int port) { return "tcp://127.0.0.1:" + std::to_string(port); }

}  // namespace

Result<int> free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(Errc::io, std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  const bool bound = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) == 0;
  ::close(fd);
  if (!bound) return fail(Errc::io, "cannot find a free loopback port");
  return static_cast<int>(ntohs(addr.sin_port));
}

// Each node's monitor on a port of the kernel's choice: two nodes run on this machine.
constexpr const char* monitor_anywhere = "127.0.0.1:0";

Result<NodeFiles> create_hub(const std::string& dir, int hub_port) {
  const NodeKey key = NodeKey::generate();
  config::NewNodeSettings settings{config::NodeConfig{hub_name, {}, config::Role::hub},
                                   loopback_endpoint(hub_port),
                                   {},
                                   key.public_key(),
                                   monitor_anywhere};
  return create_node(dir, std::move(settings), key);
}

Result<NodeFiles> create_station_node(const std::string& dir, const std::string& hub_key_hex,
                                      int link_port) {
  auto hub_key = config::parse_public_key(hub_key_hex);
  if (!hub_key) return tl::unexpected(hub_key.error());
  const NodeKey key = NodeKey::generate();
  config::NewNodeSettings settings{config::NodeConfig{station_name, {}, config::Role::station},
                                   {},
                                   {config::UpstreamConfig{loopback_endpoint(link_port), *hub_key}},
                                   *hub_key,
                                   monitor_anywhere};
  return create_node(dir, std::move(settings), key);
}

IpcClient::IpcClient(zmq::context_t& context, std::string endpoint,
                     std::chrono::milliseconds timeout)
    : context_(context), endpoint_(std::move(endpoint)), timeout_(timeout) {}

Result<void> IpcClient::open() {
  try {
    socket_.emplace(context_, zmq::socket_type::req);
    socket_->set(zmq::sockopt::linger, 0);
    socket_->set(zmq::sockopt::sndtimeo, static_cast<int>(timeout_.count()));
    socket_->set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout_.count()));
    socket_->set(zmq::sockopt::maxmsgsize, reply_bytes_max);
    socket_->connect(endpoint_);
    return {};
  } catch (const zmq::error_t& e) {
    socket_.reset();
    return fail(Errc::io, "IPC socket to " + endpoint_ + ": " + e.what());
  }
}

Result<Reply> IpcClient::call(std::span<const std::uint8_t> request) {
  if (!socket_) {
    if (auto opened = open(); !opened) return tl::unexpected(opened.error());
  }
  try {
    zmq::message_t frame;
    if (!socket_->send(zmq::buffer(request.data(), request.size()), zmq::send_flags::none) ||
        !socket_->recv(frame)) {
      socket_.reset();
      return fail(Errc::timeout, "no reply from " + endpoint_ + " within " +
                                     std::to_string(timeout_.count()) + " ms");
    }
    return decode_reply({static_cast<const std::uint8_t*>(frame.data()), frame.size()});
  } catch (const zmq::error_t& e) {
    socket_.reset();
    return fail(Errc::io, "IPC request to " + endpoint_ + ": " + e.what());
  }
}

Result<Reply> IpcClient::call_ok(std::span<const std::uint8_t> request) {
  auto reply = call(request);
  if (reply && !reply->ok) return fail(Errc::io, "request refused: " + reply->error_code);
  return reply;
}

std::vector<std::uint8_t> command_request(std::string_view cmd) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pack_text(pk, "cmd");
  pack_text(pk, cmd);
  return bytes_of(buffer);
}

std::vector<std::uint8_t> track_request(const std::string& id_hex) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(2);
  pack_text(pk, "cmd");
  pack_text(pk, "track");
  pack_text(pk, "id");
  pack_text(pk, id_hex);
  return bytes_of(buffer);
}

std::vector<std::uint8_t> trust_add_request(const std::string& name, const std::string& key_hex,
                                            const std::string& role) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(4);
  pack_text(pk, "cmd");
  pack_text(pk, "trust_add");
  pack_text(pk, "name");
  pack_text(pk, name);
  pack_text(pk, "key");
  pack_text(pk, key_hex);
  pack_text(pk, "role");
  pack_text(pk, role);
  return bytes_of(buffer);
}

std::optional<std::string> reply_text(const Reply& reply, std::string_view key) {
  const msgpack::object* value = find_key(reply.root.get(), key);
  if (value == nullptr || value->type != msgpack::type::STR) return std::nullopt;
  return std::string(value->via.str.ptr, value->via.str.size);
}

Result<UpstreamView> upstream_view(const Reply& peers_reply) {
  const msgpack::object* peers = find_key(peers_reply.root.get(), "peers");
  if (peers == nullptr || peers->type != msgpack::type::ARRAY) {
    return fail(Errc::malformed, "a peers reply without a peers array");
  }
  for (std::uint32_t i = 0; i < peers->via.array.size; ++i) {
    const msgpack::object& peer = peers->via.array.ptr[i];
    const msgpack::object* upstream = find_key(peer, "upstream");
    const msgpack::object* connected = find_key(peer, "connected");
    if (upstream == nullptr || upstream->type != msgpack::type::BOOLEAN || !upstream->via.boolean) {
      continue;
    }
    auto backlog = uint_at(peer, "backlog");
    auto sent = uint_at(peer, "ops_sent");
    if (connected == nullptr || connected->type != msgpack::type::BOOLEAN || !backlog || !sent) {
      return fail(Errc::malformed, "a peer without connected, backlog or ops_sent");
    }
    return UpstreamView{connected->via.boolean, *backlog, *sent};
  }
  return fail(Errc::not_found, "no upstream among the peers");
}

Result<ReplicationView> replication_view(const Reply& status_reply) {
  const msgpack::object& root = status_reply.root.get();
  const msgpack::object* r = find_key(root, "replication");
  auto ops = uint_at(root, "ops");
  if (r == nullptr || !ops) return fail(Errc::malformed, "a status reply without replication");
  ReplicationView view{*ops};
  for (auto [name, target] : {std::pair{"ops_sent", &view.ops_sent},
                              {"ops_received", &view.ops_received},
                              {"duplicates", &view.duplicates},
                              {"sessions_opened", &view.sessions_opened},
                              {"receipts_written", &view.receipts_written}}) {
    auto value = uint_at(*r, name);
    if (!value) return fail(Errc::malformed, std::string("status: replication without ") + name);
    *target = *value;
  }
  return view;
}

}  // namespace ferry::bench
