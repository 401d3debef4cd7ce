// Version vectors: for each feed (origin, channel), the highest contiguous seq a node holds.
//
// Comparing two vectors tells exactly what one side must send the other. Pure values; no I/O.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "protocol/crypto.h"

namespace ferry {

struct FeedId {
  PublicKey origin{};
  std::string channel;
  auto operator<=>(const FeedId&) const = default;
};

// The seqs first..last of one feed, inclusive.
struct FeedRange {
  FeedId feed;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const FeedRange&) const = default;
};

enum class VectorOrder { equal, before, after, concurrent };

class VersionVector {
 public:
  // 0 for a feed not held.
  std::uint64_t seq(const FeedId& feed) const;

  // Raises the feed's entry to seq; a lower seq changes nothing.
  void raise(const FeedId& feed, std::uint64_t seq);

  // Pointwise maximum.
  void merge(const VersionVector& other);

  // before: every entry <= other's and at least one <; after: the reverse.
  VectorOrder compare(const VersionVector& other) const;

  // What `other` lacks that this vector holds, one range per feed, in feed order.
  std::vector<FeedRange> lacking_in(const VersionVector& other) const;

  const std::map<FeedId, std::uint64_t>& entries() const { return seqs_; }
  bool operator==(const VersionVector&) const = default;

 private:
  std::map<FeedId, std::uint64_t> seqs_;  // no zero entries
};

}  // namespace ferry
