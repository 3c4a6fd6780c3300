#pragma once
// The columnar data behind a Table: per column a vector of cell codes over the frame's element
// space (refs for variable columns, calls for function columns).

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frame/universe.hpp"
#include "mandala/table.hpp"

namespace mandala::detail {

/// Cell codes: null_cell, an element id (>= 0), or a collection (<= -2: index -(code + 2)).
using CellCode = std::int64_t;
inline constexpr CellCode null_cell = -1;
inline CellCode collection_code(std::size_t index) { return -2 - static_cast<CellCode>(index); }
inline std::size_t collection_index(CellCode code) { return static_cast<std::size_t>(-(code + 2)); }

/// Interns collections (sorted element sets) so that equal collections get equal codes.
struct CollectionPool {
  std::vector<ElemSet> sets;
  std::map<ElemSet, std::size_t> index;
  CellCode code_of(const ElemSet& s) {
    if (s.empty()) return null_cell;
    if (s.size() == 1) return static_cast<CellCode>(s.front());
    auto it = index.find(s);
    if (it == index.end()) {
      it = index.emplace(s, sets.size()).first;
      sets.push_back(s);
    }
    return collection_code(it->second);
  }
};

struct TableData {
  std::shared_ptr<Universe> u;
  std::vector<std::string> names;
  std::vector<char> call_column;             ///< 1: the column holds calls
  std::vector<std::vector<CellCode>> cells;  ///< [column][row]
  std::shared_ptr<const CollectionPool> pool;
  Values display = Values::values;
  std::size_t rows = 0;

  [[nodiscard]] std::vector<Elem> elements(std::size_t column, std::size_t row) const {
    const CellCode code = cells[column][row];
    if (code == null_cell) return {};
    if (code >= 0) return {static_cast<Elem>(code)};
    return pool->sets[collection_index(code)];
  }
};

}  // namespace mandala::detail
