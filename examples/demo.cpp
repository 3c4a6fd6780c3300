// The main demo: a small model-selection pipeline whose every op call is memoized in an SQLite
// file. Run it twice: the second run computes nothing and says so.
//   mandala_demo [STORE]   (default: demo.db in the current directory)

#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include <mandala/mandala.hpp>

namespace md = mandala;

struct Model {
  double weight = 0;
  double bias = 0;
};
MANDALA_STRUCT(Model, weight, bias);

using Series = std::vector<double>;

// y = 3x + 1 with a deterministic wiggle.
const auto load_data = md::op("load_data", {"n"}, [](int n) {
  Series xy;
  for (int i = 0; i < n; ++i) {
    const double x = i / static_cast<double>(n);
    xy.push_back(x);
    xy.push_back(3 * x + 1 + 0.1 * std::sin(37.0 * i));
  }
  return xy;
});

// Ridge regression of y on x, closed form.
const auto train = md::op("train", {"data", "reg"}, [](const Series& xy, double reg) {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  const double n = static_cast<double>(xy.size() / 2);
  for (std::size_t i = 0; i < xy.size(); i += 2) {
    sx += xy[i];
    sy += xy[i + 1];
    sxx += xy[i] * xy[i];
    sxy += xy[i] * xy[i + 1];
  }
  const double mx = sx / n, my = sy / n;
  const double w = (sxy - n * mx * my) / (sxx - n * mx * mx + reg);
  return Model{w, my - w * mx};
});

const auto evaluate = md::op("evaluate", {"model", "data"}, [](const Model& m, const Series& xy) {
  double se = 0;
  for (std::size_t i = 0; i < xy.size(); i += 2) se += std::pow(m.weight * xy[i] + m.bias - xy[i + 1], 2);
  return std::sqrt(se / static_cast<double>(xy.size() / 2));
});

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "demo.db";
  try {
    md::Storage storage(path);
    md::Ref<double> best;
    double best_reg = 0;
    {
      md::Session session(storage);
      auto data = load_data(2000);
      for (double reg : {0.0, 0.1, 1.0, 10.0}) {
        auto model = train(data, reg);
        auto rmse = evaluate(model, data);
        std::printf("reg=%-5g weight=%.4f bias=%.4f rmse=%.5f\n", reg, model->weight, model->bias, *rmse);
        if (!best.valid() || *rmse < *best) {
          best = rmse;
          best_reg = reg;
        }
      }
    }
    const auto c = storage.counters();
    std::printf("\nexecuted %llu calls, reused %llu (store: %s)\n", static_cast<unsigned long long>(c.executed),
                static_cast<unsigned long long>(c.reused()), path.c_str());

    // Provenance: the calls upstream of the best score, read back from the store.
    std::printf("\nbest rmse %.5f (reg=%g) came from:\n", *best, best_reg);
    auto explain = [&](auto&& self, const md::AnyRef& ref, int depth) -> void {
      const auto call = storage.creator_of(ref);
      if (!call) return;
      std::printf("%*s%s  [call %s]\n", 2 * depth, "", call->op.c_str(), call->hid.hex().substr(0, 12).c_str());
      for (const auto& [name, input] : call->inputs) {
        if (storage.creator_of(input)) {
          std::printf("%*s%s <-\n", 2 * depth + 2, "", name.c_str());
          self(self, input, depth + 2);
        } else {
          std::printf("%*s%s = %s\n", 2 * depth + 2, "", name.c_str(), input.to_json(3).c_str());
        }
      }
    };
    explain(explain, best, 1);
    const auto stats = storage.stats();
    std::printf("\nstore holds %llu calls of %llu ops, %llu values (%llu bytes)\n",
                static_cast<unsigned long long>(stats.calls), static_cast<unsigned long long>(stats.ops),
                static_cast<unsigned long long>(stats.values), static_cast<unsigned long long>(stats.value_bytes));
  } catch (const md::Error& e) {
    std::fprintf(stderr, "mandala_demo: %s\n", e.what());
    return 1;
  }
  return 0;
}
