#include "store/blob_files.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <system_error>

#include "codec/hash.hpp"
#include "mandala/error.hpp"

namespace mandala::store {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void throw_io(const std::string& what, const fs::path& path, int err) {
  throw Error(Errc::io,
              what + " " + path.string() + ": " + std::strerror(err) +
                  (err == ENOSPC ? " (the disk is full: free space and retry; stored calls are intact)" : ""));
}

class Fd {
 public:
  explicit Fd(int fd) : m_fd(fd) {}
  ~Fd() {
    if (m_fd >= 0) ::close(m_fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : m_fd(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      if (m_fd >= 0) ::close(m_fd);
      m_fd = other.release();
    }
    return *this;
  }
  [[nodiscard]] int get() const { return m_fd; }
  int release() { return std::exchange(m_fd, -1); }

 private:
  int m_fd;
};

constexpr std::string_view tmp_marker = ".tmp.";

std::atomic<BlobFaultHook> fault_hook{nullptr};

/// The injected errno for this step (0: none).
int injected(const char* step) {
  const BlobFaultHook hook = fault_hook.load(std::memory_order_relaxed);
  return hook != nullptr ? hook(step) : 0;
}

/// Syncs a directory's entries; the errno of the failure, 0 on success.
int fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return errno;
  if (const int fault = injected("sync_dir")) return fault;
  return ::fsync(fd.get()) == 0 ? 0 : errno;
}

/// Creates `dir` and its missing parents, syncing the directory above each one created so that
/// the new entries survive a crash. Errc::io on failure.
void create_directories_durably(const fs::path& dir, BlobFiles::Sync sync) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return;
  const fs::path parent = dir.parent_path();
  if (!parent.empty() && parent != dir) create_directories_durably(parent, sync);
  if (::mkdir(dir.c_str(), 0755) != 0) {
    const int err = errno;
    if (err == EEXIST && fs::is_directory(dir, ec)) return;  // made meanwhile by another process
    throw_io("cannot create blob directory", dir, err);
  }
  const fs::path above = parent.empty() ? fs::path(".") : parent;
  if (sync == BlobFiles::Sync::yes)
    if (const int err = fsync_dir(above)) throw_io("cannot sync blob file directory", above, err);
}

// Large files are written and read with direct I/O (below), in chunks through aligned buffers.
constexpr std::size_t direct_min_bytes = std::size_t{8} << 20;
constexpr std::size_t direct_chunk_bytes = std::size_t{8} << 20;
constexpr std::size_t direct_buffers = 4;       // up to this many chunks in flight
constexpr std::size_t direct_alignment = 4096;  // a multiple of every disk's logical block size

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

/// Faults in a large buffer at once rather than a page at a time as it is written (advice
/// only: where the kernel refuses it, pages are faulted in as before).
void populate(std::byte* data, std::size_t size) {
  if (size < direct_min_bytes) return;
  constexpr std::uintptr_t page = 4096;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + page - 1) & ~(page - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(data + size) & ~(page - 1);
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_POPULATE_WRITE);
}

