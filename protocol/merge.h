// The merge rules: how the ops of one record (channel, key) fold into its state, as a CRDT.
//
// Pure code with no I/O. The state of a record is a pure function of the set of its ops that
// were applied, whatever the order, provided the caller delivers ops causally: apply() an op
// only after all its deps and all earlier ops of its origin in the same record. storage/ keeps
// each record's RecordState in the transaction that stores the op, as the bytes of
// encode_state(), whose decoder answers Errc::corrupt for bytes it did not produce (each op's
// Context is kept too, in storage's own encoding: storage/records.h). Merging never fails on a
// stored op: a malformed merge part of a body is ignored, always the same way;
// validate_merge_body() refuses such a body for submits. msgpack-c's unpack errors are caught
// inside merge.cpp; only std::bad_alloc may escape.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <msgpack.hpp>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "protocol/crypto.h"
#include "protocol/error.h"
#include "protocol/op.h"

namespace ferry {

// ---- Causality ----

// One op named by its feed position. All ops of a record share one channel, so the origin names
// the feed; storage refuses forks, so a dot names at most one op.
struct Dot {
  PublicKey origin{};
  std::uint64_t seq = 0;
  auto operator<=>(const Dot&) const = default;
};

// The causal history of an op within its channel: for each origin, the highest seq it has seen.
// Feeds are chains, so having seen seq n of an origin means having seen all of 1..n.
class Context {
 public:
  // 0 for an origin not seen.
  std::uint64_t seq(const PublicKey& origin) const;

  // Raises the origin's entry to seq; a lower seq changes nothing.
  void raise(const PublicKey& origin, std::uint64_t seq);

  // Pointwise maximum.
  void join(const Context& other);

  // (origin, seq) in origin order.
  const std::vector<std::pair<PublicKey, std::uint64_t>>& entries() const { return seqs_; }
  bool operator==(const Context&) const = default;

 private:
  // Sorted by origin, no zero entries, so equal histories compare equal. A record's writers are
  // few (a station, its relay, the hub), so a sorted vector beats a tree: one allocation per
  // copy, and every op's context is copied into its record's tails.
  std::vector<std::pair<PublicKey, std::uint64_t>> seqs_;
};

// A dep of an op as context_of() needs it: the dep's dot and the dep's own context.
struct DepContext {
  Dot dot;
  Context context;
};

// The context of the op at (origin, seq) with these deps: the join of each dep's context and the
// dep itself, joined with the origin's own earlier ops (origin: seq - 1). Those earlier ops come
// in without their own history; a caller that wants it passes the origin's previous op in the
// channel among the deps, which the (origin: seq - 1) entry then duplicates harmlessly.
Context context_of(const PublicKey& origin, std::uint64_t seq, std::span<const DepContext> deps);

// context_of() in steps, for a caller that holds its deps' contexts elsewhere (and need not copy
// them into DepContexts): add_dep() for each dep, then finish_context() for the op itself.
void add_dep(Context& context, const Dot& dep, const Context& dep_context);
void finish_context(Context& context, const PublicKey& origin, std::uint64_t seq);

// Whether the op at dot is in the history that context describes.
bool covers(const Context& context, const Dot& dot);

// ---- Values ----

// The canonical msgpack bytes of a value: integers in their smallest encoding, maps with their
// entries sorted by the canonical bytes of (key, value), floats with their width and bits (1.0 is
// not 1), all else re-packed as it is with its smallest header. Two values are equal for the
// merge exactly when these bytes are. Recursion follows the object's nesting, which the unpacker
// that made it has bounded (op bodies: limits::body_depth_max).
std::vector<std::uint8_t> canonical_value(const msgpack::object& value);

// ---- What an op writes ----

// The merge parts of one op body, parsed leniently, with the op's identity.
struct MergeOp {
  OpId id{};
  PublicKey origin{};
  std::uint64_t seq = 0;
  std::uint64_t hlc = 0;
  std::optional<std::string> author;
  std::map<std::string, std::vector<std::uint8_t>> sets;  // field -> canonical value
  std::map<std::string, std::int64_t> incs;               // field -> delta
  // field -> canonical elements; a field may appear in both: the op's dels apply first.
  std::map<std::string, std::set<std::vector<std::uint8_t>>> adds;
  std::map<std::string, std::set<std::vector<std::uint8_t>>> dels;

