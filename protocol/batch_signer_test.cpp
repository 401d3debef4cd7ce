#include "protocol/batch_signer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <msgpack.hpp>
#include <sstream>
#include <string>
#include <thread>

using namespace ferry;

namespace {

std::vector<Op> make_ops(const NodeKey& key, std::size_t count) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pk.pack(std::string("hours"));
  pk.pack(3);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  OpDraft draft{"station/huaniao", "volunteer.hours", "v-1", {}, {data, data + buffer.size()}, {}};
  std::vector<Op> ops;
  OpId prev{};
  for (std::size_t seq = 1; seq <= count; ++seq) {
    auto op = Op::build(key.public_key(), seq, prev, 1000 + seq, draft);
    REQUIRE(op);
    prev = op->id();
    ops.push_back(std::move(*op));
  }
  return ops;
}

}  // namespace

TEST_CASE("signing a batch on several threads gives each op the signature it would get alone") {
  NodeKey key = NodeKey::generate();
  for (std::size_t count : {0, 1, 63, 64, 65, 301}) {
    for (std::size_t threads : {1, 2, 3}) {
      INFO(count << " ops on " << threads << " threads");
      std::vector<Op> ops = make_ops(key, count);
      std::vector<SignedOp> signed_ops = sign_ops(make_ops(key, count), key, threads);
      REQUIRE(signed_ops.size() == count);
      for (std::size_t i = 0; i < count; ++i) {
        CHECK(signed_ops[i].op.id() == ops[i].id());
        CHECK(signed_ops[i].signature == key.sign(op_signing_message(ops[i].id())));
        CHECK(verify_op(signed_ops[i].op, signed_ops[i].signature));
      }
    }
  }
}

TEST_CASE("the signing pool signs jobs in the background and says when each is done") {
  NodeKey key = NodeKey::generate();
  SigningPool pool(key, 2);
  std::atomic<int> done{0};
  std::vector<std::vector<Op>> batches;
  std::vector<std::future<std::vector<Signature>>> futures;
  for (std::size_t count : {0, 1, 64, 500}) {
    batches.push_back(make_ops(key, count));
    std::vector<OpId> ids;
    for (const Op& op : batches.back()) ids.push_back(op.id());
    futures.push_back(pool.sign(ids, [&done] { ++done; }));
  }
  for (std::size_t b = 0; b < batches.size(); ++b) {
    std::vector<Signature> signatures = futures[b].get();
    REQUIRE(signatures.size() == batches[b].size());
    for (std::size_t i = 0; i < signatures.size(); ++i) {
      CHECK(verify_op(batches[b][i], signatures[i]));
    }
  }
  // `done` runs just after each future becomes ready: wait for the last one, bounded.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.load() < 4 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  CHECK(done.load() == 4);
}

TEST_CASE("verifying a batch on several threads finds exactly the ops that do not verify") {
  NodeKey key = NodeKey::generate();
  for (std::size_t count : {0, 1, 64, 301}) {
    for (std::size_t threads : {1, 2, 3}) {
      INFO(count << " ops on " << threads << " threads");
      std::vector<SignedOp> ops = sign_ops(make_ops(key, count), key, threads);
      std::vector<std::size_t> broken;
      for (std::size_t i = 0; i < count; i += 97) {
        ops[i].signature[7] ^= 0x20;
        broken.push_back(i);
      }
      std::vector<Result<void>> verified = verify_ops(ops, threads);
      REQUIRE(verified.size() == count);
      for (std::size_t i = 0; i < count; ++i) {
        bool bad = std::find(broken.begin(), broken.end(), i) != broken.end();
        CHECK(verified[i].has_value() == !bad);
        if (bad) CHECK(verified[i].error().code == Errc::bad_signature);
      }
    }
  }
}

