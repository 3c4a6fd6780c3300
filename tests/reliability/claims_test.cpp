// Each new call computed once (docs/guarantees.md, "Each call computed once"): threads of one
// storage making the same new call wait for the one computing it; processes sharing a store
// claim new calls in it, and a holder that dies or stops loses its claims.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "codec/hash.hpp"
#include "mandala/mandala.hpp"
#include "process.hpp"
#include "store/store.hpp"
#include "support/backends.hpp"
#include "support/integrity.hpp"
#include "support/postgres.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;
namespace rel = mandala::reliability;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int threads = 8;
constexpr std::int64_t calls = 50;

md::Id key_of(const std::string& text) { return md::detail::content_id(std::as_bytes(std::span(text))); }

/// Runs `body(t)` on `n` threads started together; fails the test with any exception.
template <class F>
void on_threads(int n, F&& body) {
  std::barrier start(n);
  std::vector<std::string> errors(static_cast<std::size_t>(n));
  std::vector<std::thread> pool;
  for (int t = 0; t < n; ++t)
    pool.emplace_back([&, t] {
      start.arrive_and_wait();
      try {
        body(t);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < n; ++t) EXPECT_EQ(errors[static_cast<std::size_t>(t)], "") << "thread " << t;
}

class ComputeOnce : public ::testing::TestWithParam<bool> {
 protected:
  /// A private in-memory store, or a file store (claims in the store too).
  std::string location() { return GetParam() ? (m_dir / "store.db").string() : std::string(); }
  md::testing::TempDir m_dir;
};

INSTANTIATE_TEST_SUITE_P(Backends, ComputeOnce, ::testing::Values(false, true),
                         [](const auto& param) { return param.param ? "File" : "Memory"; });

TEST_P(ComputeOnce, ThreadsMakingTheSameNewCallsComputeEachOnce) {
  std::atomic<int> runs{0};
  const auto slow = md::op("once_slow", {"x"}, [&](std::int64_t x) {
    ++runs;
    std::this_thread::sleep_for(2ms);
    return x * 3;
  });
  // Half the threads pass the argument through another op: the same content under another
  // history (found by content, not by history).
  const auto same = md::op("once_same", {"x"}, [](std::int64_t x) { return x; }, {.compute_once = false});
  md::Storage storage(location());
  on_threads(threads, [&](int t) {
    md::Session s(storage);
    for (std::int64_t x = 0; x < calls; ++x) {
      const auto out = t % 2 == 0 ? slow(x) : slow(same(x));
      if (out.get() != 3 * x) throw std::runtime_error("wrong value");
    }
  });
  EXPECT_EQ(runs.load(), calls) << "each new call computed once";
  EXPECT_EQ(storage.calls_of("once_slow").size(), static_cast<std::size_t>(2 * calls))
      << "one call per history: raw inputs and inputs from once_same";
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
}

TEST_P(ComputeOnce, WhenTheComputingThreadThrowsOneWaiterComputesTheCall) {
  std::atomic<int> runs{0};
  const auto flaky = md::op("once_flaky", {"x"}, [&](std::int64_t x) {
    const int run = ++runs;
    std::this_thread::sleep_for(30ms);  // the other threads wait meanwhile
    if (run == 1) throw std::runtime_error("first run fails");
    return x + 1;
  });
  md::Storage storage(location());
  std::atomic<int> failed{0};
  std::atomic<int> succeeded{0};
  on_threads(4, [&](int) {
    md::Session s(storage);
    try {
      if (flaky(41).get() == 42) ++succeeded;
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()) != "first run fails") throw;
      ++failed;
    }
  });
  EXPECT_EQ(failed.load(), 1) << "the exception goes only to the thread whose run threw";
  EXPECT_EQ(succeeded.load(), 3);
  EXPECT_EQ(runs.load(), 2) << "one waiter computes the call after the failure, the others reuse it";
  EXPECT_EQ(storage.calls_of("once_flaky").size(), 1u);
}

TEST_P(ComputeOnce, OpsNotComputedOnceRunInEveryThreadAndAreStoredOnce) {
  std::atomic<int> runs{0};
  const auto cheap = md::op("once_cheap", {"x"},
                            [&](std::int64_t x) {
                              ++runs;
                              std::this_thread::sleep_for(50ms);  // all four threads are in it at once
                              return x;
                            },
                            {.compute_once = false});
  md::Storage storage(location());
  on_threads(4, [&](int) {
    md::Session s(storage);
    if (cheap(7).get() != 7) throw std::runtime_error("wrong value");
  });
  EXPECT_EQ(runs.load(), 4) << "OpOptions::compute_once = false: no thread waits for another";
  EXPECT_EQ(storage.calls_of("once_cheap").size(), 1u);
}