  Dot dot() const { return Dot{origin, seq}; }
};

// Reads the op's identity and its merge parts `set`, `inc`, `add` and `del`. Whatever is
// malformed (a part that is not a map, an entry of the wrong type, a field named twice in one
// part, a part named twice in the body) is left out, so any stored op merges.
MergeOp merge_op_of(const Op& op);

// Errc::malformed, naming the first problem, for a body that merge_op_of() would not read in
// full; also applies validate_body(). The daemon calls it on submits so that users learn of it.
[[nodiscard]] Result<void> validate_merge_body(std::span<const std::uint8_t> body);

// ---- Record state ----

// One write of a last-writer-wins register that no other applied write of the field has seen.
struct RegisterWrite {
  std::vector<std::uint8_t> value;  // canonical msgpack
  OpId id{};
  std::uint64_t hlc = 0;
  std::optional<std::string> author;
  bool operator==(const RegisterWrite&) const = default;
};

// The frontier of a register: its concurrent latest writes, by dot. More than one is a conflict.
using Register = std::map<Dot, RegisterWrite>;

// element (canonical msgpack) -> the adds of it that no applied del has seen, each named by its
// op's dot (storage refuses forks, so a dot names one op); never empty.
using OrSet = std::map<std::vector<std::uint8_t>, std::set<Dot>>;

struct RecordState {
  std::map<Dot, OpId> heads;                     // applied ops no other applied op has seen
  std::map<std::string, Register> registers;     // `set` fields; frontiers never empty
  std::map<std::string, std::int64_t> counters;  // `inc` fields; sums wrap modulo 2^64
  std::map<std::string, OrSet> sets;             // `add`/`del` fields; never empty
  std::uint64_t ops = 0;                         // applied ops
  std::uint64_t updated_hlc = 0;                 // highest hlc of the applied ops
  bool operator==(const RecordState&) const = default;
};

// Folds op x, whose context is cx (from context_of), into the state. Each op is applied once, in
// causal order (see the file comment); a state and context that break that order abort.
void apply(RecordState& state, const MergeOp& x, const Context& cx);
// The same, taking what x holds instead of copying it.
void apply(RecordState& state, MergeOp&& x, const Context& cx);

// Canonical msgpack: equal states give equal bytes. Each origin the state names is written once,
// in a table that the heads, writes and tags refer to by index (docs/merge.md).
std::vector<std::uint8_t> encode_state(const RecordState& state);

// Strict: Errc::corrupt for anything encode_state() would not have written. Allocation is
// bounded by the size of the input.
[[nodiscard]] Result<RecordState> decode_state(std::span<const std::uint8_t> bytes);

// ---- Views for replies ----

// The write of a register that wins: the greatest by (hlc, origin bytes, id bytes).
const RegisterWrite& winner(const Register& reg);

// field -> the winning value of each register.
std::map<std::string, std::vector<std::uint8_t>> winning_values(const RecordState& state);

// field -> the elements present in each set, in canonical byte order.
std::map<std::string, std::vector<std::vector<std::uint8_t>>> set_elements(
    const RecordState& state);

struct ConflictValue {
  std::vector<std::uint8_t> value;  // canonical msgpack
  OpId id{};
  PublicKey origin{};
  std::optional<std::string> author;
  std::uint64_t hlc = 0;
  bool operator==(const ConflictValue&) const = default;
};

// A register with concurrent writes. Values run from the winner down, in the winner's order.
struct ConflictView {
  std::string field;
  std::vector<ConflictValue> values;  // at least two
};

// The conflicting registers, in field order.
std::vector<ConflictView> conflicts(const RecordState& state);

// ---- Digests ----

// Appends the canonical bytes of one record for digests: a msgpack array of the channel, the
// key and the state's encoding.
void append_canonical(const std::string& channel, const std::string& key, const RecordState& state,
                      std::vector<std::uint8_t>& out);

// BLAKE2b-256 over a domain tag and the canonical bytes of records, added in strictly increasing
// (channel, key) order, bytewise as SQLite's BINARY collation sorts: a channel digest adds the
// records of one channel, a node digest adds all of them. Equal sets of records, equal digests.
class StateDigest {
 public:
  StateDigest();
  ~StateDigest();
  StateDigest(const StateDigest&) = delete;
  StateDigest& operator=(const StateDigest&) = delete;

  // Aborts on a (channel, key) not above the previous one: the caller's order is the digest.
  void add(const std::string& channel, const std::string& key, const RecordState& state);

  // The digest of what was added; the object is spent afterwards.
  Digest finish();

 private:
  struct Hasher;
  std::unique_ptr<Hasher> hasher_;
  std::optional<std::pair<std::string, std::string>> last_;
  std::vector<std::uint8_t> scratch_;
  bool finished_ = false;
};

}  // namespace ferry
