// Transparent collections: lists and dicts stored element by element. A collection's stored
// value is its shape (ext type 3: element content ids); its elements are values of their own.
// Building one from elements records a __make_list__ / __make_dict__ call whose inputs are the
// elements; an op returning one records a __list_getitem__ / __dict_getitem__ call per element,
// which gives the element its history. Both are ordinary calls through StorageCore::call.

#include <algorithm>
#include <charconv>
#include <numeric>

#include "codec/hash.hpp"
#include "codec/wire.hpp"
#include "engine/collections.hpp"
#include "engine/engine.hpp"

namespace mandala::detail {
namespace {

// Structural calls are computed by every maker (their results are at hand: nothing to wait for).
const OpInfo& make_op(CollectionKind kind) {
  static const OpInfo list{std::string(structural::make_list), 0, {"*elts"}, {"list"}, {}, false, true, {}, {}, {}};
  static const OpInfo dict{std::string(structural::make_dict), 0, {"**items"}, {"dict"}, {}, false, true, {}, {}, {}};
  return kind == CollectionKind::list ? list : dict;
}

const OpInfo& getitem_op(CollectionKind kind) {
  static const OpInfo list{
      std::string(structural::list_getitem), 0, {"list", "i"}, {"list_item"}, {}, false, true, {}, {}, {}};
  static const OpInfo dict{
      std::string(structural::dict_getitem), 0, {"dict", "key"}, {"dict_value"}, {}, false, true, {}, {}, {}};
  return kind == CollectionKind::list ? list : dict;
}

std::string_view kind_name(CollectionKind kind) { return kind == CollectionKind::list ? "list" : "dict"; }

std::vector<std::byte> index_bytes(CollectionKind kind, std::size_t i, const std::string& key) {
  return kind == CollectionKind::list ? encode_value(static_cast<std::int64_t>(i)) : encode_value(key);
}

/// Returns an output that is already encoded.
class Ready final : public Executor {
 public:
  explicit Ready(OutputValue value) : m_value(std::move(value)) {}
  std::vector<OutputValue> run() override {
    std::vector<OutputValue> out;
    out.push_back(std::move(m_value));
    return out;
  }

 private:
  OutputValue m_value;
};

/// Returns a stored value, loaded only when the call has to run.
class Stored final : public Executor {
 public:
  Stored(StorageCore& core, const Id& cid) : m_core(core), m_cid(cid) {}
  std::vector<OutputValue> run() override {
    OutputValue v;
    v.bytes = m_core.load_value(m_cid);
    v.cid = m_cid;
    std::vector<OutputValue> out;
    out.push_back(std::move(v));
    return out;
  }

