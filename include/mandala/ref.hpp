#pragma once
// Refs: handles to values with a content id (cid) and a history id (hid). A ref returned by a
// memoized call is lazy: its value is loaded from the storage on first use and then kept.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/export.hpp"
#include "mandala/id.hpp"

namespace mandala {

template <class T>
class Ref;

namespace detail {
class StorageCore;
struct RefState;

/// Encodes the typed value behind a `const void*` (set together with the value).
using EncodeFn = std::vector<std::byte> (*)(const void* value);

/// The element refs of a transparent collection (list order; a dict's entries sorted by key).
struct Elements {
  CollectionKind kind = CollectionKind::list;
  std::vector<std::string> keys;  ///< dict only
  std::vector<std::shared_ptr<RefState>> items;
};

/// Shared state of a ref. Ids never change once set; the in-memory value is set at most once
/// (under `mutex`) and never mutated.
struct RefState {
  Id cid;
  Id hid;
  bool has_ids = false;  ///< false for values made outside any storage
  /// The value is a transient output (OpOptions::transient): not stored, recomputed from its
  /// call when loaded. Known from the call that made the ref; set when a load finds it so.
  mutable std::atomic<bool> transient = false;
  std::weak_ptr<StorageCore> storage;  ///< where a lazy value is loaded from

  mutable std::mutex mutex;
  mutable std::shared_ptr<const void> value;     ///< the typed value once loaded or computed
  mutable const std::type_info* type = nullptr;  ///< the C++ type of `value`
  mutable EncodeFn encode = nullptr;
  /// When `value` is an encoded value (a dynamic op's output, mandala/dynamic.hpp): its copy as
  /// the type of its first typed view (Ref<T>), set at most once.
  mutable std::shared_ptr<const void> typed_copy;
  mutable const std::type_info* typed_copy_type = nullptr;

  // Transparent collections (MList / MDict). Their stored value is their shape (element
  // content ids), so `value` stays empty; the typed collection, once assembled from its
  // elements, is kept in `assembled`.
  mutable std::shared_ptr<const Elements> elements;        ///< the element refs, once known
  mutable std::shared_ptr<const void> assembled;           ///< the typed collection
  mutable const std::type_info* assembled_type = nullptr;  ///< its C++ type
  /// The element history ids follow from __list_getitem__ / __dict_getitem__ calls on this
  /// ref (it is an op's output, or an element of one), so loading them needs no query.
  bool elements_by_getitem = false;

  [[nodiscard]] bool in_memory() const {
    std::lock_guard lock(mutex);
    return value != nullptr || assembled != nullptr;
  }
};

/// Whether the state's value is an encoded value (mandala::EncodedValue) rather than a typed
/// one; the caller holds the state's mutex.
MANDALA_API bool holds_encoded_value(const RefState& state) noexcept;
/// Loads the encoded bytes of a stored value. Throws Errc::closed when the storage is gone,
/// Errc::not_found when it does not hold the value.
MANDALA_API std::vector<std::byte> load_value_bytes(const RefState& state);
[[noreturn]] MANDALA_API void throw_wrong_type(const RefState& state, const std::type_info& wanted);
[[noreturn]] MANDALA_API void throw_wrong_type_collection(const RefState& state, const std::type_info& wanted);
/// JSON rendering of the ref's stored value (loads the bytes; never the typed value).
MANDALA_API std::string ref_json(const RefState& state, std::size_t max_array_items);
/// The display text of the ref's stored value (ValueView::to_text).
MANDALA_API std::string ref_text(const RefState& state, std::size_t max_chars);

/// The element refs of a stored collection ref (loads its shape; Errc::decode when the ref is
/// not a collection of `kind`).
MANDALA_API std::shared_ptr<const Elements> load_elements(const RefState& state, CollectionKind kind);
/// Loads the encoded bytes of every state that has ids and no value, in bulk; nullopt for the
/// others. All states must belong to one storage.
MANDALA_API std::vector<std::optional<std::vector<std::byte>>> load_bytes_of(
    const std::vector<std::shared_ptr<RefState>>& states);
[[noreturn]] MANDALA_API void throw_out_of_range(const RefState& state, std::size_t index, std::size_t size);
[[noreturn]] MANDALA_API void throw_missing_key(const RefState& state, std::string_view key);

template <class T>
std::vector<std::byte> encode_erased(const void* value) {
  return encode_value(*static_cast<const T*>(value));
}

template <class T>
std::shared_ptr<RefState> make_value_state(std::shared_ptr<const T> value) {
  auto state = std::make_shared<RefState>();
  state->value = std::move(value);
  state->type = &typeid(T);
  state->encode = &encode_erased<T>;
  return state;
}
}  // namespace detail

/// A ref whose C++ type is not known statically (query results). Equality is by hid (refs
/// without ids compare by identity).
class AnyRef {
 public:
  AnyRef() = default;
  explicit AnyRef(std::shared_ptr<detail::RefState> state) : m_state(std::move(state)) {}

