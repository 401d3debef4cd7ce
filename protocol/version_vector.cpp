#include "protocol/version_vector.h"

#include "protocol/error.h"

namespace ferry {

std::uint64_t VersionVector::seq(const FeedId& feed) const {
  auto it = seqs_.find(feed);
  return it == seqs_.end() ? 0 : it->second;
}

void VersionVector::raise(const FeedId& feed, std::uint64_t seq) {
  if (seq == 0) return;
  auto [it, inserted] = seqs_.try_emplace(feed, seq);
  if (!inserted && it->second < seq) it->second = seq;
}

void VersionVector::merge(const VersionVector& other) {
  for (const auto& [feed, seq] : other.seqs_) raise(feed, seq);
}

VectorOrder VersionVector::compare(const VersionVector& other) const {
  bool some_less = false;
  bool some_greater = false;
  for (const auto& [feed, mine] : seqs_) {
    std::uint64_t theirs = other.seq(feed);
    some_greater |= mine > theirs;
    some_less |= mine < theirs;
  }
  for (const auto& [feed, theirs] : other.seqs_) {
    some_less |= seq(feed) < theirs;
  }
  if (some_less && some_greater) return VectorOrder::concurrent;
  if (some_less) return VectorOrder::before;
  if (some_greater) return VectorOrder::after;
  return VectorOrder::equal;
}

std::vector<FeedRange> VersionVector::lacking_in(const VersionVector& other) const {
  std::vector<FeedRange> ranges;
  for (const auto& [feed, mine] : seqs_) {
    std::uint64_t theirs = other.seq(feed);
    if (mine > theirs) ranges.push_back(FeedRange{feed, theirs + 1, mine});
  }
  return ranges;
}

}  // namespace ferry
