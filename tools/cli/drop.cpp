// `mandala drop STORE ID...`: removes calls (and with --with-dependents everything computed
// from them); values stay until `mandala gc`.

#include <iostream>
#include <map>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  std::vector<std::string> ids;
  bool dependents = false;
  bool dry_run = false;
  bool yes = false;
  bool json = false;
};

nlohmann::json cleanup_json(const CleanupReport& r) {
  return {{"values", r.values_removed}, {"bytes", r.bytes_freed}, {"blob_files", r.blob_files_removed}};
}

std::vector<Id> resolve_calls(Storage& storage, const std::vector<std::string>& ids) {
  std::vector<Id> hids;
  for (const auto& text : ids) {
    const auto match = resolve_id(storage, text);
    if (match.kind == IdMatch::Kind::ref) {
      std::string hint = "it is a raw input; drop the calls that use it instead";
      if (auto ref = storage.ref(match.hid))
        if (auto creator = storage.creator_of(*ref)) hint = "its creator is call " + creator->hid.hex();
      throw Failure(match.hid.hex() + " is a ref, not a call (" + hint + ")");
    }
    hids.push_back(match.hid);
  }
  return hids;
}

int run(const Options& o) {
  const auto dependents = o.dependents ? Dependents::yes : Dependents::no;
  std::vector<Id> hids;
  std::vector<CallInfo> plan;
  {
    auto storage = open_for_reading(o.store);  // planning changes nothing
    hids = resolve_calls(storage, o.ids);
    plan = storage.calls_to_drop(hids, dependents);
  }
  std::map<std::pair<std::string, std::uint32_t>, std::size_t> per_op;
  for (const auto& c : plan) ++per_op[{c.op, c.version}];

  std::size_t dropped = 0;
  std::optional<CleanupReport> after;
  bool cancelled = false;
  if (!o.dry_run) {
    if (!o.json) std::cout << "dropping " << plan.size() << " call" << (plan.size() == 1 ? "" : "s") << '\n';
    if (confirm("Drop " + std::to_string(plan.size()) + " calls from " + o.store + "?", o.yes)) {
      auto storage = open_for_writing(o.store);
      dropped = storage.drop_calls(hids, dependents);
      after = storage.cleanup_preview();
    } else {
      cancelled = true;
    }
  }
  if (o.json) {
    nlohmann::json j{
        {"dry_run", o.dry_run}, {"cancelled", cancelled}, {"dropped", dropped}, {"calls", nlohmann::json::array()}};
    for (const auto& c : plan) j["calls"].push_back({{"hid", c.hid.hex()}, {"op", c.op}, {"version", c.version}});
    j["gc_would_free"] = after ? cleanup_json(*after) : nlohmann::json(nullptr);
    print_json(j);
    return cancelled ? exit_failure : exit_ok;
  }
  if (o.dry_run)
    std::cout << "would drop " << plan.size() << " call" << (plan.size() == 1 ? "" : "s")
              << " (dry run: nothing changed)\n";
  if (!per_op.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& [key, n] : per_op) rows.push_back({key.first, std::to_string(key.second), std::to_string(n)});
    print_table(std::cout, {"op", "version", "calls"}, rows);
  }
  if (cancelled) {
    std::cout << "cancelled: nothing changed\n";
    return exit_failure;
  }
  if (!o.dry_run) {
    std::cout << "dropped " << dropped << " call" << (dropped == 1 ? "" : "s") << '\n';
    if (after && after->values_removed > 0)
      std::cout << "'mandala gc " << o.store << "' would now free " << after->values_removed << " values ("
                << human_bytes(after->bytes_freed) << ", " << after->blob_files_removed << " blob files)\n";
  }
  return exit_ok;
}

}  // namespace

void add_drop(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("drop", "Remove calls by id (values stay until gc)");
  add_store_arg(*sub, o->store);
  sub->add_option("ID", o->ids, "Call ids (32 hex digits, or unique prefixes)")->required();
  sub->add_flag("--with-dependents", o->dependents, "Also remove every call computed from their outputs");
  sub->add_flag("--dry-run", o->dry_run, "Only report what would be removed");
  sub->add_flag("-y,--yes", o->yes, "Do not ask for confirmation on a terminal");
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
