#pragma once
// Ops: named, versioned functions whose calls are memoized in the ambient storage session.
//
//   const auto add = mandala::op("add", {"x", mandala::arg("y", 1)},
//                                [](int x, int y) { return x + y; }, {.outputs = {"z"}});
//
// Inside a run-mode Session an op call is looked up (by history, then by content) and executed
// only when new; it returns Ref<R> (or std::tuple<Ref<A>, Ref<B>...> for a tuple return, nothing
// for void). Outside a session, or in noop mode, it is a plain call returning refs that hold the
// value and have no ids.

#include <any>
#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/detail/core.hpp"
#include "mandala/export.hpp"
#include "mandala/ref.hpp"
#include "mandala/rounding.hpp"

namespace mandala {

// ---- call-site wrappers ------------------------------------------------------------------

/// An argument passed to the function but not part of the call's identity.
template <class T>
struct Ignore {
  T value;
};
template <class T>
Ignore<std::decay_t<T>> ignore(T&& value) {
  return {std::forward<T>(value)};
}

/// A large or unserializable object passed under a human-readable name: the call's identity
/// uses the name only, and the storage keeps only the name (loading it back as T fails).
template <class T>
class ValuePointer {
 public:
  ValuePointer(std::string name, std::shared_ptr<const T> object)
      : m_name(std::move(name)), m_object(std::move(object)) {
    if (m_name.empty()) throw Error(Errc::invalid_argument, "ValuePointer: the name must not be empty");
    if (!m_object) throw Error(Errc::invalid_argument, "ValuePointer '" + m_name + "': the object must not be null");
  }
  ValuePointer(std::string name, T object)
      : ValuePointer(std::move(name), std::make_shared<const T>(std::move(object))) {}
  [[nodiscard]] const std::string& name() const noexcept { return m_name; }
  [[nodiscard]] const T& object() const noexcept { return *m_object; }

 private:
  std::string m_name;
  std::shared_ptr<const T> m_object;
};

// ---- declarations ------------------------------------------------------------------------

enum class ParamKind { normal, ignored, new_arg_default };

/// Declaration of one op parameter: a name, optionally a default and a kind.
struct Param {
  Param(const char* n) : name(n) {}             // NOLINT(google-explicit-constructor): {"x", "y"} lists
  Param(std::string n) : name(std::move(n)) {}  // NOLINT(google-explicit-constructor)
  std::string name;
  ParamKind kind = ParamKind::normal;
  std::any default_value;  ///< empty: the argument is required
  Rounding rounding{};     ///< mandala::rounded: how its floating-point values are rounded
  /// Names the parameter had before (formerly): calls stored under an old name are kept
  /// (docs/storage-format.md 2.2).
  std::vector<std::string> former_names{};

