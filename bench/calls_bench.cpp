// Per-call cost of memoized ops on a file store.
//   mandala_bench_calls new   STORE N   N new trivial calls inc(i) in one session
//   mandala_bench_calls again STORE N   the same calls in this (new) process: all memoized
//   mandala_bench_calls both  STORE N   both phases in one process (memoized in the same process)
// Prints one line per phase: "<phase> N=<n> total_s=<s> us_per_call=<us> executed=<e> reused=<r>".

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <mandala/mandala.hpp>

namespace md = mandala;

namespace {
const auto inc = md::op("inc", {"x"}, [](long x) { return x + 1; });

void run(md::Storage& storage, const char* phase, long n) {
  const auto before = storage.counters();
  const auto t0 = std::chrono::steady_clock::now();
  {
    md::Session session(storage);
    for (long i = 0; i < n; ++i) (void)inc(i);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto after = storage.counters();
  std::printf("%s N=%ld total_s=%.3f us_per_call=%.2f executed=%llu reused=%llu\n", phase, n, s, s * 1e6 / double(n),
              static_cast<unsigned long long>(after.executed - before.executed),
              static_cast<unsigned long long>(after.reused() - before.reused()));
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s new|again|both STORE N\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  const long n = std::atol(argv[3]);
  try {
    md::Storage storage(argv[2]);
    if (mode == "new" || mode == "both") run(storage, "new", n);
    if (mode == "again" || mode == "both") run(storage, mode == "both" ? "again_same_process" : "again_new_process", n);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
