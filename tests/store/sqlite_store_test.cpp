// Opening files that are not (current) mandala stores fails clearly and changes nothing on
// disk; read-only stores answer queries and refuse writes.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <map>
#include <random>

#include "mandala/mandala.hpp"
#include "support/files.hpp"
#include "support/sql.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;
namespace fs = std::filesystem;
using mandala::testing::snapshot;
using mandala::testing::sql;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; });

void write_file(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

/// Opening `path` throws `code` with a message containing `fragment`, and leaves the
/// directory byte-identical.
void expect_refused(const fs::path& path, md::Errc code, const std::string& fragment) {
  const auto before = snapshot(path.parent_path());
  try {
    md::Storage storage(path);
    ADD_FAILURE() << "opening " << path << " must fail";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
  EXPECT_EQ(snapshot(path.parent_path()), before) << "a refused open must not change anything on disk";
}

TEST(SqliteStoreOpen, NonSqliteFileIsRefused) {
  md::testing::TempDir dir;
  const auto path = dir / "notes.txt";
  write_file(path, std::string("this is a text file, not a database\n") + std::string(5000, 'x'));
  expect_refused(path, md::Errc::corrupt_store, "not an SQLite database");
}

TEST(SqliteStoreOpen, RandomBytesAreRefused) {
  md::testing::TempDir dir;
  std::mt19937 rng(7);
  for (int i = 0; i < 20; ++i) {
    const auto path = dir / ("random" + std::to_string(i) + ".db");
    std::string bytes(512 + 97 * static_cast<std::size_t>(i), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    write_file(path, bytes);
    expect_refused(path, md::Errc::corrupt_store, "");
  }
}

TEST(SqliteStoreOpen, ForeignSqliteDatabaseIsRefused) {
  md::testing::TempDir dir;
  const auto path = dir / "other.db";
  sql(path, "CREATE TABLE people(name TEXT); INSERT INTO people VALUES('ada');");
  expect_refused(path, md::Errc::foreign_database, "not a mandala store");
}

TEST(SqliteStoreOpen, NewerSchemaIsRefused) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::Storage storage(path);
    md::Session s(storage);
    inc(1);
  }
  sql(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'; PRAGMA wal_checkpoint(TRUNCATE);");
  expect_refused(path, md::Errc::schema_mismatch, "upgrade mandala");
}

TEST(SqliteStoreOpen, UnreadableSchemaVersionIsDamage) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  { md::Storage storage(path); }
  for (const char* value : {"abc", "4x", "99999999999999999999999"}) {
    sql(path, std::string("UPDATE meta SET value = '") + value +
                  "' WHERE key = 'schema_version'; PRAGMA wal_checkpoint(TRUNCATE);");
    expect_refused(path, md::Errc::corrupt_store, "unreadable schema version");
  }
}

TEST(SqliteStoreOpen, OtherEncodingIsRefused) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  { md::Storage storage(path); }
  sql(path, "UPDATE meta SET value = 'md5' WHERE key = 'hash'; PRAGMA wal_checkpoint(TRUNCATE);");
  expect_refused(path, md::Errc::schema_mismatch, "uses hash 'md5'");
}

TEST(SqliteStoreOpen, DirectoryIsRefused) {
  md::testing::TempDir dir;
  try {
    md::Storage storage(dir.path());
    FAIL();
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::invalid_argument);
    EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos);
  }
}

TEST(SqliteStoreOpen, EmptyFileBecomesAStore) {
  md::testing::TempDir dir;
  const auto path = dir / "empty.db";
  write_file(path, "");
  {
    md::Storage storage(path);
    md::Session s(storage);
    inc(1);
  }
  md::Storage again(path);
  EXPECT_EQ(again.calls_of(inc).size(), 1u);
}

TEST(SqliteStoreOpen, ReadOnlyStoreAnswersQueriesAndRefusesWrites) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::Storage storage(path);
    md::Session s(storage);
    inc(1);
  }
  const auto before = snapshot(dir.path());
  {
    md::StorageOptions ro;
    ro.read_only = true;
    md::Storage storage(path, ro);
    EXPECT_EQ(storage.calls_of(inc).size(), 1u);
    md::Session s(storage);
    auto hit = inc(1);  // memoized: resolves without writing
    EXPECT_EQ(*hit, 2);
    inc(2);  // new: pending until flush
    try {
      storage.flush();
      FAIL() << "a read-only store must refuse writes";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::io);
      EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
    }
    EXPECT_THROW(storage.cleanup(), md::Error);
  }
  // SQLite's read-only WAL readers may leave an empty -wal and a -shm index behind; the
  // database itself stays byte-identical.
  const auto after = snapshot(dir.path());
  EXPECT_EQ(after.at("store.db"), before.at("store.db")) << "a read-only store must stay byte-identical";
  if (after.contains("store.db-wal")) {
    EXPECT_EQ(fs::file_size(dir / "store.db-wal"), 0u);
  }
  md::StorageOptions ro;
  ro.read_only = true;
  try {
    md::Storage missing(dir / "missing.db", ro);
    FAIL();
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::not_found);
  }
  EXPECT_FALSE(fs::exists(dir / "missing.db"));
  md::Storage storage(path);
  EXPECT_EQ(storage.calls_of(inc).size(), 1u);
}

TEST(SqliteStoreOpen, StoreFileHasTheDocumentedIdentity) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  { md::Storage storage(path); }
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA application_id", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int64(st, 0), 0x4D4E444C);
  sqlite3_finalize(st);
  ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

}  // namespace
