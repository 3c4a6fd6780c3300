// Frames of the shapes of issue 15 (tests/frame/data/shape_*.json), recomputed with libmandala
// and compared with what the original Python mandala gave for the same programs: nodes, edges,
// per-variable element sets (as multisets of values), node sizes and table rows (as multisets,
// column order free). Deliberate differences are listed in kDifferences below and in
// tests/frame/oracle/README.md; every other query must match exactly.

#include <gtest/gtest.h>

#include <functional>
#include <numeric>
#include <set>

#include "frame/frame_test_util.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;
using Ints = std::vector<int>;

namespace {

/// Per variable, its values as canonical JSON texts, sorted (a multiset).
std::map<std::string, std::vector<std::string>> elements(const md::ComputationFrame& frame) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& v : frame.vnames()) {
    auto& values = out[v];
    for (const auto& r : frame.refs(v))
      values.push_back(md::testing::normal(nlohmann::json::parse(r.to_json())).dump());
    std::sort(values.begin(), values.end());
  }
  return out;
}

std::map<std::string, std::vector<std::string>> elements(const nlohmann::json& expected) {
  std::map<std::string, std::vector<std::string>> out;
  for (auto it = expected.begin(); it != expected.end(); ++it) {
    auto& values = out[it.key()];
    for (const auto& x : it.value()) values.push_back(md::testing::normal(x).dump());
    std::sort(values.begin(), values.end());
  }
  return out;
}

enum class Sound { required, not_promised };

struct Query {
  std::string key;
  std::function<md::ComputationFrame()> frame;
  std::vector<std::string> columns{};  ///< df() columns; empty = all
  Sound sound = Sound::required;       ///< raw restrictions and select_nodes promise no invariant
};

