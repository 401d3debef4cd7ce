// Bad input on the IPC socket: every malformed, mistyped, oversize or misframed request gets the
// documented error reply (or, far over the size limit, a closed connection), stores nothing, is
// counted in status, and leaves the daemon serving.
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <random>

#include "tests/integration/daemon_harness.h"

namespace ferry::it {
namespace {

constexpr std::size_t request_bytes_max = 16384;
constexpr std::size_t pull_limit_max = 1000;
constexpr std::uint64_t pull_wait_max_ms = 30'000;

NodeSettings small_limits() {
  NodeSettings s;
  s.limits["request_bytes_max"] = std::to_string(request_bytes_max);
  return s;
}

struct Refusal {
  std::string name;
  Bytes frame;
  std::string code;
  std::string mentions;  // a word the message must contain (the key at fault), or empty
};

Refusal refusal(std::string name, const Value& request, std::string code,
                std::string mentions = {}) {
  return Refusal{std::move(name), request.pack(), std::move(code), std::move(mentions)};
}

Value good_submit() {
  return submit_request("case.submit", "HN-1", Value::map({{"service", "permit"}}));
}

Value with(Value v, std::string key, Value value) {
  v.set(std::move(key), std::move(value));
  return v;
}

Value without(Value v, std::string_view key) {
  v.erase(key);
  return v;
}

void check_error(const Value& reply, const std::string& code, const std::string& mentions) {
  INFO("reply: " << reply);
  REQUIRE(reply.is_map());
  REQUIRE(reply.keys() == std::vector<std::string>{"error", "ok"});
  CHECK_FALSE(reply["ok"].boolean());
  CHECK(reply["error"].keys() == std::vector<std::string>{"code", "message"});
  CHECK(reply["error"]["code"].str() == code);
  CHECK_FALSE(reply["error"]["message"].str().empty());
  if (!mentions.empty()) CHECK_THAT(reply["error"]["message"].str(), Catch::Contains(mentions));
}

// What one group of bad requests must leave behind: nothing stored, each error counted under its
// code, every request counted, and a normal submit still stored.
class Ledger {
 public:
  explicit Ledger(IpcClient& client) : client_(client), before_(client.call(status_request())) {}

  void expect(const std::string& code, std::uint64_t count = 1) { errors_[code] += count; }
  void expect_requests(std::uint64_t count) { requests_ += count; }

  void check() {
    Value after = client_.call(status_request());
    INFO("before: " << before_ << "\nafter: " << after);
    CHECK(after["ops"] == before_["ops"]);
    CHECK(after["last_arrival"] == before_["last_arrival"]);
    for (const auto& [code, count] : after["ipc"]["errors"].fields()) {
      INFO("errors." << code);
      CHECK(count.u64() - before_["ipc"]["errors"][code].u64() == errors_[code]);
    }
    // The requests of the group and the status that reads the counters.
    CHECK(after["ipc"]["requests"].u64() - before_["ipc"]["requests"].u64() == requests_ + 1);
    Value r = client_.call(good_submit());
    INFO(r);
    REQUIRE(r["ok"].boolean());
    CHECK(client_.call(op_request(r["id"].str()))["ok"].boolean());
    CHECK(client_.call(status_request())["ops"].u64() == before_["ops"].u64() + 1);
  }

 private:
  IpcClient& client_;
  Value before_;
  std::map<std::string, std::uint64_t> errors_;
  std::uint64_t requests_ = 0;
};

void run_corpus(IpcClient& client, const std::vector<Refusal>& corpus) {
  Ledger ledger(client);
  for (const Refusal& r : corpus) {
    INFO("request: " << r.name);
    check_error(client.call(r.frame), r.code, r.mentions);
    ledger.expect(r.code);
  }
  ledger.expect_requests(corpus.size());
  ledger.check();
}

Bytes text_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

// A valid submit of exactly `size` bytes (the padding's length is adjusted until it fits).
Bytes submit_of_size(std::size_t size) {
  long long pad = static_cast<long long>(size) - 100;
  for (int attempt = 0; attempt < 10; ++attempt) {
    Bytes b = submit_request("case.submit", "big",
                             Value::map({{"pad", std::string(static_cast<std::size_t>(pad), 'x')}}))
                  .pack();
    if (b.size() == size) return b;
    pad += static_cast<long long>(size) - static_cast<long long>(b.size());
  }
  throw HarnessError("cannot build a submit of " + std::to_string(size) + " bytes");
}

// A body nested `depth` containers deep (the body map itself is level 1).
Value nested_body(std::size_t depth) {
  Value inner = Value::array({1});
  for (std::size_t level = 2; level < depth; ++level) inner = Value::array({inner});
  return Value::map({{"deep", inner}});
}

// Raw msgpack: a map nesting `depth` arrays without building them as Values (too deep for the
// recursive Value).
Bytes raw_deep_submit(std::size_t depth) {
  Bytes prefix = submit_request("case.submit", "deep", Value::map({})).pack();
  // Replace the empty body map (0x80, the last byte) by {"d": [[[...]]]}.
  prefix.pop_back();
  Bytes out = prefix;
  out.push_back(0x81);
  out.push_back(0xa1);
  out.push_back('d');
  out.insert(out.end(), depth, 0x91);  // fixarray of one element, nested
  out.push_back(0x01);
  return out;
}

}  // namespace

// A running node with a small request_bytes_max, and a client of it.
class BadInput {
 public:
  BadInput() : node(small_limits()) { node.start(); }

