// The baseline of the replication benchmark: how many op signatures this machine verifies per
// second with ferry::verify_op (libsodium's crypto_sign_verify_detached over the op's signing
// message), on one thread and on two, measured in the same run as the drain it is compared with.
//
// The ops are made like the station's: channel station/huaniao, kind case.submit, key
// case/HN-2026-…, the 300-byte case body of bench/support, one feed chained by prev, signed with
// sign_ops on 2 threads. Single-threaded API; measure_verify_rate starts and joins its own
// threads. Errors are Result values; a signature that does not verify is Errc::bad_signature.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "bench/support/bench_support.h"
#include "protocol/error.h"
#include "protocol/op.h"

namespace ferry::bench {

struct VerifyRate {
  std::size_t threads = 0;
  std::uint64_t verifies = 0;
  Seconds elapsed{};
  double cpu_seconds = 0;  // of the whole benchmark process meanwhile (nothing else runs in it)
  double per_second() const { return static_cast<double>(verifies) / elapsed.count(); }
  // What one verify costs in CPU time, whatever share of the cores other processes took.
  double cpu_us_per_verify() const { return cpu_seconds * 1e6 / static_cast<double>(verifies); }
};

// `count` signed ops of one new feed, made as described above.
[[nodiscard]] Result<std::vector<SignedOp>> make_signed_ops(std::size_t count);

// Verifies every op on `threads` threads (an equal share each), pass after pass, until `target`
// has passed; at least one pass.
[[nodiscard]] Result<VerifyRate> measure_verify_rate(std::span<const SignedOp> ops,
                                                     std::size_t threads, Seconds target);

}  // namespace ferry::bench
