#pragma once
// Content-addressed files for large values: `<dir>/<hex[0:2]>/<hex>`, written atomically
// (temporary file, fsync, rename, fsync of the directory) and checked against their id on read.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "mandala/id.hpp"

namespace mandala::store {

/// Fault injection (tests): when set, called before each step of writing a blob file ("create",
/// "write", "sync", "rename", "sync_dir"); a non-zero errno it returns makes that step fail as if the system
/// call had failed with it.
using BlobFaultHook = int (*)(const char* step);
void set_blob_fault_hook(BlobFaultHook hook) noexcept;

class BlobFiles {
 public:
  /// Whether written files are synced to the disk: yes for a store's files; no for the files of
  /// an in-memory store, which end with the process anyway.
  enum class Sync { yes, no };

  explicit BlobFiles(std::filesystem::path dir, Sync sync = Sync::yes) : m_dir(std::move(dir)), m_sync(sync) {}

  /// Writes the value unless a file for it exists. Errc::io on failure (nothing half-written
  /// is ever visible under the final name, and a file this call created is removed again when
  /// its directory entry could not be synced).
  void write(const Id& cid, std::span<const std::byte> bytes) const;
  /// The bytes; nullopt when there is no file. Errc::corrupt_store when the content does not
  /// hash to `cid`.
  [[nodiscard]] std::optional<std::vector<std::byte>> read(const Id& cid) const;
  /// Removes the file; returns whether one existed.
  bool remove(const Id& cid) const;
  /// Every id that has a file (temporary files are not listed).
  [[nodiscard]] std::vector<Id> list() const;
  /// Temporary files of interrupted writes untouched for at least `min_age` (younger ones may
  /// belong to a write in progress in another process, unless the caller holds the store's
  /// write lock, under which all blob files are written).
  [[nodiscard]] std::vector<std::filesystem::path> stale_temporaries(
      std::chrono::seconds min_age = std::chrono::hours(1)) const;
  /// Removes those temporaries.
  void remove_temporaries(std::chrono::seconds min_age = std::chrono::hours(1)) const;
  [[nodiscard]] const std::filesystem::path& dir() const { return m_dir; }
  [[nodiscard]] std::filesystem::path path_of(const Id& cid) const;

 private:
  std::filesystem::path m_dir;
  Sync m_sync;
};

}  // namespace mandala::store
