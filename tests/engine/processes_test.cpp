// Ids and stored calls across processes: the same program in two processes gives the same ids,
// and a new process reuses what an earlier one stored (content reuse included).

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <string>

#include "mandala/mandala.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;

namespace {

std::atomic<int> runs{0};
const auto inc = md::op("inc", {"x"}, [](int x) {
  ++runs;
  return x + 1;
});
const auto pair_up = md::op("pair_up", {"a", "b"}, [](const std::string& a, int b) { return std::pair{a, b}; });

/// The ids of a fixed program, one hex id per line.
std::string program_ids(md::Storage& storage) {
  md::Session s(storage);
  std::string out;
  auto y = inc(1);
  auto z = inc(y);
  auto p = pair_up("k", z);
  for (const md::AnyRef& r : {md::AnyRef(y), md::AnyRef(z), md::AnyRef(p)})
    out += r.cid().hex() + " " + r.hid().hex() + "\n";
  return out;
}

/// Runs `child` in a forked process; returns its exit status.
template <class F>
int in_child(F&& child) {
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = child();
    } catch (...) {
      code = 2;
    }
    _exit(code);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(Processes, SameProgramSameIdsInTwoProcesses) {
  md::testing::TempDir dir;
  const auto ids_file = dir / "child_ids.txt";
  ASSERT_EQ(in_child([&] {
              md::Storage storage;  // in memory: nothing shared but the code
              std::ofstream(ids_file) << program_ids(storage);
              return 0;
            }),
            0);
  md::Storage storage;
  const std::string mine = program_ids(storage);
  const std::string theirs = md::testing::read_file(ids_file);
  EXPECT_EQ(mine, theirs);
  EXPECT_EQ(std::count(mine.begin(), mine.end(), '\n'), 3);
}

TEST(Processes, NewProcessReusesStoredCalls) {
  md::testing::TempDir dir;
  const auto db = dir / "shared.db";
  ASSERT_EQ(in_child([&] {
              md::Storage storage(db);
              md::Session s(storage);
              auto y = inc(1);
              inc(y);  // content: inc(2)
              return storage.counters().executed == 2 ? 0 : 3;
            }),
            0);
  runs = 0;
  md::Storage storage(db);
  md::Session s(storage);
  auto z = inc(2);  // content-equal to the child's inc(inc(1))
  EXPECT_EQ(*z, 3);
  auto y = inc(1);
  EXPECT_FALSE(y.in_memory());
  EXPECT_EQ(runs, 0);
  EXPECT_EQ(storage.counters().executed, 0u);
  EXPECT_EQ(storage.counters().reused_by_content, 1u);
}

TEST(Processes, TwoProcessesWriteOneStore) {
  md::testing::TempDir dir;
  const auto db = dir / "shared.db";
  { md::Storage init(db); }
  auto worker = [&](int offset) {
    return in_child([&] {
      md::Storage storage(db);
      md::Session s(storage);
      for (int i = 0; i < 300; ++i) inc(offset + i);
      return 0;
    });
  };
  const pid_t pid = fork();
  if (pid == 0) _exit(worker(0));
  const int mine = worker(150);  // overlapping inputs 150..299
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(mine, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  md::Storage storage(db);
  EXPECT_EQ(storage.calls_of(inc).size(), 450u);
}

}  // namespace
