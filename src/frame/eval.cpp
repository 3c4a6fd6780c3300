// Extraction (spec 5.8): per-variable history tables joined on shared columns, as a Table.

#include <algorithm>
#include <unordered_map>

#include "frame/frame_impl.hpp"
#include "frame/table_data.hpp"

namespace mandala {
using detail::CellCode;
using detail::Elem;
using detail::ElemSet;
using detail::FrameImpl;

namespace {

/// A table under construction: named columns, rows of cell codes.
struct RowTable {
  std::vector<std::string> cols;
  std::vector<std::vector<CellCode>> rows;
};

struct CodeVectorHash {
  std::size_t operator()(const std::vector<CellCode>& v) const noexcept {
    std::size_t h = 0x9e3779b97f4a7c15ULL;
    for (auto c : v) h ^= std::hash<CellCode>{}(c) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
  }
};

/// History rows of every ref of `vname`: for each ref, the closure of {vname: {ref}} under
/// "creator call in an in-neighbour function node, and that call's inputs in the variables on
/// the node's in-edges".
RowTable history_table(const FrameImpl& f, const std::string& vname, detail::CollectionPool& pool) {
  // index the graph
  std::vector<const std::string*> names;
  std::vector<const detail::Node*> nodes;
  std::unordered_map<std::string_view, std::size_t> index;
  for (const auto& [name, n] : f.nodes) {
    index.emplace(name, names.size());
    names.push_back(&name);
    nodes.push_back(&n);
  }
  const std::size_t n = names.size();
  // in-edges: var -> func nodes feeding it; func -> (var, label id) feeding it
  std::vector<std::vector<std::size_t>> creators_of(n);
  std::vector<std::vector<std::pair<std::size_t, std::uint32_t>>> inputs_of(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& [label, srcs] : nodes[i]->in) {
      const auto l = f.u->find_name(label);
      for (const auto& s : srcs) {
        const auto j = index.at(s);
        if (nodes[i]->is_var) {
          if (std::find(creators_of[i].begin(), creators_of[i].end(), j) == creators_of[i].end())
            creators_of[i].push_back(j);
        } else {
          inputs_of[i].emplace_back(j, l);
        }
      }
    }
  }
  const std::size_t v = index.at(vname);
  std::vector<detail::ElemBits> members;
  members.reserve(n);
  for (std::size_t i = 0; i < n; ++i) members.emplace_back(nodes[i]->elems, f.u->space(nodes[i]->is_var));
  RowTable table;
  std::vector<char> used(n, 0);
  const std::size_t num_rows = nodes[v]->elems.size();
  std::vector<CellCode> cells(num_rows * n, detail::null_cell);  // [row][node]
  std::vector<ElemSet> hist(n);
  std::vector<detail::ElemBits> seen(n);  // of this row: cleared through hist after it
  for (std::size_t i = 0; i < n; ++i) seen[i] = detail::ElemBits(f.u->space(nodes[i]->is_var));
  std::vector<std::pair<std::size_t, Elem>> work;
  for (std::size_t row = 0; row < num_rows; ++row) {
    const Elem r = nodes[v]->elems[row];
    work.clear();
    auto visit = [&](std::size_t node, Elem e) {
      if (!seen[node].insert(e)) return false;
      hist[node].push_back(e);
      return true;
    };
    visit(v, r);
    work.emplace_back(v, r);
    while (!work.empty()) {
      const auto [node, ref] = work.back();
      work.pop_back();
      const Elem c = f.u->creator(ref);
      if (c == detail::no_elem) continue;
      for (auto fn : creators_of[node]) {
        if (!members[fn].test(c)) continue;
        if (!visit(fn, c)) continue;
        for (const auto& [src, label] : inputs_of[fn])
          for (const auto& io : f.u->call(c).inputs)
            if (io.label == label && members[src].test(io.ref) && visit(src, io.ref)) work.emplace_back(src, io.ref);
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (hist[i].empty()) continue;
      for (auto e : hist[i]) seen[i].reset(e);
      detail::normalize(hist[i]);
      cells[row * n + i] = pool.code_of(hist[i]);
      used[i] = 1;
      hist[i].clear();
    }
  }
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < n; ++i)
    if (used[i]) {
      keep.push_back(i);
      table.cols.push_back(*names[i]);
    }
  table.rows.reserve(num_rows);
  for (std::size_t row = 0; row < num_rows; ++row) {
    std::vector<CellCode> r;
    r.reserve(keep.size());
    for (auto i : keep) r.push_back(cells[row * n + i]);
    table.rows.push_back(std::move(r));
  }
  return table;
}

/// pandas-style merge on all shared columns (null keys match null keys); without shared columns,
/// the union of rows (null-padded).
RowTable join(const RowTable& a, const RowTable& b, Join how) {
  RowTable out;
  out.cols = a.cols;
  std::vector<std::size_t> a_shared, b_shared, b_only;
  for (std::size_t j = 0; j < b.cols.size(); ++j) {
    auto it = std::find(a.cols.begin(), a.cols.end(), b.cols[j]);
    if (it == a.cols.end()) {
      b_only.push_back(j);
      out.cols.push_back(b.cols[j]);
    } else {
      a_shared.push_back(static_cast<std::size_t>(it - a.cols.begin()));
      b_shared.push_back(j);
    }
  }
  const std::size_t width = out.cols.size();
  auto from_b = [&](const std::vector<CellCode>& rb) {
    std::vector<CellCode> row(width, detail::null_cell);
    for (std::size_t k = 0; k < a_shared.size(); ++k) row[a_shared[k]] = rb[b_shared[k]];
    for (std::size_t k = 0; k < b_only.size(); ++k) row[a.cols.size() + k] = rb[b_only[k]];
    return row;
  };
  if (a_shared.empty()) {  // DECISION (spec 5.8): no shared column -> union of rows
    for (const auto& ra : a.rows) {
      auto row = ra;
      row.resize(width, detail::null_cell);
      out.rows.push_back(std::move(row));
    }
    for (const auto& rb : b.rows) out.rows.push_back(from_b(rb));
    return out;
  }
  // A row whose shared columns are all null matches nothing: pandas would pair it with every
  // such row of the other table (a cartesian product of unrelated partial executions).
  auto all_null = [](const std::vector<CellCode>& key) {
    return std::all_of(key.begin(), key.end(), [](CellCode c) { return c == detail::null_cell; });
  };
  std::unordered_map<std::vector<CellCode>, std::vector<std::size_t>, CodeVectorHash> index;
  for (std::size_t i = 0; i < b.rows.size(); ++i) {
    std::vector<CellCode> key;
    key.reserve(b_shared.size());
    for (auto j : b_shared) key.push_back(b.rows[i][j]);
    if (!all_null(key)) index[std::move(key)].push_back(i);
  }
  std::vector<char> b_matched(b.rows.size(), 0);
  std::vector<CellCode> key;
  for (const auto& ra : a.rows) {
    key.clear();
    for (auto j : a_shared) key.push_back(ra[j]);
    auto it = all_null(key) ? index.end() : index.find(key);
    if (it == index.end()) {
      if (how == Join::outer) {
        auto row = ra;
        row.resize(width, detail::null_cell);
        out.rows.push_back(std::move(row));
      }
      continue;
    }
    for (auto i : it->second) {
      b_matched[i] = 1;
      auto row = ra;
      row.resize(width, detail::null_cell);
      for (std::size_t k = 0; k < b_only.size(); ++k) row[a.cols.size() + k] = b.rows[i][b_only[k]];
      out.rows.push_back(std::move(row));
    }
  }
  if (how == Join::outer)
    for (std::size_t i = 0; i < b.rows.size(); ++i)
      if (!b_matched[i]) out.rows.push_back(from_b(b.rows[i]));
  return out;
}

Table make_table(const FrameImpl& f, const RowTable& rt, std::vector<std::string> columns,
                 std::shared_ptr<detail::CollectionPool> pool, Values display) {
  auto data = std::make_shared<detail::TableData>();
  data->u = f.u;
  data->pool = std::move(pool);
  data->display = display;
  data->rows = rt.rows.size();
  for (const auto& c : columns) {
    auto it = std::find(rt.cols.begin(), rt.cols.end(), c);
    if (it == rt.cols.end()) continue;
    const auto j = static_cast<std::size_t>(it - rt.cols.begin());
    data->names.push_back(c);
    data->call_column.push_back(f.node(c).is_var ? 0 : 1);
    std::vector<CellCode> col;
    col.reserve(rt.rows.size());
    for (const auto& row : rt.rows) col.push_back(row[j]);
    data->cells.push_back(std::move(col));
  }
  return Table(std::move(data));
}

/// One column holding the elements of one node, one per row.
Table single_node(const FrameImpl& f, const std::string& name, Values display) {
  RowTable rt;
  rt.cols = {name};
  for (auto e : f.node(name).elems) rt.rows.push_back({static_cast<CellCode>(e)});
  return make_table(f, rt, {name}, std::make_shared<detail::CollectionPool>(), display);
}

}  // namespace

