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

// The key of the ops_by_id_prefix index: an id's first 8 bytes, big-endian, as an integer.
inline std::int64_t id_prefix(const OpId& id) {
  std::uint64_t prefix = 0;
  for (std::size_t i = 0; i < 8; ++i) prefix = (prefix << 8) | id[i];
  return static_cast<std::int64_t>(prefix);
}

// Ids and keys are bound as 32-byte blobs.
inline std::span<const std::uint8_t> bytes_of(const std::array<std::uint8_t, 32>& a) { return a; }

// Brings a checked database from `version` to the latest schema.
[[nodiscard]] Result<void> migrate(Database& db, std::int64_t version);

}  // namespace ferry::storage
