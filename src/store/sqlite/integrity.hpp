#pragma once
// The store's integrity check (Storage::check_integrity): each kind of check is one function
// over the SQLite schema of docs/storage-format.md and the blob files beside it.

#include <sqlite3.h>

#include "mandala/reports.hpp"
#include "store/blob_files.hpp"

namespace mandala::store {

/// Runs every check inside one read transaction (a consistent snapshot; other processes may keep
/// writing). `blobs` is null for an in-memory store. Never writes.
IntegrityReport check_integrity(sqlite3* db, const BlobFiles* blobs, const ProgressCallback& progress);

}  // namespace mandala::store
