// `mandala cf STORE OP`: the ComputationFrame's table; `mandala graph STORE OP`: its picture.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct FrameOptions {
  std::string store;
  std::string op;
  std::optional<std::uint32_t> version;
  std::string expand = "none";
  std::string output;
};

void add_frame_options(CLI::App& sub, FrameOptions& o) {
  add_store_arg(sub, o.store);
  sub.add_option("OP", o.op, "Op whose calls start the frame")->required();
  sub.add_option("--version", o.version, "Only calls of this op version")
      ->check(whole_number(0, std::numeric_limits<std::uint32_t>::max()));
  sub.add_option("--expand", o.expand,
                 "Grow the frame: back (what the inputs came from), forward (what used the outputs), all, or none")
      ->check(CLI::IsMember({"none", "back", "forward", "all"}))
      ->default_val("none");
  sub.add_option("-o,--output", o.output, "Write to this file instead of standard output");
}

ComputationFrame build_frame(Storage& storage, const FrameOptions& o) {
  CallQuery probe;
  probe.version = o.version;
  probe.limit = 0;
  (void)storage.find_calls(o.op, probe);  // Errc::not_found, naming the store's ops, when unknown
  auto frame = storage.cf(o.op, o.version);
  if (o.expand == "back") frame.expand_back_inplace(Recursive::yes);
  else if (o.expand == "forward") frame.expand_forward_inplace(Recursive::yes);
  else if (o.expand == "all") frame.expand_all_inplace();
  return frame;
}

struct CfOptions : FrameOptions {
  std::vector<std::string> columns;
  std::string format = "text";
  bool json = false;
  bool refs = false;
};

int run_cf(const CfOptions& o) {
  auto storage = open_for_reading(o.store);
  Progress progress("evaluating frame");
  auto frame = build_frame(storage, o);
  for (const auto& c : o.columns)
    if (!frame.has_node(c)) {
      std::string nodes;
      for (const auto& n : frame.nodes()) nodes += (nodes.empty() ? "" : ", ") + n;
      throw UsageError("no column '" + c + "' in the frame (its nodes: " + nodes + ")");
    }
  DfOptions df;
  df.columns = o.columns;
  df.values = o.refs ? Values::refs : Values::values;
  auto table = frame.df(df);
  const std::string format = o.json ? "json" : o.format;
  std::string text;
  if (format == "text") text = table.to_text();
  else if (format == "markdown") text = table.to_markdown();
  else if (format == "csv") text = table.to_csv();
  else text = table.to_json();
  progress.finish();
  write_output(text, o.output);
  return exit_ok;
}

struct GraphOptions : FrameOptions {
  std::string format = "dot";
  std::string rankdir = "TB";
  bool verbose = false;
  bool json = false;
};

nlohmann::json graph_json(const ComputationFrame& frame) {
  nlohmann::json j{{"nodes", nlohmann::json::array()}, {"edges", nlohmann::json::array()}};
  for (const auto& n : frame.node_stats()) {
    nlohmann::json node{{"name", n.name}, {"kind", n.is_variable ? "variable" : "function"}, {"size", n.size}};
    if (!n.is_variable) node["op"] = n.op;
    j["nodes"].push_back(node);
  }
  for (const auto& e : frame.edges())
    j["edges"].push_back({{"source", e.source}, {"target", e.target}, {"label", e.label}});
  return j;
}

int run_graph(const GraphOptions& o) {
  auto storage = open_for_reading(o.store);
  auto frame = build_frame(storage, o);
  DotOptions dot;
  dot.rankdir = o.rankdir;
  dot.verbose = o.verbose;
  std::string text;
  if (o.json) text = graph_json(frame).dump(2) + "\n";
  else if (o.format == "dot") text = frame.to_dot(dot);
  else if (o.format == "svg") text = frame.to_svg(dot);
  else text = frame.graph_description();
  write_output(text, o.output);
  return exit_ok;
}

}  // namespace

void add_cf(CLI::App& app, Action& action) {
  auto o = std::make_shared<CfOptions>();
  auto* sub = app.add_subcommand("cf", "The table of a ComputationFrame grown from an op's calls");
  add_frame_options(*sub, *o);
  sub->add_option("--columns", o->columns, "Columns to keep (frame node names, comma-separated)")->delimiter(',');
  sub->add_option("--format", o->format, "text, markdown, csv or json")
      ->check(CLI::IsMember({"text", "markdown", "csv", "json"}))
      ->default_val("text");
  sub->add_flag("--refs", o->refs, "Show history ids instead of values (text, markdown, csv)");
  add_json_flag(*sub, o->json)->excludes("--format");
  sub->callback([&action, o] { action = [o] { return run_cf(*o); }; });
}

void add_graph(CLI::App& app, Action& action) {
  auto o = std::make_shared<GraphOptions>();
  auto* sub = app.add_subcommand("graph", "The picture of a ComputationFrame grown from an op's calls");
  add_frame_options(*sub, *o);
  sub->add_option("--format", o->format, "dot (Graphviz source), svg (rendered with Graphviz dot) or text")
      ->check(CLI::IsMember({"dot", "svg", "text"}))
      ->default_val("dot");
  sub->add_option("--rankdir", o->rankdir, "Layout direction: TB (top to bottom) or LR")
      ->check(CLI::IsMember({"TB", "LR"}))
      ->default_val("TB");
  sub->add_flag("--verbose", o->verbose, "Source/sink counts per variable, value counts per edge");
  add_json_flag(*sub, o->json)->excludes("--format");
  sub->callback([&action, o] { action = [o] { return run_graph(*o); }; });
}

}  // namespace mandala::cli
