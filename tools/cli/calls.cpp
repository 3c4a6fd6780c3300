// `mandala calls STORE OP`: a page of an op's calls with their input and output values.

#include <algorithm>
#include <iostream>
#include <set>

#include "cli.hpp"

namespace mandala::cli {
namespace {

constexpr std::size_t cell_chars = 40;   // text cells without --full
constexpr std::size_t json_items = 100;  // array items in JSON without --full

struct Options {
  std::string store;
  std::string op;
  std::optional<std::uint32_t> version;
  std::size_t limit = 20;
  std::size_t offset = 0;
  bool newest = false;
  bool full = false;
  bool json = false;
};

nlohmann::json refs_json(const std::vector<std::pair<std::string, AnyRef>>& refs, std::size_t max_items) {
  auto j = nlohmann::json::object();
  for (const auto& [name, ref] : refs)
    j[name] = {{"hid", ref.hid().hex()}, {"cid", ref.cid().hex()}, {"value", value_json(ref, max_items)}};
  return j;
}

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  CallQuery query;
  query.version = o.version;
  query.limit = o.limit;
  query.offset = o.offset;
  query.newest_first = o.newest;
  const auto calls = storage.find_calls(o.op, query);
  std::uint64_t total = 0;
  for (const auto& s : storage.ops())
    if (s.name == o.op && (!o.version || s.version == *o.version)) total += s.calls;

  if (o.json) {
    const std::size_t items = o.full ? SIZE_MAX : json_items;
    nlohmann::json j{{"op", o.op}, {"total", total}, {"offset", o.offset}, {"calls", nlohmann::json::array()}};
    for (const auto& c : calls)
      j["calls"].push_back({{"hid", c.hid.hex()},
                            {"cid", c.cid.hex()},
                            {"version", c.version},
                            {"created", iso_time(c.created)},
                            {"inputs", refs_json(c.inputs, items)},
                            {"outputs", refs_json(c.outputs, items)}});
    print_json(j);
    return exit_ok;
  }

  // Columns: the inputs (sorted) and outputs (in declared order) seen in this page.
  std::set<std::string> input_names;
  std::vector<std::string> output_names;
  std::set<std::uint32_t> versions;
  for (const auto& c : calls) {
    versions.insert(c.version);
    for (const auto& [name, _] : c.inputs) input_names.insert(name);
    for (const auto& [name, _] : c.outputs)
      if (std::find(output_names.begin(), output_names.end(), name) == output_names.end()) output_names.push_back(name);
  }
  const bool show_version = versions.size() > 1;
  std::vector<std::string> header{"call"};
  if (show_version) header.emplace_back("version");
  header.emplace_back("created");
  header.insert(header.end(), input_names.begin(), input_names.end());
  for (const auto& n : output_names) header.push_back("-> " + n);

  const std::size_t chars = o.full ? SIZE_MAX : cell_chars;
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : calls) {
    std::vector<std::string> row{short_id(c.hid)};
    if (show_version) row.push_back(std::to_string(c.version));
    row.push_back(iso_time(c.created));
    for (const auto& n : input_names) {
      auto ref = c.input(n);
      row.push_back(ref ? value_text(*ref, chars) : "");
    }
    for (const auto& n : output_names) {
      auto ref = c.output(n);
      row.push_back(ref ? value_text(*ref, chars) : "");
    }
    rows.push_back(std::move(row));
  }
  print_table(std::cout, header, rows);
  if (calls.size() < total)
    std::cout << dim("(" + std::to_string(calls.size()) + " of " + std::to_string(total) + " calls from #" +
                     std::to_string(o.offset + 1) + "; --limit and --offset show others)")
              << '\n';
  return exit_ok;
}

}  // namespace

void add_calls(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("calls", "A table of an op's calls with their input and output values");
  add_store_arg(*sub, o->store);
  sub->add_option("OP", o->op, "Op name")->required();
  sub->add_option("--version", o->version, "Only calls of this op version")
      ->check(whole_number(0, std::numeric_limits<std::uint32_t>::max()));
  sub->add_option("--limit", o->limit, "At most this many calls")->default_val(20)->check(whole_number(0, max_count));
  sub->add_option("--offset", o->offset, "Skip this many calls first")
      ->default_val(0)
      ->check(whole_number(0, max_count));
  sub->add_flag("--newest", o->newest, "Newest calls first (oldest first otherwise)");
  sub->add_flag("--full", o->full, "Whole values (text cells are cut to 40 characters, JSON arrays to 100 items)");
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
