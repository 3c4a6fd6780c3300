// `mandala rename-op STORE OLD NEW`, `mandala rename-input STORE OP OLD NEW` and
// `mandala rename-output STORE OP OLD NEW`: rename an op, an input or an output, keeping its
// stored calls (docs/storage-format.md 2.2).

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

enum class What { op, input, output };

struct Options {
  std::string store;
  std::string op;
  std::string from;
  std::string to;
  bool json = false;
};

int run(const Options& o, What what) {
  auto storage = open_for_writing(o.store);
  const char* word = what == What::op ? "op" : what == What::input ? "input" : "output";
  switch (what) {
    case What::op: storage.rename_op(o.from, o.to); break;
    case What::input: storage.rename_input(o.op, o.from, o.to); break;
    case What::output: storage.rename_output(o.op, o.from, o.to); break;
  }
  const std::string op = what == What::op ? o.to : o.op;
  if (o.json) {
    print_json({{"renamed", word}, {"op", op}, {"from", o.from}, {"to", o.to}});
    return exit_ok;
  }
  std::cout << "renamed " << word << " " << o.from << " to " << o.to;
  if (what != What::op) std::cout << " in op " << op;
  std::cout << ": its stored calls are kept and shown under the new name; '" << o.from
            << "' is free for something new\n";
  return exit_ok;
}

void add(CLI::App& app, Action& action, const char* name, const char* description, What what) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(name, description);
  add_store_arg(*sub, o->store);
  if (what != What::op) sub->add_option("OP", o->op, "Op name")->required();
  sub->add_option("OLD", o->from, "Current name")->required();
  sub->add_option("NEW", o->to, "New name")->required();
  add_json_flag(*sub, o->json);
  sub->callback([&action, o, what] { action = [o, what] { return run(*o, what); }; });
}

}  // namespace

void add_rename_op(CLI::App& app, Action& action) {
  add(app, action, "rename-op", "Rename an op, keeping its stored calls (every version)", What::op);
}

void add_rename_input(CLI::App& app, Action& action) {
  add(app, action, "rename-input", "Rename an input of an op, keeping its stored calls", What::input);
}

void add_rename_output(CLI::App& app, Action& action) {
  add(app, action, "rename-output", "Rename an output of an op, keeping its stored calls", What::output);
}

}  // namespace mandala::cli
