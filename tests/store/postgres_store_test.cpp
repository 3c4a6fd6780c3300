// The PostgreSQL backend where it differs from SQLite (the shared suites run on it too, through
// support/backends.hpp): what it refuses to open and how it says so, values in pieces, a lost
// connection in the middle of a session, several writers of the same calls at once.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mandala/mandala.hpp"
#include "store/postgres/pg_store.hpp"
#include "store/store.hpp"
#include "support/integrity.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;
namespace mt = mandala::testing;

namespace {

const auto twice = md::op("pg_twice", {"x"}, [](int x) { return 2 * x; });
const auto blob = md::op("pg_blob", {"n"}, [](std::int64_t n) {
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>((i * 2654435761u) >> 13);
  return bytes;
});

class Postgres : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto server = mt::postgres_server_url();
    if (!server) {
      if (mt::postgres_required()) FAIL() << mt::postgres_server_hint();
      GTEST_SKIP() << mt::postgres_server_hint();
    }
    m_db.emplace(*server);
  }
  [[nodiscard]] const std::string& location() const { return m_db->location(); }
  /// A connection of its own to the test's database.
  [[nodiscard]] mt::PostgresConnection admin() const { return mt::PostgresConnection(location()); }

  /// The error opening the store gives (fails the test when it opens).
  md::Error open_error(const std::string& where, md::StorageOptions options = {}) {
    try {
      md::Storage s(where, options);
    } catch (const md::Error& e) {
      return e;
    }
    ADD_FAILURE() << "the store at " << where << " opened";
    return md::Error(md::Errc::io, "");
  }

  std::optional<mt::TempDatabase> m_db;
};

TEST_F(Postgres, AStoreIsCreatedInAnEmptyDatabaseAndKeepsItsCalls) {
  {
    md::Storage s(location());
    md::Session session(s);
    for (int x = 0; x < 10; ++x) twice(x);
  }
  md::Storage s(location());
  EXPECT_EQ(s.stats().calls, 10u);
  EXPECT_EQ(s.info().path, std::filesystem::path(location()));
  const auto before = s.counters().executed;
  {
    md::Session session(s);
    EXPECT_EQ(*twice(7), 14);
  }
  EXPECT_EQ(s.counters().executed, before);
  EXPECT_EQ(admin().query("SELECT value FROM mandala_meta WHERE key = 'format'"), "mandala-store");
}

TEST_F(Postgres, AnotherApplicationsDatabaseIsRefusedAndLeftAlone) {
  admin().query("CREATE TABLE customers(id int PRIMARY KEY, name text); INSERT INTO customers VALUES (1, 'ada')");
  const auto e = open_error(location());
  EXPECT_EQ(e.code(), md::Errc::foreign_database);
  EXPECT_NE(std::string(e.what()).find("another application"), std::string::npos) << e.what();
  EXPECT_EQ(admin().query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "1");
  EXPECT_EQ(admin().query("SELECT name FROM customers"), "ada");
}

TEST_F(Postgres, AStoreOfANewerSchemaAsksForANewerMandala) {
  { md::Storage s(location()); }
  admin().query("UPDATE mandala_meta SET value = '99' WHERE key = 'schema_version'");
  const auto e = open_error(location());
  EXPECT_EQ(e.code(), md::Errc::schema_mismatch);
  EXPECT_NE(std::string(e.what()).find("newer mandala"), std::string::npos) << e.what();
}

TEST_F(Postgres, AStoreOfThePreviousEncodingIsReadAsItIsAndUpgradedInPlaceByAWriter) {
  {
    md::Storage s(location());
    md::Session session(s);
    twice(3);
  }
  const std::string encoding = "SELECT value FROM mandala_meta WHERE key = 'encoding'";
  ASSERT_EQ(admin().query(encoding), "msgpack-canonical-2");
  admin().query("UPDATE mandala_meta SET value = 'msgpack-canonical-1' WHERE key = 'encoding'");
  {
    md::StorageOptions options;
    options.read_only = true;
    md::Storage reader(location(), options);
    EXPECT_EQ(reader.stats().calls, 1u);
  }
  EXPECT_EQ(admin().query(encoding), "msgpack-canonical-1");
  { md::Storage writer(location()); }
  EXPECT_EQ(admin().query(encoding), "msgpack-canonical-2");
  admin().query("UPDATE mandala_meta SET value = 'msgpack-canonical-0' WHERE key = 'encoding'");
  EXPECT_EQ(open_error(location()).code(), md::Errc::schema_mismatch);
}

