#pragma once
// The renames layer (docs/storage-format.md 2.2): every store is opened through it. The backend
// keeps identity names in all its tables; this layer shows current names, translates what is
// written and asked for back to identity names, and decides the identity names of declared ops.

#include <memory>

#include "store/store.hpp"

namespace mandala::store {

/// `backend` seen with current names. `read_only`: what declarations decide (a rename said by
/// `formerly`, a fresh identity) is kept in memory, not recorded.
std::unique_ptr<Store> with_renames(std::unique_ptr<Store> backend, bool read_only);

}  // namespace mandala::store
