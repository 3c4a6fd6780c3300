// `mandala info STORE`: schema, counts, sizes, and the largest ops by calls and by bytes.

#include <algorithm>
#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

struct Options {
  std::string store;
  bool json = false;
  std::size_t top = 5;
};

std::vector<OpSummary> largest(std::vector<OpSummary> ops, std::size_t top, std::uint64_t OpSummary::*field) {
  std::stable_sort(ops.begin(), ops.end(), [&](const OpSummary& a, const OpSummary& b) { return a.*field > b.*field; });
  if (ops.size() > top) ops.resize(top);
  return ops;
}

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  const auto info = storage.info();
  const auto by_calls = largest(info.ops, o.top, &OpSummary::calls);
  const auto by_bytes = largest(info.ops, o.top, &OpSummary::output_bytes);
  if (o.json) {
    nlohmann::json j{{"path", info.path.string()},
                     {"schema_version", info.schema_version},
                     {"created", info.created ? nlohmann::json(iso_time(*info.created)) : nlohmann::json(nullptr)},
                     {"ops", info.stats.ops},
                     {"calls", info.stats.calls},
                     {"values", info.stats.values},
                     {"refs", info.stats.refs},
                     {"value_bytes", info.stats.value_bytes},
                     {"database_bytes", info.database_bytes},
                     {"blob_files", info.stats.blob_files},
                     {"blob_file_bytes", info.blob_file_bytes}};
    for (const auto& [key, list] :
         {std::pair{"largest_by_calls", &by_calls}, std::pair{"largest_by_bytes", &by_bytes}}) {
      j[key] = nlohmann::json::array();
      for (const auto& op : *list) j[key].push_back(op_json(op));
    }
    print_json(j);
    return exit_ok;
  }
  auto& out = std::cout;
  out << bold("store") << "        " << info.path.string() << '\n';
  out << bold("schema") << "       version " << info.schema_version;
  if (info.created) out << ", created " << iso_time(*info.created);
  out << '\n';
  out << bold("ops") << "          " << info.stats.ops << '\n';
  out << bold("calls") << "        " << info.stats.calls << '\n';
  out << bold("values") << "       " << info.stats.values << " (" << human_bytes(info.stats.value_bytes)
      << " encoded)\n";
  out << bold("refs") << "         " << info.stats.refs << '\n';
  out << bold("database") << "     " << human_bytes(info.database_bytes) << '\n';
  out << bold("blob files") << "   " << info.stats.blob_files << " (" << human_bytes(info.blob_file_bytes) << ")\n";
  auto table = [&](const char* title, const std::vector<OpSummary>& ops) {
    out << '\n' << title << '\n';
    if (ops.empty()) {
      out << "(no ops)\n";
      return;
    }
    std::vector<std::vector<std::string>> rows;
    for (const auto& op : ops)
      rows.push_back({op.name, std::to_string(op.version), std::to_string(op.calls), human_bytes(op.output_bytes)});
    print_table(out, {"op", "version", "calls", "output bytes"}, rows);
  };
  table("largest ops by calls", by_calls);
  table("largest ops by bytes", by_bytes);
  return exit_ok;
}

}  // namespace

void add_info(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("info", "Schema version, counts, sizes, and the largest ops by calls and by bytes");
  add_store_arg(*sub, o->store);
  add_json_flag(*sub, o->json);
  sub->add_option("--top", o->top, "How many ops each ranking lists")
      ->default_val(5)
      ->check(whole_number(1, max_count));
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
