#include "storage/records.h"

#include <algorithm>
#include <msgpack.hpp>

#include "storage/schema.h"

namespace ferry::storage {

struct Records::Statements {
  Statement find_record;
  Statement upsert_record;
  Statement dep_info;
  Statement set_folded;
  Statement set_record;
  Statement put_pending;
  Statement drop_pending;
  Statement earlier_pending;
  Statement waiting_for;
  Statement envelope_at;
  Statement tail_at;
  Statement conflicted;
  Statement all_records;
};

namespace {

template <std::size_t N>
std::array<std::uint8_t, N> array_of(std::span<const std::uint8_t> bytes) {
  FERRY_ASSERT(bytes.size() == N);  // CHECK constraints in the schema
  std::array<std::uint8_t, N> out{};
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return out;
}

tl::unexpected<Error> damaged(const std::string& what) {
  return fail(Errc::corrupt, "record store: " + what + " is damaged");
}

void pack_bytes(msgpack::packer<msgpack::sbuffer>& pk, std::span<const std::uint8_t> bytes) {
  pk.pack_bin(static_cast<std::uint32_t>(bytes.size()));
  pk.pack_bin_body(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::uint32_t>(bytes.size()));
}

// [[origin (bin 32), seq], ...] in origin order. The tails' ids and contexts are not kept here:
// each tail is the op at (origin, channel, seq), whose row holds both, and they would make the
// record row rewritten with every batch much larger.
template <class Tails>
std::vector<std::uint8_t> encode_tails(const Tails& tails) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_array(static_cast<std::uint32_t>(tails.size()));
  for (const auto& [origin, tail] : tails) {
    pk.pack_array(2);
    pack_bytes(pk, origin);
    pk.pack_uint64(tail.seq);
  }
  const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
  return {data, data + buffer.size()};
}

}  // namespace

Records::Records(Database& db) : db_(db) {}
Records::~Records() = default;

Result<std::unique_ptr<Records>> Records::open(Database& db) {
  std::unique_ptr<Records> records(new Records(db));
  if (auto prepared = records->prepare(); !prepared) return tl::unexpected(prepared.error());
  if (auto counted = records->reload_counts(); !counted) return tl::unexpected(counted.error());
  return records;
}

Result<void> Records::prepare() {
  std::vector<std::string> sql = {
      "SELECT record_id, state, tails FROM records WHERE channel = ?1 AND key = ?2",
      "INSERT INTO records (record_id, channel, key, state, tails, conflicts) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (record_id) DO UPDATE SET "
      "state = excluded.state, tails = excluded.tails, conflicts = excluded.conflicts",
      "SELECT o.record_id, o.context, o.seq, f.origin FROM ops o JOIN feeds f USING (feed_id) "
      "WHERE o.id_prefix = ?1 AND o.id = ?2",
      "UPDATE ops SET record_id = ?1, context = ?2 WHERE arrival = ?3",
      "UPDATE ops SET record_id = ?1, context = NULL WHERE arrival = ?2",
      "INSERT OR REPLACE INTO merge_pending (arrival, record_id, origin, seq, waits_for) "
      "VALUES (?1, ?2, ?3, ?4, ?5)",
      "DELETE FROM merge_pending WHERE arrival = ?1",
      "SELECT o.id FROM merge_pending p JOIN ops o ON o.arrival = p.arrival "
      "WHERE p.record_id = ?1 AND p.origin = ?2 AND p.seq < ?3 ORDER BY p.seq DESC LIMIT 1",
      "SELECT arrival FROM merge_pending WHERE waits_for = ?1 ORDER BY arrival",
      "SELECT envelope FROM ops WHERE arrival = ?1",
      "SELECT o.id, o.record_id, o.context FROM ops o JOIN feeds f USING (feed_id) "
      "WHERE f.origin = ?1 AND f.channel = ?2 AND o.seq = ?3",
      "SELECT channel, key FROM records WHERE conflicts > 0 ORDER BY channel, key LIMIT ?1",
      "SELECT channel, key, state FROM records ORDER BY channel, key",
  };
  std::vector<Statement> prepared;
  for (const std::string& s : sql) {
    auto stmt = db_.prepare(s);
    if (!stmt) return tl::unexpected(stmt.error());
    prepared.push_back(std::move(*stmt));
  }
  stmts_.reset(
      new Statements{std::move(prepared[0]), std::move(prepared[1]), std::move(prepared[2]),
                     std::move(prepared[3]), std::move(prepared[4]), std::move(prepared[5]),
                     std::move(prepared[6]), std::move(prepared[7]), std::move(prepared[8]),
                     std::move(prepared[9]), std::move(prepared[10]), std::move(prepared[11]),
                     std::move(prepared[12])});
  return {};
}

