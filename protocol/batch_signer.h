// Signs a batch of new ops on several threads.
//
// Ed25519 signing is the most expensive step of a local append (tens of microseconds per op),
// and signatures are independent of each other: a feed chains op ids, which are hashes of the
// envelopes, not signatures. So a batch is built in order on one thread and its signatures are
// computed in parallel. The result is the same as signing each op in turn.
#pragma once

#include <cstddef>
#include <vector>

#include "protocol/op.h"

namespace ferry {

// Batches smaller than this are signed on the calling thread: a thread start costs more.
inline constexpr std::size_t parallel_sign_ops_min = 64;

// Signs every op with key (all must have key's origin), on up to `threads` threads.
std::vector<SignedOp> sign_ops(std::vector<Op> ops, const NodeKey& key, std::size_t threads);

}  // namespace ferry
