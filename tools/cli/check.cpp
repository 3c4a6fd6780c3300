// `mandala check STORE`: the integrity check; exit code 1 when it finds any problem.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  bool json = false;
};

nlohmann::json findings_json(const std::vector<IntegrityProblem>& list) {
  auto j = nlohmann::json::array();
  for (const auto& p : list) j.push_back({{"kind", p.kind}, {"message", p.message}});
  return j;
}

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  IntegrityReport report;
  {
    Progress progress("checking " + o.store);
    report = storage.check_integrity([&](std::uint64_t done, std::uint64_t total) { progress.update(done, total); });
  }
  if (o.json) {
    print_json({{"ok", report.ok()},
                {"problems", findings_json(report.problems)},
                {"warnings", findings_json(report.warnings)},
                {"checked",
                 {{"ops", report.ops},
                  {"calls", report.calls},
                  {"io_rows", report.io_rows},
                  {"refs", report.refs},
                  {"values", report.values},
                  {"blob_files", report.blob_files},
                  {"unreferenced_values", report.unreferenced_values}}}});
    return report.ok() ? exit_ok : exit_failure;
  }
  std::cout << "checked " << report.ops << " ops, " << report.calls << " calls, " << report.refs << " refs, "
            << report.values << " values, " << report.blob_files << " blob files\n";
  for (const auto& p : report.problems) std::cout << "problem " << p.kind << ": " << p.message << '\n';
  for (const auto& w : report.warnings) std::cout << "warning " << w.kind << ": " << w.message << '\n';
  if (report.unreferenced_values > 0)
    std::cout << report.unreferenced_values << " values are used by no call ('mandala gc " << o.store
              << "' removes them)\n";
  if (report.ok()) {
    std::cout << "ok: no problems" << (report.warnings.empty() ? "" : " (warnings above are harmless)") << '\n';
    return exit_ok;
  }
  std::cout << report.problems.size() << " problem" << (report.problems.size() == 1 ? "" : "s") << " found\n";
  return exit_failure;
}

}  // namespace

void add_check(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("check", "Check the store's integrity; exit code 1 on any problem, each one named");
  add_store_arg(*sub, o->store);
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
