// `mandala show STORE ID`: a call or a ref by id or unique id prefix, with values, creator and
// consumers, and timestamps.

#include <iostream>

#include "cli.hpp"

namespace mandala::cli {
namespace {

constexpr std::size_t value_chars = 200;  // without --full
constexpr std::size_t json_items = 100;

struct Options {
  std::string store;
  std::string id;
  bool full = false;
  bool json = false;
};

/// Where a ref comes from: "op(...) call <id> (output name)" or "raw input".
std::string name_of_output(const CallInfo& call, const AnyRef& ref) {
  for (const auto& [name, r] : call.outputs)
    if (r == ref) return name;
  return "?";
}
std::string name_of_input(const CallInfo& call, const AnyRef& ref) {
  for (const auto& [name, r] : call.inputs)
    if (r == ref) return name;
  return "?";
}

nlohmann::json call_head_json(const CallInfo& c) {
  return {{"hid", c.hid.hex()}, {"op", c.op}, {"version", c.version}, {"created", iso_time(c.created)}};
}

int show_call(Storage& storage, const Id& hid, const Options& o) {
  const auto call = storage.call_by_hid(hid);
  if (!call) throw Failure("call " + hid.hex() + " vanished while reading");
  const std::size_t items = o.full ? SIZE_MAX : json_items;
  const std::size_t chars = o.full ? SIZE_MAX : value_chars;
  if (o.json) {
    nlohmann::json j = call_head_json(*call);
    j["kind"] = "call";
    j["cid"] = call->cid.hex();
    j["inputs"] = nlohmann::json::array();
    for (const auto& [name, ref] : call->inputs) {
      auto creator = storage.creator_of(ref);
      j["inputs"].push_back({{"name", name},
                             {"hid", ref.hid().hex()},
                             {"cid", ref.cid().hex()},
                             {"value", value_json(ref, items)},
                             {"creator", creator ? call_head_json(*creator) : nlohmann::json(nullptr)}});
    }
    j["outputs"] = nlohmann::json::array();
    for (const auto& [name, ref] : call->outputs) {
      auto consumers = nlohmann::json::array();
      for (const auto& c : storage.consumers_of(ref)) consumers.push_back(call_head_json(c));
      j["outputs"].push_back({{"name", name},
                              {"hid", ref.hid().hex()},
                              {"cid", ref.cid().hex()},
                              {"value", value_json(ref, items)},
                              {"consumers", consumers}});
    }
    print_json(j);
    return exit_ok;
  }
  auto& out = std::cout;
  out << bold("call") << "      " << call->hid.hex() << '\n';
  out << bold("op") << "        " << call->op << " (version " << call->version << ")\n";
  out << bold("content") << "   " << call->cid.hex() << '\n';
  out << bold("created") << "   " << iso_time(call->created) << '\n';
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, ref] : call->inputs) {
    auto creator = storage.creator_of(ref);
    rows.push_back({name, value_text(ref, chars), short_id(ref.hid()),
                    creator ? creator->op + " " + short_id(creator->hid) : "(raw input)"});
  }
  out << '\n';
  if (rows.empty()) out << "(no inputs)\n";
  else print_table(out, {"input", "value", "ref", "created by"}, rows);
  rows.clear();
  for (const auto& [name, ref] : call->outputs) {
    const auto consumers = storage.consumers_of(ref);
    std::string used;
    for (std::size_t i = 0; i < consumers.size() && i < 3; ++i)
      used += (i ? ", " : "") + consumers[i].op + " " + short_id(consumers[i].hid);
    if (consumers.size() > 3) used += ", ... (" + std::to_string(consumers.size()) + " calls)";
    rows.push_back({name, value_text(ref, chars), short_id(ref.hid()), used.empty() ? "-" : used});
  }
  out << '\n';
  if (rows.empty()) out << "(no outputs)\n";
  else print_table(out, {"output", "value", "ref", "used by"}, rows);
  return exit_ok;
}

int show_ref(Storage& storage, const Id& hid, const Options& o) {
  const auto ref = storage.ref(hid);
  if (!ref) throw Failure("ref " + hid.hex() + " vanished while reading");
  const auto creator = storage.creator_of(*ref);
  const auto consumers = storage.consumers_of(*ref);
  if (o.json) {
    nlohmann::json j{{"kind", "ref"},           {"hid", ref->hid().hex()},
                     {"cid", ref->cid().hex()}, {"value", value_json(*ref, o.full ? SIZE_MAX : json_items)},
                     {"creator", nullptr},      {"consumers", nlohmann::json::array()}};
    if (creator) {
      j["creator"] = call_head_json(*creator);
      j["creator"]["output"] = name_of_output(*creator, *ref);
    }
    for (const auto& c : consumers) {
      auto cj = call_head_json(c);
      cj["input"] = name_of_input(c, *ref);
      j["consumers"].push_back(cj);
    }
    print_json(j);
    return exit_ok;
  }
  auto& out = std::cout;
  out << bold("ref") << "         " << ref->hid().hex() << '\n';
  out << bold("content") << "     " << ref->cid().hex() << '\n';
  out << bold("value") << "       " << value_text(*ref, o.full ? SIZE_MAX : value_chars) << '\n';
  out << bold("created by") << "  ";
  if (creator)
    out << creator->op << " (version " << creator->version << ") call " << creator->hid.hex() << ", output "
        << name_of_output(*creator, *ref) << ", " << iso_time(creator->created) << '\n';
  else out << "(raw input: no call created it)\n";
  out << '\n';
  if (consumers.empty()) {
    out << "(no call used it)\n";
    return exit_ok;
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : consumers)
    rows.push_back({c.op, std::to_string(c.version), short_id(c.hid), name_of_input(c, *ref), iso_time(c.created)});
  print_table(out, {"used by", "version", "call", "as input", "created"}, rows);
  return exit_ok;
}

int run(const Options& o) {
  auto storage = open_for_reading(o.store);
  const auto match = resolve_id(storage, o.id);
  return match.kind == IdMatch::Kind::call ? show_call(storage, match.hid, o) : show_ref(storage, match.hid, o);
}

}  // namespace

void add_show(CLI::App& app, Action& action) {
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand("show", "A call or ref by id or unique id prefix: values, creator, consumers, times");
  add_store_arg(*sub, o->store);
  sub->add_option("ID", o->id, "History id of a call or ref (32 hex digits, or a unique prefix)")->required();
  sub->add_flag("--full", o->full, "Whole values (cut to 200 characters, JSON arrays to 100 items otherwise)");
  add_json_flag(*sub, o->json);
  sub->callback([&action, o] { action = [o] { return run(*o); }; });
}

}  // namespace mandala::cli