TEST_P(ComputeOnce, OpsCallingOpsAcrossThreadsComputeEachCallOnce) {
  std::atomic<int> inner_runs{0};
  std::atomic<int> outer_runs{0};
  const auto inner = md::op("once_inner", {"x"}, [&](std::int64_t x) {
    ++inner_runs;
    std::this_thread::sleep_for(1ms);
    return x * x;
  });
  const auto outer = md::op("once_outer", {"x"}, [&](std::int64_t x) {
    ++outer_runs;
    return inner(x).get() + 1;  // a nested call, inside the outer op's run
  });
  md::Storage storage(location());
  on_threads(threads, [&](int t) {
    md::Session s(storage);
    for (std::int64_t x = 0; x < 20; ++x) {
      // Some threads make the inner call first, others reach it through the outer one.
      if (t % 2 == 0 && inner(x).get() != x * x) throw std::runtime_error("wrong inner value");
      if (outer(x).get() != x * x + 1) throw std::runtime_error("wrong outer value");
    }
  });
  EXPECT_EQ(inner_runs.load(), 20);
  EXPECT_EQ(outer_runs.load(), 20);
}

// ---- The store's claims ------------------------------------------------------------------

md::store::StoreOptions store_options() { return {}; }

using md::testing::Backend;

/// The stores processes share: an SQLite file, and a fresh database on the tests' PostgreSQL
/// server when the build runs the backend suites there (support/backends.hpp).
std::vector<Backend> shared_backends() {
  std::vector<Backend> out{Backend::file};
  if (MANDALA_TEST_POSTGRES_SUITES) out.push_back(Backend::postgres);
  return out;
}

class SharedStore : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() != Backend::postgres) return;
    const auto server = md::testing::postgres_server_url();
    if (!server) {
      if (md::testing::postgres_required()) FAIL() << md::testing::postgres_server_hint();
      GTEST_SKIP() << md::testing::postgres_server_hint();
    }
    m_database.emplace(*server);
  }
  /// The shared store's location.
  [[nodiscard]] std::string location() const {
    return m_database ? m_database->location() : (m_dir / "store.db").string();
  }
  md::testing::TempDir m_dir;
  std::optional<md::testing::TempDatabase> m_database;
};

class StoreClaims : public SharedStore {};
INSTANTIATE_TEST_SUITE_P(Backends, StoreClaims, ::testing::ValuesIn(shared_backends()), md::testing::backend_name);

TEST_P(StoreClaims, LeasesOwnersRenewalAndRelease) {
  const auto path = location();
  auto one = md::store::open_store(path, store_options());
  auto two = md::store::open_store(path, store_options());  // another connection, as another process
  ASSERT_TRUE(one->shares_claims());
  const auto key = key_of("k");
  const auto a = key_of("owner a");
  const auto b = key_of("owner b");
  EXPECT_TRUE(one->try_claim(key, a, 300ms));
  EXPECT_TRUE(one->try_claim(key, a, 300ms)) << "the holder takes its own claim again (renewed)";
  EXPECT_FALSE(two->try_claim(key, b, 300ms)) << "held by another owner";
  EXPECT_TRUE(two->try_claim(key_of("other key"), b, 300ms)) << "claims are per key";
  std::this_thread::sleep_for(400ms);
  EXPECT_TRUE(two->try_claim(key, b, 10s)) << "an expired claim is taken over";
  const std::vector<md::Id> keys{key};
  EXPECT_EQ(one->renew_claims(a, keys, 10s), keys) << "a claim taken over is lost to its old owner";
  one->release_claims(a, keys);
  EXPECT_FALSE(one->try_claim(key, a, 1s)) << "releasing another owner's claim does nothing";
  EXPECT_TRUE(two->renew_claims(b, keys, 10s).empty());
  two->release_claims(b, keys);
  EXPECT_TRUE(one->try_claim(key, a, 1s)) << "a released claim is free";
}

TEST_P(StoreClaims, PrivateAndReadOnlyStoresShareNoClaims) {
  const auto path = location();
  EXPECT_FALSE(md::store::open_store("", store_options())->shares_claims());
  (void)md::store::open_store(path, store_options());
  auto options = store_options();
  options.read_only = true;
  EXPECT_FALSE(md::store::open_store(path, options)->shares_claims());
}

