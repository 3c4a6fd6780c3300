// mandala._core: the ComputationFrame operations beyond construction, expansion and df() (the
// original's cf API: reachability, selection, set operations, mutation, tables, display).

#include "frame_api.hpp"

#include <pybind11/stl.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mandala/frame.hpp"

namespace py = pybind11;
namespace md = mandala;

namespace mandala_python {

namespace {

md::Reach reach(const std::string& how) {
  if (how == "strong") return md::Reach::strong;
  if (how == "weak") return md::Reach::weak;
  throw py::value_error("how must be 'strong' or 'weak', not '" + how + "'");
}

md::Direction direction(const std::string& d) {
  if (d == "forward") return md::Direction::forward;
  if (d == "back") return md::Direction::back;
  throw py::value_error("direction must be 'forward' or 'back', not '" + d + "'");
}

md::Closure closure(bool closed) { return closed ? md::Closure::closed : md::Closure::raw; }

std::vector<md::Id> ids(const std::vector<std::string>& hex, const char* what) {
  std::vector<md::Id> out;
  out.reserve(hex.size());
  for (const auto& h : hex) {
    const auto id = md::Id::from_hex(h);
    if (!id) throw py::value_error(std::string(what) + " '" + h + "' is not an id (32 hex digits)");
    out.push_back(*id);
  }
  return out;
}

md::ExpandOptions expand_options(bool skip_existing, bool reuse_existing) {
  md::ExpandOptions o;
  o.skip_existing = skip_existing;
  o.reuse_existing = reuse_existing;
  return o;
}

}  // namespace

void add_frame_api(py::module_& m, const TableToPython& table_columns) {
  auto cls = py::reinterpret_borrow<py::class_<md::ComputationFrame>>(m.attr("ComputationFrame"));
  cls.def("expand_back_vars",
          [](const md::ComputationFrame& f, const std::vector<std::string>& vars, bool recursive, bool skip_existing,
             bool reuse_existing) {
            return f.expand_back(vars, recursive ? md::Recursive::yes : md::Recursive::no,
                                 expand_options(skip_existing, reuse_existing));
          })
      .def("expand_forward_vars",
           [](const md::ComputationFrame& f, const std::vector<std::string>& vars, bool recursive, bool skip_existing,
              bool reuse_existing) {
             return f.expand_forward(vars, recursive ? md::Recursive::yes : md::Recursive::no,
                                     expand_options(skip_existing, reuse_existing));
           })
      .def("expand_all_with",
           [](const md::ComputationFrame& f, bool skip_existing, bool reuse_existing) {
             return f.expand_all(expand_options(skip_existing, reuse_existing));
           })
      .def("upstream", [](const md::ComputationFrame& f, const std::vector<std::string>& nodes,
                          const std::string& how) { return f.upstream(nodes, reach(how)); })
      .def("downstream", [](const md::ComputationFrame& f, const std::vector<std::string>& nodes,
                            const std::string& how) { return f.downstream(nodes, reach(how)); })
      .def("midstream", [](const md::ComputationFrame& f, const std::vector<std::string>& nodes,
                           const std::string& how) { return f.midstream(nodes, reach(how)); })
      .def("drop_unreachable", [](const md::ComputationFrame& f, const std::string& d,
                                  const std::string& how) { return f.drop_unreachable(direction(d), reach(how)); })
      .def("select_nodes", &md::ComputationFrame::select_nodes)
      .def("select_subsets",
           [](const md::ComputationFrame& f, const std::map<std::string, std::vector<std::string>>& elements) {
             std::map<std::string, std::vector<md::Id>> e;
             for (const auto& [node, hex] : elements) e[node] = ids(hex, "element");
             return f.select_subsets(e);
           })
      .def("isin_cids",
           [](const md::ComputationFrame& f, const std::vector<std::string>& cids, const std::vector<std::string>& vars,
              bool closed) { return f.isin_cids(ids(cids, "content id"), vars, closure(closed)); })
      .def("isin_hids",
           [](const md::ComputationFrame& f, const std::vector<std::string>& hids, const std::vector<std::string>& vars,
              bool closed) { return f.isin_hids(ids(hids, "history id"), vars, closure(closed)); })
      .def("less_than",
           [](const md::ComputationFrame& f, double bound, bool closed) { return f.less_than(bound, closure(closed)); })
      .def("union_with", &md::ComputationFrame::union_with)
      .def("intersection_with", &md::ComputationFrame::intersection_with)
      .def("difference", &md::ComputationFrame::difference)
      .def("drop", &md::ComputationFrame::drop)
      .def("drop_var", &md::ComputationFrame::drop_var)
      .def("drop_func", &md::ComputationFrame::drop_func)
      .def("rename", [](const md::ComputationFrame& f,
                        const std::map<std::string, std::string>& names) { return f.rename(names); })
      .def("merge_into", &md::ComputationFrame::merge_into)
      .def("merge_vars", &md::ComputationFrame::merge_vars)
      .def("cleanup", &md::ComputationFrame::cleanup)
      .def("copy", &md::ComputationFrame::copy)
      .def_property_readonly("sources", &md::ComputationFrame::sources)
      .def_property_readonly("sinks", &md::ComputationFrame::sinks)
      .def_property_readonly("edges",
                             [](const md::ComputationFrame& f) {
                               std::vector<std::tuple<std::string, std::string, std::string>> out;
                               for (const auto& e : f.edges()) out.emplace_back(e.source, e.target, e.label);
                               return out;
                             })
      .def("in_neighbors", &md::ComputationFrame::in_neighbors)
      .def("out_neighbors", &md::ComputationFrame::out_neighbors)
      .def("topological_order", &md::ComputationFrame::topological_order)
      .def("is_variable", &md::ComputationFrame::is_variable)
      .def("is_function", &md::ComputationFrame::is_function)
      .def("size", &md::ComputationFrame::size)
      .def("hids",
           [](const md::ComputationFrame& f, const std::string& node) {
             std::vector<std::string> out;
             for (const auto& id : f.hids(node)) out.push_back(id.hex());
             return out;
           })
      .def("node_stats",
           [](const md::ComputationFrame& f) {
             std::vector<py::dict> out;
             for (const auto& s : f.node_stats()) {
               py::dict d;
               d["name"] = s.name;
               d["is_variable"] = s.is_variable;
               d["op"] = s.op;
               d["size"] = s.size;
               d["sources"] = s.sources;
               d["sinks"] = s.sinks;
               out.push_back(d);
             }
             return out;
           })
      .def("var_info", &md::ComputationFrame::var_info)
      .def("history",
           [table_columns](const md::ComputationFrame& f, const std::string& vname, bool include_calls) {
             return table_columns(f.history(vname, include_calls ? md::Calls::include : md::Calls::exclude));
           })
      .def("func_table", [table_columns](const md::ComputationFrame& f,
                                         const std::string& fname) { return table_columns(f.func_table(fname)); })
      .def("to_dot_with",
           [](const md::ComputationFrame& f, bool verbose, const std::string& rankdir) {
             md::DotOptions o;
             o.verbose = verbose;
             o.rankdir = rankdir;
             return f.to_dot(o);
           })
      .def("to_svg", [](const md::ComputationFrame& f, bool verbose, const std::string& rankdir) {
        md::DotOptions o;
        o.verbose = verbose;
        o.rankdir = rankdir;
        const py::gil_scoped_release release;  // runs the dot program
        return f.to_svg(o);
      });
}

}  // namespace mandala_python
