#include "protocol/batch_signer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

#include "protocol/ed25519_batch.h"

namespace ferry {

namespace {

// Runs range(first, last) over [0, n) split into `threads` shares, the first on the calling
// thread; small jobs run on the calling thread alone.
template <class Range>
void split_over_threads(std::size_t n, std::size_t threads, Range range) {
  std::size_t workers = n < parallel_sign_ops_min ? 1 : std::max<std::size_t>(threads, 1);
  std::size_t share = (n + workers - 1) / workers;
  std::vector<std::jthread> helpers;
  for (std::size_t w = 1; w < workers; ++w) {
    std::size_t first = std::min(n, w * share);
    std::size_t last = std::min(n, first + share);
    helpers.emplace_back(range, first, last);
  }
  range(0, std::min(n, share));
}  // the helpers join here

// verify_op for ops[first, last), into verified: the range is checked as one batch, and only
// when the batch fails (some op is bad) is each op checked alone, to name the bad ones.
void verify_range(std::span<const SignedOp> ops, std::size_t first, std::size_t last,
                  std::span<Result<void>> verified) {
  const std::size_t n = last - first;
  std::vector<std::array<std::uint8_t, op_signing_message_bytes>> messages(n);
  std::vector<SignatureToCheck> items(n);
  for (std::size_t i = 0; i < n; ++i) {
    const SignedOp& signed_op = ops[first + i];
    messages[i] = op_signing_message(signed_op.op.id());
    items[i] = SignatureToCheck{&signed_op.op.header().origin, &signed_op.signature, messages[i]};
  }
  if (verify_batch(items)) {
    for (std::size_t i = first; i < last; ++i) verified[i] = {};
    return;
  }
  for (std::size_t i = first; i < last; ++i) verified[i] = verify_op(ops[i].op, ops[i].signature);
}

}  // namespace

std::vector<Result<void>> verify_ops(std::span<const SignedOp> ops, std::size_t threads) {
  std::vector<Result<void>> verified(ops.size());
  split_over_threads(ops.size(), threads, [&](std::size_t first, std::size_t last) {
    verify_range(ops, first, last, verified);
  });
  return verified;
}

std::vector<SignedOp> sign_ops(std::vector<Op> ops, const NodeKey& key, std::size_t threads) {
  std::vector<Signature> signatures(ops.size());
  split_over_threads(ops.size(), threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) {
      FERRY_ASSERT(ops[i].header().origin == key.public_key());
      signatures[i] = key.sign(op_signing_message(ops[i].id()));
    }
  });
  std::vector<SignedOp> signed_ops;
  signed_ops.reserve(ops.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    signed_ops.push_back(SignedOp{std::move(ops[i]), signatures[i]});
  }
  return signed_ops;
}

SigningPool::SigningPool(const NodeKey& key, std::size_t threads)
    : key_(key), threads_per_kind_(threads) {
  FERRY_ASSERT(threads > 0);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { work(signing_, wake_signing_, false); });
    threads_.emplace_back([this] { work(verifying_, wake_verifying_, true); });
  }
}

SigningPool::~SigningPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_signing_.notify_all();
  wake_verifying_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::future<std::vector<Signature>> SigningPool::sign(std::vector<OpId> ids,
                                                      std::function<void()> done) {
  struct State {
    std::vector<OpId> ids;
    std::vector<Signature> signatures;
    std::promise<std::vector<Signature>> promise;
  };
  auto state = std::make_shared<State>();
  state->signatures.resize(ids.size());
  state->ids = std::move(ids);
  auto future = state->promise.get_future();
  auto job = std::make_shared<Job>();
  job->items = state->ids.size();
  job->part = [this, state](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) {
      state->signatures[i] = key_.sign(op_signing_message(state->ids[i]));
    }
  };
  job->finish = [state] { state->promise.set_value(std::move(state->signatures)); };
  job->done = std::move(done);
  queue(std::move(job), signing_, wake_signing_);
  return future;
}

std::future<std::vector<Result<void>>> SigningPool::verify(
    std::shared_ptr<const std::vector<SignedOp>> ops, std::function<void()> done) {
  struct State {
    std::shared_ptr<const std::vector<SignedOp>> ops;
    std::vector<Result<void>> verified;
    std::promise<std::vector<Result<void>>> promise;
  };
  auto state = std::make_shared<State>();
  state->verified.resize(ops->size());
  state->ops = std::move(ops);
  auto future = state->promise.get_future();
  auto job = std::make_shared<Job>();
  job->items = state->ops->size();
  job->part = [state](std::size_t first, std::size_t last) {
    verify_range(*state->ops, first, last, state->verified);
  };
  job->finish = [state] { state->promise.set_value(std::move(state->verified)); };
  job->done = std::move(done);
  queue(std::move(job), verifying_, wake_verifying_);
  return future;
}

void SigningPool::queue(std::shared_ptr<Job> job, std::deque<Task>& to,
                        std::condition_variable& wake) {
  std::size_t parts = job->items < parallel_sign_ops_min ? 1 : threads_per_kind_;
  std::size_t share = (job->items + parts - 1) / parts;
  {
    std::lock_guard lock(mutex_);
    job->parts_left = parts;
    for (std::size_t p = 0; p < parts; ++p) {
      std::size_t first = std::min(job->items, p * share);
      to.push_back(Task{job, first, std::min(job->items, first + share)});
    }
  }
  wake.notify_all();
}

void SigningPool::work(std::deque<Task>& from, std::condition_variable& wake, bool background) {
  if (background) {
    // Linux gives each thread its own nice value (setpriority on a thread id), starting from its
    // creator's. Raising it needs no privilege; should it fail, the thread simply competes as an
    // equal.
    const auto tid = static_cast<id_t>(gettid());
    errno = 0;
    const int base = getpriority(PRIO_PROCESS, tid);
    if (errno == 0) {
      (void)setpriority(PRIO_PROCESS, tid, std::min(base + verify_thread_nice, nice_max));
    }
  }
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      wake.wait(lock, [this, &from] { return stopping_ || !from.empty(); });
      if (from.empty()) return;  // stopping, and every queued job of this kind is done
      task = std::move(from.front());
      from.pop_front();
    }
    Job& job = *task.job;
    job.part(task.first, task.last);
    bool last_part = false;
    {
      std::lock_guard lock(mutex_);
      last_part = --job.parts_left == 0;
    }
    if (last_part) {
      job.finish();
      if (job.done) job.done();
    }
  }
}

}  // namespace ferry