  /// Content id; Errc::invalid_argument for a ref made outside any storage (it has no ids).
  [[nodiscard]] const Id& cid() const { return ids().cid; }
  /// History id; same contract as cid().
  [[nodiscard]] const Id& hid() const { return ids().hid; }
  [[nodiscard]] bool has_ids() const noexcept { return m_state && m_state->has_ids; }
  /// Whether the value is a transient output (OpOptions::transient): not stored, recomputed by
  /// its op when loaded (as far as the call this ref came from, or a load, says).
  [[nodiscard]] bool transient() const noexcept { return m_state && m_state->transient; }
  /// Whether the value is loaded (or was computed in this process).
  [[nodiscard]] bool in_memory() const { return m_state && m_state->in_memory(); }
  [[nodiscard]] bool valid() const noexcept { return m_state != nullptr; }
  /// The stored value as JSON (typed arrays as {"dtype","shape","data"}).
  [[nodiscard]] std::string to_json(std::size_t max_array_items = SIZE_MAX) const {
    return detail::ref_json(state(), max_array_items);
  }
  /// The stored value's one-line display form (ValueView::to_text).
  [[nodiscard]] std::string to_text(std::size_t max_chars = SIZE_MAX) const {
    return detail::ref_text(state(), max_chars);
  }

  /// The same ref with a static type; the value is checked when it is loaded.
  template <class T>
  [[nodiscard]] auto as() const;

  [[nodiscard]] const std::shared_ptr<detail::RefState>& state_ptr() const noexcept { return m_state; }
  [[nodiscard]] const detail::RefState& state() const {
    if (!m_state) throw Error(Errc::invalid_argument, "use of an empty ref");
    return *m_state;
  }

  friend bool operator==(const AnyRef& a, const AnyRef& b) {
    if (a.has_ids() && b.has_ids()) return a.m_state->hid == b.m_state->hid;
    return a.m_state == b.m_state;
  }

 private:
  const detail::RefState& ids() const {
    const auto& s = state();
    if (!s.has_ids) throw Error(Errc::invalid_argument, "this ref was made outside a storage session and has no ids");
    return s;
  }

 protected:
  std::shared_ptr<detail::RefState> m_state;
};

namespace detail {

/// What Ref<T> adds for its kind of T: nothing for plain values; element access for MList and
/// MDict.
template <class T>
class RefBase : public AnyRef {
 public:
  using AnyRef::AnyRef;
};

/// Element access shared by list and dict refs.
template <class C>
class CollectionRefBase : public AnyRef {
 public:
  using AnyRef::AnyRef;

  /// Number of elements (loads the collection's shape, not its elements).
  [[nodiscard]] std::size_t size() const { return elements().items.size(); }
  [[nodiscard]] bool empty() const { return size() == 0; }

 protected:
  static constexpr CollectionKind kind = is_mlist<C>::value ? CollectionKind::list : CollectionKind::dict;

  const Elements& elements() const {
    const auto& s = state();
    {
      std::lock_guard lock(s.mutex);
      if (s.elements) return *s.elements;
    }
    std::shared_ptr<const Elements> loaded;
    if (s.has_ids) {
      loaded = load_elements(s, kind);
    } else {
      std::shared_ptr<const void> value;
      {
        std::lock_guard lock(s.mutex);
        value = s.assembled;
        if (value && *s.assembled_type != typeid(C)) throw_wrong_type_collection(s, typeid(C));
      }
      if (!value) throw Error(Errc::invalid_argument, "use of a collection ref that has neither elements nor ids");
      loaded = split(*std::static_pointer_cast<const C>(value));
    }
    std::lock_guard lock(s.mutex);
    if (!s.elements) s.elements = std::move(loaded);
    return *s.elements;
  }

  /// Element refs of an in-memory collection without ids (made outside a session).
  static std::shared_ptr<const Elements> split(const C& value) {
    auto out = std::make_shared<Elements>();
    out->kind = kind;
    for (const auto& item : value) {
      if constexpr (is_mlist<C>::value) {
        out->items.push_back(make_value_state(std::make_shared<const collection_element_t<C>>(item)));
      } else {
        out->keys.push_back(item.first);
        out->items.push_back(make_value_state(std::make_shared<const collection_element_t<C>>(item.second)));
      }
    }
    return out;
  }
};

template <class T>
class RefBase<MList<T>> : public CollectionRefBase<MList<T>> {
 public:
  using CollectionRefBase<MList<T>>::CollectionRefBase;

