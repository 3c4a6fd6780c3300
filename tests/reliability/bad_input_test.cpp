// Bad input: damaged database pages, a truncated database, damaged values and blob files, a
// read-only store, a store this process may not write (a read-only directory, another user's
// store), refs read as the wrong type, network file systems. Each gives a clear
// mandala::Error (or a warning), never a crash, and leaves the files as they were.
// (Foreign files, newer schemas and other encodings: tests/store/sqlite_store_test.cpp; a blob
// file altered in place and a ref of the wrong type: tests/engine.)

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "mandala/mandala.hpp"
#include "store/file_system.hpp"
#include "support/files.hpp"
#include "support/sql.hpp"
#include "support/temp_dir.hpp"
#include "workload.hpp"

namespace md = mandala;
namespace rel = mandala::reliability;
namespace fs = std::filesystem;

namespace {

void overwrite(const fs::path& file, std::uint64_t offset, const std::string& bytes) {
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Everything a user might do with a store: open, query, check, retrace, load, record. Each step
/// may fail with a mandala::Error (recorded in `errors`), and nothing else may happen.
void use_store(const fs::path& db, bool read_only, std::vector<std::string>& errors) {
  auto attempt = [&](auto&& step) {
    try {
      step();
    } catch (const md::Error& e) {
      errors.push_back(std::string(md::to_string(e.code())) + ": " + e.what());
    }
  };
  auto o = rel::workload_options();
  o.read_only = read_only;
  std::unique_ptr<md::Storage> storage;
  attempt([&] { storage = std::make_unique<md::Storage>(db, o); });
  if (!storage) return;
  attempt([&] { (void)storage->stats(); });
  attempt([&] { (void)storage->calls_of("rel_add"); });
  attempt([&] { (void)storage->check_integrity(); });
  attempt([&] {
    storage->allow_new_calls(false);
    md::Session s(*storage);
    for (std::int64_t x = 0; x < 300; x += 7) (void)rel::run_step(x, 50).get();
    (void)rel::total(rel::big(50)).get();
  });
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    md::Storage storage(db(), rel::workload_options());
    md::Session s(storage);
    for (std::int64_t x = 0; x < 300; ++x) rel::run_step(x, 50);
  }
  [[nodiscard]] fs::path db() const { return m_dir / "store.db"; }
  [[nodiscard]] fs::path blob_of(std::int64_t x) {
    md::Storage storage(db(), rel::workload_options());
    md::Session s(storage);
    return fs::path(db().string() + ".blobs") / rel::big(x).cid().hex().substr(0, 2) / rel::big(x).cid().hex();
  }
  md::testing::TempDir m_dir;
};

TEST_F(BadInput, DamagedDatabasePagesGiveErrorsNotCrashes) {
  const std::string pristine = md::testing::read_file(db());
  const std::uint64_t pages = pristine.size() / 4096;
  ASSERT_GT(pages, 4u);
  std::mt19937 rng(7);
  int reported = 0;
  for (std::uint64_t page = 1; page < pages; ++page) {  // every page but the header page
    std::ofstream(db(), std::ios::binary | std::ios::trunc) << pristine;
    std::string garbage(4096, '\0');
    for (auto& c : garbage) c = static_cast<char>(rng());
    overwrite(db(), page * 4096, garbage);
    const std::string damaged = md::testing::read_file(db());
    std::vector<std::string> errors;
    for (bool read_only : {true, false}) use_store(db(), read_only, errors);
    EXPECT_TRUE(md::testing::read_file(db()) == damaged) << "page " << page << ": the damaged file must stay as it was";
    if (!errors.empty()) ++reported;
    for (const auto& e : errors)
      EXPECT_TRUE(e.rfind("corrupt_store", 0) == 0 || e.rfind("decode", 0) == 0) << "page " << page << ": " << e;
  }
  EXPECT_GT(reported, 0);
  std::cout << pages - 1 << " damaged pages tried, " << reported << " reported as damage\n";
}

TEST_F(BadInput, TruncatedDatabaseIsReportedAsDamaged) {
  fs::resize_file(db(), fs::file_size(db()) / 2);
  const auto before = md::testing::snapshot(m_dir.path());
  std::vector<std::string> errors;
  use_store(db(), true, errors);
  use_store(db(), false, errors);
  ASSERT_FALSE(errors.empty());
  for (const auto& e : errors) EXPECT_EQ(e.rfind("corrupt_store", 0), 0u) << e;
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before);
}