Result<void> Records::reload_counts() {
  auto next = db_.query_int("SELECT coalesce(max(record_id), 0) + 1 FROM records");
  if (!next) return tl::unexpected(next.error());
  next_record_id_ = *next;
  auto pending = db_.query_int("SELECT count(*) FROM merge_pending");
  if (!pending) return tl::unexpected(pending.error());
  pending_count_ = static_cast<std::uint64_t>(*pending);
  return {};
}

Result<Records::Cached*> Records::load(const std::string& channel, const std::string& key,
                                       bool create) {
  auto name = std::make_pair(channel, key);
  if (auto it = cache_.find(name); it != cache_.end()) return &it->second;
  Statement& stmt = stmts_->find_record;
  auto row = stmt.bind(1, channel).bind(2, key).step();
  if (!row) return tl::unexpected(row.error());
  Cached record{0, channel, key, {}, {}, false};
  if (*row) {
    record.record_id = stmt.column_int(0);
    auto state = decode_state(stmt.column_blob(1));
    if (!state) {
      stmt.reset();
      return damaged("the state of record " + key + " in " + channel);
    }
    record.state = std::move(*state);
    // Tails: [[origin, seq], ...]; their ids and contexts are read from their ops' rows below.
    auto tails_bytes = stmt.column_blob(2);
    try {
      auto handle =
          msgpack::unpack(reinterpret_cast<const char*>(tails_bytes.data()), tails_bytes.size());
      const msgpack::object& o = handle.get();
      if (o.type != msgpack::type::ARRAY) throw msgpack::type_error();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        const msgpack::object& t = o.via.array.ptr[i];
        if (t.type != msgpack::type::ARRAY || t.via.array.size != 2 ||
            t.via.array.ptr[0].type != msgpack::type::BIN ||
            t.via.array.ptr[0].via.bin.size != public_key_bytes ||
            t.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER) {
          throw msgpack::type_error();
        }
        const msgpack::object_bin& origin = t.via.array.ptr[0].via.bin;
        record.tails[array_of<public_key_bytes>(std::span<const std::uint8_t>(
            reinterpret_cast<const std::uint8_t*>(origin.ptr), origin.size))] =
            Tail{t.via.array.ptr[1].via.u64, OpId{}, Context{}};
      }
    } catch (const std::exception&) {
      stmt.reset();
      return damaged("the tails of record " + key + " in " + channel);
    }
    stmt.reset();
    for (auto& [origin, tail] : record.tails) {
      Statement& at = stmts_->tail_at;
      auto found = at.bind(1, bytes_of(origin))
                       .bind(2, channel)
                       .bind(3, static_cast<std::int64_t>(tail.seq))
                       .step();
      if (!found) return tl::unexpected(found.error());
      auto context = *found ? decode_context(at.column_blob(2)) : Result<Context>{};
      bool held = *found && at.column_int(1) == record.record_id && !at.column_blob(2).empty() &&
                  at.column_blob(0).size() == digest_bytes;
      if (held) tail.id = array_of<digest_bytes>(at.column_blob(0));
      at.reset();
      if (!held || !context) return damaged("the tails of record " + key + " in " + channel);
      tail.context = std::move(*context);
    }
    return &cache_.emplace(std::move(name), std::move(record)).first->second;
  } else if (create) {
    record.record_id = next_record_id_++;
    record.dirty = true;  // the row must exist for the ops that name it
  } else {
    stmt.reset();
    return nullptr;
  }
  stmt.reset();
  return &cache_.emplace(std::move(name), std::move(record)).first->second;
}

