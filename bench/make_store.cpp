// Makes a store of N trivial calls, `inc(i)` for i < N (the store of workload W1), for timing the
// `mandala` command's inspection on a large store (bench/README.md, "Inspecting a large store"),
// and, with --again, the same calls once more in a second session (memoized). Built twice: as
// mandala_make_store, and as mandala_make_store_versioned with its op versioned by its code, so
// that the two programs' instruction counts give what code versioning costs per call.
//
//   mandala_make_store STORE N [--again]

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
  const bool again = argc == 4 && std::string(argv[3]) == "--again";
  if (argc != 3 && !again) {
    std::fprintf(stderr, "usage: %s STORE N [--again]\n", argv[0]);
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
    for (int pass = 0; pass < (again ? 2 : 1); ++pass) {
      const auto t0 = std::chrono::steady_clock::now();
      {
        md::Session session(storage);
        for (long i = 0; i < n; ++i) (void)inc(i);
      }
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%ld %s calls in %.2f s (%.2f us per call)\n", n, pass == 0 ? "new" : "memoized", s,
                  s * 1e6 / static_cast<double>(n));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