TEST_F(BadInput, AlteredInlineValueIsDetectedByItsId) {
  {
    md::Storage storage(db(), rel::workload_options());
    md::Session s(storage);
    const auto z = rel::run_step(5, 50);
    md::testing::sql(db(), "UPDATE \"values\" SET data = x'cd0007' WHERE cid = x'" + z.cid().hex() + "'");
  }
  md::Storage storage(db(), rel::workload_options());
  md::Session s(storage);
  try {
    (void)rel::run_step(5, 50).get();
    FAIL() << "a damaged value must not be decoded";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::corrupt_store);
    EXPECT_NE(std::string(e.what()).find("do not match its id"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(db().string()), std::string::npos) << "names the store: " << e.what();
  }
}

TEST_F(BadInput, UnreadableOpsTableIsDamageNamingTheStore) {
  {
    md::Storage storage(db(), rel::workload_options());
    md::Session s(storage);
    (void)rel::run_step(5, 50);
  }
  md::testing::sql(db(), "UPDATE ops SET inputs = 'not a list'");
  md::StorageOptions read_only = rel::workload_options();
  read_only.read_only = true;
  md::Storage storage(db(), read_only);
  try {
    (void)storage.ops();
    FAIL() << "an unreadable ops table must be reported";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::corrupt_store) << e.what();
    EXPECT_NE(std::string(e.what()).find(db().string()), std::string::npos) << "names the store: " << e.what();
    EXPECT_NE(std::string(e.what()).find("unreadable name list"), std::string::npos) << e.what();
  }
}

