#pragma once
// The element space of ComputationFrames: refs and calls loaded from one storage, interned to
// dense integer ids (Elem). Append-only: ids stay valid while frames share a Universe. Creator
// and consumer adjacency is kept over the loaded calls, so frames never query per element.

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/engine.hpp"
#include "mandala/storage.hpp"
#include "store/store.hpp"

namespace mandala::detail {

using Elem = std::uint32_t;
/// Sorted, duplicate-free element ids.
using ElemSet = std::vector<Elem>;
inline constexpr Elem no_elem = std::numeric_limits<Elem>::max();
inline constexpr std::uint32_t no_name = std::numeric_limits<std::uint32_t>::max();

/// One input or output of a call: its name, the edge label it projects to, and the ref.
struct Io {
  std::uint32_t name;
  std::uint32_t label;
  Elem ref;
};

struct CallRow {
  Id hid;
  Id cid;
  std::uint32_t op;  ///< name id
  std::uint32_t version = 0;
  std::int64_t created_ms = 0;
  std::span<const Io> inputs;   ///< sorted by name (in the Universe's Io blocks)
  std::span<const Io> outputs;  ///< sorted by name
};

/// Asks the kernel to back a block with 2 MiB pages (a hint: no effect where it has none).
void advise_huge_pages(void* p, std::size_t bytes) noexcept;

/// An allocator for the large columns of a Universe: blocks of 4 MiB and more are aligned to
/// and asked to be backed by 2 MiB pages (a frame over a million calls otherwise spends much of
/// its time faulting in 4 KiB pages as its columns grow).
template <class T>
struct ColumnAllocator {
  using value_type = T;
  ColumnAllocator() = default;
  template <class U>
  ColumnAllocator(const ColumnAllocator<U>& /*other*/) noexcept {}  // NOLINT(google-explicit-constructor)
  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < (std::size_t{4} << 20)) return std::allocator<T>{}.allocate(n);
    const std::size_t rounded = (bytes + huge_page - 1) / huge_page * huge_page;
    void* p = std::aligned_alloc(huge_page, rounded);
    if (p == nullptr) throw std::bad_alloc();
    advise_huge_pages(p, rounded);
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < (std::size_t{4} << 20)) std::allocator<T>{}.deallocate(p, n);
    else std::free(p);
  }
  template <class U>
  bool operator==(const ColumnAllocator<U>& /*other*/) const noexcept {
    return true;
  }

 private:
  static constexpr std::size_t huge_page = std::size_t{2} << 20;
};
template <class T>
using Column = std::vector<T, ColumnAllocator<T>>;

/// Open-addressing index from ids to element ids, without an allocation per entry. Ids are
/// uniformly distributed, so their first 8 bytes place a slot and the next 4 are a tag that
/// settles most probes without reading the id itself; `id_of(elem)` gives an entry's full id.
class IdIndex {
 public:
  template <class IdOf>
  [[nodiscard]] Elem find(const Id& id, IdOf&& id_of) const {
    if (m_slots.empty()) return no_elem;
    const std::uint32_t tag = tag_of(id);
    for (std::size_t i = home(id);; i = (i + 1) & mask()) {
      const Slot& s = m_slots[i];
      if (s.elem == no_elem) return no_elem;
      if (s.tag == tag && same(id_of(s.elem), id)) return s.elem;
    }
  }
  /// Adds an entry for `id`, which must not be present.
  template <class IdOf>
  void insert(const Id& id, Elem elem, IdOf&& id_of) {
    reserve(m_size + 1, id_of);
    place(id, elem);
    ++m_size;
  }
  /// Room for `n` entries without growing (load factor at most one half).
  template <class IdOf>
  void reserve(std::size_t n, IdOf&& id_of) {
    if (n * 2 <= m_slots.size()) return;
    Column<Slot> old;
    old.swap(m_slots);
    m_slots.assign(std::bit_ceil(std::max<std::size_t>(n * 2, 16)), Slot{});
    for (const Slot& s : old)
      if (s.elem != no_elem) place(id_of(s.elem), s.elem);
  }

