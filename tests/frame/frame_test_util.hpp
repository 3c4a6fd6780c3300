#pragma once
// Helpers for ComputationFrame tests: the soundness check every test applies after each
// operation, row-set comparison of tables, and the oracle data (tests/frame/data).

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "mandala/mandala.hpp"

namespace mandala::testing {

/// Every frame must satisfy the invariant and be printable, drawable and evaluable.
inline void expect_sound(const ComputationFrame& frame) {
  const auto problems = frame.invariant_violations();
  EXPECT_TRUE(problems.empty()) << "invariant violated: " << (problems.empty() ? "" : problems.front()) << "\n"
                                << frame.summary();
  EXPECT_NO_THROW({
    const auto s = frame.summary();
    const auto d = frame.to_dot();
    const auto dv = frame.to_dot({.verbose = true, .rankdir = "LR"});
    const auto t = frame.df();
    const auto text = t.to_text();
    EXPECT_FALSE(s.empty());
    EXPECT_NE(d.find("digraph"), std::string::npos);
    EXPECT_FALSE(dv.empty());
    EXPECT_FALSE(text.empty());
  });
}

/// Normal form of a value for comparisons: typed arrays become lists, numbers doubles.
inline nlohmann::json normal(const nlohmann::json& j) {
  if (j.is_number()) return nlohmann::json(j.get<double>());
  if (j.is_object() && j.contains("dtype") && j.contains("data")) return normal(j.at("data"));
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& x : j) out.push_back(normal(x));
    return out;
  }
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto it = j.begin(); it != j.end(); ++it) out[it.key()] = normal(it.value());
    return out;
  }
  return j;
}

/// A cell in the oracle's format: value JSON, {"call": op}, {"collection": [sorted]}, null.
inline nlohmann::json cell_json(const Cell& cell) {
  switch (cell.kind()) {
    case Cell::Kind::null: return nullptr;
    case Cell::Kind::value: return normal(nlohmann::json::parse(cell.to_json()));
    case Cell::Kind::call: return {{"call", cell.call().op}};
    case Cell::Kind::values:
    case Cell::Kind::calls: {
      std::vector<std::string> parts;
      if (cell.kind() == Cell::Kind::values)
        for (const auto& r : cell.refs()) parts.push_back(normal(nlohmann::json::parse(r.to_json())).dump());
      else
        for (const auto& c : cell.calls()) parts.push_back(nlohmann::json{{"call", c.op}}.dump());
      std::sort(parts.begin(), parts.end());
      nlohmann::json items = nlohmann::json::array();
      for (const auto& p : parts) items.push_back(nlohmann::json::parse(p));
      return {{"collection", items}};
    }
  }
  return nullptr;
}

