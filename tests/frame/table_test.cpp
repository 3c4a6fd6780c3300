// Table: typed columns, cells and collections, rows, sorting, selection and exports.

#include <gtest/gtest.h>

#include "frame/frame_test_util.hpp"
#include "support/backends.hpp"

namespace md = mandala;
using md::testing::BackendTest;

namespace {

const auto inc = md::op("inc", {"x"}, [](int x) { return x + 1; }, {.outputs = {"y"}});
const auto add = md::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});
const auto name = md::op("name", {"x"}, [](int x) { return std::string(x % 2 ? "odd, \"x\"" : "even|x"); });
const auto total = md::op("total", {"a", "b"}, [](int a, int b) { return a + b; });

class Tables : public BackendTest {
 protected:
  void SetUp() override {
    BackendTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    {
      md::Session s(storage());
      for (int x = 0; x < 5; ++x) {
        auto y = inc(x);
        if (x % 2 == 0) add(x, y);
        name(x);
      }
    }
    reopen();
  }
};

TEST_P(Tables, TypedColumnsAndCells) {
  const auto t = storage().cf(inc).expand_forward({"y"}).df();
  EXPECT_EQ(t.num_rows(), 5u);
  EXPECT_EQ(t.num_columns(), 5u);
  EXPECT_TRUE(t.has_column("z"));
  EXPECT_TRUE(t.is_call_column("add"));
  EXPECT_FALSE(t.is_call_column("z"));
  const auto z = t.column<int>("z");
  EXPECT_EQ(std::count_if(z.begin(), z.end(), [](const auto& v) { return !v.has_value(); }), 2);
  EXPECT_THROW((void)t.column<int>("add"), md::Error);        // a call column
  EXPECT_THROW((void)t.column<int>("nope"), md::Error);       // unknown
  EXPECT_THROW((void)t.column<std::string>("x"), md::Error);  // not a string
  for (const auto row : t) {
    const auto x = row["x"];
    EXPECT_EQ(x.kind(), md::Cell::Kind::value);
    EXPECT_EQ(x.size(), 1u);
    EXPECT_EQ(row["y"].as<int>(), x.as<int>() + 1);
    EXPECT_EQ(row["inc"].kind(), md::Cell::Kind::call);
    EXPECT_EQ(row["inc"].call().input("x")->hid(), x.ref().hid());
    EXPECT_EQ(row["inc"].calls().size(), 1u);
    if (row["z"].is_null()) {
      EXPECT_TRUE(row["add"].is_null());
      EXPECT_EQ(row["z"].to_json(), "null");
      EXPECT_TRUE(row["z"].refs().empty());
      EXPECT_THROW((void)row["z"].ref(), md::Error);
    }
  }
  EXPECT_EQ(t.cells("x").size(), 5u);
  EXPECT_THROW((void)t.cell(5, "x"), md::Error);
  EXPECT_THROW((void)t.row(5), md::Error);
}

TEST_P(Tables, CollectionsWhenARowHoldsSeveralElements) {
  // total(a, b) where a and b both come from inc: one row holds two inc calls and two x values
  {
    md::Session s(storage());
    total(inc(3), inc(0));
  }
  const auto cf = storage().cf(total).expand_back(md::Recursive::yes);
  md::testing::expect_sound(cf);
  const auto t = cf.df();
  // One complete row; the reused `inc` node feeds both a and b, so a and b also hold the other
  // input and contribute a partial row each (their sink elements).
  ASSERT_EQ(t.num_rows(), 3u);
  std::size_t full = t.num_rows();
  for (std::size_t r = 0; r < t.num_rows(); ++r)
    if (!t.cell(r, "total").is_null()) full = r;
  ASSERT_LT(full, t.num_rows());
  EXPECT_EQ(t.cell(full, "var_0").as<int>(), 5);
  const auto x = t.cell(full, "x");
  EXPECT_EQ(x.kind(), md::Cell::Kind::values);
  EXPECT_TRUE(x.is_collection());
  EXPECT_EQ(x.size(), 2u);
  std::multiset<int> xs;
  for (const auto& r : x.refs()) xs.insert(r.as<int>().get());
  EXPECT_EQ(xs, (std::multiset<int>{0, 3}));
  EXPECT_EQ(t.cell(full, "inc").kind(), md::Cell::Kind::calls);
  EXPECT_EQ(t.cell(full, "inc").calls().size(), 2u);
  EXPECT_EQ(t.cell(full, "a").as<int>(), 4);
  EXPECT_EQ(t.cell(full, "b").as<int>(), 1);
  EXPECT_THROW((void)t.column<int>("x"), md::Error);
  const auto json = nlohmann::json::parse(x.to_json());
  EXPECT_TRUE(json.is_array());
  EXPECT_EQ(json.size(), 2u);
  EXPECT_EQ(t.cell(full, "x").hids().size(), 2u);
}