 protected:
  TestNode node;
  IpcClient client{node.endpoint()};
};

TEST_CASE_METHOD(BadInput, "random bytes get bad_request and store nothing") {
  std::uint64_t seed = test_seed("random bytes");
  INFO("seed " << seed << " (FERRY_TEST_SEED)");
  std::mt19937_64 rng(seed);
  std::vector<Refusal> corpus;
  for (int i = 0; i < 300; ++i) {
    std::size_t size = std::uniform_int_distribution<std::size_t>(0, 300)(rng);
    Bytes frame(size);
    for (auto& b : frame) b = static_cast<std::uint8_t>(rng());
    corpus.push_back(Refusal{"random frame " + std::to_string(i), frame, "bad_request", {}});
  }
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput,
                 "every truncation of a valid submit gets bad_request and stores nothing") {
  Bytes whole = with(good_submit(), "author", "agent-7").pack();
  std::vector<Refusal> corpus;
  for (std::size_t n = 0; n < whole.size(); ++n) {
    corpus.push_back(Refusal{"the first " + std::to_string(n) + " bytes",
                             Bytes(whole.begin(), whole.begin() + static_cast<long>(n)),
                             "bad_request",
                             {}});
  }
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput, "a request that is not one msgpack map gets bad_request") {
  Bytes two_maps = status_request().pack();
  Bytes second = status_request().pack();
  two_maps.insert(two_maps.end(), second.begin(), second.end());
  std::vector<Refusal> corpus = {
      refusal("nil", Value::nil(), "bad_request"),
      refusal("true", Value(true), "bad_request"),
      refusal("42", Value(42), "bad_request"),
      refusal("-1", Value(-1), "bad_request"),
      refusal("1.5", Value(1.5), "bad_request"),
      refusal("a string", Value("status"), "bad_request"),
      refusal("bin", Value::bin(text_bytes("status")), "bad_request"),
      refusal("ext", Value::ext(5, {1, 2, 3}), "bad_request"),
      refusal("an array holding a request", Value::array({status_request()}), "bad_request"),
      Refusal{"a map with an int key",
              {0x81, 0x01, 0xa6, 's', 't', 'a', 't', 'u', 's'},
              "bad_request",
              {}},
      Refusal{"two maps in one frame", two_maps, "bad_request", {}},
      Refusal{"a never-used byte", {0xc1}, "bad_request", {}},
      Refusal{"a key given twice",
              {0x82, 0xa3, 'c', 'm', 'd',  0xa6, 's', 't', 'a', 't', 'u', 's',
               0xa3, 'c',  'm', 'd', 0xa6, 's',  't', 'a', 't', 'u', 's'},
              "bad_request",
              {}},
  };
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput,
                 "an unknown cmd gets unknown_command, a missing or mistyped cmd bad_request") {
  std::vector<Refusal> corpus = {
      refusal("delete", Value::map({{"cmd", "delete"}}), "unknown_command", "delete"),
      refusal("STATUS", Value::map({{"cmd", "STATUS"}}), "unknown_command", "STATUS"),
      refusal("status with a space", Value::map({{"cmd", "status "}}), "unknown_command"),
      refusal("empty cmd", Value::map({{"cmd", ""}}), "unknown_command"),
      refusal("a long cmd", Value::map({{"cmd", std::string(5000, 'z')}}), "unknown_command"),
      refusal("no cmd", Value::map({}), "bad_request", "cmd"),
      refusal("no cmd but fields", without(good_submit(), "cmd"), "bad_request", "cmd"),
      refusal("cmd an int", Value::map({{"cmd", 1}}), "bad_request", "cmd"),
      refusal("cmd nil", Value::map({{"cmd", Value::nil()}}), "bad_request", "cmd"),
  };
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput, "a request missing a required field gets bad_request naming it") {
  std::vector<Refusal> corpus = {
      refusal("submit without kind", without(good_submit(), "kind"), "bad_request", "kind"),
      refusal("submit without key", without(good_submit(), "key"), "bad_request", "key"),
      refusal("submit without body", without(good_submit(), "body"), "bad_request", "body"),
      refusal("op without id", Value::map({{"cmd", "op"}}), "bad_request", "id"),
      refusal("track without id", Value::map({{"cmd", "track"}}), "bad_request", "id"),
      refusal("pull without after", Value::map({{"cmd", "pull"}}), "bad_request", "after"),
  };
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput, "a field of the wrong type gets bad_request naming it") {
  Value pull = pull_request(0, 10);
  std::vector<Refusal> corpus = {
      refusal("kind an int", with(good_submit(), "kind", 5), "bad_request", "kind"),
      refusal("key nil", with(good_submit(), "key", Value::nil()), "bad_request", "key"),
      refusal("key bin", with(good_submit(), "key", Value::bin(text_bytes("k"))), "bad_request",
              "key"),
      refusal("body a string", with(good_submit(), "body", "{}"), "bad_request", "body"),
      refusal("body an array", with(good_submit(), "body", Value::array({1})), "bad_request",
              "body"),
      refusal("body nil", with(good_submit(), "body", Value::nil()), "bad_request", "body"),
      refusal("channel an int", with(good_submit(), "channel", 7), "bad_request", "channel"),
      refusal("author true", with(good_submit(), "author", true), "bad_request", "author"),
      refusal("deps a string", with(good_submit(), "deps", std::string(64, 'a')), "bad_request",
              "deps"),
      refusal("deps of ints", with(good_submit(), "deps", Value::array({5})), "bad_request",
              "deps"),
      refusal("deps not hex", with(good_submit(), "deps", Value::array({std::string(64, 'g')})),
              "bad_request", "deps"),
      refusal("deps short", with(good_submit(), "deps", Value::array({std::string(63, 'a')})),
              "bad_request", "deps"),
      refusal("op id an int", Value::map({{"cmd", "op"}, {"id", 5}}), "bad_request", "id"),
      refusal("op id short", op_request(std::string(62, 'a')), "bad_request", "id"),
      refusal("op id long", op_request(std::string(66, 'a')), "bad_request", "id"),
      refusal("op id not hex", op_request(std::string(64, 'x')), "bad_request", "id"),
      refusal("op id bin", Value::map({{"cmd", "op"}, {"id", Value::bin(Bytes(32, 1))}}),
              "bad_request", "id"),
      refusal("track id nil", Value::map({{"cmd", "track"}, {"id", Value::nil()}}), "bad_request",
              "id"),
      refusal("after negative", with(pull, "after", -1), "bad_request", "after"),
      refusal("after a string", with(pull, "after", "0"), "bad_request", "after"),
      refusal("after a float", with(pull, "after", 0.5), "bad_request", "after"),
      refusal("limit negative", with(pull, "limit", -5), "bad_request", "limit"),
      refusal("wait_ms a float", with(pull, "wait_ms", 1.5), "bad_request", "wait_ms"),
      refusal("limit an integral float", with(pull, "limit", 10.0), "bad_request", "limit"),
      refusal("channels a string", with(pull, "channels", "station/x"), "bad_request", "channels"),
      refusal("channels of ints", with(pull, "channels", Value::array({1})), "bad_request",
              "channels"),
  };
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput, "a key the command does not know gets bad_request naming it") {
  std::vector<Refusal> corpus = {
      refusal("submit with extra", with(good_submit(), "priority", 1), "bad_request", "priority"),
      refusal("status with verbose", with(status_request(), "verbose", true), "bad_request",
              "verbose"),
      refusal("op with extra", with(op_request(std::string(64, 'a')), "fields", "all"),
              "bad_request", "fields"),
      refusal("track with extra", with(track_request(std::string(64, 'a')), "since", 0),
              "bad_request", "since"),
      refusal("pull with timeout", with(pull_request(0, 10), "timeout_ms", 10), "bad_request",
              "timeout_ms"),
  };
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput, "values out of their documented range get bad_request naming the key") {
  Value pull = pull_request(0, 10);
  std::vector<Value> deps33;
  for (int i = 0; i < 33; ++i) {
    std::string id(64, '0');
    id[0] = "0123456789abcdef"[i / 16];
    id[1] = "0123456789abcdef"[i % 16];
    deps33.push_back(id);
  }
  std::vector<Value> channels65(65, Value("desk/a"));
  std::vector<Refusal> corpus = {
      refusal("empty kind", with(good_submit(), "kind", ""), "bad_request", "kind"),
      refusal("empty key", with(good_submit(), "key", ""), "bad_request", "key"),
      refusal("empty channel", with(good_submit(), "channel", ""), "bad_request", "channel"),
      refusal("a system channel", with(good_submit(), "channel", "ferry/peers"), "bad_request",
              "channel"),
      refusal("empty author", with(good_submit(), "author", ""), "bad_request", "author"),
      refusal("33 deps", with(good_submit(), "deps", Value::array(deps33)), "bad_request", "deps"),
      refusal(
          "a dep twice",
          with(good_submit(), "deps", Value::array({std::string(64, 'a'), std::string(64, 'a')})),
          "bad_request", "deps"),
      refusal("a newline in kind", with(good_submit(), "kind", "case\nsubmit"), "bad_request",
              "kind"),
      refusal("a control byte in key", with(good_submit(), "key", "HN\x01"), "bad_request", "key"),
      refusal("invalid UTF-8 in channel", with(good_submit(), "channel", "desk/\xff"),
              "bad_request", "channel"),
      refusal("invalid UTF-8 in the body",
              with(good_submit(), "body", Value::map({{"name", "\xc3\x28"}})), "bad_request",
              "body"),
      refusal("an ext value in the body",
              with(good_submit(), "body", Value::map({{"x", Value::ext(1, {1})}})), "bad_request",
              "body"),
      // {"cmd":"submit","kind":"k","key":"k","body":{1:2}}
      Refusal{"an int map key in the body",
              {0x84, 0xa3, 'c', 'm',  'd', 0xa6, 's',  'u', 'b',  'm',  'i',
               't',  0xa4, 'k', 'i',  'n', 'd',  0xa1, 'k', 0xa3, 'k',  'e',
               'y',  0xa1, 'k', 0xa4, 'b', 'o',  'd',  'y', 0x81, 0x01, 0x02},
              "bad_request",
              "body"},
      refusal("limit 0", with(pull, "limit", 0), "bad_request", "limit"),
      refusal("limit over pull_limit_max", with(pull, "limit", pull_limit_max + 1), "bad_request",
              "limit"),
      refusal("wait_ms over pull_wait_max_ms", with(pull, "wait_ms", pull_wait_max_ms + 1),
              "bad_request", "wait_ms"),
      refusal("after 2^64-1", with(pull, "after", ~0ULL), "bad_request", "after"),
      refusal("65 channels", with(pull, "channels", Value::array(channels65)), "bad_request",
              "channels"),
  };
  run_corpus(client, corpus);
}

TEST_CASE_METHOD(BadInput,
                 "a body nested far deeper than allowed gets bad_request without a crash") {
  Ledger ledger(client);
  // Far deeper than any limit, still under request_bytes_max: refused without a crash.
  for (std::size_t depth : {20, 100, 1000, 10000}) {
    INFO("depth " << depth);
    Bytes frame = raw_deep_submit(depth);
    REQUIRE(frame.size() < request_bytes_max);
    check_error(client.call(frame), "bad_request", {});
  }
  ledger.expect("bad_request", 4);
  ledger.expect_requests(4);
  ledger.check();
}

TEST_CASE_METHOD(BadInput,
                 "a request of request_bytes_max is stored and one byte more gets too_large") {
  Value at_max = client.call(submit_of_size(request_bytes_max));
  INFO(at_max);
  REQUIRE(at_max["ok"].boolean());
  Ledger ledger(client);
  check_error(client.call(submit_of_size(request_bytes_max + 1)), "too_large",
              std::to_string(request_bytes_max));
  Bytes junk(request_bytes_max * 3, 0xc1);  // over the limit but under the cut-off
  check_error(client.call(junk), "too_large", {});
  ledger.expect("too_large", 2);
  ledger.expect_requests(2);
  ledger.check();
}

// docs/ipc.md: kind 1-64 bytes, key 1-256, channel 1-128, author 1-128; out of range is
// bad_request (too_large is for the frame, or an op over 65,536 bytes).
TEST_CASE("submit fields longer than their documented limits get bad_request") {
  TestNode node(small_limits());
  node.start();
  IpcClient client = node.client();
  Value at_max = good_submit();
  at_max.set("kind", std::string(64, 'k'));
  at_max.set("key", std::string(256, 'k'));
  at_max.set("channel", std::string(128, 'c'));
  at_max.set("author", std::string(128, 'a'));
  Value stored = client.call(at_max);
  INFO(stored);
  REQUIRE(stored["ok"].boolean());
  run_corpus(
      client,
      {
          refusal("kind of 65 bytes", with(good_submit(), "kind", std::string(65, 'k')),
                  "bad_request", "kind"),
          refusal("key of 257 bytes", with(good_submit(), "key", std::string(257, 'k')),
                  "bad_request", "key"),
          refusal("channel of 129 bytes", with(good_submit(), "channel", std::string(129, 'c')),
                  "bad_request", "channel"),
          refusal("author of 129 bytes", with(good_submit(), "author", std::string(129, 'a')),
                  "bad_request", "author"),
      });
}

// docs/ipc.md: the body may nest maps and arrays 16 deep; deeper is a value out of range.
TEST_CASE("a body nested 16 deep is stored and 17 deep gets bad_request") {
  TestNode node(small_limits());
  node.start();
  IpcClient client = node.client();
  Value at_max = client.call(submit_request("case.submit", "deep16", nested_body(16)));
  INFO(at_max);
  REQUIRE(at_max["ok"].boolean());
  CHECK(client.call(op_request(at_max["id"].str()))["op"]["body"] == nested_body(16));
  run_corpus(client,
             {refusal("a body 17 deep", submit_request("case.submit", "deep17", nested_body(17)),
                      "bad_request", "body")});
}

TEST_CASE(
    "a frame over 4x request_bytes_max closes the connection and is counted, and 4x gets "
    "too_large") {
  TestNode node(small_limits());
  node.start();
  IpcClient client = node.client();
  // The start probe's connection closes: wait for the count to settle on it.
  REQUIRE(wait_until([&] { return client.call(status_request())["ipc"]["disconnects"].u64() >= 1; },
                     10s));
  std::uint64_t before = client.call(status_request())["ipc"]["disconnects"].u64();
  std::uint64_t ops_before = client.call(status_request())["ops"].u64();

  Dealer dealer(node.endpoint());
  zmq_socket_monitor(dealer.socket().handle(), "inproc://it-oversize-monitor",
                     ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED);
  zmq::socket_t monitor(zmq_context(), zmq::socket_type::pair);
  monitor.set(zmq::sockopt::linger, 0);
  monitor.connect("inproc://it-oversize-monitor");
  auto next_event = [&](std::chrono::milliseconds timeout) -> int {
    zmq::pollitem_t item{monitor.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) <= 0) return 0;
    zmq::message_t event;
    zmq::message_t address;
    (void)monitor.recv(event, zmq::recv_flags::none);
    if (event.more()) (void)monitor.recv(address, zmq::recv_flags::none);
    std::uint16_t id = 0;
    std::memcpy(&id, event.data(), sizeof id);
    return id;
  };
  // A request over the same connection first: it is connected and served.
  dealer.send({{}, status_request().pack()});
  CHECK(dealer.receive_reply()["ok"].boolean());
  // At the cut-off (4x the limit) the frame still arrives and gets too_large.
  dealer.send({{}, Bytes(request_bytes_max * 4, 0xc1)});
  check_error(dealer.receive_reply(), "too_large", {});

