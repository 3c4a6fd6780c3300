// Bad input: damaged database pages, a truncated database, damaged values and blob files, a
// read-only store, refs read as the wrong type, network file systems. Each gives a clear
// mandala::Error (or a warning), never a crash, and leaves the files as they were.
// (Foreign files, newer schemas and other encodings: tests/store/sqlite_store_test.cpp; a blob
// file altered in place and a ref of the wrong type: tests/engine.)

#include <gtest/gtest.h>

#include <fstream>
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
      }
      EXPECT_THROW(storage.drop_calls(std::vector<md::Id>{rel::sq(1).hid()}), md::Error);
      EXPECT_THROW(storage.cleanup(), md::Error);
    }
  }  // closing reports the calls it could not write, on stderr
  // Closed, it leaves exactly the files it found: no -wal or -shm either.
  EXPECT_EQ(md::testing::snapshot(m_dir.path()), before);
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
