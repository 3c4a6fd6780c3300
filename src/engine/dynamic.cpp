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
// Arguments of an op with open inputs that name no declared parameter come after the declared
// ones, in the order given (positions past op.inputs).
void bind(const detail::OpInfo& op, std::vector<DynamicArg>& args, std::vector<std::size_t>& positions) {
  positions.clear();
  std::size_t extra = op.inputs.size();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    const auto it = std::find(op.inputs.begin(), op.inputs.end(), a.name);
    if (it == op.inputs.end() && !op.open_inputs)
      throw Error(Errc::invalid_argument,
                  "op '" + op.name + "' has no parameter '" + a.name + "' (its parameters: " + join(op.inputs) + ")");
    if (it == op.inputs.end()) {
      if (a.name.empty() || std::find(op.outputs.begin(), op.outputs.end(), a.name) != op.outputs.end())
        throw Error(Errc::invalid_argument, "op '" + op.name + "': an argument cannot be named '" + a.name +
                                                "' (empty, or the name of an output)");
      for (std::size_t k = 0; k < i; ++k)
        if (args[k].name == a.name)
          throw Error(Errc::invalid_argument, "op '" + op.name + "': argument '" + a.name + "' is given twice");
    }
    const auto pos = it == op.inputs.end() ? extra++ : static_cast<std::size_t>(it - op.inputs.begin());
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

namespace {
// The type of the value of a deferred_atom_ref: reached through its encode function only.
struct Deferred {};
}  // namespace

bool detail::holds_encoded_value(const RefState& state) noexcept {
  return state.type != nullptr && (*state.type == typeid(EncodedValue) || *state.type == typeid(Deferred));
}

EncodedValue::EncodedValue(std::vector<std::byte> bytes) : m_bytes(std::move(bytes)) {
  [[maybe_unused]] const DecodedValue check{std::span<const std::byte>(m_bytes)};
}

Id EncodedValue::content_id() const { return codec::content_id(m_bytes); }

EncodedValue encoded_value(const AnyRef& ref) { return EncodedValue(ref_bytes(ref.state()), EncodedValue::Trusted{}); }

AnyRef atom_ref(EncodedValue value) {
  const Id cid = value.content_id();
  auto state = value_state(std::move(value));
  state->cid = cid;
  state->hid = codec::atom_hid(cid);
  state->has_ids = true;
  return AnyRef(std::move(state));
}

AnyRef deferred_atom_ref(const Id& cid, std::shared_ptr<const void> value, detail::EncodeFn encode) {
  if (!value || encode == nullptr)
    throw Error(Errc::invalid_argument, "deferred_atom_ref needs a value and its encoder");
  auto state = std::make_shared<detail::RefState>();
  state->value = std::move(value);
  state->type = &typeid(Deferred);
  state->encode = encode;
  state->cid = cid;
  state->hid = codec::atom_hid(cid);
  state->has_ids = true;
  return AnyRef(std::move(state));
}

EncodedValue encoded_value(const DynamicArg& arg) {
  if (const auto* v = std::get_if<EncodedValue>(&arg.value)) return *v;
  return encoded_value(std::get<AnyRef>(arg.value));
}

DynamicOp::DynamicOp(std::string name, std::vector<std::string> inputs, std::size_t output_count, OpOptions options,
                     DynamicOptions dynamic) {
  std::vector<Param> params(inputs.begin(), inputs.end());
  auto info = std::make_shared<detail::OpInfo>(
      *detail::make_op_info(std::move(name), params, std::move(options), params.size(), output_count));
  info->native_code = false;
  info->open_inputs = dynamic.open_inputs;
  if (dynamic.code) {
    auto code = std::move(*dynamic.code);
    std::sort(code.begin(), code.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    codec::Hasher h("dynamic-op-code");
    h.field(std::uint64_t{code.size()});
    for (std::size_t i = 0; i < code.size(); ++i) {
      if (code[i].name.empty() || (i > 0 && code[i].name == code[i - 1].name))
        throw Error(Errc::invalid_argument, "op '" + info->name + "': code component names must be non-empty and " +
                                                "distinct ('" + code[i].name + "')");
      h.field(std::string_view(code[i].name)).field(code[i].content);
    }
    info->code_id = h.digest();
    info->code = std::make_shared<const std::vector<CodeComponent>>(std::move(code));
  }
  if (!dynamic.output_shapes.empty()) {
    if (dynamic.output_shapes.size() != output_count)
      throw Error(Errc::invalid_argument, "op '" + info->name + "': " + std::to_string(dynamic.output_shapes.size()) +
                                              " output shapes for " + std::to_string(output_count) + " outputs");
    auto nodes = std::make_shared<std::vector<std::unique_ptr<detail::ShapeSpec>>>();
    const auto convert = [&nodes](const auto& self, const DynamicShape* shape) -> const detail::ShapeSpec* {
      auto node = std::make_unique<detail::ShapeSpec>();
      if (shape != nullptr && shape->kind) {
        node->kind = shape->kind;
        node->element = self(self, shape->element.get());
      }
      nodes->push_back(std::move(node));
      return nodes->back().get();
    };
    for (const auto& shape : dynamic.output_shapes) m_shapes.push_back(convert(convert, &shape));
    m_shape_nodes = std::move(nodes);
  }
  if (!info->transient.empty()) {
    if (!dynamic.recompute)
      throw Error(Errc::invalid_argument, "op '" + info->name +
                                              "' has transient outputs but no DynamicOptions::recompute to "
                                              "recompute them: give the op's function there");
    for (std::size_t i = 0; i < dynamic.output_shapes.size(); ++i)
      if (info->transient[i] && dynamic.output_shapes[i].kind) detail::throw_transient_collection(*info, i);
    // A fresh slot: the declaration made above may be shared by nothing else.
    info->replay = std::make_shared<detail::ReplayFn>(
        [fn = std::move(dynamic.recompute), names = info->inputs](std::span<const detail::ReplayInput> given) {
          std::vector<DynamicArg> args;
          args.reserve(given.size());
          for (const auto& param : names)
            for (const auto& g : given)
              if (*g.name == param) args.push_back({param, AnyRef(g.ref)});
          for (const auto& g : given)
            if (std::find(names.begin(), names.end(), *g.name) == names.end()) args.push_back({*g.name, AnyRef(g.ref)});
          auto values = fn(std::span<const DynamicArg>(args));
          std::vector<detail::OutputValue> out(values.size());
          for (std::size_t i = 0; i < values.size(); ++i) out[i].bytes = values[i].bytes();
          return out;
        });
  }
  m_info = std::move(info);
  detail::note_replayable(m_info);
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

namespace {

// Binds the arguments and makes the memoized call; `produce(args, pieces)` computes a new call's
// outputs (setting pieces[i] for a collection output i). Collection outputs are then given their
// element refs (`shapes`: one per output, or empty when every output is plain).
template <class Produce>
DynamicOp::Result call_memoized(const std::shared_ptr<const detail::OpInfo>& info,
                                const std::vector<const detail::ShapeSpec*>& shapes,
                                const std::shared_ptr<detail::StorageCore>& core, std::vector<DynamicArg> args,
                                const Produce& produce) {
  if (!core) throw Error(Errc::invalid_argument, "op '" + info->name + "': call in a storage that was moved from");
  std::vector<std::size_t> positions;
  bind(*info, args, positions);
  round_arguments(*info, args, positions);
  std::vector<detail::InputSlot> inputs;
  inputs.reserve(args.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    detail::InputSlot slot;
    slot.name = positions[i] < info->inputs.size() ? &info->inputs[positions[i]] : &args[i].name;
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
    const Produce* produce = nullptr;
    std::span<const DynamicArg> args;
    std::vector<std::unique_ptr<detail::Piece>> pieces;
    std::vector<detail::OutputValue> run() override { return (*produce)(args, pieces); }
  } exec;
  exec.produce = &produce;
  exec.args = args;
  auto states = detail::memoized_call(*core, core, *info, inputs, exec);
  for (std::size_t i = 0; i < shapes.size() && i < states.size(); ++i)
    if (shapes[i]->kind)
      detail::destructure(*core, core, states[i], *shapes[i], i < exec.pieces.size() ? exec.pieces[i].get() : nullptr,
                          exec.reused_by_content);
  DynamicOp::Result out;
  out.reserve(states.size());
  for (auto& s : states) out.emplace_back(std::move(s));
  return out;
}

detail::OutputValue output_of(EncodedValue v) {
  detail::OutputValue o;
  o.bytes = v.bytes();
  o.value = std::make_shared<const EncodedValue>(std::move(v));
  o.type = &typeid(EncodedValue);
  o.encode = &encode_stored;
  return o;
}

const char* kind_name(CollectionKind kind) { return kind == CollectionKind::list ? "list" : "dict"; }

// The piece of one structured output value of shape `spec`.
detail::Piece piece_of_value(DynamicValue& v, const detail::ShapeSpec& spec, const std::string& what) {
  detail::Piece p;
  if (!spec.kind) {
    if (!v.value) throw Error(Errc::output_mismatch, what + " is a plain value, but a collection was given for it");
    p.bytes = v.value->bytes();
    return p;
  }
  if (v.value || v.kind != spec.kind)
    throw Error(Errc::output_mismatch,
                what + " is a transparent " + kind_name(*spec.kind) + ", but " +
                    (v.kind ? std::string("a ") + kind_name(*v.kind) : std::string("a plain value")) +
                    " was given for it");
  if (*spec.kind == CollectionKind::dict && v.keys.size() != v.items.size())
    throw Error(Errc::invalid_argument, what + ": a dict needs one key per item");
  p.kind = spec.kind;
  p.keys = std::move(v.keys);
  p.children.reserve(v.items.size());
  for (std::size_t i = 0; i < v.items.size(); ++i)
    p.children.push_back(piece_of_value(
        v.items[i], *spec.element,
        what + (*spec.kind == CollectionKind::dict ? "['" + p.keys[i] + "']" : "[" + std::to_string(i) + "]")));
  return p;
}

}  // namespace

DynamicOp::Result DynamicOp::call_in(const std::shared_ptr<detail::StorageCore>& core, std::vector<DynamicArg> args,
                                     const Function& fn) const {
  if (std::any_of(m_shapes.begin(), m_shapes.end(), [](const auto* s) { return s->kind.has_value(); }))
    throw Error(Errc::invalid_argument,
                "op '" + m_info->name + "' has collection outputs: call it with call_structured");
  const auto produce = [&](std::span<const DynamicArg> a, std::vector<std::unique_ptr<detail::Piece>>&) {
    auto values = fn(a);
    check_count(*m_info, values.size());
    std::vector<detail::OutputValue> outs;
    outs.reserve(values.size());
    for (auto& v : values) outs.push_back(output_of(std::move(v)));
    return outs;
  };
  return call_memoized(m_info, m_shapes, core, std::move(args), produce);
}

DynamicOp::Result DynamicOp::call_structured(const std::shared_ptr<detail::StorageCore>& core,
                                             std::vector<DynamicArg> args, const StructuredFunction& fn) const {
  const auto produce = [&](std::span<const DynamicArg> a, std::vector<std::unique_ptr<detail::Piece>>& pieces) {
    auto values = fn(a);
    check_count(*m_info, values.size());
    std::vector<detail::OutputValue> outs;
    outs.reserve(values.size());
    pieces.clear();
    pieces.resize(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const detail::ShapeSpec* shape = i < m_shapes.size() ? m_shapes[i] : nullptr;
      const std::string what = "output '" + m_info->outputs[i] + "' of op '" + m_info->name + "'";
      if (shape == nullptr || !shape->kind) {
        if (!values[i].value)
          throw Error(Errc::output_mismatch, what + " is a plain value, but a collection was given for it");
        outs.push_back(output_of(std::move(*values[i].value)));
        continue;
      }
      // Stored as its shape; the elements are stored by the getitem calls that follow.
      auto piece = std::make_unique<detail::Piece>(piece_of_value(values[i], *shape, what));
      detail::seal_piece(*piece);
      detail::OutputValue o;
      o.bytes = piece->bytes;
      o.cid = piece->cid;
      pieces[i] = std::move(piece);
      outs.push_back(std::move(o));
    }
    return outs;
  };
  return call_memoized(m_info, m_shapes, core, std::move(args), produce);
}

}  // namespace mandala
