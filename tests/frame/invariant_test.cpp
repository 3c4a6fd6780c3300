// Random programs and random sequences of frame operations: every operation that promises the
// invariant keeps it, and every frame can still be printed, drawn and evaluated.

#include <gtest/gtest.h>

#include <random>

#include "frame/frame_test_util.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

const auto neg = md::op("neg", {"a"}, [](int a) { return -a; });
const auto twice = md::op("twice", {"a"}, [](int a) { return 2 * a; }, {.outputs = {"b"}});
const auto plus = md::op("plus", {"a", "b"}, [](int a, int b) { return a + b; }, {.outputs = {"s"}});
const auto divmod =
    md::op("divmod", {"a", "b"}, [](int a, int b) { return std::make_tuple(b ? a / b : 0, b ? a % b : 0); },
           {.outputs = {"q", "r"}});

class RandomFrames : public BackendTest {
 protected:
  // A random program over ints: each step applies an op to earlier values or fresh ints.
  void build(std::mt19937& rng) {
    md::Session s(storage());
    std::vector<md::Ref<int>> values;
    auto pick = [&]() -> md::Ref<int> {
      if (values.empty() || rng() % 4 == 0) return md::Ref<int>{};
      return values[rng() % values.size()];
    };
    auto arg = [&](const md::Ref<int>& r, int fresh) {
      return r.valid() ? r : twice(fresh);  // a fresh value still has a history
    };
    for (int i = 0; i < 30; ++i) {
      const int k = static_cast<int>(rng() % 4);
      const int fresh = static_cast<int>(rng() % 7);
      if (k == 0) values.push_back(neg(arg(pick(), fresh)));
      else if (k == 1) values.push_back(twice(fresh + i));
      else if (k == 2) values.push_back(plus(arg(pick(), fresh), arg(pick(), fresh + 1)));
      else {
        auto [q, r] = divmod(arg(pick(), fresh), arg(pick(), fresh + 2));
        values.push_back(q);
        values.push_back(r);
      }
    }
  }

  static std::vector<std::string> some(const std::vector<std::string>& names, std::mt19937& rng) {
    std::vector<std::string> out;
    for (const auto& n : names)
      if (rng() % 2) out.push_back(n);
    if (out.empty() && !names.empty()) out.push_back(names[rng() % names.size()]);
    return out;
  }

  void check(const md::ComputationFrame& f, const std::string& what) {
    SCOPED_TRACE(what);
    md::testing::expect_sound(f);
    EXPECT_NO_THROW((void)f.df({.join = md::Join::inner}));
    EXPECT_NO_THROW((void)f.graph_description());
  }
};

TEST_P(RandomFrames, OperationsKeepTheInvariant) {
  for (unsigned seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937 rng(seed);
    build(rng);
    const char* ops[] = {"neg", "twice", "plus", "divmod"};
    auto frame = storage().cf(ops[rng() % 4]);
    check(frame, "cf");
    for (int step = 0; step < 25; ++step) {
      const auto vars = frame.vnames();
      const auto nodes = frame.nodes();
      const int what = static_cast<int>(rng() % 14);
      std::string name = "op " + std::to_string(what);
      md::ComputationFrame next = frame;
      try {
        switch (what) {
          case 0: next = frame.expand_back(some(vars, rng), rng() % 2 ? md::Recursive::yes : md::Recursive::no); break;
          case 1:
            next = frame.expand_forward(some(vars, rng), rng() % 2 ? md::Recursive::yes : md::Recursive::no);
            break;
          case 2: next = frame.expand_all(); break;
          case 3:
            next = frame.expand_back(md::Recursive::yes, {.skip_existing = true, .reuse_existing = rng() % 2 == 0});
            break;
          case 4: next = frame.downstream(some(nodes, rng), rng() % 2 ? md::Reach::strong : md::Reach::weak); break;
          case 5: next = frame.upstream(some(nodes, rng), rng() % 2 ? md::Reach::strong : md::Reach::weak); break;
          case 6: next = frame.midstream(some(nodes, rng)); break;
          case 7: next = frame.drop_unreachable(rng() % 2 ? md::Direction::forward : md::Direction::back); break;
          case 8: next = frame.select_nodes(some(nodes, rng)); break;
          case 9: next = frame.isin(std::vector<int>{0, 1, 2, 3, 4}, md::Closure::closed); break;
          case 10: next = frame.merge_vars(); break;
          case 11: next = frame.drop(some(nodes, rng)).cleanup(); break;
          case 12: next = frame | storage().cf(ops[rng() % 4]); break;
          case 13: next = (frame & frame.expand_all()) - storage().cf(ops[rng() % 4]); break;
        }
      } catch (const md::Error& e) {
        // a union that would break the invariant is refused; nothing else may throw
        EXPECT_EQ(what, 12) << e.what();
        continue;
      }
      if (what == 8 || what == 11) {
        // Removing a variable keeps element sets as they are (as the original does): a call whose
        // input/output was only in that variable then has it in none of the label's remaining
        // variables. Such a frame still prints and evaluates; the next steps start from sound frames.
        EXPECT_NO_THROW((void)next.df());
        EXPECT_NO_THROW((void)next.graph_description());
        if (!next.invariant_violations().empty()) continue;
      }
      check(next, name);
      if (next.nodes().empty()) next = storage().cf(ops[rng() % 4]);
      frame = std::move(next);
    }
  }
}

MANDALA_INSTANTIATE_BACKENDS(RandomFrames);

}  // namespace
