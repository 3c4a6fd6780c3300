#pragma once
// Engine-side helpers of transparent collections (see collections.cpp).

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mandala/detail/core.hpp"

namespace mandala::detail {

/// Names of the built-in structural ops (the original's names, recorded like any op).
namespace structural {
inline constexpr std::string_view make_list = "__make_list__";
inline constexpr std::string_view make_dict = "__make_dict__";
inline constexpr std::string_view list_getitem = "__list_getitem__";
inline constexpr std::string_view dict_getitem = "__dict_getitem__";
}  // namespace structural

/// Whether `op` is one of the built-in structural ops (user ops may not take these names).
bool is_structural(std::string_view op);

/// The history id that the getitem call of element `index` (list) or `key` (dict) gives it.
Id element_hid(CollectionKind kind, const Id& collection_hid, std::size_t index, const std::string& key);

/// The element refs of the stored collection `state` (lazy refs of `core`).
std::shared_ptr<const Elements> collection_elements(const std::shared_ptr<StorageCore>& core, const RefState& state,
                                                    CollectionKind kind);

/// Whether encoded bytes are a collection shape (ext type 3), from the header alone.
bool is_shape(std::span<const std::byte> bytes);

/// The bytes of a stored value with every collection shape in it replaced by its elements (an
/// array, or a map keyed by string), recursively: what an MList / MDict encodes as when plain.
/// Other values are returned unchanged.
std::vector<std::byte> materialize(StorageCore& core, std::vector<std::byte> bytes);

}  // namespace mandala::detail
