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
  // The body is the request's own bytes, checked once here: Op::build need not check it again.
  CHECK(submit.draft.body_validated);
  const std::vector<std::uint8_t> expected = {0x81, 0xa7, 's', 'e', 'r', 'v', 'i', 'c', 'e'};
  REQUIRE(submit.draft.body.size() > expected.size());
  CHECK(std::equal(expected.begin(), expected.end(), submit.draft.body.begin()));
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
  // Thousands of levels within the request's size: refused as it is read, before any unpacking.
  auto head = request(4, [](auto& pk) {
    kv(pk, "cmd", "submit");
    kv(pk, "kind", "k");
    kv(pk, "key", "k");
    pk.pack(std::string("body"));
  });
  std::vector<std::uint8_t> deeper = head;
  deeper.insert(deeper.end(), 4000, 0x91);  // [[[[...
  deeper.push_back(0xc0);
  Failure too_deep = refused(deeper);
  CHECK(too_deep.code == Code::bad_request);
  CHECK(too_deep.message.find("deep") != std::string::npos);
  // A body cut short, and one with a string that is not UTF-8.
  std::vector<std::uint8_t> cut = head;
  cut.insert(cut.end(), {0x81, 0xa1, 'a', 0xa5, 'x'});
  CHECK(refused(cut).code == Code::bad_request);
  std::vector<std::uint8_t> latin1 = head;
  latin1.insert(latin1.end(), {0x81, 0xa1, 'a', 0xa2, 0xe9, 't'});
  Failure not_utf8 = refused(latin1);
  CHECK(not_utf8.code == Code::bad_request);
  CHECK(not_utf8.message.find("UTF-8") != std::string::npos);
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

namespace {

// A submit of one body, built by `write_body`, with the given extra entries after it.
template <class F>
std::vector<std::uint8_t> submit_body(F write_body) {
  return request(4, [&](auto& pk) {
    kv(pk, "cmd", "submit");
    kv(pk, "kind", "case.update");
    kv(pk, "key", "HN-2026-0001");
    pk.pack(std::string("body"));
    write_body(pk);
  });
}

}  // namespace

TEST_CASE("submit without deps asks for the record's heads; explicit deps, even none, are kept") {
  auto none = parse_request(submit_with(0, [](auto&) {}), limits());
  REQUIRE(none);
  CHECK(std::get<SubmitRequest>(*none).draft.deps_from_heads);
  CHECK(std::get<SubmitRequest>(*none).draft.deps.empty());

  auto empty = parse_request(submit_with(1,
                                         [](auto& pk) {
                                           pk.pack(std::string("deps"));
                                           pk.pack_array(0);
                                         }),
                             limits());
  REQUIRE(empty);
  CHECK_FALSE(std::get<SubmitRequest>(*empty).draft.deps_from_heads);
  CHECK(std::get<SubmitRequest>(*empty).draft.deps.empty());

  std::string hex(64, 'c');
  auto named = parse_request(submit_with(1,
                                         [&](auto& pk) {
                                           pk.pack(std::string("deps"));
                                           pk.pack(std::vector<std::string>{hex});
                                         }),
                             limits());
  REQUIRE(named);
  CHECK_FALSE(std::get<SubmitRequest>(*named).draft.deps_from_heads);
  CHECK(std::get<SubmitRequest>(*named).draft.deps == std::vector<OpId>{from_hex<32>(hex).value()});
}