  /// The parameter was called `old_name` before: `mandala::arg("l2", 0.0).formerly("reg")`.
  Param& formerly(std::string old_name) & {
    former_names.push_back(std::move(old_name));
    return *this;
  }
  Param&& formerly(std::string old_name) && { return std::move(formerly(std::move(old_name))); }
};

/// A parameter with an ordinary default: omitting it is the same call as passing the default.
template <class T>
Param arg(std::string name, T default_value) {
  Param p(std::move(name));
  p.default_value = std::move(default_value);
  return p;
}
/// A parameter added after calls were stored: when omitted or equal to `default_value` it is
/// left out of the call's identity, so calls made before it existed are reused.
template <class T>
Param new_arg(std::string name, T default_value) {
  Param p(std::move(name));
  p.kind = ParamKind::new_arg_default;
  p.default_value = std::move(default_value);
  return p;
}
/// A parameter that is never part of a call's identity (verbosity, batch size...).
inline Param ignored(std::string name) {
  Param p(std::move(name));
  p.kind = ParamKind::ignored;
  return p;
}
template <class T>
Param ignored(std::string name, T default_value) {
  Param p = ignored(std::move(name));
  p.default_value = std::move(default_value);
  return p;
}

/// A parameter whose floating-point values (scalars, and in containers and typed arrays at any
/// depth) are rounded before they become the call's input: arguments equal after rounding are
/// the same call, and the function receives the rounded value. For values that differ by
/// numerical noise; `rounding` is significant_digits(n) or quantum(step) (mandala/rounding.hpp,
/// docs/storage-format.md 1.7). Ref arguments are passed as they are (their value has a
/// history). Combines with arg / new_arg: rounded(arg("tol", 1e-6), significant_digits(3)).
inline Param rounded(Param p, Rounding rounding) {
  p.rounding = rounding;
  return p;
}

struct OpOptions {
  std::vector<std::string> outputs{};  ///< default: output_0, output_1, ...
  std::uint32_t version = 0;           ///< bump to invalidate every stored call of the op
  /// Dependencies code analysis cannot see (mandala/versioning.hpp): a data file, a constant, a
  /// library version. Their contents are part of the op's code version.
  std::vector<Dependency> depends_on{};
  /// Concurrent makers of the same new call wait for one of them to compute it: the threads of
  /// a storage, and the processes sharing a file store (docs/guarantees.md, "Each call computed
  /// once"). false for ops that are cheaper to compute twice than to wait for: each then computes
  /// the call itself (it is still stored once).
  bool compute_once = true;
  /// Tolerant inputs for every parameter of the op (those without their own rounding): see
  /// mandala::rounded. Never the default.
  Rounding rounding{};
  /// Tolerant inputs by parameter name (what mandala::rounded declares, as data: ops declared
  /// at run time, mandala/dynamic.hpp). Errc::invalid_argument for a name that is no parameter.
  std::map<std::string, Rounding> rounding_of{};
  /// Names the op had before: its calls stored under an old name are kept, and the rename is
  /// recorded in the store (docs/storage-format.md 2.2; `mandala rename-op` does the same).
  std::vector<std::string> formerly{};
  /// Names outputs had before, by their current name: {{"loss", {"error"}}}.
  std::map<std::string, std::vector<std::string>> output_formerly{};
  /// Every output of the op is transient: kept out of the storage. A call records the output's
  /// content id; a later load of the value runs the op again on the call's stored inputs and
  /// checks that id (docs/storage-format.md 2.3). For large results that are cheap to compute
  /// and expensive to keep. Not part of the op's identity.
  bool transient = false;
  /// The transient outputs by name (when not all are).
  std::vector<std::string> transient_outputs{};
};

namespace detail {

template <class R>
struct Outputs {
  static constexpr std::size_t count = 1;
  using Result = Ref<R>;
};
template <class... Os>
struct Outputs<std::tuple<Os...>> {
  static constexpr std::size_t count = sizeof...(Os);
  using Result = std::tuple<Ref<Os>...>;
};
template <>
struct Outputs<void> {
  static constexpr std::size_t count = 0;
  using Result = void;
};

template <class T>
struct is_tuple : std::false_type {};
template <class... Ts>
struct is_tuple<std::tuple<Ts...>> : std::true_type {};

template <class T>
struct is_ignore : std::false_type {};
template <class T>
struct is_ignore<Ignore<T>> : std::true_type {};
template <class T>
struct is_value_pointer : std::false_type {};
template <class T>
struct is_value_pointer<ValuePointer<T>> : std::true_type {};

MANDALA_API std::shared_ptr<const OpInfo> make_op_info(std::string name, const std::vector<Param>& params,
                                                       OpOptions options, std::size_t arity, std::size_t output_count);
[[noreturn]] MANDALA_API void throw_bad_default(const OpInfo& op, std::size_t param, const std::type_info& given,
                                                const std::type_info& wanted);
[[noreturn]] MANDALA_API void throw_missing_argument(const OpInfo& op, std::size_t param);
[[noreturn]] MANDALA_API void throw_empty_argument(const OpInfo& op, std::size_t param);
[[noreturn]] MANDALA_API void throw_transient_collection(const OpInfo& op, std::size_t output);
[[noreturn]] MANDALA_API void throw_not_replayable(const std::string& op, const std::string& param);
MANDALA_API std::vector<std::byte> encode_pointer(const std::string& name);

/// Where one argument's value comes from during a call.
template <class T>
struct Arg {
  const T* direct = nullptr;  ///< raw value, ignored value, pointer object or default
  Ref<T> ref;                 ///< a ref argument
  bool excluded = false;      ///< not a storage input
  bool replayable = true;     ///< the call's stored inputs give this argument again (ReplayFn)
  std::vector<std::byte> bytes;
  std::unique_ptr<Piece> piece;  ///< a transparent collection to build before the call
  [[nodiscard]] const T& get() const { return direct ? *direct : ref.get(); }
};

// ---- transparent collections -------------------------------------------------------------

template <class T>
const ShapeSpec& shape_spec() {
  if constexpr (is_mlist<T>::value) {
    static const ShapeSpec spec{CollectionKind::list, &shape_spec<collection_element_t<T>>()};
    return spec;
  } else if constexpr (is_mdict<T>::value) {
    static const ShapeSpec spec{CollectionKind::dict, &shape_spec<collection_element_t<T>>()};
    return spec;
  } else {
    static const ShapeSpec spec{};
    return spec;
  }
}

/// The pieces of a value of type T (a collection splits into its elements, recursively).
template <class T>
Piece piece_of(const T& value) {
  Piece p;
  if constexpr (is_mlist<T>::value) {
    p.kind = CollectionKind::list;
    p.children.reserve(value.size());
    for (const auto& x : value) p.children.push_back(piece_of(x));
  } else if constexpr (is_mdict<T>::value) {
    p.kind = CollectionKind::dict;
    for (const auto& [k, x] : value) {
      p.keys.push_back(k);
      p.children.push_back(piece_of(x));
    }
  } else {
    p.bytes = encode_value(value);
  }
  return p;
}

/// An element given as a ref keeps its history (a ref without ids counts as its value).
template <class E>
Piece piece_of_ref(const Ref<E>& ref) {
  if (!ref.valid())
    throw Error(Errc::invalid_argument, "an element of a collection argument is an empty Ref (default-constructed)");
  if constexpr (is_transparent_v<E>) {
    if (!ref.has_ids()) return piece_of(ref.get());
  }
  Piece p;
  p.ref = ref.state_ptr();
  return p;
}

/// Whether a plain container type holds refs (a mistake: refs are only kept by MList / MDict).
template <class T>
struct holds_refs : std::false_type {};
template <class E, class A>
struct holds_refs<std::vector<E, A>> : std::bool_constant<is_ref<E>::value || std::is_same_v<E, AnyRef>> {};
template <class K, class E, class C, class A>
struct holds_refs<std::map<K, E, C, A>> : std::bool_constant<is_ref<E>::value || std::is_same_v<E, AnyRef>> {};
template <class E, std::size_t N>
struct holds_refs<std::array<E, N>> : std::bool_constant<is_ref<E>::value || std::is_same_v<E, AnyRef>> {};

template <class M>
concept non_string_keys = requires {
  typename M::key_type;
}
&&!std::is_same_v<typename M::key_type, std::string>;

/// A container of element refs for the collection type C: std::vector<Ref<E>> for an MList<E>,
/// std::map<std::string, Ref<E>> for an MDict<std::string, E>.
template <class C, class A>
struct is_ref_container : std::false_type {};
template <class E, class Alloc>
struct is_ref_container<MList<E>, std::vector<Ref<E>, Alloc>> : std::true_type {};
template <class E>
struct is_ref_container<MList<E>, MList<Ref<E>>> : std::true_type {};
template <class E, class Cmp, class Alloc>
struct is_ref_container<MDict<std::string, E>, std::map<std::string, Ref<E>, Cmp, Alloc>> : std::true_type {};

/// A collection ref without ids whose elements are the given refs (assembled on use).
template <class C, class Refs>
Ref<C> ref_of_elements(const Refs& refs) {
  auto elements = std::make_shared<Elements>();
  elements->kind = is_mlist<C>::value ? CollectionKind::list : CollectionKind::dict;
  for (const auto& item : refs) {
    if constexpr (is_mlist<C>::value) {
      elements->items.push_back(item.state_ptr());
    } else {
      elements->keys.push_back(item.first);
      elements->items.push_back(item.second.state_ptr());
    }
  }
  auto state = std::make_shared<RefState>();
  state->elements = std::move(elements);
  return Ref<C>(std::move(state));
}

template <class C, class Refs>
Piece piece_of_refs(const Refs& refs) {
  Piece p;
  p.kind = is_mlist<C>::value ? CollectionKind::list : CollectionKind::dict;
  for (const auto& item : refs) {
    if constexpr (is_mlist<C>::value) {
      p.children.push_back(piece_of_ref(item));
    } else {
      p.keys.push_back(item.first);
      p.children.push_back(piece_of_ref(item.second));
    }
  }
  return p;
}

/// Gives the element refs of a just computed collection their in-memory values (views into
/// `value`, no copies).
template <class C>
void attach_values(RefState& state, const std::shared_ptr<const C>& value) {
  using E = collection_element_t<C>;
  std::shared_ptr<const Elements> elements;
  {
    std::lock_guard lock(state.mutex);
    if (!state.assembled) {
      state.assembled = value;
      state.assembled_type = &typeid(C);
    }
    elements = state.elements;
  }
  if (!elements) return;
  std::size_t i = 0;
  for (const auto& item : *value) {
    if (i >= elements->items.size()) break;
    const E* element;
    if constexpr (is_mlist<C>::value) element = &item;
    else element = &item.second;
    auto& target = *elements->items[i++];
    std::shared_ptr<const E> view(value, element);
    if constexpr (is_transparent_v<E>) {
      attach_values<E>(target, view);
    } else {
      std::lock_guard lock(target.mutex);
      if (!target.value) {
        target.value = std::move(view);
        target.type = &typeid(E);
        target.encode = &encode_erased<E>;
      }
    }
  }
}

template <class R>
struct TransparentOutputs : std::bool_constant<is_transparent_v<R>> {};
template <class... Os>
struct TransparentOutputs<std::tuple<Os...>> : std::bool_constant<(is_transparent_v<Os> || ...)> {};
template <>
struct TransparentOutputs<void> : std::false_type {};

/// What running an op produced beyond the encoded outputs: transparent outputs as pieces and
/// typed collections.
struct OutputExtras {
  explicit OutputExtras(std::size_t n) : pieces(n), collections(n) {}
  std::vector<std::unique_ptr<Piece>> pieces;
  std::vector<std::shared_ptr<const void>> collections;
  bool memoized = false;  ///< pieces are needed (run mode)
  bool ran = false;
};

template <class F, class... Ps>
class Invocation;

template <class Sig>
struct FunctionTraits;
template <class R, class... As>
struct FunctionTraits<std::function<R(As...)>> {
  using Result = R;
  using Params = std::tuple<std::decay_t<As>...>;
};

template <class T>
void encode_output(std::vector<OutputValue>& out, T&& value, OutputExtras& extras) {
  using V = std::decay_t<T>;
  static_assert(!is_ref<V>::value,
                "mandala: an op's function returns values, not Refs (a Ref result would lose its history)");
  OutputValue o;
  auto shared = std::make_shared<const V>(std::forward<T>(value));
  if constexpr (is_transparent_v<V>) {
    // Stored as its shape; the elements are stored by the getitem calls that follow.
    if (extras.memoized) {
      auto piece = std::make_unique<Piece>(piece_of(*shared));
      seal_piece(*piece);
      o.bytes = piece->bytes;
      o.cid = piece->cid;
      extras.pieces[out.size()] = std::move(piece);
    }
    extras.collections[out.size()] = std::move(shared);
    o.type = &typeid(V);
  } else {
    o.bytes = encode_value(*shared);
    o.type = &typeid(V);
    o.encode = &encode_erased<V>;
    o.value = std::move(shared);
  }
  out.push_back(std::move(o));
}

}  // namespace detail

/// A memoizing wrapper of a function with parameters Ps... and result R.
template <class R, class... Ps>
class Op {
 public:
  using Result = typename detail::Outputs<R>::Result;

