#include "storage/sqlite.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

using namespace ferry;
using namespace ferry::storage;

TEST_CASE("sqlite result codes map to ferry error codes") {
  CHECK(sqlite_error(SQLITE_FULL, "x", nullptr).code == Errc::disk_full);
  CHECK(sqlite_error(SQLITE_IOERR_WRITE, "x", nullptr).code == Errc::io);
  CHECK(sqlite_error(SQLITE_BUSY, "x", nullptr).code == Errc::busy);
  CHECK(sqlite_error(SQLITE_CORRUPT, "x", nullptr).code == Errc::corrupt);
  CHECK(sqlite_error(SQLITE_NOTADB, "x", nullptr).code == Errc::corrupt);
  CHECK(sqlite_error(SQLITE_FULL, "insert", nullptr).detail.find("insert") == 0);
}

// ctest runs each test case in a process of its own, so this Database is the process's first
// SQLite use.
TEST_CASE("the first Database of a process turns SQLite's memory statistics off") {
  test::TempDir dir;
  auto db = Database::open(dir.file("t.db"), true);
  REQUIRE(db);
  REQUIRE(db->exec("CREATE TABLE t (v BLOB); INSERT INTO t VALUES (zeroblob(100000))"));
  CHECK(sqlite_memory_statistics_off());
  // Counted only while the statistics are on: SQLite has allocated plenty by now.
  CHECK(sqlite3_memory_used() == 0);
  CHECK(sqlite3_memory_highwater(0) == 0);
}

TEST_CASE("a transaction rolls back unless committed") {
  test::TempDir dir;
  auto db = Database::open(dir.file("t.db"), true);
  REQUIRE(db);
  REQUIRE(db->exec("CREATE TABLE t (v INTEGER)"));
  {
    auto txn = Transaction::begin(*db);
    REQUIRE(txn);
    REQUIRE(db->exec("INSERT INTO t VALUES (1)"));
  }
  CHECK(db->query_int("SELECT count(*) FROM t").value() == 0);
  {
    auto txn = Transaction::begin(*db);
    REQUIRE(txn);
    REQUIRE(db->exec("INSERT INTO t VALUES (2)"));
    REQUIRE(txn->commit());
  }
  CHECK(db->query_int("SELECT count(*) FROM t").value() == 1);
}

TEST_CASE("a read snapshot sees one state of the database until it ends") {
  test::TempDir dir;
  auto reader = Database::open(dir.file("t.db"), true);
  REQUIRE(reader);
  REQUIRE(reader->exec("PRAGMA journal_mode = WAL"));
  REQUIRE(reader->exec("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1)"));
  auto writer = Database::open(dir.file("t.db"), false);
  REQUIRE(writer);
  {
    auto snapshot = ReadSnapshot::begin(*reader);
    REQUIRE(snapshot);
    CHECK(reader->query_int("SELECT count(*) FROM t").value() == 1);
    REQUIRE(writer->exec("INSERT INTO t VALUES (2)"));  // another connection commits meanwhile
    CHECK(reader->query_int("SELECT count(*) FROM t").value() == 1);
    CHECK(reader->query_int("SELECT max(v) FROM t").value() == 1);
    // No write transaction inside it: it must end first.
    CHECK_FALSE(Transaction::begin(*reader));
  }
  CHECK(reader->query_int("SELECT count(*) FROM t").value() == 2);
  auto txn = Transaction::begin(*reader);
  REQUIRE(txn);
  REQUIRE(reader->exec("INSERT INTO t VALUES (3)"));
  REQUIRE(txn->commit());
  CHECK(writer->query_int("SELECT count(*) FROM t").value() == 3);
}

TEST_CASE("opening a missing database without create fails with a clear error") {
  test::TempDir dir;
  auto db = Database::open(dir.file("absent.db"), false);
  REQUIRE_FALSE(db);
  CHECK(db.error().code == Errc::io);
  CHECK(db.error().detail.find("absent.db") != std::string::npos);
}

TEST_CASE("statements bind and read back integers, text and blobs") {
  test::TempDir dir;
  auto db = Database::open(dir.file("t.db"), true);
  REQUIRE(db);
  REQUIRE(db->exec("CREATE TABLE t (i INTEGER, s TEXT, b BLOB)"));
  auto insert = db->prepare("INSERT INTO t VALUES (?1, ?2, ?3)");
  REQUIRE(insert);
  const std::vector<std::uint8_t> first = {0, 1, 2, 255};
  std::vector<std::uint8_t> blob = first;
  REQUIRE(insert->bind(1, std::int64_t{-7}).bind(2, "嵊山").bind(3, blob).run());
  // Bytes are bound without a copy, until the statement is reset (run() did): changing them
  // afterwards changes nothing stored.
  blob.assign(1000, 9);
  std::string text = "household-registration";
  REQUIRE(insert->bind(1, std::int64_t{8}).bind(2, text).bind(3, blob).run());
  text.assign("changed after the insert");
  auto select = db->prepare("SELECT i, s, b FROM t WHERE s = ?1 OR i = ?2 ORDER BY rowid");
  REQUIRE(select);
  const std::string wanted = "嵊山";
  select->bind(1, wanted).bind(2, std::int64_t{8});  // read again at every row
  REQUIRE(select->step().value());
  CHECK(select->column_int(0) == -7);
  CHECK(select->column_text(1) == "嵊山");
  auto read = select->column_blob(2);
  CHECK(std::vector<std::uint8_t>(read.begin(), read.end()) == first);
  REQUIRE(select->step().value());
  CHECK(select->column_text(1) == "household-registration");
  read = select->column_blob(2);
  CHECK(std::vector<std::uint8_t>(read.begin(), read.end()) == blob);
  CHECK_FALSE(select->step().value());
  select->reset();
}

TEST_CASE("a failing statement reports the sql and the reason") {
  test::TempDir dir;
  auto db = Database::open(dir.file("t.db"), true);
  REQUIRE(db);
  REQUIRE(db->exec("CREATE TABLE t (v INTEGER NOT NULL)"));
  auto insert = db->prepare("INSERT INTO t VALUES (NULL)");
  REQUIRE(insert);
  auto ran = insert->run();
  REQUIRE_FALSE(ran);
  CHECK(ran.error().detail.find("NOT NULL") != std::string::npos);
}
