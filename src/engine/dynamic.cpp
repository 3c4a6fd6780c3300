// Dynamic ops: declarations as data, values as encoded bytes, over the same call pipeline as
// typed ops (detail::memoized_call).

#include "mandala/dynamic.hpp"

#include <algorithm>

#include "codec/hash.hpp"
#include "engine/collections.hpp"

namespace mandala {
namespace {

std::vector<std::byte> encode_stored(const void* value) { return static_cast<const EncodedValue*>(value)->bytes(); }

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// The encoding of a ref's value, without the validation EncodedValue's constructor does (the
// bytes come from an encoder or from the store, which checks values against their ids).
std::vector<std::byte> ref_bytes(const detail::RefState& state) {
  std::shared_ptr<const detail::Elements> elements;
  {
    std::lock_guard lock(state.mutex);
    if (state.value && state.encode) return state.encode(state.value.get());
    elements = state.elements;
  }
  if (state.has_ids) {
    auto bytes = detail::load_value_bytes(state);
    if (auto core = state.storage.lock()) bytes = detail::materialize(*core, std::move(bytes));
    return bytes;
  }
  if (!elements)
    throw Error(Errc::invalid_argument, "a ref without ids must hold a value (or the elements of a collection)");
  // An in-memory collection: its elements' values, as an array or a map keyed by string.
  Encoder e;
  if (elements->kind == CollectionKind::list) {
    e.array_header(elements->items.size());
    for (const auto& item : elements->items) e.raw(ref_bytes(*item));
  } else {
    std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries;
    for (std::size_t i = 0; i < elements->items.size(); ++i)
      entries.emplace_back(encode_value(elements->keys.at(i)), ref_bytes(*elements->items[i]));
    e.map_sorted(std::move(entries));
  }
  return std::move(e).take();
}

std::shared_ptr<detail::RefState> value_state(EncodedValue value) {
  auto state = std::make_shared<detail::RefState>();
  state->value = std::make_shared<const EncodedValue>(std::move(value));
  state->type = &typeid(EncodedValue);
  state->encode = &encode_stored;
  return state;
}

// Orders the arguments by declared parameter and checks their names.
void bind(const detail::OpInfo& op, std::vector<DynamicArg>& args, std::vector<std::size_t>& positions) {
  positions.clear();
  for (const auto& a : args) {
    const auto it = std::find(op.inputs.begin(), op.inputs.end(), a.name);
    if (it == op.inputs.end())
      throw Error(Errc::invalid_argument,
                  "op '" + op.name + "' has no parameter '" + a.name + "' (its parameters: " + join(op.inputs) + ")");
    const auto pos = static_cast<std::size_t>(it - op.inputs.begin());
    if (std::find(positions.begin(), positions.end(), pos) != positions.end())
      throw Error(Errc::invalid_argument, "op '" + op.name + "': argument '" + a.name + "' is given twice");
    if (const auto* ref = std::get_if<AnyRef>(&a.value); ref != nullptr && !ref->valid())
      throw Error(Errc::invalid_argument, "op '" + op.name + "': argument '" + a.name +
                                              "' is an empty ref; pass a value or a ref returned by an op");
    positions.push_back(pos);
  }
  std::vector<std::size_t> order(args.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return positions[a] < positions[b]; });
  std::vector<DynamicArg> sorted;
  sorted.reserve(args.size());
  std::vector<std::size_t> sorted_positions;
  for (const auto i : order) {
    sorted.push_back(std::move(args[i]));
    sorted_positions.push_back(positions[i]);
  }
  args = std::move(sorted);
  positions = std::move(sorted_positions);
}

// Rounds the values of parameters that round (OpInfo::rounding): the function and the call see
// the rounded values. Refs are passed as they are.
void round_arguments(const detail::OpInfo& op, std::vector<DynamicArg>& args,
                     const std::vector<std::size_t>& positions) {
  if (op.rounding.empty()) return;
  for (std::size_t i = 0; i < args.size(); ++i) {
    auto* v = std::get_if<EncodedValue>(&args[i].value);
    if (v == nullptr || !op.rounding[positions[i]].active()) continue;
    if (auto bytes = round_encoded(v->bytes(), op.rounding[positions[i]])) *v = EncodedValue(std::move(*bytes));
  }
}

void check_count(const detail::OpInfo& op, std::size_t returned) {
  if (returned != op.outputs.size())
    throw Error(Errc::output_mismatch, "op " + op.name + " returned " + std::to_string(returned) +
                                           " outputs but declares " + std::to_string(op.outputs.size()) + " (" +
                                           join(op.outputs) + ")");
}

}  // namespace