  Op(std::string name, const std::vector<Param>& params, std::function<R(const Ps&...)> fn, OpOptions options)
      : m_fn(std::move(fn)) {
    m_info =
        detail::make_op_info(std::move(name), params, std::move(options), sizeof...(Ps), detail::Outputs<R>::count);
    init_defaults(params, std::index_sequence_for<Ps...>{});
    if (!m_info->transient.empty()) init_replay();
  }

  [[nodiscard]] const std::string& name() const noexcept { return m_info->name; }
  [[nodiscard]] std::uint32_t version() const noexcept { return m_info->version; }
  [[nodiscard]] const std::vector<std::string>& inputs() const noexcept { return m_info->inputs; }
  [[nodiscard]] const std::vector<std::string>& outputs() const noexcept { return m_info->outputs; }
  [[nodiscard]] const detail::OpInfo& info() const noexcept { return *m_info; }

  /// Calls the op in the innermost session of this thread (a plain call when there is none or
  /// it is in noop mode). Arguments: T, anything convertible to T, Ref<T>, Ignore<...>,
  /// ValuePointer<T>; trailing parameters with defaults may be omitted.
  template <class... As>
  Result operator()(As&&... args) const {
    const detail::ContextEntry* ctx = detail::current_context();
    if (ctx == nullptr || ctx->mode == Mode::noop || !ctx->core) return plain(std::forward<As>(args)...);
    return memoized(ctx->core, std::forward<As>(args)...);
  }

