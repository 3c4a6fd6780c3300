// `mandala mark-compatible STORE OP [VERSION]` and `mandala mark-new-version STORE OP [VERSION]`:
// decide whether a version's code changes keep the results computed before them valid.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  std::string op;
  std::string version;
  bool json = false;
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

int run(const Options& o, bool compatible) {
  auto storage = open_for_writing(o.store);
  const auto versions = code_versions(storage, o.op);
  const std::string version = o.version.empty() ? std::to_string(versions.size()) : o.version;
  const auto changed = compatible ? storage.mark_compatible(o.op, version) : storage.mark_new_version(o.op, version);
  const std::string what = compatible ? "compatible with the code before it" : "a new version";
  if (o.json) {
    print_json({{"op", o.op}, {"version", version}, {"compatible", compatible}, {"components", changed}});
    return exit_ok;
  }
  if (changed.empty())
    std::cout << "nothing changed: the changes of version " << version << " of op " << o.op << " are already " << what
              << '\n';
  else
    std::cout << "marked the changes of version " << version << " of op " << o.op << " " << what << ": "
              << join(changed) << '\n';
  if (!changed.empty())
    std::cout << (compatible ? "calls stored under the earlier code are reused for it, without recomputation\n"
                             : "its calls are computed anew; calls of the earlier code stay stored\n");
  return exit_ok;
}

void add(CLI::App& app, Action& action, const char* name, const char* description, bool compatible) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(name, description);
  add_store_arg(*sub, o->store);
  sub->add_option("OP", o->op, "Op name")->required();
  sub->add_option("VERSION", o->version,
                  "Version number (as 'mandala versions' lists it) or a prefix of 4+ hex digits of its id; by "
                  "default the newest");
  add_json_flag(*sub, o->json);
  sub->callback([&action, o, compatible] { action = [o, compatible] { return run(*o, compatible); }; });
}

}  // namespace

void add_mark_compatible(CLI::App& app, Action& action) {
  add(app, action, "mark-compatible",
      "Declare a version's code changes compatible: results of the earlier code stay valid for it", true);
}

void add_mark_new_version(CLI::App& app, Action& action) {
  add(app, action, "mark-new-version",
      "Declare a version's code changes semantic: its calls are computed anew (undoes mark-compatible)", false);
}

}  // namespace mandala::cli
