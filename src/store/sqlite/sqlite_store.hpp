#pragma once
// The SQLite backend of the Store interface (docs/storage-format.md, section 3).

#include <filesystem>
#include <memory>

#include "store/store.hpp"

namespace mandala::store {

/// Opens (creating when absent) an SQLite store; an empty path means a private in-memory one.
std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path& path, const StoreOptions& options);

}  // namespace mandala::store