  /// Calls the op memoized in `core` regardless of the ambient session (Storage::call).
  template <class... As>
  Result call_in(const std::shared_ptr<detail::StorageCore>& core, As&&... args) const {
    return memoized(core, std::forward<As>(args)...);
  }

 private:
  using Params = std::tuple<Ps...>;
  template <std::size_t I>
  using P = std::tuple_element_t<I, Params>;

  template <std::size_t... I>
  void init_defaults(const std::vector<Param>& params, std::index_sequence<I...>) {
    (init_default<I>(params[I]), ...);
  }
  template <std::size_t I>
  void init_default(const Param& p) {
    auto& slot = std::get<I>(m_defaults);
    m_kinds[I] = p.kind;
    if (!p.default_value.has_value()) return;
    const auto* typed = std::any_cast<P<I>>(&p.default_value);
    if (typed == nullptr) detail::throw_bad_default(*m_info, I, p.default_value.type(), typeid(P<I>));
    slot = *typed;
    if (auto bytes = rounded_bytes<I>(*slot)) slot = decode_value<P<I>>(std::span<const std::byte>(*bytes));
    if (p.kind == ParamKind::new_arg_default) {
      m_default_bytes[I] = encode_value(*slot);
      m_default_cids[I] = detail::content_id(m_default_bytes[I]);
    }
  }

