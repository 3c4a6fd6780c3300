#pragma once
// The columnar data behind a Table: per column a vector of cell codes over the frame's element
// space (refs for variable columns, calls for function columns).

#include <algorithm>
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

/// Interns collections (sorted element sets) so that equal collections get equal codes. The
/// index is an open-addressing table of positions in `sets` (a table of a million rows interns
/// as many collections).
struct CollectionPool {
  std::vector<ElemSet> sets;
  CellCode code_of(const ElemSet& s) {
    if (s.empty()) return null_cell;
    if (s.size() == 1) return static_cast<CellCode>(s.front());
    if ((sets.size() + 1) * 2 > m_slots.size()) grow();
    const std::uint64_t h = hash(s);
    for (std::size_t i = h & (m_slots.size() - 1);; i = (i + 1) & (m_slots.size() - 1)) {
      const std::uint32_t at = m_slots[i];
      if (at == no_elem) {
        m_slots[i] = static_cast<std::uint32_t>(sets.size());
        m_hashes.push_back(h);
        sets.push_back(s);
        return collection_code(sets.size() - 1);
      }
      if (m_hashes[at] == h && sets[at] == s) return collection_code(at);
    }
  }

 private:
  static std::uint64_t hash(const ElemSet& s) {
    std::uint64_t h = 0x9e3779b97f4a7c15ULL ^ s.size();
    for (auto e : s) {
      h = (h ^ e) * 0xbf58476d1ce4e5b9ULL;
      h ^= h >> 31;
    }
    return h;
  }
  void grow() {
    m_slots.assign(std::max<std::size_t>(16, m_slots.size() * 2), no_elem);
    for (std::size_t k = 0; k < sets.size(); ++k) {
      std::size_t i = m_hashes[k] & (m_slots.size() - 1);
      while (m_slots[i] != no_elem) i = (i + 1) & (m_slots.size() - 1);
      m_slots[i] = static_cast<std::uint32_t>(k);
    }
  }
  std::vector<std::uint32_t> m_slots;   ///< positions in `sets`; no_elem when free
  std::vector<std::uint64_t> m_hashes;  ///< of each set
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
