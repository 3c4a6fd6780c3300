// mandala._core: the Python extension over libmandala's dynamic boundary (mandala/dynamic.hpp).
// Python values are encoded by the library's own encoder, so a value has the same content id in
// Python and in C++ (docs/storage-format.md, 1.9); values of other types are reduced to encodable
// ones by mandala/_values.py (tagged values, pickles). The pure-Python layer (python/mandala)
// builds the original's API on this.
// Functions here run with the GIL held, except the engine's part of an op call (Op.call releases it
// and takes it back to run the op's Python function), Storage.flush, the hashing of content_id and
// of a large numpy array held without a copy, and the copy of a large numpy array into its encoding.

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "frame_api.hpp"
#include "mandala/mandala.hpp"

namespace py = pybind11;
namespace md = mandala;

namespace {

// Deeper values are refused when encoding (the decoder's own limit is higher).
constexpr int max_depth = 256;

const char* const supported_types =
    "stored are None, bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset, numpy arrays and "
    "scalars, pandas DataFrame, Series and Index, dataclasses, and other objects that can be pickled";

// Arrays at least this large are copied into their encoding without the GIL.
constexpr std::size_t release_gil_min_bytes = std::size_t{1} << 20;

// The Python half of the value conversion (mandala/_values.py).
py::object values_module() { return py::module_::import("mandala._values"); }

// Whether each open storage allows loading pickles (Storage(..., allow_pickle=)); the GIL guards
// it. Never destroyed: it may be used until the interpreter's last reference is gone.
std::map<std::weak_ptr<md::detail::StorageCore>, bool, std::owner_less<>>& pickle_policies() {
  static auto* policies = new std::map<std::weak_ptr<md::detail::StorageCore>, bool, std::owner_less<>>();
  return *policies;
}

void set_pickle_policy(const std::shared_ptr<md::detail::StorageCore>& core, bool allow) {
  auto& policies = pickle_policies();
  std::erase_if(policies, [](const auto& entry) { return entry.first.expired(); });
  policies[core] = allow;
}

// Whether the storage a ref is loaded from allows pickles (false for a ref of no storage).
bool allows_pickle(const md::AnyRef& ref) {
  const auto& state = ref.state_ptr();
  if (!state) return false;
  const auto& policies = pickle_policies();
  const auto it = policies.find(state->storage);
  return it != policies.end() && it->second;
}

// The name a ValuePointer stores in place of its object (encoded as a pointer, as C++ does).
struct PointerName {
  std::string name;
};

// A value that cannot be encoded, with the path to it inside the argument.
struct EncodeFailure {
  std::string what;
  std::string path;
  bool type_error = true;
  std::string reason{};  ///< why it cannot be stored, after the path (e.g. why pickling failed)
};

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__qualname__")); }

void encode(md::Encoder& e, py::handle obj, int depth);

// numpy when the program has imported it (a value cannot be an ndarray otherwise), else None.
py::object loaded_numpy() {
  PyObject* module = PyImport_GetModule(py::str("numpy").ptr());
  if (module == nullptr) {
    if (PyErr_Occurred()) throw py::error_already_set();
    return py::none();
  }
  return py::reinterpret_steal<py::object>(module);
}

// A numpy array of a typed-array dtype (integers, floats, complex, bool) as one typed array: its
// dtype, shape, and its elements in C order, little-endian, as a flat byte array (`raw`: a view of
// the array itself when it is C-ordered and little-endian, else of a C-ordered copy). Nothing for
// another dtype (encoded through mandala/_values.py).
struct TypedElements {
  md::Dtype dtype{};
  std::vector<std::uint64_t> shape;
  py::object raw;
};

std::optional<TypedElements> typed_elements(py::handle obj, const py::object& numpy) {
  const py::object dtype = obj.attr("dtype");
  const std::string kind = py::str(dtype.attr("kind"));
  const auto size = dtype.attr("itemsize").cast<std::size_t>();
  std::optional<md::Dtype> t;
  if (kind == "i")
    t = size == 1 ? md::Dtype::i8 : size == 2 ? md::Dtype::i16 : size == 4 ? md::Dtype::i32 : md::Dtype::i64;
  else if (kind == "u")
    t = size == 1 ? md::Dtype::u8 : size == 2 ? md::Dtype::u16 : size == 4 ? md::Dtype::u32 : md::Dtype::u64;
  else if (kind == "f" && size == 2) t = md::Dtype::f16;
  else if (kind == "f" && size == 4) t = md::Dtype::f32;
  else if (kind == "f" && size == 8) t = md::Dtype::f64;
  else if (kind == "c" && size == 8) t = md::Dtype::c64;
  else if (kind == "c" && size == 16) t = md::Dtype::c128;
  else if (kind == "b" && size == 1) t = md::Dtype::boolean;
  if (!t) return std::nullopt;
  TypedElements out;
  out.dtype = *t;
  for (const auto d : obj.attr("shape")) out.shape.push_back(d.cast<std::uint64_t>());
  const py::object little = dtype.attr("newbyteorder")("<");
  const py::object contiguous = numpy.attr("ascontiguousarray")(obj, py::arg("dtype") = little);
  // The element bytes whatever the dtype: a flat byte view of the C-ordered array (no copy).
  out.raw = contiguous.attr("reshape")(-1).attr("view")(numpy.attr("uint8"));
  return out;
}

// As one typed array (the encoding of a std::vector<double> for a 1-D float64 array), any rank;
// false for another dtype.
bool encode_ndarray(md::Encoder& e, py::handle obj, const py::object& numpy) {
  const auto t = typed_elements(obj, numpy);
  if (!t) return false;
  const py::buffer_info info = py::reinterpret_borrow<py::buffer>(t->raw).request();
  const auto bytes = static_cast<std::size_t>(info.size);
  if (bytes >= release_gil_min_bytes) {
    // The buffer stays alive (`raw` holds it) while other Python threads run.
    const py::gil_scoped_release no_gil;
    e.typed_array(t->dtype, t->shape, info.ptr, bytes);
  } else {
    e.typed_array(t->dtype, t->shape, info.ptr, bytes);
  }
  return true;
}

// ---- numpy arrays held without a copy ----------------------------------------------------------
// An op's argument that is a large numpy array of a typed-array dtype is hashed where it lies (no
// GIL) and passed as a deferred ref (md::deferred_atom_ref): the engine encodes it only when it
// must store it. A memoized call whose input is stored never copies it.

// The buffer of the array (exported by numpy: the array stays alive and cannot be resized while
// it is held) and what its encoding needs.
struct HeldArray {
  Py_buffer view{};
  md::Dtype dtype{};
  std::vector<std::uint64_t> shape;
  md::Id cid;
};

// Held arrays dropped since the last release_dropped_arrays (by any thread, with or without the
// GIL: the engine drops refs under its own lock, where taking the GIL could deadlock with a
// thread that holds it and waits for that lock). Never destroyed (used until the process ends).
std::mutex& dropped_mutex() {
  static auto* m = new std::mutex();
  return *m;
}
std::vector<HeldArray*>& dropped_arrays() {
  static auto* v = new std::vector<HeldArray*>();
  return *v;
}

void drop_held(const void* held) {
  const std::lock_guard lock(dropped_mutex());
  dropped_arrays().push_back(static_cast<HeldArray*>(const_cast<void*>(held)));
}

// With the GIL: gives the buffers of dropped held arrays back to numpy. Called by every function
// here that makes or may drop a held array, before it returns to Python.
void release_dropped_arrays() {
  std::vector<HeldArray*> dropped;
  {
    const std::lock_guard lock(dropped_mutex());
    dropped.swap(dropped_arrays());
  }
  for (auto* held : dropped) {
    PyBuffer_Release(&held->view);
    delete held;
  }
}

// The encoding of a held array (called by the engine, without the GIL); an error when the array
// was changed in place since its content id was computed (its bytes would not be that value).
std::vector<std::byte> encode_held(const void* value) {
  const auto& held = *static_cast<const HeldArray*>(value);
  md::Encoder e;
  e.typed_array(held.dtype, held.shape, held.view.buf, static_cast<std::size_t>(held.view.len));
  auto bytes = std::move(e).take();
  if (md::detail::content_id(bytes) != held.cid)
    throw md::Error(md::Errc::invalid_argument,
                    "a numpy array passed to an op was changed in place after the call took it (its content id " +
                        held.cid.hex() + " no longer matches its elements); pass a copy (x.copy()) to change it");
  return bytes;
}

// Arrays at least this large are held without a copy (smaller ones are encoded: a copy costs less
// than holding them).
constexpr std::size_t hold_min_bytes = std::size_t{64} << 10;

// Whether arrays are held (false: every array is encoded, as for smaller ones; for the benchmark
// comparing both, bench/python). The GIL guards it.
bool hold_arrays = true;

// A numpy array of a typed-array dtype of at least hold_min_bytes, held with its content id
// (hashed without the GIL); null for any other value.
std::shared_ptr<const HeldArray> hold_array(py::handle obj) {
  if (!hold_arrays) return nullptr;
  const py::object numpy = loaded_numpy();
  if (numpy.is_none() || !py::type::handle_of(obj).is(numpy.attr("ndarray"))) return nullptr;
  if (obj.attr("nbytes").cast<std::size_t>() < hold_min_bytes) return nullptr;
  auto t = typed_elements(obj, numpy);
  if (!t) return nullptr;
  auto* held = new HeldArray();
  if (PyObject_GetBuffer(t->raw.ptr(), &held->view, PyBUF_SIMPLE) != 0) {
    delete held;
    throw py::error_already_set();
  }
  held->dtype = t->dtype;
  held->shape = std::move(t->shape);
  std::shared_ptr<const HeldArray> out(held, [](const HeldArray* h) { drop_held(h); });
  const py::gil_scoped_release no_gil;
  held->cid =
      md::typed_array_content_id(held->dtype, held->shape, held->view.buf, static_cast<std::size_t>(held->view.len));
  return out;
}

// A held array as a ref without history (the ids of the array passed as a raw value).
md::AnyRef held_ref(const std::shared_ptr<const HeldArray>& held) {
  return md::deferred_atom_ref(held->cid, held, &encode_held);
}

// An int beyond 64 bits (ext type 4): its sign and big-endian magnitude.
void encode_big_int(md::Encoder& e, py::handle obj) {
  const bool negative = PyObject_RichCompareBool(obj.ptr(), py::int_(0).ptr(), Py_LT) == 1;
  const py::object magnitude = py::reinterpret_steal<py::object>(PyNumber_Absolute(obj.ptr()));
  if (!magnitude) throw py::error_already_set();
  const auto bits = magnitude.attr("bit_length")().cast<std::size_t>();
  const py::bytes data = magnitude.attr("to_bytes")((bits + 7) / 8, "big");
  const std::string_view view = data;
  e.big_integer(negative, std::as_bytes(std::span(view.data(), view.size())));
}

void encode(md::Encoder& e, py::handle obj, int depth);

// A value of no core type, as mandala/_values.py reduces it: a plain value, a float32, a tagged
// value or a pickle; an EncodeFailure when it can be stored in none of these ways.
void encode_reduced(md::Encoder& e, py::handle obj, int depth) {
  py::tuple reduced;
  try {
    reduced = values_module().attr("reduce")(obj);
  } catch (py::error_already_set& err) {
    if (!err.matches(PyExc_TypeError)) throw;
    throw EncodeFailure{"a value of type '" + type_name(obj) + "'", "", true, py::str(err.value())};
  }
  const auto how = reduced[0].cast<std::string>();
  if (how == "value") {
    encode(e, reduced[1], depth + 1);
  } else if (how == "float32") {
    e.float32(reduced[1].cast<float>());
  } else if (how == "tagged") {
    e.tag(reduced[1].cast<std::string>());
    encode(e, reduced[2], depth + 1);
  } else if (how == "pickle") {
    const std::string_view data = reduced[2].cast<py::bytes>();
    e.pickle(reduced[1].cast<std::string>(), std::as_bytes(std::span(data.data(), data.size())));
  } else {
    throw py::value_error("mandala._values.reduce returned an unknown form '" + how + "'");
  }
}

std::vector<std::byte> encode_part(py::handle obj, int depth) {
  md::Encoder sub;
  encode(sub, obj, depth);
  return std::move(sub).take();
}

template <class F>
void at_path(const std::string& segment, F&& f) {
  try {
    f();
  } catch (EncodeFailure& failure) {
    failure.path = segment + failure.path;
    throw;
  }
}

std::string key_segment(py::handle key) { return "[" + std::string(py::repr(key)) + "]"; }

void encode(md::Encoder& e, py::handle obj, int depth) {
  if (depth > max_depth)
    throw EncodeFailure{
        "a value nested more than " + std::to_string(max_depth) + " levels deep (a container that contains itself?)",
        "", false};
  PyObject* p = obj.ptr();
  if (obj.is_none()) {
    e.nil();
  } else if (PyBool_Check(p)) {
    e.boolean(p == Py_True);
  } else if (PyLong_CheckExact(p)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(p, &overflow);
    if (overflow == 0) {
      if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
      e.integer(v);
    } else {
      // Beyond 64 bits: the encoder writes the shortest form (ext type 4 outside [-2^63, 2^64 - 1]).
      encode_big_int(e, obj);
    }
  } else if (PyFloat_CheckExact(p)) {
    e.float64(PyFloat_AS_DOUBLE(p));
  } else if (PyUnicode_CheckExact(p)) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(p, &size);
    if (data == nullptr) throw py::error_already_set();
    e.string(std::string_view(data, static_cast<std::size_t>(size)));
  } else if (PyBytes_CheckExact(p)) {
    e.binary(std::as_bytes(std::span(PyBytes_AS_STRING(p), static_cast<std::size_t>(PyBytes_GET_SIZE(p)))));
  } else if (PyList_CheckExact(p) || PyTuple_CheckExact(p)) {
    // A tuple is the tagged value "tuple" (so it loads back as a tuple); a list an array.
    if (PyTuple_CheckExact(p)) e.tag("tuple");
    const auto seq = py::reinterpret_borrow<py::sequence>(obj);
    const auto n = seq.size();
    e.array_header(n);
    for (std::size_t i = 0; i < n; ++i) at_path("[" + std::to_string(i) + "]", [&] { encode(e, seq[i], depth + 1); });
  } else if (PyDict_CheckExact(p)) {
    // The keys are encoded and sorted by their bytes first; the values are then written in that
    // order straight into the output (a large value is not copied through a buffer of its own).
    struct Entry {
      std::vector<std::byte> key;
      py::object key_object, value;
    };
    std::vector<Entry> entries;
    for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(obj)) {
      Entry entry{{}, py::reinterpret_borrow<py::object>(k), py::reinterpret_borrow<py::object>(v)};
      try {
        entry.key = encode_part(k, depth + 1);
      } catch (EncodeFailure& failure) {
        failure.path = key_segment(k) + " (the key)" + failure.path;
        throw;
      }
      entries.push_back(std::move(entry));
    }
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
    for (std::size_t i = 1; i < entries.size(); ++i)
      if (entries[i].key == entries[i - 1].key)
        throw md::Error(md::Errc::invalid_argument, "map with two keys of the same encoding");
    e.map_header(entries.size());
    for (const auto& entry : entries) {
      e.raw(entry.key);
      try {
        encode(e, entry.value, depth + 1);
      } catch (EncodeFailure& failure) {
        failure.path = key_segment(entry.key_object) + failure.path;
        throw;
      }
    }
  } else if (PyAnySet_CheckExact(p)) {
    // The tagged value "set" / "frozenset" of an array sorted by the elements' encoded bytes
    // (as a C++ std::set): the id does not depend on the iteration order.
    e.tag(PyFrozenSet_CheckExact(p) ? "frozenset" : "set");
    std::vector<std::vector<std::byte>> elements;
    for (const auto& x : obj)
      at_path("{" + std::string(py::repr(x)) + "}", [&] { elements.push_back(encode_part(x, depth + 1)); });
    e.array_sorted(std::move(elements));
  } else if (py::isinstance<md::AnyRef>(obj)) {
    throw EncodeFailure{"a value of type 'Ref'", ""};  // never pickled: it would lose its history
  } else if (py::isinstance<PointerName>(obj)) {
    e.pointer(obj.cast<const PointerName&>().name);
  } else if (const py::object numpy = loaded_numpy();
             !numpy.is_none() && py::type::handle_of(obj).is(numpy.attr("ndarray")) && encode_ndarray(e, obj, numpy)) {
    // a typed array
  } else {
    encode_reduced(e, obj, depth);
  }
}