TEST_CASE("submit accepts a body with every merge part, and other keys as data") {
  auto frame = submit_body([](auto& pk) {
    pk.pack_map(5);
    pk.pack(std::string("set"));
    pk.pack_map(2);
    kv(pk, "status", "approved");
    pk.pack(std::string("label"));
    pk.pack_map(1);
    kv(pk, "zh", "陈家");
    pk.pack(std::string("inc"));
    pk.pack_map(2);
    pk.pack(std::string("hours"));
    pk.pack(-3);
    pk.pack(std::string("visits"));
    pk.pack(std::uint64_t{9'223'372'036'854'775'807});  // int64 max
    pk.pack(std::string("add"));
    pk.pack_map(1);
    pk.pack(std::string("documents"));
    pk.pack(std::vector<std::string>{"id-card", "household-book"});
    pk.pack(std::string("del"));
    pk.pack_map(1);
    pk.pack(std::string("documents"));
    pk.pack_array(0);
    kv(pk, "note", "filed at the Huaniao station");
  });
  auto parsed = parse_request(frame, limits());
  INFO((parsed ? std::string() : parsed.error().message));
  REQUIRE(parsed);
  CHECK(std::get<SubmitRequest>(*parsed).draft.kind == "case.update");
}

TEST_CASE("submit refuses merge parts the merge would not read, naming the part and field") {
  struct Case {
    const char* what;
    std::function<void(msgpack::packer<msgpack::sbuffer>&)> body;
    const char* named;
  };
  const std::vector<Case> cases = {
      {"inc of a string",
       [](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("inc"));
         pk.pack_map(1);
         kv(pk, "n", "x");
       },
       "inc: field 'n'"},
      {"inc of a float",
       [](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("inc"));
         pk.pack_map(1);
         pk.pack(std::string("n"));
         pk.pack(1.5);
       },
       "inc: field 'n'"},
      {"inc beyond int64",
       [](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("inc"));
         pk.pack_map(1);
         pk.pack(std::string("n"));
         pk.pack(std::uint64_t{9'223'372'036'854'775'808u});
       },
       "inc: field 'n'"},
      {"set not a map",
       [](auto& pk) {
         pk.pack_map(1);
         kv(pk, "set", "status=approved");
       },
       "set:"},
      {"add of a string",
       [](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("add"));
         pk.pack_map(1);
         kv(pk, "documents", "id-card");
       },
       "add: field 'documents'"},
      {"del not a map",
       [](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("del"));
         pk.pack_array(0);
       },
       "del:"},
      {"a field named twice",
       [](auto& pk) {
         pk.pack_map(1);
         pk.pack(std::string("set"));
         pk.pack_map(2);
         kv(pk, "status", "filed");
         kv(pk, "status", "approved");
       },
       "status"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Failure f = refused(submit_body(c.body));
    CHECK(f.code == Code::bad_request);
    CHECK(f.message.starts_with("body: "));
    CHECK(f.message.find(c.named) != std::string::npos);
  }
}

TEST_CASE("get takes a key and an optional channel, strictly") {
  auto plain = parse_request(request(2,
                                     [](auto& pk) {
                                       kv(pk, "cmd", "get");
                                       kv(pk, "key", "HN-2026-0001");
                                     }),
                             limits());
  REQUIRE(plain);
  CHECK(std::get<GetRequest>(*plain).key == "HN-2026-0001");
  CHECK(std::get<GetRequest>(*plain).channel.empty());
  auto in_channel = parse_request(request(3,
                                          [](auto& pk) {
                                            kv(pk, "cmd", "get");
                                            kv(pk, "key", "P-77");
                                            kv(pk, "channel", "desk/permits");
                                          }),
                                  limits());
  REQUIRE(in_channel);
  CHECK(std::get<GetRequest>(*in_channel).channel == "desk/permits");

  CHECK(refused(request(1, [](auto& pk) { kv(pk, "cmd", "get"); })).message.find("key") !=
        std::string::npos);
  auto key_int = request(2, [](auto& pk) {
    kv(pk, "cmd", "get");
    pk.pack(std::string("key"));
    pk.pack(7);
  });
  CHECK(refused(key_int).message == "key: must be a string");
  auto key_empty = request(2, [](auto& pk) {
    kv(pk, "cmd", "get");
    kv(pk, "key", "");
  });
  CHECK(refused(key_empty).message.find("key") != std::string::npos);
  auto key_256 = request(2, [](auto& pk) {
    kv(pk, "cmd", "get");
    kv(pk, "key", std::string(256, 'k'));
  });
  CHECK(parse_request(key_256, limits()));
  auto key_257 = request(2, [](auto& pk) {
    kv(pk, "cmd", "get");
    kv(pk, "key", std::string(257, 'k'));
  });
  CHECK(refused(key_257).message.find("longer than 256") != std::string::npos);
  auto channel_nil = request(3, [](auto& pk) {
    kv(pk, "cmd", "get");
    kv(pk, "key", "k");
    pk.pack(std::string("channel"));
    pk.pack_nil();
  });
  CHECK(refused(channel_nil).message.find("channel") != std::string::npos);
  auto channel_129 = request(3, [](auto& pk) {
    kv(pk, "cmd", "get");
    kv(pk, "key", "k");
    kv(pk, "channel", std::string(129, 'c'));
  });
  CHECK(refused(channel_129).message.find("channel") != std::string::npos);
  auto unknown = request(3, [](auto& pk) {
    kv(pk, "cmd", "get");
    kv(pk, "key", "k");
    kv(pk, "field", "status");
  });
  Failure f = refused(unknown);
  CHECK(f.code == Code::bad_request);
  CHECK(f.message.find("field") != std::string::npos);
}