TEST_F(Postgres, AMissingDatabaseOrUserIsNamedWithWhatToDo) {
  const auto server = *mt::postgres_server_url();
  const auto missing = open_error(mt::postgres_database_url(server, "no_such_database_here"));
  EXPECT_EQ(missing.code(), md::Errc::not_found);
  EXPECT_NE(std::string(missing.what()).find("createdb"), std::string::npos) << missing.what();
  // Another user name: the server knows no such role.
  std::string url = location();
  url.replace(url.find("://") + 3, url.find('@') - url.find("://") - 3, "nobody_here:secret");
  const auto user = open_error(url);
  EXPECT_EQ(user.code(), md::Errc::io);
  EXPECT_NE(std::string(user.what()).find("user name and password"), std::string::npos) << user.what();
  EXPECT_EQ(std::string(user.what()).find("secret"), std::string::npos) << user.what();
}

TEST_F(Postgres, AReadOnlyOpenOfAnEmptyDatabaseCreatesNothing) {
  md::StorageOptions options;
  options.read_only = true;
  const auto e = open_error(location(), options);
  EXPECT_EQ(e.code(), md::Errc::not_found);
  EXPECT_EQ(admin().query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0");
  { md::Storage s(location()); }
  md::Storage reader(location(), options);
  try {
    (void)reader.call(twice, 1);  // flushed at once: a new call cannot be recorded here
    ADD_FAILURE() << "a read-only store recorded a call";
  } catch (const md::Error& refused) {
    EXPECT_NE(std::string(refused.what()).find("read-only"), std::string::npos) << refused.what();
  }
}

TEST_F(Postgres, AnOpenThatMayNotCreateLeavesAnEmptyDatabaseEmpty) {
  md::StorageOptions options;
  options.create = false;
  const auto e = open_error(location(), options);
  EXPECT_EQ(e.code(), md::Errc::not_found);
  EXPECT_NE(std::string(e.what()).find("none is created"), std::string::npos) << e.what();
  EXPECT_EQ(admin().query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0");
  { md::Storage s(location()); }
  md::Storage s(location(), options);  // a store there now: it opens
  EXPECT_EQ(s.stats().calls, 0u);
}

TEST_F(Postgres, ValuesLargerThanAPieceAreStoredInPiecesAndReadBackWhole) {
  // 150 MiB: three pieces of 64 MiB (docs/storage-format.md 4.2).
  const std::int64_t n = std::int64_t{150} << 20;
  md::Id hid;
  {
    md::Storage s(location());
    md::Session session(s);
    hid = blob(n).hid();
  }
  EXPECT_EQ(admin().query("SELECT max(chunks) FROM mandala_values"), "3");
  EXPECT_EQ(admin().query("SELECT count(*) FROM mandala_value_chunks"), "3");
  md::Storage s(location());
  const auto ref = s.ref(hid);
  ASSERT_TRUE(ref);
  const auto bytes = ref->as<std::vector<std::uint8_t>>().get();
  ASSERT_EQ(bytes.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(bytes[12345], static_cast<std::uint8_t>((12345 * 2654435761u) >> 13));
  const auto report = s.check_integrity();
  EXPECT_TRUE(report.ok()) << mt::describe(report.problems);
  // A missing piece is damage, named as such.
  admin().query("DELETE FROM mandala_value_chunks WHERE n = 1");
  md::Storage damaged(location());
  const auto bad = damaged.check_integrity();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.problems.front().kind, "value_mismatch");
}

TEST_F(Postgres, ALostConnectionIsReconnectedAndThePendingCallsStored) {
  md::Storage s(location());
  {
    md::Session session(s);
    for (int x = 0; x < 5; ++x) twice(x);
  }
  {
    md::Session session(s);
    for (int x = 5; x < 10; ++x) twice(x);
    // Every connection of the store's but the admin's is ended by the server meanwhile.
    auto a = admin();
    EXPECT_NE(a.query("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                      "current_database() AND pid <> pg_backend_pid()) t"),
              "0");
  }
  EXPECT_EQ(s.stats().calls, 10u);
  const auto report = s.check_integrity();
  EXPECT_TRUE(report.ok()) << mt::describe(report.problems);
}

TEST_F(Postgres, AServerThatIsGoneFailsTheFlushClearlyAndKeepsTheCallsPending) {
  md::StorageOptions options;
  options.lock_timeout = std::chrono::milliseconds(500);
  md::Storage s(location(), options);
  md::Session session(s);
  twice(1);
  // The database is dropped under the store (its connection ended): reconnecting fails.
  m_db.reset();
  try {
    s.flush();
    ADD_FAILURE() << "a flush into a dropped database succeeded";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::io);
    EXPECT_NE(std::string(e.what()).find("could not reconnect"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("stays pending"), std::string::npos) << e.what();
  }
  EXPECT_THROW(session.close(), md::Error);  // the calls are still pending: the same failure
}

TEST_F(Postgres, WritersOfTheSameCallsAtOnceStoreEachOnce) {
  { md::Storage s(location()); }
  constexpr int writers = 6;
  constexpr int calls = 300;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      try {
        md::StorageOptions options;
        options.flush_every_calls = 37;  // many overlapping flushes
        md::Storage s(location(), options);
        md::Session session(s);
        // Each writer goes its own way through the same calls.
        for (int i = 0; i < calls; ++i) twice(w % 2 == 0 ? i : calls - 1 - i);
      } catch (const std::exception& e) {
        ++failures;
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  md::Storage s(location());
  EXPECT_EQ(s.stats().calls, static_cast<std::uint64_t>(calls));
  EXPECT_EQ(s.calls_of("pg_twice").size(), static_cast<std::size_t>(calls));
  EXPECT_EQ(admin().query("SELECT count(*) FROM mandala_calls"), std::to_string(calls));
  const auto report = s.check_integrity();
  EXPECT_TRUE(report.ok()) << mt::describe(report.problems);
}

/// Two stores on the test's database, as two processes would have them.
struct TwoStores {
  explicit TwoStores(const std::string& location) {
    md::store::StoreOptions options;
    options.create = true;
    holder = md::store::open_postgres_store(location, location, options);
    waiter = md::store::open_postgres_store(location, location, options);
  }
  std::unique_ptr<md::store::Store> holder;
  std::unique_ptr<md::store::Store> waiter;
};

md::Id key_of(int i) { return md::detail::content_id(md::encode_value(i)); }

TEST_F(Postgres, AReleasedClaimWakesItsWaiterAtOnce) {
  TwoStores stores(location());
  ASSERT_TRUE(stores.waiter->announces_releases());
  const auto owner = key_of(-1);
  const auto key = key_of(1);
  const auto other = key_of(2);
  ASSERT_TRUE(stores.holder->try_claim(key, owner, std::chrono::minutes(1)));
  ASSERT_TRUE(stores.holder->try_claim(other, owner, std::chrono::minutes(1)));
  const auto since = stores.waiter->releases_seen();
  EXPECT_FALSE(stores.waiter->try_claim(key, key_of(-2), std::chrono::minutes(1)));

  // A release of another key does not wake a waiter on `key` (it waits its whole time)...
  stores.holder->release_claims(owner, std::span<const md::Id>(&other, 1));
  EXPECT_FALSE(stores.waiter->await_release(key, since, std::chrono::milliseconds(300)));
  // ...the release of `key` does, long before the minute it would wait otherwise, also when it
  // came before the wait began (`since` was taken before).
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stores.holder->release_claims(owner, std::span<const md::Id>(&key, 1));
  });
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(stores.waiter->await_release(key, since, std::chrono::minutes(1)));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  release.join();
  EXPECT_TRUE(stores.waiter->await_release(key, since, std::chrono::milliseconds(0)));
  // What was seen is not seen again: a wait from now on waits.
  EXPECT_FALSE(stores.waiter->await_release(key, stores.waiter->releases_seen(), std::chrono::milliseconds(100)));
  EXPECT_TRUE(stores.waiter->try_claim(key, key_of(-2), std::chrono::minutes(1)));
}

TEST_F(Postgres, ReleasesOfManyKeysAreAnnouncedInPieces) {
  TwoStores stores(location());
  const auto owner = key_of(-1);
  std::vector<md::Id> keys;
  for (int i = 0; i < 1000; ++i) keys.push_back(key_of(i));
  for (const auto& k : keys) ASSERT_TRUE(stores.holder->try_claim(k, owner, std::chrono::minutes(1)));
  const auto since = stores.waiter->releases_seen();
  stores.holder->release_claims(owner, keys);  // 1,000 keys: five announcements
  for (const auto& k : keys) ASSERT_TRUE(stores.waiter->await_release(k, since, std::chrono::seconds(30))) << k.hex();
  EXPECT_EQ(stores.waiter->releases_seen(), since + 5);
}

TEST_F(Postgres, AListenerWhoseConnectionEndsWakesItsWaitersAndListensAgain) {
  TwoStores stores(location());
  const auto owner = key_of(-1);
  const auto key = key_of(1);
  ASSERT_TRUE(stores.holder->try_claim(key, owner, std::chrono::minutes(1)));
  const auto since = stores.waiter->releases_seen();
  // The server ends the listening connection: what it would have heard meanwhile is lost, so
  // its waiters are woken to look for themselves.
  admin().query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'");
  EXPECT_TRUE(stores.waiter->await_release(key, since, std::chrono::seconds(30)));
  // Listening again: a later release wakes a later waiter.
  const auto again = stores.waiter->releases_seen();
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    stores.holder->release_claims(owner, std::span<const md::Id>(&key, 1));
  });
  EXPECT_TRUE(stores.waiter->await_release(key, again, std::chrono::seconds(30)));
  release.join();
}

}  // namespace

