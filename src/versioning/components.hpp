#pragma once
// The components of an op's code version: its registered fingerprint (from the generated
// source of mandala_track_versions) and its declared dependencies.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mandala/detail/core.hpp"
#include "mandala/id.hpp"

namespace mandala::versioning {

struct ComponentSpec {
  std::string name;
  std::string kind;
  std::string file;
  std::string code;
  Id content;
};

/// The op's registered fingerprint, sorted by name; nullopt when none was registered.
std::optional<std::vector<ComponentSpec>> fingerprint_of(std::string_view op);
/// Whether this program registered any fingerprint (mandala_track_versions was used).
bool any_fingerprints();
/// Forgets every registered fingerprint (tests simulate rebuilt programs with it).
void clear_fingerprints();

/// The components of a declared dependency (reads a file dependency now).
ComponentSpec dependency_component(const Dependency& dependency, std::string_view op);

/// hash_dict over (name, id) pairs sorted by name.
Id combine(std::string_view tag, const std::vector<std::pair<std::string, Id>>& items);

/// Sends a warning to the current sink.
void warn(const std::string& message);
/// The warning about an op without fingerprint: once per program when no op has one (the build
/// step is not used), else once per such op.
void warn_untracked(const std::string& op);
/// Forgets which warnings were given (tests).
void reset_warnings();

}  // namespace mandala::versioning
