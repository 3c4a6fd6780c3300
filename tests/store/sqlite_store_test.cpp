// Opening files that are not (current) mandala stores fails clearly and changes nothing on
// disk; read-only stores answer queries and refuse writes.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <set>

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

/// Opening `path`, writable and read-only, throws `code` with a message containing `fragment`
/// and leaves the directory byte-identical (no -wal or -shm file either).
void expect_refused(const fs::path& path, md::Errc code, const std::string& fragment) {
  for (const bool read_only : {false, true}) {
    const auto before = snapshot(path.parent_path());
    md::StorageOptions o;
    o.read_only = read_only;
    const char* how = read_only ? "read-only" : "writable";
    try {
      md::Storage storage(path, o);
      ADD_FAILURE() << "opening " << path << " " << how << " must fail";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), code) << how << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << how << ": " << e.what();
    }
    EXPECT_EQ(snapshot(path.parent_path()), before) << "a refused " << how << " open must not change anything on disk";
  }
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

TEST(SqliteStoreOpen, ForeignWalDatabaseIsRefused) {
  // In WAL mode, SQLite's readers create -wal and -shm files beside it.
  md::testing::TempDir dir;
  const auto path = dir / "other.db";
  sql(path, "PRAGMA journal_mode=WAL; CREATE TABLE people(name TEXT); INSERT INTO people VALUES('ada');");
  ASSERT_FALSE(fs::exists(dir / "other.db-wal"));
  expect_refused(path, md::Errc::foreign_database, "not a mandala store");
}

TEST(SqliteStoreOpen, DamagedStoreIsRefused) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::Storage storage(path);
    md::Session s(storage);
    inc(1);
  }
  // The schema page (page 1 after its 100-byte header) overwritten.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    const std::string garbage(3000, '\x5a');
    f.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  expect_refused(path, md::Errc::corrupt_store, "");
  // Truncated to its first page.
  fs::resize_file(path, 4096);
  expect_refused(path, md::Errc::corrupt_store, "");
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

TEST(SqliteStoreOpen, PreviousEncodingIsReadAsItIsAndUpgradedInPlaceByAWriter) {
  md::testing::TempDir dir;
  const auto path = dir / "store.db";
  {
    md::Storage storage(path);
    md::Session s(storage);
    inc(1);
  }
  const std::string encoding = "SELECT value FROM meta WHERE key = 'encoding'";
  ASSERT_EQ(md::testing::query(path, encoding), "msgpack-canonical-2");
  sql(path, "UPDATE meta SET value = 'msgpack-canonical-1' WHERE key = 'encoding'; PRAGMA wal_checkpoint(TRUNCATE);");
  {
    md::StorageOptions o;
    o.read_only = true;
    md::Storage reader(path, o);
    EXPECT_EQ(reader.calls_of(inc).size(), 1u);
  }
  EXPECT_EQ(md::testing::query(path, encoding), "msgpack-canonical-1") << "a reader changes nothing";
  {
    md::Storage writer(path);
    EXPECT_EQ(writer.calls_of(inc).size(), 1u);
  }
  EXPECT_EQ(md::testing::query(path, encoding), "msgpack-canonical-2");
  // Another encoding is still refused.
  sql(path, "UPDATE meta SET value = 'msgpack-canonical-0' WHERE key = 'encoding'; PRAGMA wal_checkpoint(TRUNCATE);");
  expect_refused(path, md::Errc::schema_mismatch, "encoding 'msgpack-canonical-0'");
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
  // Closed, a read-only storage leaves exactly the files it found (SQLite's -wal and -shm
  // included), byte-identical.
  EXPECT_EQ(snapshot(dir.path()), before) << "a read-only store must stay byte-identical";
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

TEST(SqliteStoreOpen, CreationLeavesNoTemporaryAndRemovesThoseOfKilledCreators) {
  // A new store is written as `.<name>.new-<pid>-<clock>` and linked into place; a creator killed
  // meanwhile leaves its temporary files, which the next creation removes.
  md::testing::TempDir dir;
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  const std::string killed = ".store.db.new-" + std::to_string(dead) + "-12345";
  const std::string running = ".store.db.new-" + std::to_string(::getpid()) + "-1";  // a creator still at work
  for (const auto& name : {killed, killed + "-journal", running, std::string(".store.db.new-x"),
                           std::string(".other.db.new-") + std::to_string(dead) + "-1"})
    write_file(dir / name, "partial");
  {
    md::Storage storage(dir / "store.db");
    md::Session s(storage);
    inc(1);
  }
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.insert(e.path().filename().string());
  // (store.db.claims: the claims of new calls, storage-format.md 3.9.)
  EXPECT_EQ(names, (std::set<std::string>{"store.db", "store.db.claims", running, ".store.db.new-x",
                                          ".other.db.new-" + std::to_string(dead) + "-1"}));
  md::Storage storage(dir / "store.db");
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
