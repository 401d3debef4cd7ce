#include "protocol/ipc.h"

#include <catch2/catch.hpp>
#include <random>

#include "protocol/hex.h"

using namespace ferry;
using namespace ferry::ipc;

namespace {

// Packs a request map from a function that writes its entries.
template <class F>
std::vector<std::uint8_t> request(std::uint32_t entries, F write) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(entries);
  write(pk);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

template <class Packer>
void kv(Packer& pk, const std::string& k, const std::string& v) {
  pk.pack(k);
  pk.pack(v);
}

RequestLimits limits() { return RequestLimits{4096, 100, 1000, std::chrono::milliseconds(5000)}; }

Failure refused(const std::vector<std::uint8_t>& frame) {
  auto parsed = parse_request(frame, limits());
  REQUIRE_FALSE(parsed);
  return parsed.error();
}

std::vector<std::uint8_t> submit_with(
    std::uint32_t extra_entries,
    const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& extra) {
  return request(4 + extra_entries, [&](auto& pk) {
    kv(pk, "cmd", "submit");
    kv(pk, "kind", "case.submit");
    kv(pk, "key", "HN-2026-0001");
    pk.pack(std::string("body"));
    pk.pack_map(1);
    kv(pk, "service", "household-registration");
    extra(pk);
  });
}

}  // namespace

TEST_CASE("a submit request parses into a draft with its body as one msgpack map") {
  auto frame = submit_with(2, [](auto& pk) {
    kv(pk, "channel", "station/huaniao");
    kv(pk, "author", "agent-7");
  });
  auto parsed = parse_request(frame, limits());
  REQUIRE(parsed);
  const auto& submit = std::get<SubmitRequest>(*parsed);
  CHECK(submit.draft.kind == "case.submit");
  CHECK(submit.draft.key == "HN-2026-0001");
  CHECK(submit.draft.channel == "station/huaniao");
  CHECK(submit.draft.author == std::optional<std::string>("agent-7"));
  CHECK(validate_body(submit.draft.body));
}

TEST_CASE("submit refuses missing, mistyped and unknown keys, naming them") {
  CHECK(refused(request(2, [](auto& pk) {
          kv(pk, "cmd", "submit");
          kv(pk, "kind", "k");
        })).message.find("required") != std::string::npos);
  auto body_not_map = request(4, [](auto& pk) {
    kv(pk, "cmd", "submit");
    kv(pk, "kind", "k");
    kv(pk, "key", "k");
    kv(pk, "body", "text");
  });
  CHECK(refused(body_not_map).message.find("body") != std::string::npos);
  auto unknown = submit_with(1, [](auto& pk) { kv(pk, "colour", "blue"); });
  Failure f = refused(unknown);
  CHECK(f.code == Code::bad_request);
  CHECK(f.message.find("colour") != std::string::npos);
  auto kind_int = request(4, [](auto& pk) {
    kv(pk, "cmd", "submit");
    pk.pack(std::string("kind"));
    pk.pack(5);
    kv(pk, "key", "k");
    pk.pack(std::string("body"));
    pk.pack_map(0);
  });
  CHECK(refused(kind_int).message.find("kind") != std::string::npos);
  auto system = submit_with(1, [](auto& pk) { kv(pk, "channel", "ferry/trust"); });
  CHECK(refused(system).message.find("ferry/") != std::string::npos);
  auto bad_dep = submit_with(1, [](auto& pk) {
    pk.pack(std::string("deps"));
    pk.pack_array(1);
    pk.pack(std::string("xyz"));
  });
  CHECK(refused(bad_dep).message.find("deps") != std::string::npos);
}

TEST_CASE("op and track take exactly one 64-hex id") {
  std::string hex(64, 'a');
  auto op = parse_request(request(2,
                                  [&](auto& pk) {
                                    kv(pk, "cmd", "op");
                                    kv(pk, "id", hex);
                                  }),
                          limits());
  REQUIRE(op);
  CHECK(std::get<OpRequest>(*op).id == from_hex<32>(hex).value());
  auto track = parse_request(request(2,
                                     [&](auto& pk) {
                                       kv(pk, "cmd", "track");
                                       kv(pk, "id", std::string(64, 'B'));
                                     }),
                             limits());
  REQUIRE(track);
  CHECK(std::holds_alternative<TrackRequest>(*track));
  CHECK(refused(request(2, [](auto& pk) {
          kv(pk, "cmd", "op");
          kv(pk, "id", "abc");
        })).message.find("64 hex") != std::string::npos);
  CHECK(refused(request(1, [](auto& pk) { kv(pk, "cmd", "track"); })).code == Code::bad_request);
}

