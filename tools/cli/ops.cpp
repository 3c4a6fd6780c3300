// `mandala ops STORE`: every op with versions, input/output names, call counts and last use.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  bool json = false;
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  const auto ops = storage.ops();
  if (o.json) {
    auto j = nlohmann::json::array();
    for (const auto& op : ops) j.push_back(op_json(op));
    print_json(j);
    return exit_ok;
  }
  if (ops.empty()) {
    std::cout << "(no ops)\n";
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& op : ops)
    rows.push_back({op.name, std::to_string(op.version), join(op.inputs), join(op.outputs), std::to_string(op.calls),
                    human_bytes(op.output_bytes), op.last_call ? iso_time(*op.last_call) : "-"});
  print_table(std::cout, {"op", "version", "inputs", "outputs", "calls", "output bytes", "last call"}, rows);
  return exit_ok;
}

}  // namespace

void add_ops(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("ops", "Ops with versions, input and output names, call counts and last use");
  add_store_arg(*sub, o->store);
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
