// What every backend shares: the Store defaults (no claims, collected forms of the streamed
// queries), MissingValues, op declarations compared and described.

#include "store/store.hpp"

#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

namespace mandala::store {
namespace {
[[noreturn]] void no_claims() {
  throw Error(Errc::invalid_argument, "this store does not share claims (Store::shares_claims() is false)");
}
}  // namespace

bool Store::try_claim(const Id&, const Id&, std::chrono::milliseconds) { no_claims(); }
std::vector<Id> Store::renew_claims(const Id&, std::span<const Id>, std::chrono::milliseconds) { no_claims(); }
void Store::release_claims(const Id&, std::span<const Id>) { no_claims(); }
bool Store::await_release(const Id&, std::uint64_t, std::chrono::microseconds max) {
  std::this_thread::sleep_for(max);
  return false;
}

std::vector<NameRecord> Store::name_records() { return {}; }
void Store::write_names(std::span<const NameRecord>) {
  throw Error(Errc::invalid_argument, "this store cannot record renames");
}
IdentityNames Store::identity_names(const DeclaredNames& op) { return {op.name, op.inputs, op.outputs, false}; }
void Store::rename(NameKind, std::string_view, std::string_view, std::string_view) {
  throw Error(Errc::invalid_argument, "this store cannot record renames");
}

namespace {
/// The records a streamed read hands to its sink, kept.
template <class Read>
std::vector<CallRecord> collect(Read&& read) {
  std::vector<CallRecord> out;
  read([&](const CallRecord& r) { out.push_back(r); });
  return out;
}
}  // namespace

std::vector<CallRecord> Store::calls_of(std::string_view op, std::optional<std::uint32_t> version) {
  return collect([&](const CallSink& sink) { calls_of(op, version, sink); });
}
std::vector<CallRecord> Store::creators_of_many(std::span<const Id> ref_hids) {
  return collect([&](const CallSink& sink) { creators_of_many(ref_hids, sink); });
}
std::vector<CallRecord> Store::consumers_of_many(std::span<const Id> ref_hids) {
  return collect([&](const CallSink& sink) { consumers_of_many(ref_hids, sink); });
}

MissingValues::MissingValues(std::vector<Id> cids)
    : Error(Errc::not_found, std::to_string(cids.size()) + " values the calls of a write refer to are not stored (" +
                                 (cids.empty() ? std::string() : cids.front().hex()) +
                                 (cids.size() > 1 ? ", ..." : "") + "): another process removed them"),
      m_cids(std::move(cids)) {}

bool inputs_compatible(const std::vector<std::string>& stored, const std::vector<std::string>& declared) {
  const auto& shorter = stored.size() <= declared.size() ? stored : declared;
  const auto& longer = stored.size() <= declared.size() ? declared : stored;
  std::size_t matched = 0;
  for (const auto& name : longer)
    if (matched < shorter.size() && shorter[matched] == name) ++matched;
  return matched == shorter.size();
}

void require_agreement(const OpRecord& declared, const OpRecord& stored) {
  const bool same_outputs = stored.outputs == declared.outputs;
  if (same_outputs && inputs_compatible(stored.inputs, declared.inputs)) return;
  throw OpConflict(same_outputs ? Errc::invalid_argument : Errc::output_mismatch,
                   describe_op(declared.name, declared.version, declared.inputs, declared.outputs) +
                       " disagrees with " + describe_op(stored.name, stored.version, stored.inputs, stored.outputs) +
                       ", which another process has stored meanwhile; the calls of this declaration are not "
                       "stored: give the changed op a new version (OpOptions::version) or a new name",
                   declared.name, declared.version);
}

std::string components_to_json(const std::vector<VersionComponent>& components) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : components) arr.push_back({c.component, c.content.hex(), c.semantic.hex()});
  return arr.dump();
}

std::vector<VersionComponent> components_from_json(const std::string& text, const std::string& table) {
  std::vector<VersionComponent> out;
  try {
    for (const auto& row : nlohmann::json::parse(text)) {
      auto content = Id::from_hex(row.at(1).get<std::string>());
      auto semantic = Id::from_hex(row.at(2).get<std::string>());
      if (!content || !semantic) throw std::runtime_error("bad id");
      out.push_back({row.at(0).get<std::string>(), *content, *semantic});
    }
  } catch (const std::exception&) {
    throw Error(Errc::corrupt_store, table + " holds an unreadable component list: " + text.substr(0, 80));
  }
  return out;
}

std::vector<CallRecord> by_storage_id(std::vector<std::pair<std::int64_t, CallRecord>> calls) {
  std::sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<CallRecord> out;
  out.reserve(calls.size());
  for (auto& [id, rec] : calls) out.push_back(std::move(rec));
  return out;
}

std::string describe_op(const std::string& name, std::uint32_t version, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs) {
  return "op " + name + " version " + std::to_string(version) + " with inputs " + nlohmann::json(inputs).dump() +
         " and outputs " + nlohmann::json(outputs).dump();
}

}  // namespace mandala::store
