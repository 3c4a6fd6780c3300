// Concurrency: processes and threads running overlapping workloads on one store file never see
// an error for lock contention, never record a call twice and lose nothing; a lock held longer
// than StorageOptions::lock_timeout gives a clear error and nothing is lost.

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mandala/mandala.hpp"
#include "process.hpp"
#include "support/files.hpp"
#include "support/integrity.hpp"
#include "support/temp_dir.hpp"
#include "workload.hpp"

namespace md = mandala;
namespace rel = mandala::reliability;
namespace fs = std::filesystem;

namespace {

/// Many small transactions: as much lock contention as possible.
md::StorageOptions contention_options() {
  auto o = rel::workload_options();
  o.flush_every_calls = 16;
  return o;
}

/// The store holds exactly the calls of steps [0, steps), each once, with the right values, and
/// retracing them executes nothing.
void expect_exactly_steps(md::Storage& storage, std::int64_t steps, std::int64_t blob_every) {
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  for (const auto& w : report.warnings) EXPECT_NE(w.kind, "detached_ref") << w.message;
  EXPECT_EQ(report.calls, rel::calls_of_steps(steps, blob_every));
  EXPECT_EQ(storage.calls_of("rel_sq").size(), static_cast<std::size_t>(steps));
  EXPECT_EQ(storage.calls_of("rel_add").size(), static_cast<std::size_t>(steps));
  storage.allow_new_calls(false);
  const auto executed = storage.counters().executed;
  {
    md::Session s(storage);
    for (std::int64_t x = 0; x < steps; ++x) {
      auto z = rel::run_step(x, blob_every);
      if (x % 37 == 0) {
        EXPECT_EQ(z.get(), rel::expected_add(x));
      }
    }
  }
  EXPECT_EQ(storage.counters().executed, executed) << "retracing stored steps must execute nothing";
  storage.allow_new_calls(true);
}

/// Runs `threads` threads, thread t running steps [t*count/2, t*count/2 + count) on `storage_of(t)`.
template <class StorageOf>
void run_threads(int threads, std::int64_t count, std::int64_t blob_every, StorageOf&& storage_of) {
  std::vector<std::thread> pool;
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      try {
        md::Storage& storage = storage_of(t);
        md::Session session(storage);
        const std::int64_t begin = t * count / 2;
        for (std::int64_t x = begin; x < begin + count; ++x)
          if (rel::run_step(x, blob_every).get() != rel::expected_add(x)) throw std::runtime_error("wrong value");
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  for (auto& th : pool) th.join();
  for (const auto& e : errors) EXPECT_EQ(e, "") << "no error may reach a thread";
}

TEST(Concurrency, ThreadsShareOneFileStorage) {
  md::testing::TempDir dir;
  constexpr int threads = 8;
  constexpr std::int64_t count = 300;
  md::Storage storage(dir / "store.db", contention_options());
  run_threads(threads, count, 50, [&](int) -> md::Storage& { return storage; });
  expect_exactly_steps(storage, (threads - 1) * count / 2 + count, 50);
}

TEST(Concurrency, ThreadsShareOneMemoryStorage) {
  constexpr int threads = 8;
  constexpr std::int64_t count = 300;
  md::Storage storage;
  run_threads(threads, count, 0, [&](int) -> md::Storage& { return storage; });
  expect_exactly_steps(storage, (threads - 1) * count / 2 + count, 0);
}

TEST(Concurrency, ThreadsWithTheirOwnStorageOnOneFile) {
  // Separate connections in one process: SQLite's locks between them, as between processes.
  md::testing::TempDir dir;
  constexpr int threads = 4;
  constexpr std::int64_t count = 300;
  std::vector<std::unique_ptr<md::Storage>> storages;
  for (int t = 0; t < threads; ++t)
    storages.push_back(std::make_unique<md::Storage>(dir / "store.db", contention_options()));
  run_threads(threads, count, 50, [&](int t) -> md::Storage& { return *storages[static_cast<std::size_t>(t)]; });
  storages.clear();
  md::Storage storage(dir / "store.db", contention_options());
  expect_exactly_steps(storage, (threads - 1) * count / 2 + count, 50);
}

TEST(Concurrency, FourProcessesTwoThreadsEach) {
  md::testing::TempDir dir;
  constexpr int processes = 4;
  constexpr int threads = 2;
  constexpr std::int64_t count = 600;
  constexpr std::int64_t blob_every = 100;
  const fs::path store = dir / "store.db";
  std::vector<std::unique_ptr<rel::Child>> children;
  for (int p = 0; p < processes; ++p)
    children.push_back(std::make_unique<rel::Child>(
        MANDALA_WORKLOAD,
        std::vector<std::string>{"threads", store.string(), std::to_string(p * count), std::to_string(count),
                                 std::to_string(threads), std::to_string(blob_every)},
        dir / ("out" + std::to_string(p)), dir / ("err" + std::to_string(p))));
  std::uint64_t executed = 0;
  for (int p = 0; p < processes; ++p) {
    EXPECT_EQ(children[static_cast<std::size_t>(p)]->wait(), 0);
    EXPECT_EQ(md::testing::read_file(dir / ("err" + std::to_string(p))), "") << "no error may reach a process";
    std::istringstream out(md::testing::read_file(dir / ("out" + std::to_string(p))));
    std::string word;
    std::uint64_t n = 0;
    out >> word >> n;
    EXPECT_EQ(word, "executed");
    executed += n;
  }
  // Process p covers steps [p*count, p*count + 1.5*count): together [0, (processes + 0.5) * count).
  const std::int64_t steps = processes * count + count / 2;
  EXPECT_GE(executed, rel::calls_of_steps(steps, blob_every));
  md::Storage storage(store, contention_options());
  expect_exactly_steps(storage, steps, blob_every);
}

// ---- another process's drop and cleanup under a live writer (docs/guarantees.md) -------------

/// Runs `mandala_reliability_workload remove STORE OPS...` (drop every call of the ops, then
/// cleanup) to its end; returns how many calls it dropped.
int remove_in_another_process(const fs::path& dir, const fs::path& store, std::vector<std::string> ops) {
  ops.insert(ops.begin(), {"remove", store.string()});
  rel::Child child(MANDALA_WORKLOAD, ops, dir / "remove.out", dir / "remove.err");
  EXPECT_EQ(child.wait(), 0) << md::testing::read_file(dir / "remove.err");
  std::istringstream out(md::testing::read_file(dir / "remove.out"));
  std::string word;
  int dropped = -1;
  out >> word >> dropped;
  std::filesystem::remove(dir / "remove.out");
  return dropped;
}

TEST(CrossProcess, DropAndCleanupUnderALiveWriterLoseNothing) {
  md::testing::TempDir dir;
  const fs::path store = dir / "store.db";
  int incs = 0;
  const auto inc = md::op("xp_inc", {"x"}, [&](int x) {
    ++incs;
    return x + 1;
  });
  const auto add = md::op("xp_add", {"x", "y"}, [](int x, int y) { return x + y; });
  md::Storage writer(store);
  md::Ref<int> y;
  {
    md::Session s(writer);
    y = inc(41);
  }
  // Between two flushes of the writer.
  ASSERT_EQ(remove_in_another_process(dir.path(), store, {"xp_inc"}), 1);
  {
    md::Session s(writer);
    EXPECT_EQ(*add(y, 1), 43);
    EXPECT_EQ(*inc(41), 42);
  }
  EXPECT_EQ(incs, 2) << "the dropped call is computed again, not reused from the writer's caches";
  EXPECT_EQ(writer.calls_of(inc).size(), 1u);
  // While the writer's calls are pending: nothing uses y's value any more, so it is removed.
  {
    md::Session s(writer);
    auto z = add(y, 2);
    ASSERT_EQ(remove_in_another_process(dir.path(), store, {"xp_inc", "xp_add"}), 2);
    EXPECT_EQ(*z, 44);
  }
  auto report = writer.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  {
    md::Storage reopened(store);
    report = reopened.check_integrity();
    EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
    const auto adds = reopened.calls_of(add);
    ASSERT_EQ(adds.size(), 1u);
    EXPECT_EQ(adds[0].input("x")->as<int>().get(), 42);
    EXPECT_EQ(adds[0].input("y")->as<int>().get(), 2);
    EXPECT_TRUE(reopened.calls_of(inc).empty());
  }
}

// ---- a read beside a writer (docs/guarantees.md, "Read commands beside writers") ------------

TEST(ReadBesideWriter, CheckStartedBeforeAWriterReportsNoDamage) {
  // What `mandala check STORE &` followed by a writer does: the reader opens a store nobody is
  // writing, then another process appends (its checkpoints rewrite database pages) while the
  // reader checks it again and again. Every check sees one consistent snapshot: no damage.
  md::testing::TempDir dir;
  const fs::path store = dir / "store.db";
  constexpr std::int64_t initial = 2000;
  constexpr std::int64_t appended = 800;
  {
    md::Storage storage(store, rel::workload_options());
    md::Session s(storage);
    for (std::int64_t x = 0; x < initial; ++x) rel::run_step(x, 0);
  }
  auto read_only = rel::workload_options();
  read_only.read_only = true;
  read_only.leave_untouched = true;  // as the mandala command opened stores to read (no effect now)
  std::int64_t steps = initial;
  for (int round = 0; round < 3; ++round) {
    ASSERT_FALSE(fs::exists(store.string() + "-wal")) << "each round starts with nobody writing";
    md::Storage reader(store, read_only);
    const auto first = reader.check_integrity();
    ASSERT_TRUE(first.ok()) << md::testing::describe(first.problems);
    rel::Child writer(MANDALA_WORKLOAD,
                      {"threads", store.string(), std::to_string(steps), std::to_string(appended), "1", "0"},
                      dir / "writer.out", dir / "writer.err");
    int status = -1;
    int checks = 0;
    for (bool done = false; !done; ++checks) {
      done = writer.poll(status);
      try {
        const auto report = reader.check_integrity();
        EXPECT_TRUE(report.ok()) << "round " << round << ", check " << checks << ": "
                                 << md::testing::describe(report.problems);
        EXPECT_GE(report.calls, rel::calls_of_steps(steps, 0));
        EXPECT_LE(report.calls, rel::calls_of_steps(steps + appended, 0));
      } catch (const md::Error& e) {
        ADD_FAILURE() << "round " << round << ", check " << checks << ": " << e.what();
      }
      if (::testing::Test::HasFailure()) break;
    }
    if (::testing::Test::HasFailure()) break;
    EXPECT_EQ(status, 0) << md::testing::read_file(dir / "writer.err");
    EXPECT_GE(checks, 2);
    std::cout << "round " << round << ": " << checks << " checks while another process wrote\n";
    steps += appended;
    EXPECT_EQ(reader.check_integrity().calls, rel::calls_of_steps(steps, 0)) << "the next check sees every write";
  }
  if (::testing::Test::HasFailure()) return;
  md::Storage storage(store, contention_options());
  expect_exactly_steps(storage, steps, 0);
}

TEST(ReadBesideWriter, AReaderClosedAfterTheWriterLeavesNoLogFiles) {
  // The writer closes while the reader is open, so it cannot remove the log; the reader, closed
  // last, has it removed as the writer would have.
  md::testing::TempDir dir;
  const fs::path store = dir / "store.db";
  auto writer = std::make_unique<md::Storage>(store, rel::workload_options());
  {
    md::Session s(*writer);
    for (std::int64_t x = 0; x < 50; ++x) rel::run_step(x, 0);
  }
  ASSERT_GT(fs::file_size(store.string() + "-wal"), 0u) << "the writer's log holds its writes";
  auto read_only = rel::workload_options();
  read_only.read_only = true;
  {
    md::Storage reader(store, read_only);
    EXPECT_EQ(reader.stats().calls, rel::calls_of_steps(50, 0));
    {
      md::Session s(*writer);
      for (std::int64_t x = 50; x < 100; ++x) rel::run_step(x, 0);
    }
    writer.reset();
    EXPECT_TRUE(fs::exists(store.string() + "-wal")) << "the reader is open: the writer leaves the log";
    EXPECT_EQ(reader.stats().calls, rel::calls_of_steps(100, 0));
  }
  EXPECT_FALSE(fs::exists(store.string() + "-wal"));
  EXPECT_FALSE(fs::exists(store.string() + "-shm"));
  md::Storage storage(store, contention_options());
  expect_exactly_steps(storage, 100, 0);
}

/// Holds the store's write lock from another connection for `hold`.
class LockHolder {
 public:
  LockHolder(const fs::path& db, std::chrono::milliseconds hold) {
    EXPECT_EQ(sqlite3_open(db.c_str(), &m_db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(m_db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    m_thread = std::thread([this, hold] {
      std::this_thread::sleep_for(hold);
      sqlite3_exec(m_db, "COMMIT", nullptr, nullptr, nullptr);
    });
  }
  ~LockHolder() {
    m_thread.join();
    sqlite3_close(m_db);
  }
  LockHolder(const LockHolder&) = delete;
  LockHolder& operator=(const LockHolder&) = delete;

 private:
  sqlite3* m_db = nullptr;
  std::thread m_thread;
};

TEST(Contention, AFlushWaitsForAnotherWriter) {
  md::testing::TempDir dir;
  md::Storage storage(dir / "store.db", contention_options());
  md::Session session(storage);
  rel::run_step(1, 0);
  const auto start = std::chrono::steady_clock::now();
  {
    LockHolder holder(dir / "store.db", std::chrono::milliseconds(800));
    EXPECT_NO_THROW(storage.flush());
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
  EXPECT_EQ(storage.stats().calls, 2u);
}

TEST(Contention, ALockHeldPastTheTimeoutIsAClearErrorAndLosesNothing) {
  md::testing::TempDir dir;
  auto options = contention_options();
  options.lock_timeout = std::chrono::milliseconds(200);
  md::Storage storage(dir / "store.db", options);
  md::Session session(storage);
  rel::run_step(1, 0);
  {
    LockHolder holder(dir / "store.db", std::chrono::milliseconds(1500));
    const auto start = std::chrono::steady_clock::now();
    try {
      storage.flush();
      ADD_FAILURE() << "the flush must give up";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::io);
      EXPECT_NE(std::string(e.what()).find("lock"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("lock_timeout"), std::string::npos) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1200)) << "the wait is bounded";
  }
  storage.flush();  // the pending calls were kept
  EXPECT_EQ(storage.stats().calls, 2u);
}

}  // namespace
