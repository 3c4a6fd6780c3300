// Restricting a frame to chosen code versions of an op (mandala/versioning.hpp).

#include <set>

#include "frame/frame_impl.hpp"
#include "frame/universe.hpp"
#include "mandala/frame.hpp"

namespace mandala {

ComputationFrame ComputationFrame::restrict_versions(std::string_view fname,
                                                     const std::vector<Id>& semantic_versions) const {
  if (!is_function(fname))
    throw Error(Errc::invalid_argument, "restrict_versions: " + std::string(fname) + " is not a function node");
  const std::string op = op_of(fname);
  const auto tagged = m_impl->u->core()->with_store([&](store::Store& s) { return s.call_versions_of(op); });
  const std::set<Id> wanted(semantic_versions.begin(), semantic_versions.end());
  std::set<Id> in_versions;
  for (const auto& [hid, semantic] : tagged)
    if (wanted.contains(semantic)) in_versions.insert(hid);

  std::map<std::string, std::vector<Id>> keep;
  std::set<Id> outputs;
  auto& kept_calls = keep[std::string(fname)];
  for (const auto& call : calls(fname)) {
    if (!in_versions.contains(call.hid)) continue;
    kept_calls.push_back(call.hid);
    for (const auto& [name, ref] : call.outputs) outputs.insert(ref.hid());
  }
  for (const auto& var : out_neighbors(fname)) {
    if (in_neighbors(var) != std::vector<std::string>{std::string(fname)}) continue;
    auto& refs = keep[var];
    for (const auto& h : hids(var))
      if (outputs.contains(h)) refs.push_back(h);
  }
  return select_subsets(keep);
}

}  // namespace mandala
