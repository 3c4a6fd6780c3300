// Inspection queries of Storage (what the `mandala` command shows): thin wrappers over the store.

#include <algorithm>
#include <cctype>

#include "engine/engine.hpp"
#include "mandala/storage.hpp"

namespace mandala {
namespace detail {

StorageInfo StorageCore::info() {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  auto info = m_store->info();
  info.path = m_path;
  return info;
}

std::vector<OpSummary> StorageCore::op_summaries() {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  return m_store->op_summaries();
}

std::vector<CallInfo> StorageCore::find_calls(const std::shared_ptr<StorageCore>& self, std::string_view op,
                                              const CallQuery& query) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  const auto ops = m_store->op_summaries();
  const bool known = std::any_of(ops.begin(), ops.end(), [&](const OpSummary& s) {
    return s.name == op && (!query.version || s.version == *query.version);
  });
  if (!known) {
    std::string names;
    for (const auto& s : ops)
      if (names.find(s.name) == std::string::npos) names += (names.empty() ? "" : ", ") + s.name;
    throw Error(Errc::not_found, "no op '" + std::string(op) + "'" +
                                     (query.version ? " of version " + std::to_string(*query.version) : "") +
                                     " in this store" +
                                     (names.empty() ? " (it has no ops)" : " (it has: " + names + ")"));
  }
  std::vector<CallInfo> out;
  for (const auto& rec : m_store->calls_page(op, query)) out.push_back(to_info(self, rec));
  return out;
}

std::vector<IdMatch> StorageCore::find_by_prefix(std::string_view hex_prefix, std::size_t limit) {
  if (hex_prefix.empty() || hex_prefix.size() > 32 || !std::all_of(hex_prefix.begin(), hex_prefix.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c));
      }))
    throw Error(Errc::invalid_argument,
                "'" + std::string(hex_prefix) + "' is not an id or id prefix (1 to 32 hex digits)");
  std::string lo(hex_prefix), hi(hex_prefix);
  lo.resize(32, '0');
  hi.resize(32, 'f');
  const auto lo_id = Id::from_hex(lo), hi_id = Id::from_hex(hi);
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  std::vector<IdMatch> out;
  for (const auto& hid : m_store->call_hids_between(*lo_id, *hi_id, limit)) out.push_back({IdMatch::Kind::call, hid});
  for (const auto& hid : m_store->ref_hids_between(*lo_id, *hi_id, limit)) out.push_back({IdMatch::Kind::ref, hid});
  return out;
}

std::vector<CallInfo> StorageCore::calls_to_drop(const std::shared_ptr<StorageCore>& self,
                                                 std::span<const Id> call_hids, Dependents dependents) {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  std::vector<CallInfo> out;
  for (const auto& rec : m_store->calls_to_drop(call_hids, dependents == Dependents::yes))
    out.push_back(to_info(self, rec));
  return out;
}

CleanupReport StorageCore::cleanup_preview() {
  std::lock_guard lock(m_mutex);
  flush_locked();
  ReadScope read(*m_store);
  return m_store->cleanup_preview();
}

}  // namespace detail

StorageInfo Storage::info() { return m_core->info(); }
std::vector<OpSummary> Storage::ops() { return m_core->op_summaries(); }
std::vector<CallInfo> Storage::find_calls(std::string_view op_name, const CallQuery& query) {
  return m_core->find_calls(m_core, op_name, query);
}
std::vector<IdMatch> Storage::find_by_prefix(std::string_view hex_prefix, std::size_t limit) {
  return m_core->find_by_prefix(hex_prefix, limit);
}
std::vector<CallInfo> Storage::calls_to_drop(std::span<const Id> call_hids, Dependents dependents) {
  return m_core->calls_to_drop(m_core, call_hids, dependents);
}
CleanupReport Storage::cleanup_preview() { return m_core->cleanup_preview(); }

}  // namespace mandala
