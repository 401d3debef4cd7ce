// The store's schema and its ordered migrations.
//
// A ferry database carries application_id 0x46455259 ("FERY") and its schema version in
// user_version. Migrations run in order, each in its own transaction; a database with another
// application id, or a schema newer than this build knows, is refused and left as it is.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "protocol/op.h"
#include "storage/sqlite.h"

namespace ferry::storage {

inline constexpr std::int64_t ferry_application_id = 0x46455259;

// The schema version this build writes.
std::int64_t schema_version_latest();

// Reads only: checks that the database is ours (or new and empty), not newer than this build and
// intact (PRAGMA quick_check). Returns its schema version, 0 for a new database.
[[nodiscard]] Result<std::int64_t> check_database(Database& db, const std::string& path);

// An id's first 8 bytes, big-endian, as an integer: the second column of the ops_by_id index.
// Its first is the op's generation, arrival >> 16 (migration 5; the shift is fixed by it).
inline std::int64_t id_prefix(const OpId& id) {
  std::uint64_t prefix = 0;
  for (std::size_t i = 0; i < 8; ++i) prefix = (prefix << 8) | id[i];
  return static_cast<std::int64_t>(prefix);
}

// Ops are found by id through ops_by_id, one generation of 65,536 arrivals at a time (migration 5
// fixes the shift). A statement that looks an op up by id selects from `ops o` with by_id_terms
// in its WHERE clause (written as in the index, or SQLite would not use it), binding ?1 the id's
// prefix, ?2 the id and ?3 the generation, and runs through step_by_id.
inline constexpr int id_generation_shift = 16;
inline constexpr const char* by_id_terms =
    "(o.arrival >> 16) = ?3 AND o.id_prefix = ?1 AND o.id = ?2";
// The newest arrival, 0 in an empty store: where step_by_id starts.
inline constexpr const char* newest_arrival_sql = "SELECT coalesce(max(arrival), 0) FROM ops";

// Ids and keys are bound as 32-byte blobs.
inline std::span<const std::uint8_t> bytes_of(const std::array<std::uint8_t, 32>& a) { return a; }

// Steps `stmt` (see by_id_terms) in one generation after another, newest first, until it yields
// a row: true with the statement on that row (the caller reads it, then resets it), false with
// the statement reset when no generation holds the id. `newest` is a prepared
// newest_arrival_sql. One index probe per generation stored: recent ops are found first.
[[nodiscard]] Result<bool> step_by_id(Statement& newest, Statement& stmt, const OpId& id);

// Brings a checked database from `version` to the latest schema.
[[nodiscard]] Result<void> migrate(Database& db, std::int64_t version);

}  // namespace ferry::storage
