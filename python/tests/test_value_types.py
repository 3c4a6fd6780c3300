"""Every kind of Python value is stored (docs/storage-format.md, 1.9): big ints, numpy arrays of
every dtype and rank, numpy scalars, complex numbers, pandas objects, dataclasses, and pickles,
which are loaded only when the storage allows them."""

import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mandala
from mandala import _core
from mandala._values import PickleNotAllowedError, Tagged
from mandala.imports import Storage, op


@op(output_names=["value"])
def keep(x):
    return x


def stored_and_loaded(tmp_path, value, allow_pickle=False):
    """`value` through a file store: written by one Storage, loaded by a new one."""
    path = tmp_path / "values.db"
    with Storage(path):
        keep(value)
    with Storage(path, allow_pickle=allow_pickle) as storage:
        ref = keep(value)
        assert not ref.in_memory
        return storage.unwrap(ref)


# ---- integers of any size ----------------------------------------------------------------------


@pytest.mark.parametrize("n", [2**64, -(2**63) - 1, 2**200 + 12345, -(10**40), 2**64 - 1, -(2**63)])
def test_ints_of_any_size_round_trip(tmp_path, n):
    loaded = stored_and_loaded(tmp_path, n)
    assert loaded == n and type(loaded) is int


def test_big_int_bytes_are_those_of_the_storage_format():
    # docs/storage-format.md 1.7; the C++ encoder writes the same bytes (tests/codec).
    assert _core.encode(2**64) == bytes.fromhex("c70a04000100000000000000" "00")
    assert _core.encode(-(2**63) - 1) == bytes.fromhex("c7090401" "8000000000000001")
    assert _core.encode(-(2**63)) == bytes.fromhex("d3" "8000000000000000"), "64-bit values keep their form"
    cpp = dict(_core._typed_content_ids())
    assert mandala.content_id(2**64) == cpp["Value 2^64"]


# ---- numpy ---------------------------------------------------------------------------------------


NUMPY_ARRAYS = [
    np.array([True, False, True]),
    np.array([1.5, -2.0, np.inf], dtype=np.float16),
    np.array([[1 + 2j, 3 - 1j]], dtype=np.complex64),
    np.array([1 + 2j, np.nan], dtype=np.complex128),
    np.arange(24, dtype=np.int8).reshape(2, 3, 4),
    np.arange(6, dtype=">u4").reshape(3, 2),  # big-endian
    np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::2],  # not contiguous
    np.array(7, dtype=np.int16),  # rank 0
    np.zeros((0, 3), dtype=np.float32),
    np.array(["2024-01-02", "NaT"], dtype="datetime64[D]"),
    np.array([1, 2], dtype="timedelta64[ms]"),
    np.array(["ab", "", "\u00e9t\u00e9"]),
    np.array([b"x\x00y", b""], dtype="S3"),
    np.array([[1, "a"], [None, [2, 3]]], dtype=object),
]


@pytest.mark.parametrize("array", NUMPY_ARRAYS, ids=lambda a: f"{a.dtype}-{a.shape}")
def test_numpy_arrays_of_every_dtype_and_rank_round_trip(tmp_path, array):
    loaded = stored_and_loaded(tmp_path, array)
    assert type(loaded) is np.ndarray
    assert loaded.shape == array.shape
    assert loaded.dtype == array.dtype.newbyteorder("<") or loaded.dtype == array.dtype
    if array.dtype.kind in "fc":
        np.testing.assert_array_equal(loaded, array)  # NaN equals NaN here
    else:
        assert loaded.tolist() == array.tolist()


def test_numpy_ids_are_those_of_cpp_vectors_and_follow_dtype_and_shape():
    cpp = dict(_core._typed_content_ids())
    assert mandala.content_id(np.array([1, -2], dtype=np.int8)) == cpp["vector<int8_t>"]
    assert mandala.content_id(np.array([1 + 2j, 3 - 1j])) == cpp["vector<complex<double>>"]
    assert mandala.content_id({"w": np.array([0.5], dtype=np.float32)}) == cpp["map<string,vector<float>>"]
    bools = np.array([True, False])
    assert mandala.content_id(bools) != mandala.content_id(bools.astype(np.uint8)), "bool is a dtype of its own"
    assert mandala.content_id(np.array([1.0])) != mandala.content_id(np.array([1.0], dtype=np.float16))
    assert mandala.content_id(np.array(1.0)) != mandala.content_id(np.array([1.0])), "rank 0 is not rank 1"
    day = np.array(["2024-01-02"], dtype="datetime64[D]")
    assert mandala.content_id(day) != mandala.content_id(day.astype("datetime64[s]")), "the unit is kept"
    nans = np.array([np.nan, -np.nan], dtype=np.complex128)
    assert mandala.content_id(nans) == mandala.content_id(np.array([np.nan, np.nan], dtype=np.complex128))