/// A deliberate difference from the original: the expected record is edited by `adjust` (and the
/// reason is given here and in tests/frame/oracle/README.md).
struct Difference {
  std::string scenario, key, reason;
  std::function<void(nlohmann::json&)> adjust;
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

const std::vector<Difference>& differences() {
  static const std::vector<Difference> list = {
      {"shape_intersection", "fwd_and_back",
       "1. An intersection that keeps a function node but none of the edges of one of its output "
       "labels: the original keeps the label without a variable and prints `@z = add(...)`; a frame here "
       "has labels only through edges, so the line reads ` = add(...)`. Nodes, edges, elements and "
       "rows are the original's.",
       [](nlohmann::json& e) {
         auto g = e.at("graph_normalized").get<std::string>();
         g = replace_all(g, "@w = mul()", " = mul()");
         g = replace_all(g, "@z = add(", " = add(");
         e["graph_normalized"] = md::testing::sorted_lines(g);
       }},
      {"shape_intersection", "fwd_or_back",
       "2. A union the original refuses: its union checks the every-variable form of the invariant "
       "(AssertionError: `final`'s calls fed by `mul` have their input in `w` and `t`, not in `z`). "
       "Here the union is accepted: each input/output is in a variable joined by its label. Checked "
       "in UnionTheOriginalRefuses below.",
       nullptr},
      {"shape_multi_output", "q_then_r_back",
       "3. A label new to a node that already holds calls: `divmod_` was joined by `q` (calls n < 6), "
       "then back expansion through `r` (calls of even n) reuses it. Here the node's calls' outputs "
       "along `r` join `a` (the original adds only those of calls new to the node, so n = 1, 3, 5 "
       "have their `r` in no variable, and it records no creator for the outputs of calls already "
       "there, which cuts the rows of `sq` for n = 0, 2, 4 from their `divmod_` rows).",
       [](nlohmann::json& e) {
         // a: the r outputs of all eight calls (n = 0..6, 8)
         e["elements"]["a"] = {0, 0, 0, 1, 1, 2, 2, 2};
         e["vars"]["a"] = 8;
         nlohmann::json rows = nlohmann::json::array();
         for (const auto& row : e.at("rows")) {
           if (row.at("n").is_null()) continue;  // the cut sq rows of n = 0, 2, 4
           auto r = row;
           const int n = r.at("n").get<int>();
           r["a"] = n % 3;
           if (n % 2 == 0) {
             r["sq"] = {{"call", "sq"}};
             r["s"] = (n % 3) * (n % 3);
           }
           rows.push_back(r);
         }
         e["rows"] = rows;
       }},
  };
  return list;
}

class ShapesOracle : public BackendTest {
 protected:
  void check(const std::string& scenario, const std::vector<Query>& queries) {
    const auto expected = md::testing::oracle_frames(scenario);
    if (expected.is_null()) GTEST_SKIP() << "no oracle data for " << scenario;
    std::set<std::string> keys;
    for (auto it = expected.begin(); it != expected.end(); ++it) keys.insert(it.key());
    std::set<std::string> run;
    for (const auto& q : queries) {
      SCOPED_TRACE(scenario + "/" + q.key);
      ASSERT_TRUE(expected.contains(q.key));
      run.insert(q.key);
      nlohmann::json want = expected.at(q.key);
      bool skip = false;
      for (const auto& d : differences())
        if (d.scenario == scenario && d.key == q.key) {
          if (d.adjust) d.adjust(want);
          else skip = true;  // compared by its own test
        }
      if (skip) continue;
      ASSERT_FALSE(want.at("graph").is_null()) << "the original could not build this frame";
      const auto frame = q.frame();
      const auto table = frame.df({.columns = q.columns});
      if (q.sound == Sound::required) {
        md::testing::expect_oracle(frame, table, want);
      } else {
        // the same comparisons without the soundness check
        EXPECT_EQ(md::testing::sorted_lines(frame.graph_description()), want.at("graph_normalized").get<std::string>());
        std::vector<std::vector<std::string>> edges;
        for (const auto& e : frame.edges()) edges.push_back({e.source, e.target, e.label});
        EXPECT_EQ(edges, (want.at("edges").get<std::vector<std::vector<std::string>>>()));
        if (!want.at("columns").is_null()) {
          EXPECT_EQ(md::testing::row_set(table), md::testing::row_set(want.at("rows")));
        }
      }
      EXPECT_EQ(elements(frame), elements(want.at("elements")));
      std::map<std::string, std::size_t> funcs;
      for (const auto& f : frame.fnames()) funcs[f] = frame.size(f);
      EXPECT_EQ(funcs, (want.at("funcs").get<std::map<std::string, std::size_t>>()));
    }
    EXPECT_EQ(run, keys) << "every recorded query of " << scenario << " is compared";
  }
};

// ---- the programs (each mirrors its Python twin in tests/frame/oracle/generate.py) -------------

TEST_P(ShapesOracle, Diamond) {
  const md::testing::Diamond d;
  const auto& [inc, add, mul, final_] = d;
  d.run(storage());
  reopen();
  auto& st = storage();
  check("shape_diamond", {
                             {"inc_forward", [&] { return st.cf(inc).expand_forward(md::Recursive::yes); }},
                             {"inc_forward_once", [&] { return st.cf(inc).expand_forward(); }},
                             {"inc_all", [&] { return st.cf(inc).expand_all(); }},
                             {"final_back", [&] { return st.cf(final_).expand_back(md::Recursive::yes); }},
                             {"add_all", [&] { return st.cf(add).expand_all(); }},
                             {"mul_all", [&] { return st.cf(mul).expand_all(); }},
                             {"inc_all_x_v", [&] { return st.cf(inc).expand_all(); }, {"x", "v"}},
                             {"inc_all_merged", [&] { return st.cf(inc).expand_all().merge_vars(); }},
                         });
}

TEST_P(ShapesOracle, Loop) {
  const md::testing::Loop l;
  const auto& [init, step, score] = l;
  l.run(storage());
  reopen();
  auto& st = storage();
  check("shape_loop", {
                          {"score_back", [&] { return st.cf(score).expand_back(md::Recursive::yes); }},
                          {"score_back_once", [&] { return st.cf(score).expand_back(); }},
                          {"init_forward", [&] { return st.cf(init).expand_forward(md::Recursive::yes); }},
                          {"step_all", [&] { return st.cf(step).expand_all(); }},
                          {"score_all", [&] { return st.cf(score).expand_all(); }},
                          {"step_only", [&] { return st.cf(step); }},
                      });
}

TEST_P(ShapesOracle, InPlace) {
  const auto load = md::op("load", {"i"}, [](int i) { return Ints{i, i + 1}; }, {.outputs = {"X"}});
  const auto scale =
      md::op("scale", {"X"}, [](const Ints& x) { return md::testing::times_ten(x); }, {.outputs = {"X_scaled"}});
  const auto summarize = md::op(
      "summarize", {"X"}, [](const Ints& x) { return std::accumulate(x.begin(), x.end(), 0); }, {.outputs = {"m"}});
  {
    md::Session s(storage());
    for (int i = 0; i < 4; ++i) {
      auto x = load(i);
      if (i % 2 == 1) x = scale(x);
      summarize(x);
    }
  }
  reopen();
  auto& st = storage();
  check("shape_inplace", {
                             {"summarize_back", [&] { return st.cf(summarize).expand_back(md::Recursive::yes); }},
                             {"load_forward", [&] { return st.cf(load).expand_forward(md::Recursive::yes); }},
                             {"scale_all", [&] { return st.cf(scale).expand_all(); }},
                             {"summarize_all", [&] { return st.cf(summarize).expand_all(); }},
                             {"summarize_all_X_m", [&] { return st.cf(summarize).expand_all(); }, {"X", "m"}},
                         });
}

TEST_P(ShapesOracle, InPlaceTwice) {
  const auto load = md::op("load", {"i"}, [](int i) { return i; }, {.outputs = {"X"}});
  const auto scale = md::op("scale", {"X"}, [](int x) { return x * 10; }, {.outputs = {"X_scaled"}});
  const auto shift = md::op("shift", {"X"}, [](int x) { return x + 100; }, {.outputs = {"X_shifted"}});
  const auto total = md::op("total", {"X"}, [](int x) { return x + 0.5; }, {.outputs = {"t"}});
  {
    md::Session s(storage());
    for (int i = 0; i < 6; ++i) {
      auto x = load(i);
      if (i % 2) x = scale(x);
      if (i % 3 == 0) x = shift(x);
      total(x);
    }
  }
  reopen();
  auto& st = storage();
  check("shape_inplace_twice", {
                                   {"total_back", [&] { return st.cf(total).expand_back(md::Recursive::yes); }},
                                   {"load_forward", [&] { return st.cf(load).expand_forward(md::Recursive::yes); }},
                                   {"shift_all", [&] { return st.cf(shift).expand_all(); }},
                                   {"total_all_merged", [&] { return st.cf(total).expand_all().merge_vars(); }},
                               });
}

TEST_P(ShapesOracle, TwoProducers) {
  const auto make_a = md::op("make_a", {"i"}, [](int i) { return i * 2; }, {.outputs = {"a"}});
  const auto make_b = md::op("make_b", {"i"}, [](int i) { return i * 3; }, {.outputs = {"b"}});
  const auto use = md::op("use", {"v"}, [](int v) { return v + 1000; }, {.outputs = {"u"}});
  {
    md::Session s(storage());
    for (int i = 0; i < 5; ++i) {
      if (i < 3) use(make_a(i));
      if (i >= 2) use(make_b(i));
    }
    make_b(9);
  }
  reopen();
  auto& st = storage();
  check("shape_two_producers", {
                                   {"use_back", [&] { return st.cf(use).expand_back(md::Recursive::yes); }},
                                   {"make_a_forward", [&] { return st.cf(make_a).expand_forward(md::Recursive::yes); }},
                                   {"make_a_all", [&] { return st.cf(make_a).expand_all(); }},
                                   {"make_b_all", [&] { return st.cf(make_b).expand_all(); }},
                                   {"use_all", [&] { return st.cf(use).expand_all(); }},
                                   {"use_all_i_u", [&] { return st.cf(use).expand_all(); }, {"i", "u"}},
                               });
}

TEST_P(ShapesOracle, SharedAncestor) {
  const auto root = md::op("root", {"i"}, [](int i) { return i + 1; }, {.outputs = {"base"}});
  const auto left = md::op("left", {"base"}, [](int b) { return b * 2; }, {.outputs = {"l"}});
  const auto right = md::op("right", {"base"}, [](int b) { return b * 3; }, {.outputs = {"r"}});
  const auto join = md::op("join", {"l", "r"}, [](int l, int r) { return l + r; }, {.outputs = {"j"}});
  {
    md::Session s(storage());
    for (int i = 0; i < 5; ++i) {
      auto base = root(i);
      auto l = left(base);
      if (i % 2 == 0) {
        auto r = right(base);
        if (i < 3) join(l, r);
      }
    }
  }
  reopen();
  auto& st = storage();
  check("shape_shared_ancestor", {
                                     {"join_back", [&] { return st.cf(join).expand_back(md::Recursive::yes); }},
                                     {"root_forward", [&] { return st.cf(root).expand_forward(md::Recursive::yes); }},
                                     {"root_all", [&] { return st.cf(root).expand_all(); }},
                                     {"right_all", [&] { return st.cf(right).expand_all(); }},
                                     {"root_all_i_j", [&] { return st.cf(root).expand_all(); }, {"i", "j"}},
                                 });
}

TEST_P(ShapesOracle, MultiOutput) {
  const auto divmod = md::op("divmod_", {"n", "d"}, [](int n, int d) { return std::make_tuple(n / d, n % d); },
                             {.outputs = {"q", "r"}});
  const auto half = md::op("half", {"a"}, [](int a) { return a / 2.0; }, {.outputs = {"h"}});
  const auto sq = md::op("sq", {"a"}, [](int a) { return a * a; }, {.outputs = {"s"}});
  const auto pair = md::op("pair", {"a", "b"}, [](double a, int b) { return a * 100 + b; }, {.outputs = {"p"}});
  {
    md::Session s(storage());
    for (int n = 0; n < 9; ++n) {
      auto [q, r] = divmod(n, 3);
      std::optional<md::Ref<double>> h;
      std::optional<md::Ref<int>> s2;
      if (n < 6) h = half(q);
      if (n % 2 == 0) s2 = sq(r);
      if (h && s2) pair(*h, *s2);
    }
  }
  reopen();
  auto& st = storage();
  check("shape_multi_output", {
                                  {"divmod_forward", [&] { return st.cf(divmod).expand_forward(md::Recursive::yes); }},
                                  {"pair_back", [&] { return st.cf(pair).expand_back(md::Recursive::yes); }},
                                  {"divmod_all", [&] { return st.cf(divmod).expand_all(); }},
                                  {"sq_all", [&] { return st.cf(sq).expand_all(); }},
                                  {"q_then_r_back",
                                   [&] {
                                     return (st.cf(half).expand_back(md::Recursive::yes).rename("a", "qa") | st.cf(sq))
                                         .expand_back(md::Recursive::yes);
                                   }},
                              });
}

TEST_P(ShapesOracle, Unions) {
  const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; }, {.outputs = {"y"}});
  const auto add = md::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});
  const auto mul = md::op("mul", {"x", "y"}, [](int x, int y) { return x * y; }, {.outputs = {"w"}});
  {
    md::Session s(storage());
    for (int x = 0; x < 6; ++x) {
      auto y = inc(x);
      if (x < 3) add(x, y);
      if (x >= 2) mul(x, y);
    }
  }
  reopen();
  auto& st = storage();
  auto add_back = [&] { return st.cf(add).expand_back(md::Recursive::yes); };
  auto mul_back = [&] { return st.cf(mul).expand_back(md::Recursive::yes); };
  check("shape_union",
        {
            {"add_back", add_back},
            {"mul_back", mul_back},
            {"union_back", [&] { return add_back() | mul_back(); }},
            {"union_then_forward", [&] { return (st.cf(add) | st.cf(mul)).expand_back(md::Recursive::yes); }},
            {"union_inc", [&] { return st.cf(inc).expand_forward(md::Recursive::yes) | add_back(); }},
            {"union_expanded_all", [&] { return (add_back() | mul_back()).expand_all(); }},
        });
}

