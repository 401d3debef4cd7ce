#include "bench/merge/history.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <exception>
#include <msgpack.hpp>
#include <optional>
#include <random>
#include <string_view>
#include <tuple>
#include <utility>

#include "protocol/batch_signer.h"
#include "protocol/hlc.h"
#include "protocol/node_key.h"

namespace ferry::bench {
namespace {

using Packer = msgpack::packer<msgpack::sbuffer>;
using Heads = std::map<Dot, OpId>;

// Who writes into the station's channel, and how often (weights out of 10).
struct OriginSpec {
  std::string_view name;
  std::string_view author;
  std::uint64_t weight;
  bool hub;  // hubs decide: they approve and return cases
};
constexpr std::array<OriginSpec, 4> origin_specs = {{
    {"station huaniao", "clerk.lin", 4, false},
    {"relay shengsi", "agent.zhou", 2, false},
    {"hub zhoushan", "officer.wang", 3, true},
    {"hub ningbo", "officer.xu", 1, true},
}};
constexpr std::uint64_t origin_weight_total = 10;
constexpr double filed_at_station_ratio = 2.0 / 3.0;  // else through the relay
static_assert(!origin_specs[0].hub && !origin_specs[1].hub);

constexpr std::array<std::string_view, 4> station_statuses = {"filed", "in-review",
                                                              "needs-documents", "documents-in"};
constexpr std::array<std::string_view, 3> hub_statuses = {"approved", "returned",
                                                          "certificate-issued"};
constexpr std::array<std::string_view, 5> services = {"household-registration", "elderly-subsidy",
                                                      "fishing-permit", "medical-insurance",
                                                      "residence-certificate"};
constexpr std::array<std::string_view, 8> surnames = {"Chen", "Lin",   "Wang", "Zhou",
                                                      "Xu",   "Zhang", "Li",   "Yu"};
constexpr std::array<std::string_view, 6> streets = {"Dongsha Road",    "Harbour Lane",
                                                     "Shell Bay",       "Lighthouse Road",
                                                     "Fish Market St.", "Hill Village"};
constexpr std::array<std::string_view, 6> tags = {"elderly",   "proxy-filing", "urgent",
                                                  "documents", "home-visit",   "subsidy"};
constexpr std::array<std::string_view, 3> register_fields = {"status", "label", "officer"};

constexpr double stale_deps_ratio = 0.10;  // ops written on heads one to three writes old
constexpr std::size_t earlier_heads_max = 3;
constexpr double inc_ratio = 0.30;
constexpr double add_ratio = 0.20;
constexpr double del_ratio = 0.10;
constexpr double approve_ratio = 0.50;  // of hub ops after the first of a record
constexpr std::uint64_t hours_max = 8;
constexpr std::uint64_t step_ms_max = 2;                           // simulated time between two ops
constexpr std::uint64_t history_age_ms = 3ULL * 24 * 3600 * 1000;  // the history ends ~3 days ago

class Random {
 public:
  explicit Random(std::uint64_t seed) : engine_(seed) {}
  // Uniform in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) {
    FERRY_ASSERT(n > 0);
    return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(engine_);
  }
  bool chance(double p) { return std::uniform_real_distribution<double>(0.0, 1.0)(engine_) < p; }
  template <class T, std::size_t N>
  const T& pick(const std::array<T, N>& items) {
    return items[below(N)];
  }