  // The encoding of `value` with its floating-point numbers rounded, when parameter I rounds
  // them (OpInfo::rounding) and some number changed.
  template <std::size_t I>
  std::optional<std::vector<std::byte>> rounded_bytes(const P<I>& value) const {
    if (m_info->rounding.empty() || !m_info->rounding[I].active()) return std::nullopt;
    return round_encoded(encode_value(value), m_info->rounding[I]);
  }
  // A rounding parameter's argument is replaced by its rounded value: the function receives it
  // and the call's input is it.
  template <std::size_t I>
  void round_argument(detail::Arg<P<I>>& out, std::optional<P<I>>& storage) const {
    auto bytes = rounded_bytes<I>(*out.direct);
    if (!bytes) return;
    P<I> value = decode_value<P<I>>(std::span<const std::byte>(*bytes));
    storage.emplace(std::move(value));
    out.direct = &*storage;
  }

  // Binds argument I (given) into an Arg<P<I>>.
  template <std::size_t I, class A>
  void bind(detail::Arg<P<I>>& out, A&& a, std::optional<P<I>>& storage, Mode mode) const {
    using T = P<I>;
    using D = std::remove_cvref_t<A>;
    const bool memo = mode == Mode::run;
    if constexpr (is_transparent_v<T>) {
      bind_collection<I>(out, std::forward<A>(a), storage, memo);
      return;
    } else if constexpr (is_ref<D>::value) {
      static_assert(std::is_same_v<typename D::value_type, T>,
                    "mandala: a Ref<U> argument must have the parameter's type T (Ref<T>)");
      out.ref = a;
      if (memo && m_kinds[I] == ParamKind::new_arg_default && a.has_ids()) {
        // equal to the default by content: exclude
        if (a.cid() == default_cid<I>()) out.excluded = true;
      }
    } else if constexpr (detail::is_ignore<D>::value) {
      storage.emplace(T(std::forward<A>(a).value));
      out.direct = &*storage;
      out.excluded = true;
      out.replayable = false;
    } else if constexpr (detail::is_value_pointer<D>::value) {
      static_assert(std::is_same_v<std::remove_cvref_t<decltype(a.object())>, T>,
                    "mandala: a ValuePointer<U> argument must point to the parameter's type");
      out.direct = &a.object();
      out.replayable = false;
      if (memo) out.bytes = detail::encode_pointer(a.name());
    } else {
      static_assert(!detail::holds_refs<D>::value,
                    "mandala: a plain (non-transparent) collection cannot hold refs: their histories would be lost. "
                    "Declare the parameter as mandala::MList<T> (or MDict<std::string, T>) and pass the "
                    "std::vector<Ref<T>> (std::map<std::string, Ref<T>>) to it, or pass plain values.");
      static_assert(std::is_convertible_v<A&&, T>,
                    "mandala: an argument must be the parameter's type T, convertible to it, Ref<T>, "
                    "Ignore<...> or ValuePointer<T>");
      if constexpr (std::is_same_v<D, T>) {
        out.direct = &a;
      } else {
        storage.emplace(std::forward<A>(a));
        out.direct = &*storage;
      }
      round_argument<I>(out, storage);
      if (memo) {
        if (m_kinds[I] == ParamKind::ignored) {
          out.excluded = true;
        } else {
          out.bytes = encode_value(*out.direct);
          if (m_kinds[I] == ParamKind::new_arg_default && out.bytes == m_default_bytes[I]) out.excluded = true;
        }
      }
    }
    if (m_kinds[I] == ParamKind::ignored) {
      out.excluded = true;
      out.replayable = false;
    }
  }

