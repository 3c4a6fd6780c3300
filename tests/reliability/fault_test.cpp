// Injected faults: SQLite writes, syncs and reads that fail (disk full, I/O errors) and blob-file
// steps that fail. Each surfaces as a clear mandala::Error; the store stays consistent (the
// integrity check is clean and every call flushed before the fault is there); the same storage
// carries on once the fault is gone, and the store reopens.

#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "fault_vfs.hpp"
#include "mandala/mandala.hpp"
#include "store/blob_files.hpp"
#include "support/backends.hpp"
#include "support/files.hpp"
#include "support/integrity.hpp"
#include "support/large_values.hpp"
#include "support/temp_dir.hpp"
#include "workload.hpp"

namespace md = mandala;
namespace rel = mandala::reliability;
namespace fs = std::filesystem;

namespace {

md::StorageOptions options() {
  auto o = rel::workload_options();
  o.flush_every_calls = 1'000'000;  // flushes only where the test says
  o.flush_interval = std::chrono::hours(1);
  // The faults count the writes of the store's file; claims write a database of their own
  // (storage-format.md 3.9), whose failures only turn claims off (ClaimFaults below).
  o.claim_new_calls = false;
  return o;
}

/// Records steps [from, to) as pending calls of `storage` (not flushed).
void pend(md::Storage& storage, std::int64_t from, std::int64_t to, std::int64_t blob_every = 0) {
  md::Session s(storage);
  for (std::int64_t x = from; x < to; ++x) rel::run_step(x, blob_every);
  // The session's exit flushes; the caller controls failures by arming faults first.
}

/// The store at `path` is consistent and holds exactly the steps [0, steps).
void expect_store(const fs::path& path, std::int64_t steps, std::int64_t blob_every = 0) {
  md::Storage storage(path, options());
  const auto report = storage.check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
  EXPECT_EQ(report.calls, rel::calls_of_steps(steps, blob_every));
  storage.allow_new_calls(false);
  md::Session s(storage);
  for (std::int64_t x = 0; x < steps; ++x) EXPECT_EQ(rel::run_step(x, blob_every).get(), rel::expected_add(x));
}

/// Runs `work` expecting an Error of code `code` whose message contains `fragment`.
template <class F>
void expect_error(md::Errc code, const std::string& fragment, F&& work) {
  try {
    work();
    ADD_FAILURE() << "expected an error containing '" << fragment << "'";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

void remove_store(const fs::path& db) {
  for (const char* suffix : {"", "-wal", "-shm"}) fs::remove(db.string() + suffix);
  fs::remove_all(db.string() + ".blobs");
}

class Faults : public ::testing::Test {
 protected:
  void SetUp() override {
    rel::FaultVfs::install();
    md::Storage storage(db(), options());
    pend(storage, 0, 20);  // 40 calls flushed before any fault
  }
  [[nodiscard]] fs::path db() const { return m_dir / "store.db"; }
  md::testing::TempDir m_dir;
};

TEST_F(Faults, DiskFullDuringAFlush) {
  md::Storage storage(db(), options());
  {
    md::Session s(storage);
    for (std::int64_t x = 20; x < 40; ++x) rel::run_step(x, 0);
    rel::ArmedFault full(rel::FaultOn::write, 0, SQLITE_FULL, /*sticky=*/true);
    expect_error(md::Errc::io, "disk is full", [&] { storage.flush(); });
    EXPECT_TRUE(full.fired());
    expect_error(md::Errc::io, "disk is full", [&] { storage.flush(); });  // still full: same clear error
    expect_error(md::Errc::io, db().string(), [&] { storage.flush(); });   // naming the store's file
  }  // space freed: the session's exit flushes what was pending
  storage.flush();
  expect_store(db(), 40);
}

TEST_F(Faults, DiskFullWhileCreatingAStoreLeavesNoFile) {
  // The disk fills up at the 1st, 2nd, ... write of creating a store, until a creation needs
  // fewer writes than that: each failure is a clear error naming the store, and leaves no file.
  const fs::path fresh = m_dir / "fresh.db";
  const auto before = md::testing::snapshot(m_dir.path());
  int failures = 0;
  for (int skip = 0; skip < 100; ++skip) {
    bool failed = false;
    {
      rel::ArmedFault full(rel::FaultOn::write, skip, SQLITE_FULL, /*sticky=*/true);
      try {
        md::Storage storage(fresh, options());
      } catch (const md::Error& e) {
        failed = true;
        EXPECT_EQ(e.code(), md::Errc::io) << e.what();
        EXPECT_NE(std::string(e.what()).find("disk is full"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(fresh.string()), std::string::npos) << e.what();
      }
      EXPECT_EQ(failed, full.fired());
    }
    if (!failed) break;
    ++failures;
    auto after = md::testing::snapshot(m_dir.path());
    if (after.contains("fresh.db")) {
      // The disk filled up after the store was complete and in place (opening it writes): what
      // is there is a whole store.
      after.erase("fresh.db");
      EXPECT_EQ(after, before) << "write " << skip;
      expect_store(fresh, 0);
      remove_store(fresh);
    } else {
      EXPECT_EQ(after, before) << "a failed creation (write " << skip << ") left a file";
    }
  }
  EXPECT_GE(failures, 2) << "creating a store makes several writes";
  expect_store(fresh, 0);
  pend(*std::make_unique<md::Storage>(fresh, options()), 0, 5);
  expect_store(fresh, 5);
}

TEST_F(Faults, WriteErrorAtEachPointOfAFlush) {
  // Fail the 1st, 2nd, ... write of a flush until a flush needs fewer writes than that.
  int faults = 0;
  std::int64_t steps = 20;
  for (int skip = 0; skip < 200; ++skip) {
    md::Storage storage(db(), options());
    md::Session s(storage);
    for (std::int64_t x = steps; x < steps + 5; ++x) rel::run_step(x, 0);
    bool failed = false;
    {
      rel::ArmedFault fault(rel::FaultOn::write, skip, SQLITE_IOERR_WRITE);
      try {
        storage.flush();
      } catch (const md::Error& e) {
        failed = true;
        EXPECT_EQ(e.code(), md::Errc::io) << e.what();
        EXPECT_NE(std::string(e.what()).find("I/O error"), std::string::npos) << e.what();
      }
      EXPECT_EQ(failed, fault.fired());
    }
    if (failed) ++faults;
    storage.flush();  // the fault is gone: the pending calls go in now
    steps += 5;
    if (!failed) break;
  }
  EXPECT_GE(faults, 3) << "a flush makes several writes";
  expect_store(db(), steps);
}

TEST_F(Faults, AFailingClaimsDatabaseTurnsClaimsOffAndLosesNothing) {
  // Every write of the claims database fails: the storage says so on stderr
  // and computes its calls without claims; they are stored as usual.
  auto o = options();
  o.claim_new_calls = true;
  md::Storage storage(db(), o);
  {
    md::Session s(storage);
    rel::ArmedFault fault(rel::FaultOn::write, 0, SQLITE_IOERR_WRITE, /*sticky=*/true, ".claims");
    ::testing::internal::CaptureStderr();
    for (std::int64_t x = 20; x < 25; ++x) EXPECT_EQ(rel::run_step(x, 0).get(), rel::expected_add(x));
    const auto err = ::testing::internal::GetCapturedStderr();
    EXPECT_TRUE(fault.fired());
    EXPECT_NE(err.find("cannot claim calls in"), std::string::npos) << err;
    EXPECT_NE(err.find(".claims"), std::string::npos) << err;
  }
  expect_store(db(), 25);
}

class SyncFaults : public Faults, public ::testing::WithParamInterface<bool> {};

TEST_P(SyncFaults, FailedSyncIsAClearErrorAndTheFlushIsRetried) {
  // Durable flushes sync the log at every commit; default ones when the log is started anew and
  // at checkpoints. A failed sync fails that commit (or, at a checkpoint, is retried by SQLite
  // later): either way the calls stay pending until a flush succeeds.
  auto o = options();
  o.durable_flush = GetParam();
  md::Storage storage(db(), o);
  md::Session s(storage);
  int failed = 0;
  std::int64_t steps = 20;
  for (int round = 0; round < 5; ++round, steps += 100) {
    for (std::int64_t x = steps; x < steps + 100; ++x) rel::run_step(x, 0);
    rel::ArmedFault fault(rel::FaultOn::sync, 0, SQLITE_IOERR_FSYNC, /*sticky=*/true);
    try {
      storage.flush();
    } catch (const md::Error& e) {
      ++failed;
      EXPECT_EQ(e.code(), md::Errc::io);
      EXPECT_NE(std::string(e.what()).find("disk I/O error"), std::string::npos) << e.what();
    }
  }
  if (GetParam()) {
    EXPECT_EQ(failed, 5) << "every durable flush syncs";
  }
  storage.flush();
  expect_store(db(), steps);
}

INSTANTIATE_TEST_SUITE_P(Durability, SyncFaults, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "Durable" : "Default"; });

TEST_F(Faults, ReadErrorDuringAQueryIsAnErrorNotACrash) {
  md::Storage storage(db(), options());
  {
    rel::ArmedFault fault(rel::FaultOn::read, 0, SQLITE_IOERR_READ, /*sticky=*/true, "store.db");
    expect_error(md::Errc::io, "I/O error", [&] { (void)storage.calls_of("rel_add"); });
  }
  EXPECT_EQ(storage.calls_of("rel_add").size(), 20u);
  expect_store(db(), 20);
}

int g_blob_errno = 0;
const char* g_blob_step = "";
int g_blob_faults = 0;
int blob_fault(const char* step) {
  if (std::string(step) != g_blob_step) return 0;
  ++g_blob_faults;
  return g_blob_errno;
}

class BlobFaults : public ::testing::TestWithParam<std::pair<const char*, int>> {};

TEST_P(BlobFaults, FailedBlobWriteLeavesNoTraceAndIsRetried) {
  md::testing::TempDir dir;
  const fs::path db = dir / "store.db";
  const fs::path blobs = db.string() + ".blobs";
  {
    md::Storage storage(db, options());
    pend(storage, 0, 10, 5);
  }
  const auto [step, err] = GetParam();
  md::Storage storage(db, options());
  {
    md::Session s(storage);
    for (std::int64_t x = 10; x < 20; ++x) rel::run_step(x, 5);
    g_blob_step = step;
    g_blob_errno = err;
    const int before = g_blob_faults;
    md::store::set_blob_fault_hook(blob_fault);
    expect_error(md::Errc::io, err == ENOSPC ? "disk is full" : std::string("blob file"), [&] { storage.flush(); });
    md::store::set_blob_fault_hook(nullptr);
    EXPECT_GT(g_blob_faults, before);
    // Nothing half-written is left, and the flush changed nothing in the database.
    for (const auto& e : fs::recursive_directory_iterator(blobs))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
    md::Storage other(db, options());
    EXPECT_EQ(other.stats().calls, rel::calls_of_steps(10, 5));
  }  // the session's exit flushes again, now without a fault
  expect_store(db, 20, 5);
}

INSTANTIATE_TEST_SUITE_P(Steps, BlobFaults,
                         ::testing::Values(std::pair{"create", EACCES}, std::pair{"write", ENOSPC},
                                           std::pair{"write", EIO}, std::pair{"sync", EIO}, std::pair{"rename", EXDEV},
                                           std::pair{"sync_dir", EIO}),
                         [](const auto& param_info) {
                           return std::string(param_info.param.first) + "_" + std::to_string(param_info.param.second);
                         });

// A value above SQLite's length limit goes to a blob file in both backends (an in-memory store
// keeps its files under TMPDIR): when writing the file fails, the flush fails with nothing
// recorded and nothing half-written left, and the next flush stores everything.
class LargeValueFaults : public md::testing::BackendTest {};

const auto ramp = md::op("ramp", {"n"}, [](int n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(i) + 0.25;
  return v;
});

TEST_P(LargeValueFaults, FailedWriteOfAValueAboveTheLimitLeavesNoTraceAndIsRetried) {
  if (GetParam() == md::testing::Backend::postgres) GTEST_SKIP() << "SQLite's length limit and blob files";
  md::testing::TempDir tmp;
  const md::testing::ScopedTmpdir tmpdir(tmp.path().string());
  const md::testing::LengthLimit limit(64 * 1024);
  md::StorageOptions opts;
  opts.blob_threshold_bytes = std::size_t{1} << 40;  // files only because of the limit
  open(opts);
  const fs::path files = persistent() ? fs::path(db_path().string() + ".blobs") : tmp.path();
  md::Id big_hid;
  {
    md::Session s(storage());
    big_hid = ramp(30'000).hid();
    for (const char* step : {"write", "sync", "rename"}) {
      g_blob_step = step;
      g_blob_errno = std::string(step) == "write" ? ENOSPC : EIO;
      const int before = g_blob_faults;
      md::store::set_blob_fault_hook(blob_fault);
      expect_error(md::Errc::io, "blob file", [&] { storage().flush(); });
      md::store::set_blob_fault_hook(nullptr);
      EXPECT_EQ(g_blob_faults, before + 1) << step;
      std::error_code ec;
      for (const auto& e : fs::recursive_directory_iterator(files, ec))
        EXPECT_FALSE(e.is_regular_file()) << "left after a failed " << step << ": " << e.path();
      if (persistent()) {
        md::Storage other(db_path(), options());
        EXPECT_EQ(other.stats().calls, 0u) << "a failed flush records nothing";
      }
    }
  }  // the session's exit flushes again, now without a fault
  EXPECT_EQ(storage().stats().calls, 1u);
  EXPECT_EQ(storage().stats().blob_files, 1u);
  reopen();
  const auto big = storage().ref<std::vector<double>>(big_hid);
  ASSERT_TRUE(big);
  ASSERT_EQ((*big)->size(), 30'000u);
  EXPECT_EQ((**big)[29'999], 29'999.25);
  const auto report = storage().check_integrity();
  EXPECT_TRUE(report.ok()) << md::testing::describe(report.problems);
}

MANDALA_INSTANTIATE_BACKENDS(LargeValueFaults);

TEST_F(Faults, RandomFaultCampaign) {
  // Many flushes, each with a fault at a random point of a random kind: after each, what was
  // flushed before is intact, and the store passes its integrity check.
  std::mt19937 rng(12345);
  const fs::path store = m_dir / "campaign.db";
  std::int64_t steps = 0;
  int injected = 0;
  for (int round = 0; round < 60; ++round) {
    md::Storage storage(store, options());
    {
      md::Session s(storage);
      for (std::int64_t x = steps; x < steps + 7; ++x) rel::run_step(x, 3);
      const int kind = std::uniform_int_distribution<int>(0, 3)(rng);
      const int skip = std::uniform_int_distribution<int>(0, 12)(rng);
      try {
        if (kind == 3) {
          g_blob_step = (round % 2) ? "write" : "sync";
          g_blob_errno = ENOSPC;
          md::store::set_blob_fault_hook(blob_fault);
          storage.flush();
        } else {
          const rel::FaultOn on = kind == 0 ? rel::FaultOn::write : rel::FaultOn::sync;
          const int rc = kind == 0 ? SQLITE_FULL : kind == 1 ? SQLITE_IOERR_FSYNC : SQLITE_IOERR_WRITE;
          rel::ArmedFault fault(kind == 2 ? rel::FaultOn::write : on, skip, rc);
          storage.flush();
        }
      } catch (const md::Error& e) {
        ++injected;
        EXPECT_EQ(e.code(), md::Errc::io) << e.what();
      }
      md::store::set_blob_fault_hook(nullptr);
    }
    steps += 7;
  }
  EXPECT_GT(injected, 10);
  std::cout << "random campaign: " << injected << " flushes failed by injected faults, "
            << rel::FaultVfs::install().injected() << " SQLite faults injected in this process so far\n";
  expect_store(store, steps, 3);
}

}  // namespace
