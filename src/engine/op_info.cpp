// Validation of op declarations: every impossible declaration is an error at construction.

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "engine/collections.hpp"
#include "mandala/op.hpp"
#include "util/type_name.hpp"

namespace mandala::detail {
namespace {
using util::type_name;

[[noreturn]] void bad(const std::string& op, const std::string& what) {
  throw Error(Errc::invalid_argument, "op '" + op + "': " + what);
}
}  // namespace

std::shared_ptr<const OpInfo> make_op_info(std::string name, const std::vector<Param>& params, OpOptions options,
                                           std::size_t arity, std::size_t output_count) {
  auto info = std::make_shared<OpInfo>();
  if (name.empty()) throw Error(Errc::invalid_argument, "an op needs a non-empty name");
  if (is_structural(name))
    throw Error(Errc::invalid_argument,
                "op name '" + name + "' is reserved for the built-in collection ops; choose another name");
  if (params.size() != arity)
    bad(name, "the function takes " + std::to_string(arity) + " parameters but " + std::to_string(params.size()) +
                  " names were given; name every parameter, in order");
  std::set<std::string> seen;
  bool defaults_started = false;
  for (const auto& p : params) {
    if (p.name.empty()) bad(name, "a parameter name is empty");
    if (!seen.insert(p.name).second) bad(name, "parameter name '" + p.name + "' is used twice");
    const bool has_default = p.default_value.has_value();
    if (p.kind == ParamKind::new_arg_default && !has_default)
      bad(name, "new_arg '" + p.name + "' needs a default value");
    if (defaults_started && !has_default && p.kind != ParamKind::ignored)
      bad(name, "parameter '" + p.name + "' has no default but follows a parameter with one");
    defaults_started = defaults_started || has_default;
    info->inputs.push_back(p.name);
    info->inputs_formerly.push_back(p.former_names);
    for (const auto& old : p.former_names)
      if (old.empty() || old == p.name) bad(name, "parameter '" + p.name + "' has an empty or its own former name");
  }
  if (options.outputs.empty()) {
    for (std::size_t i = 0; i < output_count; ++i) options.outputs.push_back("output_" + std::to_string(i));
  } else if (options.outputs.size() != output_count) {
    bad(name, "the function returns " + std::to_string(output_count) + " outputs but " +
                  std::to_string(options.outputs.size()) + " output names were given");
  }
  std::set<std::string> out_seen;
  for (const auto& o : options.outputs) {
    if (o.empty()) bad(name, "an output name is empty");
    if (!out_seen.insert(o).second) bad(name, "output name '" + o + "' is used twice");
    if (seen.contains(o))
      bad(name, "output name '" + o + "' clashes with an input name" +
                    (options.outputs.size() == output_count && o.rfind("output_", 0) == 0
                         ? " (inputs named output_N need explicit output names)"
                         : ""));
  }
  for (const auto& [output, former] : options.output_formerly) {
    if (!out_seen.contains(output))
      bad(name, "output_formerly names '" + output +
                    "', which is not an output of the op; its outputs are named in "
                    "OpOptions::outputs");
    for (const auto& old : former)
      if (old.empty() || old == output) bad(name, "output '" + output + "' has an empty or its own former name");
  }
  for (const auto& old : options.formerly)
    if (old.empty() || old == name) bad(name, "OpOptions::formerly holds an empty name or the op's own name");
  for (const auto& o : options.outputs) {
    const auto it = options.output_formerly.find(o);
    info->outputs_formerly.push_back(it == options.output_formerly.end() ? std::vector<std::string>{} : it->second);
  }
  info->formerly = std::move(options.formerly);
  info->name = std::move(name);
  info->version = options.version;
  info->outputs = std::move(options.outputs);
  info->dependencies = std::move(options.depends_on);
  info->compute_once = options.compute_once;
  // Rounding per parameter: its own (rounded), else by name (rounding_of), else the op's.
  for (const auto& [param, rounding] : options.rounding_of)
    if (!seen.contains(param))
      bad(
          info->name, "rounding_of names '" + param + "', which is no parameter (its parameters: " + [&] {
            std::string names;
            for (const auto& p : params) names += (names.empty() ? "" : ", ") + p.name;
            return names;
          }() + ")");
  std::vector<Rounding> rounding;
  bool any = false;
  for (const auto& p : params) {
    auto it = options.rounding_of.find(p.name);
    rounding.push_back(p.rounding.active()               ? p.rounding
                       : it != options.rounding_of.end() ? it->second
                                                         : options.rounding);
    any = any || rounding.back().active();
  }
  if (any) info->rounding = std::move(rounding);
  // Transient outputs: all (transient), or by name (transient_outputs).
  for (const auto& o : options.transient_outputs)
    if (!out_seen.contains(o))
      bad(
          info->name, "transient_outputs names '" + o + "', which is not an output of the op (its outputs: " + [&] {
            std::string names;
            for (const auto& n : info->outputs) names += (names.empty() ? "" : ", ") + n;
            return names;
          }() + ")");
  if ((options.transient || !options.transient_outputs.empty()) && !info->outputs.empty()) {
    for (const auto& o : info->outputs)
      info->transient.push_back(options.transient ||
                                std::find(options.transient_outputs.begin(), options.transient_outputs.end(), o) !=
                                    options.transient_outputs.end());
    info->replay = std::make_shared<ReplayFn>();
  }
  return info;
}

void throw_transient_collection(const OpInfo& op, std::size_t output) {
  bad(op.name, "output '" + op.outputs.at(output) +
                   "' is a transparent collection (MList / MDict), which cannot be transient: its elements are "
                   "values of calls of their own; leave it out of OpOptions::transient_outputs");
}

void throw_not_replayable(const std::string& op, const std::string& param) {
  throw Error(Errc::invalid_argument,
              "op " + op + ": a transient output cannot be recomputed: argument '" + param +
                  "' of its call is not stored (an ignored argument or a value pointer) and has no default");
}

namespace {
struct ReplayRegistry {
  std::mutex mutex;
  std::map<std::pair<std::string, std::uint32_t>, std::weak_ptr<const OpInfo>, std::less<>> ops;
};
ReplayRegistry& replay_registry() {
  static ReplayRegistry* registry = new ReplayRegistry;  // never destroyed: used until exit
  return *registry;
}
}  // namespace

void note_replayable(const std::shared_ptr<const OpInfo>& op) {
  if (!op || !op->replay) return;
  auto& r = replay_registry();
  std::lock_guard lock(r.mutex);
  r.ops[std::make_pair(op->name, op->version)] = op;
}

std::shared_ptr<const OpInfo> replayable_op(const std::string& name, std::uint32_t version) {
  auto& r = replay_registry();
  std::lock_guard lock(r.mutex);
  const auto it = r.ops.find(std::make_pair(name, version));
  return it == r.ops.end() ? nullptr : it->second.lock();
}

void throw_bad_default(const OpInfo& op, std::size_t param, const std::type_info& given, const std::type_info& wanted) {
  bad(op.name, "the default of parameter '" + op.inputs.at(param) + "' is a " + type_name(given) +
                   " but the parameter takes a " + type_name(wanted) + "; pass a default of exactly that type");
}

void throw_missing_argument(const OpInfo& op, std::size_t param) {
  bad(op.name, "missing argument '" + op.inputs.at(param) + "' (it has no default)");
}

void throw_empty_argument(const OpInfo& op, std::size_t param) {
  bad(op.name, "argument '" + op.inputs.at(param) +
                   "' is an empty Ref (default-constructed); pass a value or a ref "
                   "returned by an op");
}

std::vector<std::byte> encode_pointer(const std::string& name) {
  Encoder e;
  e.pointer(name);
  return std::move(e).take();
}

}  // namespace mandala::detail
