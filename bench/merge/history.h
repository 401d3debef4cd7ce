// The op history that ferry_bench_merge ingests, made in memory before anything is timed.
//
// Several origins (each with a key from NodeKey::generate) write ops over many records (keys) of
// one channel. Each op's body carries realistic merge parts (`set` of two or three fields, and on
// some ops an `inc` of volunteer hours and an `add` or `del` of tags) and its deps are the heads
// its writer had seen: mostly the record's current heads, sometimes the heads as they were one to
// three writes earlier (a writer that had not yet received the latest ops), which makes concurrent
// writes and so real conflicts. Each origin's ops form its feed (seq 1, 2, ... chained by prev)
// and are signed with sign_ops. The generator folds the same ops in memory with protocol/merge.h,
// in the order they were written, which gives the records and the digest a store must reach.
// The shape of a history depends only on the seed; op ids differ from run to run because the keys
// do. Nothing here throws but std::bad_alloc (msgpack-c is wrapped). Single-threaded apart from
// the signing threads of sign_ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bench/support/bench_support.h"
#include "protocol/crypto.h"
#include "protocol/error.h"
#include "protocol/merge.h"
#include "protocol/op.h"

namespace ferry::bench {

struct HistoryOptions {
  std::string channel;
  std::uint64_t ops = 0;   // at least keys
  std::uint32_t keys = 0;  // at least 1
  std::uint64_t seed = 0;
  std::size_t sign_threads = 2;
};

struct HistoryStats {
  std::uint64_t stale_deps_ops = 0;  // ops whose deps were older heads, not the current ones
  std::uint64_t set_writes = 0;      // fields written by `set`, over all ops
  std::uint64_t inc_ops = 0;
  std::uint64_t add_ops = 0;
  std::uint64_t del_ops = 0;
  std::uint64_t op_bytes = 0;            // encoded envelopes, signatures not counted
  std::uint64_t conflicted_records = 0;  // records left with at least one conflicting field
  std::uint64_t conflicted_fields = 0;
  std::size_t heads_max = 0;  // the most heads any record had after any op
  Seconds build_time{};       // Op::build of every op
  Seconds fold_time{};        // merge_op_of + context_of + apply of every op, in memory
  Seconds sign_time{};        // sign_ops of every feed
};

struct HistoryOrigin {
  std::string name;
  PublicKey key{};
  std::uint64_t ops = 0;  // the length of its feed
};

struct History {
  std::string channel;
  std::vector<HistoryOrigin> origins;
  std::vector<SignedOp> ops;                   // in the order they were written
  std::map<std::string, RecordState> records;  // key -> the in-memory fold of its ops
  // StateDigest over `records`: the channel's digest, and the node's for a store holding only it.
  Digest digest{};
  HistoryStats stats;
};

[[nodiscard]] Result<History> make_history(const HistoryOptions& options);

// Reorders ops feed by feed (origins in byte order, seq ascending), the order in which a catch-up
// sync sends them (OpStore::missing): a store then holds many ops whose deps come later.
void sort_by_feed(std::vector<SignedOp>& ops);

}  // namespace ferry::bench
