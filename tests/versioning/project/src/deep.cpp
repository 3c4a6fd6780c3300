#include "helpers.hpp"

int deep_helper(int x) { return x * x; }
