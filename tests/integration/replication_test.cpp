// Replication end to end (docs/protocol.md): real ferryd processes on loopback TCP with CurveZMQ,
// a hub, relays and stations, trust written at the hub, link loss, a crash mid catch-up, and a
// peer that breaks the protocol on purpose.
#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include "protocol/hex.h"
#include "protocol/node_key.h"
#include "protocol/sync.h"
#include "protocol/trust.h"
#include "tests/integration/daemon_harness.h"
#include "tests/integration/verified.h"

using namespace ferry;
using namespace ferry::it;

namespace {

constexpr auto converge_timeout = 120s;

std::set<std::string> channels_of(TestNode& node) {
  std::set<std::string> out;
  for (const std::string& c : node.status()["channels"].keys()) out.insert(c);
  return out;
}

Value track(TestNode& node, const std::string& id) {
  IpcClient c = node.client();
  return c.call(track_request(id));
}

std::uint64_t counter(TestNode& node, const std::string& name) {
  return node.status()["replication"][name].u64();
}

std::uint64_t errors_sent(TestNode& node, const std::string& code) {
  return node.status()["replication"]["errors_sent"][code].u64();
}

}  // namespace

TEST_CASE("ops filed while the hub is down reach it exactly once; track: forwarded, delivered",
          "[replication]") {
  TestNode hub(named("hub"));
  TestNode station(named("huaniao"));
  hub.replicate(hub_role(hub));
  station.replicate(below(hub, hub.node_id(), "station"));
  station.start();
  const std::size_t n = 10'000;
  std::vector<std::string> ids = submit_many(station, n, "offline");
  CHECK(track(station, ids.front())["state"].str() == "stored");

  hub.start();
  trust_add(hub, station, "station");
  const std::string channel = station.default_channel();
  REQUIRE(wait_until([&] { return track(station, ids.back())["state"].str() == "delivered"; },
                     converge_timeout, 50ms));
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));
  CHECK(feed_length(hub, channel, station.node_id()) == n);
  CHECK(counter(hub, "ops_received") >= n);
  CHECK(counter(hub, "duplicates") == 0);
  Value first = track(station, ids.front());
  INFO(first);
  CHECK(first["state"].str() == "delivered");
  CHECK(first["forwarded"]["peer"].str() == hub.node_id());
  CHECK(first["delivered"]["at"].u64() >= first["forwarded"]["at"].u64());
  CHECK(converged(hub, station, "ferry/trust"));
  // The receipt is an op of the hub's, in the station's channel: verifiable there.
  CHECK(feed_length(station, channel, hub.node_id()) >= 1);
  stop_and_verify({&hub, &station});
}

