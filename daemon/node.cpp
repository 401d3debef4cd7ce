#include "daemon/node.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/hex.h"

namespace ferry::daemon {
namespace {

constexpr const char* ferry_version = "0.1.0";

tl::unexpected<ipc::Failure> failure_for(const Error& error) {
  return tl::unexpected(ipc::Failure{ipc::code_for(error), error.detail});
}

}  // namespace

Node::Node(const config::Config& config, NodeKey key, std::unique_ptr<storage::OpStore> store,
           WallClock& wall)
    : config_(config),
      key_(std::move(key)),
      signers_(key_, config.limits.sign_threads),
      store_(std::move(store)),
      wall_(wall),
      clock_(wall, config.limits.clock_drift_max),
      default_channel_("station/" + config.node.name),
      started_(std::chrono::steady_clock::now()) {
  // Our own ops were stamped by this clock before a restart: never go below them.
  auto own = store_->max_hlc(key_.public_key());
  if (own) clock_.restore(*own);
}

ipc::Parsed<ipc::Bytes> Node::read(const ipc::Request& request, const IpcCounters& counters) {
  if (const auto* r = std::get_if<ipc::OpRequest>(&request)) return op(r->id);
  if (const auto* r = std::get_if<ipc::TrackRequest>(&request)) return track(r->id);
  if (std::holds_alternative<ipc::StatusRequest>(request)) return status(counters);
  if (const auto* r = std::get_if<ipc::GetRequest>(&request)) return get(*r);
  if (const auto* r = std::get_if<ipc::ConflictsRequest>(&request)) return conflicts(*r);
  return tl::unexpected(ipc::Failure{ipc::Code::internal, "not a read request"});
}

ipc::Parsed<ipc::Bytes> Node::op(const OpId& id) {
  auto stored = store_->get(id);
  if (!stored) return failure_for(stored.error());
  ipc::ReplyWriter w;
  w.packer().pack_map(2);
  w.key("ok");
  w.packer().pack_true();
  w.key("op");
  w.op(stored->signed_op, stored->arrival, stored->stored_at_ms);
  return w.take();
}

ipc::Parsed<ipc::Bytes> Node::track(const OpId& id) {
  auto stored = store_->get(id);
  if (!stored) return failure_for(stored.error());
  return ipc::encode_track(stored->stored_at_ms);
}

ipc::Parsed<ipc::Bytes> Node::get(const ipc::GetRequest& request) {
  const std::string& channel = request.channel.empty() ? default_channel_ : request.channel;
  auto record = store_->record(channel, request.key);
  if (!record) {
    if (record.error().code == Errc::not_found) {
      return tl::unexpected(
          ipc::Failure{ipc::Code::not_found, "no record " + request.key + " in " + channel});
    }
    return failure_for(record.error());
  }
  ipc::ReplyWriter w;
  w.packer().pack_map(2);
  w.key("ok");
  w.packer().pack_true();
  w.key("record");
  w.record(record->channel, record->key, record->state);
  return w.take();
}

ipc::Parsed<ipc::Bytes> Node::conflicts(const ipc::ConflictsRequest& request) {
  auto records = store_->conflicted(request.limit);
  if (!records) return failure_for(records.error());
  ipc::ReplyWriter w;
  auto& pk = w.packer();
  pk.pack_map(2);
  w.key("ok");
  pk.pack_true();
  w.key("conflicts");
  pk.pack_array(static_cast<std::uint32_t>(records->size()));
  for (const storage::Record& record : *records) {
    std::vector<ConflictView> views = ferry::conflicts(record.state);
    pk.pack_map(3);
    w.key("channel");
    w.text(record.channel);
    w.key("key");
    w.text(record.key);
    w.key("fields");
    pk.pack_array(static_cast<std::uint32_t>(views.size()));
    for (const ConflictView& view : views) w.text(view.field);
  }
  return w.take();
}

ipc::Parsed<ipc::Bytes> Node::status(const IpcCounters& counters) {
  auto digests = store_->digests();
  if (!digests) return failure_for(digests.error());
  ipc::ReplyWriter w;
  auto& pk = w.packer();
  pk.pack_map(12);
  w.key("ok");
  pk.pack_true();
  w.key("node");
  pk.pack_map(3);
  w.key("name");
  w.text(config_.node.name);
  w.key("id");
  w.id(key_.public_key());
  w.key("role");
  w.text(config::role_name(config_.node.role));
  w.key("ops");
  pk.pack_uint64(store_->op_count());
  w.key("feeds");
  pk.pack_uint64(store_->version_vector().entries().size());
  w.key("last_arrival");
  pk.pack_uint64(store_->last_arrival());
  w.key("uptime_ms");
  pk.pack_uint64(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                std::chrono::steady_clock::now() - started_)
                                                .count()));
  w.key("version");
  w.text(ferry_version);
  w.key("hlc");
  pk.pack_uint64(clock_.last());
  w.key("digest");
  w.id(digests->node);
  w.key("channels");
  pk.pack_map(static_cast<std::uint32_t>(digests->channels.size()));
  for (const auto& [channel, digest] : digests->channels) {
    w.key(channel);
    w.id(digest);
  }
  w.key("pending");
  pk.pack_uint64(store_->pending_count());
  w.key("ipc");
  pk.pack_map(6);
  w.key("requests");
  pk.pack_uint64(counters.requests);
  w.key("errors");
  pk.pack_map(static_cast<std::uint32_t>(ipc::code_count));
  for (std::size_t i = 0; i < ipc::code_count; ++i) {
    w.key(ipc::code_name(static_cast<ipc::Code>(i)));
    pk.pack_uint64(counters.errors[i]);
  }
  w.key("submit_queue");
  pk.pack_uint64(counters.submit_queue);
  w.key("pulls_waiting");
  pk.pack_uint64(counters.pulls_waiting);
  w.key("disconnects");
  pk.pack_uint64(counters.disconnects);
  w.key("unsent_replies");
  pk.pack_uint64(counters.unsent_replies);
  return w.take();
}