  // One byte more and ZeroMQ closes the connection; there is no reply.
  Bytes huge(request_bytes_max * 4 + 1, 0xc1);
  dealer.send({{}, huge});
  int event = 0;
  bool closed = wait_until(
      [&] {
        event = next_event(50ms);
        return event == ZMQ_EVENT_DISCONNECTED;
      },
      20s, 0ms);
  CHECK(closed);
  CHECK_FALSE(dealer.receive(200ms).has_value());  // no reply to a cut-off frame
  bool counted = wait_until(
      [&] { return client.call(status_request())["ipc"]["disconnects"].u64() >= before + 1; }, 10s);
  CHECK(counted);
  Value status = client.call(status_request());
  INFO(status);
  CHECK(status["ipc"]["disconnects"].u64() == before + 1);
  CHECK(status["ops"].u64() == ops_before);
  for (const auto& [code, count] : status["ipc"]["errors"].fields()) {
    INFO(code);
    CHECK(count.u64() == (code == "too_large" ? 1 : 0));
  }
  zmq_socket_monitor(dealer.socket().handle(), nullptr, 0);
  // The daemon goes on serving, the other client and the one whose connection was cut alike
  // (ZeroMQ reconnects it).
  Value r = client.call(good_submit());
  INFO(r);
  CHECK(r["ok"].boolean());
  dealer.send({{}, status_request().pack()});
  CHECK(dealer.receive_reply()["ok"].boolean());
}