  // Binds an argument of a transparent (MList / MDict) parameter: a collection ref, a container
  // of element refs, or a plain collection of values.
  template <std::size_t I, class A>
  void bind_collection(detail::Arg<P<I>>& out, A&& a, std::optional<P<I>>& storage, bool memo) const {
    using T = P<I>;
    using D = std::remove_cvref_t<A>;
    if constexpr (is_ref<D>::value) {
      static_assert(std::is_same_v<typename D::value_type, T>,
                    "mandala: a Ref<U> argument must have the parameter's type T (Ref<T>)");
      if (!a.valid()) detail::throw_empty_argument(*m_info, I);
      out.ref = a;
      if (memo && !a.has_ids()) out.piece = std::make_unique<detail::Piece>(detail::piece_of(a.get()));
    } else if constexpr (detail::is_ref_container<T, D>::value) {
      out.ref = detail::ref_of_elements<T>(a);
      if (memo) out.piece = std::make_unique<detail::Piece>(detail::piece_of_refs<T>(a));
    } else if constexpr (detail::is_ignore<D>::value) {
      storage.emplace(T(std::forward<A>(a).value));
      out.direct = &*storage;
      out.excluded = true;
      out.replayable = false;
    } else {
      static_assert(!is_mdict<T>::value || !detail::non_string_keys<D>,
                    "mandala: MDict keys must be std::string (each key names an input of the __make_dict__ call): "
                    "convert the keys of the map to strings");
      static_assert(std::is_convertible_v<A&&, T>,
                    "mandala: an argument of an MList<E> parameter must be an MList<E> or std::vector<E> of values, "
                    "a std::vector<Ref<E>> of element refs, or a Ref<MList<E>> (MDict<std::string, E>: a "
                    "std::map<std::string, E>, a std::map<std::string, Ref<E>> or a Ref<MDict<std::string, E>>)");
      if constexpr (std::is_same_v<D, T>) {
        out.direct = &a;
      } else {
        storage.emplace(std::forward<A>(a));
        out.direct = &*storage;
      }
      round_argument<I>(out, storage);
      if (memo && m_kinds[I] == ParamKind::new_arg_default && encode_value(*out.direct) == m_default_bytes[I])
        out.excluded = true;
      if (memo && !out.excluded && m_kinds[I] != ParamKind::ignored)
        out.piece = std::make_unique<detail::Piece>(detail::piece_of(*out.direct));
    }
    if (m_kinds[I] == ParamKind::ignored) {
      out.excluded = true;
      out.replayable = false;
      out.piece.reset();
    }
  }

  template <std::size_t I>
  void bind_default(detail::Arg<P<I>>& out, Mode mode) const {
    const auto& d = std::get<I>(m_defaults);
    if (!d) detail::throw_missing_argument(*m_info, I);
    out.direct = &*d;
    if (m_kinds[I] != ParamKind::normal) {
      out.excluded = true;
    } else if (mode == Mode::run) {
      if constexpr (is_transparent_v<P<I>>) out.piece = std::make_unique<detail::Piece>(detail::piece_of(*d));
      else out.bytes = encode_value(*d);
    }
  }

  template <std::size_t I>
  const Id& default_cid() const {
    return m_default_cids[I];
  }

  template <std::size_t I, class ArgsTuple>
  void bind_one(std::tuple<detail::Arg<Ps>...>& out, std::tuple<std::optional<Ps>...>& store, ArgsTuple& given,
                Mode mode) const {
    if constexpr (I < std::tuple_size_v<ArgsTuple>) {
      bind<I>(std::get<I>(out), std::forward<std::tuple_element_t<I, ArgsTuple>>(std::get<I>(given)),
              std::get<I>(store), mode);
    } else {
      bind_default<I>(std::get<I>(out), mode);
    }
  }

  template <class ArgsTuple, std::size_t... I>
  void bind_all(std::tuple<detail::Arg<Ps>...>& out, std::tuple<std::optional<Ps>...>& store, ArgsTuple& given,
                [[maybe_unused]] Mode mode, std::index_sequence<I...>) const {
    (bind_one<I>(out, store, given, mode), ...);
  }

  template <std::size_t... I>
  std::vector<detail::OutputValue> run(const std::tuple<detail::Arg<Ps>...>& args, detail::OutputExtras& extras,
                                       std::index_sequence<I...> seq) const {
    return invoke(m_fn, args, extras, seq);
  }
  template <std::size_t... I>
  static std::vector<detail::OutputValue> invoke(const std::function<R(const Ps&...)>& fn,
                                                 const std::tuple<detail::Arg<Ps>...>& args,
                                                 detail::OutputExtras& extras, std::index_sequence<I...>) {
    std::vector<detail::OutputValue> outs;
    extras.ran = true;
    if constexpr (std::is_void_v<R>) {
      fn(std::get<I>(args).get()...);
    } else if constexpr (detail::Outputs<R>::count == 1 && !detail::is_tuple<R>::value) {
      detail::encode_output(outs, fn(std::get<I>(args).get()...), extras);
    } else {
      R result = fn(std::get<I>(args).get()...);
      outs.reserve(std::tuple_size_v<R>);
      std::apply([&](auto&&... o) { (detail::encode_output(outs, std::move(o), extras), ...); }, std::move(result));
    }
    return outs;
  }