// Encodes a Python value; TypeError (ValueError for too deep a value) that names `what` and the
// path to the value inside it.
md::EncodedValue encode_value(py::handle obj, const std::string& what) {
  md::Encoder e;
  try {
    encode(e, obj, 0);
  } catch (const EncodeFailure& f) {
    std::string message = "mandala cannot store " + f.what;
    if (!f.path.empty()) message += " at " + what + f.path;
    else if (!what.empty()) message += " (" + what + ")";
    if (!f.reason.empty()) message += ": " + f.reason;
    message += f.type_error ? std::string(f.reason.empty() ? ": " : "; ") + supported_types : "";
    if (f.type_error) throw py::type_error(message);
    throw py::value_error(message);
  }
  return md::EncodedValue(std::move(e).take());
}

// What loading a value may do.
struct Loading {
  bool allow_pickle = false;  ///< unpickle pickled objects (else PickleNotAllowedError)
};

py::object decode(md::ValueView v, bool as_key, const Loading& how);

py::object decode_typed_array(const md::TypedArrayView& t) {
  const py::module_ numpy = py::module_::import("numpy");
  static const std::map<md::Dtype, const char*> names{
      {md::Dtype::i8, "<i1"},    {md::Dtype::i16, "<i2"},    {md::Dtype::i32, "<i4"}, {md::Dtype::i64, "<i8"},
      {md::Dtype::u8, "<u1"},    {md::Dtype::u16, "<u2"},    {md::Dtype::u32, "<u4"}, {md::Dtype::u64, "<u8"},
      {md::Dtype::f32, "<f4"},   {md::Dtype::f64, "<f8"},    {md::Dtype::f16, "<f2"}, {md::Dtype::c64, "<c8"},
      {md::Dtype::c128, "<c16"}, {md::Dtype::boolean, "|b1"}};
  py::tuple shape(t.shape.size());
  for (std::size_t i = 0; i < t.shape.size(); ++i) shape[i] = py::int_(t.shape[i]);
  py::object out = numpy.attr("empty")(shape, py::arg("dtype") = names.at(t.dtype));
  if (!t.data.empty()) {
    const py::object raw = out.attr("reshape")(-1).attr("view")(numpy.attr("uint8"));
    const py::buffer_info info = py::reinterpret_borrow<py::buffer>(raw).request(true);
    std::memcpy(info.ptr, t.data.data(), t.data.size());
  }
  return out;
}

