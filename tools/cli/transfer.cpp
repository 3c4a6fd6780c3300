// `mandala push LOCAL REMOTE` and `mandala pull REMOTE LOCAL [--op OP]...`: copy the calls,
// values, ops and code versions one store lacks from another (Storage::push).

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string from;
  std::string to;
  std::vector<std::string> ops;
  std::size_t batch = 2000;
  bool json = false;
};

int run(const Options& o, const char* verb) {
  // The source is read only; the destination is opened for writing and created when absent
  // (pulling into a new laptop store, pushing to a new shared database).
  auto source = open_for_reading(o.from);
  Storage destination(o.to);
  TransferOptions options;
  options.ops = o.ops;
  options.batch_calls = o.batch;
  TransferReport report;
  {
    Progress progress(std::string(verb) + " " + o.from + " -> " + o.to);
    options.progress = [&](std::uint64_t done, std::uint64_t total) { progress.update(done, total); };
    report = source.push(destination, options);
  }
  if (o.json) {
    print_json({{"calls_copied", report.calls_copied},
                {"calls_present", report.calls_present},
                {"values_copied", report.values_copied},
                {"value_bytes", report.value_bytes},
                {"versions_copied", report.versions_copied},
                {"ops", report.ops},
                {"conflicts", report.conflicts},
                {"skipped", report.skipped}});
  } else {
    std::cout << "copied " << report.calls_copied << " call" << (report.calls_copied == 1 ? "" : "s") << ", "
              << report.values_copied << " value" << (report.values_copied == 1 ? "" : "s") << " ("
              << human_bytes(report.value_bytes) << ") and " << report.versions_copied << " code version record"
              << (report.versions_copied == 1 ? "" : "s") << " of " << report.ops << " op"
              << (report.ops == 1 ? "" : "s") << "; " << report.calls_present << " call"
              << (report.calls_present == 1 ? " was" : "s were") << " there already\n";
    for (const auto& c : report.conflicts) std::cout << "conflict: " << c << '\n';
    for (const auto& s : report.skipped) std::cout << "skipped: " << s << '\n';
  }
  return report.conflicts.empty() && report.skipped.empty() ? exit_ok : exit_failure;
}

void add_common(CLI::App& sub, Options& o) {
  sub.add_option("--op", o.ops, "Copy only the calls and code versions of this op (repeatable)");
  sub.add_option("--batch", o.batch, "Calls per transaction at the destination")
      ->check(whole_number(1, 1'000'000))
      ->default_val(2000);
  add_json_flag(sub, o.json);
}

}  // namespace

void add_push(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "push", "Copy to REMOTE the calls, values and code versions of LOCAL it lacks (resumable; exit 1 on conflicts)");
  sub->add_option("LOCAL", o->from, "The store to copy from (a path or location)")->required();
  sub->add_option("REMOTE", o->to, "The store to copy into, created when absent (e.g. postgresql://host/db)")
      ->required();
  add_common(*sub, *o);
  sub->callback([&action, o] { action = [o] { return run(*o, "pushing"); }; });
}

void add_pull(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "pull", "Copy from REMOTE the calls, values and code versions LOCAL lacks (resumable; exit 1 on conflicts)");
  sub->add_option("REMOTE", o->from, "The store to copy from (e.g. postgresql://host/db)")->required();
  sub->add_option("LOCAL", o->to, "The store to copy into, created when absent")->required();
  add_common(*sub, *o);
  sub->callback([&action, o] { action = [o] { return run(*o, "pulling"); }; });
}

}  // namespace mandala::cli