TEST_CASE("three stations behind a relay: uplink, downlink to the right station only",
          "[replication]") {
  TestNode hub(named("hub"));
  TestNode relay(named("township"));
  std::vector<std::unique_ptr<TestNode>> stations;
  for (const char* name : {"huaniao", "shengshan", "dongji"}) {
    stations.push_back(std::make_unique<TestNode>(named(name)));
  }
  hub.replicate(hub_role(hub));
  relay.replicate(below(hub, hub.node_id(), "relay", true));
  for (auto& s : stations) s->replicate(below(relay, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, relay, "relay");
  for (auto& s : stations) trust_add(hub, *s, "station");
  relay.start();
  for (auto& s : stations) s->start();

  for (auto& s : stations) submit_many(*s, 200, "case");
  // Decisions at the hub, for the first two stations only.
  IpcClient h = hub.client();
  for (std::size_t i = 0; i < 2; ++i) {
    Value decision = submit_request("case.approve", "case-7",
                                    Value::map({{"set", Value::map({{"status", "approved"}})}}));
    decision.set("channel", stations[i]->default_channel());
    hub.submit_ok(h, decision);
  }
  for (auto& s : stations) {
    INFO(s->name());
    const std::string channel = s->default_channel();
    REQUIRE(wait_until([&] { return converged(hub, *s, channel) && converged(relay, *s, channel); },
                       converge_timeout, 50ms));
    CHECK(feed_length(hub, channel, s->node_id()) == 200);
  }
  for (std::size_t i = 0; i < stations.size(); ++i) {
    TestNode& s = *stations[i];
    INFO(s.name());
    // Only its own channel (and trust) ever reaches a station.
    std::set<std::string> expected{s.default_channel(), "ferry/trust"};
    CHECK(channels_of(s) == expected);
    IpcClient c = s.client();
    std::size_t decisions = 0;
    for (Value& op : pull_all(c)) {
      CHECK(op["channel"].str() != "station/" + stations[(i + 1) % 3]->name());
      if (op["kind"].str() == "case.approve") ++decisions;
    }
    CHECK(decisions == (i < 2 ? 1u : 0u));
    IpcClient sc = s.client();
    Value record = sc.call(Value::map({{"cmd", "get"}, {"key", "case-7"}}));
    CHECK(record["record"]["fields"]["status"].str() == (i < 2 ? "approved" : "filed"));
  }
  CHECK(converged(hub, relay, "ferry/trust"));
  for (auto& s : stations) s->stop();
  relay.stop();
  hub.stop();
  require_verified(hub);
  require_verified(relay);
  for (auto& s : stations) require_verified(*s);
}

TEST_CASE("the hub killed mid catch-up: nothing lost, nothing twice, only the unacked resent",
          "[replication]") {
  TestNode hub(named("hub"));
  TestNode station(named("dongji"));
  // The kill is seen as a lost connection; long heartbeats keep a slow (sanitized) hub's pauses
  // from ending sessions too, so that only the batches in flight at the kill are resent.
  auto slow_heartbeats = [](Replication r) {
    r.limits["heartbeat_interval_ms"] = "1000";
    r.limits["heartbeat_timeout_ms"] = "30000";
    return r;
  };
  hub.replicate(slow_heartbeats(hub_role(hub)));
  station.replicate(slow_heartbeats(below(hub, hub.node_id(), "station")));
  station.start();
  const std::size_t n = 20'000;
  submit_many(station, n, "backlog");
  hub.start();
  trust_add(hub, station, "station");
  REQUIRE(wait_until([&] { return hub.status()["ops"].u64() >= n / 4; }, converge_timeout, 20ms));
  hub.kill9();
  hub.start();
  const std::string channel = station.default_channel();
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));
  CHECK(feed_length(hub, channel, station.node_id()) == n);
  // At most the batches in flight at the kill (window 4 x batch 512) were sent twice.
  std::uint64_t sent = counter(station, "ops_sent");
  INFO("ops sent by the station: " << sent);
  CHECK(sent >= n);
  CHECK(sent - n <= 4 * 512);
  stop_and_verify({&hub, &station});
}

TEST_CASE("an unknown key is refused at the handshake and nothing of it is stored",
          "[replication]") {
  TestNode hub(named("hub"));
  TestNode stranger(named("stranger"));
  hub.replicate(hub_role(hub));
  stranger.replicate(below(hub, hub.node_id(), "station"));
  hub.start();
  stranger.start();
  submit_many(stranger, 10, "probe");
  REQUIRE(wait_until([&] { return counter(hub, "zap_refused") >= 1; }, 30s, 20ms));
  CHECK(counter(hub, "sessions_opened") == 0);
  CHECK(channels_of(hub).count(stranger.default_channel()) == 0);
  CHECK(hub.status()["ops"].u64() == 0);
  IpcClient c = stranger.client();
  Value peers = c.call(Value::map({{"cmd", "peers"}}));
  REQUIRE(peers["peers"].size() == 1);
  CHECK_FALSE(peers["peers"][0]["connected"].boolean());
  CHECK(peers["peers"][0]["backlog"].u64() == 0);  // nothing sendable before it is trusted
}

namespace {

// A trusted peer that speaks the wire protocol by hand, to break it on purpose.
class RoguePeer {
 public:
  RoguePeer(const TestNode& hub, const NodeKey& key) : key_(key) {
    socket_ = zmq::socket_t(zmq_context(), zmq::socket_type::dealer);
    configure_test_socket(socket_);
    auto server = curve_public_of(*from_hex<public_key_bytes>(hub.node_id()));
    auto own = curve_public_of(key.public_key());
    CurveSecretKey secret = curve_secret_of(key);
    socket_.set(zmq::sockopt::curve_serverkey, zmq::buffer(server->data(), server->size()));
    socket_.set(zmq::sockopt::curve_publickey, zmq::buffer(own->data(), own->size()));
    socket_.set(zmq::sockopt::curve_secretkey,
                zmq::buffer(secret.bytes().data(), secret.bytes().size()));
    socket_.connect(hub.listen_endpoint());
  }

