// A Python module of C++ ops for the package's tests (test_cpp_ops.py): each op counts its runs.

#include <atomic>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mandala/python.hpp"

namespace md = mandala;

namespace {

std::atomic<int> runs{0};

const auto scale = md::op("cpp_scale", {"x", md::arg("k", std::int64_t{2})}, [](double x, std::int64_t k) {
  ++runs;
  return x * static_cast<double>(k);
});
const auto stats =
    md::op("cpp_stats", {"xs"},
           [](const std::vector<double>& xs) {
             ++runs;
             return std::tuple{std::accumulate(xs.begin(), xs.end(), 0.0), static_cast<std::int64_t>(xs.size())};
           },
           {.outputs = {"total", "count"}});
const auto greet = md::op("cpp_greet", {"name"}, [](const std::string& name) {
  ++runs;
  return "hello " + name;
});

// Takes what a Python tuple and set decode to (docs/storage-format.md 1.9).
const auto describe = md::op("cpp_describe", {"pair", "tags"},
                             [](const std::pair<std::string, std::int64_t>& pair, const std::set<std::string>& tags) {
                               ++runs;
                               std::string out = pair.first + "=" + std::to_string(pair.second);
                               for (const auto& t : tags) out += " #" + t;
                               return out;
                             });

// A transient output (docs/storage-format.md 2.3): recorded, not stored, recomputed when loaded.
const auto squares = md::op("cpp_squares", {"n"},
                            [](std::int64_t n) {
                              ++runs;
                              std::vector<double> out(static_cast<std::size_t>(n));
                              for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(i * i);
                              return out;
                            },
                            {.transient = true});

// Declared in Python too (test_cpp_ops.py): the same op in both languages.
const auto triple = md::op("cross_triple", {"x"}, [](std::int64_t x) {
  ++runs;
  return 3 * x;
});

}  // namespace

PYBIND11_MODULE(mandala_test_cpp_ops, m) {
  md::python::export_op(m, scale);
  md::python::export_op(m, stats);
  md::python::export_op(m, greet);
  md::python::export_op(m, triple);
  md::python::export_op(m, describe);
  md::python::export_op(m, squares);
  m.def("runs", [] { return runs.load(); });
}
