// Blob files (src/store/blob_files.cpp): written atomically, read back exactly, at every size
// (large files go through direct I/O in chunks with a padded last chunk), and a failure at any
// step leaves no file behind.

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "codec/hash.hpp"
#include "mandala/error.hpp"
#include "store/blob_files.hpp"
#include "support/temp_dir.hpp"

namespace md = mandala;
namespace fs = std::filesystem;

namespace {

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& b : v) {
    x = x * 1664525u + 1013904223u;
    b = static_cast<std::byte>(x >> 24);
  }
  return v;
}

/// Every regular file under `dir`.
std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file()) out.push_back(e.path());
  return out;
}

class BlobFilesTest : public ::testing::TestWithParam<md::store::BlobFiles::Sync> {};

TEST_P(BlobFilesTest, EverySizeReadsBackExactly) {
  md::testing::TempDir dir;
  const md::store::BlobFiles blobs(dir / "store.db.blobs", GetParam());
  const std::size_t mib = std::size_t{1} << 20;
  // Around the direct-I/O threshold and chunk size (8 MiB), with aligned and unaligned ends.
  for (const std::size_t n : {std::size_t{0}, std::size_t{3}, 4096 * std::size_t{3}, 8 * mib - 1, 8 * mib, 8 * mib + 1,
                              16 * mib, 20 * mib + 4096, 21 * mib + 123}) {
    const auto bytes = pattern(n, static_cast<unsigned>(n));
    const auto cid = md::codec::content_id(bytes);
    blobs.write(cid, bytes);
    EXPECT_EQ(fs::file_size(blobs.path_of(cid)), n);
    const auto back = blobs.read(cid);
    ASSERT_TRUE(back) << n;
    EXPECT_TRUE(*back == bytes) << "size " << n;
  }
  EXPECT_TRUE(blobs.stale_temporaries(std::chrono::seconds(0)).empty());
}

// (Atomic: large files are written by several threads.)
TEST_P(BlobFilesTest, ATruncatedOrAlteredLargeFileIsReportedAsDamaged) {
  md::testing::TempDir dir;
  const md::store::BlobFiles blobs(dir / "store.db.blobs", GetParam());
  const auto bytes = pattern((std::size_t{20} << 20) + 5, 11);
  const auto cid = md::codec::content_id(bytes);
  blobs.write(cid, bytes);
  const auto expect_damaged = [&](const char* what) {
    try {
      (void)blobs.read(cid);
      ADD_FAILURE() << what << ": the read must fail";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::corrupt_store) << what << ": " << e.what();
    }
  };
  {
    std::fstream f(blobs.path_of(cid), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((std::streamoff{17} << 20) + 3);
    f.put(static_cast<char>(~static_cast<unsigned char>(bytes[(std::size_t{17} << 20) + 3])));
  }
  expect_damaged("one byte altered");
  fs::resize_file(blobs.path_of(cid), (std::size_t{12} << 20) + 3);
  expect_damaged("truncated");
}

const char* g_fail_step = "";
std::atomic<int> g_fail_after{0};  // calls of that step that succeed first
int g_fail_errno = EIO;

int fail_step(const char* step) {
  if (std::string(step) != g_fail_step) return 0;
  return g_fail_after-- > 0 ? 0 : g_fail_errno;
}

TEST_P(BlobFilesTest, AFailureAtAnyStepOfALargeWriteLeavesNoFile) {
  md::testing::TempDir dir;
  const md::store::BlobFiles blobs(dir / "store.db.blobs", GetParam());
  const auto bytes = pattern((std::size_t{25} << 20) + 77, 7);  // four chunks, the last one short
  const auto cid = md::codec::content_id(bytes);
  struct Case {
    const char* step;
    int after;
    int err;
  };
  for (const Case c :
       {Case{"create", 0, EACCES}, Case{"write", 0, ENOSPC}, Case{"write", 2, EIO}, Case{"write", 3, ENOSPC},
        Case{"sync", 0, EIO}, Case{"rename", 0, EXDEV}, Case{"sync_dir", 0, EIO}}) {
    // The directory of files that are not synced is not synced either.
    if (GetParam() == md::store::BlobFiles::Sync::no && std::string(c.step) == "sync_dir") continue;
    g_fail_step = c.step;
    g_fail_after = c.after;
    g_fail_errno = c.err;
    md::store::set_blob_fault_hook(fail_step);
    try {
      blobs.write(cid, bytes);
      ADD_FAILURE() << "a failed " << c.step << " must throw";
    } catch (const md::Error& e) {
      EXPECT_EQ(e.code(), md::Errc::io) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::strerror(c.err)), std::string::npos) << e.what();
    }
    md::store::set_blob_fault_hook(nullptr);
    EXPECT_TRUE(files_under(dir.path()).empty()) << "after a failed " << c.step << " (after " << c.after << ")";
  }
  blobs.write(cid, bytes);
  const auto back = blobs.read(cid);
  ASSERT_TRUE(back);
  EXPECT_TRUE(*back == bytes);
}

std::atomic<int> g_einval_left{0};
int refuse_direct_io_once(const char* step) { return std::string(step) == "write" && g_einval_left-- > 0 ? EINVAL : 0; }

TEST(BlobFiles, DirectIoRefusedAtWriteTimeFallsBackToBufferedWrites) {
  // Some file systems accept O_DIRECT at open and refuse the writes (EINVAL).
  md::testing::TempDir dir;
  const md::store::BlobFiles blobs(dir / "store.db.blobs");
  const auto bytes = pattern((std::size_t{17} << 20) + 5, 3);
  const auto cid = md::codec::content_id(bytes);
  g_einval_left = 1;
  md::store::set_blob_fault_hook(refuse_direct_io_once);
  blobs.write(cid, bytes);
  md::store::set_blob_fault_hook(nullptr);
  EXPECT_LT(g_einval_left, 0) << "the file was written again after the refusal";
  const auto back = blobs.read(cid);
  ASSERT_TRUE(back);
  EXPECT_TRUE(*back == bytes);
}

INSTANTIATE_TEST_SUITE_P(Sync, BlobFilesTest,
                         ::testing::Values(md::store::BlobFiles::Sync::yes, md::store::BlobFiles::Sync::no),
                         [](const auto& param_info) {
                           return param_info.param == md::store::BlobFiles::Sync::yes ? std::string("Synced")
                                                                                      : std::string("NotSynced");
                         });

}  // namespace
