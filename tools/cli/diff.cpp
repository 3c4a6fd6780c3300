// `mandala diff STORE OP [FROM] [TO]`: a unified diff of the code of two versions of an op (by
// default the two newest).

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  std::string op;
  std::string from;
  std::string to;
  bool json = false;
};

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  const auto versions = code_versions(storage, o.op);
  std::string from = o.from;
  std::string to = o.to;
  if (from.empty()) {
    if (versions.size() < 2)
      throw Failure("op " + o.op + " has one version of its code: there is nothing to compare it with");
    from = std::to_string(versions.size() - 1);
  }
  if (to.empty()) to = std::to_string(versions.size());
  const auto diff = storage.diff_versions(o.op, from, to);
  if (o.json) {
    print_json({{"op", o.op}, {"from", from}, {"to", to}, {"same_code", diff.empty()}, {"diff", diff}});
    return exit_ok;
  }
  if (diff.empty()) std::cout << "versions " << from << " and " << to << " of op " << o.op << " have the same code\n";
  else std::cout << diff << (diff.back() == '\n' ? "" : "\n");
  return exit_ok;
}

}  // namespace

void add_diff(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("diff", "A unified diff of the code of two versions of an op");
  add_store_arg(*sub, o->store);
  sub->add_option("OP", o->op, "Op name")->required();
  sub->add_option("FROM", o->from,
                  "Version number (as 'mandala versions' lists it) or a prefix of 4+ hex digits of its id; by "
                  "default the version before the newest");
  sub->add_option("TO", o->to, "Version to compare with, named the same way; by default the newest");
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