/// Writes all `n` bytes at `offset`; 0, or the errno of the failure.
int write_all(int fd, const char* p, std::size_t n, off_t offset) {
  while (n > 0) {
    const int fault = injected("write");
    const ssize_t w = fault != 0 ? (errno = fault, -1) : ::pwrite(fd, p, n, offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<std::size_t>(w);
    offset += w;
  }
  return 0;
}

// Large files are written with O_DIRECT: the bytes go from the process to the disk without
// being copied into the page cache first (that copy, not the disk, was what limited writing a
// large value). They pass through aligned buffers: helper threads write filled buffers, several
// at once, while the caller fills the next, so the disk always has a write queued.

struct FreeDeleter {
  void operator()(void* p) const noexcept { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<std::byte, FreeDeleter>;

/// Writes `bytes` to `fd`, opened with O_DIRECT, then cuts the file to their length (the last
/// chunk is written padded to the alignment). 0, or the errno of the failure; EINVAL when the
/// file system refuses direct I/O for this file (the caller then writes it without).
int write_direct(int fd, std::span<const std::byte> bytes) {
  AlignedBuffer buffers[direct_buffers];
  for (auto& b : buffers) {
    b.reset(static_cast<std::byte*>(std::aligned_alloc(direct_alignment, direct_chunk_bytes)));
    if (!b) return ENOMEM;
  }
  // (Declared after the buffers: a future of std::async waits for its write when destroyed,
  // before the buffers are freed.)
  std::future<int> in_flight[direct_buffers];
  const auto finish = [](std::future<int>& f) { return f.valid() ? f.get() : 0; };
  int err = 0;
  std::size_t k = 0;
  for (std::size_t offset = 0; offset < bytes.size(); offset += direct_chunk_bytes, ++k) {
    const std::size_t slot = k % direct_buffers;
    err = finish(in_flight[slot]);  // the write of chunk k - direct_buffers, from this buffer
    if (err != 0) break;
    const std::size_t n = std::min(direct_chunk_bytes, bytes.size() - offset);
    const std::size_t padded = (n + direct_alignment - 1) / direct_alignment * direct_alignment;
    std::byte* buffer = buffers[slot].get();
    std::memcpy(buffer, bytes.data() + offset, n);
    std::memset(buffer + n, 0, padded - n);
    const auto write_chunk = [fd, buffer, padded, offset] {
      return write_all(fd, reinterpret_cast<const char*>(buffer), padded, static_cast<off_t>(offset));
    };
    try {
      in_flight[slot] = std::async(std::launch::async, write_chunk);
    } catch (const std::system_error&) {
      err = write_chunk();  // no thread to be had: write it here
      if (err != 0) break;
    }
  }
  for (auto& f : in_flight)
    if (const int e = finish(f); err == 0) err = e;
  if (err == 0 && bytes.size() % direct_alignment != 0 && ::ftruncate(fd, static_cast<off_t>(bytes.size())) != 0)
    err = errno;
  return err;
}

/// Reads all `n` bytes at `offset` into `p`; the count read (less at the end of the file), or
/// -errno.
ssize_t read_all(int fd, std::byte* p, std::size_t n, off_t offset) {
  std::size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd, p + got, n - got, offset + static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return static_cast<ssize_t>(got);
}

/// Reads the first `out.size()` bytes of `fd`, opened with O_DIRECT, into `out` through aligned
/// buffers (helper threads read ahead, up to four chunks at once, while the caller copies). The
/// count read (less when the file is shorter), or -errno; -EINVAL when the file system refuses
/// direct I/O for this file.
ssize_t read_direct(int fd, std::span<std::byte> out) {
  AlignedBuffer buffers[direct_buffers];
  for (auto& b : buffers) {
    b.reset(static_cast<std::byte*>(std::aligned_alloc(direct_alignment, direct_chunk_bytes)));
    if (!b) return -ENOMEM;
  }
  std::future<ssize_t> in_flight[direct_buffers];  // (after the buffers: see write_direct)
  const std::size_t chunks = (out.size() + direct_chunk_bytes - 1) / direct_chunk_bytes;
  const auto start = [&](std::size_t k) {
    const std::size_t offset = k * direct_chunk_bytes;
    const std::size_t n = std::min(direct_chunk_bytes, out.size() - offset);
    const std::size_t padded = (n + direct_alignment - 1) / direct_alignment * direct_alignment;
    std::byte* buffer = buffers[k % direct_buffers].get();
    const auto read_chunk = [fd, buffer, padded, offset] {
      return read_all(fd, buffer, padded, static_cast<off_t>(offset));
    };
    try {
      in_flight[k % direct_buffers] = std::async(std::launch::async, read_chunk);
    } catch (const std::system_error&) {
      in_flight[k % direct_buffers] = std::async(std::launch::deferred, read_chunk);  // read when needed
    }
  };
  for (std::size_t k = 0; k < std::min(chunks, direct_buffers); ++k) start(k);
  std::size_t got = 0;
  ssize_t result = 0;
  for (std::size_t k = 0; k < chunks; ++k) {
    const ssize_t r = in_flight[k % direct_buffers].get();
    if (r < 0) {
      result = r;
      break;
    }
    const std::size_t want = std::min(direct_chunk_bytes, out.size() - k * direct_chunk_bytes);
    const std::size_t n = std::min(static_cast<std::size_t>(r), want);
    std::memcpy(out.data() + got, buffers[k % direct_buffers].get(), n);
    got += n;
    if (n < want) break;  // the file ended early
    if (k + direct_buffers < chunks) start(k + direct_buffers);
  }
  for (auto& f : in_flight)
    if (f.valid()) f.wait();
  return result < 0 ? result : static_cast<ssize_t>(got);
}

/// Writes `bytes` to `fd` through the page cache, from offset 0, and cuts the file to their
/// length (a failed direct write may have left more). 0, or the errno of the failure.
int write_buffered(int fd, std::span<const std::byte> bytes) {
  if (const int err = write_all(fd, reinterpret_cast<const char*>(bytes.data()), bytes.size(), 0)) return err;
  return ::ftruncate(fd, static_cast<off_t>(bytes.size())) == 0 ? 0 : errno;
}

}  // namespace

void set_blob_fault_hook(BlobFaultHook hook) noexcept { fault_hook.store(hook); }

fs::path BlobFiles::path_of(const Id& cid) const {
  const std::string hex = cid.hex();
  return m_dir / hex.substr(0, 2) / hex;
}

void BlobFiles::write(const Id& cid, std::span<const std::byte> bytes) const {
  const fs::path final_path = path_of(cid);
  std::error_code ec;
  if (fs::exists(final_path, ec)) return;
  create_directories_durably(final_path.parent_path(), m_sync);

  static std::atomic<unsigned> counter{0};
  const fs::path tmp = final_path.string() + std::string(tmp_marker) + std::to_string(::getpid()) + "." +
                       std::to_string(counter.fetch_add(1));
  if (const int err = injected("create")) throw_io("cannot create blob file", tmp, err);
  constexpr int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC;
  // Direct I/O for large files, synced or not: copying them into the page cache costs more than
  // writing them to the disk (and would leave as much memory to write back later).
  bool direct = bytes.size() >= direct_min_bytes;
  Fd fd(::open(tmp.c_str(), flags | (direct ? O_DIRECT : 0), 0644));
  if (fd.get() < 0 && direct && errno == EINVAL) {  // a file system without direct I/O
    direct = false;
    fd = Fd(::open(tmp.c_str(), flags, 0644));
  }
  if (fd.get() < 0) throw_io("cannot create blob file", tmp, errno);
  int write_err = direct ? write_direct(fd.get(), bytes) : write_buffered(fd.get(), bytes);
  if (direct && write_err == EINVAL) {
    // Refused at write time (some file systems accept O_DIRECT at open only): without it.
    const int fl = ::fcntl(fd.get(), F_GETFL);
    write_err = fl < 0 || ::fcntl(fd.get(), F_SETFL, fl & ~O_DIRECT) != 0 ? errno : write_buffered(fd.get(), bytes);
  }
  if (write_err != 0) {
    ::unlink(tmp.c_str());
    throw_io("cannot write blob file", tmp, write_err);
  }
  const int sync_fault = injected("sync");
  if (sync_fault != 0) errno = sync_fault;
  if (sync_fault != 0 || (m_sync == Sync::yes && ::fsync(fd.get()) != 0) || ::close(fd.release()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_io("cannot sync blob file", tmp, err);
  }
  const int rename_fault = injected("rename");
  if (rename_fault != 0) errno = rename_fault;
  if (rename_fault != 0 || ::rename(tmp.c_str(), final_path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw_io("cannot rename blob file into place", final_path, err);
  }
  if (m_sync == Sync::no) return;
  if (const int err = fsync_dir(final_path.parent_path())) {
    // The file might not survive a crash: take it away again, so that the write fails with no
    // trace (no committed row refers to it: under the write lock, a file that was there already
    // returned above) and the retry writes it anew.
    ::unlink(final_path.c_str());
    throw_io("cannot sync the directory of blob file", final_path, err);
  }
}

std::optional<std::vector<std::byte>> BlobFiles::read(const Id& cid) const {
  const fs::path path = path_of(cid);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_io("cannot open blob file", path, errno);
  }
  const off_t size = ::lseek(fd.get(), 0, SEEK_END);
  if (size < 0 || ::lseek(fd.get(), 0, SEEK_SET) < 0) throw_io("cannot seek blob file", path, errno);
  std::vector<std::byte> out;
  out.reserve(static_cast<std::size_t>(size));
  populate(out.data(), out.capacity());
  out.resize(static_cast<std::size_t>(size));
  ssize_t got = -EINVAL;
  if (out.size() >= direct_min_bytes) {
    // Large files are read with direct I/O, like they are written (the copy out of the page
    // cache is the slow part); a file system that refuses it is read as usual.
    Fd direct(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_DIRECT));
    if (direct.get() >= 0) got = read_direct(direct.get(), out);
  }
  if (got == -EINVAL) got = read_all(fd.get(), out.data(), out.size(), 0);
  if (got < 0) throw_io("cannot read blob file", path, static_cast<int>(-got));
  out.resize(static_cast<std::size_t>(got));
  if (codec::content_id(out) != cid)
    throw Error(Errc::corrupt_store, "blob file " + path.string() +
                                         " is damaged (its content does not match its id); restore it from a backup "
                                         "or drop the calls that use it");
  return out;
}

bool BlobFiles::remove(const Id& cid) const {
  std::error_code ec;
  return fs::remove(path_of(cid), ec);
}

std::vector<Id> BlobFiles::list() const {
  std::vector<Id> out;
  std::error_code ec;
  if (!fs::is_directory(m_dir, ec)) return out;
  for (const auto& entry : fs::recursive_directory_iterator(m_dir, ec)) {
    if (!entry.is_regular_file()) continue;
    if (auto id = Id::from_hex(entry.path().filename().string())) out.push_back(*id);
  }
  return out;
}

std::vector<fs::path> BlobFiles::stale_temporaries(std::chrono::seconds min_age) const {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(m_dir, ec)) return out;
  const auto cutoff = fs::file_time_type::clock::now() - min_age;
  for (const auto& entry : fs::recursive_directory_iterator(m_dir, ec))
    if (entry.is_regular_file() && entry.path().filename().string().find(tmp_marker) != std::string::npos &&
        entry.last_write_time(ec) <= cutoff)
      out.push_back(entry.path());
  return out;
}

void BlobFiles::remove_temporaries(std::chrono::seconds min_age) const {
  std::error_code ec;
  for (const auto& p : stale_temporaries(min_age)) fs::remove(p, ec);
}

}  // namespace mandala::store
