"""Python values that are not core types, to and from the encoding (docs/storage-format.md, 1.9).

The extension (mandala._core) encodes None, bool, int, float, str, bytes, list, tuple, dict,
set and numeric numpy arrays itself. For any other object it calls `reduce`, which says what
to encode instead: a plain value (a numpy scalar's Python value), a tagged value (a complex
number, a numpy array of another dtype, a pandas object, a dataclass) or a pickle. Loading a
tagged value calls `build`; loading a pickle calls `unpickle`, which refuses unless the storage
allows pickles.
"""

import dataclasses
import importlib
import pickle
import sys

# Pickles are written with one protocol, so that an object pickles to the same bytes (and id)
# whichever Python writes it, as far as pickle itself allows.
PICKLE_PROTOCOL = 4


class PickleNotAllowedError(ValueError):
    """A stored value is a pickled Python object and the storage does not allow pickles."""


class NotStored:
    """A table cell whose value is a transient output of a C++ op (OpOptions::transient): not
    stored, recomputed only by a program that declares the op (docs/storage-format.md 2.3)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "<not stored>"


class Tagged:
    """A tagged value of a type this Python cannot build (a tag written by another program, or
    a dataclass whose class cannot be imported here): its tag and payload. Stored again, it has
    the same content id."""

    __slots__ = ("tag", "value")

    def __init__(self, tag, value):
        if not isinstance(tag, str) or not tag:
            raise ValueError("a tag must be a non-empty str")
        self.tag = tag
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Tagged) and (self.tag, self.value) == (other.tag, other.value)

    def __repr__(self):
        return f"Tagged({self.tag!r}, {self.value!r})"


def _type_name(obj):
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


# ---- encoding ------------------------------------------------------------------------------


def _numpy_scalar(np, obj):
    """numpy scalars are their Python values (np.float64(1.0) is 1.0, np.float32 a float32, as
    in C++); other numpy scalars are their 0-dimensional arrays."""
    if isinstance(obj, (np.datetime64, np.timedelta64)):  # (timedelta64 is an np.integer too)
        return ("value", np.asarray(obj))
    if isinstance(obj, np.bool_):
        return ("value", bool(obj))
    if isinstance(obj, np.integer):
        return ("value", int(obj))
    if isinstance(obj, np.float32):
        return ("float32", float(obj))
    if isinstance(obj, np.float64):
        return ("value", float(obj))
    if isinstance(obj, np.complex64):
        return ("tagged", "complex", [np.float32(obj.real), np.float32(obj.imag)])
    if isinstance(obj, np.complex128):
        return ("tagged", "complex", [float(obj.real), float(obj.imag)])
    if isinstance(obj, np.str_):
        return ("value", str(obj))
    if isinstance(obj, np.bytes_):
        return ("value", bytes(obj))
    return ("value", np.asarray(obj))


def _ndarray(np, a):
    """An array whose dtype is not a typed-array dtype: fixed-size elements (datetime64,
    timedelta64, str, bytes, longdouble) as their raw bytes, objects element by element."""
    if a.dtype.hasobject:
        if a.dtype != np.dtype(object):
            return None  # a structured dtype holding objects
        return ("tagged", "numpy.ndarray", {"dtype": "|O", "shape": list(a.shape), "data": list(a.reshape(-1))})
    if a.dtype.fields is not None or a.dtype.kind == "V":
        return None
    little = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "=") else a.dtype
    data = np.ascontiguousarray(a, dtype=little).tobytes()
    return ("tagged", "numpy.ndarray", {"dtype": little.str, "shape": list(a.shape), "data": data})


def _pandas_index(pd, np, index):
    if type(index) is pd.RangeIndex:
        return (
            "tagged",
            "pandas.RangeIndex",
            {"name": index.name, "start": index.start, "stop": index.stop, "step": index.step},
        )
    if isinstance(index, pd.MultiIndex) or not isinstance(index.dtype, np.dtype):
        return None
    data = index.to_numpy()
    if type(pd.Index(data[:0], dtype=data.dtype)) is not type(index):
        return None  # a kind of index that its values alone do not give back
    payload = {"name": index.name, "data": data}
    freq = getattr(index, "freq", None)  # a DatetimeIndex or TimedeltaIndex of a regular range
    if freq is not None:
        payload["freq"] = freq.freqstr
    return ("tagged", "pandas.Index", payload)


def _numpy_column(np, series):
    if not isinstance(series.dtype, np.dtype):
        return None  # an extension dtype (categorical, nullable integers...): pickled whole
    return series.to_numpy()


def _pandas(pd, np, obj):
    t = type(obj)
    if t is pd.DataFrame:
        columns = _pandas_index(pd, np, obj.columns)
        index = _pandas_index(pd, np, obj.index)
        data = [_numpy_column(np, obj.iloc[:, i]) for i in range(obj.shape[1])]
        if columns is None or index is None or any(d is None for d in data):
            return None
        payload = {"columns": _Reduced(columns), "index": _Reduced(index), "data": data}
        return ("tagged", "pandas.DataFrame", payload)
    if t is pd.Series:
        index = _pandas_index(pd, np, obj.index)
        data = _numpy_column(np, obj)
        if index is None or data is None:
            return None
        return ("tagged", "pandas.Series", {"name": obj.name, "index": _Reduced(index), "data": data})
    if isinstance(obj, pd.Index):
        return _pandas_index(pd, np, obj)
    return None


class _Reduced:
    """A value already reduced (passed back to reduce, which returns it as it is)."""

    __slots__ = ("reduced",)

    def __init__(self, reduced):
        self.reduced = reduced


def reduce(obj):
    """What the extension encodes in place of `obj` (not a core type): ("value", v),
    ("float32", x), ("tagged", tag, payload) or ("pickle", type name, bytes). TypeError when `obj` can be
    stored in none of these ways."""
    if type(obj) is _Reduced:
        return obj.reduced
    if type(obj) is Tagged:
        return ("tagged", obj.tag, obj.value)
    if type(obj).__module__ == "mandala.model" and type(obj).__name__ == "Ref":
        raise TypeError("a Ref is not a value (it is never pickled)")
    if type(obj) is complex:
        return ("tagged", "complex", [obj.real, obj.imag])
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.generic):
            return _numpy_scalar(np, obj)
        if type(obj) is np.ndarray:
            reduced = _ndarray(np, obj)
            if reduced is not None:
                return reduced
    pd = sys.modules.get("pandas")
    if pd is not None and np is not None and isinstance(obj, (pd.DataFrame, pd.Series, pd.Index)):
        reduced = _pandas(pd, np, obj)
        if reduced is not None:
            return reduced
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        t = type(obj)
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return ("tagged", "dataclass", {"type": f"{t.__module__}:{t.__qualname__}", "fields": fields})
    try:
        data = pickle.dumps(obj, protocol=PICKLE_PROTOCOL)
    except Exception as e:  # what pickling raises varies by type: any failure means "cannot store"
        raise TypeError(f"it is not a type mandala encodes and pickling it failed: {e}") from None
    return ("pickle", _type_name(obj), data)


# ---- decoding ------------------------------------------------------------------------------


def _build_index(pd, np, value):
    if isinstance(value, pd.Index):
        return value
    raise ValueError(f"a stored pandas object has an index of type {type(value).__name__}")


def _class_of(path):
    """The class named "module:qualname", or None when it cannot be imported."""
    module_name, _, qualname = path.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:  # a missing module, or an import that fails: the class is not available
        return None
    return obj if isinstance(obj, type) else None


def build(tag, payload):
    """The Python object of a tagged value (a Tagged when the tag is unknown here)."""
    if tag == "complex":
        return complex(payload[0], payload[1])
    if tag == "numpy.ndarray":
        import numpy as np

        shape = tuple(payload["shape"])
        if payload["dtype"] == "|O":
            out = np.empty(len(payload["data"]), dtype=object)
            for i, x in enumerate(payload["data"]):
                out[i] = x
            return out.reshape(shape)
        return np.frombuffer(payload["data"], dtype=np.dtype(payload["dtype"])).reshape(shape).copy()
    if tag == "pandas.RangeIndex":
        import pandas as pd

        return pd.RangeIndex(payload["start"], payload["stop"], payload["step"], name=payload["name"])
    if tag == "pandas.Index":
        import pandas as pd

        data = payload["data"]
        index = pd.Index(data, dtype=data.dtype, name=payload["name"])
        if "freq" in payload:
            index = type(index)(index, freq=payload["freq"], name=payload["name"])
        return index
    if tag == "pandas.Series":
        import numpy as np
        import pandas as pd

        index = _build_index(pd, np, payload["index"])
        return pd.Series(payload["data"], index=index, name=payload["name"], copy=False)
    if tag == "pandas.DataFrame":
        import numpy as np
        import pandas as pd

        index = _build_index(pd, np, payload["index"])
        columns = _build_index(pd, np, payload["columns"])
        data = payload["data"]
        if data:
            frame = pd.DataFrame(dict(enumerate(data)), index=index)
        else:
            frame = pd.DataFrame(index=index)
        frame.columns = columns
        return frame
    if tag == "dataclass":
        cls = _class_of(payload["type"])
        if cls is None or not dataclasses.is_dataclass(cls):
            return Tagged(tag, payload)
        obj = cls.__new__(cls)
        for name, value in payload["fields"].items():
            object.__setattr__(obj, name, value)
        return obj
    return Tagged(tag, payload)


def unpickle(type_name, data, allowed):
    """The object of a stored pickle; PickleNotAllowedError unless `allowed`."""
    if not allowed:
        raise PickleNotAllowedError(
            f"the stored value is a pickled Python object ({type_name}, {len(data)} bytes), and loading a "
            "pickle runs code chosen by whoever wrote it; this storage does not allow pickles: open it with "
            "Storage(..., allow_pickle=True) if you trust the store"
        )
    return pickle.loads(data)