 private:
  StorageCore& m_core;
  Id m_cid;
};

std::shared_ptr<RefState> atom_state(const std::shared_ptr<StorageCore>& self, const Id& cid) {
  auto s = StorageCore::lazy_ref(self, codec::atom_hid(cid), cid);
  return s;
}

/// The shape of a stored collection; Errc::decode when the value is something else.
CollectionView shape_of(const DecodedValue& decoded, const RefState& state, CollectionKind kind) {
  const ValueView root = decoded.root();
  if (root.kind() != Kind::collection)
    throw Error(Errc::decode, "ref " + state.hid.hex() + " holds a plain value (" +
                                  std::string(to_string(root.kind())) + "), not a transparent " +
                                  std::string(kind_name(kind)) +
                                  "; it was stored by an op whose parameter or result is not an MList/MDict");
  CollectionView view = root.as_collection();
  if (view.kind != kind)
    throw Error(Errc::decode, "ref " + state.hid.hex() + " holds a transparent " + std::string(kind_name(view.kind)) +
                                  ", not a " + std::string(kind_name(kind)));
  return view;
}

std::optional<std::size_t> elts_index(std::string_view name) {
  constexpr std::string_view prefix = "elts_";
  if (name.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::size_t i = 0;
  const char* first = name.data() + prefix.size();
  const char* last = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(first, last, i);
  if (ec != std::errc() || ptr != last) return std::nullopt;
  return i;
}

}  // namespace

Id element_hid(CollectionKind kind, const Id& collection_hid, std::size_t index, const std::string& key) {
  const Id index_hid = codec::atom_hid(codec::content_id(index_bytes(kind, index, key)));
  const auto& op = getitem_op(kind);
  const Id call = codec::call_id(op.name, op.version, {{op.inputs[0], collection_hid}, {op.inputs[1], index_hid}});
  return codec::output_hid(call, op.outputs[0]);
}

bool is_structural(std::string_view op) {
  return op == structural::make_list || op == structural::make_dict || op == structural::list_getitem ||
         op == structural::dict_getitem;
}

void seal_piece(Piece& piece) {
  if (!piece.kind) {
    if (piece.ref && piece.ref->has_ids) {
      piece.cid = piece.ref->cid;
      return;
    }
    if (piece.ref) {
      std::lock_guard lock(piece.ref->mutex);
      if (!piece.ref->value || !piece.ref->encode)
        throw Error(Errc::invalid_argument, "an element ref has neither a value nor ids");
      piece.bytes = piece.ref->encode(piece.ref->value.get());
    }
    piece.cid = codec::content_id(piece.bytes);
    return;
  }
  std::vector<Id> cids;
  cids.reserve(piece.children.size());
  for (auto& child : piece.children) {
    seal_piece(child);
    cids.push_back(child.cid);
  }
  Encoder e;
  e.collection(*piece.kind, piece.keys, cids);
  piece.bytes = std::move(e).take();
  piece.cid = codec::content_id(piece.bytes);
}

std::shared_ptr<RefState> build_collection(StorageCore& core, const std::shared_ptr<StorageCore>& self, Piece& piece) {
  const CollectionKind kind = *piece.kind;
  const std::size_t n = piece.children.size();
  if (kind == CollectionKind::dict && piece.keys.size() != n)
    throw Error(Errc::invalid_argument, "a dict needs one key per value");
  // Dict entries in key order (the inputs of __make_dict__ are named by key).
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (kind == CollectionKind::dict) {
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return piece.keys[a] < piece.keys[b]; });
    for (std::size_t j = 1; j < n; ++j)
      if (piece.keys[order[j]] == piece.keys[order[j - 1]])
        throw Error(Errc::invalid_argument, "dict key '" + piece.keys[order[j]] + "' appears twice");
  }
  auto elements = std::make_shared<Elements>();
  elements->kind = kind;
  std::vector<std::string> names(n);
  std::vector<InputSlot> slots(n);
  std::vector<Id> cids(n);
  for (std::size_t j = 0; j < n; ++j) {
    Piece& child = piece.children[order[j]];
    names[j] = kind == CollectionKind::list ? "elts_" + std::to_string(j) : piece.keys[order[j]];
    std::shared_ptr<RefState> state;
    if (child.kind) {
      state = build_collection(core, self, child);
    } else if (child.ref && child.ref->has_ids) {
      state = child.ref;
    } else {
      seal_piece(child);  // an atom: hash once here; the engine stores these bytes
      state = atom_state(self, child.cid);
      if (child.ref) {
        std::lock_guard lock(child.ref->mutex);
        state->value = child.ref->value;
        state->type = child.ref->type;
        state->encode = child.ref->encode;
      }
      slots[j].bytes = std::move(child.bytes);
    }
    slots[j].name = &names[j];
    slots[j].ref = state;
    cids[j] = state->cid;
    if (kind == CollectionKind::dict) elements->keys.push_back(names[j]);
    elements->items.push_back(std::move(state));
  }
  OutputValue shape;
  Encoder e;
  e.collection(kind, elements->keys, cids);
  shape.bytes = std::move(e).take();
  shape.cid = codec::content_id(shape.bytes);
  Ready exec(std::move(shape));
  auto outs = core.call(self, make_op(kind), slots, exec);
  auto& out = outs.at(0);
  std::lock_guard lock(out->mutex);
  out->elements = std::move(elements);
  return out;
}

