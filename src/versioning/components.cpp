#include "versioning/components.hpp"

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "codec/hash.hpp"

namespace mandala {
namespace versioning {
namespace {

struct Registry {
  std::mutex mutex;
  std::map<std::string, std::vector<ComponentSpec>, std::less<>> ops;
};
Registry& registry() {
  static Registry r;
  return r;
}

std::atomic<WarningSink> g_sink{nullptr};

struct WarningState {
  std::mutex mutex;
  bool global_done = false;
  std::set<std::string> ops_done;
};
WarningState& warning_state() {
  static WarningState w;
  return w;
}

/// Code listings show text; a binary or very large file is described instead.
std::string describe_file(const std::string& path, const std::string& bytes) {
  const bool text =
      bytes.size() <= 64 * 1024 && std::none_of(bytes.begin(), bytes.end(), [](char c) { return c == '\0'; });
  if (text) return bytes;
  return "<" + std::to_string(bytes.size()) + " bytes of " + path + ">";
}

}  // namespace

std::optional<std::vector<ComponentSpec>> fingerprint_of(std::string_view op) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  auto it = r.ops.find(op);
  if (it == r.ops.end()) return std::nullopt;
  return it->second;
}

bool any_fingerprints() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  return !r.ops.empty();
}

void clear_fingerprints() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  r.ops.clear();
}

ComponentSpec dependency_component(const Dependency& d, std::string_view op) {
  ComponentSpec c;
  switch (d.kind) {
    case Dependency::Kind::file: {
      std::ifstream in(d.name, std::ios::binary);
      if (!in)
        throw Error(Errc::not_found, "op " + std::string(op) + " depends on the file " + d.name +
                                         ", which cannot be read; restore it or remove the dependency");
      std::ostringstream bytes;
      bytes << in.rdbuf();
      const std::string data = bytes.str();
      c.name = "file " + d.name;
      c.kind = "file";
      c.content = codec::Hasher("dependency-file").field(std::string_view(data)).digest();
      c.code = describe_file(d.name, data);
      break;
    }
    case Dependency::Kind::value: {
      c.name = "value " + d.name;
      c.kind = "value";
      c.content = codec::content_id(d.bytes);
      c.code = d.name + " = " + DecodedValue(std::span<const std::byte>(d.bytes)).root().to_json(64);
      break;
    }
    case Dependency::Kind::library: {
      c.name = "library " + d.name;
      c.kind = "library";
      c.content = codec::Hasher("dependency-library").field(std::string_view(d.text)).digest();
      c.code = d.name + " " + d.text;
      break;
    }
  }
  return c;
}

Id combine(std::string_view tag, const std::vector<std::pair<std::string, Id>>& items) {
  auto sorted = items;
  std::sort(sorted.begin(), sorted.end());
  codec::Hasher h(tag);
  h.field(std::uint64_t{sorted.size()});
  for (const auto& [name, id] : sorted) h.field(std::string_view(name)).field(id);
  return h.digest();
}

void warn(const std::string& message) {
  if (auto sink = g_sink.load()) {
    sink(message);
  } else {
    std::cerr << "mandala: warning: " << message << '\n';
  }
}

void warn_untracked(const std::string& op) {
  const bool none = !any_fingerprints();
  auto& w = warning_state();
  std::unique_lock lock(w.mutex);
  if (none) {
    if (w.global_done) return;
    w.global_done = true;
    lock.unlock();
    warn("op " + op +
         " (and every other op of this program) is versioned only by OpOptions::version: no code fingerprints "
         "were registered. Add mandala_track_versions(<target>) to the program's CMakeLists.txt to version ops by "
         "their code (docs/versioning.md).");
    return;
  }
  if (!w.ops_done.insert(op).second) return;
  lock.unlock();
  warn("op " + op +
       " has no code fingerprint (its mandala::op(...) declaration was not found in a target tracked by "
       "mandala_track_versions, or its name is not a string literal): it is versioned only by OpOptions::version.");
}

void reset_warnings() {
  auto& w = warning_state();
  std::lock_guard lock(w.mutex);
  w.global_done = false;
  w.ops_done.clear();
}

}  // namespace versioning

Dependency depends_on_file(std::filesystem::path path) {
  if (path.empty()) throw Error(Errc::invalid_argument, "depends_on_file: the path must not be empty");
  Dependency d;
  d.kind = Dependency::Kind::file;
  d.name = path.lexically_normal().string();
  return d;
}

Dependency depends_on_library(std::string name, std::string version) {
  if (name.empty()) throw Error(Errc::invalid_argument, "depends_on_library: the name must not be empty");
  Dependency d;
  d.kind = Dependency::Kind::library;
  d.name = std::move(name);
  d.text = std::move(version);
  return d;
}

WarningSink set_warning_sink(WarningSink sink) noexcept { return versioning::g_sink.exchange(sink); }

namespace detail {
bool register_fingerprints(const GeneratedComponent* components, std::size_t component_count, const GeneratedOp* ops,
                           std::size_t op_count) {
  auto& r = versioning::registry();
  std::lock_guard lock(r.mutex);
  for (std::size_t i = 0; i < op_count; ++i) {
    std::vector<versioning::ComponentSpec> specs;
    for (std::size_t k = 0; k < ops[i].count; ++k) {
      const unsigned idx = ops[i].components[k];
      if (idx >= component_count) continue;
      const auto& g = components[idx];
      auto id = Id::from_hex(g.hash);
      if (!id) continue;
      specs.push_back({g.name, g.kind, g.file, g.code, *id});
    }
    std::sort(specs.begin(), specs.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    // A later registration of the same op (another tracked target of the program) replaces it.
    r.ops[ops[i].name] = std::move(specs);
  }
  return true;
}
}  // namespace detail

}  // namespace mandala
