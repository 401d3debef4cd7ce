#include "ctl/op_json.h"

#include <catch2/catch.hpp>

#include "protocol/hex.h"
#include "tests/support/test_support.h"

namespace ferry::ctl {
namespace {

using nlohmann::json;

TEST_CASE("printable writes binary values as {\"bin\": hex} at any depth") {
  json value = {{"a", json::binary({0x00, 0xff})}, {"list", {1, json::binary({0x10})}}, {"s", "x"}};
  CHECK(printable(value) ==
        json{{"a", {{"bin", "00ff"}}}, {"list", {1, {{"bin", "10"}}}}, {"s", "x"}});
}

TEST_CASE("an export record holds every field in the documented order") {
  NodeKey key = NodeKey::generate();
  OpDraft draft = ferry::test::draft("station/huaniao", "HN-1");
  draft.author = "agent-7";
  auto op = Op::build(key.public_key(), 1, OpId{}, 42, draft);
  REQUIRE(op);
  storage::StoredOp stored{sign_op(std::move(*op), key), 17, 1'790'000'000'000};
  auto record = export_record(stored);
  REQUIRE(record);
  std::vector<std::string> keys;
  for (const auto& [k, v] : record->items()) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"id", "origin", "channel", "seq", "prev", "hlc", "kind",
                                         "key", "deps", "author", "body", "arrival", "stored_at",
                                         "envelope", "signature"});
  const Op& o = stored.signed_op.op;
  CHECK((*record)["id"] == to_hex(o.id()));
  CHECK((*record)["origin"] == key.public_key_hex());
  CHECK((*record)["prev"] == std::string(64, '0'));
  CHECK((*record)["hlc"] == 42);
  CHECK((*record)["author"] == "agent-7");
  CHECK((*record)["body"] == nlohmann::ordered_json{{"status", "filed"}});
  CHECK((*record)["arrival"] == 17);
  CHECK((*record)["envelope"] == to_hex(o.bytes()));
  CHECK((*record)["signature"] == to_hex(stored.signed_op.signature));
  CHECK(json_text(*record).find('\n') == std::string::npos);
}

TEST_CASE("text output replaces invalid UTF-8 instead of throwing") {
  CHECK(json_text(json("a\xff")) == "\"a\xef\xbf\xbd\"");
}

}  // namespace
}  // namespace ferry::ctl