py::object decode_big_int(const md::BigIntegerView& b) {
  const py::bytes magnitude(reinterpret_cast<const char*>(b.magnitude.data()), b.magnitude.size());
  py::object value = py::module_::import("builtins").attr("int").attr("from_bytes")(magnitude, "big");
  if (b.negative) value = py::reinterpret_steal<py::object>(PyNumber_Negative(value.ptr()));
  if (!value) throw py::error_already_set();
  return value;
}

py::object decode(md::ValueView v, bool as_key, const Loading& how) {
  switch (v.kind()) {
    case md::Kind::nil: return py::none();
    case md::Kind::boolean: return py::bool_(v.as_bool());
    case md::Kind::integer:
      if (v.is_negative_integer()) return py::int_(v.as_int64());
      return py::reinterpret_steal<py::object>(PyLong_FromUnsignedLongLong(v.as_uint64()));
    case md::Kind::float32: return py::float_(v.as_float32());
    case md::Kind::float64: return py::float_(v.as_float64());
    case md::Kind::string: {
      const auto s = v.as_string();
      return py::str(s.data(), s.size());
    }
    case md::Kind::binary: {
      const auto b = v.as_binary();
      return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
    }
    case md::Kind::array: {
      // An array as a dict key (written by C++, or by an older package for a tuple) comes back as
      // a tuple (a list is not hashable).
      if (as_key) {
        py::tuple out(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) out[i] = decode(v.at(i), true, how);
        return out;
      }
      py::list out(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = decode(v.at(i), false, how);
      return out;
    }
    case md::Kind::map: {
      if (as_key)
        throw py::type_error("mandala cannot load a map used as a map key into Python (a dict is not hashable)");
      py::dict out;
      for (std::size_t i = 0; i < v.size(); ++i)
        out[decode(v.key_at(i), true, how)] = decode(v.value_at(i), false, how);
      return out;
    }
    case md::Kind::typed_array: return decode_typed_array(v.as_typed_array());
    case md::Kind::pointer: return py::cast(PointerName{std::string(v.as_pointer())});
    case md::Kind::collection:
      throw py::value_error("the stored value is the shape of a collection; load it through its ref");
    case md::Kind::big_integer: return decode_big_int(v.as_big_integer());
    case md::Kind::pickle: {
      const auto p = v.as_pickle();
      const py::bytes data(reinterpret_cast<const char*>(p.data.data()), p.data.size());
      return values_module().attr("unpickle")(std::string(p.type_name), data, how.allow_pickle);
    }
    case md::Kind::tagged: {
      const auto tag = v.tag();
      if (const auto items = v.tagged_value();
          items.kind() == md::Kind::array && (tag == "tuple" || tag == "set" || tag == "frozenset")) {
        // The elements of a tuple as the tuple's position asks (hashable for a key); those of a
        // set always hashable. A "set" as a key (written by another program) is a frozenset.
        if (tag == "tuple") {
          py::tuple out(items.size());
          for (std::size_t i = 0; i < items.size(); ++i) out[i] = decode(items.at(i), as_key, how);
          return out;
        }
        py::list elements(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) elements[i] = decode(items.at(i), true, how);
        PyObject* set = tag == "set" && !as_key ? PySet_New(elements.ptr()) : PyFrozenSet_New(elements.ptr());
        if (set == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(set);
      }
      py::object payload = decode(v.tagged_value(), false, how);
      return values_module().attr("build")(std::string(v.tag()), payload);
    }
  }
  throw py::value_error("unknown kind of value");
}

py::object decode_bytes(const std::vector<std::byte>& bytes, const Loading& how) {
  const md::DecodedValue d{std::span<const std::byte>(bytes)};
  return decode(d.root(), false, how);
}

std::vector<md::DynamicArg> to_args(const std::vector<std::pair<std::string, py::object>>& args) {
  std::vector<md::DynamicArg> out;
  out.reserve(args.size());
  for (const auto& [name, value] : args) {
    if (py::isinstance<md::AnyRef>(value)) out.push_back({name, value.cast<md::AnyRef>()});
    else if (const auto held = hold_array(value)) out.push_back({name, held_ref(held)});
    else out.push_back({name, encode_value(value, "argument '" + name + "'")});
  }
  return out;
}

std::string errc_name(md::Errc code) { return std::string(md::to_string(code)); }

py::object load_ref(const md::AnyRef& ref) {
  return decode_bytes(md::encoded_value(ref).bytes(), Loading{allows_pickle(ref)});
}

// Whether a decoded value can stand in several cells (it cannot be changed in place).
bool immutable(const py::object& o) {
  PyObject* p = o.ptr();
  return p == Py_None || PyBool_Check(p) || PyLong_CheckExact(p) || PyFloat_CheckExact(p) || PyUnicode_CheckExact(p) ||
         PyBytes_CheckExact(p);
}

// A table as (column names, {column: list of objects}): None for null cells; a value decoded
// (all values of the table loaded in one bulk query and each distinct value decoded once; a
// mutable value decoded afresh for each further cell, so no two cells share one); a call as
// make_call(column, position) (lazy: the column, a ColumnCells, gives the call when it is read)
// or, without make_call, as its CallInfo; a collection as a list of those.
py::tuple table_columns(const md::Table& table, const py::object& make_call) {
  const auto& names = table.column_names();
  std::vector<std::shared_ptr<md::ColumnCells>> cells;
  std::vector<const md::ColumnCells*> value_columns;
  for (const auto& name : names) {
    cells.push_back(std::make_shared<md::ColumnCells>(table.column_cells(name)));
    if (!cells.back()->holds_calls()) value_columns.push_back(cells.back().get());
  }
  const auto values = md::ColumnCells::values_of(value_columns);
  // One table, one storage: its pickle policy holds for every value.
  Loading how;
  for (const auto* column : value_columns)
    if (column->num_distinct() > 0) {
      how.allow_pickle = allows_pickle(column->ref(0));
      break;
    }
  std::vector<py::object> decoded(values.contents.size());
  std::vector<char> handed_out(values.contents.size(), 0);
  py::object not_stored;  // mandala._values.NotStored(), for transient values that are not stored
  auto value = [&](std::uint32_t i) -> py::object {
    if (values.not_stored[i] != 0) {
      if (!not_stored) not_stored = py::module_::import("mandala._values").attr("NotStored")();
      return not_stored;
    }
    if (!decoded[i]) decoded[i] = decode_bytes(values.contents[i], how);
    else if (handed_out[i] && !immutable(decoded[i])) return decode_bytes(values.contents[i], how);
    handed_out[i] = 1;
    return decoded[i];
  };
  py::dict columns;
  std::size_t next_value_column = 0;
  for (std::size_t c = 0; c < names.size(); ++c) {
    const auto& column = *cells[c];
    std::vector<py::object> calls;  // by position
    const std::vector<std::uint32_t>* content_of = nullptr;
    if (!column.holds_calls()) {
      content_of = &values.content_of[next_value_column++];
    } else if (!make_call.is_none()) {
      const py::object handle = py::cast(cells[c]);
      calls.reserve(column.num_distinct());
      for (std::size_t k = 0; k < column.num_distinct(); ++k) calls.push_back(make_call(handle, k));
    } else {
      for (std::size_t k = 0; k < column.num_distinct(); ++k) calls.push_back(py::cast(column.call(k)));
    }
    auto object = [&](std::uint32_t k) { return content_of ? value((*content_of)[k]) : calls[k]; };
    const std::size_t rows = column.num_rows();
    py::list out(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      const auto items = column.row(r);
      if (items.empty()) {
        out[r] = py::none();
      } else if (items.size() == 1) {
        out[r] = object(items.front());
      } else {
        py::list many(items.size());
        for (std::size_t i = 0; i < items.size(); ++i) many[i] = object(items[i]);
        out[r] = std::move(many);
      }
    }
    columns[py::str(names[c])] = std::move(out);
  }
  return py::make_tuple(names, columns);
}

// ---- transient outputs of Python ops ------------------------------------------------------------

// A Python object kept by the engine (an op's declaration may outlive the Python object that made
// it and be released on a thread without the GIL): released under the GIL, or left alone once
// the interpreter is gone.
struct HeldObject {
  py::object object;
  explicit HeldObject(py::object o) : object(std::move(o)) {}
  HeldObject(const HeldObject&) = delete;
  HeldObject& operator=(const HeldObject&) = delete;
  ~HeldObject() {
    if (Py_IsInitialized() == 0) {
      object.release();
      return;
    }
    const py::gil_scoped_acquire gil;
    object = py::object();
  }
};

// The outputs a Python function returned (a sequence), encoded; `what(i)` names output i in errors.
template <class What>
std::vector<md::EncodedValue> encoded_outputs(const py::object& result, const What& what) {
  const auto values = py::reinterpret_borrow<py::sequence>(result);
  std::vector<md::EncodedValue> out;
  out.reserve(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) out.push_back(encode_value(values[i], what(i)));
  return out;
}

// DynamicOptions::recompute of a Python op: `recompute([(name, Ref), ...])` runs the op's function
// on a stored call's arguments (the engine gives them as refs) and returns every output (a list);
// the engine checks the ids.
std::function<std::vector<md::EncodedValue>(std::span<const md::DynamicArg>)> recompute_function(
    const std::string& op, const py::object& recompute) {
  auto held = std::make_shared<HeldObject>(recompute);
  return [held, op](std::span<const md::DynamicArg> args) {
    const py::gil_scoped_acquire gil;
    py::list given;
    for (const auto& a : args) given.append(py::make_tuple(a.name, std::get<md::AnyRef>(a.value)));
    return encoded_outputs(held->object(given), [&](std::size_t i) {
      return "output " + std::to_string(i) + " of op '" + op + "' (recomputed)";
    });
  };
}

// ---- transparent collections and structured outputs -------------------------------------------

// A shape from Python: None (a plain value), or ("list" | "dict", element shape).
md::DynamicShape to_shape(py::handle desc) {
  md::DynamicShape shape;
  if (desc.is_none()) return shape;
  const auto t = py::reinterpret_borrow<py::tuple>(desc);
  const std::string kind = py::str(t[0]);
  shape.kind = kind == "list" ? md::CollectionKind::list : md::CollectionKind::dict;
  if (kind != "list" && kind != "dict") throw py::value_error("a collection shape is 'list' or 'dict', not " + kind);
  shape.element = std::make_shared<const md::DynamicShape>(to_shape(t[1]));
  return shape;
}

// The items of a Python value given for a collection of `kind` (a list or tuple for an MList, a
// dict with str keys for an MDict), as (key, value) pairs; TypeError naming `what` otherwise.
std::vector<std::pair<std::string, py::object>> collection_items(py::handle obj, md::CollectionKind kind,
                                                                 const std::string& what) {
  std::vector<std::pair<std::string, py::object>> out;
  if (kind == md::CollectionKind::list) {
    if (!PyList_Check(obj.ptr()) && !PyTuple_Check(obj.ptr()))
      throw py::type_error(what + " is an MList: a list is expected, not a " + type_name(obj));
    for (const auto& x : obj) out.emplace_back(std::string(), py::reinterpret_borrow<py::object>(x));
    return out;
  }
  if (!PyDict_Check(obj.ptr()))
    throw py::type_error(what + " is an MDict: a dict is expected, not a " + type_name(obj));
  for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(obj)) {
    if (!PyUnicode_Check(k.ptr()))
      throw py::type_error(what + " is an MDict: its keys must be str, not " + type_name(k));
    out.emplace_back(py::str(k).cast<std::string>(), py::reinterpret_borrow<py::object>(v));
  }
  return out;
}

std::string item_path(const std::string& what, md::CollectionKind kind, std::size_t i, const std::string& key) {
  return what + (kind == md::CollectionKind::list ? "[" + std::to_string(i) + "]" : "['" + key + "']");
}

// A computed output as a structured value of its shape.
md::DynamicValue structured_value(py::handle obj, const md::DynamicShape& shape, const std::string& what) {
  if (!shape.kind) return md::DynamicValue(encode_value(obj, what));
  md::DynamicValue v;
  v.kind = shape.kind;
  const md::DynamicShape plain;
  const auto& element = shape.element ? *shape.element : plain;
  std::size_t i = 0;
  for (auto& [key, item] : collection_items(obj, *shape.kind, what)) {
    v.items.push_back(structured_value(item, element, item_path(what, *shape.kind, i++, key)));
    if (*shape.kind == md::CollectionKind::dict) v.keys.push_back(key);
  }
  return v;
}

// An argument for a collection parameter as the pieces of the collection: elements given as
// Refs keep their history.
md::detail::Piece input_piece(py::handle obj, const md::DynamicShape& shape, const std::string& what) {
  md::detail::Piece p;
  if (py::isinstance<md::AnyRef>(obj)) {
    p.ref = obj.cast<md::AnyRef>().state_ptr();
    return p;
  }
  if (!shape.kind) {
    if (const auto held = hold_array(obj)) p.ref = held_ref(held).state_ptr();
    else p.bytes = encode_value(obj, what).bytes();
    return p;
  }
  p.kind = shape.kind;
  const md::DynamicShape plain;
  const auto& element = shape.element ? *shape.element : plain;
  std::size_t i = 0;
  for (auto& [key, item] : collection_items(obj, *shape.kind, what)) {
    p.children.push_back(input_piece(item, element, item_path(what, *shape.kind, i++, key)));
    if (*shape.kind == md::CollectionKind::dict) p.keys.push_back(key);
  }
  return p;
}

// A dynamic op with its output shapes (kept here to convert computed outputs).
struct PyOp {
  md::DynamicOp op;
  std::vector<md::DynamicShape> shapes;
  bool structured = false;
};

py::dict version_dict(const md::OpVersion& v) {
  py::dict d;
  d["number"] = v.number;
  d["op"] = v.op;
  d["explicit_version"] = v.explicit_version;
  d["content_version"] = v.content_version.hex();
  d["semantic_version"] = v.semantic_version.hex();
  d["decided"] = v.decided;
  d["calls"] = v.calls;
  d["created"] =
      static_cast<double>(std::chrono::duration_cast<std::chrono::milliseconds>(v.created.time_since_epoch()).count()) /
      1000.0;
  py::list components;
  for (const auto& c : v.components) {
    py::dict cd;
    cd["name"] = c.name;
    cd["kind"] = c.kind;
    cd["content"] = c.content.hex();
    cd["semantic"] = c.semantic.hex();
    cd["code"] = c.code;
    components.append(cd);
  }
  d["components"] = components;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "mandala's C++ engine (libmandala) for the mandala package";

  static py::exception<md::Error> error(m, "Error", PyExc_RuntimeError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const md::Error& e) {
      const py::object exc = py::reinterpret_borrow<py::object>(error.ptr())(e.what());
      exc.attr("code") = errc_name(e.code());
      PyErr_SetObject(error.ptr(), exc.ptr());
    }
  });

  m.def(
      "encode",
      [](py::handle obj) {
        const auto v = encode_value(obj, "");
        return py::bytes(reinterpret_cast<const char*>(v.bytes().data()), v.bytes().size());
      },
      "The canonical encoding of a value (the bytes C++ gives the same value).");
  m.def(
      "decode",
      [](py::bytes data, bool allow_pickle) {
        const std::string_view s = data;
        const auto* b = reinterpret_cast<const std::byte*>(s.data());
        return decode_bytes(std::vector<std::byte>(b, b + s.size()), Loading{allow_pickle});
      },
      py::arg("data"), py::arg("allow_pickle") = false,
      "The value of canonical encoded bytes (a pickled object only with allow_pickle=True).");
  m.def(
      "content_id",
      [](py::handle obj) {
        std::string id;
        if (const auto held = hold_array(obj)) id = held->cid.hex();  // hashed in place, never copied
        release_dropped_arrays();
        if (!id.empty()) return id;
        const auto v = encode_value(obj, "");
        const py::gil_scoped_release no_gil;
        return v.content_id().hex();
      },
      "The content id (32 hex digits) a stored value has.");
  m.def(
      "_typed_content_ids",
      [] {
        // The content ids C++ gives typed values, for the tests comparing them with Python's.
        std::vector<std::pair<std::string, std::string>> out;
        const auto add = [&](const std::string& label, const auto& value) {
          out.emplace_back(label, md::EncodedValue::of(value).content_id().hex());
        };
        add("int64 1", std::int64_t{1});
        add("int 1", 1);
        add("int64 -5", std::int64_t{-5});
        add("int64 min", std::numeric_limits<std::int64_t>::min());
        add("uint64 max", std::numeric_limits<std::uint64_t>::max());
        add("double 1.5", 1.5);
        add("double 2", 2.0);
        add("bool true", true);
        add("nullopt", std::optional<int>{});
        add("string hello", std::string("h\xc3\xa9llo"));
        add("vector<string>", std::vector<std::string>{"a", "b"});
        add("tuple<int64,string,double>", std::tuple<std::int64_t, std::string, double>{1, "a", 0.5});
        add("pair<string,bool>", std::pair<std::string, bool>{"k", false});
        add("map<string,int64>", std::map<std::string, std::int64_t>{{"b", 2}, {"a", 1}, {"ccc", 3}});
        add("map<int64,string>", std::map<std::int64_t, std::string>{{10, "x"}, {-1, "y"}});
        add("set<int64>", std::set<std::int64_t>{3, 1, 2, 300});
        add("vector<vector<string>>", std::vector<std::vector<std::string>>{{"a"}, {}, {"b", "c"}});
        add("vector<double>", std::vector<double>{1.0, 2.5});
        add("float 1.5", 1.5f);
        add("vector<int8_t>", std::vector<std::int8_t>{1, -2});
        add("vector<complex<double>>", std::vector<std::complex<double>>{{1, 2}, {3, -1}});
        add("complex<double> 1+2i", std::complex<double>(1, 2));
        add("map<string,vector<float>>", std::map<std::string, std::vector<float>>{{"w", {0.5f}}});
        add("Value 2^64", md::Value(md::Value::BigInteger{false, {std::byte{1}, {}, {}, {}, {}, {}, {}, {}, {}}}));
        // Larger than the arrays the package holds without a copy (hashed in place).
        std::vector<double> halves(100000);
        for (std::size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<double>(i) * 0.5;
        add("vector<double> 100000 halves", halves);
        halves[7] = std::numeric_limits<double>::quiet_NaN();
        halves[99999] = -std::numeric_limits<double>::infinity();
        add("vector<double> 100000 halves, NaN at 7, -inf at 99999", halves);
        std::vector<std::int32_t> counts(50000);
        for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int32_t>(i) - 25000;
        add("vector<int32_t> -25000..24999", counts);
        out.emplace_back("ValuePointer model-v1",
                         md::EncodedValue(md::detail::encode_pointer("model-v1")).content_id().hex());
        return out;
      },
      "Labelled content ids of typed C++ values (for the tests).");

  m.def(
      "_hold_arrays", [](bool on) { hold_arrays = on; }, py::arg("on"),
      "Whether large numeric numpy arguments are hashed in place and held without a copy (the default) or "
      "encoded (for the benchmark comparing both).");

  m.def(
      "_typed_add",
      [](md::Storage& storage, std::int64_t x, std::int64_t y) {
        // A typed C++ op, for the tests showing that Python ops and C++ ops share calls.
        static const auto add = md::op("add", {"x", "y"}, [](std::int64_t a, std::int64_t b) { return a + b; });
        return md::AnyRef(storage.call(add, x, y));
      },
      "Calls the typed C++ op add(x: int64, y: int64) -> int64 in `storage` (for the tests).");

  py::class_<md::AnyRef>(m, "Ref", "A ref of the engine: ids, and its value loaded on request.")
      .def_property_readonly("hid", [](const md::AnyRef& r) { return r.hid().hex(); })
      .def_property_readonly("cid", [](const md::AnyRef& r) { return r.cid().hex(); })
      .def_property_readonly("has_ids", &md::AnyRef::has_ids)
      .def_property_readonly("in_memory", &md::AnyRef::in_memory)
      .def(
          "load", [](const md::AnyRef& r) { return load_ref(r); },
          "The value (in memory, or loaded from the ref's storage; a pickle only if that storage allows them).")
      .def(
          "elements",
          [](const md::AnyRef& r, const std::string& kind) {
            // The element refs of a transparent collection: held by the ref, else loaded.
            if (kind != "list" && kind != "dict") throw py::value_error("kind is 'list' or 'dict'");
            const auto k = kind == "list" ? md::CollectionKind::list : md::CollectionKind::dict;
            const auto& state = r.state();
            std::shared_ptr<const md::detail::Elements> elements;
            {
              std::lock_guard lock(state.mutex);
              elements = state.elements;
            }
            if (!elements) {
              const py::gil_scoped_release no_gil;
              elements = md::detail::load_elements(state, k);
            }
            if (elements->kind != k) throw py::type_error("the ref is not a transparent " + kind);
            std::vector<md::AnyRef> items;
            for (const auto& item : elements->items) items.emplace_back(item);
            return py::make_tuple(elements->keys, items);
          },
          py::arg("kind"), "The keys (a dict's) and element refs of a transparent collection ref.")
      .def("__eq__", [](const md::AnyRef& a, const md::AnyRef& b) { return a == b; })
      .def("__hash__", [](const md::AnyRef& r) { return std::hash<md::AnyRef>{}(r); });

  py::class_<PointerName>(m, "PointerName", "The stored form of a ValuePointer: its name only.")
      .def(py::init([](std::string name) {
        if (name.empty()) throw py::value_error("a ValuePointer's id must be a non-empty str");
        return PointerName{std::move(name)};
      }))
      .def_readonly("name", &PointerName::name)
      .def("__eq__", [](const PointerName& a, const PointerName& b) { return a.name == b.name; })
      .def("__hash__", [](const PointerName& p) { return std::hash<std::string>{}(p.name); });

  py::class_<md::CallInfo>(m, "Call", "A stored call: its op, ids and input and output refs.")
      .def_readonly("op", &md::CallInfo::op)
      .def_readonly("version", &md::CallInfo::version)
      .def_property_readonly("hid", [](const md::CallInfo& c) { return c.hid.hex(); })
      .def_property_readonly("cid", [](const md::CallInfo& c) { return c.cid.hex(); })
      .def_readonly("inputs", &md::CallInfo::inputs)
      .def_readonly("outputs", &md::CallInfo::outputs)
      .def("__repr__",
           [](const md::CallInfo& c) { return "Call(" + c.op + ", hid=" + c.hid.hex().substr(0, 3) + "...)"; })
      .def("__eq__", [](const md::CallInfo& a, const md::CallInfo& b) { return a.hid == b.hid; })
      .def("__hash__", [](const md::CallInfo& c) { return std::hash<md::Id>{}(c.hid); });

  py::class_<md::ColumnCells, std::shared_ptr<md::ColumnCells>>(
      m, "ColumnCells", "A call column of a frame's table: its distinct calls by position, read when asked for.")
      .def("__len__", &md::ColumnCells::num_distinct)
      .def("call", &md::ColumnCells::call)
      .def("op", &md::ColumnCells::op)
      .def("version", &md::ColumnCells::version)
      .def("hid", [](const md::ColumnCells& c, std::size_t k) { return c.hid(k).hex(); })
      .def("cid", [](const md::ColumnCells& c, std::size_t k) { return c.cid(k).hex(); });

  py::class_<md::ComputationFrame>(m, "ComputationFrame")
      .def_static(
          "from_op",
          [](md::Storage& s, const std::string& name, std::uint32_t version) {
            return md::ComputationFrame::from_op(s, name, version);
          },
          py::arg("storage"), py::arg("op"), py::arg("version"))
      .def_static("from_refs", &md::ComputationFrame::from_refs)
      .def_static("from_vars", &md::ComputationFrame::from_vars)
      .def_property_readonly("vnames", &md::ComputationFrame::vnames)
      .def_property_readonly("fnames", &md::ComputationFrame::fnames)
      .def_property_readonly("nodes", &md::ComputationFrame::nodes)
      .def("refs", &md::ComputationFrame::refs)
      .def("calls", &md::ComputationFrame::calls)
      .def("op_of", &md::ComputationFrame::op_of)
      .def("expand_back",
           [](const md::ComputationFrame& f, bool recursive) {
             return f.expand_back(recursive ? md::Recursive::yes : md::Recursive::no);
           })
      .def("expand_forward",
           [](const md::ComputationFrame& f, bool recursive) {
             return f.expand_forward(recursive ? md::Recursive::yes : md::Recursive::no);
           })
      .def("expand_all", [](const md::ComputationFrame& f) { return f.expand_all(); })
      .def(
          "df",
          [](const md::ComputationFrame& f, std::vector<std::string> columns, bool include_calls,
             const py::object& make_call) {
            md::DfOptions options;
            options.columns = std::move(columns);
            options.calls = include_calls ? md::Calls::include : md::Calls::exclude;
            return table_columns(f.df(options), make_call);
          },
          py::arg("columns"), py::arg("include_calls"), py::arg("make_call") = py::none(),
          "The table of df() as (column names, {column: values}); calls as make_call(ColumnCells, "
          "position) when given, else as Calls.")
      .def("summary", &md::ComputationFrame::summary)
      .def("graph_description", &md::ComputationFrame::graph_description)
      .def("to_dot", [](const md::ComputationFrame& f) { return f.to_dot(); });

  py::class_<md::Storage>(m, "Storage")
      .def(
          py::init([](std::optional<std::string> location, bool read_only, const std::string& on_code_change,
                      bool allow_pickle) {
            md::StorageOptions options;
            options.read_only = read_only;
            if (on_code_change == "new_version") options.on_code_change = md::OnCodeChange::new_version;
            else if (on_code_change == "warn") options.on_code_change = md::OnCodeChange::warn;
            else if (on_code_change == "error") options.on_code_change = md::OnCodeChange::error;
            else
              throw py::value_error("on_code_change is 'new_version', 'warn' or 'error', not '" + on_code_change + "'");
            auto storage = !location || location->empty() || *location == ":memory:"
                               ? std::make_unique<md::Storage>(std::filesystem::path(), options)
                               : std::make_unique<md::Storage>(std::filesystem::path(*location), options);
            set_pickle_policy(storage->core(), allow_pickle);
            return storage;
          }),
          py::arg("location") = py::none(), py::arg("read_only") = false, py::arg("on_code_change") = "new_version",
          py::arg("allow_pickle") = false)
      .def(
          "flush",
          [](md::Storage& s) {
            {
              const py::gil_scoped_release no_gil;
              s.flush();
            }
            release_dropped_arrays();  // the arrays that calls found by content held until now
          },
          "Writes the pending calls (without the GIL: other Python threads run meanwhile).")
      .def(
          "versions",
          [](md::Storage& s, const std::string& op) {
            py::list out;
            for (const auto& v : s.versions(op)) out.append(version_dict(v));
            return out;
          },
          "Every recorded code version of the op, oldest first, as dicts.")
      .def("versions_listing", &md::Storage::versions_listing)
      .def("diff_versions", &md::Storage::diff_versions, py::arg("op"), py::arg("from_version"), py::arg("to_version"))
      .def("drop_version", &md::Storage::drop_version, py::arg("op"), py::arg("version"))
      .def("mark_compatible", &md::Storage::mark_compatible, py::arg("op"), py::arg("version") = "")
      .def("mark_new_version", &md::Storage::mark_new_version, py::arg("op"), py::arg("version") = "")
      .def("allow_new_calls", &md::Storage::allow_new_calls)
      .def_property_readonly("path", [](const md::Storage& s) { return s.path().string(); })
      .def("counters",
           [](const md::Storage& s) {
             const auto c = s.counters();
             py::dict d;
             d["executed"] = c.executed;
             d["reused_by_history"] = c.reused_by_history;
             d["reused_by_content"] = c.reused_by_content;
             return d;
           })
      .def(
          "ref",
          [](md::Storage& s, const std::string& hid) -> std::optional<md::AnyRef> {
            const auto id = md::Id::from_hex(hid);
            if (!id) throw py::value_error("not a history id (32 hex digits): '" + hid + "'");
            return s.ref(*id);
          },
          "The stored ref of this history id (lazy); None when the store has none.")
      .def(
          "call_by_hid",
          [](md::Storage& s, const std::string& hid) -> std::optional<md::CallInfo> {
            const auto id = md::Id::from_hex(hid);
            if (!id) throw py::value_error("not a call history id (32 hex digits): '" + hid + "'");
            return s.call_by_hid(*id);
          },
          "The stored call of this history id; None when the store has none.")
      .def("creator_of", &md::Storage::creator_of, "The call that created the ref; None for a raw input.")
      .def("consumers_of", &md::Storage::consumers_of, "The calls that took the ref as an input.")
      .def(
          "drop_calls",
          [](md::Storage& s, const std::vector<std::string>& call_hids, bool dependents) {
            std::vector<md::Id> ids;
            for (const auto& hex : call_hids) {
              const auto id = md::Id::from_hex(hex);
              if (!id) throw py::value_error("not a call history id (32 hex digits): '" + hex + "'");
              ids.push_back(*id);
            }
            return s.drop_calls(ids, dependents ? md::Dependents::yes : md::Dependents::no);
          },
          py::arg("call_hids"), py::arg("delete_dependents"))
      .def(
          "cleanup",
          [](md::Storage& s, bool preview) {
            const auto r = preview ? s.cleanup_preview() : s.cleanup();
            py::dict d;
            d["values_removed"] = r.values_removed;
            d["bytes_freed"] = r.bytes_freed;
            d["blob_files_removed"] = r.blob_files_removed;
            py::list cids;
            for (const auto& cid : r.values) cids.append(cid.hex());
            d["cids"] = cids;
            return d;
          },
          py::arg("preview") = false)
      .def(
          "op_outputs",
          [](md::Storage& s, const std::string& name,
             std::uint32_t version) -> std::optional<std::vector<std::string>> {
            for (const auto& o : s.ops())
              if (o.name == name && o.version == version) return o.outputs;
            return std::nullopt;
          },
          "The output names of the stored op of that name and version; None when the store has none.");

  py::class_<PyOp>(m, "Op")
      .def(py::init([](std::string name, std::vector<std::string> inputs, std::vector<std::string> outputs,
                       std::uint32_t version, bool open_inputs, std::optional<py::list> code,
                       std::optional<py::list> output_shapes, std::vector<std::string> transient_outputs,
                       const py::object& recompute) {
             md::OpOptions options;
             options.version = version;
             const auto n = outputs.size();
             options.outputs = std::move(outputs);
             options.transient_outputs = std::move(transient_outputs);
             md::DynamicOptions dynamic;
             dynamic.open_inputs = open_inputs;
             if (!options.transient_outputs.empty()) {
               if (recompute.is_none())
                 throw py::value_error("op '" + name + "': transient outputs need a recompute function");
               dynamic.recompute = recompute_function(name, recompute);
             }
             if (code) {
               // (name, kind, file, code, content id as 32 hex digits) per component.
               std::vector<md::CodeComponent> components;
               for (const auto& item : *code) {
                 const auto t = py::reinterpret_borrow<py::tuple>(item);
                 const std::string hex = py::str(t[4]);
                 const auto id = md::Id::from_hex(hex);
                 if (!id) throw py::value_error("a component's content id is 32 hex digits, not '" + hex + "'");
                 components.push_back({py::str(t[0]), py::str(t[1]), py::str(t[2]), py::str(t[3]), *id});
               }
               dynamic.code = std::move(components);
             }
             std::vector<md::DynamicShape> shapes;
             bool structured = false;
             if (output_shapes) {
               for (const auto& d : *output_shapes) {
                 shapes.push_back(to_shape(d));
                 structured = structured || shapes.back().kind.has_value();
               }
               if (structured) dynamic.output_shapes = shapes;
             }
             return PyOp{md::DynamicOp(std::move(name), std::move(inputs), n, std::move(options), std::move(dynamic)),
                         std::move(shapes), structured};
           }),
           py::arg("name"), py::arg("inputs"), py::arg("outputs"), py::arg("version") = 0,
           py::arg("open_inputs") = false, py::arg("code") = py::none(), py::arg("output_shapes") = py::none(),
           py::arg("transient_outputs") = std::vector<std::string>{}, py::arg("recompute") = py::none())
      .def_property_readonly("name", [](const PyOp& o) { return o.op.name(); })
      .def_property_readonly("version", [](const PyOp& o) { return o.op.version(); })
      .def_property_readonly("inputs", [](const PyOp& o) { return o.op.inputs(); })
      .def_property_readonly("outputs", [](const PyOp& o) { return o.op.outputs(); })
      .def(
          "call",
          [](const PyOp& self, md::Storage& storage, const std::vector<std::pair<std::string, py::object>>& args,
             const py::function& fn) {
            const md::DynamicOp& op = self.op;
            const auto what = [&](std::size_t i) {
              return "output '" + (i < op.outputs().size() ? op.outputs()[i] : std::to_string(i)) + "' of op '" +
                     op.name() + "'";
            };
            // The engine works without the GIL (other Python threads run meanwhile; it never
            // calls Python while holding its own lock); the function takes the GIL back.
            auto dynamic_args = to_args(args);
            if (self.structured) {
              const md::DynamicOp::StructuredFunction run = [&](std::span<const md::DynamicArg>) {
                const py::gil_scoped_acquire gil;
                const py::object result = fn();
                const auto values = py::reinterpret_borrow<py::sequence>(result);
                std::vector<md::DynamicValue> out;
                out.reserve(values.size());
                const md::DynamicShape plain;
                for (std::size_t i = 0; i < values.size(); ++i)
                  out.push_back(structured_value(values[i], i < self.shapes.size() ? self.shapes[i] : plain, what(i)));
                return out;
              };
              md::DynamicOp::Result refs;
              {
                const py::gil_scoped_release no_gil;
                refs = op.call_structured(storage.core(), std::move(dynamic_args), run);
              }
              release_dropped_arrays();
              return refs;
            }
            const md::DynamicOp::Function run = [&](std::span<const md::DynamicArg>) {
              const py::gil_scoped_acquire gil;
              return encoded_outputs(fn(), what);
            };
            md::DynamicOp::Result refs;
            {
              const py::gil_scoped_release no_gil;
              refs = op.call_in(storage.core(), std::move(dynamic_args), run);
            }
            release_dropped_arrays();
            return refs;
          },
          py::arg("storage"), py::arg("args"), py::arg("fn"),
          "Calls the op memoized in `storage`: `args` are (parameter, value or Ref) pairs; `fn()` runs for a new "
          "call and returns the list of output values (a list or dict for an output of a collection shape). "
          "Returns the output refs.");

  m.def(
      "atom_ref",
      [](py::handle value) {
        release_dropped_arrays();
        if (const auto held = hold_array(value)) return held_ref(held);  // holds the array itself
        return md::atom_ref(encode_value(value, ""));
      },
      "A Ref of the value without history (the ids it gets as a raw argument), holding it (a large numeric "
      "numpy array without a copy: it must not be changed while the Ref is used).");

  m.def(
      "make_collection",
      [](md::Storage& storage, py::handle shape, py::handle value, const std::string& what) {
        const auto s = to_shape(shape);
        if (!s.kind) throw py::value_error("make_collection needs a collection shape");
        auto piece = input_piece(value, s, what);
        if (!piece.kind) return md::AnyRef(piece.ref);  // a Ref given for the whole collection
        const auto core = storage.core();
        std::shared_ptr<md::detail::RefState> built;
        {
          const py::gil_scoped_release no_gil;
          built = md::detail::build_collection(*core, core, piece);
        }
        piece = {};
        release_dropped_arrays();
        return md::AnyRef(std::move(built));
      },
      py::arg("storage"), py::arg("shape"), py::arg("value"), py::arg("what"),
      "Records the __make_list__ / __make_dict__ calls that make `value` (a list or dict whose elements may be "
      "Refs, which keep their history) a transparent collection of `shape`; returns its Ref.");

  mandala_python::add_frame_api(m, [](const md::Table& t) { return table_columns(t, py::none()); });
}