TEST_F(BadInput, TruncatedAndMissingBlobFilesAreReported) {
  const fs::path file = blob_of(100);
  ASSERT_TRUE(fs::exists(file));
  fs::resize_file(file, fs::file_size(file) - 1);
  auto before = md::testing::snapshot(m_dir.path());
  {
    md::Storage storage(db(), rel::workload_options());
    md::Session s(storage);
    try {
      (void)rel::big(100).get();
      FAIL() << "a truncated blob file must be reported";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::corrupt_store);
      EXPECT_NE(std::string(e.what()).find(file.filename().string()), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before);
  fs::remove(file);
  before = md::testing::snapshot(m_dir.path());
  {
    md::Storage storage(db(), rel::workload_options());
    md::Session s(storage);
    try {
      (void)rel::big(100).get();
      FAIL() << "a missing blob file must be reported";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::corrupt_store);
      EXPECT_NE(std::string(e.what()).find("is missing"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before);
}

TEST_F(BadInput, ReadOnlyStoreReadsAndRefusesEveryWrite) {
  const auto before = md::testing::snapshot(m_dir.path());
  auto o = rel::workload_options();
  o.read_only = true;
  {
    md::Storage storage(db(), o);
    EXPECT_EQ(storage.stats().calls, rel::calls_of_steps(300, 50));
    EXPECT_TRUE(storage.check_integrity().ok());
    {
      md::Session s(storage);
      EXPECT_EQ(rel::run_step(10, 50).get(), rel::expected_add(10));  // stored: a lookup
      (void)rel::run_step(1000, 50);                                  // new: pending
      try {
        storage.flush();
        FAIL() << "writing to a read-only store must fail";
      } catch (const md::Error& e) {
        EXPECT_EQ(e.code(), md::Errc::io);
        EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(db().string()), std::string::npos) << "names the store: " << e.what();
      }
      EXPECT_THROW(storage.drop_calls(std::vector<md::Id>{rel::sq(1).hid()}), md::Error);
      EXPECT_THROW(storage.cleanup(), md::Error);
    }
  }  // closing reports the calls it could not write, on stderr
  // Closed, it leaves exactly the files it found: no -wal or -shm either.
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before);
}

// ---- stores this process may not write ------------------------------------------------------

constexpr uid_t nobody = 65534;

/// Runs `scenario` where file permissions apply: in this process for an unprivileged user; as
/// root (who ignores them, as in CI), in a child process that has become `nobody`. The scenario
/// returns what went wrong (empty: nothing) and may call `pause()` once, which runs `meanwhile`
/// here (as the parent) before it goes on. Sets `skipped` when no such user can be had.
std::string as_unprivileged(const std::function<std::string(const std::function<void()>& pause)>& scenario,
                            const std::function<void()>& meanwhile, bool& skipped) {
  skipped = false;
  if (::geteuid() != 0) return scenario(meanwhile);
  int to_parent[2];
  int to_child[2];
  if (::pipe(to_parent) != 0 || ::pipe(to_child) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(to_parent[0]);
    ::close(to_child[1]);
    std::string result;
    if (::setgroups(0, nullptr) != 0 || ::setgid(nobody) != 0 || ::setuid(nobody) != 0) {
      result = "\x01";
    } else {
      const auto pause = [&] {
        const char ready = 'r';
        char go = 0;
        if (::write(to_parent[1], &ready, 1) != 1 || ::read(to_child[0], &go, 1) != 1) result += "no parent; ";
      };
      try {
        result += scenario(pause);
      } catch (const std::exception& e) {
        result += std::string("unexpected exception: ") + e.what();
      }
    }
    const char done = 'd';
    (void)!::write(to_parent[1], &done, 1);
    (void)!::write(to_parent[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(to_parent[1]);
  ::close(to_child[0]);
  std::string received;
  char c = 0;
  while (::read(to_parent[0], &c, 1) == 1) {
    if (received.empty() && c == 'r') {
      meanwhile();
      const char go = 'g';
      (void)!::write(to_child[1], &go, 1);
      continue;
    }
    received += c;
  }
  ::close(to_parent[0]);
  ::close(to_child[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (received.empty() || received[0] != 'd')
    return "the child process ended without a result (status " + std::to_string(status) + ")";
  received.erase(0, 1);
  if (received == "\x01") {
    skipped = true;
    return {};
  }
  return received;
}

/// What a reader can do with the store of BadInput's SetUp, as problems found (empty: none).
std::string read_everything(const fs::path& db) {
  std::string problems;
  auto o = rel::workload_options();
  o.read_only = true;
  md::Storage storage(db, o);
  if (storage.stats().calls != rel::calls_of_steps(300, 50)) problems += "wrong call count; ";
  if (storage.calls_of("rel_add").size() != 300) problems += "wrong calls of rel_add; ";
  if (!storage.check_integrity().ok()) problems += "the integrity check found problems; ";
  storage.allow_new_calls(false);
  md::Session s(storage);
  for (std::int64_t x = 0; x < 300; x += 7)
    if (rel::run_step(x, 50).get() != rel::expected_add(x)) problems += "wrong value; ";
  if (rel::total(rel::big(50)).get() != rel::expected_total(50)) problems += "wrong blob value; ";
  return problems;
}

/// A writable open of `db` fails with Errc::io naming `named`, the operating system's cause and
/// the fix; returns what is wrong with the error (empty: nothing).
std::string writable_open_is_refused_clearly(const fs::path& db, const std::string& named) {
  try {
    md::Storage storage(db, rel::workload_options());
    return "a writable open of a store this process may not write must fail; ";
  } catch (const md::Error& e) {
    const std::string what = e.what();
    std::string problems;
    if (e.code() != md::Errc::io) problems += "code " + std::string(md::to_string(e.code())) + "; ";
    for (const std::string& part : {named, std::string("Permission denied"), std::string("read_only")})
      if (what.find(part) == std::string::npos) problems += "no '" + part + "' in: " + what + "; ";
    if (what.find("open it writable") != std::string::npos) problems += "misleading advice: " + what + "; ";
    return problems;
  }
}

TEST_F(BadInput, StoreOfAnotherUserOpensReadOnly) {
  // Another user's store in their directory: readable, not writable (file and directory).
  if (::geteuid() != 0) {
    fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::remove);
    fs::permissions(db(), fs::perms::owner_write, fs::perm_options::remove);
  }
  const auto before = md::testing::snapshot(m_dir.path());
  bool skipped = false;
  const auto problems = as_unprivileged(
      [&](const auto&) { return read_everything(db()) + writable_open_is_refused_clearly(db(), db().string()); }, [] {},
      skipped);
  fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::add);
  fs::permissions(db(), fs::perms::owner_write, fs::perm_options::add);
  if (skipped) GTEST_SKIP() << "running as root and cannot become nobody: permissions do not apply";
  EXPECT_EQ(problems, "");
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before) << "reading must create or change no file";
}

TEST_F(BadInput, StoreInAReadOnlyDirectoryOpensReadOnly) {
  // The user's own store (file writable) in a directory they may not write: SQLite cannot make
  // its -wal and -shm files there.
  const auto before = md::testing::snapshot(m_dir.path());
  if (::geteuid() == 0)
    for (const auto& e : fs::recursive_directory_iterator(m_dir.path()))
      if (::chown(e.path().c_str(), nobody, nobody) != 0) GTEST_SKIP() << "cannot chown to nobody";
  if (::geteuid() == 0 && ::chown(m_dir.path().c_str(), nobody, nobody) != 0) GTEST_SKIP() << "cannot chown";
  fs::permissions(m_dir.path(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                    fs::perms::others_read | fs::perms::others_exec);
  fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::remove);
  bool skipped = false;
  const auto problems = as_unprivileged(
      [&](const auto&) {
        std::string found = read_everything(db());
        try {
          md::Storage storage(db(), rel::workload_options());
          md::Session s(storage);
          (void)rel::run_step(1000, 0).get();
          storage.flush();
          found += "a writable open in a read-only directory must fail; ";
        } catch (const md::Error& e) {
          const std::string what = e.what();
          if (e.code() != md::Errc::io) found += "code " + std::string(md::to_string(e.code())) + "; ";
          for (const std::string& part : {m_dir.path().string(), std::string("Permission denied")})
            if (what.find(part) == std::string::npos) found += "no '" + part + "' in: " + what + "; ";
          if (what.find("open it writable") != std::string::npos) found += "misleading advice: " + what + "; ";
        }
        // Creating a store there fails before anything is written, naming the directory.
        try {
          md::Storage storage(m_dir / "new.db");
          found += "creating a store in a read-only directory must fail; ";
        } catch (const md::Error& e) {
          const std::string what = e.what();
          if (what.find(m_dir.path().string()) == std::string::npos ||
              what.find("Permission denied") == std::string::npos)
            found += "unclear: " + what + "; ";
        }
        return found;
      },
      [] {}, skipped);
  fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::add);
  if (skipped) GTEST_SKIP() << "running as root and cannot become nobody: permissions do not apply";
  EXPECT_EQ(problems, "");
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before) << "reading must create or change no file";
}

TEST_F(BadInput, UnlockedReadOfAStoreWrittenMeanwhileIsNotReportedAsDamage) {
  // A reader that may not write the store reads it without locks; when its owner writes to it
  // meanwhile (a checkpoint rewrites pages under the reader), what the reader then meets is
  // reported as a write to run again, never as damage to restore from a backup.
  if (::geteuid() != 0) fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::remove);
  bool skipped = false;
  const auto write_more = [&] {
    if (::geteuid() != 0) fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::add);
    {
      md::Storage storage(db(), rel::workload_options());
      md::Session s(storage);
      for (std::int64_t x = 300; x < 3000; ++x) rel::run_step(x, 0);
    }  // the last connection's close checkpoints the log into the store
    if (::geteuid() != 0) fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::remove);
  };
  const auto problems = as_unprivileged(
      [&](const auto& pause) {
        std::string found;
        auto o = rel::workload_options();
        o.read_only = true;
        md::Storage storage(db(), o);
        if (storage.stats().calls != rel::calls_of_steps(300, 50)) found += "wrong call count; ";
        pause();  // the owner writes
        int written_meanwhile = 0;
        for (int round = 0; round < 3; ++round) {
          try {
            (void)storage.check_integrity();
            (void)storage.calls_of("rel_add");
            (void)storage.stats();
          } catch (const md::Error& e) {
            const std::string what = e.what();
            if (e.code() != md::Errc::io || what.find("written by another process") == std::string::npos ||
                what.find("run the command again") == std::string::npos)
              found += std::string(md::to_string(e.code())) + ": " + what + "; ";
            else ++written_meanwhile;
          }
        }
        return found;
      },
      write_more, skipped);
  fs::permissions(m_dir.path(), fs::perms::owner_write, fs::perm_options::add);
  if (skipped) GTEST_SKIP() << "running as root and cannot become nobody: permissions do not apply";
  EXPECT_EQ(problems, "");
  md::Storage storage(db(), rel::workload_options());
  EXPECT_EQ(storage.stats().calls, rel::calls_of_steps(300, 50) + 2 * 2700);
}