 private:
  struct Slot {
    std::uint32_t tag = 0;
    Elem elem = no_elem;
  };
  static bool same(const Id& a, const Id& b) {
    std::uint64_t x[2], y[2];
    std::memcpy(x, a.bytes.data(), sizeof x);
    std::memcpy(y, b.bytes.data(), sizeof y);
    return ((x[0] ^ y[0]) | (x[1] ^ y[1])) == 0;
  }
  static std::uint32_t tag_of(const Id& id) {
    std::uint32_t t;
    std::memcpy(&t, id.bytes.data() + 8, sizeof t);
    return t;
  }
  [[nodiscard]] std::size_t mask() const { return m_slots.size() - 1; }
  [[nodiscard]] std::size_t home(const Id& id) const { return std::hash<Id>{}(id)&mask(); }
  void place(const Id& id, Elem elem) {
    std::size_t i = home(id);
    while (m_slots[i].elem != no_elem) i = (i + 1) & mask();
    m_slots[i] = {tag_of(id), elem};
  }

  Column<Slot> m_slots;
  std::size_t m_size = 0;
};

/// A set of elements as one bit per element id: constant-time membership for the set
/// operations over large frames, and a sorted ElemSet back by one scan of the words. Ids beyond
/// the size it was made with are absent.
class ElemBits {
 public:
  ElemBits() = default;
  explicit ElemBits(std::size_t universe) : m_words((universe + 63) / 64, 0) {}
  ElemBits(const ElemSet& s, std::size_t universe) : ElemBits(universe) {
    for (auto e : s) set(e);
  }
  [[nodiscard]] bool test(Elem e) const {
    const std::size_t w = e >> 6;
    return w < m_words.size() && ((m_words[w] >> (e & 63)) & 1) != 0;
  }
  void set(Elem e) { m_words[e >> 6] |= std::uint64_t{1} << (e & 63); }
  void reset(Elem e) {
    if ((e >> 6) < m_words.size()) m_words[e >> 6] &= ~(std::uint64_t{1} << (e & 63));
  }
  /// Sets `e`; whether it was not set before.
  bool insert(Elem e) {
    auto& w = m_words[e >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (e & 63);
    if ((w & bit) != 0) return false;
    w |= bit;
    return true;
  }
  /// The set elements, sorted.
  [[nodiscard]] ElemSet elems() const {
    ElemSet out;
    for (std::size_t w = 0; w < m_words.size(); ++w)
      for (std::uint64_t bits = m_words[w]; bits != 0; bits &= bits - 1)
        out.push_back(static_cast<Elem>(w * 64 + static_cast<std::size_t>(std::countr_zero(bits))));
    return out;
  }

 private:
  std::vector<std::uint64_t> m_words;
};

class Universe {
 public:
  explicit Universe(std::shared_ptr<StorageCore> core) : m_core(std::move(core)) {}

  [[nodiscard]] const std::shared_ptr<StorageCore>& core() const { return m_core; }

  std::uint32_t name_id(std::string_view name);
  [[nodiscard]] std::uint32_t find_name(std::string_view name) const;  ///< no_name when unknown
  [[nodiscard]] const std::string& name(std::uint32_t id) const { return m_names[id]; }

  Elem intern_ref(const Id& hid, const Id& cid);
  /// Interns a ref given by the user (keeps its state, so in-memory values stay available).
  Elem intern_ref(const AnyRef& ref);
  Elem intern_call(const store::CallRecord& record);
  /// The calls of an op (every version, or one), interned as the store reads them.
  std::vector<Elem> load_calls_of(std::string_view op, std::optional<std::uint32_t> version);
  /// Whether the ref is a raw input (its hid derives from its content alone: it has no creator).
  bool is_raw(Elem r);
  [[nodiscard]] Elem find_ref(const Id& hid) const;
  [[nodiscard]] Elem find_call(const Id& hid) const;

  [[nodiscard]] std::size_t num_refs() const { return m_ref_hid.size(); }
  [[nodiscard]] std::size_t num_calls() const { return m_calls.size(); }
  [[nodiscard]] const Id& ref_hid(Elem r) const { return m_ref_hid[r]; }
  [[nodiscard]] const Id& ref_cid(Elem r) const { return m_ref_cid[r]; }
  /// Whether the ref's value is transient (not stored: OpOptions::transient), as the calls
  /// loaded so far say.
  [[nodiscard]] bool transient(Elem r) const { return (m_ref_raw[r] & transient_bit) != 0; }
  [[nodiscard]] Elem creator(Elem r) const { return m_ref_creator[r]; }
  /// The loaded calls with `r` as an input, in the order they were loaded.
  class Consumers {
   public:
    class iterator {
     public:
      iterator(const Universe* u, std::uint32_t at) : m_u(u), m_at(at) {}
      Elem operator*() const { return m_u->m_consumer_links[m_at].call; }
      iterator& operator++() {
        m_at = m_u->m_consumer_links[m_at].next;
        return *this;
      }
      bool operator!=(const iterator& other) const { return m_at != other.m_at; }