Result<Records::Readiness> Records::readiness(const Op& op, const Cached& record) {
  const OpHeader& h = op.header();
  std::vector<DepContext> deps;
  for (const OpId& dep : h.deps) {
    // Most deps are the latest op of their origin in this record, whose context the record's
    // tails hold: no lookup needed.
    auto tail =
        std::ranges::find_if(record.tails, [&](const auto& t) { return t.second.id == dep; });
    if (tail != record.tails.end()) {
      deps.push_back(DepContext{Dot{tail->first, tail->second.seq}, tail->second.context});
      continue;
    }
    Statement& stmt = stmts_->dep_info;
    auto row = stmt.bind(1, id_prefix(dep)).bind(2, bytes_of(dep)).step();
    if (!row) return tl::unexpected(row.error());
    // Not held yet, or held but not placed in a record yet (a rebuild in progress): wait for it.
    if (!*row || stmt.column_int(0) == 0) {  // record ids start at 1; NULL reads as 0
      stmt.reset();
      return Readiness{std::nullopt, {dep}};
    }
    bool same_record = stmt.column_int(0) == record.record_id;
    bool folded = !stmt.column_blob(1).empty();
    if (!same_record) {  // a dep in another record says nothing about this one
      stmt.reset();
      continue;
    }
    if (!folded) {
      stmt.reset();
      return Readiness{std::nullopt, {dep}};
    }
    auto context = decode_context(stmt.column_blob(1));
    Dot dot{array_of<public_key_bytes>(stmt.column_blob(3)),
            static_cast<std::uint64_t>(stmt.column_int(2))};
    stmt.reset();
    if (!context) return damaged("the context of a dep");
    deps.push_back(DepContext{dot, std::move(*context)});
  }
  if (pending_count_ > 0) {  // an earlier op of this origin in this record must be folded first
    Statement& stmt = stmts_->earlier_pending;
    auto row = stmt.bind(1, record.record_id)
                   .bind(2, bytes_of(h.origin))
                   .bind(3, static_cast<std::int64_t>(h.seq))
                   .step();
    if (!row) return tl::unexpected(row.error());
    if (*row) {
      OpId earlier = array_of<digest_bytes>(stmt.column_blob(0));
      stmt.reset();
      return Readiness{std::nullopt, {earlier}};
    }
    stmt.reset();
  }
  if (auto tail = record.tails.find(h.origin); tail != record.tails.end()) {
    FERRY_ASSERT(tail->second.seq < h.seq);  // feeds arrive in order, so tails are behind
    deps.push_back(DepContext{Dot{h.origin, tail->second.seq}, tail->second.context});
  }
  return Readiness{context_of(h.origin, h.seq, deps), {}};
}

void Records::apply_to(Cached& record, const Op& op, const Context& context) {
  const OpHeader& h = op.header();
  apply(record.state, merge_op_of(op), context);
  record.tails[h.origin] = Tail{h.seq, op.id(), context};
  record.dirty = true;
  changed_ = true;
}

Result<Placement> Records::place(const Op& op) {
  const OpHeader& h = op.header();
  auto record = load(h.channel, h.key, true);
  if (!record) return tl::unexpected(record.error());
  Cached& r = **record;
  auto ready = readiness(op, r);
  if (!ready) return tl::unexpected(ready.error());
  Placement placement{r.record_id, std::nullopt, {}};
  if (ready->context) {
    apply_to(r, op, *ready->context);
    placement.context = encode_context(*ready->context);
  } else {
    FERRY_ASSERT(ready->waits.size() == 1);
    placement.waits_for = ready->waits.front();
  }
  return placement;
}

Result<void> Records::list_pending(const Op& op, std::uint64_t arrival,
                                   const Placement& placement) {
  return stmts_->put_pending.bind(1, static_cast<std::int64_t>(arrival))
      .bind(2, placement.record_id)
      .bind(3, bytes_of(op.header().origin))
      .bind(4, static_cast<std::int64_t>(op.header().seq))
      .bind(5, bytes_of(placement.waits_for))
      .run();
}

Result<void> Records::placed(const Op& op, std::uint64_t arrival, const Placement& placement) {
  if (!placement.context) {
    ++pending_count_;
    if (auto listed = list_pending(op, arrival, placement); !listed) return listed;
  }
  // Ops waiting for this one learn that it is folded, or at least in which record it is.
  std::deque<OpId> changed{op.id()};
  return wake_all(changed);
}

Result<void> Records::fold(const Op& op, std::uint64_t arrival) {
  std::deque<OpId> changed;
  if (auto done = fold_one(op, arrival, false, changed); !done) return done;
  return wake_all(changed);
}

Result<void> Records::wake_all(std::deque<OpId>& changed) {
  // Bounded by the pending ops: each is folded at most once. With none pending (the usual case,
  // which spares a lookup in merge_pending per op), none waits.
  while (!changed.empty() && pending_count_ > 0) {
    OpId id = changed.front();
    changed.pop_front();
    if (auto woken = wake(id, changed); !woken) return woken;
  }
  return {};
}

// For an op whose row is stored: place() it, then write where it went into its row.
Result<void> Records::fold_one(const Op& op, std::uint64_t arrival, bool was_pending,
                               std::deque<OpId>& changed) {
  auto placement = place(op);
  if (!placement) return tl::unexpected(placement.error());
  const auto at = static_cast<std::int64_t>(arrival);
  if (placement->context) {
    auto folded = stmts_->set_folded.bind(1, placement->record_id)
                      .bind(2, *placement->context)
                      .bind(3, at)
                      .run();
    if (!folded) return folded;
    if (was_pending) {
      if (auto dropped = stmts_->drop_pending.bind(1, at).run(); !dropped) return dropped;
      FERRY_ASSERT(pending_count_ > 0);
      --pending_count_;
    }
    changed.push_back(op.id());
    return {};
  }
  if (!was_pending) {
    auto recorded = stmts_->set_record.bind(1, placement->record_id).bind(2, at).run();
    if (!recorded) return recorded;
    ++pending_count_;
    changed.push_back(op.id());  // ops waiting for it learn its record
  }
  return list_pending(op, arrival, *placement);  // replaces what it waited for before
}