Table ComputationFrame::df(const DfOptions& options) const {
  const FrameImpl& self = *m_impl;
  std::vector<std::string> wanted = options.columns;
  if (wanted.empty())
    for (const auto& [name, n] : self.nodes) wanted.push_back(name);
  for (const auto& w : wanted) self.node(w);  // unknown names throw
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  if (wanted.empty()) return Table();
  if (wanted.size() == 1) return single_node(self, wanted.front(), options.values);

  const auto restricted = detail::midstream_of(self, wanted, Reach::strong);
  const FrameImpl& r = *restricted;
  auto pool = std::make_shared<detail::CollectionPool>();
  RowTable result;
  if (r.nodes.empty()) {
    // DECISION: nothing connects the nodes (isolated variables): the union of their elements.
    bool first = true;
    for (const auto& w : wanted) {
      RowTable one;
      one.cols = {w};
      for (auto e : self.node(w).elems) one.rows.push_back({static_cast<CellCode>(e)});
      result = first ? one : join(result, one, Join::outer);
      first = false;
    }
  } else {
    const auto sink_elems = r.sink_elements();
    std::vector<std::string> sinks;
    for (const auto& name : r.topological_order())
      if (r.node(name).is_var && !sink_elems.at(name).empty()) sinks.push_back(name);
    bool first = true;
    for (const auto& v : sinks) {
      auto h = history_table(r, v, *pool);
      result = first ? std::move(h) : join(result, h, options.join);
      first = false;
    }
  }
  std::vector<std::string> columns;
  for (const auto& name : self.topological_order()) {
    if (!std::binary_search(wanted.begin(), wanted.end(), name)) continue;
    if (options.calls == Calls::exclude && !self.node(name).is_var) continue;
    columns.push_back(name);
  }
  return make_table(self, result, columns, pool, options.values);
}

