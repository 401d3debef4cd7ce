// Signs a batch of new ops on several threads.
//
// Ed25519 signing is the most expensive step of a local append (tens of microseconds per op),
// and signatures are independent of each other: a feed chains op ids, which are hashes of the
// envelopes, not signatures. So a batch is built in order on one thread and its signatures are
// computed in parallel. The result is the same as signing each op in turn.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "protocol/op.h"

namespace ferry {

// Batches smaller than this are signed on the calling thread: a thread start costs more.
inline constexpr std::size_t parallel_sign_ops_min = 64;

// Signs every op with key (all must have key's origin), on up to `threads` threads.
std::vector<SignedOp> sign_ops(std::vector<Op> ops, const NodeKey& key, std::size_t threads);

// verify_op for every op, on up to `threads` threads (a peer's batch: verifying is the costly
// part of storing it).
std::vector<Result<void>> verify_ops(std::span<const SignedOp> ops, std::size_t threads);

// How much lower the verifying threads run than the thread that made the pool: added to its nice
// value, up to nice_max.
inline constexpr int verify_thread_nice = 5;
inline constexpr int nice_max = 19;

// Fixed sets of threads that sign op ids and verify peers' ops in the background, so that a
// caller can commit one batch while the next is being signed or verified. Each kind has
// `threads` threads of its own, and each job is split across its kind's threads; each kind runs
// its jobs in the order given. Signing jobs (a local client waits for each) never queue behind
// verification (a peer's batches, which may be many). The verifying threads run at nice
// verify_thread_nice: when the cores are full, the caller's thread (the event loop, which
// stores what was verified and serves clients) and the signing threads come first, and
// verification takes what they leave. The key must outlive the pool; the destructor finishes
// the queued jobs and joins the threads.
class SigningPool {
 public:
  SigningPool(const NodeKey& key, std::size_t threads);
  ~SigningPool();
  SigningPool(const SigningPool&) = delete;
  SigningPool& operator=(const SigningPool&) = delete;

  // Signs the ids (their op signing messages); `done`, if set, runs on a pool thread once the
  // future is ready (the daemon uses it to wake its event loop).
  std::future<std::vector<Signature>> sign(std::vector<OpId> ids, std::function<void()> done);

  // verify_op for every op, as verify_ops does; the ops are shared with the caller, who must not
  // change them until the future is ready. `done` as for sign().
  std::future<std::vector<Result<void>>> verify(std::shared_ptr<const std::vector<SignedOp>> ops,
                                                std::function<void()> done);

 private:
  // One job: `items` indices, run in parts of [first, last) by `part`; `finish` runs once, on the
  // thread that completes the last part, then `done`.
  struct Job {
    std::size_t items = 0;
    std::function<void(std::size_t first, std::size_t last)> part;
    std::function<void()> finish;
    std::function<void()> done;
    std::size_t parts_left = 0;  // guarded by the pool's mutex
  };
  struct Task {
    std::shared_ptr<Job> job;
    std::size_t first = 0;
    std::size_t last = 0;
  };
  void queue(std::shared_ptr<Job> job, std::deque<Task>& to, std::condition_variable& wake);
  void work(std::deque<Task>& from, std::condition_variable& wake, bool background);

  const NodeKey& key_;
  std::mutex mutex_;
  // One per kind: a signing job wakes only the signing threads, and the other way round.
  std::condition_variable wake_signing_;
  std::condition_variable wake_verifying_;
  const std::size_t threads_per_kind_;
  std::deque<Task> signing_;
  std::deque<Task> verifying_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace ferry
