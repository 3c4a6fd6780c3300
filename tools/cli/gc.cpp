// `mandala gc STORE`: removes values, refs and blob files that no call references.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  bool dry_run = false;
  bool yes = false;
  bool json = false;
};

nlohmann::json report_json(const CleanupReport& r) {
  return {{"values", r.values_removed}, {"bytes", r.bytes_freed}, {"blob_files", r.blob_files_removed}};
}

std::string describe(const CleanupReport& r) {
  return std::to_string(r.values_removed) + " value" + (r.values_removed == 1 ? "" : "s") + " (" +
         human_bytes(r.bytes_freed) + ") and " + std::to_string(r.blob_files_removed) + " blob file" +
         (r.blob_files_removed == 1 ? "" : "s");
}

int run(const Options& o) {
  CleanupReport preview;
  {
    auto storage = open_for_reading(o.store);  // the preview changes nothing
    Progress progress("looking for unreferenced values");
    preview = storage.cleanup_preview();
  }
  const bool nothing = preview.values_removed == 0 && preview.blob_files_removed == 0;
  if (o.dry_run || nothing) {
    if (o.json) print_json({{"dry_run", o.dry_run}, {"would_free", report_json(preview)}, {"freed", nullptr}});
    else if (nothing) std::cout << "nothing to remove: every value is used by a call\n";
    else std::cout << "would remove " << describe(preview) << " (dry run: nothing changed)\n";
    return exit_ok;
  }
  if (!confirm("Remove " + describe(preview) + " from " + o.store + "?", o.yes)) {
    if (o.json)
      print_json({{"dry_run", false}, {"would_free", report_json(preview)}, {"freed", nullptr}, {"cancelled", true}});
    else std::cout << "cancelled: nothing changed\n";
    return exit_failure;
  }
  CleanupReport freed;
  {
    auto storage = open_for_writing(o.store);
    Progress progress("removing unreferenced values");
    freed = storage.cleanup();
  }
  if (o.json) print_json({{"dry_run", false}, {"would_free", report_json(preview)}, {"freed", report_json(freed)}});
  else std::cout << "removed " << describe(freed) << '\n';
  return exit_ok;
}

}  // namespace

void add_gc(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("gc", "Remove values and blob files that no call references");
  add_store_arg(*sub, o->store);
  sub->add_flag("--dry-run", o->dry_run, "Only report what would be removed and freed");
  sub->add_flag("-y,--yes", o->yes, "Do not ask for confirmation on a terminal");
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
