#pragma once
// The element space of ComputationFrames: refs and calls loaded from one storage, interned to
// dense integer ids (Elem). Append-only: ids stay valid while frames share a Universe. Creator
// and consumer adjacency is kept over the loaded calls, so frames never query per element.

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
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
  std::vector<Io> inputs;   ///< sorted by name
  std::vector<Io> outputs;  ///< sorted by name
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
  std::vector<Elem> intern_calls(const std::vector<store::CallRecord>& records);
  [[nodiscard]] Elem find_ref(const Id& hid) const;
  [[nodiscard]] Elem find_call(const Id& hid) const;

  [[nodiscard]] std::size_t num_refs() const { return m_ref_hid.size(); }
  [[nodiscard]] std::size_t num_calls() const { return m_calls.size(); }
  [[nodiscard]] const Id& ref_hid(Elem r) const { return m_ref_hid[r]; }
  [[nodiscard]] const Id& ref_cid(Elem r) const { return m_ref_cid[r]; }
  [[nodiscard]] Elem creator(Elem r) const { return m_ref_creator[r]; }
  [[nodiscard]] const std::vector<Elem>& consumers(Elem r) const { return m_ref_consumers[r]; }
  [[nodiscard]] const CallRow& call(Elem c) const { return m_calls[c]; }
  [[nodiscard]] const std::string& op_name(Elem c) const { return m_names[m_calls[c].op]; }

  /// The public objects (refs made once per element and kept).
  AnyRef ref(Elem r);
  CallInfo call_info(Elem c);
  /// Declared output names of an op version (cached).
  const std::vector<std::string>& op_outputs(std::uint32_t op, std::uint32_t version);

  /// Loads creators / consumers of the refs from the storage (bulk) and interns them.
  std::vector<Elem> load_creators(std::span<const Elem> refs);
  /// With `resolved` (a flag per ref, grown as needed), refs flagged already are not queried
  /// again and the queried ones are flagged: one expansion never asks twice for the same ref.
  std::vector<Elem> load_consumers(std::span<const Elem> refs, std::vector<char>* resolved = nullptr);

  /// Encoded bytes of the refs' values (in memory or loaded in bulk); nullopt where missing.
  std::vector<std::optional<std::vector<std::byte>>> value_bytes(std::span<const Elem> refs);

 private:
  std::uint32_t label_of(std::uint32_t op, const std::string& io_name);

  std::shared_ptr<StorageCore> m_core;
  std::vector<std::string> m_names;
  std::unordered_map<std::string, std::uint32_t> m_name_index;

  std::vector<Id> m_ref_hid;
  std::vector<Id> m_ref_cid;
  std::vector<Elem> m_ref_creator;
  std::vector<std::vector<Elem>> m_ref_consumers;
  std::vector<std::shared_ptr<RefState>> m_ref_state;
  std::unordered_map<Id, Elem> m_ref_index;

  std::vector<CallRow> m_calls;
  std::unordered_map<Id, Elem> m_call_index;
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