def test_numpy_scalars_are_their_python_values():
    cpp = dict(_core._typed_content_ids())
    assert mandala.content_id(np.float64(1.5)) == mandala.content_id(1.5) == cpp["double 1.5"]
    assert mandala.content_id(np.float32(1.5)) == cpp["float 1.5"], "float32 stays a float32, as C++ float"
    assert mandala.content_id(np.int32(1)) == mandala.content_id(1) == cpp["int 1"]
    assert mandala.content_id(np.uint64(2**64 - 1)) == cpp["uint64 max"]
    assert mandala.content_id(np.bool_(True)) == cpp["bool true"]
    assert mandala.content_id(np.str_("h\u00e9llo")) == cpp["string hello"]
    assert mandala.content_id(np.complex128(1 + 2j)) == mandala.content_id(1 + 2j) == cpp["complex<double> 1+2i"]
    for scalar, python in [(np.float64(2.5), 2.5), (np.int64(-3), -3), (np.bool_(False), False)]:
        loaded = _core.decode(_core.encode(scalar))
        assert loaded == python and type(loaded) is type(python)
    # Scalars without a C++ scalar are their 0-dimensional arrays.
    assert mandala.content_id(np.float16(1.5)) == mandala.content_id(np.array(1.5, dtype=np.float16))
    for scalar in [np.datetime64("2024-01-02"), np.timedelta64(3, "ms")]:
        loaded = _core.decode(_core.encode(scalar))
        assert loaded.shape == () and loaded.dtype == scalar.dtype and loaded == scalar


def test_complex_numbers_round_trip(tmp_path):
    assert stored_and_loaded(tmp_path, [1 + 2j, complex(0, -0.5)]) == [1 + 2j, complex(0, -0.5)]
    assert type(_core.decode(_core.encode(np.complex64(1 + 2j)))) is complex


# ---- pandas --------------------------------------------------------------------------------------


def frames():
    yield pd.DataFrame(
        {
            "i": np.array([1, 2, 3], dtype=np.int32),
            "f": [0.5, np.nan, -1.0],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "t": pd.to_datetime(["2024-01-01", "2024-02-01", None]),
        },
        index=pd.Index([10, 20, 30], name="row"),
    )
    yield pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["p", "q"], name=None))
    yield pd.DataFrame({1: [1], "1": [2]})  # column labels of two types
    yield pd.DataFrame(np.arange(6).reshape(2, 3), columns=["a", "a", "b"])  # a repeated label
    yield pd.DataFrame(index=pd.RangeIndex(2, 8, 3))  # no columns
    yield pd.DataFrame({"x": pd.Series([], dtype=np.float32)})  # no rows
    yield pd.DataFrame({"v": [1.0, 2.0, 3.0]}, index=pd.date_range("2024-01-01", periods=3, freq="D", name="day"))
    yield pd.DataFrame({"v": [1, 2]}, index=pd.timedelta_range("1s", periods=2, freq="2s"))


@pytest.mark.parametrize("frame", list(frames()), ids=lambda f: f"{f.shape}")
def test_dataframes_round_trip_exactly(tmp_path, frame):
    loaded = stored_and_loaded(tmp_path, frame)
    assert type(loaded) is pd.DataFrame
    pd.testing.assert_frame_equal(loaded, frame, check_exact=True)
    assert type(loaded.index) is type(frame.index)
    assert list(loaded.dtypes) == list(frame.dtypes)


def test_series_and_indexes_round_trip_exactly(tmp_path):
    series = pd.Series([1.5, 2.5], index=pd.Index(["a", "b"], name="k"), name="value")
    loaded = stored_and_loaded(tmp_path, series)
    pd.testing.assert_series_equal(loaded, series, check_exact=True)
    assert loaded.name == "value" and loaded.index.name == "k"
    for index in [
        pd.RangeIndex(0, 10, 2, name="r"),
        pd.Index([3, 1], dtype=np.int64),
        pd.Index(["x", "y"]),
        pd.date_range("2024-01-01", periods=4, freq="H"),
        pd.DatetimeIndex(["2024-01-03", "2024-01-01"]),
    ]:
        loaded = _core.decode(_core.encode(index))
        pd.testing.assert_index_equal(loaded, index, exact=True)
        assert getattr(loaded, "freq", None) == getattr(index, "freq", None)


