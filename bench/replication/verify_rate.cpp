#include "bench/replication/verify_rate.h"

#include <algorithm>
#include <atomic>
#include <string>
#include <system_error>
#include <thread>

#include "bench/support/proc_stats.h"
#include "protocol/batch_signer.h"
#include "protocol/node_key.h"

namespace ferry::bench {
namespace {

constexpr std::size_t sign_threads = 2;
constexpr std::uint64_t passes_max = 1'000'000;
constexpr std::uint64_t hlc_first = 1'000'000;

// Verifies ops[first, last); the number of signatures that failed.
std::uint64_t verify_range(std::span<const SignedOp> ops, std::size_t first, std::size_t last) {
  std::uint64_t failed = 0;
  for (std::size_t i = first; i < last; ++i) {
    if (!verify_op(ops[i].op, ops[i].signature)) ++failed;
  }
  return failed;
}

// One pass over every op on `threads` threads; the number of failed verifications.
Result<std::uint64_t> verify_pass(std::span<const SignedOp> ops, std::size_t threads) {
  const std::size_t share = (ops.size() + threads - 1) / threads;
  std::atomic<std::uint64_t> failed{0};
  try {
    std::vector<std::jthread> helpers;
    for (std::size_t t = 1; t < threads; ++t) {
      const std::size_t first = std::min(ops.size(), t * share);
      const std::size_t last = std::min(ops.size(), first + share);
      helpers.emplace_back([&, first, last] { failed += verify_range(ops, first, last); });
    }
    failed += verify_range(ops, 0, std::min(ops.size(), share));
  } catch (const std::system_error& e) {
    return fail(Errc::io, std::string("cannot start a verify thread: ") + e.what());
  }  // the helpers join here
  return failed.load();
}

}  // namespace

Result<std::vector<SignedOp>> make_signed_ops(std::size_t count) {
  FERRY_ASSERT(count > 0);
  FERRY_ASSERT(count <= case_number_max);
  auto note_bytes = note_bytes_for_body();
  if (!note_bytes) return tl::unexpected(note_bytes.error());
  const NodeKey key = NodeKey::generate();
  std::vector<Op> ops;
  ops.reserve(count);
  OpId prev{};
  for (std::size_t i = 0; i < count; ++i) {
    auto body = pack_body(i + 1, *note_bytes);
    if (!body) return tl::unexpected(body.error());
    FERRY_ASSERT(body->size() == body_bytes);
    OpDraft draft;
    draft.channel = "station/huaniao";
    draft.kind = "case.submit";
    draft.key = "case/" + case_number(i + 1);
    draft.body = std::move(*body);
    auto op = Op::build(key.public_key(), i + 1, prev, hlc_first + i, draft);
    if (!op) return tl::unexpected(op.error());
    prev = op->id();
    ops.push_back(std::move(*op));
  }
  return sign_ops(std::move(ops), key, sign_threads);
}

Result<VerifyRate> measure_verify_rate(std::span<const SignedOp> ops, std::size_t threads,
                                       Seconds target) {
  FERRY_ASSERT(!ops.empty());
  FERRY_ASSERT(threads > 0);
  VerifyRate rate{threads, 0, {}, 0};
  const double cpu_before = self_cpu_seconds();
  const Clock::time_point start = Clock::now();
  for (std::uint64_t pass = 0; pass < passes_max; ++pass) {
    auto failed = verify_pass(ops, threads);
    if (!failed) return tl::unexpected(failed.error());
    if (*failed != 0) {
      return fail(Errc::bad_signature, std::to_string(*failed) + " signatures did not verify");
    }
    rate.verifies += ops.size();
    rate.elapsed = std::chrono::duration_cast<Seconds>(Clock::now() - start);
    if (rate.elapsed >= target) break;
  }
  rate.cpu_seconds = self_cpu_seconds() - cpu_before;
  FERRY_ASSERT(rate.elapsed.count() > 0);
  return rate;
}

}  // namespace ferry::bench