// column_cells() holds what cells() gives, with each distinct element once.
TEST_P(Tables, ColumnCellsMatchCells) {
  {
    md::Session s(storage());
    total(inc(3), inc(0));
  }
  const auto t = storage().cf(total).expand_all().df();
  ASSERT_GT(t.num_rows(), 0u);
  bool saw_collection = false;
  for (const auto& column : t.column_names()) {
    const auto cc = t.column_cells(column);
    EXPECT_EQ(cc.holds_calls(), t.is_call_column(column)) << column;
    ASSERT_EQ(cc.num_rows(), t.num_rows()) << column;
    const auto values = cc.holds_calls() ? std::vector<std::vector<std::byte>>{} : cc.values();
    std::set<md::Id> distinct;
    for (std::size_t k = 0; k < cc.num_distinct(); ++k) distinct.insert(cc.hid(k));
    EXPECT_EQ(distinct.size(), cc.num_distinct()) << column;  // each element once
    const auto cells = t.cells(column);
    for (std::size_t r = 0; r < t.num_rows(); ++r) {
      const auto items = cc.row(r);
      ASSERT_EQ(items.size(), cells[r].size()) << column << " row " << r;
      saw_collection = saw_collection || items.size() > 1;
      const auto hids = cells[r].hids();  // sorted, as the positions are
      for (std::size_t i = 0; i < items.size(); ++i) {
        const auto k = items[i];
        ASSERT_LT(k, cc.num_distinct());
        EXPECT_EQ(cc.hid(k), hids[i]) << column << " row " << r;
        if (cc.holds_calls()) {
          const auto call = cells[r].calls()[i];
          EXPECT_EQ(cc.call(k).hid, call.hid);
          EXPECT_EQ(cc.cid(k), call.cid);
          EXPECT_EQ(cc.op(k), call.op);
          EXPECT_EQ(cc.version(k), call.version);
          EXPECT_THROW((void)cc.ref(k), md::Error);
        } else {
          const auto ref = cells[r].refs()[i];
          EXPECT_EQ(cc.ref(k).hid(), ref.hid());
          EXPECT_EQ(cc.cid(k), ref.cid());
          EXPECT_EQ(values[k], md::encoded_value(ref).bytes());
          EXPECT_THROW((void)cc.call(k), md::Error);
        }
      }
    }
    if (cc.holds_calls()) {
      EXPECT_THROW((void)cc.values(), md::Error);
    }
    EXPECT_THROW((void)cc.hid(cc.num_distinct()), md::Error);
  }
  EXPECT_TRUE(saw_collection);
  EXPECT_THROW((void)t.column_cells("nope"), md::Error);

  // values_of: every value column at once, each distinct value once
  std::vector<md::ColumnCells> all;
  for (const auto& column : t.column_names())
    if (!t.is_call_column(column)) all.push_back(t.column_cells(column));
  std::vector<const md::ColumnCells*> pointers;
  for (const auto& c : all) pointers.push_back(&c);
  const auto loaded = md::ColumnCells::values_of(pointers);
  ASSERT_EQ(loaded.content_of.size(), all.size());
  std::set<std::vector<std::byte>> contents(loaded.contents.begin(), loaded.contents.end());
  EXPECT_EQ(contents.size(), loaded.contents.size());  // each value once
  std::size_t positions = 0;
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto one = all[i].values();
    ASSERT_EQ(loaded.content_of[i].size(), one.size());
    positions += one.size();
    for (std::size_t k = 0; k < one.size(); ++k) EXPECT_EQ(loaded.contents[loaded.content_of[i][k]], one[k]);
  }
  EXPECT_LT(loaded.contents.size(), positions);  // x and the outputs share values (0 .. 5)
  std::vector<const md::ColumnCells*> with_calls{&all.front()};
  const auto calls = t.column_cells("inc");
  with_calls.push_back(&calls);
  EXPECT_THROW((void)md::ColumnCells::values_of(with_calls), md::Error);
}

