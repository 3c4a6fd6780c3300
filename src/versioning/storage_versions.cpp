// The Storage constructors (they install code versioning) and the code-version queries.

#include <algorithm>
#include <map>
#include <sstream>

#include "engine/engine.hpp"
#include "mandala/storage.hpp"
#include "versioning/components.hpp"
#include "versioning/resolver.hpp"
#include "versioning/text_diff.hpp"

namespace mandala {
namespace {

using Commits = std::map<std::string, std::vector<store::CommitRecord>>;

const store::CommitRecord* find_commit(const Commits& commits, const std::string& component, const Id& content) {
  auto it = commits.find(component);
  if (it == commits.end()) return nullptr;
  for (const auto& c : it->second)
    if (c.content == content) return &c;
  return nullptr;
}

struct Loaded {
  std::vector<store::VersionRecord> records;
  Commits commits;
  std::map<std::string, Id> heads;
  std::vector<std::pair<Id, Id>> calls;  ///< (call hid, semantic version)
};

Loaded load(detail::StorageCore& core, std::string_view op) {
  return core.with_store([&](store::Store& s) {
    Loaded l;
    l.records = s.versions_of(op);
    for (const auto& r : l.records)
      for (const auto& c : r.components)
        if (!l.commits.contains(c.component)) {
          l.commits[c.component] = s.commits_of(c.component);
          if (auto h = s.head_of(c.component)) l.heads[c.component] = *h;
        }
    l.calls = s.call_versions_of(op);
    return l;
  });
}

/// The op's versions with their current compatibility classes (a mark_compatible changes them).
std::vector<OpVersion> build(const Loaded& l) {
  std::vector<OpVersion> out;
  for (std::size_t i = 0; i < l.records.size(); ++i) {
    const auto& r = l.records[i];
    OpVersion v;
    v.number = i + 1;
    v.op = r.op;
    v.explicit_version = r.op_version;
    v.content_version = r.content_version;
    v.created = std::chrono::system_clock::time_point(std::chrono::milliseconds(r.created_ms));
    std::vector<std::pair<std::string, Id>> semantics;
    for (const auto& part : r.components) {
      ComponentVersion c;
      c.name = part.component;
      c.content = part.content;
      if (const auto* commit = find_commit(l.commits, part.component, part.content)) {
        c.kind = commit->kind;
        c.code = commit->code;
        if (commit->semantic) c.semantic = *commit->semantic;
        else v.decided = false;
      } else {
        v.decided = false;
      }
      semantics.emplace_back(c.name, c.semantic);
      v.components.push_back(std::move(c));
    }
    if (v.decided) v.semantic_version = versioning::combine("semantic-version", semantics);
    v.calls = static_cast<std::size_t>(std::count_if(
        l.calls.begin(), l.calls.end(), [&](const auto& c) { return v.decided && c.second == v.semantic_version; }));
    out.push_back(std::move(v));
  }
  return out;
}

const OpVersion& pick(const std::vector<OpVersion>& versions, std::string_view op, std::string_view ref) {
  if (versions.empty())
    throw Error(Errc::not_found, "op " + std::string(op) + " has no recorded code versions in this storage");
  if (ref.empty()) return versions.back();
  const bool digits = std::all_of(ref.begin(), ref.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (digits && ref.size() < 4) {
    const auto n = std::stoul(std::string(ref));
    if (n >= 1 && n <= versions.size()) return versions[n - 1];
  } else if (ref.size() >= 4) {
    const OpVersion* found = nullptr;
    for (const auto& v : versions) {
      const bool match =
          v.content_version.hex().rfind(ref, 0) == 0 || (v.decided && v.semantic_version.hex().rfind(ref, 0) == 0);
      if (!match) continue;
      if (found != nullptr && found != &v)
        throw Error(Errc::invalid_argument,
                    "version '" + std::string(ref) + "' of op " + std::string(op) + " is ambiguous; give more digits");
      found = &v;
    }
    if (found != nullptr) return *found;
  }
  throw Error(Errc::not_found, "op " + std::string(op) + " has no version '" + std::string(ref) + "' (it has " +
                                   std::to_string(versions.size()) +
                                   "; name one by number or by a prefix of at least 4 hex digits of its id)");
}

std::string indent(const std::string& code) {
  std::string out = "    ";
  for (char c : code) {
    out += c;
    if (c == '\n') out += "    ";
  }
  return out;
}

std::string short_id(const Id& id) { return id.hex().substr(0, 12); }

/// Changes the compatibility class of the version's changed commits; returns their names.
std::vector<std::string> decide(Storage& storage, std::string_view op, std::string_view ref, bool compatible) {
  auto& core = *storage.core();
  const Loaded l = load(core, op);
  const auto versions = build(l);
  const OpVersion& v = pick(versions, op, ref);
  store::VersioningWrite w;
  std::vector<std::string> changed;
  bool has_parent = false;
  // The version's changes: components whose content differs from the version before it.
  const OpVersion* before = v.number > 1 ? &versions[v.number - 2] : nullptr;
  auto unchanged = [&](const ComponentVersion& c) {
    return before != nullptr && std::any_of(before->components.begin(), before->components.end(),
                                            [&](const auto& b) { return b.name == c.name && b.content == c.content; });
  };
  for (const auto& c : v.components) {
    const auto* commit = find_commit(l.commits, c.name, c.content);
    if (commit == nullptr || !commit->parent) continue;
    has_parent = true;
    if (unchanged(c) && commit->semantic) continue;
    std::optional<Id> target;
    if (compatible) {
      const auto* parent = find_commit(l.commits, c.name, *commit->parent);
      if (parent == nullptr || !parent->semantic)
        throw Error(Errc::invalid_argument, "the code of " + c.name + " before version " + std::to_string(v.number) +
                                                " of op " + std::string(op) + " is undecided itself; decide it first");
      target = parent->semantic;
    } else {
      target = commit->content;
    }
    if (commit->semantic == target) continue;
    // The commit and the later commits that inherited its class move together.
    const std::optional<Id> old = commit->semantic;
    for (const auto& other : l.commits.at(c.name)) {
      const bool same = other.content == commit->content || (old && other.semantic == old && *old == commit->content);
      if (!same) continue;
      auto updated = other;
      updated.semantic = target;
      w.commits.push_back(std::move(updated));
    }
    changed.push_back(c.name);
  }
  if (compatible && !has_parent)
    throw Error(Errc::invalid_argument, "version " + std::to_string(v.number) + " of op " + std::string(op) +
                                            " is its first code: there is no earlier code to be compatible with");
  if (!w.empty()) core.with_store([&](store::Store& s) { s.write_versioning(w); });
  core.forget_op_versions();
  return changed;
}

}  // namespace

Storage::Storage() : Storage(std::filesystem::path(), StorageOptions{}) {}

Storage::Storage(const std::filesystem::path& path, StorageOptions options)
    : m_core(std::make_shared<detail::StorageCore>(path, options)) {
  m_core->set_version_resolver(versioning::make_resolver(options));
}

std::vector<OpVersion> Storage::versions(std::string_view op_name) { return build(load(*m_core, op_name)); }

std::string Storage::versions_listing(std::string_view op_name) {
  const Loaded l = load(*m_core, op_name);
  const auto versions = build(l);
  std::ostringstream out;
  out << "Versions of op " << op_name << ": " << versions.size() << "\n";
  for (const auto& v : versions) {
    const bool current = std::all_of(v.components.begin(), v.components.end(), [&](const auto& c) {
      auto it = l.heads.find(c.name);
      return it != l.heads.end() && it->second == c.content;
    });
    out << "\n=== version " << v.number << (current ? " (current code)" : "") << ": content "
        << short_id(v.content_version) << ", semantic "
        << (v.decided ? short_id(v.semantic_version) : std::string("undecided")) << ", explicit version "
        << v.explicit_version << ", " << v.calls << " calls\n";
    for (const auto& c : v.components) {
      out << "--- " << c.kind << " " << c.name << " (content " << short_id(c.content);
      if (c.semantic != c.content) out << ", compatible with " << short_id(c.semantic);
      out << ")\n" << indent(c.code) << "\n";
    }
  }
  return out.str();
}

std::string Storage::diff_versions(std::string_view op_name, std::string_view from, std::string_view to) {
  const auto versions = this->versions(op_name);
  const OpVersion& a = pick(versions, op_name, from);
  const OpVersion& b = pick(versions, op_name, to);
  std::map<std::string, std::pair<const ComponentVersion*, const ComponentVersion*>> both;
  for (const auto& c : a.components) both[c.name].first = &c;
  for (const auto& c : b.components) both[c.name].second = &c;
  const std::string va = "version " + std::to_string(a.number);
  const std::string vb = "version " + std::to_string(b.number);
  std::string out;
  for (const auto& [name, pair] : both) {
    const auto* x = pair.first;
    const auto* y = pair.second;
    if (x && y && x->content == y->content) continue;
    out += versioning::unified_diff(x ? x->code : std::string(), y ? y->code : std::string(),
                                    name + " (" + (x ? va : va + ": absent") + ")",
                                    name + " (" + (y ? vb : vb + ": absent") + ")");
  }
  return out;
}

std::size_t Storage::drop_version(std::string_view op_name, std::string_view version) {
  const Loaded l = load(*m_core, op_name);
  const auto versions = build(l);
  const OpVersion& v = pick(versions, op_name, version);
  std::vector<Id> hids;
  store::VersioningWrite w;
  if (v.decided) {
    for (const auto& [hid, semantic] : l.calls)
      if (semantic == v.semantic_version) hids.push_back(hid);
    for (const auto& other : versions)
      if (other.decided && other.semantic_version == v.semantic_version)
        w.dropped_versions.emplace_back(std::string(op_name), other.content_version);
  } else {
    w.dropped_versions.emplace_back(std::string(op_name), v.content_version);
  }
  const std::size_t removed = hids.empty() ? 0 : m_core->drop_calls(hids, Dependents::yes);
  m_core->with_store([&](store::Store& s) { s.write_versioning(w); });
  m_core->forget_op_versions();
  return removed;
}

std::vector<std::string> Storage::mark_compatible(std::string_view op_name, std::string_view version) {
  return decide(*this, op_name, version, true);
}

std::vector<std::string> Storage::mark_new_version(std::string_view op_name, std::string_view version) {
  return decide(*this, op_name, version, false);
}

}  // namespace mandala