Table ComputationFrame::eval(const std::vector<std::string>& columns, Values values) const {
  DfOptions o;
  o.columns = columns;
  o.values = values;
  return df(o);
}

Table ComputationFrame::history(std::string_view vname, Calls calls) const {
  const FrameImpl& self = *m_impl;
  if (!self.node(vname).is_var) throw Error(Errc::invalid_argument, std::string(vname) + " is not a variable");
  auto pool = std::make_shared<detail::CollectionPool>();
  auto rt = history_table(self, std::string(vname), *pool);
  std::vector<std::string> columns;
  for (const auto& name : self.topological_order())
    if (calls == Calls::include || self.node(name).is_var) columns.push_back(name);
  return make_table(self, rt, columns, pool, Values::values);
}

Table ComputationFrame::func_table(std::string_view fname) const {
  const FrameImpl& self = *m_impl;
  const auto& fn = self.node(fname);
  if (fn.is_var) throw Error(Errc::invalid_argument, std::string(fname) + " is not a function node");
  std::vector<char> in_frame(self.u->num_refs(), 0);
  for (const auto& [name, n] : self.nodes)
    if (n.is_var)
      for (auto e : n.elems) in_frame[e] = 1;
  std::vector<std::string> cols;
  auto add_col = [&](const std::string& c) {
    if (std::find(cols.begin(), cols.end(), c) == cols.end()) cols.push_back(c);
  };
  for (auto c : fn.elems) {
    for (const auto& io : self.u->call(c).inputs) add_col(self.u->name(io.name));
    for (const auto& io : self.u->call(c).outputs) add_col(self.u->name(io.name));
  }
  auto data = std::make_shared<detail::TableData>();
  data->u = self.u;
  data->pool = std::make_shared<detail::CollectionPool>();
  data->rows = fn.elems.size();
  data->names = cols;
  data->call_column.assign(cols.size(), 0);
  data->cells.assign(cols.size(), std::vector<CellCode>(fn.elems.size(), detail::null_cell));
  for (std::size_t i = 0; i < fn.elems.size(); ++i) {
    const auto& row = self.u->call(fn.elems[i]);
    for (const auto* ios : {&row.inputs, &row.outputs})
      for (const auto& io : *ios) {
        if (!in_frame[io.ref]) continue;
        const auto j =
            static_cast<std::size_t>(std::find(cols.begin(), cols.end(), self.u->name(io.name)) - cols.begin());
        data->cells[j][i] = static_cast<CellCode>(io.ref);
      }
  }
  return Table(std::move(data));
}

}  // namespace mandala