TEST_CASE("misframed requests from a DEALER get one bad_request each") {
  TestNode node(small_limits());
  node.start();
  IpcClient client = node.client();
  Dealer dealer(node.endpoint());
  Ledger ledger(client);
  Bytes status = status_request().pack();

  SECTION("multi-frame requests") {
    for (std::size_t extra : {1, 2, 7, 20}) {
      INFO(extra << " extra frames");
      std::vector<Bytes> frames = {{}, status};
      for (std::size_t i = 0; i < extra; ++i) frames.push_back(status);
      dealer.send(frames);
      check_error(dealer.receive_reply(), "bad_request", "frame");
    }
    ledger.expect("bad_request", 4);
    ledger.expect_requests(4);
  }
  SECTION("no empty delimiter") {
    dealer.send({status});
    check_error(dealer.receive_reply(), "bad_request", "delimiter");
    dealer.send({text_bytes("x"), status});
    check_error(dealer.receive_reply(), "bad_request", "delimiter");
    dealer.send(std::vector<Bytes>{Bytes{}});  // the delimiter alone
    check_error(dealer.receive_reply(), "bad_request", {});
    ledger.expect("bad_request", 3);
    ledger.expect_requests(3);
  }
  // One reply per request: the DEALER is still in step.
  dealer.send({{}, status});
  CHECK(dealer.receive_reply()["ok"].boolean());
  CHECK_FALSE(dealer.receive(100ms).has_value());
  ledger.expect_requests(1);
  ledger.check();
}