Result<void> Records::wake(const OpId& id, std::deque<OpId>& changed) {
  std::vector<std::int64_t> waiting;
  Statement& stmt = stmts_->waiting_for;
  stmt.bind(1, bytes_of(id));
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    waiting.push_back(stmt.column_int(0));
  }
  stmt.reset();
  for (std::int64_t arrival : waiting) {
    Statement& env = stmts_->envelope_at;
    auto row = env.bind(1, arrival).step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) {
      env.reset();
      return damaged("a pending op");
    }
    auto op = Op::decode(env.column_blob(0));
    env.reset();
    if (!op) return damaged("a pending op");
    auto done = fold_one(*op, static_cast<std::uint64_t>(arrival), true, changed);
    if (!done) return done;
  }
  return {};
}

Result<void> Records::flush() {
  for (auto& [name, r] : cache_) {
    if (!r.dirty) continue;
    auto conflicting = std::ranges::count_if(
        r.state.registers, [](const auto& field) { return field.second.size() > 1; });
    auto written = stmts_->upsert_record.bind(1, r.record_id)
                       .bind(2, r.channel)
                       .bind(3, r.key)
                       .bind(4, encode_state(r.state))
                       .bind(5, encode_tails(r.tails))
                       .bind(6, static_cast<std::int64_t>(conflicting))
                       .run();
    if (!written) return written;
    r.dirty = false;
  }
  // Clean records stay for the next batches; the cache is bounded by emptying it when full.
  if (cache_.size() > record_cache_max) cache_.clear();
  return {};
}

void Records::discard() {
  cache_.clear();
  changed_ = true;
  // The counters moved with what rolled back; the database still knows the truth. Should even
  // that read fail, the next fold works from counts that are at worst too high: a pending check
  // too many, and a record id skipped.
  (void)reload_counts();
}

Result<std::vector<OpId>> Records::heads(const std::string& channel, const std::string& key) {
  auto record = load(channel, key, false);
  if (!record) return tl::unexpected(record.error());
  std::vector<OpId> ids;
  if (*record != nullptr) {
    for (const auto& [dot, id] : (*record)->state.heads) ids.push_back(id);
  }
  return ids;
}

Result<RecordState> Records::state(const std::string& channel, const std::string& key) {
  auto record = load(channel, key, false);
  if (!record) return tl::unexpected(record.error());
  if (*record == nullptr || (*record)->state.ops == 0) {
    return fail(Errc::not_found, "no record " + key + " in channel " + channel);
  }
  return (*record)->state;
}

Result<std::vector<std::pair<std::string, std::string>>> Records::conflicted_keys(
    std::size_t limit) {
  std::vector<std::pair<std::string, std::string>> keys;
  Statement& stmt = stmts_->conflicted;
  stmt.bind(1, static_cast<std::int64_t>(limit));
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    keys.emplace_back(std::string(stmt.column_text(0)), std::string(stmt.column_text(1)));
  }
  stmt.reset();
  return keys;
}

Result<std::pair<Digest, std::map<std::string, Digest>>> Records::digests() {
  StateDigest node;
  std::map<std::string, Digest> channels;
  std::optional<std::string> channel;
  std::unique_ptr<StateDigest> current;
  Statement& stmt = stmts_->all_records;
  for (;;) {
    auto row = stmt.step();
    if (!row) return tl::unexpected(row.error());
    if (!*row) break;
    std::string c(stmt.column_text(0));
    std::string key(stmt.column_text(1));
    auto state = decode_state(stmt.column_blob(2));
    if (!state) {
      stmt.reset();
      return damaged("the state of record " + key + " in " + c);
    }
    if (state->ops == 0) continue;  // only pending ops so far: not part of any state
    if (channel != c) {
      if (current) channels[*channel] = current->finish();
      current = std::make_unique<StateDigest>();
      channel = c;
    }
    current->add(c, key, *state);
    node.add(c, key, *state);
  }
  stmt.reset();
  if (current) channels[*channel] = current->finish();
  changed_ = false;
  return std::make_pair(node.finish(), std::move(channels));
}

Result<void> Records::clear() {
  cache_.clear();
  for (const char* sql : {"DELETE FROM records", "DELETE FROM merge_pending",
                          "UPDATE ops SET record_id = NULL, context = NULL"}) {
    if (auto done = db_.exec(sql); !done) return done;
  }
  next_record_id_ = 1;
  pending_count_ = 0;
  changed_ = true;
  return {};
}

}  // namespace ferry::storage