void destructure(StorageCore& core, const std::shared_ptr<StorageCore>& self, const std::shared_ptr<RefState>& out,
                 const ShapeSpec& spec, Piece* computed, bool new_history) {
  if (!spec.kind) return;
  const CollectionKind kind = *spec.kind;
  if (!computed && !new_history) {
    // The call was stored with this history: its element calls were recorded with it.
    out->elements_by_getitem = true;
    return;
  }
  std::vector<std::string> keys;
  std::vector<Id> cids;
  std::vector<std::size_t> order;
  if (computed) {
    order.resize(computed->children.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    if (kind == CollectionKind::dict)
      std::sort(order.begin(), order.end(),
                [&](std::size_t a, std::size_t b) { return computed->keys[a] < computed->keys[b]; });
    for (std::size_t i : order) {
      if (kind == CollectionKind::dict) keys.push_back(computed->keys[i]);
      cids.push_back(computed->children[i].cid);
    }
  } else {
    DecodedValue decoded(core.load_value(out->cid));
    const CollectionView view = shape_of(decoded, *out, kind);
    keys.assign(view.keys.begin(), view.keys.end());
    cids = view.cids;
  }
  const auto& op = getitem_op(kind);
  auto elements = std::make_shared<Elements>();
  elements->kind = kind;
  elements->keys = keys;
  for (std::size_t i = 0; i < cids.size(); ++i) {
    std::vector<InputSlot> slots(2);
    slots[0].name = &op.inputs[0];
    slots[0].ref = out;
    slots[1].name = &op.inputs[1];
    slots[1].bytes = index_bytes(kind, i, kind == CollectionKind::dict ? keys[i] : std::string());
    Piece* child = computed ? &computed->children[order[i]] : nullptr;
    std::shared_ptr<RefState> item;
    if (child) {
      OutputValue v;
      v.bytes = std::move(child->bytes);
      v.cid = child->cid;
      Ready exec(std::move(v));
      item = core.call(self, op, slots, exec).at(0);
    } else {
      Stored exec(core, cids[i]);
      item = core.call(self, op, slots, exec).at(0);
    }
    if (spec.element->kind) destructure(core, self, item, *spec.element, child, true);
    elements->items.push_back(std::move(item));
  }
  std::lock_guard lock(out->mutex);
  out->elements = std::move(elements);
}

std::shared_ptr<const Elements> collection_elements(const std::shared_ptr<StorageCore>& core, const RefState& state,
                                                    CollectionKind kind) {
  DecodedValue decoded(core->load_value(state.cid));
  const CollectionView view = shape_of(decoded, state, kind);
  const std::size_t n = view.cids.size();
  std::vector<std::optional<Id>> hids(n);
  bool by_getitem = state.elements_by_getitem;
  if (!by_getitem) {
    // A collection built from elements has them as the inputs of its __make_list__ /
    // __make_dict__ creator; any other collection got them from getitem calls.
    const Id hid = state.hid;
    const auto creators = core->creators_of_many(std::span<const Id>(&hid, 1));
    by_getitem = creators.empty() || creators.front().op != make_op(kind).name;
    if (!by_getitem) {
      for (const auto& in : creators.front().inputs) {
        if (kind == CollectionKind::list) {
          if (auto i = elts_index(in.name); i && *i < n) hids[*i] = in.hid;
        } else {
          auto k = std::lower_bound(view.keys.begin(), view.keys.end(), std::string_view(in.name));
          if (k != view.keys.end() && *k == in.name) hids[static_cast<std::size_t>(k - view.keys.begin())] = in.hid;
        }
      }
    }
  }
  auto out = std::make_shared<Elements>();
  out->kind = kind;
  out->keys.assign(view.keys.begin(), view.keys.end());
  out->items.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::string key = kind == CollectionKind::dict ? out->keys[i] : std::string();
    const Id hid = hids[i] ? *hids[i] : element_hid(kind, state.hid, i, key);
    auto item = StorageCore::lazy_ref(core, hid, view.cids[i]);
    item->elements_by_getitem = !hids[i].has_value();
    out->items.push_back(std::move(item));
  }
  return out;
}

bool is_shape(std::span<const std::byte> bytes) {
  if (bytes.size() < 2) return false;
  const auto head = std::to_integer<unsigned>(bytes[0]);
  std::size_t type_at = 0;
  if (head >= 0xd4 && head <= 0xd8) type_at = 1;  // fixext: type right after the header byte
  else if (head == 0xc7) type_at = 2;             // ext 8/16/32: after the length
  else if (head == 0xc8) type_at = 3;
  else if (head == 0xc9) type_at = 5;
  else return false;
  return bytes.size() > type_at && std::to_integer<std::int8_t>(bytes[type_at]) == wire::ext_collection;
}

std::vector<std::byte> materialize(StorageCore& core, std::vector<std::byte> bytes) {
  if (!is_shape(bytes)) return bytes;
  const DecodedValue decoded{std::span<const std::byte>(bytes)};
  const CollectionView view = decoded.root().as_collection();
  auto loaded = core.load_values(view.cids);
  Encoder e;
  if (view.kind == CollectionKind::list) e.array_header(view.cids.size());
  else e.map_header(view.cids.size());
  for (std::size_t i = 0; i < view.cids.size(); ++i) {
    if (!loaded[i])
      throw Error(Errc::not_found, "element " + view.cids[i].hex() + " of a stored collection is not in the store");
    if (view.kind == CollectionKind::dict) e.string(view.keys[i]);
    e.raw(materialize(core, std::move(*loaded[i])));
  }
  return std::move(e).take();
}

}  // namespace mandala::detail
