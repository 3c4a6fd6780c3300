#pragma once
// Code versions: an op's stored calls belong to the version of the code they were computed
// with. The code an op can reach (functions across files, global constants and variables,
// types, macros) is found at build time by mandala_track_versions(target) (CMake), which
// generates a source registering each op's fingerprint; extra dependencies that analysis cannot
// see (a data file, a constant, a library version) are declared with OpOptions::depends_on.
// See docs/versioning.md.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"

namespace mandala {

/// A dependency of an op that code analysis cannot see. It is a component of the op's code
/// version: when its content changes, the op gets a new version like for a code change.
struct Dependency {
  enum class Kind { file, value, library };
  Kind kind = Kind::value;
  std::string name;              ///< file path, constant name or library name
  std::string text;              ///< what listings show: the value as JSON, the version string
  std::vector<std::byte> bytes;  ///< the value's encoding (Kind::value)
};

/// The content of a file, read when the op is first used with a storage (Errc::not_found when
/// the file is missing then).
MANDALA_API Dependency depends_on_file(std::filesystem::path path);
/// A constant (any encodable value), by its canonical encoding.
template <class T>
Dependency depends_on_value(std::string name, const T& value) {
  Dependency d;
  d.kind = Dependency::Kind::value;
  d.name = std::move(name);
  d.bytes = encode_value(value);
  return d;
}
/// A library by its version string, e.g. depends_on_library("zlib", zlibVersion()).
MANDALA_API Dependency depends_on_library(std::string name, std::string version);

/// One component of an op's code given as data, by a language binding's own code analysis (the
/// Python package: functions, classes and globals an op reaches), in place of a fingerprint
/// registered by mandala_track_versions. `content` identifies the normalized code: equal
/// contents are the same code. Components are distinguished by `name`.
struct CodeComponent {
  std::string name;  ///< "module.f", "class module.C", "global module.LIMIT", ...
  std::string kind;  ///< function, class, variable, ...
  std::string file;  ///< where it is defined (shown in listings; may be empty)
  std::string code;  ///< what listings and diffs show
  Id content;        ///< hash of the normalized code
};

/// What a storage does when it first sees an op whose tracked code differs from what it recorded.
enum class OnCodeChange {
  new_version,  ///< the change is semantic: a new version, old calls no longer match (default)
  warn,         ///< the same, and a warning with the diff goes to the warning sink
  error,        ///< the op's calls fail with Errc::code_changed until the change is decided
                ///< (Storage::mark_compatible or Storage::mark_new_version)
};

/// One component of an op version: a function, variable, type, macro, lambda or declared dependency.
struct ComponentVersion {
  std::string name;  ///< "ns::f(int)", "ns::limit", "class ns::S", "file data/table.csv", ...
  std::string kind;  ///< function, variable, type, macro, lambda, file, value, library
  Id content;        ///< hash of its normalized code (comments and formatting do not count)
  Id semantic;       ///< its compatibility class: equal for contents marked compatible
  std::string code;  ///< normalized code (or the dependency's description)
};

/// One recorded version of an op's code.
struct OpVersion {
  std::size_t number = 0;  ///< 1, 2, ... in order of first use (what listings show)
  std::string op;
  std::uint32_t explicit_version = 0;        ///< OpOptions::version
  Id content_version;                        ///< over the components' contents
  Id semantic_version;                       ///< over their compatibility classes; part of the calls' ids
  bool decided = true;                       ///< false while an OnCodeChange::error change waits for a decision
  std::vector<ComponentVersion> components;  ///< sorted by name
  std::chrono::system_clock::time_point created;
  std::size_t calls = 0;  ///< stored calls computed under this semantic version
};

/// What Storage::mark_compatible(op, version) would mark (Storage::compatible_preview).
struct CompatibleMark {
  std::size_t version = 0;              ///< the version's number
  std::size_t joins = 0;                ///< the version whose calls it reuses once marked (0: none recorded)
  std::vector<std::string> components;  ///< the components whose change is marked (empty: nothing to do)
  std::string diff;                     ///< unified diff of those components: the code joined -> the version's
  /// Why this may not be the change meant (empty when it is the change most recently seen): this
  /// program's code of the op is another version or not recorded yet, the code last seen is
  /// another version, or other code changed after it was recorded. mark_compatible refuses to
  /// mark such a version unless it is named explicitly.
  std::string caution;
};

/// Where warnings of the versioning layer go (stderr by default): the one warning when ops run
/// without fingerprints, and OnCodeChange::warn. Returns the previous sink; nullptr restores stderr.
using WarningSink = void (*)(const std::string& message);
MANDALA_API WarningSink set_warning_sink(WarningSink sink) noexcept;

namespace detail {
/// Written by mandala-fingerprint (the generated source of mandala_track_versions).
struct GeneratedComponent {
  const char* name;
  const char* kind;
  const char* hash;  ///< 32 hex digits
  const char* file;
  const char* code;
};
struct GeneratedOp {
  const char* name;
  const unsigned* components;  ///< indices into the component table
  std::size_t count;
};
MANDALA_API bool register_fingerprints(const GeneratedComponent* components, std::size_t component_count,
                                       const GeneratedOp* ops, std::size_t op_count);
}  // namespace detail

}  // namespace mandala
