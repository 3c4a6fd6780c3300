#pragma once
// Readable integrity-check findings for test failure messages.

#include <string>
#include <vector>

#include "mandala/storage.hpp"

namespace mandala::testing {

/// One "kind: message" line per problem or warning.
inline std::string describe(const std::vector<IntegrityProblem>& list) {
  std::string s;
  for (const auto& p : list) s += p.kind + ": " + p.message + "\n";
  return s;
}

}  // namespace mandala::testing
