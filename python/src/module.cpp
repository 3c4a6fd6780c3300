// mandala._core: the Python extension over libmandala's dynamic boundary (mandala/dynamic.hpp).
// Python values are encoded by the library's own encoder, so a value has the same content id in
// Python and in C++; the pure-Python layer (python/mandala) builds the original's API on this.
// Functions here run with the GIL held, except the engine's part of an op call (Op.call releases it
// and takes it back to run the op's Python function).

#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "mandala/mandala.hpp"

namespace py = pybind11;
namespace md = mandala;

namespace {

// Deeper values are refused when encoding (the decoder's own limit is higher).
constexpr int max_depth = 256;

const char* const supported_types =
    "supported are None, bool, int (64-bit), float, str, bytes, numeric numpy arrays, and list, tuple, dict, set "
    "and frozenset of these (other types are not supported yet)";

// The name a ValuePointer stores in place of its object (encoded as a pointer, as C++ does).
struct PointerName {
  std::string name;
};

// A value that cannot be encoded, with the path to it inside the argument.
struct EncodeFailure {
  std::string what;
  std::string path;
  bool type_error = true;
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

// A numeric ndarray as one typed array: its elements in C order, little-endian (the encoding of
// a std::vector<double> for a 1-D float64 array).
void encode_ndarray(md::Encoder& e, py::handle obj, const py::object& numpy) {
  const py::object dtype = obj.attr("dtype");
  const std::string kind = py::str(dtype.attr("kind"));
  const auto size = dtype.attr("itemsize").cast<std::size_t>();
  std::optional<md::Dtype> t;
  if (kind == "i")
    t = size == 1 ? md::Dtype::i8 : size == 2 ? md::Dtype::i16 : size == 4 ? md::Dtype::i32 : md::Dtype::i64;
  else if (kind == "u")
    t = size == 1 ? md::Dtype::u8 : size == 2 ? md::Dtype::u16 : size == 4 ? md::Dtype::u32 : md::Dtype::u64;
  else if (kind == "f" && (size == 4 || size == 8)) t = size == 4 ? md::Dtype::f32 : md::Dtype::f64;
  if (!t)
    throw EncodeFailure{"a numpy array of dtype " + std::string(py::str(dtype)) +
                            " (numeric arrays of int8 to int64, uint8 to uint64, float32 and float64 are supported)",
                        "", false};
  const auto ndim = obj.attr("ndim").cast<std::size_t>();
  if (ndim == 0) throw EncodeFailure{"a 0-dimensional numpy array (pass its value: array.item())", "", false};
  const py::object little = dtype.attr("newbyteorder")("<");
  const py::object contiguous = numpy.attr("ascontiguousarray")(obj, py::arg("dtype") = little);
  const py::buffer_info info = py::reinterpret_borrow<py::buffer>(contiguous).request();
  std::vector<std::uint64_t> shape(info.shape.begin(), info.shape.end());
  e.typed_array(*t, shape, info.ptr, static_cast<std::size_t>(info.size * info.itemsize));
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
      const unsigned long long u = overflow > 0 ? PyLong_AsUnsignedLongLong(p) : 0;
      if (overflow < 0 || (u == static_cast<unsigned long long>(-1) && PyErr_Occurred())) {
        PyErr_Clear();
        throw EncodeFailure{"the int " + std::string(py::str(obj)) +
                                ", which does not fit 64 bits (integers from -2**63 to 2**64-1 are supported)",
                            "", false};
      }
      e.unsigned_integer(u);
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
    const auto seq = py::reinterpret_borrow<py::sequence>(obj);
    const auto n = seq.size();
    e.array_header(n);
    for (std::size_t i = 0; i < n; ++i) at_path("[" + std::to_string(i) + "]", [&] { encode(e, seq[i], depth + 1); });
  } else if (PyDict_CheckExact(p)) {
    std::vector<std::pair<std::vector<std::byte>, std::vector<std::byte>>> entries;
    for (const auto& [k, v] : py::reinterpret_borrow<py::dict>(obj)) {
      const std::string segment = key_segment(k);
      std::vector<std::byte> key, value;
      at_path(segment + " (the key)", [&] { key = encode_part(k, depth + 1); });
      at_path(segment, [&] { value = encode_part(v, depth + 1); });
      entries.emplace_back(std::move(key), std::move(value));
    }
    e.map_sorted(std::move(entries));
  } else if (PyAnySet_CheckExact(p)) {
    std::vector<std::vector<std::byte>> elements;
    for (const auto& x : obj)
      at_path("{" + std::string(py::repr(x)) + "}", [&] { elements.push_back(encode_part(x, depth + 1)); });
    e.array_sorted(std::move(elements));
  } else if (py::isinstance<PointerName>(obj)) {
    e.pointer(obj.cast<const PointerName&>().name);
  } else if (const py::object numpy = loaded_numpy();
             !numpy.is_none() && py::type::handle_of(obj).is(numpy.attr("ndarray"))) {
    encode_ndarray(e, obj, numpy);
  } else {
    throw EncodeFailure{"a value of type '" + type_name(obj) + "'", ""};
  }
}

// Encodes a Python value; TypeError (ValueError for an int too large or too deep a value) that
// names `what` and the path to the value inside it.
md::EncodedValue encode_value(py::handle obj, const std::string& what) {
  md::Encoder e;
  try {
    encode(e, obj, 0);
  } catch (const EncodeFailure& f) {
    std::string message = "mandala cannot store " + f.what;
    if (!f.path.empty()) message += " at " + what + f.path;
    else if (!what.empty()) message += " (" + what + ")";
    message += f.type_error ? std::string(": ") + supported_types : "";
    if (f.type_error) throw py::type_error(message);
    throw py::value_error(message);
  }
  return md::EncodedValue(std::move(e).take());
}

py::object decode(md::ValueView v, bool as_key);

py::object decode_typed_array(const md::TypedArrayView& t) {
  const py::module_ numpy = py::module_::import("numpy");
  static const std::map<md::Dtype, const char*> names{
      {md::Dtype::i8, "<i1"},  {md::Dtype::i16, "<i2"}, {md::Dtype::i32, "<i4"}, {md::Dtype::i64, "<i8"},
      {md::Dtype::u8, "<u1"},  {md::Dtype::u16, "<u2"}, {md::Dtype::u32, "<u4"}, {md::Dtype::u64, "<u8"},
      {md::Dtype::f32, "<f4"}, {md::Dtype::f64, "<f8"}};
  const py::bytes data(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  py::tuple shape(t.shape.size());
  for (std::size_t i = 0; i < t.shape.size(); ++i) shape[i] = py::int_(t.shape[i]);
  return numpy.attr("frombuffer")(data, py::arg("dtype") = names.at(t.dtype)).attr("reshape")(shape).attr("copy")();
}

py::object decode(md::ValueView v, bool as_key) {
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
      // Dict keys that were tuples come back as tuples (a list is not hashable).
      if (as_key) {
        py::tuple out(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) out[i] = decode(v.at(i), true);
        return out;
      }
      py::list out(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) out[i] = decode(v.at(i), false);
      return out;
    }
    case md::Kind::map: {
      if (as_key)
        throw py::type_error("mandala cannot load a map used as a map key into Python (a dict is not hashable)");
      py::dict out;
      for (std::size_t i = 0; i < v.size(); ++i) out[decode(v.key_at(i), true)] = decode(v.value_at(i), false);
      return out;
    }
    case md::Kind::typed_array: return decode_typed_array(v.as_typed_array());
    case md::Kind::pointer: return py::cast(PointerName{std::string(v.as_pointer())});
    case md::Kind::collection:
      throw py::value_error("the stored value is the shape of a collection; load it through its ref");
  }
  throw py::value_error("unknown kind of value");
}

