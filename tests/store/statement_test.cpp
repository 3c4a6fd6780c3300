// The RAII layer over SQLite (src/store/sqlite/sqlite.cpp): every bind, step and reset that SQLite
// refuses throws a mandala::Error; none leaves a parameter silently NULL.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>
#include <vector>

#include "mandala/error.hpp"
#include "store/sqlite/sqlite.hpp"

namespace md = mandala;
namespace sql = mandala::store::sql;

namespace {

class Statements : public ::testing::Test {
 protected:
  void SetUp() override {
    sqlite3* raw = nullptr;
    ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
    m_db.reset(raw);
    sqlite3_limit(db(), SQLITE_LIMIT_LENGTH, limit);
    sql::exec(db(), "CREATE TABLE t(k INTEGER PRIMARY KEY, v)");
  }
  sqlite3* db() { return m_db.get(); }

  /// The rows of t as (k, whether v is NULL).
  std::vector<std::pair<std::int64_t, bool>> rows() {
    sql::Statement st(db(), "SELECT k, v IS NULL FROM t ORDER BY k");
    std::vector<std::pair<std::int64_t, bool>> out;
    while (st.step()) out.emplace_back(st.int64(0), st.int64(1) != 0);
    return out;
  }

  static constexpr int limit = 1000;
  sql::DbHandle m_db;
};

/// Runs `work` expecting an Error whose message contains `fragment`.
template <class F>
void expect_error(const std::string& fragment, F&& work) {
  try {
    work();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::io) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST_F(Statements, BlobAboveTheLengthLimitIsRefusedNotBoundAsNull) {
  sql::Statement insert(db(), "INSERT INTO t(k, v) VALUES(?1, ?2)");
  const std::vector<std::byte> big(limit + 1);
  expect_error("binding parameter 2", [&] { insert.bind(1, std::int64_t{1}).bind_blob(2, big).run(); });
  expect_error("length limit (1000 bytes)", [&] { insert.bind(1, std::int64_t{1}).bind_blob(2, big).run(); });
  EXPECT_TRUE(rows().empty()) << "no row with a NULL value in place of the refused blob";
  // The statement works again afterwards, with fresh parameters.
  const std::vector<std::byte> fits(limit - 100);
  insert.bind(1, std::int64_t{2}).bind_blob(2, fits).run();
  EXPECT_EQ(rows(), (std::vector<std::pair<std::int64_t, bool>>{{2, false}}));
}

TEST_F(Statements, TextAboveTheLengthLimitIsRefused) {
  sql::Statement insert(db(), "INSERT INTO t(k, v) VALUES(?1, ?2)");
  const std::string big(limit + 1, 'x');
  expect_error("binding parameter 2", [&] { insert.bind(1, std::int64_t{1}).bind(2, big).run(); });
  EXPECT_TRUE(rows().empty());
}

TEST_F(Statements, ParameterOutOfRangeIsRefused) {
  sql::Statement insert(db(), "INSERT INTO t(k, v) VALUES(?1, ?2)");
  expect_error("binding parameter 3", [&] { insert.bind(1, std::int64_t{1}).bind(3, std::int64_t{5}); });
  expect_error("binding parameter 0", [&] { insert.bind_null(0); });
  md::Id id;
  expect_error("binding parameter 7", [&] { insert.bind(7, id); });
}

TEST_F(Statements, EmptyBlobsAndTextsAreNotNull) {
  sql::Statement insert(db(), "INSERT INTO t(k, v) VALUES(?1, ?2)");
  insert.bind(1, std::int64_t{1}).bind_blob(2, std::span<const std::byte>()).run();
  insert.bind(1, std::int64_t{2}).bind(2, std::string_view()).run();
  EXPECT_EQ(rows(), (std::vector<std::pair<std::int64_t, bool>>{{1, false}, {2, false}}));
}

TEST_F(Statements, AStatementLeftMidQueryIsRewoundByTheNextBind) {
  sql::exec(db(), "INSERT INTO t(k, v) VALUES(1, 'a'), (2, 'b'), (3, 'c')");
  sql::Statement select(db(), "SELECT k FROM t WHERE k >= ?1 ORDER BY k");
  select.bind(1, std::int64_t{1});
  ASSERT_TRUE(select.step());
  EXPECT_EQ(select.int64(0), 1);
  // A reader that stopped here: the next use starts a new query with its own parameter.
  select.bind(1, std::int64_t{3});
  ASSERT_TRUE(select.step());
  EXPECT_EQ(select.int64(0), 3);
  EXPECT_FALSE(select.step());
}

TEST_F(Statements, RowAboveTheLengthLimitFailsTheStepAndTheStatementRecovers) {
  sql::Statement insert(db(), "INSERT INTO t(k, v) VALUES(?1, ?2 || ?3)");
  const std::string half(limit / 2 + 10, 'x');
  expect_error("running a query", [&] { insert.bind(1, std::int64_t{1}).bind(2, half).bind(3, half).run(); });
  insert.bind(1, std::int64_t{2}).bind(2, std::string_view("a")).bind(3, std::string_view("b")).run();
  EXPECT_EQ(rows(), (std::vector<std::pair<std::int64_t, bool>>{{2, false}}));
}

TEST(LengthLimit, TheTestHookLowersTheLimitOfNewConnections) {
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(":memory:", &raw), SQLITE_OK);
  const sql::DbHandle db(raw);
  const auto default_limit = sql::length_limit(db.get());
  EXPECT_GE(default_limit, 1'000'000);
  sql::set_length_limit_for_tests(4096);
  sql::configure_limits(db.get());
  sql::set_length_limit_for_tests(0);
  EXPECT_EQ(sql::length_limit(db.get()), 4096);
}

}  // namespace