bool detail::holds_encoded_value(const RefState& state) noexcept {
  return state.type != nullptr && *state.type == typeid(EncodedValue);
}

EncodedValue::EncodedValue(std::vector<std::byte> bytes) : m_bytes(std::move(bytes)) {
  [[maybe_unused]] const DecodedValue check{std::span<const std::byte>(m_bytes)};
}

Id EncodedValue::content_id() const { return codec::content_id(m_bytes); }

EncodedValue encoded_value(const AnyRef& ref) { return EncodedValue(ref_bytes(ref.state()), EncodedValue::Trusted{}); }

EncodedValue encoded_value(const DynamicArg& arg) {
  if (const auto* v = std::get_if<EncodedValue>(&arg.value)) return *v;
  return encoded_value(std::get<AnyRef>(arg.value));
}

DynamicOp::DynamicOp(std::string name, std::vector<std::string> inputs, std::size_t output_count, OpOptions options) {
  std::vector<Param> params(inputs.begin(), inputs.end());
  auto info = std::make_shared<detail::OpInfo>(
      *detail::make_op_info(std::move(name), params, std::move(options), params.size(), output_count));
  info->native_code = false;
  m_info = std::move(info);
}

DynamicOp::Result DynamicOp::operator()(std::vector<DynamicArg> args, const Function& fn) const {
  const detail::ContextEntry* ctx = detail::current_context();
  if (ctx != nullptr && ctx->mode == Mode::run && ctx->core) return call_in(ctx->core, std::move(args), fn);
  std::vector<std::size_t> positions;
  bind(*m_info, args, positions);
  round_arguments(*m_info, args, positions);
  auto values = fn(std::span<const DynamicArg>(args));
  check_count(*m_info, values.size());
  Result out;
  out.reserve(values.size());
  for (auto& v : values) out.emplace_back(value_state(std::move(v)));
  return out;
}

DynamicOp::Result DynamicOp::call_in(const std::shared_ptr<detail::StorageCore>& core, std::vector<DynamicArg> args,
                                     const Function& fn) const {
  if (!core) throw Error(Errc::invalid_argument, "op '" + m_info->name + "': call in a storage that was moved from");
  std::vector<std::size_t> positions;
  bind(*m_info, args, positions);
  round_arguments(*m_info, args, positions);
  std::vector<detail::InputSlot> inputs;
  inputs.reserve(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    detail::InputSlot slot;
    slot.name = &m_info->inputs[positions[i]];
    if (const auto* v = std::get_if<EncodedValue>(&args[i].value)) {
      slot.bytes = v->bytes();
    } else {
      const auto& ref = std::get<AnyRef>(args[i].value);
      slot.ref = ref.state_ptr();
      // A ref without ids counts as its value (the engine hashes the bytes).
      if (!ref.has_ids()) slot.bytes = ref_bytes(ref.state());
    }
    inputs.push_back(std::move(slot));
  }
  struct Exec final : detail::Executor {
    const detail::OpInfo* op = nullptr;
    const Function* fn = nullptr;
    std::span<const DynamicArg> args;
    std::vector<detail::OutputValue> run() override {
      auto values = (*fn)(args);
      check_count(*op, values.size());
      std::vector<detail::OutputValue> outs;
      outs.reserve(values.size());
      for (auto& v : values) {
        detail::OutputValue o;
        o.bytes = v.bytes();
        o.value = std::make_shared<const EncodedValue>(std::move(v));
        o.type = &typeid(EncodedValue);
        o.encode = &encode_stored;
        outs.push_back(std::move(o));
      }
      return outs;
    }
  } exec;
  exec.op = m_info.get();
  exec.fn = &fn;
  exec.args = args;
  auto states = detail::memoized_call(*core, core, *m_info, inputs, exec);
  Result out;
  out.reserve(states.size());
  for (auto& s : states) out.emplace_back(std::move(s));
  return out;
}

}  // namespace mandala
