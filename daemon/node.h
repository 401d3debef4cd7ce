// One ferry node as the local IPC sees it: its key, clock and store, and what each request does.
//
// Node knows nothing of sockets: it turns parsed requests into reply bytes. Submits are handed
// over in batches (group commit): one durable commit per batch, one reply per submit, sent by
// the caller only after commit() returned. A Node is used from the daemon's event-loop thread;
// signing inside a commit may use more threads (see protocol/batch_signer.h).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "config/config.h"
#include "protocol/hlc.h"
#include "protocol/ipc.h"
#include "protocol/node_key.h"
#include "storage/op_store.h"

namespace ferry::daemon {

// What the IPC layer counts, reported by status.
struct IpcCounters {
  std::uint64_t requests = 0;
  std::array<std::uint64_t, ipc::code_count> errors{};
  std::uint64_t disconnects = 0;
  std::uint64_t unsent_replies = 0;
  std::size_t submit_queue = 0;
  std::size_t pulls_waiting = 0;
};

struct PullPage {
  std::vector<storage::StoredOp> ops;
  std::uint64_t next = 0;
};

class Node {
 public:
  Node(const config::Config& config, NodeKey key, std::unique_ptr<storage::OpStore> store,
       WallClock& wall);

  // op, track, status: answered at once.
  ipc::Bytes read(const ipc::Request& request, const IpcCounters& counters);

  // Stores the drafts in one durable commit (channels defaulted first) and returns one reply
  // per draft, in order. A draft that cannot become an op fails alone; a storage failure fails
  // the whole batch, and nothing of it is stored.
  std::vector<ipc::Bytes> commit(std::vector<OpDraft> drafts);

  // Ops that arrived after `after`, filtered by channel, at most `limit`; `next` moves past every
  // op looked at. Bounded: at most pull_scan_pages_max pages of `limit` ops are looked at.
  Result<PullPage> pull(const ipc::PullRequest& request, std::uint64_t after);

  ipc::Bytes encode_pull(const PullPage& page) const;

  std::uint64_t last_arrival() const { return store_->last_arrival(); }
  const config::Config& config() const { return config_; }

 private:
  ipc::Bytes status(const IpcCounters& counters);
  ipc::Bytes op(const OpId& id);
  ipc::Bytes track(const OpId& id);
  std::vector<ipc::Bytes> commit_one_by_one(const std::vector<OpDraft>& drafts);

  config::Config config_;
  NodeKey key_;
  std::unique_ptr<storage::OpStore> store_;
  WallClock& wall_;
  HybridClock clock_;
  std::string default_channel_;
  std::chrono::steady_clock::time_point started_;
};

inline constexpr std::size_t pull_scan_pages_max = 16;

}  // namespace ferry::daemon