TEST_CASE("a burst of 10000 pipelined bad requests gets 10000 bad_request replies") {
  constexpr std::size_t burst = 10'000;
  TestNode node(small_limits());
  node.start();
  IpcClient client = node.client();
  Ledger ledger(client);
  Dealer dealer(node.endpoint());
  std::vector<Bytes> kinds = {
      {0xc1},
      Value(7).pack(),
      Value::map({{"cmd", "status"}, {"x", 1}}).pack(),
      without(good_submit(), "kind").pack(),
      with(good_submit(), "deps", "nope").pack(),
  };
  auto started = Clock::now();
  for (std::size_t i = 0; i < burst; ++i) dealer.send({{}, kinds[i % kinds.size()]});
  std::size_t received = 0;
  std::size_t wrong = 0;
  std::string first_wrong;
  auto deadline = Clock::now() + 120s;
  while (received < burst && Clock::now() < deadline) {
    auto frames = dealer.receive(1s);
    if (!frames) continue;
    ++received;
    Value reply = Value::decode(frames->back());
    bool ok = frames->size() == 2 && (*frames)[0].empty() && reply.has("error") &&
              reply["error"]["code"].str() == "bad_request";
    if (!ok && wrong++ == 0) first_wrong = reply.dump();
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  std::printf("10000 pipelined bad requests answered in %lld ms\n",
              static_cast<long long>(took.count()));
  INFO(first_wrong);
  CHECK(received == burst);
  CHECK(wrong == 0);
  CHECK_FALSE(dealer.receive(100ms).has_value());
  ledger.expect("bad_request", burst);
  ledger.expect_requests(burst);
  ledger.check();
  CHECK(client.call(status_request())["ipc"]["unsent_replies"].u64() == 0);
}

TEST_CASE("a submit whose op would exceed 65536 bytes gets too_large") {
  TestNode node;  // default request_bytes_max: 262144
  node.start();
  IpcClient client = node.client();
  Ledger ledger(client);
  Value r = client.call(submit_of_size(70'000));
  check_error(r, "too_large", {});
  ledger.expect("too_large");
  ledger.expect_requests(1);
  ledger.check();
}

}  // namespace ferry::it
