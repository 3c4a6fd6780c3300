// `mandala versions STORE OP`: every recorded version of an op's code, with the code of each
// component it depends on and the number of calls stored under it.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  std::string op;
  bool json = false;
};

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  const auto versions = code_versions(storage, o.op);
  if (o.json) {
    nlohmann::json j{{"op", o.op}, {"versions", nlohmann::json::array()}};
    for (const auto& v : versions) j["versions"].push_back(version_json(v));
    print_json(j);
    return exit_ok;
  }
  std::cout << storage.versions_listing(o.op);
  return exit_ok;
}

}  // namespace

void add_versions(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("versions", "The versions of an op's code, each with the code it depends on");
  add_store_arg(*sub, o->store);
  sub->add_option("OP", o->op, "Op name")->required();
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
