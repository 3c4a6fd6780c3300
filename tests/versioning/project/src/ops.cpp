#include "ops.hpp"

#include <map>

#include "constants.hpp"
#include "helpers.hpp"

namespace {
std::map<std::string, int> runs;
}

int executed(const std::string& op) { return runs[op]; }

int score_impl(int x) {
  ++runs["score"];
  return middle(x) * 2;
}

int scale_impl(int x) {
  ++runs["scale"];
  return x * kFactor;
}

int twin_a_impl(int x) {
  ++runs["twin_a"];
  return shared_step(x) + 1;
}

int twin_b_impl(int x) {
  ++runs["twin_b"];
  return shared_step(x) + 2;
}
