#include "engine/collections.hpp"
#include "engine/engine.hpp"
#include "mandala/ref.hpp"
#include "util/type_name.hpp"

namespace mandala::detail {
using util::type_name;

std::vector<std::byte> load_value_bytes(const RefState& state) {
  if (!state.has_ids) throw Error(Errc::invalid_argument, "this ref has neither a value nor ids");
  auto core = state.storage.lock();
  if (!core)
    throw Error(Errc::closed, "the storage of ref " + state.hid.hex() +
                                  " was closed before its value was loaded; load values (ref.get()) while the "
                                  "storage is open, or open it again and use storage.ref(hid)");
  return core->load_ref_value(core, state);
}

void throw_wrong_type(const RefState& state, const std::type_info& wanted) {
  throw Error(Errc::decode, "ref " + (state.has_ids ? state.hid.hex() : std::string("(no ids)")) + " holds a " +
                                type_name(*state.type) + ", not a " + type_name(wanted));
}

namespace {
std::vector<std::byte> encoded_bytes(const RefState& state) {
  std::vector<std::byte> bytes;
  {
    std::lock_guard lock(state.mutex);
    if (state.value && state.encode) bytes = state.encode(state.value.get());
  }
  if (bytes.empty()) {
    bytes = load_value_bytes(state);
    // A collection shows its elements' values, not its shape.
    if (auto core = state.storage.lock()) bytes = materialize(*core, std::move(bytes));
  }
  return bytes;
}
}  // namespace

std::string ref_json(const RefState& state, std::size_t max_array_items) {
  return DecodedValue(encoded_bytes(state)).root().to_json(max_array_items);
}

std::string ref_text(const RefState& state, std::size_t max_chars) {
  return DecodedValue(encoded_bytes(state)).root().to_text(max_chars);
}

namespace {
std::shared_ptr<StorageCore> core_of(const RefState& state) {
  auto core = state.storage.lock();
  if (!core)
    throw Error(Errc::closed, "the storage of ref " + state.hid.hex() +
                                  " was closed before its elements were loaded; load them while the storage is open");
  return core;
}
}  // namespace

std::shared_ptr<const Elements> load_elements(const RefState& state, CollectionKind kind) {
  if (!state.has_ids) throw Error(Errc::invalid_argument, "this ref has neither elements nor ids");
  return collection_elements(core_of(state), state, kind);
}

std::vector<std::optional<std::vector<std::byte>>> load_bytes_of(const std::vector<std::shared_ptr<RefState>>& states) {
  std::vector<std::optional<std::vector<std::byte>>> out(states.size());
  std::vector<Id> cids;
  std::vector<std::size_t> where;
  std::shared_ptr<StorageCore> core;
  for (std::size_t i = 0; i < states.size(); ++i) {
    const auto& s = *states[i];
    {
      std::lock_guard lock(s.mutex);
      if (s.value || !s.has_ids) continue;
    }
    if (!core) core = core_of(s);
    cids.push_back(s.cid);
    where.push_back(i);
  }
  if (cids.empty()) return out;
  auto loaded = core->load_values(cids);
  for (std::size_t j = 0; j < loaded.size(); ++j) {
    // A transient value is recomputed (one by one: rare in collections).
    if (!loaded[j]) loaded[j] = core->load_ref_value(core, *states[where[j]]);
    if (!loaded[j])
      throw Error(Errc::not_found, "value " + cids[j].hex() + " of element ref " + states[where[j]]->hid.hex() +
                                       " is not in the store; it may have been removed by cleanup()");
    out[where[j]] = std::move(loaded[j]);
  }
  return out;
}

void throw_out_of_range(const RefState& state, std::size_t index, std::size_t size) {
  throw Error(Errc::invalid_argument, "index " + std::to_string(index) + " is out of range for list ref " +
                                          (state.has_ids ? state.hid.hex() : std::string("(no ids)")) + " of " +
                                          std::to_string(size) + " elements");
}

void throw_missing_key(const RefState& state, std::string_view key) {
  throw Error(Errc::not_found, "dict ref " + (state.has_ids ? state.hid.hex() : std::string("(no ids)")) +
                                   " has no key '" + std::string(key) + "'");
}

void throw_wrong_type_collection(const RefState& state, const std::type_info& wanted) {
  throw Error(Errc::decode, "ref " + (state.has_ids ? state.hid.hex() : std::string("(no ids)")) + " holds a " +
                                type_name(*state.assembled_type) + ", not a " + type_name(wanted));
}

}  // namespace mandala::detail
