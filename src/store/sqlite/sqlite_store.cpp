// The SQLite backend of Store: the store's lifetime, its claims, open_sqlite_store (class: sqlite_store_impl.hpp).

#include "store/sqlite/sqlite_store.hpp"

#include "store/sqlite/sqlite_store_impl.hpp"

namespace mandala::store {
namespace sqlite_impl {

SqliteStore::SqliteStore(const fs::path& path, const StoreOptions& options)
    : m_options(options), m_memory(path.empty()) {
  if (!m_memory) m_blobs.emplace(fs::path(path.string() + ".blobs"));
  open(path, m_memory);
  if (!m_memory && !options.read_only) m_claims.emplace(path, options.lock_timeout);
}

SqliteStore::~SqliteStore() {
  std::error_code ec;
  if (!m_temporary_blob_dir.empty()) fs::remove_all(m_temporary_blob_dir, ec);
}

bool SqliteStore::shares_claims() const { return m_claims.has_value(); }

bool SqliteStore::try_claim(const Id& key, const Id& owner, std::chrono::milliseconds lease) {
  return m_claims->try_claim(key, owner, lease);
}

std::vector<Id> SqliteStore::renew_claims(const Id& owner, std::span<const Id> keys, std::chrono::milliseconds lease) {
  return m_claims->renew(owner, keys, lease);
}

void SqliteStore::release_claims(const Id& owner, std::span<const Id> keys) { m_claims->release(owner, keys); }

}  // namespace sqlite_impl

std::unique_ptr<Store> open_sqlite_store(const std::filesystem::path& path, const StoreOptions& options) {
  return std::make_unique<sqlite_impl::SqliteStore>(path, options);
}

}  // namespace mandala::store
