#include "protocol/batch_signer.h"

#include <algorithm>
#include <thread>

namespace ferry {

std::vector<SignedOp> sign_ops(std::vector<Op> ops, const NodeKey& key, std::size_t threads) {
  std::vector<Signature> signatures(ops.size());
  auto sign_range = [&](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) {
      FERRY_ASSERT(ops[i].header().origin == key.public_key());
      signatures[i] = key.sign(op_signing_message(ops[i].id()));
    }
  };
  std::size_t workers = ops.size() < parallel_sign_ops_min ? 1 : std::max<std::size_t>(threads, 1);
  std::size_t share = (ops.size() + workers - 1) / std::max<std::size_t>(workers, 1);
  std::vector<std::jthread> helpers;
  for (std::size_t w = 1; w < workers; ++w) {
    std::size_t first = std::min(ops.size(), w * share);
    std::size_t last = std::min(ops.size(), first + share);
    helpers.emplace_back(sign_range, first, last);
  }
  sign_range(0, std::min(ops.size(), share));
  helpers.clear();  // joins
  std::vector<SignedOp> signed_ops;
  signed_ops.reserve(ops.size());
  for (std::size_t i = 0; i < ops.size(); ++i) {
    signed_ops.push_back(SignedOp{std::move(ops[i]), signatures[i]});
  }
  return signed_ops;
}

}  // namespace ferry