py::object decode_bytes(const std::vector<std::byte>& bytes) {
  const md::DecodedValue d{std::span<const std::byte>(bytes)};
  return decode(d.root(), false);
}

std::vector<md::DynamicArg> to_args(const std::vector<std::pair<std::string, py::object>>& args) {
  std::vector<md::DynamicArg> out;
  out.reserve(args.size());
  for (const auto& [name, value] : args) {
    if (py::isinstance<md::AnyRef>(value)) out.push_back({name, value.cast<md::AnyRef>()});
    else out.push_back({name, encode_value(value, "argument '" + name + "'")});
  }
  return out;
}

std::string errc_name(md::Errc code) { return std::string(md::to_string(code)); }

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
  std::vector<py::object> decoded(values.contents.size());
  std::vector<char> handed_out(values.contents.size(), 0);
  auto value = [&](std::uint32_t i) -> py::object {
    if (!decoded[i]) decoded[i] = decode_bytes(values.contents[i]);
    else if (handed_out[i] && !immutable(decoded[i])) return decode_bytes(values.contents[i]);
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
      [](py::bytes data) {
        const std::string_view s = data;
        const auto* b = reinterpret_cast<const std::byte*>(s.data());
        return decode_bytes(std::vector<std::byte>(b, b + s.size()));
      },
      "The value of canonical encoded bytes.");
  m.def(
      "content_id", [](py::handle obj) { return encode_value(obj, "").content_id().hex(); },
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
        out.emplace_back("ValuePointer model-v1",
                         md::EncodedValue(md::detail::encode_pointer("model-v1")).content_id().hex());
        return out;
      },
      "Labelled content ids of typed C++ values (for the tests).");

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
          "load", [](const md::AnyRef& r) { return decode_bytes(md::encoded_value(r).bytes()); },
          "The value (in memory, or loaded from the ref's storage).")
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
      .def(py::init([](std::optional<std::string> location, bool read_only) {
             if (!location || location->empty() || *location == ":memory:") return std::make_unique<md::Storage>();
             md::StorageOptions options;
             options.read_only = read_only;
             return std::make_unique<md::Storage>(std::filesystem::path(*location), options);
           }),
           py::arg("location") = py::none(), py::arg("read_only") = false)
      .def("flush", &md::Storage::flush)
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
      .def("cleanup",
           [](md::Storage& s) {
             const auto r = s.cleanup();
             py::dict d;
             d["values_removed"] = r.values_removed;
             d["bytes_freed"] = r.bytes_freed;
             d["blob_files_removed"] = r.blob_files_removed;
             return d;
           })
      .def(
          "op_outputs",
          [](md::Storage& s, const std::string& name,
             std::uint32_t version) -> std::optional<std::vector<std::string>> {
            for (const auto& o : s.ops())
              if (o.name == name && o.version == version) return o.outputs;
            return std::nullopt;
          },
          "The output names of the stored op of that name and version; None when the store has none.");

  py::class_<md::DynamicOp>(m, "Op")
      .def(py::init([](std::string name, std::vector<std::string> inputs, std::vector<std::string> outputs,
                       std::uint32_t version) {
             md::OpOptions options;
             options.version = version;
             const auto n = outputs.size();
             options.outputs = std::move(outputs);
             return md::DynamicOp(std::move(name), std::move(inputs), n, std::move(options));
           }),
           py::arg("name"), py::arg("inputs"), py::arg("outputs"), py::arg("version") = 0)
      .def_property_readonly("name", &md::DynamicOp::name)
      .def_property_readonly("version", &md::DynamicOp::version)
      .def_property_readonly("inputs", &md::DynamicOp::inputs)
      .def_property_readonly("outputs", &md::DynamicOp::outputs)
      .def(
          "call",
          [](const md::DynamicOp& op, md::Storage& storage, const std::vector<std::pair<std::string, py::object>>& args,
             const py::function& fn) {
            // The engine works without the GIL (other Python threads run meanwhile; it never
            // calls Python while holding its own lock); the function takes the GIL back.
            const md::DynamicOp::Function run = [&](std::span<const md::DynamicArg>) {
              const py::gil_scoped_acquire gil;
              const py::object result = fn();
              const auto values = py::reinterpret_borrow<py::sequence>(result);
              std::vector<md::EncodedValue> out;
              out.reserve(values.size());
              for (std::size_t i = 0; i < values.size(); ++i) {
                const std::string what = "output '" + (i < op.outputs().size() ? op.outputs()[i] : std::to_string(i)) +
                                         "' of op '" + op.name() + "'";
                out.push_back(encode_value(values[i], what));
              }
              return out;
            };
            auto dynamic_args = to_args(args);
            const py::gil_scoped_release no_gil;
            return op.call_in(storage.core(), std::move(dynamic_args), run);
          },
          py::arg("storage"), py::arg("args"), py::arg("fn"),
          "Calls the op memoized in `storage`: `args` are (parameter, value or Ref) pairs; `fn()` runs for a new "
          "call and returns the list of output values. Returns the output refs.");
}
