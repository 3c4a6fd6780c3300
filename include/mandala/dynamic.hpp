#pragma once
// Ops decided at run time: a name, parameter names and output names given as data, argument and
// result values given in their canonical encoding. This is the boundary language bindings build
// on (the Python package): a dynamic op and a typed op (mandala/op.hpp) of the same name,
// version, parameters and outputs are the same op, their calls have the same ids and reuse
// each other.
//
//   const mandala::DynamicOp add("add", {"x", "y"}, 1, {.outputs = {"z"}});
//   auto outs = add({{"x", mandala::EncodedValue::of(1)}, {"y", ref}},
//                   [](std::span<const mandala::DynamicArg> args) {
//                     const auto x = mandala::encoded_value(args[0]).decode<int>();
//                     const auto y = mandala::encoded_value(args[1]).decode<int>();
//                     return std::vector{mandala::EncodedValue::of(x + y)};
//                   });

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/detail/core.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"
#include "mandala/op.hpp"
#include "mandala/ref.hpp"

namespace mandala {

/// One value in its canonical encoding (docs/storage-format.md, section 1): the bytes whose
/// content id a stored value has, whichever language made it.
class MANDALA_API EncodedValue {
 public:
  /// Takes bytes holding exactly one encoded value; Errc::decode when they are truncated,
  /// malformed or followed by more bytes. The bytes must be canonical (as Encoder writes them):
  /// a non-canonical form of a value has another content id than the value.
  explicit EncodedValue(std::vector<std::byte> bytes);
  /// The encoding of a typed value (Codec<T>).
  template <class T>
  [[nodiscard]] static EncodedValue of(const T& value) {
    return EncodedValue(encode_value(value), Trusted{});
  }

  [[nodiscard]] const std::vector<std::byte>& bytes() const noexcept { return m_bytes; }
  /// The content id a stored value with these bytes has.
  [[nodiscard]] Id content_id() const;
  /// The value as a T (Codec<T>); Errc::decode when it is not one.
  template <class T>
  [[nodiscard]] T decode() const {
    return decode_value<T>(std::span<const std::byte>(m_bytes));
  }
  /// A parse of the bytes; valid while this EncodedValue lives and is not modified.
  [[nodiscard]] DecodedValue view() const { return DecodedValue(std::span<const std::byte>(m_bytes)); }

  friend bool operator==(const EncodedValue&, const EncodedValue&) = default;

 private:
  friend MANDALA_API EncodedValue encoded_value(const AnyRef& ref);
  struct Trusted {};
  EncodedValue(std::vector<std::byte> bytes, Trusted) : m_bytes(std::move(bytes)) {}
  std::vector<std::byte> m_bytes;
};

/// The encoded value of a ref: its value in memory, else its stored value loaded from its
/// storage (Errc::closed when that was closed, Errc::not_found when it lacks the value). A
/// transparent collection (MList, MDict) comes back as a plain array or map of its elements'
/// values. Errc::invalid_argument for an empty ref.
[[nodiscard]] MANDALA_API EncodedValue encoded_value(const AnyRef& ref);

/// A ref of a value without history, holding it: the ids the value gets when passed as a raw
/// argument (its history id follows from its content id), so passing this ref or the value is
/// the same call. The original's wrap_atom.
[[nodiscard]] MANDALA_API AnyRef atom_ref(EncodedValue value);

/// A ref of a value without history (as atom_ref) whose encoding is made only when it must be
/// stored: a language binding's large value, such as a numpy array, that a memoized call whose
/// input is stored already never copies. `cid` is the content id of the value's encoding,
/// computed without making it (typed_array_content_id); `encode(value.get())` makes the encoded
/// bytes and must give bytes with that content id (or throw: a value changed in place since).
/// The engine calls it for an input of a new call whose value is not stored yet (before the op's
/// function runs), when the ref's value is read (encoded_value), and may call it until the
/// storage's next flush for a call found by content; from any thread, without the caller's
/// locks. `value` is released from any thread, also one the caller's runtime does not know.
[[nodiscard]] MANDALA_API AnyRef deferred_atom_ref(const Id& cid, std::shared_ptr<const void> value,
                                                   detail::EncodeFn encode);

/// One argument of a dynamic call: the parameter it binds and its value, either given as an
/// encoded value (a raw input) or as a ref (which brings its history).
struct DynamicArg {
  std::string name;
  std::variant<EncodedValue, AnyRef> value;
};

/// The encoded value of an argument (loads a ref's value: see encoded_value(const AnyRef&)).
[[nodiscard]] MANDALA_API EncodedValue encoded_value(const DynamicArg& arg);

/// The structure of a dynamic op's output: a plain value (no kind), or a transparent
/// collection (an MList, or an MDict keyed by string) whose elements have the shape `element`
/// (a plain value when null). A collection output is stored element by element, as a typed op's
/// MList / MDict result: each element gets its history from a __list_getitem__ /
/// __dict_getitem__ call.
struct DynamicShape {
  std::optional<CollectionKind> kind;
  std::shared_ptr<const DynamicShape> element;
};

/// An output value of a StructuredFunction: an encoded value, or the elements of a collection
/// (for an output of a collection shape; a dict's keys in `keys`, one per item).
struct DynamicValue {
  DynamicValue() = default;
  DynamicValue(EncodedValue v) : value(std::move(v)) {}  // NOLINT: implicit on purpose
  std::optional<EncodedValue> value;
  std::optional<CollectionKind> kind;
  std::vector<std::string> keys;
  std::vector<DynamicValue> items;
};

/// What a dynamic op has beyond an OpOptions.
struct DynamicOptions {
  /// Calls may also pass arguments named by no declared parameter (a Python op's *args elements
  /// and **kwargs entries); the op's declaration in a store keeps only the declared parameters.
  /// Such a name must not be an output name.
  bool open_inputs = false;
  /// The op's code components (a language binding's own code analysis): when given, the op's
  /// code version follows them as a C++ op's follows its fingerprint (docs/versioning.md); a
  /// storage sees a changed list as changed code. Errc::invalid_argument for two components of
  /// one name.
  std::optional<std::vector<CodeComponent>> code{};
  /// One shape per output (empty: every output is a plain value). Collection outputs need
  /// call_structured.
  std::vector<DynamicShape> output_shapes{};
  /// How the op recomputes its transient outputs (OpOptions::transient): its function, given
  /// the stored arguments of a call (in declared parameter order, then the others by name; the
  /// arguments a binding left out are not there). Required when the op has transient outputs,
  /// which must be plain values.
  std::function<std::vector<EncodedValue>(std::span<const DynamicArg> args)> recompute{};
};

/// An op whose declaration is data. Calls bind arguments by parameter name; parameters not
/// passed are not part of the call's identity (what a typed op does for ignored parameters and
/// omitted new_args): a binding applies defaults and leaves out ignored arguments itself.
class MANDALA_API DynamicOp {
 public:
  using Result = std::vector<AnyRef>;
  /// Computes the outputs of a new call, one encoded value per declared output, from the
  /// arguments of the call (in declared parameter order). An exception it throws propagates
  /// out of the call and nothing is recorded.
  using Function = std::function<std::vector<EncodedValue>(std::span<const DynamicArg> args)>;