  /// The ref of element i (its value loads on its own); Errc::invalid_argument out of range.
  [[nodiscard]] Ref<T> operator[](std::size_t i) const { return at(i); }
  [[nodiscard]] Ref<T> at(std::size_t i) const {
    const auto& e = this->elements();
    if (i >= e.items.size()) throw_out_of_range(this->state(), i, e.items.size());
    return Ref<T>(e.items[i]);
  }
  /// Refs of elements [begin, end), clamped to the list (like a Python slice). Passing them
  /// to an MList parameter makes a new list whose elements keep their histories.
  [[nodiscard]] std::vector<Ref<T>> slice(std::size_t begin, std::size_t end) const {
    const auto& e = this->elements();
    end = end < e.items.size() ? end : e.items.size();
    std::vector<Ref<T>> out;
    for (std::size_t i = begin; i < end; ++i) out.emplace_back(e.items[i]);
    return out;
  }
  /// Refs of all elements, in order.
  [[nodiscard]] std::vector<Ref<T>> items() const { return slice(0, SIZE_MAX); }
};

template <class K, class V>
class RefBase<MDict<K, V>> : public CollectionRefBase<MDict<K, V>> {
 public:
  using CollectionRefBase<MDict<K, V>>::CollectionRefBase;

  /// The ref of the value under `key`; Errc::not_found when absent.
  [[nodiscard]] Ref<V> operator[](std::string_view key) const { return at(key); }
  [[nodiscard]] Ref<V> at(std::string_view key) const {
    const auto& e = this->elements();
    const auto i = find(e, key);
    if (i == e.keys.size()) throw_missing_key(this->state(), key);
    return Ref<V>(e.items[i]);
  }
  [[nodiscard]] bool contains(std::string_view key) const {
    const auto& e = this->elements();
    return find(e, key) != e.keys.size();
  }
  /// The keys, sorted.
  [[nodiscard]] std::vector<std::string> keys() const { return this->elements().keys; }
  /// (key, value ref) pairs sorted by key.
  [[nodiscard]] std::vector<std::pair<std::string, Ref<V>>> items() const {
    const auto& e = this->elements();
    std::vector<std::pair<std::string, Ref<V>>> out;
    for (std::size_t i = 0; i < e.keys.size(); ++i) out.emplace_back(e.keys[i], Ref<V>(e.items[i]));
    return out;
  }

 private:
  static std::size_t find(const Elements& e, std::string_view key) {
    std::size_t lo = 0, hi = e.keys.size();
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (e.keys[mid] < key) lo = mid + 1;
      else hi = mid;
    }
    return lo < e.keys.size() && e.keys[lo] == key ? lo : e.keys.size();
  }
};

}  // namespace detail

/// A ref to a value of type T. `*ref`, `ref.get()` and `ref->` load the value on first use
/// (thread-safe) and throw Errc::decode when the stored value is not a T, Errc::closed when
/// the storage was closed before a lazy value was loaded.
///
/// For an MList<T> or MDict<std::string, V>, the ref also gives element refs (`size()`,
/// `ref[i]` / `ref["key"]`, `slice`, `items`, `keys`) that load their values on their own;
/// loading the whole collection loads the elements it does not hold yet, in bulk.
template <class T>
class Ref : public detail::RefBase<T> {
 public:
  using value_type = T;
  Ref() = default;
  explicit Ref(std::shared_ptr<detail::RefState> state) : detail::RefBase<T>(std::move(state)) {}
  /// A ref to a plain value, without ids (what an op returns outside a session).
  static Ref from_value(T value) {
    if constexpr (is_transparent_v<T>) {
      auto state = std::make_shared<detail::RefState>();
      state->assembled = std::make_shared<const T>(std::move(value));
      state->assembled_type = &typeid(T);
      return Ref(std::move(state));
    } else {
      return Ref(detail::make_value_state<T>(std::make_shared<const T>(std::move(value))));
    }
  }

  [[nodiscard]] const T& get() const { return *shared(); }
  [[nodiscard]] const T& operator*() const { return get(); }
  [[nodiscard]] const T* operator->() const { return &get(); }

