// `mandala`: inspect, query, draw and maintain a storage from the shell. Each subcommand lives in
// its own source file; this file lists them once and maps errors to exit codes.

#include <iostream>
#include <string>

#include "cli.hpp"

namespace mandala::cli {
void add_info(CLI::App& app, Action& action);
void add_ops(CLI::App& app, Action& action);
void add_calls(CLI::App& app, Action& action);
void add_show(CLI::App& app, Action& action);
void add_cf(CLI::App& app, Action& action);
void add_graph(CLI::App& app, Action& action);
void add_drop(CLI::App& app, Action& action);
void add_gc(CLI::App& app, Action& action);
void add_check(CLI::App& app, Action& action);
void add_versions(CLI::App& app, Action& action);
void add_diff(CLI::App& app, Action& action);
void add_mark_compatible(CLI::App& app, Action& action);
void add_mark_new_version(CLI::App& app, Action& action);
void add_push(CLI::App& app, Action& action);
void add_pull(CLI::App& app, Action& action);
void add_rename_op(CLI::App& app, Action& action);
void add_rename_input(CLI::App& app, Action& action);
void add_rename_output(CLI::App& app, Action& action);

/// Every subcommand, in the order `mandala --help` lists them.
constexpr Registration subcommands[] = {
    add_info,
    add_ops,
    add_calls,
    add_show,
    add_cf,
    add_graph,
    add_drop,
    add_gc,
    add_check,
    add_versions,
    add_diff,
    add_mark_compatible,
    add_mark_new_version,
    add_rename_op,
    add_rename_input,
    add_rename_output,
    add_push,
    add_pull,
};
}  // namespace mandala::cli

namespace {
/// One line: SQLite and library messages never need more.
std::string one_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return text;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace mandala::cli;
  CLI::App app{"Inspect, query, draw and maintain a mandala storage.", "mandala"};
  app.set_version_flag("--version", "mandala 0.1.0");
  app.require_subcommand(1);
  app.fallthrough(false);
  Action action;
  for (auto add : subcommands) add(app, action);
  app.footer(
      "Exit codes: 0 ok, 1 failure (including problems found by check), 2 usage error.\n"
      "Read commands open the store read-only and never change its files.");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string message = one_line(e.what());
    if (argc > 1 && argv[1][0] != '-' && app.get_subcommands({}).size() > 0) {
      bool known = false;
      std::string names;
      for (const auto* sub : app.get_subcommands({})) {
        known = known || sub->get_name() == argv[1];
        names += (names.empty() ? "" : ", ") + sub->get_name();
      }
      if (!known) message = "unknown command '" + std::string(argv[1]) + "' (commands: " + names + ")";
    }
    std::cerr << "mandala: " << message << " (run 'mandala --help' or 'mandala COMMAND --help')\n";
    return exit_usage;
  }
  if (!action) return exit_usage;
  try {
    return action();
  } catch (const UsageError& e) {
    std::cerr << "mandala: " << one_line(e.what()) << '\n';
    return exit_usage;
  } catch (const std::exception& e) {
    std::cerr << "mandala: " << one_line(e.what()) << '\n';
    return exit_failure;
  }
}
