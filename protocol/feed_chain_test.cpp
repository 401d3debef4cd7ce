#include "protocol/feed_chain.h"

#include <catch2/catch.hpp>

namespace {

using ferry::Errc;
using ferry::FeedHead;
using ferry::OpHeader;
using ferry::OpId;

OpId id_with(std::uint8_t fill) {
  OpId id{};
  id.fill(fill);
  return id;
}

OpHeader header(std::uint64_t seq, const OpId& prev) {
  OpHeader h;
  h.channel = "station/huaniao";
  h.kind = "case.submit";
  h.key = "case-1";
  h.seq = seq;
  h.prev = prev;
  return h;
}

}  // namespace

TEST_CASE("check_extends accepts seq 1 with a zero prev on a feed not yet held") {
  FeedHead empty;
  CHECK(ferry::check_extends(empty, header(1, OpId{})));
}

TEST_CASE("check_extends accepts head seq + 1 whose prev is the head id") {
  FeedHead head{7, id_with(0x77)};
  CHECK(ferry::check_extends(head, header(8, id_with(0x77))));
  FeedHead first{1, id_with(0x11)};
  CHECK(ferry::check_extends(first, header(2, id_with(0x11))));
}

TEST_CASE("check_extends refuses a gap in the feed as out of order") {
  FeedHead empty;
  auto from_empty = ferry::check_extends(empty, header(2, id_with(0x01)));
  REQUIRE_FALSE(from_empty);
  CHECK(from_empty.error().code == Errc::out_of_order);

  FeedHead head{7, id_with(0x77)};
  for (std::uint64_t seq : {9u, 10u, 1000u}) {
    INFO("seq " << seq);
    auto gap = ferry::check_extends(head, header(seq, id_with(0x77)));
    REQUIRE_FALSE(gap);
    CHECK(gap.error().code == Errc::out_of_order);
  }
}

TEST_CASE("check_extends refuses an op whose prev is not the feed head as out of order") {
  FeedHead head{7, id_with(0x77)};
  OpId almost = id_with(0x77);
  almost[31] ^= 0x01;
  for (const OpId& prev : {id_with(0x66), almost, OpId{}}) {
    auto wrong = ferry::check_extends(head, header(8, prev));
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().code == Errc::out_of_order);
  }
  FeedHead empty;
  auto first = ferry::check_extends(empty, header(1, id_with(0x01)));
  REQUIRE_FALSE(first);
  CHECK(first.error().code == Errc::out_of_order);
}

TEST_CASE("check_extends reports a seq the feed already holds as a fork") {
  FeedHead head{7, id_with(0x77)};
  for (std::uint64_t seq : {7u, 6u, 1u}) {
    INFO("seq " << seq);
    auto fork = ferry::check_extends(head, header(seq, id_with(0x66)));
    REQUIRE_FALSE(fork);
    CHECK(fork.error().code == Errc::fork);
  }
  // Even with the head's own prev and id, a seq at or below the head is not an extension.
  auto same_seq = ferry::check_extends(head, header(7, id_with(0x77)));
  REQUIRE_FALSE(same_seq);
  CHECK(same_seq.error().code == Errc::fork);
}