namespace {

/// A PostgreSQL server of the test's own (scripts/postgres-server), stopped by the destructor.
class OwnServer {
 public:
  explicit OwnServer(std::filesystem::path dir) : m_dir(std::move(dir)) {
    if (std::system(command("start").c_str()) != 0) throw std::runtime_error("could not start a server");
    std::ifstream in(m_dir / "url");
    std::getline(in, m_url);
  }
  ~OwnServer() { (void)std::system(command("stop").c_str()); }
  OwnServer(const OwnServer&) = delete;
  OwnServer& operator=(const OwnServer&) = delete;
  void restart() const {
    if (std::system(command("restart").c_str()) != 0) throw std::runtime_error("could not restart the server");
  }
  [[nodiscard]] const std::string& url() const { return m_url; }

 private:
  [[nodiscard]] std::string command(const char* verb) const {
    return std::string("'") + MANDALA_POSTGRES_SERVER_SCRIPT + "' " + verb + " '" + m_dir.string() + "' 2>/dev/null";
  }
  std::filesystem::path m_dir;
  std::string m_url;
};

}  // namespace

TEST(PostgresRestart, AServerRestartedUnderAWriterLosesNothing) {
  if (!mt::postgres_server_url() && !mt::postgres_required()) GTEST_SKIP() << mt::postgres_server_hint();
  mt::TempDir dir;
  OwnServer server(dir / "server");
  mt::PostgresConnection(mt::postgres_database_url(server.url(), "postgres")).query("CREATE DATABASE restarted");
  const auto location = mt::postgres_database_url(server.url(), "restarted");
  md::StorageOptions options;
  options.flush_every_calls = 50;
  constexpr int calls = 1500;
  md::Storage storage(location, options);
  std::atomic<bool> done{false};
  std::atomic<int> restarts{0};
  std::thread admin([&] {
    // Two restarts while the writer runs (each ends its connection: lookups and flushes reconnect).
    for (int i = 0; i < 2 && !done; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
      server.restart();
      ++restarts;
    }
  });
  int made = 0;
  {
    // Calls go on until both restarts have happened (and at least `calls` were made).
    md::Session session(storage);
    while ((made < calls || restarts < 2) && made < 200'000) {
      twice(made++);
      if (made % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  done = true;
  admin.join();
  EXPECT_EQ(restarts.load(), 2);
  EXPECT_EQ(storage.stats().calls, static_cast<std::uint64_t>(made));
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << mt::describe(report.problems);
}
