#pragma once
// The PostgreSQL backend: one database shared by every process and machine that opens it
// (docs/storage-format.md, "PostgreSQL").

#include <memory>
#include <string>

#include "store/store.hpp"

namespace mandala::store {

/// Opens the mandala store in the database `location` names (a postgresql:// URL, given to
/// libpq as it is), creating its tables in an empty database. `shown` is the location without
/// its password, for messages.
std::unique_ptr<Store> open_postgres_store(const std::string& location, const std::string& shown,
                                           const StoreOptions& options);

}  // namespace mandala::store