TEST_CASE("the pool verifies batches in the background, in order, and finds every bad one") {
  NodeKey key = NodeKey::generate();
  SigningPool pool(key, 2);
  std::atomic<int> done{0};
  std::vector<std::shared_ptr<const std::vector<SignedOp>>> batches;
  std::vector<std::vector<std::size_t>> broken;
  std::vector<std::future<std::vector<Result<void>>>> futures;
  for (std::size_t count : {0, 1, 64, 513}) {
    std::vector<SignedOp> ops = sign_ops(make_ops(key, count), key, 1);
    broken.emplace_back();
    for (std::size_t i = 3; i < count; i += 101) {
      ops[i].signature[11] ^= 0x01;
      broken.back().push_back(i);
    }
    batches.push_back(std::make_shared<const std::vector<SignedOp>>(std::move(ops)));
    futures.push_back(pool.verify(batches.back(), [&done] { ++done; }));
  }
  for (std::size_t b = 0; b < batches.size(); ++b) {
    std::vector<Result<void>> verified = futures[b].get();
    REQUIRE(verified.size() == batches[b]->size());
    for (std::size_t i = 0; i < verified.size(); ++i) {
      bool bad = std::find(broken[b].begin(), broken[b].end(), i) != broken[b].end();
      INFO("batch " << b << ", op " << i);
      CHECK(verified[i].has_value() == !bad);
      if (bad) CHECK(verified[i].error().code == Errc::bad_signature);
    }
  }
  CHECK(broken.back().size() == 6);  // the largest batch has bad ops in both threads' shares
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done.load() < 4 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  CHECK(done.load() == 4);
}

TEST_CASE("the pool signs a local batch before the peers' batches queued ahead of it") {
  NodeKey key = NodeKey::generate();
  SigningPool pool(key, 2);
  // Four large verification jobs, then one signature: the signature must not wait for them.
  auto batch = std::make_shared<const std::vector<SignedOp>>(sign_ops(make_ops(key, 2000), key, 2));
  std::vector<std::future<std::vector<Result<void>>>> verifying;
  for (int i = 0; i < 4; ++i) verifying.push_back(pool.verify(batch, {}));
  std::vector<Op> mine = make_ops(key, 1);
  auto signing = pool.sign({mine.front().id()}, {});
  std::vector<Signature> signatures = signing.get();
  REQUIRE(signatures.size() == 1);
  CHECK(verify_op(mine.front(), signatures.front()));
  // At most the two halves of the first job were running when the signature was queued; the
  // last job had not started.
  CHECK(verifying.back().wait_for(std::chrono::seconds(0)) != std::future_status::ready);
  for (auto& f : verifying) CHECK(f.get().size() == 2000);
}

namespace {

// nice value -> how many threads of this process have it, from /proc/self/task/*/stat (the
// 19th field, counted after the command name, which may hold spaces).
std::map<int, int> threads_by_nice() {
  std::map<int, int> counts;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto after_name = stat.rfind(')');
    if (after_name == std::string::npos) continue;  // the thread ended while we read
    std::istringstream fields(stat.substr(after_name + 2));
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
      if (i == 19) ++counts[std::stoi(field)];
    }
  }
  return counts;
}

}  // namespace

TEST_CASE("the pool's verifying threads run at a higher nice value than its signing threads") {
  errno = 0;
  const int base = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));
  REQUIRE(errno == 0);
  const int lowered = std::min(base + verify_thread_nice, nice_max);
  const std::map<int, int> before = threads_by_nice();
  NodeKey key = NodeKey::generate();
  SigningPool pool(key, 2);
  // The verifying threads lower themselves as they start: wait for it, within a bound.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::map<int, int> now = threads_by_nice();
  auto added = [&](int nice) { return now[nice] - (before.count(nice) > 0 ? before.at(nice) : 0); };
  while (added(lowered) < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    now = threads_by_nice();
  }
  if (lowered > base) {
    CHECK(added(lowered) == 2);  // the verifying threads
    CHECK(added(base) == 2);     // the signing threads, at the nice of the thread that made them
  } else {
    CHECK(added(base) == 4);  // run at nice 19 already: no lower to go
  }
  // And the pool still does both jobs.
  auto batch = std::make_shared<const std::vector<SignedOp>>(sign_ops(make_ops(key, 8), key, 1));
  auto verified = pool.verify(batch, {}).get();
  CHECK(std::ranges::all_of(verified, [](const Result<void>& r) { return r.has_value(); }));
  std::vector<Op> mine = make_ops(key, 1);
  CHECK(verify_op(mine.front(), pool.sign({mine.front().id()}, {}).get().front()));
}