  /// `inputs` names every parameter, in order; the op has `output_count` outputs, named by
  /// `options.outputs` or output_0, output_1, ... Errc::invalid_argument on an impossible
  /// declaration (as mandala::op: empty, duplicate or clashing names, a reserved op name, a
  /// count that disagrees with the output names).
  DynamicOp(std::string name, std::vector<std::string> inputs, std::size_t output_count, OpOptions options = {},
            DynamicOptions dynamic = {});

  [[nodiscard]] const std::string& name() const noexcept { return m_info->name; }
  [[nodiscard]] std::uint32_t version() const noexcept { return m_info->version; }
  [[nodiscard]] const std::vector<std::string>& inputs() const noexcept { return m_info->inputs; }
  [[nodiscard]] const std::vector<std::string>& outputs() const noexcept { return m_info->outputs; }
  [[nodiscard]] const detail::OpInfo& info() const noexcept { return *m_info; }

  /// Calls the op in the innermost session of this thread: looked up by history, then by
  /// content, and `fn` runs only for a new call. Outside a session, or in noop mode, `fn` runs
  /// and the outputs are refs without ids holding its values. Returns one ref per declared
  /// output. Errc::invalid_argument for an argument naming no parameter, a parameter passed
  /// twice or an empty ref; Errc::output_mismatch when `fn` returns another number of values
  /// than the op declares.
  Result operator()(std::vector<DynamicArg> args, const Function& fn) const;
  /// The same call memoized in `core` regardless of the ambient session (Storage::call).
  Result call_in(const std::shared_ptr<detail::StorageCore>& core, std::vector<DynamicArg> args,
                 const Function& fn) const;

  /// Computes the outputs of a new call as values or collections of elements (an output of a
  /// collection shape must be given as a collection of that kind: Errc::output_mismatch).
  using StructuredFunction = std::function<std::vector<DynamicValue>(std::span<const DynamicArg> args)>;
  /// call_in for an op with collection outputs (DynamicOptions::output_shapes): the returned
  /// collection refs have their element refs (AnyRef's elements are reached through the engine:
  /// detail::load_elements), each element recorded with its getitem call.
  Result call_structured(const std::shared_ptr<detail::StorageCore>& core, std::vector<DynamicArg> args,
                         const StructuredFunction& fn) const;

 private:
  std::shared_ptr<const detail::OpInfo> m_info;
  /// The output shapes as the engine's ShapeSpecs (owned here: they point at each other); one
  /// per output, or empty when every output is plain.
  std::shared_ptr<const std::vector<std::unique_ptr<detail::ShapeSpec>>> m_shape_nodes;
  std::vector<const detail::ShapeSpec*> m_shapes;
};

}  // namespace mandala
