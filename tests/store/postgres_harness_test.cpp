// The PostgreSQL harness of the tests (tests/support/postgres.hpp): the server of the ctest
// fixture `postgres` (or MANDALA_TEST_POSTGRES) answers, and TempDatabase gives each test a
// database of its own, dropped afterwards.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>

#include "support/postgres.hpp"

namespace mt = mandala::testing;

namespace {

/// The test server's URL; skips (or fails under MANDALA_REQUIRE_POSTGRES=1) without one.
#define MANDALA_REQUIRE_SERVER(url)                                    \
  const auto url##_known = mt::postgres_server_url();                  \
  if (!url##_known) {                                                  \
    if (mt::postgres_required()) FAIL() << mt::postgres_server_hint(); \
    GTEST_SKIP() << mt::postgres_server_hint();                        \
  }                                                                    \
  const std::string url = *url##_known

std::string admin_url(const std::string& server) { return mt::postgres_database_url(server, "postgres"); }

}  // namespace

TEST(PostgresHarness, ServerAnswers) {
  MANDALA_REQUIRE_SERVER(server);
  mt::PostgresConnection c(admin_url(server));
  EXPECT_EQ(c.query("SELECT 1 + 1"), "2");
  const auto version = c.query("SELECT current_setting('server_version_num')::int");
  EXPECT_GE(std::stoi(version), 130000) << "DROP DATABASE ... WITH (FORCE) needs PostgreSQL 13";
  EXPECT_EQ(c.query("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "t");
  if (mt::postgres_server_origin() != "MANDALA_TEST_POSTGRES") {
    // The fixture's throwaway server: loopback only, settings for speed, room for parallel tests.
    EXPECT_EQ(c.query("SHOW fsync"), "off");
    EXPECT_EQ(c.query("SHOW synchronous_commit"), "off");
    EXPECT_EQ(c.query("SHOW listen_addresses"), "127.0.0.1");
    EXPECT_GE(std::stoi(c.query("SHOW max_connections")), 300);
  }
}

TEST(PostgresHarness, TempDatabaseIsCreatedAndDropped) {
  MANDALA_REQUIRE_SERVER(server);
  mt::PostgresConnection admin(admin_url(server));
  std::string name;
  std::unique_ptr<mt::PostgresConnection> still_open;  // outlives the database
  {
    mt::TempDatabase db;
    name = db.name();
    EXPECT_EQ(db.server_url(), server);
    EXPECT_EQ(db.location(), mt::postgres_database_url(server, name));
    EXPECT_EQ(db.location().rfind("postgresql://", 0), 0u) << db.location();
    EXPECT_TRUE(admin.database_exists(name));
    mt::PostgresConnection c(db.location());
    EXPECT_EQ(c.query("SELECT current_database()"), name);
    EXPECT_EQ(c.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), "0") << "a fresh database";
    c.query("CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
    EXPECT_EQ(c.query("SELECT x FROM t"), "7");
    // A connection still open when the database is dropped: WITH (FORCE) closes it.
    still_open = std::make_unique<mt::PostgresConnection>(db.location());
    EXPECT_EQ(still_open->query("SELECT x FROM t"), "7");
  }
  EXPECT_FALSE(admin.database_exists(name));
  EXPECT_THROW(still_open->query("SELECT 1"), std::runtime_error) << "closed by the drop";
}

TEST(PostgresHarness, TheDropSurvivesALostConnection) {
  MANDALA_REQUIRE_SERVER(server);
  mt::PostgresConnection admin(admin_url(server));
  std::string name;
  {
    mt::TempDatabase db(server);
    name = db.name();
    // The server closes this process's other connections (db's own among them).
    EXPECT_EQ(admin.query("SELECT count(pg_terminate_backend(pid, 5000)) > 0 FROM pg_stat_activity WHERE "
                          "application_name = 'mandala-tests/" +
                          std::to_string(::getpid()) + "' AND pid <> pg_backend_pid()"),
              "t");
  }
  EXPECT_FALSE(admin.database_exists(name)) << "dropped through a new connection";
}

TEST(PostgresHarness, TwoTempDatabasesAreDistinct) {
  MANDALA_REQUIRE_SERVER(server);
  mt::TempDatabase a(server);
  mt::TempDatabase b(server);
  EXPECT_NE(a.name(), b.name());
  EXPECT_NE(a.location(), b.location());
  mt::PostgresConnection ca(a.location());
  mt::PostgresConnection cb(b.location());
  ca.query("CREATE TABLE only_in_a (x int)");
  EXPECT_EQ(ca.query("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "1");
  EXPECT_EQ(cb.query("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "0");
}

TEST(PostgresHarness, NamesAreUniqueAcrossProcessesAndRuns) {
  MANDALA_REQUIRE_SERVER(server);
  mt::TempDatabase db(server);
  // mandala_test_PID_COUNTER_RANDOM: the pid and a per-process counter separate concurrent
  // test programs, the random part separates runs of a reused pid.
  EXPECT_EQ(db.name().rfind("mandala_test_" + std::to_string(::getpid()) + "_", 0), 0u) << db.name();
  EXPECT_LE(db.name().size(), 63u) << "PostgreSQL truncates longer names";
}

TEST(PostgresHarness, DatabaseUrlsKeepUserHostPortAndParameters) {
  EXPECT_EQ(mt::postgres_database_url("postgresql://me@127.0.0.1:5432", "x"), "postgresql://me@127.0.0.1:5432/x");
  EXPECT_EQ(mt::postgres_database_url("postgresql://me@h:1/postgres?sslmode=disable", "x"),
            "postgresql://me@h:1/x?sslmode=disable");
  EXPECT_EQ(mt::postgres_database_url("postgres://h?connect_timeout=3", "x"), "postgres://h/x?connect_timeout=3");
  EXPECT_THROW((void)mt::postgres_database_url("host=localhost", "x"), std::runtime_error);
}

TEST(PostgresHarness, AnUnreachableServerFailsClearly) {
  // Port 1 on loopback: nothing listens there.
  const std::string nowhere = "postgresql://mandala@127.0.0.1:1";
  try {
    mt::TempDatabase db(nowhere);
    FAIL() << "created " << db.location();
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("cannot create a database on the PostgreSQL server " + nowhere), std::string::npos) << what;
    EXPECT_NE(what.find("Connection refused"), std::string::npos) << what;
  }
  EXPECT_NE(mt::postgres_server_hint().find("MANDALA_TEST_POSTGRES"), std::string::npos);
  EXPECT_NE(mt::postgres_server_hint().find("scripts/postgres-server"), std::string::npos);
}

// Hundreds of tests each create and drop a database: this prints what one costs.
TEST(PostgresHarness, CreateAndDropTime) {
  MANDALA_REQUIRE_SERVER(server);
  constexpr int n = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) mt::TempDatabase db(server);
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ timing   ] create + drop of one TempDatabase: " << ms / n << " ms (mean of " << n << ")\n";
}