TEST_F(BadInput, ValuesReadAsTheWrongTypeFailClearly) {
  md::Storage storage(db(), rel::workload_options());
  md::Session s(storage);
  const auto big = rel::big(50);
  try {
    (void)big.as<std::string>().get();
    FAIL() << "a vector read as a string must fail";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::decode);
  }
  try {
    (void)rel::sq(3).as<std::vector<int>>().get();
    FAIL() << "an integer read as a vector must fail";
  } catch (const md::Error& e) {
    EXPECT_EQ(e.code(), md::Errc::decode);
  }
  EXPECT_EQ(big.get().size(), rel::blob_doubles);  // the right type still works
}

TEST(NetworkFileSystems, KnownMagicNumbersAreNamed) {
  EXPECT_EQ(md::store::network_file_system_name(0x6969), "nfs");
  EXPECT_EQ(md::store::network_file_system_name(0xFF534D42), "cifs");
  EXPECT_EQ(md::store::network_file_system_name(0xFE534D42), "smb2");
  EXPECT_EQ(md::store::network_file_system_name(0x517B), "smb");
  EXPECT_EQ(md::store::network_file_system_name(0x01021997), "9p");
  EXPECT_EQ(md::store::network_file_system_name(0xEF53), std::nullopt);      // ext4
  EXPECT_EQ(md::store::network_file_system_name(0x01021994), std::nullopt);  // tmpfs
}

TEST(NetworkFileSystems, LocalTemporaryDirectoryIsNotNetwork) {
  md::testing::TempDir dir;
  EXPECT_EQ(md::store::network_file_system(dir / "store.db"), std::nullopt);
  EXPECT_EQ(md::store::network_file_system(dir.path()), std::nullopt);
}

}  // namespace
