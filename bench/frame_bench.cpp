// ComputationFrame at scale: a two-op pipeline `y = inc(i); z = add(i, y)` of N calls in a file
// store, then the time of storage.cf(inc), expand_all() and df() over all of it.
//   mandala_bench_frame DIR [N...]      (default N: 10000 100000 1000000)
// Prints one line per N: "calls=<N> build_s=... cf_s=... expand_all_s=... df_s=... rows=...",
// then the growth of each phase relative to the smallest N.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <mandala/mandala.hpp>

namespace md = mandala;

namespace {
const auto inc = md::op("inc", {"x"}, [](long x) { return x + 1; }, {.outputs = {"y"}});
const auto add = md::op("add", {"x", "y"}, [](long x, long y) { return x + y; }, {.outputs = {"z"}});

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Result {
  long calls;
  double build, cf, expand, df;
  std::size_t rows;
};

Result run(const std::filesystem::path& dir, long calls) {
  const auto path = dir / ("frame-" + std::to_string(calls) + ".db");
  std::filesystem::remove(path);
  std::filesystem::remove_all(path.string() + ".blobs");
  Result r{calls, 0, 0, 0, 0, 0};
  md::Storage storage(path);
  auto t0 = std::chrono::steady_clock::now();
  {
    md::Session session(storage);
    for (long i = 0; i < calls / 2; ++i) add(i, inc(i));
  }
  r.build = since(t0);
  t0 = std::chrono::steady_clock::now();
  auto frame = storage.cf(inc);
  r.cf = since(t0);
  t0 = std::chrono::steady_clock::now();
  frame.expand_all_inplace();
  r.expand = since(t0);
  t0 = std::chrono::steady_clock::now();
  const auto table = frame.df();
  r.df = since(t0);
  r.rows = table.num_rows();
  if (frame.num_calls() != static_cast<std::size_t>(calls / 2 * 2)) std::fprintf(stderr, "unexpected call count\n");
  std::printf("calls=%ld build_s=%.3f cf_s=%.3f expand_all_s=%.3f df_s=%.3f rows=%zu\n", calls, r.build, r.cf, r.expand,
              r.df, r.rows);
  std::fflush(stdout);
  return r;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DIR [N...]\n", argv[0]);
    return 2;
  }
  std::vector<long> sizes;
  for (int i = 2; i < argc; ++i) sizes.push_back(std::atol(argv[i]));
  if (sizes.empty()) sizes = {10'000, 100'000, 1'000'000};
  try {
    std::vector<Result> results;
    for (long n : sizes) results.push_back(run(argv[1], n));
    const auto& base = results.front();
    for (const auto& r : results) {
      const double k = double(r.calls) / double(base.calls);
      std::printf("calls x%.0f: cf x%.1f expand_all x%.1f df x%.1f\n", k, r.cf / base.cf, r.expand / base.expand,
                  r.df / base.df);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
