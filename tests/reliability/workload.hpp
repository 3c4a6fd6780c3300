#pragma once
// The workload of the reliability tests: small integer calls chained through refs, and every so
// often a value large enough to go to a blob file. Shared by the writer program, the kill harness
// and the concurrency tests, so each can compute exactly which calls a run stores.

#include <cstdint>
#include <vector>

#include "mandala/mandala.hpp"

namespace mandala::reliability {

/// Steps that also store a blob-sized value (and a call consuming it).
inline bool has_blob(std::int64_t step, std::int64_t blob_every) { return blob_every > 0 && step % blob_every == 0; }

/// Doubles in a blob value: 20,000 (160 KB) with blobs starting at 64 KiB.
inline constexpr std::size_t blob_doubles = 20'000;
inline constexpr std::size_t blob_threshold = 64 * 1024;

inline const auto sq = op("rel_sq", {"x"}, [](std::int64_t x) { return x * x; });
inline const auto add = op("rel_add", {"a", "b"}, [](std::int64_t a, std::int64_t b) { return a + b; });
inline const auto big =
    op("rel_big", {"x"}, [](std::int64_t x) { return std::vector<double>(blob_doubles, static_cast<double>(x)); });
inline const auto total = op("rel_total", {"v"}, [](const std::vector<double>& v) {
  double s = 0;
  for (double d : v) s += d;
  return s;
});

/// Options of every storage on a workload store (blob-sized values go to files).
inline StorageOptions workload_options() {
  StorageOptions o;
  o.blob_threshold_bytes = blob_threshold;
  return o;
}

/// One step: sq(x), add(sq(x), x % 7), and for blob steps total(big(x)). Returns the add ref.
inline Ref<std::int64_t> run_step(std::int64_t x, std::int64_t blob_every) {
  auto y = sq(x);
  auto z = add(y, x % 7);
  if (has_blob(x, blob_every)) total(big(x));
  return z;
}

inline std::int64_t expected_add(std::int64_t x) { return x * x + x % 7; }
inline double expected_total(std::int64_t x) { return static_cast<double>(blob_doubles) * static_cast<double>(x); }

/// Calls stored by steps [0, n).
inline std::uint64_t calls_of_steps(std::int64_t n, std::int64_t blob_every) {
  if (n <= 0) return 0;
  const std::uint64_t blobs = blob_every > 0 ? static_cast<std::uint64_t>((n - 1) / blob_every + 1) : 0;
  return 2 * static_cast<std::uint64_t>(n) + 2 * blobs;
}

}  // namespace mandala::reliability
