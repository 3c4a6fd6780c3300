// Display (spec 5.10): graph description, summary, statistics, DOT and SVG.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>

#include "frame/frame_impl.hpp"

namespace mandala {
using detail::FrameImpl;

namespace {

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string indent(const std::string& text, const std::string& prefix) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  bool first = true;
  while (std::getline(in, line)) {
    if (!first) out += "\n";
    out += prefix + line;
    first = false;
  }
  return out;
}

/// Output labels of a function node in the op's declared order (then `output_k` by k, then by name).
std::vector<std::string> ordered_outputs(const FrameImpl& f, const detail::Node& n) {
  std::vector<std::string> declared;
  if (!n.elems.empty()) {
    // the newest version among the node's calls
    std::uint32_t version = 0;
    for (auto c : n.elems) version = std::max(version, f.u->call(c).version);
    declared = f.u->op_outputs(f.u->call(n.elems.front()).op, version);
  }
  std::vector<std::string> labels;
  for (const auto& [label, vs] : n.out) labels.push_back(label);
  auto rank = [&](const std::string& label) -> std::pair<std::size_t, std::string> {
    auto it = std::find(declared.begin(), declared.end(), label);
    if (it != declared.end()) return {static_cast<std::size_t>(it - declared.begin()), ""};
    if (label.rfind("output_", 0) == 0) {
      const auto k = label.substr(7);
      if (!k.empty() && k.size() < 10 &&
          std::all_of(k.begin(), k.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
        return {std::stoul(k), ""};
    }
    return {SIZE_MAX, label};
  };
  std::stable_sort(labels.begin(), labels.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  return labels;
}

/// Escapes a name for a DOT string (quotes and backslashes).
std::string dot_escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out;
}
std::string dot_id(const std::string& s) { return "\"" + dot_escape(s) + "\""; }
/// A DOT label: the parts are escaped and joined with DOT's line break.
std::string dot_label(const std::vector<std::string>& lines) {
  std::string out = "\"";
  for (std::size_t i = 0; i < lines.size(); ++i) {
    out += i ? "\\n" : "";
    out += dot_escape(lines[i]);
  }
  return out + "\"";
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

std::string ComputationFrame::graph_description() const {
  const FrameImpl& f = *m_impl;
  std::vector<std::string> lines;
  std::vector<std::string> isolated;
  for (const auto& [name, n] : f.nodes)
    if (n.is_var && n.in.empty() && n.out.empty()) isolated.push_back(name);
  if (!isolated.empty()) lines.push_back(join(isolated, ", "));
  for (const auto& fname : f.topological_order()) {
    const auto& n = f.node(fname);
    if (n.is_var) continue;
    std::vector<std::string> lhs;
    for (const auto& label : ordered_outputs(f, n)) {
      const auto& vars = n.out.at(label);
      std::vector<std::string> vs(vars.begin(), vars.end());
      lhs.push_back((vs.size() > 1 ? "(" + join(vs, " | ") + ")" : vs.front()) + "@" + label);
    }
    std::vector<std::string> rhs;
    for (const auto& [label, vars] : n.in) rhs.push_back(label + "=" + join({vars.begin(), vars.end()}, " | "));
    lines.push_back(join(lhs, ", ") + " = " + fname + "(" + join(rhs, ", ") + ")");
  }
  return join(lines, "\n");
}

std::string ComputationFrame::summary() const {
  const FrameImpl& f = *m_impl;
  std::size_t vars = 0, funcs = 0;
  for (const auto& [name, n] : f.nodes) (n.is_var ? vars : funcs)++;
  std::string out = "ComputationFrame with:\n    " + std::to_string(vars) + " variable(s) (" +
                    std::to_string(num_refs()) + " unique refs)\n    " + std::to_string(funcs) + " operation(s) (" +
                    std::to_string(num_calls()) + " unique calls)\nComputational graph:";
  const auto desc = graph_description();
  if (!desc.empty()) out += "\n" + indent(desc, "    ");
  return out;
}

std::ostream& operator<<(std::ostream& os, const ComputationFrame& frame) { return os << frame.summary(); }

std::vector<NodeStats> ComputationFrame::node_stats() const {
  const FrameImpl& f = *m_impl;
  const auto sources = f.source_elements();
  const auto sinks = f.sink_elements();
  std::vector<NodeStats> out;
  for (const auto& [name, n] : f.nodes)
    out.push_back({name, n.is_var, n.op, n.elems.size(), sources.at(name).size(), sinks.at(name).size()});
  return out;
}

std::string ComputationFrame::var_info(std::string_view vname) const {
  const FrameImpl& f = *m_impl;
  const auto& n = f.node(vname);
  if (!n.is_var) throw Error(Errc::invalid_argument, std::string(vname) + " is not a variable");
  const std::string v(vname);
  std::vector<std::string> creators, consumers;
  for (const auto& e : f.in_edges(v))
    creators.push_back(v + "=" + e.source + "::" + e.label + " (" +
                       plural(f.adjacent(e.source, v, e.label, n.elems, Direction::back).size(), "call", "calls") +
                       ")");
  for (const auto& e : f.out_edges(v))
    consumers.push_back(e.target + "(" + e.label + "=" + v + ", ...) (" +
                        plural(f.adjacent(v, e.target, e.label, n.elems, Direction::forward).size(), "call", "calls") +
                        ")");
  return "Variable " + v + " with " + plural(n.elems.size(), "value", "values") +
         "\nCreator ops: " + join(creators, " | ") + "\nConsumer ops: " + join(consumers, " | ");
}

std::string ComputationFrame::to_dot(const DotOptions& options) const {
  const FrameImpl& f = *m_impl;
  detail::NodeSets sources, sinks;
  if (options.verbose) {
    sources = f.source_elements();
    sinks = f.sink_elements();
  }
  std::string out = "digraph ComputationFrame {\n";
  out += "  rankdir=" + (options.rankdir == "LR" ? std::string("LR") : std::string("TB")) + ";\n";
  out += "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=12];\n";
  out += "  edge [fontname=\"Helvetica\", fontsize=10];\n";
  for (const auto& [name, n] : f.nodes) {
    if (n.is_var) {
      std::string count = plural(n.elems.size(), "value", "values");
      if (options.verbose) {
        std::vector<std::string> parts;
        if (!sources.at(name).empty()) parts.push_back(std::to_string(sources.at(name).size()) + " sources");
        if (!sinks.at(name).empty()) parts.push_back(std::to_string(sinks.at(name).size()) + " sinks");
        if (!parts.empty()) count += " (" + join(parts, "/") + ")";
      }
      out += "  " + dot_id(name) + " [label=" + dot_label({name, count}) +
             ", color=\"#268bd2\", fillcolor=\"#e3eef8\", fontcolor=\"#073642\"];\n";
    } else {
      std::string op_line = "@op:" + n.op;
      if (options.verbose) {  // calls of several versions of the op
        std::set<std::uint32_t> versions;
        for (auto c : n.elems) versions.insert(f.u->call(c).version);
        if (versions.size() > 1) op_line += " (" + std::to_string(versions.size()) + " versions)";
      }
      out += "  " + dot_id(name) + " [label=" + dot_label({name, op_line, plural(n.elems.size(), "call", "calls")}) +
             ", shape=box, style=\"filled\", color=\"#dc322f\", fillcolor=\"#fbe3e2\", fontcolor=\"#073642\"];\n";
    }
  }
  for (const auto& e : f.edges()) {
    std::vector<std::string> label{e.label};
    const auto& target = f.node(e.target);
    if (!target.is_var && target.op == "__make_list__" && e.label == "elts") label[0] = "*elts";
    if (options.verbose) {
      const bool into_func = !target.is_var;
      const auto& fn = into_func ? target : f.node(e.source);
      const auto n =
          f.adjacent(e.source, e.target, e.label, fn.elems, into_func ? Direction::back : Direction::forward).size();
      label.push_back("(" + plural(n, "value", "values") + ")");
    }
    out += "  " + dot_id(e.source) + " -> " + dot_id(e.target) + " [label=" + dot_label(label) + "];\n";
  }
  return out + "}\n";
}

std::string ComputationFrame::to_svg(const DotOptions& options) const {
  namespace fs = std::filesystem;
  static std::atomic<unsigned> counter{0};
  const auto stamp =
      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()) + "-" + std::to_string(counter++);
  const fs::path dir = fs::temp_directory_path();
  const fs::path in = dir / ("mandala-frame-" + stamp + ".dot");
  const fs::path out = dir / ("mandala-frame-" + stamp + ".svg");
  {
    std::ofstream file(in);
    file << to_dot(options);
    if (!file) throw Error(Errc::io, "cannot write " + in.string());
  }
  const std::string command = "dot -Tsvg '" + in.string() + "' -o '" + out.string() + "' 2>/dev/null";
  const int status = std::system(command.c_str());
  std::error_code ec;
  fs::remove(in, ec);
  if (status != 0) {
    fs::remove(out, ec);
    const bool missing = std::system("command -v dot >/dev/null 2>&1") != 0;
    if (missing)
      throw Error(Errc::not_found, "rendering SVG needs the Graphviz `dot` program; install graphviz or use to_dot()");
    throw Error(Errc::io, "Graphviz `dot` failed to render the frame (exit status " + std::to_string(status) + ")");
  }
  std::ifstream file(out, std::ios::binary);
  std::ostringstream text;
  text << file.rdbuf();
  std::string svg = std::move(text).str();
  fs::remove(out, ec);
  return svg;
}

}  // namespace mandala