/// Forks a process that takes the claim on `key` (for a minute) and then stays alive until it
/// is killed; returns its pid once the claim is taken.
pid_t holder_process(const std::string& path, const md::Id& key) {
  int ready[2];
  if (::pipe(ready) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    auto store = md::store::open_store(path, store_options());
    const char ok = store->try_claim(key, key_of("holder"), 60s) ? '1' : '0';
    (void)!::write(ready[1], &ok, 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  char ok = 0;
  (void)!::read(ready[0], &ok, 1);
  ::close(ready[0]);
  if (ok != '1') throw std::runtime_error("the holder process could not claim");
  return pid;
}

TEST_P(StoreClaims, AClaimOfAProcessThatEndedIsTakenAtOnce) {
  const auto path = location();
  auto store = md::store::open_store(path, store_options());
  const auto key = key_of("k");
  const pid_t holder = holder_process(path, key);
  EXPECT_FALSE(store->try_claim(key, key_of("me"), 1s)) << "the holder runs: its claim holds";
  ::kill(holder, SIGKILL);
  int status = 0;
  ::waitpid(holder, &status, 0);
  // (PostgreSQL learns of the death when the server process of the holder's connection sees
  // the socket closed, a moment after the kill: well within a second, far from the lease.)
  bool taken = store->try_claim(key, key_of("me"), 1s);
  for (int i = 0; !taken && GetParam() == Backend::postgres && i < 100; ++i) {
    std::this_thread::sleep_for(20ms);
    taken = store->try_claim(key, key_of("me"), 1s);
  }
  EXPECT_TRUE(taken) << "the holder has died: its one-minute lease is void";
}

// ---- Processes -----------------------------------------------------------------------------

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Runs of each x by each pid, from the audit file.
std::map<std::int64_t, std::map<std::string, int>> audit_of(const fs::path& audit) {
  std::map<std::int64_t, std::map<std::string, int>> runs;
  std::ifstream in(audit);
  std::string word, pid;
  std::int64_t x = 0;
  while (in >> word >> x >> pid) ++runs[x][pid];
  return runs;
}

int runs_by(const std::map<std::string, int>& by_pid, const std::string& pid) {
  auto it = by_pid.find(pid);
  return it == by_pid.end() ? 0 : it->second;
}

int total(const std::map<std::string, int>& by_pid) {
  int n = 0;
  for (const auto& [pid, count] : by_pid) n += count;
  return n;
}

class ClaimsAcrossProcesses : public SharedStore {
 protected:
  std::unique_ptr<rel::Child> start(const std::string& name, std::int64_t first, std::int64_t count,
                                    std::int64_t sleep_ms, std::int64_t lease_ms, std::int64_t flush_ms,
                                    std::optional<std::int64_t> start_ms = std::nullopt) {
    std::vector<std::string> args{location(),
                                  m_audit.string(),
                                  std::to_string(first),
                                  std::to_string(count),
                                  std::to_string(sleep_ms),
                                  std::to_string(lease_ms),
                                  std::to_string(flush_ms)};
    if (start_ms) args.push_back(std::to_string(*start_ms));
    return std::make_unique<rel::Child>(MANDALA_CLAIMS_WORKER, args, m_dir / (name + ".out"), m_dir / (name + ".err"));
  }
  std::string err_of(const std::string& name) {
    std::ifstream in(m_dir / (name + ".err"));
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  /// Waits until the audit holds at least `n` runs; false after `timeout`.
  bool wait_for_runs(std::size_t n, std::chrono::milliseconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < end) {
      std::size_t lines = 0;
      for (const auto& [x, by_pid] : audit_of(m_audit)) lines += static_cast<std::size_t>(total(by_pid));
      if (lines >= n) return true;
      std::this_thread::sleep_for(5ms);
    }
    return false;
  }
  void expect_stored_once(std::int64_t n) {
    md::StorageOptions o;
    o.read_only = true;
    md::Storage storage(location(), o);
    const auto report = storage.check_integrity();
    EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
    EXPECT_EQ(report.calls, static_cast<std::uint64_t>(n));
    EXPECT_EQ(storage.calls_of("claims_slow").size(), static_cast<std::size_t>(n));
  }

  fs::path m_audit = m_dir / "audit";
};
INSTANTIATE_TEST_SUITE_P(Backends, ClaimsAcrossProcesses, ::testing::ValuesIn(shared_backends()),
                         md::testing::backend_name);

TEST_P(ClaimsAcrossProcesses, FourProcessesMakingTheSameCallsComputeEachOnce) {
  constexpr std::int64_t n = 30;
  // All four make the same calls in the same order, starting at the same moment.
  const auto at = unix_ms() + 700;
  std::vector<std::unique_ptr<rel::Child>> workers;
  for (int p = 0; p < 4; ++p) workers.push_back(start("w" + std::to_string(p), 0, n, 5, 2000, 20, at));
  for (int p = 0; p < 4; ++p)
    EXPECT_EQ(workers[static_cast<std::size_t>(p)]->wait(), 0) << err_of("w" + std::to_string(p));
  const auto runs = audit_of(m_audit);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(n));
  for (const auto& [x, by_pid] : runs) EXPECT_EQ(total(by_pid), 1) << "call " << x << " computed more than once";
  expect_stored_once(n);
}

TEST_P(ClaimsAcrossProcesses, AKilledHolderIsTakenOverAndNothingIsLostOrStoredTwice) {
  constexpr std::int64_t n = 10;
  // The holder computes slowly and flushes rarely: when it is killed it holds the claims of
  // calls computed but not stored, and of the call it is computing.
  auto holder = start("holder", 0, n, 300, 1000, 600'000);
  ASSERT_TRUE(wait_for_runs(3, 20s));
  const auto before = audit_of(m_audit);
  ASSERT_EQ(before.size(), 3u);
  const std::string holder_pid = before.begin()->second.begin()->first;
  std::vector<std::unique_ptr<rel::Child>> others;
  for (int p = 0; p < 2; ++p) others.push_back(start("o" + std::to_string(p), 0, n, 10, 1000, 20));
  std::this_thread::sleep_for(400ms);
  for (const auto& [x, by_pid] : audit_of(m_audit))
    EXPECT_EQ(total(by_pid), runs_by(by_pid, holder_pid)) << "call " << x << " computed while the holder held it";
  holder->kill(SIGKILL);
  EXPECT_EQ(holder->wait(), 128 + SIGKILL);
  for (int p = 0; p < 2; ++p)
    EXPECT_EQ(others[static_cast<std::size_t>(p)]->wait(), 0) << err_of("o" + std::to_string(p));
  const auto runs = audit_of(m_audit);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(n));
  for (const auto& [x, by_pid] : runs)
    EXPECT_EQ(total(by_pid) - runs_by(by_pid, holder_pid), 1)
        << "call " << x << ": computed once by the processes that went on";
  expect_stored_once(n);
}

TEST_P(ClaimsAcrossProcesses, ACallComputedBeforeALongOneIsStoredForItsWaiters) {
  // The holder computes call 0, then spends 4 s in call 1 without making any other call: its
  // background thread stores call 0 (and releases its claim) at the flush interval, so a process
  // waiting for call 0 gets it long before call 1 ends.
  ::setenv("CLAIMS_LONG", "1:4000", 1);
  auto holder = start("holder", 0, 2, 5, 2000, 50);
  ::unsetenv("CLAIMS_LONG");
  ASSERT_TRUE(wait_for_runs(2, 20s));
  const auto started = std::chrono::steady_clock::now();
  auto other = start("other", 0, 1, 5, 2000, 50);
  EXPECT_EQ(other->wait(), 0) << err_of("other");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2500ms) << "the waiter waited for the long call";
  const auto runs = audit_of(m_audit);
  EXPECT_EQ(total(runs.at(0)), 1) << "call 0 computed once (by the holder)";
  holder->kill(SIGKILL);
  (void)holder->wait();
}