Result<Op> Node::build(OpDraft& draft) {
  if (draft.channel.empty()) draft.channel = default_channel_;
  return store_->build_op(key_.public_key(), clock_, draft);
}

std::future<std::vector<Signature>> Node::sign(std::vector<OpId> ids, std::function<void()> done) {
  return signers_.sign(std::move(ids), std::move(done));
}

Result<std::vector<storage::Appended>> Node::store(std::span<const SignedOp> ops) {
  auto stored = store_->store_signed(ops);
  if (!stored) spdlog::error("commit of {} ops failed: {}", ops.size(), to_string(stored.error()));
  return stored;
}

Result<PullPage> Node::pull(const ipc::PullRequest& request, std::uint64_t after) {
  PullPage page;
  page.next = after;
  std::size_t bytes = 0;
  for (std::size_t scanned = 0; scanned < pull_scan_pages_max; ++scanned) {
    auto ops = store_->arrived_after(page.next, request.limit);
    if (!ops) return tl::unexpected(ops.error());
    if (ops->empty()) break;
    for (storage::StoredOp& s : *ops) {
      if (page.ops.size() == request.limit || bytes >= pull_reply_bytes_max) return page;
      page.next = s.arrival;
      const std::string& channel = s.signed_op.op.header().channel;
      bool wanted = request.channels.empty() ||
                    std::find(request.channels.begin(), request.channels.end(), channel) !=
                        request.channels.end();
      if (wanted) {
        bytes += s.signed_op.op.bytes().size();
        page.ops.push_back(std::move(s));
      }
    }
    if (!page.ops.empty() || ops->size() < request.limit) break;
  }
  return page;
}

ipc::Bytes Node::encode_pull(const PullPage& page) const {
  ipc::ReplyWriter w;
  w.packer().pack_map(3);
  w.key("ok");
  w.packer().pack_true();
  w.key("ops");
  w.packer().pack_array(static_cast<std::uint32_t>(page.ops.size()));
  for (const storage::StoredOp& s : page.ops) w.op(s.signed_op, s.arrival, s.stored_at_ms);
  w.key("next");
  w.packer().pack_uint64(page.next);
  return w.take();
}

}  // namespace ferry::daemon
