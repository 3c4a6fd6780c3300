// Reachability, restriction, predicates, set operations and mutation (spec 5.6, 5.7, 5.9).
// Every result is checked with expect_sound (invariant, printing, DOT, eval).

#include <gtest/gtest.h>

#include "frame/frame_test_util.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;
using md::testing::expect_sound;
using md::testing::rows_text;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; }, {.outputs = {"y"}});
const auto add = md::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});
const auto square = md::op("square", {"x"}, [](int x) { return x * x; });
const auto label = md::op("label", {"z"}, [](int z) { return "z=" + std::to_string(z); }, {.outputs = {"name"}});

class Operations : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    {
      md::Session s(storage());
      for (int x = 0; x < 5; ++x) {
        auto y = inc(x);
        if (x % 2 == 0) label(add(x, y));
      }
      square(3);
    }
    reopen();
    m_frame = storage().cf(inc).expand_all();
  }
  [[nodiscard]] const md::ComputationFrame& F() const { return *m_frame; }
  std::optional<md::ComputationFrame> m_frame;
};

std::multiset<int> ints(const md::Table& t, const std::string& column) {
  std::multiset<int> out;
  for (const auto& v : t.column<int>(column))
    if (v) out.insert(*v);
  return out;
}

TEST_P(Operations, TheFixture) {
  expect_sound(F());
  EXPECT_EQ(F().graph_description(), "y@y = inc(x=x)\nz@z = add(x=x, y=y)\nname@name = label(z=z)");
  EXPECT_EQ(F().sources(), (std::vector<std::string>{"x"}));
  EXPECT_EQ(F().sinks(), (std::vector<std::string>{"name"}));
  EXPECT_EQ(F().topological_order(), (std::vector<std::string>{"x", "inc", "y", "add", "z", "label", "name"}));
  EXPECT_EQ(F().in_neighbors("add"), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(F().out_neighbors("x"), (std::vector<std::string>{"add", "inc"}));
  EXPECT_EQ(F().in_edges("z").size(), 1u);
  const auto src = F().source_elements();
  EXPECT_EQ(src.at("x").size(), 5u);
  EXPECT_TRUE(src.at("y").empty());
  const auto sinks = F().sink_elements();
  EXPECT_EQ(sinks.at("y").size(), 2u);  // odd x: y not consumed
  EXPECT_EQ(sinks.at("name").size(), 3u);
}

TEST_P(Operations, DownstreamUpstreamMidstream) {
  const auto down = F().downstream({"y"});
  expect_sound(down);
  EXPECT_EQ(down.nodes(), (std::vector<std::string>{"add", "label", "name", "y", "z"}));
  // x is not downstream of y, so add's edge from x is not in the sub-frame: y alone reaches add
  EXPECT_EQ(down.size("add"), 3u);
  const auto weak = F().downstream({"y"}, md::Reach::weak);
  expect_sound(weak);
  EXPECT_EQ(weak.size("add"), 3u);
  EXPECT_EQ(weak.size("name"), 3u);

  const auto up = F().upstream({"z"});
  expect_sound(up);
  EXPECT_EQ(up.nodes(), (std::vector<std::string>{"add", "inc", "x", "y", "z"}));
  EXPECT_EQ(up.size("x"), 3u);
  EXPECT_EQ(up.size("inc"), 3u);

  const auto mid = F().midstream({"x", "z"});
  expect_sound(mid);
  EXPECT_EQ(mid.nodes(), (std::vector<std::string>{"add", "inc", "x", "y", "z"}));
  EXPECT_EQ(mid.size("z"), 3u);
  EXPECT_TRUE(F().midstream({"x"}).nodes().empty());
  EXPECT_EQ(F().midstream({"z", "y"}).nodes(), (std::vector<std::string>{"add", "y", "z"}));  // y -> add -> z
  // strong reachability from the full upstream: add needs both x and y
  const auto both = F().downstream({"x"});
  expect_sound(both);
  EXPECT_EQ(both.num_calls(), F().num_calls());
}

TEST_P(Operations, DropUnreachable) {
  // remove the x = 0 ref: what depends on it disappears going forward
  const auto x0 = F().isin_hids({F().refs("x")[0].hid()}, {"x"}, md::Closure::closed);
  auto without = F().select_subsets({{"x", {}}});
  expect_sound(F().drop_unreachable(md::Direction::forward));
  auto cut = F().difference(x0);
  expect_sound(cut);
  EXPECT_EQ(cut.size("x"), 4u);
  EXPECT_EQ(cut.size("inc"), 4u);
  EXPECT_EQ(cut.size("add"), x0.size("add") == 1 ? 2u : 3u);
  // a raw operand cuts deeper: calls that lose an input or output go, and what depended on them
  const auto raw = F().difference(F().isin_hids({F().refs("x")[0].hid()}, {"x"}));
  expect_sound(raw);
  const auto back = F().drop_unreachable(md::Direction::back);
  expect_sound(back);
  EXPECT_EQ(back.num_calls(), F().num_calls());
  EXPECT_EQ(without.size("x"), 0u);
  EXPECT_EQ(without.size("inc"), 5u);  // select_subsets does not close over the invariant
  EXPECT_FALSE(without.invariant_violations().empty());
}

TEST_P(Operations, SelectNodesAndIndexing) {
  const auto sel = F().select_nodes({"x", "inc", "y"});
  expect_sound(sel);
  EXPECT_EQ(sel.graph_description(), "y@y = inc(x=x)");
  EXPECT_EQ(F()["x"].nodes(), (std::vector<std::string>{"x"}));
  EXPECT_EQ((F()[std::vector<std::string>{"z", "label", "name"}].graph_description()), "name@name = label(z=z)");
  EXPECT_THROW((void)F().select_nodes({"nope"}), md::Error);
  const auto sub = F().select_subsets({{"label", {}}});
  EXPECT_EQ(sub.size("label"), 0u);
  EXPECT_THROW((void)F().select_subsets({{"x", {md::Id{}}}}), md::Error);
}

TEST_P(Operations, Predicates) {
  // raw isin: matching refs and their adjacent calls (the original's semantics)
  const auto raw = F().isin(std::vector<int>{2, 3});
  EXPECT_EQ(raw.size("x"), 2u);  // x = 2, 3
  EXPECT_EQ(raw.size("y"), 2u);  // y = 2, 3
  EXPECT_EQ(raw.size("z"), 0u);
  // closed: whole computations involving a matching value
  const auto closed = F().isin(std::vector<int>{4}, md::Closure::closed);
  expect_sound(closed);
  // x = 4 -> inc -> y = 5 -> add -> z = 8 -> label; and y = 4 (from x = 3) with its history
  EXPECT_EQ(ints(closed.df({.columns = {"x"}}), "x"), (std::multiset<int>{3, 4}));
  EXPECT_EQ(closed.size("add"), 1u);
  EXPECT_EQ(closed.size("label"), 1u);

  const auto lt = F().less_than(2);
  EXPECT_EQ(lt.size("x"), 2u);
  EXPECT_EQ(lt.size("name"), 0u);  // strings are never < 2
  expect_sound(F().less_than(2, md::Closure::closed));

  const auto where = F().where_value<int>("x", [](int x) { return x >= 3; });
  expect_sound(where);
  EXPECT_EQ(ints(where.df({.columns = {"x"}}), "x"), (std::multiset<int>{3, 4}));
  EXPECT_EQ(where.df().num_rows(), 2u);
  const auto json = F().where_json("name", [](const std::string& j) { return j == "\"z=5\""; });
  expect_sound(json);
  EXPECT_EQ(rows_text(json.df({.columns = {"x", "name"}})), (std::multiset<std::string>{"x=2 name=\"z=5\""}));
  const auto view = F().where(
      "z", [](md::ValueView v) { return v.as_int64() > 1; }, md::Closure::raw);
  EXPECT_EQ(view.size("z"), 2u);
  EXPECT_THROW((void)F().where("add", [](md::ValueView) { return true; }), md::Error);
}

TEST_P(Operations, SetOperations) {
  const auto a = storage().cf(add);
  const auto s = storage().cf(square);
  const auto u = a | s;  // shares x
  expect_sound(u);
  EXPECT_EQ(u.graph_description(), "var_0@output_0 = square(x=x)\nz@z = add(x=x, y=y)");
  EXPECT_EQ(u.size("x"), 4u);  // 0, 2, 4 and 3
  EXPECT_EQ(u.df().num_rows(), 4u);
  const auto i = u & a;
  expect_sound(i);
  EXPECT_EQ(i.graph_description(), a.graph_description());
  EXPECT_EQ(i.num_calls(), 3u);
  const auto d = u - a;  // drops the add calls, and the nodes left empty
  expect_sound(d);
  EXPECT_EQ(d.graph_description(), "var_0@output_0 = square(x=x)");
  EXPECT_EQ(d.size("x"), 1u);
  const auto none = a - a;
  expect_sound(none);
  EXPECT_TRUE(none.nodes().empty());
  EXPECT_EQ(none.df().num_rows(), 0u);
  // frames built separately from the same storage combine; frames of another storage do not
  md::Storage other;
  EXPECT_THROW((void)(a | other.cf(add)), md::Error);
  // the same name as a variable and a function
  const auto clash = storage().cf(std::map<std::string, std::vector<md::AnyRef>>{{"add", {}}});
  EXPECT_THROW((void)(a | clash), md::Error);
}

TEST_P(Operations, JoinsAndDisconnectedComponents) {
  const auto cf = storage().cf(inc).expand_forward();
  // y's history (5 rows) joined with z's (3 rows) on x, inc, y
  EXPECT_EQ(cf.df().num_rows(), 5u);
  EXPECT_EQ(cf.df({.join = md::Join::inner}).num_rows(), 3u);
  // two unconnected parts (the original raises IndexError): the union of their rows
  const auto parts = storage().cf(label) | storage().cf(square);
  expect_sound(parts);
  const auto t = parts.df();
  EXPECT_EQ(t.num_rows(), 4u);
  EXPECT_EQ(t.num_columns(), 6u);
  std::size_t square_rows = 0;
  for (const auto row : t) {
    EXPECT_NE(row["label"].is_null(), row["square"].is_null());
    if (!row["square"].is_null()) ++square_rows;
  }
  EXPECT_EQ(square_rows, 1u);
}

TEST_P(Operations, Mutation) {
  auto cf = F();
  cf.drop_inplace({"label", "name"});
  expect_sound(cf);
  EXPECT_EQ(cf.graph_description(), "y@y = inc(x=x)\nz@z = add(x=x, y=y)");
  EXPECT_EQ(F().nodes().size(), 7u);  // the original is untouched
  const auto no_z = cf.drop_var("z");
  expect_sound(no_z);
  EXPECT_EQ(no_z.graph_description(), "y@y = inc(x=x)\n = add(x=x, y=y)");
  const auto no_add = cf.drop_func("add");
  expect_sound(no_add);
  EXPECT_EQ(no_add.graph_description(), "z\ny@y = inc(x=x)");
  EXPECT_THROW((void)cf.drop_var("add"), md::Error);
  EXPECT_THROW((void)cf.drop_func("x"), md::Error);
  EXPECT_THROW((void)cf.drop_node("nope"), md::Error);

  const auto renamed = cf.rename({{"y", "x_plus_1"}, {"add", "plus"}});
  expect_sound(renamed);
  EXPECT_EQ(renamed.graph_description(), "x_plus_1@y = inc(x=x)\nz@z = plus(x=x, y=x_plus_1)");
  EXPECT_EQ(renamed.df().column_names(), (std::vector<std::string>{"x", "inc", "x_plus_1", "plus", "z"}));
  EXPECT_THROW((void)cf.rename("y", "x"), md::Error);

  // merge a variable into another: z's refs join y
  const auto merged = cf.merge_into("z", "y");
  expect_sound(merged);
  EXPECT_EQ(merged.graph_description(), "y@y = inc(x=x)\ny@z = add(x=x, y=y)");
  EXPECT_EQ(merged.size("y"), 8u);
  EXPECT_THROW((void)cf.merge_into("z", "add"), md::Error);

  const auto cleaned = cf.select_subsets({{"add", {}}, {"z", {}}}).cleanup();
  EXPECT_EQ(cleaned.graph_description(), "y@y = inc(x=x)");
  auto in_place = cf.select_subsets({{"add", {}}, {"z", {}}});
  in_place.cleanup_inplace();
  EXPECT_EQ(in_place.nodes(), cleaned.nodes());
  auto copy = cf.copy();
  copy.rename_inplace("x", "input");
  EXPECT_TRUE(cf.has_node("x"));
  EXPECT_TRUE(copy.has_node("input"));
}

TEST_P(Operations, MergeVarsMergesContainedVariables) {
  const auto vars = storage().cf(std::map<std::string, std::vector<md::AnyRef>>{
      {"a", {F().refs("x")[0]}}, {"b", {F().refs("x")[0], F().refs("x")[1]}}, {"c", {F().refs("y")[0]}}});
  const auto merged = vars.merge_vars();
  expect_sound(merged);
  EXPECT_EQ(merged.vnames(), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(merged.size("b"), 2u);
}

MANDALA_INSTANTIATE_BACKENDS(Operations);

}  // namespace