/// Rows as a sorted list of canonical JSON objects (compare as multisets).
inline std::vector<std::string> row_set(const Table& table) {
  std::vector<std::string> rows;
  for (const auto row : table) {
    nlohmann::json obj = nlohmann::json::object();
    for (const auto& c : table.column_names()) obj[c] = cell_json(row[c]);
    rows.push_back(obj.dump());
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

inline std::vector<std::string> row_set(const nlohmann::json& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows) {
    nlohmann::json obj = nlohmann::json::object();
    for (auto it = r.begin(); it != r.end(); ++it) {
      nlohmann::json v = it.value();
      if (v.is_object() && v.contains("collection")) {
        std::vector<std::string> parts;
        for (const auto& x : v.at("collection")) parts.push_back(normal(x).dump());
        std::sort(parts.begin(), parts.end());
        nlohmann::json items = nlohmann::json::array();
        for (const auto& p : parts) items.push_back(nlohmann::json::parse(p));
        v = {{"collection", items}};
      } else {
        v = normal(v);
      }
      obj[it.key()] = v;
    }
    out.push_back(obj.dump());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Rows of a table as text (values JSON), for readable assertions: {"x=0 y=1", ...}.
inline std::multiset<std::string> rows_text(const Table& table) {
  std::multiset<std::string> out;
  for (const auto row : table) {
    std::string line;
    for (std::size_t c = 0; c < table.num_columns(); ++c)
      line += (c ? " " : "") + table.column_names()[c] + "=" + row[c].to_string();
    out.insert(line);
  }
  return out;
}

/// The description in the oracle's normal form (lines sorted).
inline std::string sorted_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  for (char ch : text) {
    if (ch == '\n') {
      lines.push_back(line);
      line.clear();
    } else {
      line += ch;
    }
  }
  if (!line.empty()) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) out += (i ? "\n" : "") + lines[i];
  return out;
}

inline nlohmann::json load_oracle(const std::string& scenario) {
  std::ifstream in(std::string(MANDALA_FRAME_DATA_DIR) + "/" + scenario + ".json");
  if (!in) return nullptr;
  return nlohmann::json::parse(in);
}

/// Pieces of the oracle scenarios' data pipelines (get_data / scale_data / split).
inline std::vector<int> times_ten(const std::vector<int>& x) {
  std::vector<int> out;
  for (int v : x) out.push_back(v * 10);
  return out;
}
/// (x[:k], x[k:], y[:k], y[k:]), like the scenarios' Python split ops.
inline auto split_at(const std::vector<int>& x, const std::vector<int>& y, std::ptrdiff_t k) {
  using V = std::vector<int>;
  return std::make_tuple(V(x.begin(), x.begin() + k), V(x.begin() + k, x.end()), V(y.begin(), y.begin() + k),
                         V(y.begin() + k, y.end()));
}

/// The frame records of an oracle scenario; null when its data file is absent.
inline nlohmann::json oracle_frames(const std::string& scenario) {
  auto j = load_oracle(scenario);
  if (j.is_null()) return j;
  return j.at("frames");
}

/// Declares `var` as the frames of scenario `name`, or skips the test without its data.
#define REQUIRE_ORACLE(var, name)                           \
  const auto var = ::mandala::testing::oracle_frames(name); \
  if (var.is_null()) GTEST_SKIP() << "no oracle data for " << (name)

/// Checks a frame and its table against one oracle frame record.
inline void expect_oracle(const ComputationFrame& frame, const Table& table, const nlohmann::json& expected) {
  SCOPED_TRACE(expected.at("expr").get<std::string>());
  expect_sound(frame);
  EXPECT_EQ(sorted_lines(frame.graph_description()), expected.at("graph_normalized").get<std::string>());
  std::map<std::string, std::size_t> vars, funcs;
  for (const auto& v : frame.vnames()) vars[v] = frame.size(v);
  for (const auto& f : frame.fnames()) funcs[f] = frame.size(f);
  EXPECT_EQ(vars, (expected.at("vars").get<std::map<std::string, std::size_t>>()));
  EXPECT_EQ(funcs, (expected.at("funcs").get<std::map<std::string, std::size_t>>()));
  std::vector<std::vector<std::string>> edges;
  for (const auto& e : frame.edges()) edges.push_back({e.source, e.target, e.label});
  EXPECT_EQ(edges, (expected.at("edges").get<std::vector<std::vector<std::string>>>()));
  if (expected.at("columns").is_null()) return;  // the reference failed; callers check the DECISION
  auto want_cols = expected.at("columns").get<std::vector<std::string>>();
  auto got_cols = table.column_names();
  // columns: same set, and in a topological order of the frame
  std::vector<std::string> a = want_cols, b = got_cols;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  EXPECT_EQ(b, a);
  EXPECT_EQ(row_set(table), row_set(expected.at("rows")));
}

// ---- programs of issue 15's shapes, shared by the frame tests and the shapes oracle test ------

/// The diamond: y = inc(x); final(add(x, y)) for x < 2, final(mul(x, y)) for 2 <= x < 4,
/// add(x, y) only for x == 4, nothing after inc for x == 5 (tests/frame/oracle/generate.py,
/// shape_diamond).
struct Diamond {
  Op<int, int> inc = mandala::op("inc", {"x"}, [](int x) { return x + 1; }, {.outputs = {"y"}});
  Op<int, int, int> add = mandala::op("add", {"x", "y"}, [](int x, int y) { return x + y; }, {.outputs = {"z"}});
  Op<int, int, int> mul = mandala::op("mul", {"x", "y"}, [](int x, int y) { return x * y; }, {.outputs = {"w"}});
  Op<int, int> final_ = mandala::op("final", {"t"}, [](int t) { return t * t; }, {.outputs = {"v"}});

  void run(Storage& storage) const {
    Session s(storage);
    for (int x = 0; x < 6; ++x) {
      auto y = inc(x);
      if (x < 2) final_(add(x, y));
      else if (x < 4) final_(mul(x, y));
      else if (x == 4) add(x, y);
    }
  }
};

/// The loop: x = init(seed); three times x = step(x); score(x), for seeds 0, 1, 2
/// (generate.py, shape_loop).
struct Loop {
  Op<int, int> init = mandala::op("init", {"seed"}, [](int seed) { return seed * 10; }, {.outputs = {"x"}});
  Op<int, int> step = mandala::op("step", {"x"}, [](int x) { return x + 1; });
  Op<int, int> score = mandala::op("score", {"x"}, [](int x) { return x * 2; }, {.outputs = {"s"}});

  void run(Storage& storage) const {
    Session s(storage);
    for (int seed = 0; seed < 3; ++seed) {
      auto x = init(seed);
      for (int i = 0; i < 3; ++i) x = step(x);
      score(x);
    }
  }
};

}  // namespace mandala::testing
