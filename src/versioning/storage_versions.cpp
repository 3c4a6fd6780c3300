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

/// What marking a version (compatible or new) changes: the commits to update, the names of the
/// components whose change is marked and, for a compatible mark, what the change joins.
struct Plan {
  const OpVersion* version = nullptr;
  store::VersioningWrite write;
  std::vector<std::string> changed;
  std::size_t joins = 0;
  std::string diff;
};

Plan plan(const Loaded& l, const std::vector<OpVersion>& versions, std::string_view op, std::string_view ref,
          bool compatible) {
  Plan p;
  const OpVersion& v = pick(versions, op, ref);
  p.version = &v;
  bool has_parent = false;
  // The version's changes: components whose content differs from the version before it.
  const OpVersion* before = v.number > 1 ? &versions[v.number - 2] : nullptr;
  auto unchanged = [&](const ComponentVersion& c) {
    return before != nullptr && std::any_of(before->components.begin(), before->components.end(),
                                            [&](const auto& b) { return b.name == c.name && b.content == c.content; });
  };
  std::vector<std::pair<std::string, Id>> semantics_after;
  bool decided_after = true;
  std::vector<std::pair<const store::CommitRecord*, const store::CommitRecord*>> marked;  // (joined, changed)
  for (const auto& c : v.components) {
    const auto* commit = find_commit(l.commits, c.name, c.content);
    std::optional<Id> after = commit != nullptr ? commit->semantic : std::nullopt;
    if (commit != nullptr && commit->parent) {
      has_parent = true;
      if (!unchanged(c) || !commit->semantic) {
        std::optional<Id> target;
        const store::CommitRecord* parent = nullptr;
        if (compatible) {
          parent = find_commit(l.commits, c.name, *commit->parent);
          if (parent == nullptr || !parent->semantic)
            throw Error(Errc::invalid_argument, "the code of " + c.name + " before version " +
                                                    std::to_string(v.number) + " of op " + std::string(op) +
                                                    " is undecided itself; decide it first");
          target = parent->semantic;
        } else {
          target = commit->content;
        }
        after = target;
        if (commit->semantic != target) {
          // The commit and the later commits that inherited its class move together.
          const std::optional<Id> old = commit->semantic;
          for (const auto& other : l.commits.at(c.name)) {
            const bool same =
                other.content == commit->content || (old && other.semantic == old && *old == commit->content);
            if (!same) continue;
            auto updated = other;
            updated.semantic = target;
            p.write.commits.push_back(std::move(updated));
          }
          p.changed.push_back(c.name);
          if (parent != nullptr) marked.emplace_back(parent, commit);
        }
      }
    }
    if (after) semantics_after.emplace_back(c.name, *after);
    else decided_after = false;
  }
  if (compatible && !has_parent)
    throw Error(Errc::invalid_argument, "version " + std::to_string(v.number) + " of op " + std::string(op) +
                                            " is its first code: there is no earlier code to be compatible with");
  if (!compatible) return p;
  // The version whose calls it reuses once marked: the one with the semantic version it gets.
  if (decided_after) {
    const Id joined = versioning::combine("semantic-version", semantics_after);
    for (auto it = versions.rbegin(); it != versions.rend(); ++it)
      if (&*it != &v && it->decided && it->semantic_version == joined) {
        p.joins = it->number;
        break;
      }
  }
  const std::string from = p.joins != 0 ? "version " + std::to_string(p.joins) : std::string("the code before it");
  const std::string to = "version " + std::to_string(v.number);
  for (const auto& [parent, commit] : marked)
    p.diff += versioning::unified_diff(parent->code, commit->code, commit->component + " (" + from + ")",
                                       commit->component + " (" + to + ")");
  return p;
}