TEST_P(ClaimsAcrossProcesses, AStoppedHolderLosesItsClaimWhenItsLeaseEnds) {
  constexpr std::int64_t n = 5;
  auto holder = start("holder", 0, n, 400, 600, 20);
  ASSERT_TRUE(wait_for_runs(1, 20s));
  holder->kill(SIGSTOP);  // alive, but it no longer renews its claim on call 0
  const auto stopped = std::chrono::steady_clock::now();
  auto other = start("other", 0, n, 10, 600, 20);
  EXPECT_EQ(other->wait(), 0) << err_of("other");
  const auto waited = std::chrono::steady_clock::now() - stopped;
  EXPECT_LT(waited, 20s);
  holder->kill(SIGCONT);
  EXPECT_EQ(holder->wait(), 0) << err_of("holder");
  const auto runs = audit_of(m_audit);
  ASSERT_EQ(runs.size(), static_cast<std::size_t>(n));
  // Call 0 was computed twice (the holder resumed its run): computing exactly once is impossible
  // when a holder can stop; it is stored once.
  EXPECT_EQ(total(runs.at(0)), 2);
  for (std::int64_t x = 1; x < n; ++x) EXPECT_EQ(total(runs.at(x)), 1) << "call " << x;
  expect_stored_once(n);
}

}  // namespace