  void send(const sync::Message& m) {
    sync::Bytes frame = sync::encode(m);
    socket_.send(zmq::buffer(frame), zmq::send_flags::none);
  }

  sync::Message receive() {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    auto deadline = Clock::now() + 20s;
    while (Clock::now() < deadline) {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(20)) > 0) {
        zmq::message_t frame;
        (void)socket_.recv(frame, zmq::recv_flags::none);
        auto m = sync::decode({static_cast<const std::uint8_t*>(frame.data()), frame.size()},
                              sync::Limits{64 << 20, 1 << 20, 100'000, 64, 4096});
        if (!m) throw HarnessError("undecodable message: " + m.error().detail);
        if (std::holds_alternative<sync::Heartbeat>(*m)) continue;
        return *m;
      }
    }
    throw HarnessError("no message from the hub");
  }

  // hello, then the welcome; the ops the hub sends (trust) are acknowledged.
  sync::Welcome open() {
    sync::Hello hello;
    hello.name = "rogue";
    hello.key = key_.public_key();
    hello.role = "station";
    hello.channels = {"*"};
    send(hello);
    sync::Message m = receive();
    auto* welcome = std::get_if<sync::Welcome>(&m);
    if (welcome == nullptr) throw HarnessError("no welcome");
    return *welcome;
  }

  // The error the hub answers a batch with (after acknowledging what it sent meanwhile).
  sync::ErrorMessage error_after(const sync::OpsBatch& batch) {
    send(batch);
    for (int i = 0; i < 64; ++i) {
      sync::Message m = receive();
      if (auto* e = std::get_if<sync::ErrorMessage>(&m)) return *e;
      if (auto* ops = std::get_if<sync::OpsBatch>(&m)) send(sync::Ack{ops->batch, {}});
    }
    throw HarnessError("no error from the hub");
  }

 private:
  const NodeKey& key_;
  zmq::socket_t socket_;
};

SignedOp make_op(const NodeKey& key, const std::string& channel, std::uint64_t seq,
                 const OpId& prev, const std::string& case_key) {
  OpDraft draft;
  draft.channel = channel;
  draft.kind = "case.submit";
  draft.key = case_key;
  draft.body = {0x81, 0xa1, 'n', 0xa1, 'a'};  // {"n": "a"}
  auto op = Op::build(key.public_key(), seq, prev, 1000 + seq, draft);
  if (!op) throw HarnessError("cannot build an op: " + op.error().detail);
  return sign_op(std::move(*op), key);
}

}  // namespace

