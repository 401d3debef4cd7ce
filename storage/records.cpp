#include "storage/records.h"

#include <sqlite3.h>

#include <algorithm>
#include <msgpack.hpp>

#include "protocol/unpack.h"
#include "storage/schema.h"

namespace ferry::storage {

struct Records::Statements {
  Statement find_record;
  Statement update_record;
  Statement insert_record;
  Statement dep_info;
  Statement newest_arrival;
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
  Statement feed_by_origin;
  Statement feed_by_id;
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

// The smallest msgpack form of an array header and of a non-negative integer, as msgpack-c
// writes them.
void pack_array_header(std::vector<std::uint8_t>& out, std::size_t size) {
  FERRY_ASSERT(size <= 0xffff);  // a record has far fewer origins
  if (size <= 15) {
    out.push_back(static_cast<std::uint8_t>(0x90 | size));
  } else {
    out.push_back(0xdc);
    out.push_back(static_cast<std::uint8_t>(size >> 8));
    out.push_back(static_cast<std::uint8_t>(size & 0xff));
  }
}

void pack_uint(std::vector<std::uint8_t>& out, std::uint64_t value) {
  if (value <= 0x7f) {
    out.push_back(static_cast<std::uint8_t>(value));
    return;
  }
  int bytes = value <= 0xff ? 1 : value <= 0xffff ? 2 : value <= 0xffffffff ? 4 : 8;
  out.push_back(bytes == 1 ? 0xcc : bytes == 2 ? 0xcd : bytes == 4 ? 0xce : 0xcf);
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

// [[feed_id, seq], ...]: how the store writes contexts and tails.
std::vector<std::uint8_t> pack_feed_seqs(
    std::span<const std::pair<std::int64_t, std::uint64_t>> entries) {
  std::vector<std::uint8_t> out;
  out.reserve(3 + entries.size() * 12);
  pack_array_header(out, entries.size());
  for (const auto& [feed_id, seq] : entries) {
    FERRY_ASSERT(feed_id > 0);
    pack_array_header(out, 2);
    pack_uint(out, static_cast<std::uint64_t>(feed_id));
    pack_uint(out, seq);
  }
  return out;
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
      "UPDATE records SET state = ?2, tails = ?3, conflicts = ?4 WHERE record_id = ?1",
      "INSERT INTO records (record_id, channel, key, state, tails, conflicts) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
      std::string("SELECT o.record_id, o.context, o.seq, f.origin FROM ops o "
                  "JOIN feeds f USING (feed_id) WHERE ") +
          by_id_terms,
      newest_arrival_sql,
      "UPDATE ops SET record_id = ?1, context = ?2 WHERE arrival = ?3",
      "UPDATE ops SET record_id = ?1, context = NULL WHERE arrival = ?2",
      "INSERT OR REPLACE INTO merge_pending (arrival, record_id, origin, seq, waits_for) "
      "VALUES (?1, ?2, ?3, ?4, ?5)",
      "DELETE FROM merge_pending WHERE arrival = ?1",
      "SELECT o.id FROM merge_pending p JOIN ops o ON o.arrival = p.arrival "
      "WHERE p.record_id = ?1 AND p.origin = ?2 AND p.seq < ?3 ORDER BY p.seq DESC LIMIT 1",
      "SELECT arrival FROM merge_pending WHERE waits_for = ?1 ORDER BY arrival",
      "SELECT envelope FROM ops WHERE arrival = ?1",
      "SELECT id, record_id, context FROM ops WHERE feed_id = ?1 AND seq = ?2",
      "SELECT channel, key FROM records WHERE conflicts > 0 ORDER BY channel, key LIMIT ?1",
      "SELECT channel, key, state FROM records ORDER BY channel, key",
      "SELECT feed_id FROM feeds WHERE origin = ?1 AND channel = ?2",
      "SELECT origin, channel FROM feeds WHERE feed_id = ?1",
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
                     std::move(prepared[12]), std::move(prepared[13]), std::move(prepared[14]),
                     std::move(prepared[15]), std::move(prepared[16])});
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
  // Looked up by views: a cache hit (most ops) copies neither string.
  if (auto it = cache_.find(std::make_pair(std::string_view(channel), std::string_view(key)));
      it != cache_.end()) {
    Cached& cached = it->second;
    if (!cached.absent) return &cached;
    if (!create) return nullptr;
    cached.absent = false;
    cached.record_id = next_record_id_++;
    mark_dirty(cached);  // the row must exist for the ops that name it
    return &cached;
  }
  auto name = std::make_pair(channel, key);
  Statement& stmt = stmts_->find_record;
  auto row = stmt.bind(1, channel).bind(2, key).step();
  if (!row) return tl::unexpected(row.error());
  Cached record{0, channel, key, {}, {}, false, {}};
  bool fresh = false;
  if (*row) {
    record.record_id = stmt.column_int(0);
    record.stored = true;
    auto state = decode_state(stmt.column_blob(1));
    if (!state) {
      stmt.reset();
      return damaged("the state of record " + key + " in " + channel);
    }
    record.state = std::move(*state);
    // Tails: [[feed_id, seq], ...]; their ids and contexts are read from their ops' rows.
    const auto tails_bytes = stmt.column_blob(2);
    auto tails =
        decode_by_feed(record, tails_bytes, "the tails of record " + key + " in " + channel);
    stmt.reset();
    if (!tails) return tl::unexpected(tails.error());
    for (const FeedEntry& entry : *tails) {
      Statement& at = stmts_->tail_at;
      auto found = at.bind(1, entry.feed_id).bind(2, static_cast<std::int64_t>(entry.seq)).step();
      if (!found) return tl::unexpected(found.error());
      bool held = *found && at.column_int(1) == record.record_id && !at.column_blob(2).empty() &&
                  at.column_blob(0).size() == digest_bytes;
      if (!held) {
        at.reset();
        return damaged("the tails of record " + key + " in " + channel);
      }
      auto context = stored_context(record, at.column_blob(2));
      OpId id = array_of<digest_bytes>(at.column_blob(0));
      at.reset();
      if (!context) return tl::unexpected(context.error());
      record.tails[entry.origin] = Tail{entry.seq, id, std::move(*context)};
    }
    return &cache_.emplace(std::move(name), std::move(record)).first->second;
  } else if (create) {
    record.record_id = next_record_id_++;
    fresh = true;  // the row must exist for the ops that name it
  } else {
    stmt.reset();
    // Within the bound only: lookups alone (get, heads) never flush, which is what empties it.
    if (cache_.size() < record_cache_max) {
      record.absent = true;
      cache_.emplace(std::move(name), std::move(record));
    }
    return nullptr;
  }
  stmt.reset();
  Cached* cached = &cache_.emplace(std::move(name), std::move(record)).first->second;
  if (fresh) mark_dirty(*cached);
  return cached;
}

void Records::mark_dirty(Cached& record) {
  if (record.dirty) return;
  record.dirty = true;
  dirty_.push_back(&record);
}

void Records::clear_cache() {
  cache_.clear();
  dirty_.clear();
}

Result<std::int64_t> Records::feed_id(Cached& record, const PublicKey& origin) {
  if (auto it = record.feed_ids.find(origin); it != record.feed_ids.end()) return it->second;
  // A new record of a channel whose feeds are known: no lookup.
  if (auto of_origin = feed_ids_.find(origin); of_origin != feed_ids_.end()) {
    if (auto it = of_origin->second.find(record.channel); it != of_origin->second.end()) {
      record.feed_ids.emplace(origin, it->second);
      return it->second;
    }
  }
  Statement& stmt = stmts_->feed_by_origin;
  auto row = stmt.bind(1, bytes_of(origin)).bind(2, record.channel).step();
  if (!row) return tl::unexpected(row.error());
  if (!*row) {
    stmt.reset();
    return damaged("the feeds of channel " + record.channel);  // its ops are held, so its feed is
  }
  const std::int64_t id = stmt.column_int(0);
  stmt.reset();
  record.feed_ids.emplace(origin, id);
  feeds_by_id_.emplace(id, FeedName{origin, record.channel});
  feed_ids_[origin].emplace(record.channel, id);
  return id;
}

Result<std::vector<std::uint8_t>> Records::encode_by_feed(
    Cached& record, std::span<const std::pair<PublicKey, std::uint64_t>> entries) {
  std::vector<std::pair<std::int64_t, std::uint64_t>> by_feed;
  by_feed.reserve(entries.size());
  for (const auto& [origin, seq] : entries) {
    auto id = feed_id(record, origin);
    if (!id) return tl::unexpected(id.error());
    by_feed.emplace_back(*id, seq);
  }
  return pack_feed_seqs(by_feed);
}

Result<std::vector<Records::FeedEntry>> Records::decode_by_feed(Cached& record,
                                                                std::span<const std::uint8_t> bytes,
                                                                const std::string& what) {
  // [[feed_id, seq], ...]: a container of n items takes at least n bytes.
  const msgpack::unpack_limit limit(bytes.size(), 0, 0, 0, 0, 2);
  auto unpacked = unpack_one(bytes, limit);
  if (!unpacked || unpacked->get().type != msgpack::type::ARRAY) return damaged(what);
  const msgpack::object_array& items = unpacked->get().via.array;
  std::vector<FeedEntry> entries;
  std::vector<std::pair<std::int64_t, std::uint64_t>> by_feed;
  for (std::uint32_t i = 0; i < items.size; ++i) {
    const msgpack::object& item = items.ptr[i];
    if (item.type != msgpack::type::ARRAY || item.via.array.size != 2 ||
        item.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER ||
        item.via.array.ptr[1].type != msgpack::type::POSITIVE_INTEGER ||
        item.via.array.ptr[0].via.u64 > static_cast<std::uint64_t>(INT64_MAX) ||
        item.via.array.ptr[1].via.u64 == 0) {
      return damaged(what);
    }
    const auto id = static_cast<std::int64_t>(item.via.array.ptr[0].via.u64);
    auto feed = feeds_by_id_.find(id);
    if (feed == feeds_by_id_.end()) {
      Statement& stmt = stmts_->feed_by_id;
      auto row = stmt.bind(1, id).step();
      if (!row) return tl::unexpected(row.error());
      if (!*row || stmt.column_blob(0).size() != public_key_bytes) {
        stmt.reset();
        return damaged(what);
      }
      FeedName name{array_of<public_key_bytes>(stmt.column_blob(0)),
                    std::string(stmt.column_text(1))};
      stmt.reset();
      feed = feeds_by_id_.emplace(id, std::move(name)).first;
    }
    // Every entry a feed of the record's channel, in ascending origin order.
    if (feed->second.channel != record.channel ||
        (!entries.empty() && !(entries.back().origin < feed->second.origin))) {
      return damaged(what);
    }
    record.feed_ids.emplace(feed->second.origin, id);
    entries.push_back(FeedEntry{id, feed->second.origin, item.via.array.ptr[1].via.u64});
    by_feed.emplace_back(id, entries.back().seq);
  }
  // Re-encoding catches the long forms the encoder never writes.
  std::vector<std::uint8_t> again = pack_feed_seqs(by_feed);
  if (!std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) return damaged(what);
  return entries;
}

Result<Context> Records::stored_context(Cached& record, std::span<const std::uint8_t> bytes) {
  auto entries = decode_by_feed(
      record, bytes, "the context of an op in record " + record.key + " in " + record.channel);
  if (!entries) return tl::unexpected(entries.error());
  Context context;
  for (const FeedEntry& entry : *entries) context.raise(entry.origin, entry.seq);
  return context;
}

Result<Records::Readiness> Records::readiness(const Op& op, Cached& record) {
  const OpHeader& h = op.header();
  Context context;  // context_of(), built from the deps where they are found
  for (const OpId& dep : h.deps) {
    // Most deps are the latest op of their origin in this record, whose context the record's
    // tails hold: no lookup needed.
    auto tail =
        std::ranges::find_if(record.tails, [&](const auto& t) { return t.second.id == dep; });
    if (tail != record.tails.end()) {
      add_dep(context, Dot{tail->first, tail->second.seq}, tail->second.context);
      continue;
    }
    Statement& stmt = stmts_->dep_info;
    auto row = step_by_id(stmts_->newest_arrival, stmt, dep);
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
    auto dep_context = stored_context(record, stmt.column_blob(1));
    Dot dot{array_of<public_key_bytes>(stmt.column_blob(3)),
            static_cast<std::uint64_t>(stmt.column_int(2))};
    stmt.reset();
    if (!dep_context) return tl::unexpected(dep_context.error());
    add_dep(context, dot, *dep_context);
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
    add_dep(context, Dot{h.origin, tail->second.seq}, tail->second.context);
  }
  finish_context(context, h.origin, h.seq);
  return Readiness{std::move(context), {}};
}

void Records::apply_to(Cached& record, const Op& op, Context context) {
  const OpHeader& h = op.header();
  apply(record.state, merge_op_of(op), context);
  record.tails[h.origin] = Tail{h.seq, op.id(), std::move(context)};
  mark_dirty(record);
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
    auto encoded = encode_by_feed(r, ready->context->entries());
    if (!encoded) return tl::unexpected(encoded.error());
    placement.context = std::move(*encoded);
    apply_to(r, op, std::move(*ready->context));
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
  // On a failure the records not yet written stay dirty, and the caller's discard() drops them.
  for (Cached* dirty : dirty_) {
    Cached& r = *dirty;
    if (!r.dirty) continue;
    auto conflicting = std::ranges::count_if(
        r.state.registers, [](const auto& field) { return field.second.size() > 1; });
    std::vector<std::pair<PublicKey, std::uint64_t>> tail_seqs;
    for (const auto& [origin, tail] : r.tails) tail_seqs.emplace_back(origin, tail.seq);
    auto tails = encode_by_feed(r, tail_seqs);
    if (!tails) return tl::unexpected(tails.error());
    const std::vector<std::uint8_t> state = encode_state(r.state);
    // A record with a row is updated by record_id, which spares the (channel, key) index the
    // probe an upsert makes; a new record's row is inserted.
    if (r.stored) {
      auto updated = stmts_->update_record.bind(1, r.record_id)
                         .bind(2, state)
                         .bind(3, *tails)
                         .bind(4, static_cast<std::int64_t>(conflicting))
                         .run();
      if (!updated) return updated;
    } else {
      auto inserted = stmts_->insert_record.bind(1, r.record_id)
                          .bind(2, r.channel)
                          .bind(3, r.key)
                          .bind(4, state)
                          .bind(5, *tails)
                          .bind(6, static_cast<std::int64_t>(conflicting))
                          .run();
      if (!inserted) return inserted;
      r.stored = true;
    }
    r.dirty = false;
  }
  dirty_.clear();
  // Clean records stay for the next batches; the cache is bounded by emptying it when full.
  if (cache_.size() > record_cache_max) clear_cache();
  return {};
}

void Records::discard() {
  clear_cache();
  feeds_by_id_.clear();
  feed_ids_.clear();
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
  clear_cache();
  feeds_by_id_.clear();
  feed_ids_.clear();
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
