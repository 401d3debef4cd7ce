#include "storage/schema.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::storage;

TEST_CASE("a new database is stamped with the ferry application id and the latest schema") {
  test::TempDir dir;
  auto db = Database::open(dir.file("f.db"), true);
  REQUIRE(db);
  auto version = check_database(*db, dir.file("f.db"));
  REQUIRE(version);
  CHECK(*version == 0);
  REQUIRE(migrate(*db, *version));
  CHECK(db->query_int("PRAGMA application_id").value() == ferry_application_id);
  CHECK(db->query_int("PRAGMA user_version").value() == schema_version_latest());
  CHECK(check_database(*db, dir.file("f.db")).value() == schema_version_latest());
  // Migrating an up-to-date database changes nothing.
  REQUIRE(migrate(*db, schema_version_latest()));
  CHECK(db->query_int("SELECT count(*) FROM ops").value() == 0);
}

TEST_CASE("a database of another application is refused") {
  test::TempDir dir;
  auto db = Database::open(dir.file("other.db"), true);
  REQUIRE(db);
  REQUIRE(db->exec("CREATE TABLE customers (name TEXT)"));
  auto version = check_database(*db, dir.file("other.db"));
  REQUIRE_FALSE(version);
  CHECK(version.error().code == Errc::corrupt);
  CHECK(version.error().detail.find("not a ferry database") != std::string::npos);
}

TEST_CASE("a schema newer than this build is refused") {
  test::TempDir dir;
  auto db = Database::open(dir.file("f.db"), true);
  REQUIRE(db);
  REQUIRE(migrate(*db, 0));
  REQUIRE(db->exec("PRAGMA user_version = " + std::to_string(schema_version_latest() + 1)));
  auto version = check_database(*db, dir.file("f.db"));
  REQUIRE_FALSE(version);
  CHECK(version.error().code == Errc::corrupt);
  CHECK(version.error().detail.find("newer") != std::string::npos);
}

TEST_CASE("the schema enforces feed references and unique feed positions") {
  test::TempDir dir;
  auto db = Database::open(dir.file("f.db"), true);
  REQUIRE(db);
  REQUIRE(db->exec("PRAGMA foreign_keys = ON"));
  REQUIRE(migrate(*db, 0));
  std::string blob32 = "x'" + std::string(64, 'a') + "'";
  std::string blob64 = "x'" + std::string(128, 'b') + "'";
  auto insert = [&](const std::string& feed_id) {
    return db->exec(
        "INSERT INTO ops (id, id_prefix, feed_id, seq, hlc, envelope, signature, "
        "stored_at) VALUES (" +
        blob32 + ", 1, " + feed_id + ", 1, 1, x'00', " + blob64 + ", 0)");
  };
  auto orphan = insert("99");
  REQUIRE_FALSE(orphan);
  CHECK(orphan.error().detail.find("FOREIGN KEY") != std::string::npos);
  REQUIRE(db->exec("INSERT INTO feeds (origin, channel, head_seq, head_id) VALUES (" + blob32 +
                   ", 'station/a', 1, " + blob32 + ")"));
  REQUIRE(insert("1"));
  auto same_position = insert("1");
  REQUIRE_FALSE(same_position);
  CHECK(same_position.error().detail.find("UNIQUE") != std::string::npos);
}

TEST_CASE("a lookup by id probes the generation index, never scans the ops") {
  test::TempDir dir;
  auto db = Database::open(dir.file("f.db"), true);
  REQUIRE(db);
  REQUIRE(migrate(*db, 0));
  for (const std::string select : {"SELECT arrival, envelope FROM ops o WHERE ",
                                   "SELECT o.record_id, f.origin FROM ops o JOIN feeds f USING "
                                   "(feed_id) WHERE "}) {
    auto plan = db->prepare("EXPLAIN QUERY PLAN " + select + by_id_terms);
    REQUIRE(plan);
    auto row = plan->step();
    REQUIRE(row);
    REQUIRE(*row);
    const std::string detail(plan->column_text(3));
    CHECK(detail.find("USING INDEX ops_by_id (<expr>=? AND id_prefix=?)") != std::string::npos);
  }
}