TEST_CASE("a trusted peer that breaks the protocol is refused, counted and cut off",
          "[replication]") {
  TestNode hub(named("hub"));
  hub.replicate(hub_role(hub));
  hub.start();
  NodeKey rogue_key = NodeKey::generate();
  {
    IpcClient c = hub.client();
    Value r = c.call(
        Value::map({{"cmd", "trust_add"}, {"name", "rogue"}, {"key", rogue_key.public_key_hex()}}));
    REQUIRE(r["ok"].boolean());
    // A decision for another station: its feed is none of the rogue's business.
    Value decision = submit_request("case.approve", "case-7",
                                    Value::map({{"set", Value::map({{"status", "approved"}})}}));
    decision.set("channel", "station/huaniao");
    hub.submit_ok(c, decision);
  }
  {  // The welcome names the feeds the peer may read (trust), not other stations' feeds.
    RoguePeer rogue(hub, rogue_key);
    sync::Welcome welcome = rogue.open();
    PublicKey hub_key = *from_hex<public_key_bytes>(hub.node_id());
    CHECK(welcome.vector.seq(FeedId{hub_key, "ferry/trust"}) == 1);
    CHECK(welcome.vector.seq(FeedId{hub_key, "station/huaniao"}) == 0);
    CHECK(welcome.vector.entries().size() == 1);
  }
  const std::string own = "station/rogue";
  SignedOp first = make_op(rogue_key, own, 1, OpId{}, "case-1");
  struct Case {
    std::string what;
    std::string code;
    std::vector<SignedOp> ops;
  };
  SignedOp forged = make_op(rogue_key, own, 2, first.op.id(), "case-2");
  forged.signature[0] ^= 0x01;
  SignedOp second = make_op(rogue_key, own, 2, first.op.id(), "case-2");
  std::vector<std::uint8_t> altered_bytes(second.op.bytes().begin(), second.op.bytes().end());
  const std::vector<std::uint8_t> body_tail = {'n', 0xa1, 'a'};
  auto in_body =
      std::search(altered_bytes.begin(), altered_bytes.end(), body_tail.begin(), body_tail.end());
  REQUIRE(in_body != altered_bytes.end());
  in_body[2] = 'b';  // the body's value: the envelope still decodes
  auto altered_op = Op::decode(altered_bytes);
  REQUIRE(altered_op);
  SignedOp altered{std::move(*altered_op), second.signature};
  SignedOp gap = make_op(rogue_key, own, 3, second.op.id(), "case-3");
  SignedOp fork = make_op(rogue_key, own, 1, OpId{}, "case-1-again");
  SignedOp elsewhere = make_op(rogue_key, "station/huaniao", 1, OpId{}, "case-9");
  std::vector<Case> cases = {
      {"a forged signature", "bad_signature", {first, forged}},
      {"an altered byte", "bad_signature", {first, altered}},
      {"a gap", "gap", {first, gap}},
      {"a channel its origin may not write", "unauthorized", {first, elsewhere}},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    std::uint64_t before = errors_sent(hub, c.code);
    RoguePeer rogue(hub, rogue_key);
    rogue.open();
    sync::ErrorMessage e = rogue.error_after(sync::OpsBatch{1, c.ops});
    CHECK(e.code == c.code);
    CHECK(errors_sent(hub, c.code) == before + 1);
    // All or nothing: not even the good first op of the batch was kept.
    CHECK(channels_of(hub).count(own) == 0);
  }
  {  // a fork: the good op is stored first, then a second op for its seq
    RoguePeer rogue(hub, rogue_key);
    rogue.open();
    rogue.send(sync::OpsBatch{1, {first}});
    bool acked = false;
    for (int i = 0; i < 64 && !acked; ++i) {
      sync::Message m = rogue.receive();
      if (auto* ops = std::get_if<sync::OpsBatch>(&m)) rogue.send(sync::Ack{ops->batch, {}});
      acked = std::holds_alternative<sync::Ack>(m);
    }
    REQUIRE(acked);
    std::uint64_t before = errors_sent(hub, "fork");
    sync::ErrorMessage e = rogue.error_after(sync::OpsBatch{2, {fork}});
    CHECK(e.code == "fork");
    CHECK(errors_sent(hub, "fork") == before + 1);
    CHECK(feed_length(hub, own, rogue_key.public_key_hex()) == 1);
  }
  // The daemon still serves a well-behaved peer.
  TestNode station(named("huaniao"));
  station.replicate(below(hub, hub.node_id(), "station"));
  trust_add(hub, station, "station");
  station.start();
  submit_many(station, 5, "after");
  REQUIRE(
      wait_until([&] { return converged(hub, station, station.default_channel()); }, 60s, 20ms));
  hub.stop();
  require_verified(hub);
}