TEST_CASE("pull gets defaults, and refuses values beyond the configured limits") {
  auto plain = parse_request(request(2,
                                     [](auto& pk) {
                                       kv(pk, "cmd", "pull");
                                       pk.pack(std::string("after"));
                                       pk.pack(7);
                                     }),
                             limits());
  REQUIRE(plain);
  const auto& p = std::get<PullRequest>(*plain);
  CHECK(p.after == 7);
  CHECK(p.limit == 100);
  CHECK(p.wait.count() == 0);
  auto full = parse_request(request(5,
                                    [](auto& pk) {
                                      kv(pk, "cmd", "pull");
                                      pk.pack(std::string("after"));
                                      pk.pack(0);
                                      pk.pack(std::string("limit"));
                                      pk.pack(1000);
                                      pk.pack(std::string("wait_ms"));
                                      pk.pack(5000);
                                      pk.pack(std::string("channels"));
                                      pk.pack(std::vector<std::string>{"broadcast"});
                                    }),
                            limits());
  REQUIRE(full);
  CHECK(std::get<PullRequest>(*full).limit == 1000);
  CHECK(std::get<PullRequest>(*full).channels == std::vector<std::string>{"broadcast"});
  auto too_many = request(3, [](auto& pk) {
    kv(pk, "cmd", "pull");
    pk.pack(std::string("after"));
    pk.pack(0);
    pk.pack(std::string("limit"));
    pk.pack(1001);
  });
  CHECK(refused(too_many).message.find("at most 1000") != std::string::npos);
  auto too_long = request(3, [](auto& pk) {
    kv(pk, "cmd", "pull");
    pk.pack(std::string("after"));
    pk.pack(0);
    pk.pack(std::string("wait_ms"));
    pk.pack(5001);
  });
  CHECK(refused(too_long).message.find("wait_ms") != std::string::npos);
  auto negative = request(2, [](auto& pk) {
    kv(pk, "cmd", "pull");
    pk.pack(std::string("after"));
    pk.pack(-1);
  });
  CHECK(refused(negative).message.find("after") != std::string::npos);
}

TEST_CASE("requests that are not maps of string keys, or name no known command, are refused") {
  CHECK(refused({}).code == Code::bad_request);
  CHECK(refused({0x93, 0x01, 0x02, 0x03}).message.find("map") != std::string::npos);
  CHECK(refused({0x81, 0x01, 0x02}).message.find("string") != std::string::npos);
  CHECK(refused(request(0, [](auto&) {})).message.find("cmd") != std::string::npos);
  Failure unknown = refused(request(1, [](auto& pk) { kv(pk, "cmd", "launch"); }));
  CHECK(unknown.code == Code::unknown_command);
  CHECK(unknown.message.find("launch") != std::string::npos);
  auto twice = request(2, [](auto& pk) {
    kv(pk, "cmd", "status");
    kv(pk, "cmd", "status");
  });
  CHECK(refused(twice).message.find("twice") != std::string::npos);
  auto trailing = request(1, [](auto& pk) { kv(pk, "cmd", "status"); });
  trailing.push_back(0xc0);
  CHECK(refused(trailing).message.find("trailing") != std::string::npos);
  CHECK(parse_request(request(1, [](auto& pk) { kv(pk, "cmd", "status"); }), limits()));
}

TEST_CASE("oversize requests and deeply nested bodies are refused") {
  std::vector<std::uint8_t> big(4097, 0xc0);
  CHECK(refused(big).code == Code::too_large);
  auto deep = submit_with(0, [](auto&) {});
  // Replace the body with 40 nested maps.
  auto nested = request(4, [](auto& pk) {
    kv(pk, "cmd", "submit");
    kv(pk, "kind", "k");
    kv(pk, "key", "k");
    pk.pack(std::string("body"));
    for (int i = 0; i < 40; ++i) {
      pk.pack_map(1);
      pk.pack(std::string("a"));
    }
    pk.pack(1);
  });
  CHECK(refused(nested).code == Code::bad_request);
}

TEST_CASE("random and truncated frames never crash the parser") {
  std::uint64_t seed = Catch::rngSeed();
  CAPTURE(seed);
  std::mt19937_64 rng(seed);
  auto valid = submit_with(0, [](auto&) {});
  for (std::size_t cut = 0; cut < valid.size(); ++cut) {
    std::vector<std::uint8_t> part(valid.begin(), valid.begin() + static_cast<long>(cut));
    CHECK_FALSE(parse_request(part, limits()));
  }
  for (int i = 0; i < 5000; ++i) {
    std::vector<std::uint8_t> frame(rng() % 64);
    for (auto& b : frame) b = static_cast<std::uint8_t>(rng());
    auto parsed = parse_request(frame, limits());
    if (parsed) CHECK(std::holds_alternative<StatusRequest>(*parsed));
  }
}

TEST_CASE("replies have the documented shape") {
  auto failure = encode_failure(Failure{Code::busy, "queue full"});
  auto handle = msgpack::unpack(reinterpret_cast<const char*>(failure.data()), failure.size());
  auto map = handle.get().as<std::map<std::string, msgpack::object>>();
  CHECK(map.at("ok").as<bool>() == false);
  auto error = map.at("error").as<std::map<std::string, std::string>>();
  CHECK(error.at("code") == "busy");
  CHECK(error.at("message") == "queue full");
  OpId id{};
  id[0] = 0xab;
  auto submitted = encode_submitted(id, 3, 99, "station/a");
  auto h2 = msgpack::unpack(reinterpret_cast<const char*>(submitted.data()), submitted.size());
  auto m2 = h2.get().as<std::map<std::string, msgpack::object>>();
  CHECK(m2.at("id").as<std::string>() == to_hex(id));
  CHECK(m2.at("seq").as<std::uint64_t>() == 3);
  CHECK(m2.at("channel").as<std::string>() == "station/a");
  CHECK(code_for(Error{Errc::disk_full, ""}) == Code::storage_full);
  CHECK(code_for(Error{Errc::io, ""}) == Code::storage_error);
  CHECK(code_for(Error{Errc::not_found, ""}) == Code::not_found);
}
