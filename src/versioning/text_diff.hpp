#pragma once
// Line-based unified diffs of component code (listings, warnings, Storage::diff).

#include <string>

namespace mandala::versioning {

/// A unified diff (`---`/`+++` headers, `@@` hunks with three lines of context); empty
/// when the texts are equal.
std::string unified_diff(const std::string& before, const std::string& after, const std::string& before_name,
                         const std::string& after_name);

}  // namespace mandala::versioning