TEST_CASE("a revocation at the hub reaches the relay and blocks the station's new ops",
          "[replication]") {
  TestNode hub(named("hub"));
  TestNode relay(named("township"));
  TestNode station(named("shengshan"));
  hub.replicate(hub_role(hub));
  relay.replicate(below(hub, hub.node_id(), "relay", true));
  station.replicate(below(relay, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, relay, "relay");
  trust_add(hub, station, "station");
  relay.start();
  station.start();
  submit_many(station, 20, "before");
  const std::string channel = station.default_channel();
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 20ms));

  IpcClient h = hub.client();
  Value revoked = h.call(Value::map({{"cmd", "trust_revoke"}, {"who", station.name()}}));
  REQUIRE(revoked["ok"].boolean());
  auto relay_sees_revocation = [&] {
    IpcClient c = relay.client();
    Value list = c.call(Value::map({{"cmd", "trust_list"}}));
    for (const Value& e : list["trust"].items()) {
      if (e["key"].str() == station.node_id()) return e["revoked"].boolean();
    }
    return false;
  };
  REQUIRE(wait_until(relay_sees_revocation, converge_timeout, 20ms));
  std::uint64_t held = feed_length(relay, channel, station.node_id());
  CHECK(held == 20);
  // The station still acknowledges locally, but the relay no longer takes its ops.
  submit_many(station, 5, "after");
  REQUIRE(wait_until(
      [&] { return counter(relay, "zap_refused") >= 1 || counter(relay, "revoked_skipped") >= 1; },
      30s, 20ms));
  CHECK(feed_length(relay, channel, station.node_id()) == held);
  CHECK(feed_length(hub, channel, station.node_id()) == held);
  relay.stop();
  hub.stop();
  require_verified(relay);
  require_verified(hub);
}

namespace {

// Two network namespaces joined by a veth pair: the hub's (10.213.7.1) and a station's
// (10.213.7.2). Only addresses inside these namespaces are used. Links are cut with nft rules in
// the hub's namespace. Everything is torn down in the destructor. Needs root; available() says
// whether it could be built (the test prints a visible SKIP otherwise).
class NetLab {
 public:
  NetLab() {
    std::string tag = std::to_string(::getpid() % 100000);
    hub_ns_ = "ferry-h" + tag;
    station_ns_ = "ferry-s" + tag;
    std::string hub_if = "fh" + tag;
    std::string station_if = "fs" + tag;
    if (::geteuid() != 0 || ip_path().empty() || !tool("nft")) {
      why_ = "needs root, iproute2 and nftables";
      return;
    }
    cleanup();
    ok_ = ip({"netns", "add", hub_ns_}) && ip({"netns", "add", station_ns_}) &&
          ip({"link", "add", hub_if, "netns", hub_ns_, "type", "veth", "peer", "name", station_if,
              "netns", station_ns_}) &&
          in(hub_ns_, {ip_path(), "addr", "add", "10.213.7.1/24", "dev", hub_if}) &&
          in(station_ns_, {ip_path(), "addr", "add", "10.213.7.2/24", "dev", station_if}) &&
          in(hub_ns_, {ip_path(), "link", "set", hub_if, "up"}) &&
          in(station_ns_, {ip_path(), "link", "set", station_if, "up"}) &&
          in(hub_ns_, {ip_path(), "link", "set", "lo", "up"}) &&
          in(station_ns_, {ip_path(), "link", "set", "lo", "up"});
    if (!ok_) why_ = "could not build the namespaces: " + last_error_;
  }
  ~NetLab() { cleanup(); }

  bool available() const { return ok_; }
  const std::string& why() const { return why_; }
  const std::string& hub_ns() const { return hub_ns_; }
  const std::string& station_ns() const { return station_ns_; }

  // Drops the hub's packets in one or both directions (a silent partition: no resets).
  void cut(bool inbound, bool outbound) {
    std::string rules = "table inet ferrycut {\n";
    if (inbound)
      rules += " chain in { type filter hook input priority 0; iifname != \"lo\" drop; }\n";
    if (outbound) {
      rules += " chain out { type filter hook output priority 0; oifname != \"lo\" drop; }\n";
    }
    rules += "}\n";
    std::string file = dir_.file("cut.nft");
    write_file(file, rules);
    if (!in(hub_ns_, {"/usr/sbin/nft", "-f", file})) throw HarnessError("nft: " + last_error_);
  }
  void heal() { (void)in(hub_ns_, {"/usr/sbin/nft", "delete", "table", "inet", "ferrycut"}); }

