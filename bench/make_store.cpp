// Makes a store of N trivial calls, `inc(i)` for i < N (the store of workload W1), for timing the
// `mandala` command's inspection on a large store (bench/README.md, "Inspecting a large store").
//
//   mandala_make_store STORE N

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <mandala/mandala.hpp>

namespace md = mandala;

namespace {
const auto inc = md::op("inc", {"x"}, [](long x) { return x + 1; });
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s STORE N\n", argv[0]);
    return 2;
  }
  const std::filesystem::path path = argv[1];
  const long n = std::atol(argv[2]);
  if (n <= 0 || std::filesystem::exists(path)) {
    std::fprintf(stderr, "%s: N must be positive and STORE must not exist yet\n", argv[0]);
    return 2;
  }
  try {
    md::Storage storage(path);
    const auto t0 = std::chrono::steady_clock::now();
    {
      md::Session session(storage);
      for (long i = 0; i < n; ++i) (void)inc(i);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("%ld calls in %.2f s (%.2f us per call)\n", n, s, s * 1e6 / static_cast<double>(n));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