  template <std::size_t O>
  using OutputType = std::conditional_t<detail::is_tuple<R>::value, std::tuple_element<O, R>, std::type_identity<R>>;

  // After a memoized call: element histories and values of transparent outputs.
  template <std::size_t... O>
  void finish_outputs(const std::shared_ptr<detail::StorageCore>& core,
                      const std::vector<std::shared_ptr<detail::RefState>>& states, detail::OutputExtras& extras,
                      bool new_history, std::index_sequence<O...>) const {
    (finish_output<typename OutputType<O>::type>(core, states.at(O), extras, O, new_history), ...);
  }
  template <class V>
  void finish_output(const std::shared_ptr<detail::StorageCore>& core, const std::shared_ptr<detail::RefState>& state,
                     detail::OutputExtras& extras, std::size_t index, bool new_history) const {
    if constexpr (is_transparent_v<V>) {
      detail::destructure(*core, core, state, detail::shape_spec<V>(), extras.pieces[index].get(), new_history);
      if (extras.collections[index])
        detail::attach_values<V>(*state, std::static_pointer_cast<const V>(extras.collections[index]));
    }
  }

  template <class... As>
  Result plain(As&&... args) const {
    static_assert(sizeof...(As) <= sizeof...(Ps), "mandala: too many arguments for this op");
    std::tuple<detail::Arg<Ps>...> bound;
    std::tuple<std::optional<Ps>...> store;
    auto given = std::forward_as_tuple(std::forward<As>(args)...);
    bind_all(bound, store, given, Mode::noop, std::index_sequence_for<Ps...>{});
    detail::OutputExtras extras(detail::Outputs<R>::count);
    auto outs = run(bound, extras, std::index_sequence_for<Ps...>{});
    std::vector<std::shared_ptr<detail::RefState>> states;
    for (std::size_t i = 0; i < outs.size(); ++i) {
      auto& o = outs[i];
      auto s = std::make_shared<detail::RefState>();
      s->value = std::move(o.value);
      s->type = o.type;
      s->encode = o.encode;
      if (extras.collections[i]) {
        s->assembled = std::move(extras.collections[i]);
        s->assembled_type = o.type;
      }
      states.push_back(std::move(s));
    }
    return wrap(states);
  }

  template <class... As>
  Result memoized(const std::shared_ptr<detail::StorageCore>& core, As&&... args) const {
    static_assert(sizeof...(As) <= sizeof...(Ps), "mandala: too many arguments for this op");
    std::tuple<detail::Arg<Ps>...> bound;
    std::tuple<std::optional<Ps>...> store;
    auto given = std::forward_as_tuple(std::forward<As>(args)...);
    bind_all(bound, store, given, Mode::run, std::index_sequence_for<Ps...>{});
    std::vector<detail::InputSlot> inputs;
    inputs.reserve(sizeof...(Ps));
    collect(core, inputs, bound, std::index_sequence_for<Ps...>{});
    struct Exec final : detail::Executor {
      const Op* self = nullptr;
      const std::tuple<detail::Arg<Ps>...>* args = nullptr;
      detail::OutputExtras extras{detail::Outputs<R>::count};
      std::vector<detail::OutputValue> run() override {
        return self->run(*args, extras, std::index_sequence_for<Ps...>{});
      }
    } exec;
    exec.self = this;
    exec.args = &bound;
    exec.extras.memoized = true;
    exec.replayable = std::apply([](const auto&... a) { return (a.replayable && ...); }, bound);
    auto states = detail::memoized_call(*core, core, *m_info, inputs, exec);
    if constexpr (detail::TransparentOutputs<R>::value) {
      finish_outputs(core, states, exec.extras, exec.reused_by_content,
                     std::make_index_sequence<detail::Outputs<R>::count>{});
    }
    return wrap(states);
  }

  template <std::size_t... I>
  void collect(const std::shared_ptr<detail::StorageCore>& core, std::vector<detail::InputSlot>& inputs,
               std::tuple<detail::Arg<Ps>...>& bound, std::index_sequence<I...>) const {
    (collect_one<I>(core, inputs, std::get<I>(bound)), ...);
  }
  template <std::size_t I>
  void collect_one(const std::shared_ptr<detail::StorageCore>& core, std::vector<detail::InputSlot>& inputs,
                   detail::Arg<P<I>>& a) const {
    if (a.excluded) return;
    detail::InputSlot slot;
    slot.name = &m_info->inputs[I];
    if (a.piece) {
      // A transparent collection: recorded as a __make_list__ / __make_dict__ call first.
      slot.ref = detail::build_collection(*core, core, *a.piece);
      a.piece.reset();
    } else if (a.direct == nullptr) {
      slot.ref = a.ref.state_ptr();
    }
    slot.bytes = std::move(a.bytes);
    inputs.push_back(std::move(slot));
  }