 private:
  static bool tool(const std::string& name) {
    return ::access(("/usr/sbin/" + name).c_str(), X_OK) == 0;
  }
  bool run(const std::vector<std::string>& argv) {
    ProcessResult r = run_process(argv, 30s);
    if (!r.status.ok()) last_error_ = r.err;
    return r.status.ok();
  }
  bool ip(std::vector<std::string> args) {
    args.insert(args.begin(), ip_path());
    return run(args);
  }
  bool in(const std::string& ns, std::vector<std::string> args) {
    args.insert(args.begin(), {ip_path(), "netns", "exec", ns});
    return run(args);
  }
  void cleanup() {
    for (const std::string& ns : {hub_ns_, station_ns_}) {
      run_process({ip_path(), "netns", "del", ns}, 30s);  // fails harmlessly when absent
    }
  }

  test::TempDir dir_;
  std::string hub_ns_, station_ns_;
  bool ok_ = false;
  std::string why_;
  std::string last_error_;
};

NodeSettings in_namespace(std::string name, std::string ns) {
  NodeSettings settings = named(std::move(name));
  settings.netns = std::move(ns);
  return settings;
}

}  // namespace

TEST_CASE("a 10 s silent partition during load, then heal: the replicas converge",
          "[replication][netns]") {
  NetLab lab;
  if (!lab.available()) {
    WARN("SKIP: partition test: " << lab.why());
    return;
  }
  TestNode hub(in_namespace("hub", lab.hub_ns()));
  TestNode station(in_namespace("huaniao", lab.station_ns()));
  hub.replicate(hub_role(hub, "10.213.7.1"));
  station.replicate(below(hub, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, station, "station");
  station.start();
  Submitters load(station.endpoint(), 2, "partition");
  const std::string channel = station.default_channel();
  REQUIRE(wait_until([&] { return load.acked() >= 200 && counter(hub, "ops_received") > 0; }, 60s,
                     10ms));
  lab.cut(true, true);
  auto cut_at = Clock::now();
  std::uint64_t lost_before = counter(station, "sessions_lost");
  // The station notices within the heartbeat timeout (1.5 s here), and keeps acknowledging.
  REQUIRE(wait_until([&] { return counter(station, "sessions_lost") > lost_before; }, 10s, 20ms));
  auto noticed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - cut_at);
  INFO("the cut was noticed after " << noticed.count() << " ms");
  CHECK(noticed < 1500ms + 1000ms);
  std::uint64_t acked_during = load.acked();
  REQUIRE(wait_until([&] { return Clock::now() - cut_at >= 10s; }, 20s, 50ms));
  CHECK(load.acked() > acked_during);
  lab.heal();
  load.stop();
  CHECK(load.problems().empty());
  REQUIRE(wait_until([&] { return converged(hub, station, channel); }, converge_timeout, 50ms));
  // Every op the station holds, once (a submit abandoned by stop() may be stored unacknowledged).
  std::uint64_t held = feed_length(station, channel, station.node_id());
  CHECK(held >= load.acked());
  CHECK(feed_length(hub, channel, station.node_id()) == held);
  stop_and_verify({&hub, &station});
}

TEST_CASE("a half-open link (one direction dropped) is noticed within the heartbeat timeout",
          "[replication][netns]") {
  NetLab lab;
  if (!lab.available()) {
    WARN("SKIP: half-open link test: " << lab.why());
    return;
  }
  TestNode hub(in_namespace("hub", lab.hub_ns()));
  TestNode station(in_namespace("dongji", lab.station_ns()));
  hub.replicate(hub_role(hub, "10.213.7.1"));
  station.replicate(below(hub, hub.node_id(), "station"));
  hub.start();
  trust_add(hub, station, "station");
  station.start();
  REQUIRE(wait_until([&] { return counter(station, "sessions_opened") >= 1; }, 60s, 10ms));
  std::uint64_t lost_before = counter(station, "sessions_lost");
  lab.cut(false, true);  // the hub still hears the station, the station hears nothing
  auto cut_at = Clock::now();
  REQUIRE(wait_until([&] { return counter(station, "sessions_lost") > lost_before; }, 10s, 20ms));
  auto noticed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - cut_at);
  INFO("noticed after " << noticed.count() << " ms");
  CHECK(noticed < 1500ms + 1000ms);
  lab.heal();
  submit_many(station, 10, "healed");
  REQUIRE(wait_until([&] { return converged(hub, station, station.default_channel()); },
                     converge_timeout, 50ms));
}
