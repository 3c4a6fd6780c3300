// ComputationFrame construction, naming, expansion and display (spec 5.3, 5.5, 5.8, 5.10, 5.11).

#include <gtest/gtest.h>

#include <cstdlib>

#include "frame/frame_test_util.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;
using md::testing::expect_sound;
using md::testing::rows_text;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; }, {.outputs = {"y"}});
const auto add = md::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});

class Frame : public BackendTest {
 protected:
  // spec 5.8: inc for x in 0..4, add only for even x
  void build_inc_add() {
    md::Session s(storage());
    for (int x = 0; x < 5; ++x) {
      auto y = inc(x);
      if (x % 2 == 0) add(x, y);
    }
  }
};

TEST_P(Frame, FromOpSeesPendingCalls) {
  md::Session s(storage());
  for (int x = 0; x < 3; ++x) inc(x);
  const auto cf = storage().cf(inc);  // inside the session: the calls are not flushed yet
  expect_sound(cf);
  EXPECT_EQ(cf.size("inc"), 3u);
  EXPECT_EQ(cf.vnames(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(cf.graph_description(), "y@y = inc(x=x)");
  EXPECT_EQ(cf.df().num_rows(), 3u);
}

TEST_P(Frame, OpWithoutCallsGivesAnEmptyValidFrame) {
  const auto cf = storage().cf(add);
  expect_sound(cf);
  EXPECT_EQ(cf.fnames(), (std::vector<std::string>{"add"}));
  EXPECT_TRUE(cf.vnames().empty());
  EXPECT_TRUE(cf.empty());
  EXPECT_EQ(cf.op_of("add"), "add");
  EXPECT_EQ(cf.graph_description(), " = add()");
  EXPECT_EQ(cf.df().num_rows(), 0u);
  EXPECT_EQ(cf.expand_all().num_calls(), 0u);
  EXPECT_NE(cf.summary().find("1 operation(s) (0 unique calls)"), std::string::npos);
}

TEST_P(Frame, Spec58IncAddExample) {
  build_inc_add();
  reopen();
  const auto cf = storage().cf(inc).expand_forward();
  expect_sound(cf);
  EXPECT_EQ(cf.graph_description(), "y@y = inc(x=x)\nz@z = add(x=x, y=y)");
  const auto df = cf.df();
  EXPECT_EQ(df.column_names(), (std::vector<std::string>{"x", "inc", "y", "add", "z"}));
  ASSERT_EQ(df.num_rows(), 5u);
  const auto x = df.column<int>("x");
  const auto z = df.column<int>("z");
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(z[i].has_value(), *x[i] % 2 == 0);
    EXPECT_EQ(df.cell(i, "add").is_null(), *x[i] % 2 != 0);
    EXPECT_EQ(df.cell(i, "inc").call().op, "inc");
  }
  EXPECT_EQ(rows_text(cf.df({.columns = {"x", "z"}})),
            (std::multiset<std::string>{"x=0 z=1", "x=1 z=null", "x=2 z=5", "x=3 z=null", "x=4 z=9"}));
  EXPECT_EQ(cf.df({.calls = md::Calls::exclude}).column_names(), (std::vector<std::string>{"x", "y", "z"}));
  // values = refs: cells render as history ids
  const auto refs = cf.df({.columns = {"x", "y"}, .values = md::Values::refs});
  EXPECT_EQ(refs.cell(0, "y").to_string(md::Values::refs).size(), 8u);
  EXPECT_EQ(refs.display(), md::Values::refs);
  // eval = df with calls
  EXPECT_EQ(cf.eval().column_names(), df.column_names());
  EXPECT_EQ(cf.eval({"x", "z"}).column_names(), (std::vector<std::string>{"x", "z"}));
  // from add, expansion never reaches x = 1, 3
  EXPECT_EQ(storage().cf(add).expand_all().df().num_rows(), 3u);
  EXPECT_EQ(storage().cf(inc).expand_all().df().num_rows(), 5u);
}

// Issue 15's diamond: y = inc(x); final(add(x, y)) for x < 2, final(mul(x, y)) for 2 <= x < 4,
// add(x, y) only for x == 4, nothing after inc for x == 5. The original gives one row per x, with
// nulls where an op did not run; its expansion also puts add's outputs for x = 0, 1 into mul's
// variable `w` (the consumer `final` is fed by both producers), which shows in `w` for those rows.
TEST_P(Frame, DiamondGivesOneRowPerExecutionAsTheOriginal) {
  const md::testing::Diamond d;
  d.run(storage());
  reopen();
  // (columns in topological order: w and z are not ordered by the graph, ties go by name)
  const std::multiset<std::string> rows{"x=0 y=1 w=1 z=1 v=1",       "x=1 y=2 w=3 z=3 v=9",
                                        "x=2 y=3 w=6 z=null v=36",   "x=3 y=4 w=12 z=null v=144",
                                        "x=4 y=5 w=null z=9 v=null", "x=5 y=6 w=null z=null v=null"};
  const auto fwd = storage().cf(inc).expand_forward(md::Recursive::yes);
  expect_sound(fwd);
  EXPECT_EQ(fwd.graph_description(), "y@y = inc(x=x)\nz@z = add(x=x, y=y)\nw@w = mul(x=x, y=y)\nv@v = final(t=w | z)");
  EXPECT_EQ(rows_text(fwd.df({.calls = md::Calls::exclude})), rows);
  // mul never ran for x = 0, 1 or 4, add never for x = 2, 3: their call cells are null there
  const auto with_calls = fwd.eval();
  ASSERT_EQ(with_calls.num_rows(), 6u);
  for (std::size_t i = 0; i < 6; ++i) {
    const int x = *with_calls.column<int>("x")[i];
    EXPECT_EQ(with_calls.cell(i, "add").is_null(), x == 2 || x == 3 || x == 5) << x;
    EXPECT_EQ(with_calls.cell(i, "mul").is_null(), x != 2 && x != 3) << x;
    EXPECT_EQ(with_calls.cell(i, "final").is_null(), x >= 4) << x;
  }
  const auto all = storage().cf(inc).expand_all();
  expect_sound(all);
  // expand_all adds the edge add -> w (w holds add's outputs for x = 0, 1), not mul -> z
  EXPECT_EQ(all.graph_description(),
            "y@y = inc(x=x)\n(w | z)@z = add(x=x, y=y)\nw@w = mul(x=x, y=y)\nv@v = final(t=w | z)");
  EXPECT_EQ(rows_text(all.df({.calls = md::Calls::exclude})), rows);
  EXPECT_EQ(all.size("z"), 3u);
  EXPECT_EQ(all.size("w"), 4u);
}

// Issue 15's loop: x = init(seed); three times x = step(x); score(x), for 3 seeds. As in the
// original, recursive back expansion from score stops once it adds no node (after reusing `step`
// for the second step back), and the table has 6 rows: per seed, the full row up to score and the
// row of the earlier step whose output the frame holds in `x` too; no row repeats another.
TEST_P(Frame, LoopGivesTheOriginalsRows) {
  const md::testing::Loop l;
  const auto& [init, step, score] = l;
  l.run(storage());
  reopen();
  const auto back = storage().cf(score).expand_back(md::Recursive::yes);
  expect_sound(back);
  EXPECT_EQ(back.graph_description(), "(x | x_0)@output_0 = step(x=x_0)\ns@s = score(x=x)");
  const auto df = back.df({.calls = md::Calls::exclude});
  ASSERT_EQ(df.num_rows(), 6u) << df.to_text();
  std::multiset<std::string> rows;
  for (const auto row : df) rows.insert("x=" + row["x"].to_string() + " s=" + row["s"].to_string());
  EXPECT_EQ(rows, (std::multiset<std::string>{"x=2 s=null", "x=12 s=null", "x=22 s=null", "x=3 s=6", "x=13 s=26",
                                              "x=23 s=46"}));
  // x_0 holds the step inputs of the row: one, or both earlier ones (a collection)
  std::multiset<std::set<int>> inputs;
  for (const auto row : df) {
    std::set<int> in;
    if (row["x_0"].kind() == md::Cell::Kind::values)
      for (const auto& r : row["x_0"].refs()) in.insert(r.as<int>().get());
    else in.insert(row["x_0"].as<int>());
    inputs.insert(in);
  }
  EXPECT_EQ(inputs, (std::multiset<std::set<int>>{{1}, {11}, {21}, {1, 2}, {11, 12}, {21, 22}}));
}

TEST_P(Frame, SingleNodeAndIsolatedVariables) {
  build_inc_add();
  const auto cf = storage().cf(inc);
  // one node: its elements (values, not refs as in the original)
  const auto ys = cf.df({.columns = {"y"}});
  EXPECT_EQ(ys.column_names(), (std::vector<std::string>{"y"}));
  std::multiset<int> got;
  for (const auto& v : ys.column<int>("y")) got.insert(*v);
  EXPECT_EQ(got, (std::multiset<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(cf.df({.columns = {"inc"}}).num_rows(), 5u);
  // a frame of isolated variables (the original raises IndexError): the union of their values
  const auto vars = storage().cf(std::map<std::string, std::vector<md::AnyRef>>{
      {"a", {cf.refs("x")[0], cf.refs("x")[1]}}, {"b", {cf.refs("y")[0]}}});
  expect_sound(vars);
  EXPECT_EQ(vars.graph_description(), "a, b");
  const auto t = vars.df();
  EXPECT_EQ(t.num_rows(), 3u);
  EXPECT_EQ(t.num_columns(), 2u);
}

TEST_P(Frame, FromRefsExpandsBackToTheirHistory) {
  md::Ref<int> z;
  {
    md::Session s(storage());
    z = add(3, inc(3));
  }
  reopen();
  auto ref = storage().ref(z.hid());
  ASSERT_TRUE(ref);
  const auto cf = storage().cf(*ref);
  expect_sound(cf);
  EXPECT_EQ(cf.vnames(), (std::vector<std::string>{"v"}));
  const auto back = cf.expand_back(md::Recursive::yes);
  expect_sound(back);
  EXPECT_EQ(back.graph_description(), "y@y = inc(x=x)\nv@z = add(x=x, y=y)");
  const auto df = back.df();
  ASSERT_EQ(df.num_rows(), 1u);
  EXPECT_EQ(*df.column<int>("v")[0], 7);
  EXPECT_EQ(*df.column<int>("x")[0], 3);
  // refs without ids cannot go into a frame
  EXPECT_THROW((void)storage().cf(md::Ref<int>::from_value(1)), md::Error);
}

TEST_P(Frame, VariableNaming) {
  const auto two = md::op("two", {"a_b_3"}, [](int a) { return std::make_tuple(a, a + 1); });
  md::Ref<int> out;
  {
    md::Session s(storage());
    out = std::get<0>(two(1));
  }
  // unnamed outputs become var_0, var_1; inputs keep their names
  const auto cf = storage().cf(two);
  EXPECT_EQ(cf.graph_description(), "var_0@output_0, var_1@output_1 = two(a_b_3=a_b_3)");
  // a clashing hint is suffixed, split at the LAST underscore: a_b_3 -> a_b_4 (the original: a_3)
  const auto vars = storage().cf(std::map<std::string, std::vector<md::AnyRef>>{{"a_b_3", {}}, {"w", {out}}});
  const auto back = vars.expand_back({"w"});
  expect_sound(back);
  EXPECT_TRUE(back.has_node("a_b_4"));
  EXPECT_FALSE(back.has_node("var_0"));  // going back, only the outputs in `w` are glued
  EXPECT_EQ(back.graph_description(), "a_b_3\nw@output_0 = two(a_b_3=a_b_4)");
}

TEST_P(Frame, ExpandOneVariableOrSeveral) {
  build_inc_add();
  const auto cf = storage().cf(add);
  EXPECT_EQ(cf.graph_description(), "z@z = add(x=x, y=y)");
  // expanding x back finds nothing (raw inputs)
  const auto bx = cf.expand_back({"x"});
  expect_sound(bx);
  EXPECT_EQ(bx.nodes(), cf.nodes());
  const auto by = cf.expand_back({"y"});
  expect_sound(by);
  EXPECT_EQ(by.graph_description(), "y@y = inc(x=x)\nz@z = add(x=x, y=y)");
  EXPECT_EQ(by.size("inc"), 3u);
  // forward from x in the expanded frame adds the inc calls of odd x? No: only sinks expand,
  // and x's refs are consumed by inc/add already
  const auto fwd = by.expand_forward({"x"});
  expect_sound(fwd);
  EXPECT_EQ(fwd.size("inc"), 3u);
  // the in-place form changes the frame itself
  auto copy = cf;
  copy.expand_back_inplace({"y"});
  EXPECT_EQ(copy.graph_description(), by.graph_description());
  EXPECT_EQ(cf.fnames(), (std::vector<std::string>{"add"}));
  EXPECT_THROW((void)cf.expand_back({"add"}), md::Error);
  EXPECT_THROW((void)cf.expand_back({"nope"}), md::Error);
}

TEST_P(Frame, ExpandOptions) {
  build_inc_add();
  const auto cf = storage().cf(add);
  // without reuse, the input variable of inc is new even though x holds the same refs
  const auto fresh = cf.expand_back({"y"}, md::Recursive::no, {.skip_existing = false, .reuse_existing = false});
  expect_sound(fresh);
  EXPECT_EQ(fresh.graph_description(), "y@y = inc(x=x_0)\nz@z = add(x=x, y=y)");
  const auto reused = cf.expand_back({"y"});
  EXPECT_EQ(reused.graph_description(), "y@y = inc(x=x)\nz@z = add(x=x, y=y)");
  // skip_existing: calls already in the frame are not added again (here: none are new)
  const auto again = reused.expand_back({"y"}, md::Recursive::no, {.skip_existing = true, .reuse_existing = true});
  expect_sound(again);
  EXPECT_EQ(again.nodes(), reused.nodes());
  EXPECT_EQ(again.num_calls(), reused.num_calls());
}

TEST_P(Frame, FramesAndTablesKeepTheStorageOpen) {
  build_inc_add();
  auto cf = storage().cf(inc).expand_forward();
  m_storage.reset();  // the Storage object is gone; the frame still reads from its store
  const auto t = cf.df().sorted_by("x");
  EXPECT_EQ(t.num_rows(), 5u);
  EXPECT_EQ(*t.column<int>("z")[4], 9);
  EXPECT_EQ(cf.calls("add").size(), 3u);
  EXPECT_EQ(cf.refs("y").front().as<int>().get() > 0, true);
}

TEST_P(Frame, VersionsOfAnOp) {
  const auto inc2 = md::op("inc", {"x"}, [](int x) { return x + 2; }, {.outputs = {"y"}, .version = 1});
  {
    md::Session s(storage());
    inc(1);
    inc2(1);
    inc2(2);
  }
  reopen();
  EXPECT_EQ(storage().cf(inc2).size("inc"), 2u);  // the op's current version only
  const auto all = storage().cf("inc");           // every version
  expect_sound(all);
  EXPECT_EQ(all.size("inc"), 3u);
  EXPECT_NE(all.to_dot({.verbose = true}).find("@op:inc (2 versions)"), std::string::npos);
  EXPECT_EQ(all.df().num_rows(), 3u);
}

// A pipeline: generate_dataset -> train_model -> eval_model.
using Ints = std::vector<int>;
const auto generate = md::op("generate_dataset", {"random_seed"},
                             [](int seed) {
                               return std::make_tuple(Ints{seed, 1}, Ints{seed, 2}, Ints{0, 1}, Ints{1, 0});
                             },
                             {.outputs = {"X_train", "X_test", "y_train", "y_test"}});
const auto train = md::op(
    "train_model", {"X_train", "y_train", "n_estimators"},
    [](const Ints& x, const Ints&, int n) { return "model(" + std::to_string(x[0]) + "," + std::to_string(n) + ")"; },
    {.outputs = {"model"}});
const auto evaluate = md::op(
    "eval_model", {"model", "X_test", "y_test"},
    [](const std::string& m, const Ints& x, const Ints&) { return static_cast<double>(m.size() + x.size()) / 100; },
    {.outputs = {"acc"}});

class Pipeline : public BackendTest {
 protected:
  void build() {
    md::Session s(storage());
    for (int seed : {1, 2}) {
      auto [xtr, xte, ytr, yte] = generate(seed);
      for (int n : {10, 20}) evaluate(train(xtr, ytr, n), xte, yte);
    }
  }
};

TEST_P(Pipeline, RecursiveBackExpansionReconstructsThePipeline) {
  build();
  reopen();
  const auto cf = storage().cf(evaluate).expand_back(md::Recursive::yes);
  expect_sound(cf);
  EXPECT_EQ(
      cf.graph_description(),
      "X_train@X_train, X_test@X_test, y_train@y_train, y_test@y_test = generate_dataset(random_seed=random_seed)\n"
      "model@model = train_model(X_train=X_train, n_estimators=n_estimators, y_train=y_train)\n"
      "acc@acc = eval_model(X_test=X_test, model=model, y_test=y_test)");
  const auto df = cf.df();
  EXPECT_EQ(df.num_rows(), 4u);
  EXPECT_EQ(df.num_columns(), cf.nodes().size());
}

TEST_P(Pipeline, ConvergingExpansionsReuseNodes) {
  build();
  auto cf = storage().cf(evaluate);
  cf.expand_back_inplace({"X_test"});
  expect_sound(cf);
  cf.expand_back_inplace({"model"});
  expect_sound(cf);
  cf.expand_back_inplace({"X_train"});  // converges on the generate_dataset node
  expect_sound(cf);
  EXPECT_EQ(cf.fnames(), (std::vector<std::string>{"eval_model", "generate_dataset", "train_model"}));
  EXPECT_EQ(cf.size("generate_dataset"), 2u);
  EXPECT_EQ(cf.df().num_rows(), 4u);
  // the explicit recursive form reaches the same graph from `acc`'s function alone
  const auto rec = storage().cf(evaluate).expand_back({"model"}, md::Recursive::yes);
  expect_sound(rec);
  EXPECT_TRUE(rec.has_node("generate_dataset"));
  EXPECT_TRUE(rec.has_node("random_seed"));
}

TEST_P(Pipeline, ExpandAllFromTheMiddle) {
  build();
  const auto cf = storage().cf(train).expand_all();
  expect_sound(cf);
  EXPECT_EQ(cf.fnames(), (std::vector<std::string>{"eval_model", "generate_dataset", "train_model"}));
  EXPECT_EQ(cf.num_calls(), 2u + 4u + 4u);
  const auto stats = cf.node_stats();
  for (const auto& s : stats)
    if (s.name == "acc") {
      EXPECT_EQ(s.size, 4u);
      EXPECT_EQ(s.sinks, 4u);
      EXPECT_EQ(s.sources, 0u);
    }
}

TEST_P(Frame, DisplayAndDot) {
  build_inc_add();
  const auto cf = storage().cf(inc).expand_forward();
  EXPECT_EQ(cf.summary(),
            "ComputationFrame with:\n    3 variable(s) (13 unique refs)\n    2 operation(s) (8 unique calls)\n"
            "Computational graph:\n    y@y = inc(x=x)\n    z@z = add(x=x, y=y)");
  std::ostringstream os;
  os << cf;
  EXPECT_EQ(os.str(), cf.summary());
  const auto dot = cf.to_dot();
  EXPECT_NE(dot.find("\"x\" [label=\"x\\n5 values\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"add\" [label=\"add\\n@op:add\\n3 calls\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("\"x\" -> \"add\" [label=\"x\"]"), std::string::npos) << dot;
  EXPECT_NE(dot.find("#dc322f"), std::string::npos);  // functions red
  EXPECT_NE(dot.find("#268bd2"), std::string::npos);  // variables blue
  const auto verbose = cf.to_dot({.verbose = true, .rankdir = "LR"});
  EXPECT_NE(verbose.find("rankdir=LR"), std::string::npos);
  EXPECT_NE(verbose.find("5 values (2 sinks)"), std::string::npos) << verbose;  // y: odd x not consumed
  EXPECT_NE(verbose.find("(3 values)"), std::string::npos) << verbose;
  EXPECT_EQ(cf.var_info("y"),
            "Variable y with 5 values\nCreator ops: y=inc::y (5 calls)\nConsumer ops: add(y=y, ...) (3 calls)");
  if (std::system("command -v dot >/dev/null 2>&1") != 0) GTEST_SKIP() << "Graphviz `dot` is not installed";
  const auto svg = cf.to_svg();
  EXPECT_NE(svg.find("<svg"), std::string::npos);
}

TEST_P(Frame, DeleteCallsThroughAFrame) {
  build_inc_add();
  auto cf = storage().cf(inc).isin(std::vector<int>{0, 1}, md::Closure::closed);
  expect_sound(cf);
  EXPECT_EQ(cf.size("inc"), 2u);
  // x = 0 and 1: two inc calls and (for x = 0) the add call downstream
  EXPECT_EQ(cf.delete_calls(), 3u);
  reopen();
  EXPECT_EQ(storage().calls_of(inc).size(), 3u);
  EXPECT_EQ(storage().calls_of(add).size(), 2u);
  const auto rest = storage().cf(inc).expand_forward();
  expect_sound(rest);
  EXPECT_EQ(rest.df().num_rows(), 3u);
}

TEST_P(Frame, DeleteCallsFoundInATable) {
  build_inc_add();
  auto cf = storage().cf(inc).expand_forward();
  // the original's docs pattern: drop the calls of the rows where z > 4 (x = 2, 4), with dependents
  const auto rows = cf.where_value<int>("z", [](int z) { return z > 4; }).df({.columns = {"add", "z"}});
  EXPECT_EQ(rows.num_rows(), 2u);
  EXPECT_EQ(cf.delete_calls(rows), 2u);
  reopen();
  EXPECT_EQ(storage().calls_of(add).size(), 1u);
  EXPECT_EQ(storage().calls_of(inc).size(), 5u);
  EXPECT_EQ(cf.delete_calls(md::Table()), 0u);
}

MANDALA_INSTANTIATE_BACKENDS(Frame);
MANDALA_INSTANTIATE_BACKENDS(Pipeline);

}  // namespace
