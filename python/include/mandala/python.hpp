#pragma once
// C++ ops called from Python. A Python extension module built with mandala_add_python_ops()
// (python/CMakeLists.txt, docs/python.md) exports typed ops:
//
//   #include "mandala/python.hpp"
//   const auto scale = mandala::op("scale", {"x", "k"}, [](double x, std::int64_t k) { return x * k; });
//   PYBIND11_MODULE(my_ops, m) { mandala::python::export_op(m, scale); }
//
// and Python calls them like any @op: `with storage: y = my_ops.scale(2.0, 3)`. The call is the
// typed op's own (the same op, the same ids as in a C++ program), memoized in the storage of
// the `with` block; arguments are Python values (encoded by the package, decoded here as the
// parameter's C++ type) or Refs of any origin.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <span>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#include "mandala/mandala.hpp"

namespace mandala::python {

namespace detail {

/// Argument I of a call from Python as a Ref<T>: a ref of any storage, or a value's encoding.
template <class T>
Ref<T> argument(const pybind11::handle& arg, const std::string& op, const std::string& param) {
  if (pybind11::isinstance<AnyRef>(arg)) return arg.cast<const AnyRef&>().as<T>();
  if (!pybind11::isinstance<pybind11::bytes>(arg))
    throw Error(Errc::invalid_argument, "op " + op + ": input '" + param + "' must be a Ref or an encoded value");
  const std::string_view data = arg.cast<std::string_view>();
  try {
    return Ref<T>::from_value(
        decode_value<T>(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data.data()), data.size())));
  } catch (const Error& e) {
    throw Error(Errc::invalid_argument, "op " + op + ": input '" + param +
                                            "' is not a value of the C++ parameter's type (" + e.what() +
                                            "); pass a value of that type (docs/storage-format.md says which "
                                            "Python values map to which C++ types)");
  }
}

template <class Result>
std::vector<AnyRef> refs_of(Result&& result) {
  if constexpr (std::is_void_v<std::remove_cvref_t<Result>>) {
    return {};
  } else if constexpr (requires { std::tuple_size<std::remove_cvref_t<Result>>::value; }) {
    return std::apply([](auto&&... r) { return std::vector<AnyRef>{AnyRef(r)...}; }, std::forward<Result>(result));
  } else {
    return {AnyRef(result)};
  }
}

/// Calls `op` with the first K parameters given (the others take their declared defaults),
/// memoized in `storage`, or as a plain function when `storage` is null.
template <class R, class... Ps, std::size_t... I>
std::vector<AnyRef> call_with(const Op<R, Ps...>& op, Storage* storage, const pybind11::list& args,
                              std::index_sequence<I...>) {
  using Params = std::tuple<Ps...>;
  auto refs = std::make_tuple(argument<std::tuple_element_t<I, Params>>(args[I], op.name(), op.inputs()[I])...);
  const auto call = [&]<class... As>(As&&... as) {
    if constexpr (std::is_void_v<R>) {
      if (storage != nullptr) storage->call(op, std::forward<As>(as)...);
      else op(std::forward<As>(as)...);
      return std::vector<AnyRef>{};
    } else {
      if (storage != nullptr) return refs_of(op.call_in(storage->core(), std::forward<As>(as)...));
      return refs_of(op(std::forward<As>(as)...));
    }
  };
  const pybind11::gil_scoped_release release;  // the op and the engine run without the GIL
  return std::apply(call, std::move(refs));
}

template <class R, class... Ps, std::size_t... K>
std::vector<AnyRef> dispatch(const Op<R, Ps...>& op, Storage* storage, const pybind11::list& args,
                             std::index_sequence<K...>) {
  std::vector<AnyRef> out;
  const bool found =
      ((args.size() == K ? (out = call_with(op, storage, args, std::make_index_sequence<K>{}), true) : false) || ...);
  if (!found)
    throw Error(Errc::invalid_argument, "op " + op.name() + " takes at most " + std::to_string(sizeof...(Ps)) +
                                            " arguments, got " + std::to_string(args.size()));
  return out;
}

}  // namespace detail

/// Adds `op` to the module `m` as a callable of the mandala package (mandala.CppOp) named like
/// the op. Called from Python inside `with storage:` it is memoized there; outside, it runs as
/// a plain function. Positional and keyword arguments bind to the op's parameters by name;
/// parameters left out take their declared defaults (only trailing ones may be left out).
template <class R, class... Ps>
void export_op(pybind11::module_& m, const Op<R, Ps...>& op) {
  namespace py = pybind11;
  py::module_::import("mandala._core");  // the Ref and Storage types the call takes and returns
  const auto call = py::cpp_function([op](py::object storage, const py::list& args) {
    Storage* s = storage.is_none() ? nullptr : storage.cast<Storage*>();
    return detail::dispatch(op, s, args, std::make_index_sequence<sizeof...(Ps) + 1>{});
  });
  const py::object cpp_op = py::module_::import("mandala.cpp_ops").attr("CppOp");
  m.attr(op.name().c_str()) = cpp_op(op.name(), op.version(), op.inputs(), op.outputs(), call, m.attr("__name__"));
}

}  // namespace mandala::python
