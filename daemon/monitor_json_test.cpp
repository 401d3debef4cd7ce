#include "daemon/monitor_json.h"

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "protocol/hex.h"
#include "protocol/node_key.h"
#include "protocol/sync.h"
#include "tests/support/test_support.h"

namespace {

using ferry::FeedId;
using ferry::PublicKey;
using ferry::TrustEntry;
using ferry::TrustView;
using ferry::VersionVector;
using ferry::daemon::IpcCounters;
using ferry::daemon::Json;
using ferry::daemon::MetricsInput;
using ferry::daemon::PeerReport;
using ferry::daemon::RateTracker;
using ferry::daemon::StationFacts;
using ferry::daemon::StatusFacts;

// A wall time at the start of a rate bucket.
constexpr std::uint64_t base_ms = 60'000'000 * RateTracker::bucket_ms;
constexpr std::uint64_t now_ms = 1'796'000'000'000;
constexpr std::uint64_t silent_after_ms = 1'800'000;

PublicKey key_of(std::uint8_t fill) {
  ferry::Seed seed{};
  seed.fill(fill);
  return ferry::NodeKey::from_seed(seed).public_key();
}

std::size_t error_index(ferry::sync::ErrorCode code) { return static_cast<std::size_t>(code); }

// ---- Rates ----

// Observes `key` once a second from `from_ms` to `to_ms` inclusive, its total growing by
// `per_second`; returns the last total.
std::uint64_t observe_steady(RateTracker& rates, const std::string& key, std::uint64_t from_ms,
                             std::uint64_t to_ms, std::uint64_t start_total,
                             std::uint64_t per_second) {
  std::uint64_t total = start_total;
  for (std::uint64_t t = from_ms; t <= to_ms; t += 1'000) {
    total = start_total + (t - from_ms) / 1'000 * per_second;
    rates.observe(key, total, t);
  }
  return total;
}

TEST_CASE("a steady growth gives its rate in completed buckets and the current one") {
  RateTracker rates;
  // Ten completed buckets and half of the current one, at 10 ops/s.
  std::uint64_t end_ms = base_ms + 10 * RateTracker::bucket_ms + 15'000;
  observe_steady(rates, "peer/a", base_ms, end_ms, 5'000, 10);
  auto r = rates.rates("peer/a", end_ms);
  REQUIRE(r.size() == 30);
  for (std::size_t i = 19; i < 30; ++i) {
    INFO("bucket " << i);
    CHECK(r[i] == Approx(10.0));
  }
  // Later in the current bucket without new observations, the rate is over the longer span.
  CHECK(rates.rates("peer/a", end_ms + 10'000)[29] == Approx(6.0));
}

TEST_CASE("buckets before the first observation are 0") {
  RateTracker rates;
  std::uint64_t end_ms = base_ms + 3 * RateTracker::bucket_ms + 10'000;
  observe_steady(rates, "station/x", base_ms, end_ms, 0, 4);
  auto r = rates.rates("station/x", end_ms);
  for (std::size_t i = 0; i < 26; ++i) {
    INFO("bucket " << i);
    CHECK(r[i] == 0.0);
  }
  for (std::size_t i = 26; i < 30; ++i) {
    INFO("bucket " << i);
    CHECK(r[i] == Approx(4.0));
  }
  // An unknown key has no rate at all.
  for (double v : rates.rates("station/unknown", end_ms)) CHECK(v == 0.0);
}

TEST_CASE("a total that goes down gives a rate of 0, never a negative or huge one") {
  RateTracker rates;
  rates.observe("k", 1'000, base_ms);
  rates.observe("k", 1'100, base_ms + 10'000);
  // A rebuilt store: the total falls, in the next bucket and within the current one.
  rates.observe("k", 200, base_ms + RateTracker::bucket_ms);
  rates.observe("k", 100, base_ms + RateTracker::bucket_ms + 5'000);
  auto r = rates.rates("k", base_ms + RateTracker::bucket_ms + 10'000);
  for (std::size_t i = 0; i < r.size(); ++i) {
    INFO("bucket " << i);
    CHECK(r[i] >= 0.0);
    CHECK(r[i] < 1'000.0);
  }
  CHECK(r[28] == 0.0);
  CHECK(r[29] == 0.0);
}

// A completed bucket ends where the next observed bucket starts, so growth that came later is
// not counted in it. Buckets without observations are routine when refresh_ms (up to 60 s) is
// longer than a bucket, or when the loop stalls.
TEST_CASE("growth after an unobserved bucket is not counted in the bucket before it", "[monitor]") {
  RateTracker rates;
  // Observed every 45 s: bucket 2 has no observation. Flat until 90 s, then 9000 ops by 135 s.
  rates.observe("k", 0, base_ms);
  rates.observe("k", 0, base_ms + 45'000);
  rates.observe("k", 0, base_ms + 90'000);
  rates.observe("k", 9'000, base_ms + 135'000);
  auto r = rates.rates("k", base_ms + 135'000);
  CHECK(r[26] == 0.0);  // bucket 1: the total was the same at 45 s and at 90 s
}

// After the wall clock steps back, the buckets seen before no longer line up with time: kept,
// they would give rates of thousands of ops/s once the clock reached them again.
TEST_CASE("a wall clock that steps back gives no huge rate", "[monitor]") {
  RateTracker rates;
  std::uint64_t total = 0;
  for (std::uint64_t t = base_ms; t <= base_ms + 600'000; t += 1'000) {
    total += 10;
    rates.observe("k", total, t);
  }
  double highest = 0;
  std::uint64_t highest_at = 0;
  // The clock steps back 5 minutes; the total keeps growing at 10 ops/s.
  for (std::uint64_t t = base_ms + 300'000; t <= base_ms + 700'000; t += 1'000) {
    total += 10;
    rates.observe("k", total, t);
    for (double v : rates.rates("k", t)) {
      if (v > highest) {
        highest = v;
        highest_at = t - base_ms;
      }
    }
  }
  INFO("highest rate " << highest << " ops/s at base + " << highest_at << " ms");
  CHECK(highest <= 20.0);
}

TEST_CASE("forget_older drops keys not observed since the time given") {
  RateTracker rates;
  observe_steady(rates, "old", base_ms, base_ms + 20'000, 0, 5);
  observe_steady(rates, "new", base_ms, base_ms + 40'000, 0, 5);
  rates.forget_older(base_ms + 30'000);
  std::uint64_t at = base_ms + 40'000;
  for (double v : rates.rates("old", at)) CHECK(v == 0.0);
  CHECK(rates.rates("new", at)[29] == Approx(5.0));
  CHECK(rates.rates("new", at)[28] == Approx(5.0));
}

TEST_CASE("rates are at most 30 numbers, the last 15 minutes, however long the history") {
  RateTracker rates;
  // An hour: 120 buckets, at 2 ops/s.
  std::uint64_t end_ms = base_ms + 120 * RateTracker::bucket_ms;
  observe_steady(rates, "k", base_ms, end_ms, 0, 2);
  auto r = rates.rates("k", end_ms);
  Json json = ferry::daemon::rate_json(r);
  REQUIRE(json.is_array());
  CHECK(json.size() == 30);
  // Each of the 29 completed buckets in the window still has its data.
  for (std::size_t i = 0; i < 29; ++i) {
    INFO("bucket " << i);
    CHECK(r[i] == Approx(2.0));
  }
  // rate_json rounds to hundredths.
  std::array<double, RateTracker::buckets> thirds{};
  thirds.fill(1.0 / 3.0);
  CHECK(ferry::daemon::rate_json(thirds)[0].get<double>() == Approx(0.33));
}

// ---- Status reports ----

StatusFacts sample_facts() {
  StatusFacts f;
  f.name = "huaniao";
  f.role = "station";
  f.version = "0.1.0";
  f.at_ms = now_ms;
  f.backlog_ops = 12;
  f.oldest_unsent_ms = now_ms - 60'000;
  f.disk_free_bytes = 1'000'000'000;
  f.upstream_online = true;
  f.upstream_contact_ms = now_ms - 500;
  f.rejected[error_index(ferry::sync::ErrorCode::bad_signature)] = 2;
  PeerReport up;
  up.name = "relay-ds";
  up.key = key_of(10);
  up.upstream = true;
  up.connected = true;
  f.peers.push_back(up);
  f.held.raise(FeedId{key_of(1), "broadcast"}, 7);
  return f;
}

TEST_CASE("status_fields writes every documented field") {
  StatusFacts f = sample_facts();
  Json fields = ferry::daemon::status_fields(f);
  CHECK(fields["name"] == "huaniao");
  CHECK(fields["role"] == "station");
  CHECK(fields["version"] == "0.1.0");
  CHECK(fields["at_ms"] == now_ms);
  CHECK(fields["backlog_ops"] == 12);
  CHECK(fields["oldest_unsent_ms"] == now_ms - 60'000);
  CHECK(fields["disk_free_bytes"] == 1'000'000'000);
  CHECK(fields["upstream_online"] == true);
  CHECK(fields["upstream_contact_ms"] == now_ms - 500);
  CHECK(fields["rejected"] == Json{{"bad_signature", 2}});
  CHECK(fields["peers"] == Json::array({Json{{"name", "relay-ds"},
                                             {"key", ferry::to_hex(key_of(10))},
                                             {"online", true},
                                             {"upstream", true}}}));
  CHECK(fields["held"] == Json{{ferry::to_hex(key_of(1)) + "/broadcast", 7}});
  CHECK(ferry::daemon::feed_label(FeedId{key_of(1), "station/a"}) ==
        ferry::to_hex(key_of(1)) + "/station/a");
}

TEST_CASE("times alone are not a change of the status report") {
  Json last = ferry::daemon::status_fields(sample_facts());
  StatusFacts later = sample_facts();
  later.at_ms += 3'600'000;
  later.upstream_contact_ms += 3'600'000;
  CHECK_FALSE(ferry::daemon::status_changed(last, ferry::daemon::status_fields(later)));
  CHECK_FALSE(ferry::daemon::status_changed(last, last));
}

TEST_CASE("disk space is a change only beyond 1%") {
  Json last = ferry::daemon::status_fields(sample_facts());  // 1'000'000'000 bytes
  auto with_disk = [](std::uint64_t bytes) {
    StatusFacts f = sample_facts();
    f.disk_free_bytes = bytes;
    return ferry::daemon::status_fields(f);
  };
  CHECK_FALSE(ferry::daemon::status_changed(last, with_disk(1'009'000'000)));
  CHECK_FALSE(ferry::daemon::status_changed(last, with_disk(991'000'000)));
  CHECK(ferry::daemon::status_changed(last, with_disk(1'020'000'000)));
  CHECK(ferry::daemon::status_changed(last, with_disk(980'000'000)));
  CHECK(ferry::daemon::status_changed(last, with_disk(0)));
}

TEST_CASE("backlog, peers, held and rejected are changes of the status report") {
  Json last = ferry::daemon::status_fields(sample_facts());
  StatusFacts f = sample_facts();
  f.backlog_ops = 13;
  CHECK(ferry::daemon::status_changed(last, ferry::daemon::status_fields(f)));
  f = sample_facts();
  f.peers[0].connected = false;
  CHECK(ferry::daemon::status_changed(last, ferry::daemon::status_fields(f)));
  f = sample_facts();
  f.held.raise(FeedId{key_of(1), "broadcast"}, 8);
  CHECK(ferry::daemon::status_changed(last, ferry::daemon::status_fields(f)));
  f = sample_facts();
  f.rejected[error_index(ferry::sync::ErrorCode::fork)] = 1;
  CHECK(ferry::daemon::status_changed(last, ferry::daemon::status_fields(f)));
  f = sample_facts();
  f.upstream_online = false;
  CHECK(ferry::daemon::status_changed(last, ferry::daemon::status_fields(f)));
  // A field that disappeared is a change too.
  Json fewer = last;
  fewer.erase("version");
  CHECK(ferry::daemon::status_changed(last, fewer));
}

TEST_CASE("a status report names at most 64 peers and 64 held feeds") {
  StatusFacts f = sample_facts();
  f.peers.clear();
  for (int i = 0; i < 70; ++i) {
    PeerReport p;
    p.name = "station-" + std::to_string(i);
    p.key = key_of(static_cast<std::uint8_t>(i + 20));
    f.peers.push_back(p);
    f.held.raise(FeedId{key_of(2), "station/s" + std::to_string(i)},
                 static_cast<std::uint64_t>(i + 1));
  }
  Json fields = ferry::daemon::status_fields(f);
  CHECK(fields["peers"].size() == ferry::daemon::status_peers_max);
  CHECK(fields["held"].size() == ferry::daemon::status_held_max);
  CHECK(ferry::daemon::status_peers_max == 64);
  CHECK(ferry::daemon::status_held_max == 64);
  // At the limit nothing is dropped.
  f.peers.resize(64);
  CHECK(ferry::daemon::status_fields(f)["peers"].size() == 64);
}

TEST_CASE("status_body is the set map of the fields in msgpack") {
  Json fields = ferry::daemon::status_fields(sample_facts());
  std::vector<std::uint8_t> body = ferry::daemon::status_body(fields);
  Json decoded = Json::from_msgpack(body);
  CHECK(decoded == Json{{"set", fields}});
}

// ---- Backlog down ----

struct BacklogWorld {
  PublicKey hub = key_of(1);
  PublicKey reader = key_of(2);
  PublicKey other = key_of(3);
  TrustView trust{hub};
  VersionVector ours;

  BacklogWorld() {
    trust.put(ferry::default_entry(reader, "huaniao", std::string(ferry::role_station)));
    trust.put(ferry::default_entry(other, "beach", std::string(ferry::role_station)));
    ours.raise(FeedId{hub, "broadcast"}, 10);                       // readable
    ours.raise(FeedId{hub, std::string(ferry::trust_channel)}, 5);  // readable
    ours.raise(FeedId{hub, "station/huaniao"}, 3);                  // readable
    ours.raise(FeedId{other, "station/beach"}, 7);                  // not readable by huaniao
    ours.raise(FeedId{reader, "station/huaniao"}, 20);              // the reader's own feed
  }
  std::string label(const PublicKey& origin, const std::string& channel) const {
    return ferry::daemon::feed_label(FeedId{origin, channel});
  }
};

TEST_CASE("backlog_down counts the feeds the reader may read beyond what it holds") {
  BacklogWorld w;
  // broadcast named at 4: 6; ferry/trust not named: 5; station/huaniao of the hub named higher
  // than held here: 0; beach's feed is not readable; the reader's own feed is skipped.
  Json report{
      {"held", {{w.label(w.hub, "broadcast"), 4u}, {w.label(w.hub, "station/huaniao"), 9u}}}};
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, report) == 11);
  // Naming everything at our seq leaves nothing.
  Json caught_up{{"held",
                  {{w.label(w.hub, "broadcast"), 10u},
                   {w.label(w.hub, std::string(ferry::trust_channel)), 5u},
                   {w.label(w.hub, "station/huaniao"), 3u}}}};
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, caught_up) == 0);
}

TEST_CASE("backlog_down counts feeds missing from held, or without held, from 0") {
  BacklogWorld w;
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, Json::object()) == 18);
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, Json{{"held", Json::object()}}) ==
        18);
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, Json{{"held", "nonsense"}}) == 18);
  // A seq that is not a number is as good as no seq.
  Json bad_seq{{"held", {{w.label(w.hub, "broadcast"), "4"}}}};
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, bad_seq) == 18);
}

TEST_CASE("backlog_down is 0 for a reader that may read nothing") {
  BacklogWorld w;
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, key_of(9), Json::object()) == 0);
  TrustEntry revoked = ferry::default_entry(w.reader, "huaniao", std::string(ferry::role_station));
  revoked.revoked = true;
  w.trust.put(revoked);
  CHECK(ferry::daemon::backlog_down(w.ours, w.trust, w.reader, Json::object()) == 0);
}

// ---- Station rows ----

TrustEntry station(std::uint8_t fill, const std::string& name,
                   std::string_view role = ferry::role_station) {
  return ferry::default_entry(key_of(fill), name, std::string(role));
}

PeerReport peer(const TrustEntry& entry, bool connected, std::uint64_t last_seen_ms) {
  PeerReport p;
  p.name = entry.name;
  p.key = entry.key;
  p.connected = connected;
  p.last_seen_ms = last_seen_ms;
  return p;
}

// A relay's report listing `below` as its (downstream) peers.
Json relay_report(std::uint64_t at_ms, const std::vector<PeerReport>& below) {
  StatusFacts f;
  f.name = "relay";
  f.role = "relay";
  f.version = "0.1.0";
  f.at_ms = at_ms;
  f.peers = below;
  return ferry::daemon::status_fields(f);
}

StationFacts facts(const TrustEntry& entry, const PeerReport* direct = nullptr,
                   std::optional<Json> report = std::nullopt) {
  StationFacts f;
  f.entry = entry;
  f.direct = direct;
  f.report = std::move(report);
  return f;
}

const Json& row_named(const Json& rows, const std::string& name) {
  for (const Json& row : rows) {
    if (row["name"] == name) return row;
  }
  FAIL("no row named " << name);
  return rows;
}

TEST_CASE("a directly connected station is online, via no relay") {
  TrustEntry a = station(11, "huaniao");
  PeerReport direct = peer(a, true, now_ms - 500);
  Json rows = ferry::daemon::station_rows({facts(a, &direct)}, now_ms, silent_after_ms);
  REQUIRE(rows.size() == 1);
  const Json& row = rows[0];
  CHECK(row["online"] == true);
  CHECK(row["via"] == "");
  CHECK(row["silent"] == false);
  CHECK(row["last_seen_ms"] == now_ms - 500);
  CHECK(row["key"] == ferry::to_hex(a.key));
  CHECK(row["role"] == "station");
}

TEST_CASE("a station listed online by an online relay is online via that relay") {
  TrustEntry relay = station(10, "relay-ds", ferry::role_relay);
  TrustEntry a = station(11, "huaniao");
  TrustEntry b = station(12, "beach");  // listed, but not online there
  PeerReport relay_direct = peer(relay, true, now_ms - 200);
  PeerReport hub_up = peer(station(1, "hub", ferry::role_hub), true, now_ms);
  hub_up.upstream = true;
  Json report = relay_report(now_ms - 10'000, {peer(a, true, 0), peer(b, false, 0), hub_up});
  // The station's own report is older than the relay's.
  Json own = relay_report(now_ms - 50'000, {});
  Json rows = ferry::daemon::station_rows(
      {facts(relay, &relay_direct, report), facts(a, nullptr, own), facts(b)}, now_ms,
      silent_after_ms);
  const Json& ra = row_named(rows, "huaniao");
  CHECK(ra["online"] == true);
  CHECK(ra["via"] == "relay-ds");
  CHECK(ra["silent"] == false);
  CHECK(ra["last_seen_ms"] == now_ms - 10'000);
  CHECK(ra["last_report_ms"] == now_ms - 50'000);
  const Json& rb = row_named(rows, "beach");
  CHECK(rb["online"] == false);
  CHECK(rb["via"] == "");
  const Json& rr = row_named(rows, "relay-ds");
  CHECK(rr["online"] == true);
  CHECK(rr["via"] == "");
}

TEST_CASE("a station behind two relays is online via the nearer one to it") {
  TrustEntry relay1 = station(10, "relay-1", ferry::role_relay);
  TrustEntry relay2 = station(13, "relay-2", ferry::role_relay);
  TrustEntry a = station(11, "huaniao");
  PeerReport relay1_direct = peer(relay1, true, now_ms);
  Json report1 = relay_report(now_ms - 1'000, {peer(relay2, true, 0)});
  Json report2 = relay_report(now_ms - 2'000, {peer(a, true, 0)});
  // relay-2 comes first, so its row is decided only in the second round.
  Json rows = ferry::daemon::station_rows(
      {facts(relay2, nullptr, report2), facts(a), facts(relay1, &relay1_direct, report1)}, now_ms,
      silent_after_ms);
  CHECK(row_named(rows, "relay-2")["via"] == "relay-1");
  CHECK(row_named(rows, "huaniao")["online"] == true);
  CHECK(row_named(rows, "huaniao")["via"] == "relay-2");
}

TEST_CASE("a station listed by an offline relay is offline") {
  TrustEntry relay = station(10, "relay-ds", ferry::role_relay);
  TrustEntry a = station(11, "huaniao");
  PeerReport relay_direct = peer(relay, false, now_ms - 60'000);
  Json report = relay_report(now_ms - 60'000, {peer(a, true, 0)});
  Json rows = ferry::daemon::station_rows({facts(relay, &relay_direct, report), facts(a)}, now_ms,
                                          silent_after_ms);
  CHECK(row_named(rows, "relay-ds")["online"] == false);
  CHECK(row_named(rows, "huaniao")["online"] == false);
  CHECK(row_named(rows, "huaniao")["via"] == "");
  // A relay without any link here vouches for nobody either.
  Json alone = ferry::daemon::station_rows({facts(relay, nullptr, report), facts(a)}, now_ms,
                                           silent_after_ms);
  CHECK(row_named(alone, "huaniao")["online"] == false);
}

// docs/monitor.md: last_seen_ms is the latest of its last message here, its last report, and
// the last report of a relay listing it as online; the relay need not be online now.
TEST_CASE("the last report of a relay listing a station counts as seeing it", "[monitor]") {
  TrustEntry relay = station(10, "relay-ds", ferry::role_relay);
  TrustEntry a = station(11, "huaniao");
  PeerReport relay_direct = peer(relay, false, now_ms - 60'000);
  Json report = relay_report(now_ms - 60'000, {peer(a, true, 0)});
  Json rows = ferry::daemon::station_rows({facts(relay, &relay_direct, report), facts(a)}, now_ms,
                                          silent_after_ms);
  CHECK(row_named(rows, "huaniao")["last_seen_ms"] == now_ms - 60'000);
  CHECK(row_named(rows, "huaniao")["silent"] == false);
}

TEST_CASE("a station is silent when last seen longer ago than silent_after, or never") {
  TrustEntry a = station(11, "a-old");
  TrustEntry b = station(12, "b-recent");
  TrustEntry c = station(13, "c-never");
  TrustEntry d = station(14, "d-edge");
  PeerReport a_direct = peer(a, false, now_ms - silent_after_ms - 1);
  PeerReport b_direct = peer(b, false, now_ms - silent_after_ms + 1);
  PeerReport d_direct = peer(d, false, now_ms - silent_after_ms);
  Json rows = ferry::daemon::station_rows(
      {facts(a, &a_direct), facts(b, &b_direct), facts(c), facts(d, &d_direct)}, now_ms,
      silent_after_ms);
  CHECK(row_named(rows, "a-old")["silent"] == true);
  CHECK(row_named(rows, "b-recent")["silent"] == false);
  CHECK(row_named(rows, "c-never")["silent"] == true);
  CHECK(row_named(rows, "c-never")["last_seen_ms"] == 0);
  CHECK(row_named(rows, "d-edge")["silent"] == false);
  // Its own report counts as seeing it.
  Json rows2 = ferry::daemon::station_rows({facts(c, nullptr, relay_report(now_ms - 1'000, {}))},
                                           now_ms, silent_after_ms);
  CHECK(rows2[0]["silent"] == false);
  CHECK(rows2[0]["last_seen_ms"] == now_ms - 1'000);
}

TEST_CASE("an online station is not silent, however old its last sighting") {
  TrustEntry relay = station(10, "relay-ds", ferry::role_relay);
  TrustEntry a = station(11, "huaniao");
  PeerReport relay_direct = peer(relay, true, now_ms);
  Json stale = relay_report(now_ms - 10 * silent_after_ms, {peer(a, true, 0)});
  Json rows = ferry::daemon::station_rows({facts(relay, &relay_direct, stale), facts(a)}, now_ms,
                                          silent_after_ms);
  CHECK(row_named(rows, "huaniao")["online"] == true);
  CHECK(row_named(rows, "huaniao")["silent"] == false);
}

TEST_CASE("rows without a report have null backlogs, rows with one the report's figures") {
  TrustEntry a = station(11, "huaniao");
  TrustEntry b = station(12, "beach");
  StatusFacts f = sample_facts();
  f.at_ms = now_ms - 5'000;
  Json report = ferry::daemon::status_fields(f);
  StationFacts with = facts(a, nullptr, report);
  with.backlog_down = 42;
  with.ops_held = 5'123;
  with.open_conflicts = 2;
  StationFacts without = facts(b);
  without.backlog_down = 99;  // meaningless without a report
  Json rows = ferry::daemon::station_rows({with, without}, now_ms, silent_after_ms);
  const Json& rb = row_named(rows, "beach");
  CHECK(rb["backlog_up"].is_null());
  CHECK(rb["backlog_down"].is_null());
  CHECK(rb["disk_free_bytes"].is_null());
  CHECK(rb["last_report_ms"] == 0);
  CHECK(rb["oldest_unsent_ms"] == 0);
  CHECK(rb["version"] == "");
  CHECK(rb["rejected"] == Json::object());
  CHECK(rb["rate"].size() == 30);
  const Json& ra = row_named(rows, "huaniao");
  CHECK(ra["backlog_up"] == 12);
  CHECK(ra["backlog_down"] == 42);
  CHECK(ra["disk_free_bytes"] == 1'000'000'000);
  CHECK(ra["last_report_ms"] == now_ms - 5'000);
  CHECK(ra["oldest_unsent_ms"] == now_ms - 60'000);
  CHECK(ra["version"] == "0.1.0");
  CHECK(ra["rejected"] == Json{{"bad_signature", 2}});
  CHECK(ra["ops_held"] == 5'123);
  CHECK(ra["open_conflicts"] == 2);
}

TEST_CASE("a report's rejected counts that are not counts are left out") {
  TrustEntry a = station(11, "huaniao");
  Json report = relay_report(now_ms, {});
  report["rejected"] =
      Json{{"bad_signature", 3u}, {"fork", "many"},        {"gap", -1},
           {"window", 1.5},       {"unexpected", nullptr}, {"too_large", Json::object()}};
  Json rows = ferry::daemon::station_rows({facts(a, nullptr, report)}, now_ms, silent_after_ms);
  CHECK(rows[0]["rejected"] == Json{{"bad_signature", 3u}});
  report["rejected"] = "everything";
  rows = ferry::daemon::station_rows({facts(a, nullptr, report)}, now_ms, silent_after_ms);
  CHECK(rows[0]["rejected"] == Json::object());
}

TEST_CASE("station rows are sorted by name") {
  std::vector<StationFacts> list{facts(station(11, "zeta")), facts(station(12, "alpha")),
                                 facts(station(13, "mid")), facts(station(14, "Beta"))};
  Json rows = ferry::daemon::station_rows(list, now_ms, silent_after_ms);
  std::vector<std::string> names;
  for (const Json& row : rows) names.push_back(row["name"].get<std::string>());
  CHECK(names == std::vector<std::string>{"Beta", "alpha", "mid", "zeta"});
}

// ---- Prometheus ----

struct Sample {
  std::string name;
  std::string labels;  // the text between the braces
  std::string value;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helps;
  std::vector<Sample> samples;
  std::vector<std::string> problems;
};

// The family a sample belongs to, given the families declared so far.
std::string family_of(const Exposition& e, const std::string& name) {
  if (e.types.contains(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string s = suffix;
    if (name.size() > s.size() && name.ends_with(s)) {
      std::string base = name.substr(0, name.size() - s.size());
      auto it = e.types.find(base);
      if (it != e.types.end() && it->second == "histogram") return base;
    }
  }
  return {};
}

// A strict reading of the text format: each family has HELP then TYPE, its samples follow it
// and no other family's samples come between.
Exposition parse_exposition(const std::string& text) {
  Exposition e;
  std::string current;
  std::size_t pos = 0;
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.starts_with("# HELP ")) {
      std::string rest = line.substr(7);
      std::string name = rest.substr(0, rest.find(' '));
      if (!e.helps.insert(name).second) e.problems.push_back("HELP twice: " + name);
      current = name;
    } else if (line.starts_with("# TYPE ")) {
      std::string rest = line.substr(7);
      std::size_t space = rest.find(' ');
      std::string name = rest.substr(0, space);
      if (name != current) e.problems.push_back("TYPE without HELP before it: " + name);
      if (!e.types.emplace(name, rest.substr(space + 1)).second) {
        e.problems.push_back("TYPE twice: " + name);
      }
    } else {
      Sample s;
      std::size_t brace = line.find('{');
      std::size_t space = line.rfind(' ');
      if (space == std::string::npos) {
        e.problems.push_back("not a sample: " + line);
        continue;
      }
      s.name = line.substr(0, std::min(brace, space));
      if (brace != std::string::npos && brace < space) {
        std::size_t close = line.rfind('}');
        s.labels = line.substr(brace + 1, close - brace - 1);
      }
      s.value = line.substr(space + 1);
      if (family_of(e, s.name) != current)
        e.problems.push_back("sample outside its family: " + line);
      e.samples.push_back(std::move(s));
    }
  }
  return e;
}

// The figures of a hub with one relay, a station behind it and one with a troublesome name.
struct MonitorFigures {
  Json status;
  Json peers = Json::array();
  Json stations;
  IpcCounters ipc;

  MonitorFigures() {
    status = Json{{"now_ms", now_ms},
                  {"node",
                   {{"name", "hub"},
                    {"id", ferry::to_hex(key_of(1))},
                    {"role", "hub"},
                    {"version", "0.1.0"}}},
                  {"ops", 12'000},
                  {"feeds", 8},
                  {"open_conflicts", 1},
                  {"submit_queue", 0},
                  {"disk_free_bytes", 51'234'567'890ULL},
                  {"store_writable", true},
                  {"uptime_ms", std::int64_t{360'000}},
                  {"silent_after_ms", std::int64_t{1'800'000}},
                  {"replication",
                   {{"sessions_opened", 4},
                    {"sessions_lost", 1},
                    {"ops_sent", 300},
                    {"ops_received", 11'000},
                    {"duplicates", 0},
                    {"zap_refused", 0},
                    {"rejected", {{"bad_signature", 1}}},
                    {"errors_received", Json::object()}}}};
    TrustEntry relay = station(10, "relay-ds", ferry::role_relay);
    TrustEntry a = station(11, "huaniao");
    TrustEntry odd = station(12, "x");
    odd.name = "sta\"tion\\x";  // not a valid node name, but the text must stay well formed
    PeerReport relay_peer = peer(relay, true, now_ms - 500);
    relay_peer.ops_received = 11'000;
    relay_peer.ops_sent = 12;
    relay_peer.rejected[error_index(ferry::sync::ErrorCode::gap)] = 2;
    PeerReport odd_peer = peer(odd, false, 0);
    odd_peer.name = "pe\"er\\\nname";
    odd_peer.oldest_unsent_ms = now_ms - 30'000;
    odd_peer.backlog = 7;
    std::array<double, RateTracker::buckets> rate{};
    rate[29] = 1.5;
    peers.push_back(ferry::daemon::peer_row(relay_peer, rate));
    peers.push_back(ferry::daemon::peer_row(odd_peer, rate));
    Json report = relay_report(now_ms - 10'000, {peer(a, true, 0)});
    report["rejected"] = Json{{"fork", 3u}};
    StationFacts rf = facts(relay, &relay_peer, report);
    rf.backlog_down = 4;
    stations =
        ferry::daemon::station_rows({rf, facts(a), facts(odd, &odd_peer)}, now_ms, silent_after_ms);
    for (double seconds : {0.0003, 0.002, 0.002, 0.3, 10.0}) ipc.submit_latency.observe(seconds);
    ipc.requests = 40;
    ipc.submits = 5;
    ipc.errors[static_cast<std::size_t>(ferry::ipc::Code::busy)] = 2;
  }

  std::string text() const {
    MetricsInput in{&status, &peers, &stations, &ipc, now_ms};
    return ferry::daemon::metrics_text(in);
  }
};

std::vector<const Sample*> samples_named(const Exposition& e, const std::string& name) {
  std::vector<const Sample*> out;
  for (const Sample& s : e.samples) {
    if (s.name == name) out.push_back(&s);
  }
  return out;
}

TEST_CASE("metrics_text declares every family with HELP and TYPE, and counters end in _total") {
  MonitorFigures figures;
  std::string text = figures.text();
  Exposition e = parse_exposition(text);
  INFO(text);
  CHECK(e.problems.empty());
  for (const std::string& p : e.problems) WARN(p);
  CHECK(e.helps.size() == e.types.size());
  for (const auto& [name, type] : e.types) {
    INFO(name);
    CHECK(e.helps.contains(name));
    CHECK((type == "gauge" || type == "counter" || type == "histogram"));
    if (type == "counter") CHECK(name.ends_with("_total"));
    if (name.ends_with("_total")) CHECK(type == "counter");
  }
  for (const char* family : {"ferry_info",
                             "ferry_ops",
                             "ferry_feeds",
                             "ferry_open_conflicts",
                             "ferry_submit_queue_length",
                             "ferry_disk_free_bytes",
                             "ferry_store_writable",
                             "ferry_uptime_seconds",
                             "ferry_ipc_requests_total",
                             "ferry_ipc_errors_total",
                             "ferry_submits_total",
                             "ferry_submit_duration_seconds",
                             "ferry_replication_sessions_opened_total",
                             "ferry_replication_rejected_total",
                             "ferry_replication_errors_received_total",
                             "ferry_peer_up",
                             "ferry_peer_backlog_out_ops",
                             "ferry_peer_rejected_total",
                             "ferry_station_up",
                             "ferry_station_silent",
                             "ferry_station_backlog_up_ops",
                             "ferry_station_backlog_down_ops",
                             "ferry_station_rejected_total"}) {
    INFO(family);
    CHECK(e.types.contains(family));
  }
  CHECK(e.types["ferry_submit_duration_seconds"] == "histogram");
  CHECK(text.find("ferry_uptime_seconds 360\n") != std::string::npos);
  CHECK(text.find("ferry_ipc_errors_total{code=\"busy\"} 2\n") != std::string::npos);
  CHECK(text.find("ferry_replication_rejected_total{reason=\"bad_signature\"} 1\n") !=
        std::string::npos);
  CHECK(text.find("ferry_peer_rejected_total{peer=\"relay-ds\",reason=\"gap\"} 2\n") !=
        std::string::npos);
  CHECK(text.find("ferry_station_rejected_total{station=\"relay-ds\",reason=\"fork\"} 3\n") !=
        std::string::npos);
  CHECK(text.find("ferry_peer_oldest_unsent_age_seconds{peer=") != std::string::npos);
  CHECK(text.find("} 30\n") != std::string::npos);  // the odd peer's oldest unsent op
}

TEST_CASE("metrics_text writes the submit histogram cumulatively, ending at +Inf = _count") {
  MonitorFigures figures;
  Exposition e = parse_exposition(figures.text());
  auto buckets = samples_named(e, "ferry_submit_duration_seconds_bucket");
  REQUIRE(buckets.size() == ferry::daemon::LatencyHistogram::bounds.size() + 1);
  double previous = 0;
  for (const Sample* b : buckets) {
    INFO(b->labels << " " << b->value);
    CHECK(std::stod(b->value) >= previous);
    previous = std::stod(b->value);
  }
  CHECK(buckets.back()->labels == "le=\"+Inf\"");
  auto count = samples_named(e, "ferry_submit_duration_seconds_count");
  auto sum = samples_named(e, "ferry_submit_duration_seconds_sum");
  REQUIRE(count.size() == 1);
  REQUIRE(sum.size() == 1);
  CHECK(buckets.back()->value == count[0]->value);
  CHECK(count[0]->value == "5");
  CHECK(std::stod(sum[0]->value) == Approx(10.3043));
  std::map<std::string, std::string> by_le;
  for (const Sample* b : buckets) by_le[b->labels] = b->value;
  CHECK(by_le["le=\"0.0005\""] == "1");
  CHECK(by_le["le=\"0.001\""] == "1");
  CHECK(by_le["le=\"0.0025\""] == "3");
  CHECK(by_le["le=\"0.25\""] == "3");
  CHECK(by_le["le=\"0.5\""] == "4");
  CHECK(by_le["le=\"2.5\""] == "4");
}

TEST_CASE("metrics_text escapes quotes, backslashes and newlines in label values") {
  MonitorFigures figures;
  std::string text = figures.text();
  INFO(text);
  CHECK(text.find("ferry_station_up{station=\"sta\\\"tion\\\\x\"} 0\n") != std::string::npos);
  CHECK(text.find("ferry_peer_up{peer=\"pe\\\"er\\\\\\nname\",direction=\"down\"} 0\n") !=
        std::string::npos);
  // No raw newline inside a sample: every line is a comment or a sample with a value.
  Exposition e = parse_exposition(text);
  CHECK(e.problems.empty());
  for (const std::string& p : e.problems) WARN(p);
}

TEST_CASE("metrics_text leaves out the backlogs of a station without a report") {
  MonitorFigures figures;
  Exposition e = parse_exposition(figures.text());
  std::set<std::string> up, down, stations;
  for (const Sample* s : samples_named(e, "ferry_station_backlog_up_ops")) up.insert(s->labels);
  for (const Sample* s : samples_named(e, "ferry_station_backlog_down_ops")) down.insert(s->labels);
  for (const Sample* s : samples_named(e, "ferry_station_up")) stations.insert(s->labels);
  CHECK(stations.size() == 3);
  CHECK(up == std::set<std::string>{"station=\"relay-ds\""});
  CHECK(down == std::set<std::string>{"station=\"relay-ds\""});
}

// The exit status of a shell command, and what it wrote.
std::pair<int, std::string> run(const std::string& command) {
  std::string output;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  int status = ::pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

TEST_CASE("promtool accepts the metrics text") {
  const std::string promtool = "/usr/bin/promtool";
  if (!std::filesystem::exists(promtool)) {
    FAIL(promtool << " is missing: install the Debian package prometheus "
                     "(apt-get install prometheus) to check the metrics text");
  }
  MonitorFigures figures;
  std::string text = figures.text();
  ferry::test::TempDir dir;
  std::string path = dir.file("metrics.prom");
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  auto [status, output] = run(promtool + " check metrics < '" + path + "'");
  INFO(output);
  INFO(text);
  CHECK(status == 0);
  // The check is real: promtool refuses a counter without _total and a bad label value.
  {
    std::ofstream out(dir.file("bad.prom"), std::ios::binary);
    out << "# HELP ferry_x x\n# TYPE ferry_x counter\nferry_x{a=\"b\"c\"} 1\n";
  }
  CHECK(run(promtool + " check metrics < '" + dir.file("bad.prom") + "'").first != 0);
}

}  // namespace
