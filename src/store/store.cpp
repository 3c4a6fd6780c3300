// The Store interface's defaults: a backend without claims (src/store/store.hpp).

#include "store/store.hpp"

namespace mandala::store {
namespace {
[[noreturn]] void no_claims() {
  throw Error(Errc::invalid_argument, "this store does not share claims (Store::shares_claims() is false)");
}
}  // namespace

bool Store::try_claim(const Id&, const Id&, std::chrono::milliseconds) { no_claims(); }
std::vector<Id> Store::renew_claims(const Id&, std::span<const Id>, std::chrono::milliseconds) { no_claims(); }
void Store::release_claims(const Id&, std::span<const Id>) { no_claims(); }

}  // namespace mandala::store
