#include "protocol/batch_signer.h"

#include <algorithm>
#include <thread>

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

}  // namespace

std::vector<Result<void>> verify_ops(std::span<const SignedOp> ops, std::size_t threads) {
  std::vector<Result<void>> verified(ops.size());
  split_over_threads(ops.size(), threads, [&](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) verified[i] = verify_op(ops[i].op, ops[i].signature);
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

struct SigningPool::Job {
  std::vector<OpId> ids;
  std::vector<Signature> signatures;
  std::size_t parts_left = 0;  // guarded by the pool's mutex
  std::promise<std::vector<Signature>> promise;
  std::function<void()> done;
};

SigningPool::SigningPool(const NodeKey& key, std::size_t threads) : key_(key) {
  FERRY_ASSERT(threads > 0);
  for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

SigningPool::~SigningPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::future<std::vector<Signature>> SigningPool::sign(std::vector<OpId> ids,
                                                      std::function<void()> done) {
  auto job = std::make_shared<Job>();
  job->signatures.resize(ids.size());
  job->ids = std::move(ids);
  job->done = std::move(done);
  auto future = job->promise.get_future();
  std::size_t parts = job->ids.size() < parallel_sign_ops_min ? 1 : threads_.size();
  std::size_t share = (job->ids.size() + parts - 1) / parts;
  {
    std::lock_guard lock(mutex_);
    job->parts_left = parts;
    for (std::size_t p = 0; p < parts; ++p) {
      std::size_t first = std::min(job->ids.size(), p * share);
      tasks_.push_back(Task{job, first, std::min(job->ids.size(), first + share)});
    }
  }
  wake_.notify_all();
  return future;
}

void SigningPool::work() {
  for (;;) {
    Task task;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and every queued job is done
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    Job& job = *task.job;
    for (std::size_t i = task.first; i < task.last; ++i) {
      job.signatures[i] = key_.sign(op_signing_message(job.ids[i]));
    }
    bool last_part = false;
    {
      std::lock_guard lock(mutex_);
      last_part = --job.parts_left == 0;
    }
    if (last_part) {
      job.promise.set_value(std::move(job.signatures));
      if (job.done) job.done();
    }
  }
}

}  // namespace ferry