TEST_P(Tables, SortSelectAndRender) {
  const auto t = storage().cf(inc).expand_forward({"y"}).df();
  const auto sorted = t.sorted_by("x");
  std::vector<int> xs;
  for (const auto& v : sorted.column<int>("x")) xs.push_back(*v);
  EXPECT_EQ(xs, (std::vector<int>{0, 1, 2, 3, 4}));
  const auto desc = t.sorted_by("x", md::Order::descending);
  EXPECT_EQ(*desc.column<int>("x")[0], 4);
  const auto by_z = t.sorted_by("z", md::Order::descending);  // nulls last
  EXPECT_EQ(*by_z.column<int>("z")[0], 9);
  EXPECT_FALSE(by_z.column<int>("z")[4].has_value());
  const auto sel = sorted.select({"z", "x"});
  EXPECT_EQ(sel.column_names(), (std::vector<std::string>{"z", "x"}));
  EXPECT_THROW((void)t.select({"nope"}), md::Error);

  const auto xz = sorted.select({"x", "z"});
  EXPECT_EQ(xz.to_text(), "x  z\n-  ----\n0  1\n1  null\n2  5\n3  null\n4  9\n");
  EXPECT_EQ(xz.to_markdown(),
            "| x | z |\n| --- | --- |\n| 0 | 1 |\n| 1 | null |\n| 2 | 5 |\n| 3 | null |\n| 4 | 9 |\n");
  EXPECT_EQ(xz.to_csv(), "x,z\r\n0,1\r\n1,\r\n2,5\r\n3,\r\n4,9\r\n");
  const auto json = nlohmann::json::parse(xz.to_json());
  ASSERT_EQ(json.size(), 5u);
  EXPECT_EQ(json[1], (nlohmann::json{{"x", 1}, {"z", nullptr}}));
  std::ostringstream os;
  os << xz;
  EXPECT_EQ(os.str(), xz.to_text());
  // calls render as op:hid; refs mode renders hids
  const auto calls = nlohmann::json::parse(sorted.select({"inc"}).to_json());
  EXPECT_EQ(calls[0]["inc"]["op"], "inc");
  EXPECT_EQ(calls[0]["inc"]["hid"].get<std::string>().size(), 32u);
  auto refs = xz;
  refs.set_display(md::Values::refs);
  EXPECT_EQ(refs.to_csv().substr(0, 5), "x,z\r\n");
  const auto first = refs.to_csv().substr(5, 66);  // "<x hid>,<z hid>"
  EXPECT_EQ(first.size(), 66u);
  EXPECT_EQ(first[32], ',');
  EXPECT_TRUE(md::Id::from_hex(first.substr(0, 32)).has_value());
  EXPECT_TRUE(md::Id::from_hex(first.substr(33, 32)).has_value());
}

TEST_P(Tables, StringsAreEscaped) {
  const auto t = storage().cf(name).df().select({"x", "var_0"}).sorted_by("x");
  EXPECT_EQ(t.to_csv().substr(0, 47), "x,var_0\r\n0,\"\"\"even|x\"\"\"\r\n1,\"\"\"odd, \\\"\"x\\\"\"\"\"\"\r\n");
  EXPECT_NE(t.to_markdown().find("\"even\\|x\""), std::string::npos);
  const auto json = nlohmann::json::parse(t.to_json());
  EXPECT_EQ(json[1]["var_0"], "odd, \"x\"");
  EXPECT_EQ(t.sorted_by("var_0").cell(0, "var_0").as<std::string>(), "even|x");
  EXPECT_EQ(t.to_text(12).find("odd, \"x\"\n"), std::string::npos);  // cut to 12 characters
}

TEST_P(Tables, FuncTableAndHistory) {
  const auto cf = storage().cf(inc).expand_forward({"y"});
  const auto ft = cf.func_table("add");
  EXPECT_EQ(ft.num_rows(), 3u);
  EXPECT_EQ(ft.column_names(), (std::vector<std::string>{"x", "y", "z"}));
  const auto h = cf.history("z");
  EXPECT_EQ(h.num_rows(), 3u);
  EXPECT_EQ(h.column_names(), (std::vector<std::string>{"x", "inc", "y", "add", "z"}));
  EXPECT_EQ(cf.history("z", md::Calls::exclude).column_names(), (std::vector<std::string>{"x", "y", "z"}));
  EXPECT_THROW((void)cf.history("add"), md::Error);
  EXPECT_THROW((void)cf.func_table("x"), md::Error);
  EXPECT_EQ(md::Table().num_rows(), 0u);
}

MANDALA_INSTANTIATE_BACKENDS(Tables);

}  // namespace
