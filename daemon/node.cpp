#include "daemon/node.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/hex.h"
#include "protocol/receipt.h"

namespace ferry::daemon {

void LatencyHistogram::observe(double seconds) {
  std::size_t bucket = 0;
  while (bucket < bounds.size() && seconds > bounds[bucket]) ++bucket;
  ++counts[bucket];
  ++count;
  sum_seconds += seconds;
}

std::string_view ferry_version() { return FERRY_VERSION; }

namespace {

// A trust record is keyed by the node's public key and written whole.
OpDraft trust_op_draft(const TrustEntry& entry) {
  OpDraft draft;
  draft.channel = std::string(trust_channel);
  draft.kind = std::string(trust_kind);
  draft.key = to_hex(entry.key);
  draft.body = encode_trust_body(entry);
  draft.deps_from_heads = true;
  return draft;
}

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
  if (config_.authority) {
    trust_.emplace(*config_.authority);
    refresh_trust();
  }
}

bool Node::is_authority() const {
  return config_.authority && *config_.authority == key_.public_key();
}

void Node::refresh_trust() {
  if (!config_.authority) return;
  TrustView view(*config_.authority);
  std::string channel(trust_channel);
  auto keys = store_->record_keys(channel, trust_entries_max);
  if (!keys) {
    spdlog::error("trust view not refreshed: {}", to_string(keys.error()));
    return;
  }
  for (const std::string& key : *keys) {
    auto record = store_->record(channel, key);
    if (!record) continue;
    auto entry = entry_from_record(key, record->state);
    if (!entry) {
      spdlog::warn("trust record {} ignored: {}", key, entry.error().detail);
      continue;
    }
    view.put(std::move(*entry));
  }
  trust_ = std::move(view);
}

// Trust and receipts are the authority's alone; any other channel is checked against this node's
// own trust entry once it has one (a node not yet enrolled writes, and its ops wait for the entry
// before they are sent).
Result<void> Node::may_write(const OpDraft& draft) const {
  bool authority = is_authority();
  if ((draft.channel == trust_channel || draft.kind == trust_kind || draft.kind == receipt_kind) &&
      !authority) {
    return fail(Errc::unauthorized, "only the authority writes trust and receipts");
  }
  if (!trust_ || authority) return {};
  const TrustEntry* own = trust_->find(key_.public_key());
  if (own != nullptr && !trust_->may_write(key_.public_key(), draft.channel)) {
    return fail(Errc::unauthorized,
                "this node may not write channel " + draft.channel + " (see ferryctl trust list)");
  }
  return {};
}

std::future<std::vector<Result<void>>> Node::verify(
    std::shared_ptr<const std::vector<SignedOp>> ops, std::function<void()> done) {
  return signers_.verify(std::move(ops), std::move(done));
}

Result<storage::IngestReport> Node::ingest(std::span<const SignedOp> ops,
                                           std::span<const Result<void>> verified) {
  auto report = store_->ingest_verified(ops, verified, storage::IngestMode::all_or_nothing);
  if (report && report->stored > 0) {
    // The clock moves past what it hears of; an op far ahead of it is kept (history is
    // immutable) but counted, and does not drag the clock along.
    for (const SignedOp& s : ops) {
      if (!clock_.observe(s.op.header().hlc)) ++clock_ahead_;
    }
  }
  if (report && report->stored > 0 && std::ranges::any_of(ops, [](const SignedOp& s) {
        return s.op.header().channel == trust_channel;
      })) {
    refresh_trust();
  }
  return report;
}

Result<OpDraft> Node::trust_draft(const ipc::TrustAddRequest& request) const {
  if (!is_authority()) {
    return fail(Errc::unauthorized, "trust is written on the authority's daemon only");
  }
  std::string role = request.role.empty() ? std::string(role_station) : request.role;
  TrustEntry entry = default_entry(request.key, request.name, role);
  if (request.has_read) entry.read = request.read;
  if (request.has_write) entry.write = request.write;
  if (auto valid = check_entry(entry); !valid) return tl::unexpected(valid.error());
  if (const TrustEntry* named = trust_->find_name(request.name);
      named != nullptr && named->key != request.key && !named->revoked) {
    return fail(Errc::malformed,
                "the name " + request.name + " belongs to another node; revoke it first");
  }
  return trust_op_draft(entry);
}

Result<OpDraft> Node::trust_draft(const ipc::TrustRevokeRequest& request) const {
  if (!is_authority()) {
    return fail(Errc::unauthorized, "trust is written on the authority's daemon only");
  }
  const TrustEntry* entry = nullptr;
  if (auto key = from_hex<public_key_bytes>(request.who); key) entry = trust_->find(*key);
  if (entry == nullptr) entry = trust_->find_name(request.who);
  if (entry == nullptr) return fail(Errc::not_found, "no trusted node " + request.who);
  TrustEntry revoked = *entry;
  revoked.revoked = true;
  return trust_op_draft(revoked);
}

ipc::Bytes Node::encode_trust_list() const {
  ipc::ReplyWriter w;
  auto& pk = w.packer();
  pk.pack_map(3);
  w.key("ok");
  pk.pack_true();
  w.key("authority");
  if (config_.authority) {
    w.id(*config_.authority);
  } else {
    pk.pack_nil();
  }
  w.key("trust");
  std::size_t count = trust_ ? trust_->entries().size() : 0;
  pk.pack_array(static_cast<std::uint32_t>(count));
  if (!trust_) return w.take();
  for (const auto& [key, entry] : trust_->entries()) {
    pk.pack_map(6);
    w.key("name");
    w.text(entry.name);
    w.key("key");
    w.id(key);
    w.key("role");
    w.text(entry.role);
    w.key("read");
    pk.pack_array(static_cast<std::uint32_t>(entry.read.size()));
    for (const std::string& p : entry.read) w.text(p);
    w.key("write");
    pk.pack_array(static_cast<std::uint32_t>(entry.write.size()));
    for (const std::string& p : entry.write) w.text(p);
    w.key("revoked");
    pk.pack(entry.revoked);
  }
  return w.take();
}

ipc::Parsed<ipc::Bytes> Node::read(const ipc::Request& request, const IpcCounters& counters) {
  if (const auto* r = std::get_if<ipc::OpRequest>(&request)) return op(r->id);
  if (const auto* r = std::get_if<ipc::TrackRequest>(&request)) return track(r->id);
  if (std::holds_alternative<ipc::StatusRequest>(request)) return status(counters);
  if (const auto* r = std::get_if<ipc::GetRequest>(&request)) return get(*r);
  if (const auto* r = std::get_if<ipc::ConflictsRequest>(&request)) return conflicts(*r);
  if (std::holds_alternative<ipc::TrustListRequest>(request)) return encode_trust_list();
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
  auto tracked = store_->track(id);
  if (!tracked) return failure_for(tracked.error());
  ipc::ReplyWriter w;
  auto& pk = w.packer();
  pk.pack_map(3 + (tracked->forwarded ? 1 : 0) + (tracked->delivered ? 1 : 0));
  w.key("ok");
  pk.pack_true();
  w.key("state");
  w.text(tracked->delivered ? "delivered" : tracked->forwarded ? "forwarded" : "stored");
  w.key("stored_at");
  pk.pack_uint64(tracked->stored_at_ms);
  if (tracked->forwarded) {
    w.key("forwarded");
    pk.pack_map(3);
    w.key("peer");
    w.id(tracked->forwarded->peer);
    w.key("name");
    const TrustEntry* entry = trust_ ? trust_->find(tracked->forwarded->peer) : nullptr;
    w.text(entry != nullptr ? entry->name : "");
    w.key("at");
    pk.pack_uint64(tracked->forwarded->at_ms);
  }
  if (tracked->delivered) {
    w.key("delivered");
    pk.pack_map(3);
    w.key("receipt");
    w.id(tracked->delivered->receipt);
    w.key("hlc");
    pk.pack_uint64(tracked->delivered->receipt_hlc);
    w.key("at");
    pk.pack_uint64(tracked->delivered->at_ms);
  }
  return w.take();
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
  // The store's last digests are shown while they still cover every record, and while the
  // pacer holds a slow recomputation back (digest_current tells the client which).
  auto started = std::chrono::steady_clock::now();
  if (!store_->digests_current() &&
      (store_->last_digests() == nullptr || digest_pacer_.due(started))) {
    if (auto computed = store_->digests(); !computed) return failure_for(computed.error());
    digest_pacer_.computed(started, std::chrono::steady_clock::now());
  }
  const storage::Digests* digests = store_->last_digests();
  ipc::ReplyWriter w;
  auto& pk = w.packer();
  pk.pack_map(counters.replication ? 14 : 13);
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
  w.text(ferry_version());
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
  w.key("digest_current");
  pk.pack(store_->digests_current());
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
  if (counters.replication) {
    const ReplicationCounters& r = *counters.replication;
    w.key("replication");
    pk.pack_map(13);
    auto by_code = [&](const std::array<std::uint64_t, sync::error_code_count>& counts) {
      pk.pack_map(static_cast<std::uint32_t>(sync::error_code_count));
      for (std::size_t i = 0; i < sync::error_code_count; ++i) {
        w.key(sync::error_code_name(static_cast<sync::ErrorCode>(i)));
        pk.pack_uint64(counts[i]);
      }
    };
    w.key("errors_sent");
    by_code(r.errors_sent);
    w.key("errors_received");
    by_code(r.errors_received);
    for (auto [name, value] : {std::pair{"zap_refused", r.zap_refused},
                               {"sessions_opened", r.sessions_opened},
                               {"sessions_lost", r.sessions_lost},
                               {"ops_sent", r.ops_sent},
                               {"ops_received", r.ops_received},
                               {"duplicates", r.duplicates},
                               {"revoked_skipped", r.revoked_skipped},
                               {"receipts_written", r.receipts_written},
                               {"clock_ahead", clock_ahead_}}) {
      w.key(name);
      pk.pack_uint64(value);
    }
    w.key("trusted");
    pk.pack_uint64(trust_ ? trust_->entries().size() : 0);
    w.key("authority");
    pk.pack(is_authority());
  }
  return w.take();
}

Result<Op> Node::build(OpDraft& draft) {
  if (draft.channel.empty()) draft.channel = default_channel_;
  if (auto allowed = may_write(draft); !allowed) return tl::unexpected(allowed.error());
  return store_->build_op(key_.public_key(), clock_, draft);
}

std::future<std::vector<Signature>> Node::sign(std::vector<OpId> ids, std::function<void()> done) {
  return signers_.sign(std::move(ids), std::move(done));
}

Result<std::vector<storage::Appended>> Node::store(std::span<const SignedOp> ops) {
  auto stored = store_->store_signed(ops);
  if (!stored) {
    spdlog::error("commit of {} ops failed: {}", ops.size(), to_string(stored.error()));
  } else if (std::ranges::any_of(
                 ops, [](const SignedOp& s) { return s.op.header().channel == trust_channel; })) {
    refresh_trust();
  }
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
