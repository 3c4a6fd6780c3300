#pragma once
// Refs: handles to values with a content id (cid) and a history id (hid). A ref returned by a
// memoized call is lazy: its value is loaded from the storage on first use and then kept.

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "mandala/codec.hpp"
#include "mandala/id.hpp"

namespace mandala {

namespace detail {
class StorageCore;

/// Encodes the typed value behind a `const void*` (set together with the value).
using EncodeFn = std::vector<std::byte> (*)(const void* value);

/// Shared state of a ref. Ids never change once set; the in-memory value is set at most once
/// (under `mutex`) and never mutated.
struct RefState {
  Id cid;
  Id hid;
  bool has_ids = false;                ///< false for values made outside any storage
  std::weak_ptr<StorageCore> storage;  ///< where a lazy value is loaded from

  mutable std::mutex mutex;
  mutable std::shared_ptr<const void> value;     ///< the typed value once loaded or computed
  mutable const std::type_info* type = nullptr;  ///< the C++ type of `value`
  mutable EncodeFn encode = nullptr;

  [[nodiscard]] bool in_memory() const {
    std::lock_guard lock(mutex);
    return value != nullptr;
  }
};

/// Loads the encoded bytes of a stored value. Throws Errc::closed when the storage is gone,
/// Errc::not_found when it does not hold the value.
std::vector<std::byte> load_value_bytes(const RefState& state);
[[noreturn]] void throw_wrong_type(const RefState& state, const std::type_info& wanted);
/// JSON rendering of the ref's stored value (loads the bytes; never the typed value).
std::string ref_json(const RefState& state, std::size_t max_array_items);

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
  /// Whether the value is loaded (or was computed in this process).
  [[nodiscard]] bool in_memory() const { return m_state && m_state->in_memory(); }
  [[nodiscard]] bool valid() const noexcept { return m_state != nullptr; }
  /// The stored value as JSON (typed arrays as {"dtype","shape","data"}).
  [[nodiscard]] std::string to_json(std::size_t max_array_items = SIZE_MAX) const {
    return detail::ref_json(state(), max_array_items);
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

/// A ref to a value of type T. `*ref`, `ref.get()` and `ref->` load the value on first use
/// (thread-safe) and throw Errc::decode when the stored value is not a T, Errc::closed when
/// the storage was closed before a lazy value was loaded.
template <class T>
class Ref : public AnyRef {
 public:
  using value_type = T;
  Ref() = default;
  explicit Ref(std::shared_ptr<detail::RefState> state) : AnyRef(std::move(state)) {}
  /// A ref to a plain value, without ids (what an op returns outside a session).
  static Ref from_value(T value) {
    return Ref(detail::make_value_state<T>(std::make_shared<const T>(std::move(value))));
  }

  [[nodiscard]] const T& get() const { return *shared(); }
  [[nodiscard]] const T& operator*() const { return get(); }
  [[nodiscard]] const T* operator->() const { return &get(); }

  /// The value, shared (loads it if needed).
  [[nodiscard]] std::shared_ptr<const T> shared() const {
    const auto& s = state();
    {
      std::lock_guard lock(s.mutex);
      if (s.value) return checked(s);
    }
    auto bytes = detail::load_value_bytes(s);  // outside the lock: may take long
    auto decoded = std::make_shared<const T>(decode_value<T>(std::span<const std::byte>(bytes)));
    std::lock_guard lock(s.mutex);
    if (!s.value) {
      s.value = std::move(decoded);
      s.type = &typeid(T);
      s.encode = &detail::encode_erased<T>;
    }
    return checked(s);
  }

 private:
  static std::shared_ptr<const T> checked(const detail::RefState& s) {
    if (*s.type != typeid(T)) detail::throw_wrong_type(s, typeid(T));
    return std::static_pointer_cast<const T>(s.value);
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
