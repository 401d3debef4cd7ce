// Folds stored ops into their records (protocol/merge.h) inside the store's transaction.
//
// The merge rules need causal delivery: an op is applied to its record only after its deps and
// every earlier op of its origin in that record have been applied. Ops arrive in any order
// (replication brings feeds one by one), so an op whose history is not complete yet is pending:
// it is held like any op, listed in merge_pending with the one id it waits for now, and
// folded the moment the last of those is. Which ops are folded is thus a function of the set of
// ops held, and so is every record: the same ops give the same records and digests in any
// arrival order. An op's context also takes in the context of its origin's previous op in the
// record (the record's tails), because an origin has seen whatever its own earlier ops had seen.
//
// Records is owned by OpStore, shares its connection and runs on its thread. A new op is folded
// in two steps around the insert of its row: place() folds it into its (cached) record or finds
// what it waits for, so that the row is written once with its record and context; placed()
// then lists it as pending, or folds the pending ops that waited for it. fold() does both for an
// op whose row is already stored (a rebuild). All of it runs inside an open transaction; the
// touched records are written once per batch by flush(), just before the commit, and stay
// cached (at most record_cache_max of them) for the next batches; discard() forgets the cache
// after a rollback.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "protocol/merge.h"
#include "protocol/op.h"
#include "storage/sqlite.h"

namespace ferry::storage {

// Decoded records kept between batches; past this many the cache is emptied after a flush.
inline constexpr std::size_t record_cache_max = 4096;

// Where a new op goes: its record, and its context when it could be folded at once.
struct Placement {
  std::int64_t record_id = 0;
  std::optional<std::vector<std::uint8_t>> context;  // encoded; empty while pending
  OpId waits_for{};                                  // while pending
};

class Records {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Records>> open(Database& db);
  ~Records();
  Records(const Records&) = delete;
  Records& operator=(const Records&) = delete;

  // Before the op's row is inserted: folds it, or finds what it waits for.
  [[nodiscard]] Result<Placement> place(const Op& op);
  // After the row is inserted at `arrival` with placement's record and context.
  [[nodiscard]] Result<void> placed(const Op& op, std::uint64_t arrival,
                                    const Placement& placement);

  // Folds the op whose row is at `arrival` (or makes it pending), then every pending op it
  // completes.
  [[nodiscard]] Result<void> fold(const Op& op, std::uint64_t arrival);

  // Writes the records folded into since the last flush; call before committing.
  [[nodiscard]] Result<void> flush();

  // The transaction rolled back: forgets what was folded since the last flush.
  void discard();

  // The current heads of a record, as a new local op's default deps; empty for a new record.
  [[nodiscard]] Result<std::vector<OpId>> heads(const std::string& channel, const std::string& key);

  // Errc::not_found when no op of the record has been folded.
  [[nodiscard]] Result<RecordState> state(const std::string& channel, const std::string& key);

  [[nodiscard]] Result<std::vector<std::pair<std::string, std::string>>> conflicted_keys(
      std::size_t limit);

  // Node and per-channel digests over every record, in (channel, key) order.
  [[nodiscard]] Result<std::pair<Digest, std::map<std::string, Digest>>> digests();

  // Empties every record and makes every op unfolded, inside the caller's transaction.
  [[nodiscard]] Result<void> clear();

  std::uint64_t pending_count() const { return pending_count_; }
  // Whether anything changed since digests() last ran (cleared by digests()).
  bool changed() const { return changed_; }

 private:
  struct Tail {
    std::uint64_t seq = 0;
    OpId id{};
    Context context;
  };
  struct Cached {
    std::int64_t record_id = 0;
    std::string channel;
    std::string key;
    RecordState state;
    std::map<PublicKey, Tail> tails;
    bool dirty = false;
    std::map<PublicKey, std::int64_t> feed_ids;  // the feeds of this channel seen so far
    // No such record yet: a lookup found no row, and it is cached so that the op built from that
    // lookup (Records::heads) does not look again when it is stored. Only load(..., true) makes
    // it a record.
    bool absent = false;
    bool stored = false;  // its row exists in the database (flush then updates it)
  };
  struct FeedName {
    PublicKey origin{};
    std::string channel;
  };
  struct Statements;
  // What an op waits for, or the context it is folded with.
  struct Readiness {
    std::optional<Context> context;
    std::vector<OpId> waits;
  };