def test_dataframe_ids_follow_content_not_identity():
    a = pd.DataFrame({"x": [1, 2], "y": ["u", "v"]})
    b = pd.DataFrame({"x": [1, 2], "y": ["u", "v"]})
    assert mandala.content_id(a) == mandala.content_id(b)
    assert mandala.content_id(a) != mandala.content_id(a[["y", "x"]]), "column order is part of the value"
    assert mandala.content_id(a) != mandala.content_id(a.astype({"x": np.int32}))
    assert mandala.content_id(a) != mandala.content_id(a.set_axis([5, 6]))
    # A pickle round trip does not change the id (the original hashed pickles, which can).
    import pickle

    assert mandala.content_id(pickle.loads(pickle.dumps(a))) == mandala.content_id(a)


def test_pandas_objects_without_an_exact_encoding_are_pickled(tmp_path):
    frame = pd.DataFrame({"c": pd.Categorical(["a", "b", "a"])})
    assert _core.decode(_core.encode(frame), allow_pickle=True).equals(frame)
    with pytest.raises(PickleNotAllowedError):
        stored_and_loaded(tmp_path, frame)


# ---- dataclasses --------------------------------------------------------------------------------


@dataclasses.dataclass
class Config:
    name: str
    weights: np.ndarray
    tags: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Nested:
    origin: Point
    scale: float = dataclasses.field(default=1.0, init=False)


def test_dataclasses_round_trip_to_their_class(tmp_path):
    config = Config("c", np.array([0.5, 1.5]), ["a"])
    loaded = stored_and_loaded(tmp_path, config)
    assert type(loaded) is Config
    assert loaded.name == "c" and loaded.tags == ["a"]
    np.testing.assert_array_equal(loaded.weights, config.weights)
    nested = Nested(Point(1, 2))
    nested.scale = 3.0
    assert _core.decode(_core.encode(nested)) == nested
    assert _core.decode(_core.encode({Point(1, 2): "p"})) == {Point(1, 2): "p"}, "a frozen dataclass as a key"


def test_dataclass_ids_follow_fields():
    assert mandala.content_id(Point(1, 2)) == mandala.content_id(Point(1, 2))
    assert mandala.content_id(Point(1, 2)) != mandala.content_id(Point(2, 1))
    assert mandala.content_id(Point(1, 2)) != mandala.content_id({"x": 1, "y": 2})


def test_a_dataclass_whose_class_is_not_importable_loads_as_tagged():
    @dataclasses.dataclass
    class Local:
        a: int

    loaded = _core.decode(_core.encode(Local(1)))
    assert isinstance(loaded, Tagged) and loaded.tag == "dataclass"
    assert loaded.value["fields"] == {"a": 1}
    assert mandala.content_id(loaded) == mandala.content_id(Local(1)), "stored again, the same value"


# ---- pickles -------------------------------------------------------------------------------------


class Opaque:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.n == self.n


