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
  bool yes = false;
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

int run(const Options& o, bool compatible) {
  auto storage = open_for_writing(o.store);
  std::string version = o.version;
  nlohmann::json marked_json = nlohmann::json::object();
  if (compatible) {
    // Shows what is marked (the diff against the code it joins) and refuses a default choice
    // that may not be the change meant: the newest recorded version is older than an edit that
    // no run has recorded yet, or than other code seen since.
    const auto mark = storage.compatible_preview(o.op, o.version);
    version = std::to_string(mark.version);
    marked_json = {{"joins", mark.joins}, {"diff", mark.diff}};
    const std::string which = "version " + version + " of op " + o.op;
    if (!mark.caution.empty()) {
      if (o.version.empty()) {
        std::cerr << "mandala: not marking " << which << " compatible by default: " << mark.caution << '\n'
                  << "  to mark it anyway, name it: mandala mark-compatible " << o.store << ' ' << o.op << ' '
                  << version << "\n  (`mandala versions " << o.store << ' ' << o.op
                  << "` lists the versions; run the op first to record its current code)\n"
                  << (mark.diff.empty() ? "its changes are marked compatible already\n" : "its changes:\n" + mark.diff);
        return exit_failure;
      }
      std::cerr << "note: " << mark.caution << '\n';
    }
    if (!mark.components.empty() && !o.json) {
      std::cout << which << " joins "
                << (mark.joins != 0 ? "version " + std::to_string(mark.joins) : std::string("the code before it"))
                << "; its changes:\n"
                << mark.diff;
      if (!confirm("Mark these changes compatible (calls of the earlier code are reused for it)?", o.yes)) {
        std::cout << "nothing marked\n";
        return exit_failure;
      }
    }
  } else if (version.empty()) {
    version = std::to_string(code_versions(storage, o.op).size());
  }
  const auto changed = compatible ? storage.mark_compatible(o.op, version) : storage.mark_new_version(o.op, version);
  const std::string what = compatible ? "compatible with the code before it" : "a new version";
  if (o.json) {
    nlohmann::json j{{"op", o.op}, {"version", version}, {"compatible", compatible}, {"components", changed}};
    j.update(marked_json);
    print_json(j);
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
                  "default the newest (mark-compatible refuses it when it may not be the change meant)");
  if (compatible) sub->add_flag("-y,--yes", o->yes, "Do not ask for confirmation on a terminal");
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
