// Store locations (docs/storage-format.md, "Store locations"): the backend a location chooses,
// the file it names, and the errors for locations no backend of this build serves.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "mandala/error.hpp"
#include "mandala/mandala.hpp"
#include "store/store.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = mandala::store;
using mandala::Errc;
using mandala::Error;

/// The message of the Error `location` gives when opened, after checking its code.
std::string refusal(const std::string& location, Errc code = Errc::invalid_argument) {
  try {
    (void)st::open_store(location, {});
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << location << " was opened";
  return {};
}

TEST(Location, PlainPathsAndSqliteUrlsNameFiles) {
  EXPECT_EQ(st::sqlite_path(""), fs::path());
  EXPECT_EQ(st::sqlite_path("runs/store.db"), fs::path("runs/store.db"));
  EXPECT_EQ(st::sqlite_path("/data/store.db"), fs::path("/data/store.db"));
  EXPECT_EQ(st::sqlite_path("sqlite:///data/store.db"), fs::path("/data/store.db"));
  EXPECT_EQ(st::sqlite_path("SQLite:///data/store.db"), fs::path("/data/store.db"));
  EXPECT_EQ(st::sqlite_path("sqlite://localhost/data/store.db"), fs::path("/data/store.db"));
  EXPECT_EQ(st::sqlite_path("sqlite:runs/store.db"), fs::path("runs/store.db"));
  EXPECT_EQ(st::sqlite_path("sqlite:///my%20runs/a%2Bb.db"), fs::path("/my runs/a+b.db"));
  // A colon without `//` is part of a file name, except after `sqlite`.
  EXPECT_EQ(st::sqlite_path("a:b.db"), fs::path("a:b.db"));
  EXPECT_EQ(st::sqlite_path("./postgresql://x"), fs::path("./postgresql://x"));
}

TEST(Location, OtherBackendsAreNotSqlite) {
  EXPECT_EQ(st::sqlite_path("postgresql://host/db"), std::nullopt);
  EXPECT_EQ(st::sqlite_path("postgres://host/db"), std::nullopt);
  EXPECT_EQ(st::sqlite_path("s3://bucket/key"), std::nullopt);
}

TEST(Location, MalformedSqliteLocationsAreRefusedWithTheFormsToUse) {
  for (const std::string bad : {"sqlite://", "sqlite:///", "sqlite:", "sqlite://otherhost/data/store.db",
                                "sqlite:///store.db?mode=ro", "sqlite:///a%2", "sqlite:///a%zz", "sqlite:///a%00b"}) {
    const auto message = refusal(bad);
    EXPECT_NE(message.find(bad), std::string::npos) << message;
    EXPECT_NE(message.find("sqlite:///ABSOLUTE/PATH"), std::string::npos) << message;
  }
}

TEST(Location, UnknownSchemesAndUnreachableServersAreRefusedWithoutRepeatingPasswords) {
  // Port 1 on loopback: nothing listens there, so the connection is refused at once.
  std::string pg;
  try {
    (void)st::open_store("postgresql://alice:s3cret@127.0.0.1:1/runs", {});
    ADD_FAILURE() << "a server that is not there was reached";
  } catch (const mandala::Error& e) {
    EXPECT_EQ(e.code(), mandala::Errc::io);
    pg = e.what();
  }
  EXPECT_NE(pg.find("cannot connect to the PostgreSQL store"), std::string::npos) << pg;
  EXPECT_NE(pg.find("alice:***@127.0.0.1:1/runs"), std::string::npos) << pg;
  EXPECT_NE(pg.find("check that the server runs"), std::string::npos) << pg;
  EXPECT_EQ(pg.find("s3cret"), std::string::npos) << pg;
  const auto other = refusal("s3://bucket/key");
  EXPECT_NE(other.find("unknown scheme 's3'"), std::string::npos) << other;
}

TEST(Location, AStorageOpenedByUrlIsTheFileItNames) {
  mandala::testing::TempDir dir;
  const fs::path file = dir / "by url.db";
  const auto inc = mandala::op("location_inc", {"x"}, [](int x) { return x + 1; });
  {
    mandala::Storage storage("sqlite://" + (dir.path() / "by%20url.db").string());
    EXPECT_EQ(storage.path(), file);
    mandala::Session session(storage);
    EXPECT_EQ(*inc(1), 2);
  }
  ASSERT_TRUE(fs::exists(file));
  mandala::Storage reopened(file);
  {
    mandala::Session session(reopened);
    EXPECT_EQ(*inc(1), 2);
  }
  EXPECT_EQ(reopened.counters().executed, 0U);
  EXPECT_EQ(reopened.counters().reused(), 1U);
}

}  // namespace