TEST_CASE("conflicts takes an optional limit from 1 to conflicts_limit_max") {
  auto plain = parse_request(request(1, [](auto& pk) { kv(pk, "cmd", "conflicts"); }), limits());
  REQUIRE(plain);
  CHECK(std::get<ConflictsRequest>(*plain).limit == conflicts_limit_default);
  auto with_limit = [](auto write_limit) {
    return request(2, [&](auto& pk) {
      kv(pk, "cmd", "conflicts");
      pk.pack(std::string("limit"));
      write_limit(pk);
    });
  };
  auto at_max = parse_request(with_limit([](auto& pk) { pk.pack(conflicts_limit_max); }), limits());
  REQUIRE(at_max);
  CHECK(std::get<ConflictsRequest>(*at_max).limit == conflicts_limit_max);
  auto one = parse_request(with_limit([](auto& pk) { pk.pack(1); }), limits());
  REQUIRE(one);
  CHECK(std::get<ConflictsRequest>(*one).limit == 1);
  CHECK(refused(with_limit([](auto& pk) {
          pk.pack(conflicts_limit_max + 1);
        })).message.find("at most " + std::to_string(conflicts_limit_max)) != std::string::npos);
  CHECK(refused(with_limit([](auto& pk) { pk.pack(0); })).message.find("limit") !=
        std::string::npos);
  CHECK(refused(with_limit([](auto& pk) { pk.pack(-1); })).message.find("limit") !=
        std::string::npos);
  CHECK(refused(with_limit([](auto& pk) { pk.pack(std::string("10")); })).message.find("limit") !=
        std::string::npos);
  CHECK(refused(with_limit([](auto& pk) { pk.pack(2.5); })).message.find("limit") !=
        std::string::npos);
  auto unknown = request(2, [](auto& pk) {
    kv(pk, "cmd", "conflicts");
    kv(pk, "channel", "station/huaniao");
  });
  CHECK(refused(unknown).message.find("channel") != std::string::npos);
}

namespace {

std::vector<std::uint8_t> packed_text(const std::string& text) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, text);
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

Digest filled(std::uint8_t byte) {
  Digest d{};
  d.fill(byte);
  return d;
}

// A record written at two stations: `label` set concurrently (a conflict), the rest plain.
RecordState two_station_state() {
  const PublicKey station = filled(0x11);
  const PublicKey hub = filled(0x22);
  RecordState state;
  state.heads = {{Dot{station, 2}, filled(0xa2)}, {Dot{hub, 1}, filled(0xb1)}};
  state.registers["status"] = {
      {Dot{station, 1}, RegisterWrite{packed_text("approved"), filled(0xa1), 100, "agent-7"}}};
  state.registers["label"] = {
      {Dot{station, 2}, RegisterWrite{packed_text("Chen household"), filled(0xa2), 200, {}}},
      {Dot{hub, 1}, RegisterWrite{packed_text("Chen family"), filled(0xb1), 300, "hub-desk"}}};
  state.counters["hours"] = -3;
  state.sets["documents"] = {{packed_text("id-card"), {Dot{station, 1}}},
                             {packed_text("household-book"), {Dot{hub, 1}}}};
  state.ops = 3;
  state.updated_hlc = 300;
  return state;
}

}  // namespace

