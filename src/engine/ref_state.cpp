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
  return core->load_value(state.cid);
}

void throw_wrong_type(const RefState& state, const std::type_info& wanted) {
  throw Error(Errc::decode, "ref " + (state.has_ids ? state.hid.hex() : std::string("(no ids)")) + " holds a " +
                                type_name(*state.type) + ", not a " + type_name(wanted));
}

std::string ref_json(const RefState& state, std::size_t max_array_items) {
  std::vector<std::byte> bytes;
  {
    std::lock_guard lock(state.mutex);
    if (state.value && state.encode) bytes = state.encode(state.value.get());
  }
  if (bytes.empty()) bytes = load_value_bytes(state);
  return DecodedValue(bytes).root().to_json(max_array_items);
}

}  // namespace mandala::detail