     private:
      const Universe* m_u;
      std::uint32_t m_at;
    };
    Consumers(const Universe* u, std::uint32_t first) : m_u(u), m_first(first) {}
    [[nodiscard]] iterator begin() const { return {m_u, m_first}; }
    [[nodiscard]] iterator end() const { return {m_u, no_elem}; }

   private:
    const Universe* m_u;
    std::uint32_t m_first;
  };
  [[nodiscard]] Consumers consumers(Elem r) const { return {this, m_ref_first_consumer[r]}; }
  [[nodiscard]] const CallRow& call(Elem c) const { return m_calls[c]; }
  [[nodiscard]] const std::string& op_name(Elem c) const { return m_names[m_calls[c].op]; }
  /// Size of the element id space of refs (variables) or calls (function nodes).
  [[nodiscard]] std::size_t space(bool refs) const { return refs ? num_refs() : num_calls(); }

  /// The public objects (refs made once per element and kept).
  AnyRef ref(Elem r);
  CallInfo call_info(Elem c);
  /// Declared output names of an op version (cached).
  const std::vector<std::string>& op_outputs(std::uint32_t op, std::uint32_t version);

  /// Loads creators / consumers of the refs from the storage (bulk) and interns them. These
  /// loads intern calls as the store reads them: after a read the store retried (another
  /// connection's lock), the result may name a call twice.
  std::vector<Elem> load_creators(std::span<const Elem> refs);
  /// With `resolved` (a flag per ref, grown as needed), refs flagged already are not queried
  /// again and the queried ones are flagged: one expansion never asks twice for the same ref.
  std::vector<Elem> load_consumers(std::span<const Elem> refs, std::vector<char>* resolved = nullptr);

  /// Encoded bytes of the refs' values (in memory or loaded in bulk); nullopt where missing.
  std::vector<std::optional<std::vector<std::byte>>> value_bytes(std::span<const Elem> refs);

 private:
  /// The edge label of input/output `io_name` (name id `name`) of a call of `op`.
  std::uint32_t label_of(std::uint32_t op, const std::string& io_name, std::uint32_t name);
  void add_consumer(Elem r, Elem call);
  /// Room for `n` more Io entries in one block (CallRow spans point into blocks that never move).
  Io* io_room(std::size_t n);

  std::shared_ptr<StorageCore> m_core;
  std::vector<std::string> m_names;
  std::unordered_map<std::string, std::uint32_t> m_name_index;

  Column<Id> m_ref_hid;
  Column<Id> m_ref_cid;
  Column<Elem> m_ref_creator;
  /// Consumers as lists linked through m_consumer_links (no allocation per ref).
  struct ConsumerLink {
    Elem call;
    std::uint32_t next;  ///< no_elem at the end
  };
  Column<std::uint32_t> m_ref_first_consumer, m_ref_last_consumer;
  Column<ConsumerLink> m_consumer_links;
  Column<std::shared_ptr<RefState>> m_ref_state;
  /// Bits 0-1: 0 not known yet, 1 raw input, 2 not raw; transient_bit: a transient value.
  Column<char> m_ref_raw;
  static constexpr char transient_bit = 4;
  IdIndex m_ref_index;

  Column<CallRow> m_calls;
  IdIndex m_call_index;
  std::vector<std::unique_ptr<Io[]>> m_io_blocks;
  std::size_t m_io_used = 0;  ///< entries used in the last block
  std::size_t m_io_capacity = 0;
  std::unordered_map<std::uint64_t, std::vector<std::string>> m_op_outputs;
};

// ---- sorted-set helpers ---------------------------------------------------------------------
inline bool contains(const ElemSet& s, Elem e) { return std::binary_search(s.begin(), s.end(), e); }
void normalize(ElemSet& s);
ElemSet set_union(const ElemSet& a, const ElemSet& b);
ElemSet set_intersection(const ElemSet& a, const ElemSet& b);
ElemSet set_difference(const ElemSet& a, const ElemSet& b);
bool is_subset(const ElemSet& a, const ElemSet& b);

}  // namespace mandala::detail