class RunsCodeWhenUnpickled:
    """Unpickling it creates the file named by `path` (standing for any code a pickle can run)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_other_objects_are_pickled_and_loaded_only_when_allowed(tmp_path):
    assert mandala.PickleNotAllowedError is PickleNotAllowedError and issubclass(PickleNotAllowedError, ValueError)
    with pytest.raises(PickleNotAllowedError, match=r"Opaque.*allow_pickle=True"):
        stored_and_loaded(tmp_path, [Opaque(3)])
    assert stored_and_loaded(tmp_path, [Opaque(3)], allow_pickle=True) == [Opaque(3)]
    assert _core.decode(_core.encode(Opaque(4)), allow_pickle=True) == Opaque(4)
    with pytest.raises(PickleNotAllowedError):
        _core.decode(_core.encode(Opaque(4)))


def test_a_pickle_that_would_run_code_is_never_unpickled_unless_allowed(tmp_path):
    marker = tmp_path / "the pickle ran"
    path = tmp_path / "evil.db"

    @op
    def make(x):
        return {"payload": RunsCodeWhenUnpickled(marker)}

    with Storage(path):
        out = make(1)
    assert not marker.exists(), "storing it runs nothing"
    with Storage(path) as storage:
        ref = make(1)
        with pytest.raises(PickleNotAllowedError, match="allow_pickle"):
            storage.unwrap(ref)
        with pytest.raises(PickleNotAllowedError):
            storage.cf(make).df()
    with pytest.raises(PickleNotAllowedError):
        _core.decode(_core.encode(out.obj))
    assert not marker.exists(), "refused loads ran nothing"
    with Storage(path, allow_pickle=True) as storage:
        storage.unwrap(make(1))
    assert marker.exists(), "allowed, the pickle is loaded (and runs)"


def test_objects_that_cannot_be_pickled_are_refused():
    import threading

    with pytest.raises(TypeError, match=r"type 'lock'.*pickling it failed"):
        mandala.content_id({"k": threading.Lock()})


# ---- the command line reads what Python wrote --------------------------------------------------


def cli():
    """The `mandala` command of this build (build/<preset>/tools/cli/mandala)."""
    path = Path(_core.__file__).resolve().parents[2] / "tools" / "cli" / "mandala"
    if not path.exists():
        pytest.skip(f"the mandala command is not built ({path})")
    return str(path)


def test_the_cli_shows_python_values_with_the_same_ids(tmp_path):
    command = cli()
    path = tmp_path / "py.db"

    @op(output_names=["value"])
    def describe(x):
        return x

    values = {
        "big": 2**70,
        "frame": pd.DataFrame({"a": [1, 2]}),
        "opaque": Opaque(1),
        "complex": np.array([1 + 2j]),
    }
    refs = {}
    with Storage(path):
        for name, value in values.items():
            refs[name] = describe(value)
    for name, ref in refs.items():
        assert ref.cid == mandala.content_id(values[name])
        shown = subprocess.run(
            [command, "show", str(path), ref.hid, "--json"], capture_output=True, text=True, check=True
        )
        info = json.loads(shown.stdout)
        assert info["cid"] == ref.cid, name
        value = info["value"]
        if name == "big":
            assert value == {"bigint": str(2**70)}
        elif name == "frame":
            assert value["tag"] == "pandas.DataFrame"
            assert value["value"]["data"] == [{"dtype": "i64", "shape": [2], "data": [1, 2]}]
        elif name == "opaque":
            assert value["pickle"]["type"].endswith("Opaque")
            assert set(value["pickle"]) == {"type", "bytes"}, "a pickle is shown opaque"
        else:
            assert value == {"dtype": "c128", "shape": [1], "data": [[1.0, 2.0]]}
    text = subprocess.run([command, "show", str(path), refs["opaque"].hid], capture_output=True, text=True, check=True)
    assert "<pickle " in text.stdout and "Opaque" in text.stdout
    assert os.path.getsize(path) > 0


# ---- the GIL -------------------------------------------------------------------------------------


def test_other_threads_run_while_a_large_array_is_encoded_and_hashed():
    import sys
    import threading

    array = np.ones(4 << 20)  # 32 MiB
    started = threading.Event()
    ran = []

    def other():
        started.wait()
        ran.append(True)  # needs the GIL

    interval = sys.getswitchinterval()
    thread = threading.Thread(target=other)
    thread.start()
    # With a switch interval of minutes, the other thread gets the GIL only when this one
    # releases it: inside content_id, if at all. On a loaded machine the other thread may not
    # be scheduled in time for one hash, so hash again (holding the GIL in between) until it
    # ran; a content_id that keeps the GIL never lets it run, however often it is called.
    sys.setswitchinterval(300)
    try:
        started.set()
        for _ in range(200):
            mandala.content_id(array)
            if ran:
                break
        ran_during_the_calls = bool(ran)
    finally:
        sys.setswitchinterval(interval)
    thread.join(timeout=60)
    assert ran_during_the_calls


def test_an_in_memory_storage_loads_its_own_pickles_unless_told_not_to():
    @op
    def wrap(n):
        return Opaque(n)

    storage = Storage()  # holds only what this process wrote
    assert storage.allow_pickle
    with storage:
        wrap(5)
    (loaded,) = storage.cf(wrap).df()["var_0"]
    assert loaded == Opaque(5)

    strict = Storage(allow_pickle=False)
    with strict:
        r = wrap(6)
    with pytest.raises(PickleNotAllowedError):
        strict.cf(wrap).df()
    assert r.obj == Opaque(6)  # the value computed here stays in memory