TEST_P(ShapesOracle, Intersections) {
  const md::testing::Diamond d;
  const auto& [inc, add, mul, final_] = d;
  d.run(storage());
  reopen();
  auto& st = storage();
  auto fwd = [&] { return st.cf(inc).expand_forward(md::Recursive::yes); };
  check("shape_intersection",
        {
            {"fwd_and_back", [&] { return fwd() & st.cf(final_).expand_back(md::Recursive::yes); }},
            {"fwd_and_all", [&] { return fwd() & st.cf(inc).expand_all(); }},
            {"all_and_add", [&] { return st.cf(inc).expand_all() & st.cf(add).expand_all(); }},
            {"add_back_and_fwd", [&] { return st.cf(add).expand_back(md::Recursive::yes) & fwd(); }},
            {"fwd_once_and_all", [&] { return st.cf(inc).expand_forward() & st.cf(inc).expand_all(); }},
            {"fwd_or_back", [&] { return fwd() | st.cf(final_).expand_back(md::Recursive::yes); }},
        });
}

// Difference 2: the union the original refuses is sound here and holds both frames.
TEST_P(ShapesOracle, UnionTheOriginalRefuses) {
  REQUIRE_ORACLE(expected, "shape_intersection");
  EXPECT_NE(expected.at("fwd_or_back").at("error").get<std::string>().find("AssertionError"), std::string::npos);
  const md::testing::Diamond d;
  const auto& [inc, add, mul, final_] = d;
  d.run(storage());
  const auto a = storage().cf(inc).expand_forward(md::Recursive::yes);
  const auto b = storage().cf(final_).expand_back(md::Recursive::yes);
  const auto u = a | b;
  md::testing::expect_sound(u);
  for (const auto& node : u.nodes()) {
    std::set<md::Id> want;
    for (const auto* f : {&a, &b})
      if (f->has_node(node))
        for (const auto& h : f->hids(node)) want.insert(h);
    const auto got = u.hids(node);
    EXPECT_EQ(std::set<md::Id>(got.begin(), got.end()), want) << node;
  }
  EXPECT_EQ(u.in_neighbors("final"), (std::vector<std::string>{"t", "w", "z"}));
}