/// Why marking \p v by default could mark the wrong change (empty when it is the change most
/// recently seen): the program's own code is another version or not recorded yet, the code last
/// seen is another version, or other code changed after it was recorded.
std::string caution(detail::StorageCore& core, const Loaded& l, const std::vector<OpVersion>& versions,
                    const OpVersion& v, std::string_view op) {
  const std::string name = "version " + std::to_string(v.number) + " of op " + std::string(op);
  auto has = [](const OpVersion& x, const std::string& component, const Id& content) {
    return std::any_of(x.components.begin(), x.components.end(),
                       [&](const auto& c) { return c.name == component && c.content == content; });
  };
  // This program's code of the op (when it was built with mandala_track_versions).
  if (const auto fingerprint = versioning::fingerprint_of(op)) {
    auto is_current = [&](const OpVersion& x) {
      return std::all_of(fingerprint->begin(), fingerprint->end(),
                         [&](const auto& c) { return has(x, c.name, c.content); });
    };
    if (!is_current(v)) {
      for (const auto& other : versions)
        if (is_current(other))
          return "this program's code of op " + std::string(op) + " is version " + std::to_string(other.number) +
                 ", not " + std::to_string(v.number) + ".";
      return "this program's code of op " + std::string(op) +
             " is not recorded in the storage yet (the op has not run since its code changed): " + name +
             " is an earlier change. Run the op once first, so that the storage records its code (with "
             "OnCodeChange::error nothing is computed before the decision).";
    }
  }
  // The code last seen (the heads of its components).
  const bool current = std::all_of(v.components.begin(), v.components.end(), [&](const auto& c) {
    auto it = l.heads.find(c.name);
    return it != l.heads.end() && it->second == c.content;
  });
  if (!current) {
    for (const auto& other : versions)
      if (std::all_of(other.components.begin(), other.components.end(), [&](const auto& c) {
            auto it = l.heads.find(c.name);
            return it != l.heads.end() && it->second == c.content;
          }))
        return name + " is not the code last seen; version " + std::to_string(other.number) + " is.";
    return name + " is not the code last seen (part of its code was seen changing since, through another op).";
  }
  // Code that changed after the version was recorded: a later edit, so probably not this change.
  const std::int64_t recorded = l.records[v.number - 1].created_ms;
  std::vector<std::string> later;
  core.with_store([&](store::Store& s) {
    std::map<std::string, bool> seen;
    for (const auto& summary : s.op_summaries())
      for (const auto& record : s.versions_of(summary.name))
        for (const auto& part : record.components) {
          if (seen.contains(part.component)) continue;
          seen[part.component] = true;
          for (const auto& commit : s.commits_of(part.component))
            if (commit.created_ms > recorded && !has(v, commit.component, commit.content)) {
              later.push_back(commit.component);
              break;
            }
        }
  });
  if (later.empty()) return {};
  std::string names;
  for (std::size_t i = 0; i < later.size() && i < 3; ++i) names += (i == 0 ? "" : ", ") + later[i];
  if (later.size() > 3) names += ", ...";
  return "code changed after " + name + " was recorded (" + names + "), so it may not be the change meant.";
}

CompatibleMark preview(Storage& storage, std::string_view op, std::string_view ref) {
  auto& core = *storage.core();
  const Loaded l = load(core, op);
  const auto versions = build(l);
  const Plan p = plan(l, versions, op, ref, true);
  CompatibleMark m;
  m.version = p.version->number;
  m.joins = p.joins;
  m.components = p.changed;
  m.diff = p.diff;
  m.caution = caution(core, l, versions, *p.version, op);
  return m;
}

/// Changes the compatibility class of the version's changed commits; returns their names.
std::vector<std::string> decide(Storage& storage, std::string_view op, std::string_view ref, bool compatible) {
  auto& core = *storage.core();
  const Loaded l = load(core, op);
  const auto versions = build(l);
  Plan p = plan(l, versions, op, ref, compatible);
  if (compatible && ref.empty()) {
    const std::string why = caution(core, l, versions, *p.version, op);
    if (!why.empty())
      throw Error(Errc::invalid_argument,
                  "not marking version " + std::to_string(p.version->number) + " of op " + std::string(op) +
                      " compatible by default: " + why + "\nTo mark it anyway, name it: mark_compatible(\"" +
                      std::string(op) + "\", \"" + std::to_string(p.version->number) +
                      "\") (`mandala mark-compatible STORE " + std::string(op) + " " +
                      std::to_string(p.version->number) + "`); `mandala versions STORE " + std::string(op) +
                      "` lists the versions." +
                      (p.diff.empty() ? std::string(" Its changes are marked compatible already.")
                                      : "\nIts changes:\n" + p.diff));
  }
  if (!p.write.empty()) core.with_store([&](store::Store& s) { s.write_versioning(p.write); });
  core.forget_op_versions();
  return std::move(p.changed);
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

CompatibleMark Storage::compatible_preview(std::string_view op_name, std::string_view version) {
  return preview(*this, op_name, version);
}

std::vector<std::string> Storage::mark_new_version(std::string_view op_name, std::string_view version) {
  return decide(*this, op_name, version, false);
}

}  // namespace mandala
