#pragma once
// A bounded map with two generations: inserts go to the young one; when it holds `capacity`
// entries it becomes the old one (the previous old generation is dropped), so the `capacity`
// most recently used entries are always kept, and at most twice as many. A hit in the old
// generation moves the entry back to the young one. Least-recently-used entries go first, at
// O(1) cost per operation and no per-entry bookkeeping. Not thread-safe.

#include <cstddef>
#include <unordered_map>
#include <utility>

namespace mandala::util {

template <class K, class V, class Hash = std::hash<K>>
class GenerationalCache {
 public:
  explicit GenerationalCache(std::size_t capacity) : m_generation(capacity < 1 ? 1 : capacity) {}

  /// The cached value, or nullptr; valid until the next non-const call.
  V* find(const K& key) {
    if (auto it = m_young.find(key); it != m_young.end()) return &it->second;
    auto it = m_old.find(key);
    if (it == m_old.end()) return nullptr;
    V value = std::move(it->second);
    m_old.erase(it);
    return &put(key, std::move(value));
  }

  V& put(const K& key, V value) {
    if (m_young.size() >= m_generation) {
      m_old = std::move(m_young);
      m_young = std::unordered_map<K, V, Hash>();
    }
    return m_young.insert_or_assign(key, std::move(value)).first->second;
  }

  void clear() {
    m_young.clear();
    m_old.clear();
  }
  [[nodiscard]] std::size_t size() const { return m_young.size() + m_old.size(); }

 private:
  std::size_t m_generation;
  std::unordered_map<K, V, Hash> m_young;
  std::unordered_map<K, V, Hash> m_old;
};

}  // namespace mandala::util
