#pragma once
// Read by the op `scale`.
constexpr int kFactor = 3;