TEST_CASE("a record reply holds winning fields, counters, set elements, heads and conflicts") {
  ReplyWriter w;
  w.record("station/huaniao", "HN-2026-0001", two_station_state());
  auto bytes = w.take();
  auto handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  auto record = handle.get().as<std::map<std::string, msgpack::object>>();
  std::vector<std::string> keys;
  for (const auto& [k, v] : record) keys.push_back(k);
  CHECK(keys == std::vector<std::string>{"channel", "conflicts", "counters", "fields", "heads",
                                         "key", "ops", "sets", "updated_hlc"});
  CHECK(record.at("channel").as<std::string>() == "station/huaniao");
  CHECK(record.at("key").as<std::string>() == "HN-2026-0001");
  auto fields = record.at("fields").as<std::map<std::string, std::string>>();
  CHECK(fields ==
        std::map<std::string, std::string>{{"label", "Chen family"}, {"status", "approved"}});
  CHECK(record.at("counters").as<std::map<std::string, std::int64_t>>() ==
        std::map<std::string, std::int64_t>{{"hours", -3}});
  CHECK(record.at("sets").as<std::map<std::string, std::vector<std::string>>>() ==
        std::map<std::string, std::vector<std::string>>{
            {"documents", {"id-card", "household-book"}}});  // canonical byte order
  CHECK(record.at("heads").as<std::vector<std::string>>() ==
        std::vector<std::string>{to_hex(filled(0xa2)), to_hex(filled(0xb1))});
  CHECK(record.at("ops").as<std::uint64_t>() == 3);
  CHECK(record.at("updated_hlc").as<std::uint64_t>() == 300);

  auto conflicts = record.at("conflicts").as<std::vector<msgpack::object>>();
  REQUIRE(conflicts.size() == 1);
  auto conflict = conflicts[0].as<std::map<std::string, msgpack::object>>();
  CHECK(conflict.at("field").as<std::string>() == "label");
  auto values = conflict.at("values").as<std::vector<std::map<std::string, msgpack::object>>>();
  REQUIRE(values.size() == 2);
  CHECK(values[0].size() == 5);
  CHECK(values[0].at("value").as<std::string>() == "Chen family");  // the winner first
  CHECK(values[0].at("id").as<std::string>() == to_hex(filled(0xb1)));
  CHECK(values[0].at("origin").as<std::string>() == to_hex(filled(0x22)));
  CHECK(values[0].at("author").as<std::string>() == "hub-desk");
  CHECK(values[0].at("hlc").as<std::uint64_t>() == 300);
  CHECK(values[1].at("value").as<std::string>() == "Chen household");
  CHECK(values[1].at("author").is_nil());
  CHECK(values[1].at("hlc").as<std::uint64_t>() == 200);
}

TEST_CASE("a record reply of a record without writes has empty maps and lists") {
  RecordState state;
  state.heads = {{Dot{filled(0x11), 1}, filled(0xa1)}};
  state.ops = 1;
  state.updated_hlc = 7;
  ReplyWriter w;
  w.record("broadcast", "notice-1", state);
  auto bytes = w.take();
  auto handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  auto record = handle.get().as<std::map<std::string, msgpack::object>>();
  CHECK(record.at("fields").type == msgpack::type::MAP);
  CHECK(record.at("fields").via.map.size == 0);
  CHECK(record.at("counters").via.map.size == 0);
  CHECK(record.at("sets").via.map.size == 0);
  CHECK(record.at("conflicts").type == msgpack::type::ARRAY);
  CHECK(record.at("conflicts").via.array.size == 0);
  CHECK(record.at("heads").as<std::vector<std::string>>() ==
        std::vector<std::string>{to_hex(filled(0xa1))});
}
