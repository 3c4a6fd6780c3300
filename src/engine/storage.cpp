#include "mandala/storage.hpp"

#include <algorithm>
#include <iostream>

#include "engine/engine.hpp"
#include "store/store.hpp"

namespace mandala {
namespace detail {
Mode mode_on(const StorageCore* core) noexcept;
}

namespace {
std::optional<AnyRef> find_named(const std::vector<std::pair<std::string, AnyRef>>& refs, std::string_view name) {
  auto it = std::find_if(refs.begin(), refs.end(), [&](const auto& p) { return p.first == name; });
  if (it == refs.end()) return std::nullopt;
  return it->second;
}
}  // namespace

std::optional<AnyRef> CallInfo::input(std::string_view name) const { return find_named(inputs, name); }
std::optional<AnyRef> CallInfo::output(std::string_view name) const { return find_named(outputs, name); }

std::optional<std::filesystem::path> store_file(const std::string& location) { return store::sqlite_path(location); }

// The constructors are in src/versioning/storage_versions.cpp (they install the code versions).

Storage::~Storage() {
  if (!m_core) return;
  try {
    m_core->flush();
  } catch (const std::exception& e) {
    std::cerr << "mandala: closing storage: " << e.what() << '\n';
  }
}

Storage::Storage(Storage&&) noexcept = default;
Storage& Storage::operator=(Storage&&) noexcept = default;

void Storage::flush() { m_core->flush(); }
void Storage::allow_new_calls(bool allow) { m_core->allow_new_calls(allow); }
Mode Storage::mode() const { return detail::mode_on(m_core.get()); }
CallCounters Storage::counters() const { return m_core->counters(); }
StorageStats Storage::stats() { return m_core->stats(); }
const std::filesystem::path& Storage::path() const { return m_core->path(); }

std::optional<AnyRef> Storage::ref(const Id& hid) { return m_core->ref(m_core, hid); }
std::optional<CallInfo> Storage::creator_of(const AnyRef& ref) { return m_core->creator_of(m_core, ref.hid()); }
std::vector<CallInfo> Storage::consumers_of(const AnyRef& ref) { return m_core->consumers_of(m_core, ref.hid()); }
std::optional<CallInfo> Storage::call_by_hid(const Id& call_hid) { return m_core->call_by_hid(m_core, call_hid); }
std::vector<CallInfo> Storage::calls_of(std::string_view op_name, std::optional<std::uint32_t> version) {
  return m_core->calls_of(m_core, op_name, version);
}
std::size_t Storage::drop_calls(std::span<const Id> call_hids, Dependents dependents) {
  return m_core->drop_calls(call_hids, dependents);
}
CleanupReport Storage::cleanup() { return m_core->cleanup(); }
IntegrityReport Storage::check_integrity(ProgressCallback progress) { return m_core->check_integrity(progress); }

void Storage::rename_op(std::string_view from, std::string_view to) {
  m_core->rename(store::NameKind::op, {}, from, to);
}
void Storage::rename_input(std::string_view op_name, std::string_view from, std::string_view to) {
  m_core->rename(store::NameKind::input, op_name, from, to);
}
void Storage::rename_output(std::string_view op_name, std::string_view from, std::string_view to) {
  m_core->rename(store::NameKind::output, op_name, from, to);
}

}  // namespace mandala