 private:
  std::mt19937_64 engine_;
};

// What one op writes, before it is packed.
struct Parts {
  std::string_view kind;
  std::vector<std::pair<std::string_view, std::string>> sets;
  std::uint64_t hours = 0;  // 0: no `inc`
  std::vector<std::string_view> adds;
  std::vector<std::string_view> dels;
};

std::string household_label(Random& rnd) {
  return std::string(rnd.pick(surnames)) + " household, " + std::to_string(1 + rnd.below(80)) +
         " " + std::string(rnd.pick(streets));
}

std::string register_value(Random& rnd, std::string_view field, const OriginSpec& origin) {
  if (field == "label") return household_label(rnd);
  if (field == "officer") return std::string(origin.author);
  return std::string(origin.hub ? rnd.pick(hub_statuses) : rnd.pick(station_statuses));
}

// Two or three of the register fields, in a random order.
void plan_update(Random& rnd, const OriginSpec& origin, Parts& parts) {
  std::array<std::string_view, 3> fields = register_fields;
  for (std::size_t i = fields.size() - 1; i > 0; --i)
    std::swap(fields[i], fields[rnd.below(i + 1)]);
  const std::size_t count = 2 + rnd.below(2);
  for (std::size_t i = 0; i < count; ++i) {
    parts.sets.emplace_back(fields[i], register_value(rnd, fields[i], origin));
  }
}

Parts plan_parts(Random& rnd, const OriginSpec& origin, bool first) {
  Parts parts;
  if (first) {
    parts.kind = "case.submit";
    parts.sets = {{"status", "filed"},
                  {"service", std::string(rnd.pick(services))},
                  {"label", household_label(rnd)}};
  } else if (origin.hub && rnd.chance(approve_ratio)) {
    parts.kind = "case.approve";
    parts.sets = {{"status", std::string(rnd.pick(hub_statuses))},
                  {"officer", std::string(origin.author)}};
  } else {
    parts.kind = origin.hub ? "case.review" : "case.update";
    plan_update(rnd, origin, parts);
  }
  if (rnd.chance(inc_ratio)) parts.hours = 1 + rnd.below(hours_max);
  if (rnd.chance(add_ratio)) parts.adds.push_back(rnd.pick(tags));
  if (!first && rnd.chance(del_ratio)) parts.dels.push_back(rnd.pick(tags));
  return parts;
}

void pack_text(Packer& pk, std::string_view text) {
  pk.pack_str(static_cast<std::uint32_t>(text.size()));
  pk.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

void pack_tags(Packer& pk, std::string_view part, const std::vector<std::string_view>& elements) {
  pack_text(pk, part);
  pk.pack_map(1);
  pack_text(pk, "tags");
  pk.pack_array(static_cast<std::uint32_t>(elements.size()));
  for (std::string_view tag : elements) pack_text(pk, tag);
}

// {"case": key, "station": "huaniao", "set": {...}[, "inc": {...}][, "add": {...}][, "del": {...}]}
// msgpack-c throws; this adapter converts.
Result<std::vector<std::uint8_t>> pack_parts(const Parts& parts, const std::string& key) {
  try {
    msgpack::sbuffer buffer(256);
    Packer pk(buffer);
    const std::uint32_t optional_parts = (parts.hours > 0 ? 1U : 0U) +
                                         (parts.adds.empty() ? 0U : 1U) +
                                         (parts.dels.empty() ? 0U : 1U);
    pk.pack_map(3 + optional_parts);
    pack_text(pk, "case");
    pack_text(pk, key);
    pack_text(pk, "station");
    pack_text(pk, "huaniao");
    pack_text(pk, "set");
    pk.pack_map(static_cast<std::uint32_t>(parts.sets.size()));
    for (const auto& [field, value] : parts.sets) {
      pack_text(pk, field);
      pack_text(pk, value);
    }
    if (parts.hours > 0) {
      pack_text(pk, "inc");
      pk.pack_map(1);
      pack_text(pk, "volunteer_hours");
      pk.pack_uint64(parts.hours);
    }
    if (!parts.adds.empty()) pack_tags(pk, "add", parts.adds);
    if (!parts.dels.empty()) pack_tags(pk, "del", parts.dels);
    const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
    return std::vector<std::uint8_t>(data, data + buffer.size());
  } catch (const std::exception& e) {
    return fail(Errc::io, std::string("packing a body: ") + e.what());
  }
}

// A record as the generator follows it: its merged state, its heads before the last writes, and
// each origin's last op in it.
struct KeyState {
  RecordState state;
  std::deque<Heads> earlier_heads;  // newest last, at most earlier_heads_max
  std::array<std::uint64_t, origin_specs.size()> tail_seqs{};  // 0: the origin has not written
};

// One origin's feed while it is written.
struct FeedWriter {
  NodeKey key;
  const OriginSpec* spec = nullptr;
  std::vector<Op> ops;
  std::vector<Context> contexts;  // of each op, by seq - 1: the deps of later ops need them
  std::vector<std::uint64_t> hlcs;
  OpId last{};
};

class Generator {
 public:
  explicit Generator(const HistoryOptions& options) : options_(options), rnd_(options.seed) {
    for (const OriginSpec& spec : origin_specs) {
      feeds_.push_back(FeedWriter{NodeKey::generate(), &spec, {}, {}, {}, {}});
      origin_index_.emplace(feeds_.back().key.public_key(), feeds_.size() - 1);
    }
    keys_.resize(options.keys);
    sim_ms_ = SystemWallClock().now_ms() - history_age_ms;
  }

  [[nodiscard]] Result<void> write(std::uint64_t n);
  [[nodiscard]] Result<History> finish();

 private:
  std::size_t pick_origin(bool first);
  const Heads& choose_deps(KeyState& record);
  std::uint64_t next_hlc(const FeedWriter& feed, const Heads& deps);
  std::vector<DepContext> dep_contexts(const Heads& deps, const KeyState& record,
                                       std::size_t f) const;
  void fold(const Op& op, std::size_t f, const Heads& deps, KeyState& record);

  const HistoryOptions& options_;
  Random rnd_;
  std::vector<FeedWriter> feeds_;
  std::map<PublicKey, std::size_t> origin_index_;
  std::vector<KeyState> keys_;
  std::vector<std::pair<std::size_t, std::size_t>> order_;  // (feed, index in it), as written
  std::uint64_t sim_ms_ = 0;
  HistoryStats stats_;
};

// Applications are filed at the station or, by a helper agent, through the relay.
std::size_t Generator::pick_origin(bool first) {
  if (first) return rnd_.chance(filed_at_station_ratio) ? 0 : 1;
  std::uint64_t ticket = rnd_.below(origin_weight_total);
  for (std::size_t i = 0; i < origin_specs.size(); ++i) {
    if (ticket < origin_specs[i].weight) return i;
    ticket -= origin_specs[i].weight;
  }
  FERRY_ASSERT(false && "origin weights do not add up");
  return 0;
}

const Heads& Generator::choose_deps(KeyState& record) {
  if (!record.earlier_heads.empty() && rnd_.chance(stale_deps_ratio)) {
    ++stats_.stale_deps_ops;
    return record.earlier_heads[rnd_.below(record.earlier_heads.size())];
  }
  return record.state.heads;
}

// Past every op of the origin's feed and every dep, as a hybrid logical clock keeps it; ops of
// different origins may share an hlc, which the merge orders by origin.
std::uint64_t Generator::next_hlc(const FeedWriter& feed, const Heads& deps) {
  sim_ms_ += rnd_.below(step_ms_max + 1);
  std::uint64_t hlc = hlc_pack(sim_ms_, 0);
  if (!feed.hlcs.empty()) hlc = std::max(hlc, feed.hlcs.back() + 1);
  for (const auto& [dot, id] : deps) {
    const FeedWriter& writer = feeds_[origin_index_.at(dot.origin)];
    hlc = std::max(hlc, writer.hlcs[dot.seq - 1] + 1);
  }
  return hlc;
}

// The deps with their contexts, and the origin's previous op in the record (its tail) with its
// context: an origin has seen whatever its own earlier ops had seen, as storage/records.h folds.
std::vector<DepContext> Generator::dep_contexts(const Heads& deps, const KeyState& record,
                                                std::size_t f) const {
  std::vector<DepContext> out;
  out.reserve(deps.size() + 1);
  for (const auto& [dot, id] : deps) {
    const FeedWriter& writer = feeds_[origin_index_.at(dot.origin)];
    out.push_back(DepContext{dot, writer.contexts[dot.seq - 1]});
  }
  if (const std::uint64_t tail = record.tail_seqs[f]; tail > 0) {
    out.push_back(DepContext{Dot{feeds_[f].key.public_key(), tail}, feeds_[f].contexts[tail - 1]});
  }
  return out;
}

void Generator::fold(const Op& op, std::size_t f, const Heads& deps, KeyState& record) {
  const OpHeader& h = op.header();
  FeedWriter& feed = feeds_[f];
  const Clock::time_point start = Clock::now();
  const MergeOp x = merge_op_of(op);
  Context cx = context_of(h.origin, h.seq, dep_contexts(deps, record, f));
  if (record.state.ops > 0) {
    record.earlier_heads.push_back(record.state.heads);
    if (record.earlier_heads.size() > earlier_heads_max) record.earlier_heads.pop_front();
  }
  apply(record.state, x, cx);
  stats_.fold_time += Clock::now() - start;
  feed.contexts.push_back(std::move(cx));
  record.tail_seqs[f] = h.seq;
  stats_.heads_max = std::max(stats_.heads_max, record.state.heads.size());
}

Result<void> Generator::write(std::uint64_t n) {
  // Every key gets its first op (case.submit) before any key gets a second.
  const std::size_t k = n < options_.keys ? n : rnd_.below(options_.keys);
  KeyState& record = keys_[k];
  const std::size_t f = pick_origin(record.state.ops == 0);
  FeedWriter& feed = feeds_[f];
  const std::string key = "case/" + case_number(k + 1);
  const Heads deps = record.state.ops == 0 ? Heads{} : choose_deps(record);
  const Parts parts = plan_parts(rnd_, *feed.spec, record.state.ops == 0);
  auto body = pack_parts(parts, key);
  if (!body) return tl::unexpected(body.error());
  OpDraft draft{options_.channel, std::string(parts.kind),       key, {},
                std::move(*body), std::string(feed.spec->author)};
  for (const auto& [dot, id] : deps) draft.deps.push_back(id);
  const std::uint64_t seq = feed.ops.size() + 1;
  const std::uint64_t hlc = next_hlc(feed, deps);
  const Clock::time_point start = Clock::now();
  auto op = Op::build(feed.key.public_key(), seq, feed.last, hlc, draft);
  stats_.build_time += Clock::now() - start;
  if (!op) return tl::unexpected(op.error());
  fold(*op, f, deps, record);
  stats_.set_writes += parts.sets.size();
  stats_.inc_ops += parts.hours > 0 ? 1 : 0;
  stats_.add_ops += parts.adds.empty() ? 0 : 1;
  stats_.del_ops += parts.dels.empty() ? 0 : 1;
  stats_.op_bytes += op->bytes().size();
  feed.last = op->id();
  feed.hlcs.push_back(hlc);
  feed.ops.push_back(std::move(*op));
  order_.emplace_back(f, feed.ops.size() - 1);
  return {};
}

Result<History> Generator::finish() {
  History history;
  history.channel = options_.channel;
  std::vector<std::vector<SignedOp>> signed_feeds;
  const Clock::time_point start = Clock::now();
  for (FeedWriter& feed : feeds_) {
    history.origins.push_back(
        HistoryOrigin{std::string(feed.spec->name), feed.key.public_key(), feed.ops.size()});
    signed_feeds.push_back(sign_ops(std::move(feed.ops), feed.key, options_.sign_threads));
  }
  stats_.sign_time = Clock::now() - start;
  history.ops.reserve(order_.size());
  for (const auto& [f, i] : order_) history.ops.push_back(std::move(signed_feeds[f][i]));
  StateDigest digest;
  for (std::size_t k = 0; k < keys_.size(); ++k) {
    const std::string key = "case/" + case_number(k + 1);
    const std::size_t conflicting = conflicts(keys_[k].state).size();
    stats_.conflicted_records += conflicting > 0 ? 1 : 0;
    stats_.conflicted_fields += conflicting;
    digest.add(history.channel, key, keys_[k].state);  // case numbers sort as their keys do
    history.records.emplace(key, std::move(keys_[k].state));
  }
  history.digest = digest.finish();
  history.stats = stats_;
  return history;
}

}  // namespace

Result<History> make_history(const HistoryOptions& options) {
  FERRY_ASSERT(options.keys > 0);
  FERRY_ASSERT(options.ops >= options.keys);
  FERRY_ASSERT(options.keys <= case_number_max);
  Generator generator(options);
  for (std::uint64_t n = 0; n < options.ops; ++n) {
    if (auto written = generator.write(n); !written) return tl::unexpected(written.error());
  }
  return generator.finish();
}

void sort_by_feed(std::vector<SignedOp>& ops) {
  std::stable_sort(ops.begin(), ops.end(), [](const SignedOp& a, const SignedOp& b) {
    return std::tie(a.op.header().origin, a.op.header().seq) <
           std::tie(b.op.header().origin, b.op.header().seq);
  });
}

}  // namespace ferry::bench
