#pragma once
// The engine's VersionResolver for a storage: syncs each component's history with the
// program's current code (fingerprints and declared dependencies) and yields the op's semantic
// code version.

#include <memory>

#include "engine/engine.hpp"

namespace mandala::versioning {

std::unique_ptr<detail::VersionResolver> make_resolver(const StorageOptions& options);

}  // namespace mandala::versioning
