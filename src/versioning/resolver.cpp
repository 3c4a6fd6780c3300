// Per-storage resolution of an op's code version: each component's commit history (the
// original's per-component "mini-git", spec 6.4) is synced with the program's current code.

#include "versioning/resolver.hpp"

#include <algorithm>
#include <chrono>

#include "versioning/components.hpp"
#include "versioning/text_diff.hpp"

namespace mandala::versioning {
namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// A creation time for a new record after \p records (ordered by their creation time): \p now,
/// or one millisecond after the newest record when the clock has not moved on since (histories
/// are listed in creation order, so two records never share a time).
template <typename Records>
std::int64_t after(const Records& records, std::int64_t now) {
  return records.empty() ? now : std::max(now, records.back().created_ms + 1);
}

class Resolver final : public detail::VersionResolver {
 public:
  Resolver(OnCodeChange policy, bool read_only) : m_policy(policy), m_read_only(read_only) {}

  std::optional<Id> resolve(const detail::OpInfo& op, store::Store& store) override {
    // Components given as data (a language binding's analysis) take the place of a fingerprint.
    auto fingerprint = op.code ? std::nullopt : fingerprint_of(op.name);
    if (op.code) {
      fingerprint.emplace();
      for (const auto& c : *op.code) fingerprint->push_back({c.name, c.kind, c.file, c.code, c.content});
    }
    if (!fingerprint && op.native_code) warn_untracked(op.name);
    std::vector<ComponentSpec> comps = fingerprint ? std::move(*fingerprint) : std::vector<ComponentSpec>{};
    for (const auto& d : op.dependencies) {
      auto c = dependency_component(d, op.name);
      if (std::any_of(comps.begin(), comps.end(), [&](const auto& x) { return x.name == c.name; }))
        throw Error(Errc::invalid_argument, "op " + op.name + " declares the dependency '" + c.name + "' twice");
      comps.push_back(std::move(c));
    }
    if (comps.empty()) return std::nullopt;
    std::sort(comps.begin(), comps.end(), [](const auto& a, const auto& b) { return a.name < b.name; });

    store::VersioningWrite w;
    const auto now = now_ms();
    std::vector<std::pair<std::string, Id>> contents, semantics;
    std::vector<store::VersionComponent> parts;
    std::string undecided, changes;
    for (const auto& c : comps) {
      const auto commits = store.commits_of(c.name);
      const auto head = store.head_of(c.name);
      auto known = std::find_if(commits.begin(), commits.end(), [&](const auto& r) { return r.content == c.content; });
      std::optional<Id> semantic;
      if (known != commits.end()) {
        // Known code (maybe older than the head: returning to it revalidates its calls).
        if (head != c.content) w.heads.emplace_back(c.name, c.content);
        semantic = known->semantic;
        if (!semantic) undecided += "\n  " + c.name;
      } else {
        store::CommitRecord r{c.name, c.content, head, std::nullopt, c.kind, c.code, after(commits, now)};
        auto previous = std::find_if(commits.begin(), commits.end(), [&](const auto& x) { return head == x.content; });
        if (!head) {
          r.semantic = c.content;  // first seen: a root
        } else {
          const std::string diff = previous == commits.end()
                                       ? ""
                                       : unified_diff(previous->code, c.code, c.name + " (stored)", c.name + " (now)");
          if (m_policy == OnCodeChange::error) {
            undecided += "\n  " + c.name;
            changes += diff;
          } else {
            r.semantic = c.content;
            if (m_policy == OnCodeChange::warn)
              warn("the code of " + c.name + " (used by op " + op.name +
                   ") changed: a new version of the op; mark_compatible keeps the old results instead.\n" + diff);
          }
        }
        semantic = r.semantic;
        w.commits.push_back(std::move(r));
        w.heads.emplace_back(c.name, c.content);
      }
      contents.emplace_back(c.name, c.content);
      if (semantic) semantics.emplace_back(c.name, *semantic);
      parts.push_back({c.name, c.content, semantic.value_or(Id{})});
    }
    store::VersionRecord v;
    v.op = op.name;
    v.op_version = op.version;
    v.content_version = combine("code-version", contents);
    if (undecided.empty()) v.semantic_version = combine("semantic-version", semantics);
    v.components = std::move(parts);
    const auto existing = store.versions_of(op.name);
    v.created_ms = after(existing, now);
    auto same = std::find_if(existing.begin(), existing.end(),
                             [&](const auto& e) { return e.content_version == v.content_version; });
    if (same == existing.end() || same->semantic_version != v.semantic_version || same->op_version != v.op_version) {
      if (same != existing.end()) v.created_ms = same->created_ms;
      w.versions.push_back(v);
    }
    if (!m_read_only) store.write_versioning(w);
    if (!undecided.empty())
      throw Error(Errc::code_changed,
                  "op " + op.name + ": code changed since its calls were stored, in:" + undecided +
                      "\nStorageOptions::on_code_change is error, so it must be decided first: mark_compatible(\"" +
                      op.name + "\") (or `mandala mark-compatible STORE " + op.name +
                      "`) keeps the stored results valid; mark_new_version(\"" + op.name + "\") recomputes them.\n" +
                      changes);
    return v.semantic_version;
  }

 private:
  OnCodeChange m_policy;
  bool m_read_only;
};

}  // namespace

std::unique_ptr<detail::VersionResolver> make_resolver(const StorageOptions& options) {
  return std::make_unique<Resolver>(options.on_code_change, options.read_only);
}

}  // namespace mandala::versioning