  explicit Records(Database& db);
  [[nodiscard]] Result<void> prepare();
  [[nodiscard]] Result<Cached*> load(const std::string& channel, const std::string& key,
                                     bool create);
  [[nodiscard]] Result<Readiness> readiness(const Op& op, Cached& record);
  void mark_dirty(Cached& record);
  void clear_cache();
  // Contexts and tails in the store name each origin by the id of its feed in the record's
  // channel: [[feed_id, seq], ...] in origin order, a few bytes per entry instead of 34.
  struct FeedEntry {
    std::int64_t feed_id = 0;
    PublicKey origin{};
    std::uint64_t seq = 0;
  };
  [[nodiscard]] Result<std::int64_t> feed_id(Cached& record, const PublicKey& origin);
  [[nodiscard]] Result<std::vector<std::uint8_t>> encode_by_feed(
      Cached& record, std::span<const std::pair<PublicKey, std::uint64_t>> entries);
  // Errc::corrupt (naming `what`) for bytes encode_by_feed would not have written, or that name
  // a feed of another channel.
  [[nodiscard]] Result<std::vector<FeedEntry>> decode_by_feed(Cached& record,
                                                              std::span<const std::uint8_t> bytes,
                                                              const std::string& what);
  [[nodiscard]] Result<Context> stored_context(Cached& record, std::span<const std::uint8_t> bytes);
  [[nodiscard]] Result<void> fold_one(const Op& op, std::uint64_t arrival, bool was_pending,
                                      std::deque<OpId>& changed);
  [[nodiscard]] Result<void> wake(const OpId& id, std::deque<OpId>& changed);
  [[nodiscard]] Result<void> wake_all(std::deque<OpId>& changed);
  [[nodiscard]] Result<void> list_pending(const Op& op, std::uint64_t arrival,
                                          const Placement& placement);
  [[nodiscard]] Result<void> reload_counts();
  void apply_to(Cached& record, const Op& op, Context context);

  Database& db_;
  std::unique_ptr<Statements> stmts_;
  // (channel, key) -> record; hashed, as the keys of one channel share long prefixes that an
  // ordered map compares again at every level. Elements stay put when it rehashes.
  // Transparent, so that a lookup by (string_view, string_view) needs no copy of the names.
  using NameView = std::pair<std::string_view, std::string_view>;
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(NameView name) const {
      std::size_t h = std::hash<std::string_view>{}(name.first);
      return h ^ (std::hash<std::string_view>{}(name.second) + 0x9e3779b97f4a7c15ULL + (h << 6) +
                  (h >> 2));
    }
    std::size_t operator()(const std::pair<std::string, std::string>& name) const {
      return (*this)(NameView(name.first, name.second));
    }
  };
  struct NameEqual {
    using is_transparent = void;
    template <class A, class B>
    bool operator()(const A& a, const B& b) const {
      return NameView(a.first, a.second) == NameView(b.first, b.second);
    }
  };
  std::unordered_map<std::pair<std::string, std::string>, Cached, NameHash, NameEqual> cache_;
  // The cached records with changes to write, for flush() (the cache holds up to
  // record_cache_max records, most of them clean: walking them all on each commit cost more
  // than the writes). Elements of cache_ keep their addresses until it is cleared, and every
  // clear empties this too.
  std::vector<Cached*> dirty_;
  // feed_id -> feed, for reading contexts and tails; emptied on discard(), as a feed row that
  // rolled back may see its id given to another.
  std::unordered_map<std::int64_t, FeedName> feeds_by_id_;
  // origin -> channel -> feed_id, for every record of the channel (each record also keeps its
  // own); emptied with feeds_by_id_.
  std::map<PublicKey, std::map<std::string, std::int64_t, std::less<>>> feed_ids_;
  std::int64_t next_record_id_ = 1;
  std::uint64_t pending_count_ = 0;
  bool changed_ = true;
};

}  // namespace ferry::storage