TEST_P(ShapesOracle, Restrictions) {
  const auto prep = md::op("prep", {"i"}, [](int i) { return i * 10; }, {.outputs = {"p"}});
  const auto fit = md::op("fit", {"p"}, [](int p) { return p + 1; }, {.outputs = {"m"}});
  const auto predict = md::op("predict", {"m", "p"}, [](int m, int p) { return m * 1000 + p; }, {.outputs = {"y"}});
  {
    md::Session s(storage());
    for (int i = 0; i < 6; ++i) {
      auto p = prep(i);
      if (i < 4) {
        auto m = fit(p);
        if (i < 2) predict(m, p);
      }
    }
  }
  reopen();
  auto& st = storage();
  auto all = [&] { return st.cf(prep).expand_all(); };
  check("shape_restrictions",
        {
            {"all", all},
            {"isin",
             [&] {
               return all().isin(Ints{10, 20, 11});
             },
             {},
             Sound::not_promised},
            {"less_than", [&] { return all().less_than(15); }, {}, Sound::not_promised},
            {"downstream_fit", [&] { return all().downstream({"fit"}); }},
            {"upstream_m", [&] { return all().upstream({"m"}); }},
            {"midstream_i_y",
             [&] {
               return all().midstream({"i", "y"});
             }},
            {"drop_unreachable_back", [&] { return all().drop_unreachable(md::Direction::back); }},
            {"select_p_fit_m",
             [&] {
               return all().select_nodes({"p", "fit", "m"});
             },
             {},
             Sound::not_promised},
        });
}