  Result wrap(const std::vector<std::shared_ptr<detail::RefState>>& states) const {
    if constexpr (std::is_void_v<R>) {
      return;
    } else if constexpr (!detail::is_tuple<R>::value) {
      return Ref<R>(states.at(0));
    } else {
      return wrap_tuple(states, std::make_index_sequence<std::tuple_size_v<R>>{});
    }
  }

  template <std::size_t... O>
  static Result wrap_tuple(const std::vector<std::shared_ptr<detail::RefState>>& states, std::index_sequence<O...>) {
    return Result{Ref<std::tuple_element_t<O, R>>(states.at(O))...};
  }

  // Transient outputs: the op recomputes them from a stored call's inputs (detail::ReplayFn).
  void init_replay() {
    check_transient_outputs(std::make_index_sequence<detail::Outputs<R>::count>{});
    *m_info->replay = [fn = m_fn, defaults = m_defaults, names = m_info->inputs,
                       op = m_info->name](std::span<const detail::ReplayInput> given) {
      std::tuple<detail::Arg<Ps>...> args;
      replay_bind(args, defaults, names, op, given, std::index_sequence_for<Ps...>{});
      detail::OutputExtras extras(detail::Outputs<R>::count);
      return invoke(fn, args, extras, std::index_sequence_for<Ps...>{});
    };
    detail::note_replayable(m_info);
  }
  template <std::size_t... O>
  void check_transient_outputs(std::index_sequence<O...>) const {
    (check_transient_output<typename OutputType<O>::type>(O), ...);
  }
  template <class V>
  void check_transient_output(std::size_t index) const {
    if constexpr (is_transparent_v<V>) {
      if (m_info->transient.at(index)) detail::throw_transient_collection(*m_info, index);
    }
  }
  template <std::size_t... I>
  static void replay_bind([[maybe_unused]] std::tuple<detail::Arg<Ps>...>& args,
                          [[maybe_unused]] const std::tuple<std::optional<Ps>...>& defaults,
                          [[maybe_unused]] const std::vector<std::string>& names,
                          [[maybe_unused]] const std::string& op,
                          [[maybe_unused]] std::span<const detail::ReplayInput> given, std::index_sequence<I...>) {
    (replay_bind_one<I>(std::get<I>(args), std::get<I>(defaults), names[I], op, given), ...);
  }
  template <std::size_t I>
  static void replay_bind_one(detail::Arg<P<I>>& out, const std::optional<P<I>>& fallback, const std::string& name,
                              const std::string& op, std::span<const detail::ReplayInput> given) {
    for (const auto& g : given)
      if (*g.name == name) {
        out.ref = Ref<P<I>>(g.ref);
        return;
      }
    if (!fallback) detail::throw_not_replayable(op, name);
    out.direct = &*fallback;
  }

  std::function<R(const Ps&...)> m_fn;
  std::shared_ptr<const detail::OpInfo> m_info;
  std::tuple<std::optional<Ps>...> m_defaults;
  std::array<ParamKind, sizeof...(Ps)> m_kinds{};
  std::array<std::vector<std::byte>, sizeof...(Ps)> m_default_bytes;
  std::array<Id, sizeof...(Ps)> m_default_cids;
};

namespace detail {
template <class F>
using FunctionOf = decltype(std::function{std::declval<F>()});

template <class R, class Params>
struct OpFor;
template <class R, class... Ps>
struct OpFor<R, std::tuple<Ps...>> {
  using type = Op<R, Ps...>;
};
}  // namespace detail

/// Declares an op. `params` names every parameter of `fn` in order (C++ cannot see parameter
/// names); Errc::invalid_argument on impossible declarations (arity mismatch, duplicate or
/// clashing names, bad defaults).
template <class F>
auto op(std::string name, std::vector<Param> params, F&& fn, OpOptions options = {}) {
  using Traits = detail::FunctionTraits<detail::FunctionOf<std::decay_t<F>>>;
  using OpType = typename detail::OpFor<typename Traits::Result, typename Traits::Params>::type;
  return OpType(std::move(name), params, std::forward<F>(fn), std::move(options));
}

}  // namespace mandala