  /// The value, shared (loads it if needed).
  [[nodiscard]] std::shared_ptr<const T> shared() const {
    const auto& s = this->state();
    if constexpr (is_transparent_v<T>) {
      return assemble(s);
    } else {
      std::vector<std::byte> bytes;
      {
        std::lock_guard lock(s.mutex);
        if (s.value) {
          if (*s.type == typeid(T) || !detail::holds_encoded_value(s)) return checked(s);
          if (s.typed_copy) return checked_copy(s);
          bytes = s.encode(s.value.get());
        }
      }
      if (bytes.empty()) bytes = detail::load_value_bytes(s);  // outside the lock: may take long
      auto decoded = std::make_shared<const T>(decode_value<T>(std::span<const std::byte>(bytes)));
      std::lock_guard lock(s.mutex);
      if (!s.value) {
        s.value = std::move(decoded);
        s.type = &typeid(T);
        s.encode = &detail::encode_erased<T>;
      } else if (*s.type != typeid(T) && detail::holds_encoded_value(s)) {
        if (!s.typed_copy) {
          s.typed_copy = std::move(decoded);
          s.typed_copy_type = &typeid(T);
        }
        return checked_copy(s);
      }
      return checked(s);
    }
  }

 private:
  static std::shared_ptr<const T> checked(const detail::RefState& s) {
    if (*s.type != typeid(T)) detail::throw_wrong_type(s, typeid(T));
    return std::static_pointer_cast<const T>(s.value);
  }
  static std::shared_ptr<const T> checked_copy(const detail::RefState& s) {
    if (*s.typed_copy_type != typeid(T)) detail::throw_wrong_type(s, typeid(T));
    return std::static_pointer_cast<const T>(s.typed_copy);
  }

  // A collection is assembled from its elements: those not in memory load in one bulk query.
  std::shared_ptr<const T> assemble(const detail::RefState& s) const {
    {
      std::lock_guard lock(s.mutex);
      if (s.assembled) {
        if (*s.assembled_type != typeid(T)) detail::throw_wrong_type_collection(s, typeid(T));
        return std::static_pointer_cast<const T>(s.assembled);
      }
    }
    const auto& items = this->elements().items;
    using E = collection_element_t<T>;
    if constexpr (!is_transparent_v<E>) {
      auto bytes = detail::load_bytes_of(items);
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (!bytes[i]) continue;
        auto decoded = std::make_shared<const E>(detail::at_path(
            detail::index_segment(i), [&] { return decode_value<E>(std::span<const std::byte>(*bytes[i])); }));
        std::lock_guard lock(items[i]->mutex);
        if (!items[i]->value) {
          items[i]->value = std::move(decoded);
          items[i]->type = &typeid(E);
          items[i]->encode = &detail::encode_erased<E>;
        }
      }
    }
    auto out = std::make_shared<T>();
    if constexpr (is_mlist<T>::value) {
      out->reserve(items.size());
      for (const auto& item : items) out->push_back(*Ref<E>(item).shared());
    } else {
      const auto& keys = this->elements().keys;
      for (std::size_t i = 0; i < items.size(); ++i) out->emplace(keys[i], *Ref<E>(items[i]).shared());
    }
    std::lock_guard lock(s.mutex);
    if (!s.assembled) {
      s.assembled = std::move(out);
      s.assembled_type = &typeid(T);
    }
    if (*s.assembled_type != typeid(T)) detail::throw_wrong_type_collection(s, typeid(T));
    return std::static_pointer_cast<const T>(s.assembled);
  }
};

/// Refs cannot be stored inside plain values: their histories would be lost.
template <class T>
struct Codec<Ref<T>> {
  static_assert(sizeof(T) == 0,
                "mandala: a Ref cannot be stored inside a plain value (a std::vector<Ref<T>>, a struct field...). "
                "Declare the op parameter or result as mandala::MList<T> (or MDict<std::string, T>): a vector or "
                "map of refs passed to it keeps each element's history.");
};
template <>
struct Codec<AnyRef> {
  template <class U = void>
  static void encode(Encoder&, const AnyRef&) {
    static_assert(sizeof(U) == 0,
                  "mandala: an AnyRef cannot be stored inside a plain value; declare the op parameter as "
                  "mandala::MList<T> or MDict<std::string, T> and pass typed refs (ref.as<T>()).");
  }
  template <class U = void>
  static AnyRef decode(ValueView) {
    static_assert(sizeof(U) == 0, "mandala: an AnyRef cannot be decoded from a stored value");
    return {};
  }
};

template <class T>
auto AnyRef::as() const {
  return Ref<T>(m_state);
}

template <class T>
struct is_ref : std::false_type {};
template <class T>
struct is_ref<Ref<T>> : std::true_type {};

}  // namespace mandala

template <>
struct std::hash<mandala::AnyRef> {
  std::size_t operator()(const mandala::AnyRef& r) const {
    return r.has_ids() ? std::hash<mandala::Id>{}(r.hid()) : std::hash<const void*>{}(r.state_ptr().get());
  }
};