TEST_P(ShapesOracle, AlternatingLoop) {
  const auto start = md::op("start", {"k"}, [](int k) { return k; }, {.outputs = {"x"}});
  const auto up = md::op("up", {"x"}, [](int x) { return x + 10; }, {.outputs = {"x_up"}});
  const auto down = md::op("down", {"x"}, [](int x) { return x - 3; }, {.outputs = {"x_down"}});
  const auto end = md::op("end", {"x"}, [](int x) { return -x; }, {.outputs = {"e"}});
  {
    md::Session s(storage());
    for (int k = 0; k < 3; ++k) {
      auto x = up(start(k));
      if (k < 2) {
        x = up(down(x));
        end(x);
      }
    }
  }
  reopen();
  auto& st = storage();
  check("shape_alternating_loop",
        {
            {"end_back", [&] { return st.cf(end).expand_back(md::Recursive::yes); }},
            {"start_forward", [&] { return st.cf(start).expand_forward(md::Recursive::yes); }},
            {"up_all", [&] { return st.cf(up).expand_all(); }},
            {"end_all_merged", [&] { return st.cf(end).expand_all().merge_vars(); }},
        });
}

TEST_P(ShapesOracle, Accumulate) {
  const auto zero = md::op("zero", {}, []() { return 0; }, {.outputs = {"acc"}});
  const auto add_to = md::op("add_to", {"acc", "i"}, [](int acc, int i) { return acc + i; }, {.outputs = {"acc_next"}});
  const auto report =
      md::op("report", {"acc"}, [](int acc) { return "total=" + std::to_string(acc); }, {.outputs = {"out"}});
  {
    md::Session s(storage());
    auto acc = zero();
    for (int i = 1; i < 5; ++i) {
      acc = add_to(acc, i);
      if (i == 2 || i == 4) report(acc);
    }
  }
  reopen();
  auto& st = storage();
  check("shape_accumulate", {
                                {"report_back", [&] { return st.cf(report).expand_back(md::Recursive::yes); }},
                                {"zero_forward", [&] { return st.cf(zero).expand_forward(md::Recursive::yes); }},
                                {"add_to_all", [&] { return st.cf(add_to).expand_all(); }},
                                {"add_to_back", [&] { return st.cf(add_to).expand_back(md::Recursive::yes); }},
                            });
}

TEST_P(ShapesOracle, FanIn) {
  const auto src = md::op("src", {"i"}, [](int i) { return i * 2; }, {.outputs = {"v"}});
  const auto combine =
      md::op("combine", {"left", "right"}, [](int l, int r) { return l * 1000 + r; }, {.outputs = {"c"}});
  {
    md::Session s(storage());
    for (int i = 0; i < 4; ++i) {
      auto a = src(i);
      if (i < 3) combine(a, src(i + 10));
      else combine(a, a);
    }
  }
  reopen();
  auto& st = storage();
  check("shape_fan_in",
        {
            {"combine_back", [&] { return st.cf(combine).expand_back(md::Recursive::yes); }},
            {"src_forward", [&] { return st.cf(src).expand_forward(md::Recursive::yes); }},
            {"combine_all", [&] { return st.cf(combine).expand_all(); }},
            // one step: the original ignores `recursive` when variables are given
            {"combine_back_left", [&] { return st.cf(combine).expand_back({"left"}, md::Recursive::no); }},
        });
}

MANDALA_INSTANTIATE_BACKENDS(ShapesOracle);

}  // namespace
