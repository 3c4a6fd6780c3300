"""Values are encoded by the C++ encoder: the same ids as C++, round trips, clear errors."""

import math

import pytest

import mandala
from mandala import _core
from mandala.imports import Storage, op


@op(output_names=["value"])  # one output, also for a tuple (nout="auto" would split it)
def ident(x):
    return x


@op
def inc(x):
    return x + 1


PYTHON_VALUES = {
    "int64 1": 1,
    "int 1": 1,
    "int64 -5": -5,
    "int64 min": -(2**63),
    "uint64 max": 2**64 - 1,
    "double 1.5": 1.5,
    "double 2": 2.0,
    "bool true": True,
    "nullopt": None,
    "string hello": "h\u00e9llo",
    "vector<string>": ["a", "b"],
    # A C++ tuple, pair or set is an array (a set's sorted by encoded bytes): a Python list. A
    # Python tuple or set is a tagged value of its own (test_tuples_and_sets.py).
    "tuple<int64,string,double>": [1, "a", 0.5],
    "pair<string,bool>": ["k", False],
    "map<string,int64>": {"a": 1, "ccc": 3, "b": 2},
    "map<int64,string>": {-1: "y", 10: "x"},
    "set<int64>": [1, 2, 3, 300],
    "vector<vector<string>>": [["a"], [], ["b", "c"]],
}


def test_content_ids_equal_those_of_typed_cpp_values():
    cpp = dict(_core._typed_content_ids())
    for label, value in PYTHON_VALUES.items():
        assert mandala.content_id(value) == cpp[label], label
    # A ValuePointer argument is its name, encoded as C++ encodes mandala::ValuePointer.
    assert mandala.content_id(_core.PointerName("model-v1")) == cpp["ValuePointer model-v1"]
    # A list of floats stays a generic array: not the typed array of a std::vector<double>.
    assert mandala.content_id([1.0, 2.5]) != cpp["vector<double>"]


def test_ids_of_the_worked_example_of_the_storage_format():
    storage = Storage()
    with storage:
        y = inc(5)
    assert mandala.content_id(5) == "14bfa3372b6570ae95fc7da47f4114b6"
    assert y.hid == "3befab39dc7d2fda7e99abcdcfbd72f5"
    assert y.cid == "e89474a59634907fc6f6147c1608d6ac"


def test_python_and_cpp_ops_share_calls(tmp_path):
    @op
    def add(x, y):
        add.runs += 1
        return x + y

    add.runs = 0
    storage = Storage(tmp_path / "shared.db")
    cpp_ref = _core._typed_add(storage._core, 2, 3)
    with storage:
        r = add(2, 3)
    assert add.runs == 0, "the Python op reuses the C++ op's call"
    assert (r.hid, r.cid) == (cpp_ref.hid, cpp_ref.cid)
    with storage:
        r2 = add(40, 2)
    assert add.runs == 1
    executed = storage.counters()["executed"]
    assert _core._typed_add(storage._core, 40, 2).hid == r2.hid
    assert storage.counters()["executed"] == executed, "the C++ op reuses the Python op's call"
    reopened = Storage(tmp_path / "shared.db")
    with reopened:
        assert reopened.unwrap(add(2, 3)) == 5
    assert add.runs == 1


def test_ids_are_type_sensitive_and_dicts_sets_order_insensitive():
    ids = [mandala.content_id(v) for v in (1, True, 1.0, "1", b"1", [1], None)]
    assert len(set(ids)) == len(ids)
    assert mandala.content_id({"a": 1, "b": 2}) == mandala.content_id({"b": 2, "a": 1})
    assert mandala.content_id({3, 1, 2}) == mandala.content_id({2, 3, 1})
    assert mandala.content_id(frozenset({3, 1, 2})) == mandala.content_id(frozenset({2, 3, 1}))
    assert mandala.content_id({3, 1, 2}) != mandala.content_id(frozenset({2, 3, 1})), "each loads as itself"
    assert mandala.content_id([1, 2]) != mandala.content_id([2, 1])
    assert mandala.content_id(42.0) != mandala.content_id(42.00000000001)
    assert mandala.content_id([1, 2]) != mandala.content_id((1, 2)), "a tuple loads back as a tuple"


@pytest.mark.parametrize(
    "value, loaded",
    [
        (None, None),
        (True, True),
        (-7, -7),
        (2**64 - 1, 2**64 - 1),
        (-(2**63), -(2**63)),
        (0.1, 0.1),
        (math.inf, math.inf),
        ("h\u00e9llo \U0001F600", "h\u00e9llo \U0001F600"),
        (b"\x00\xff", b"\x00\xff"),
        ([1, [2, [3.5]]], [1, [2, [3.5]]]),
        ((1, "a"), (1, "a")),
        ({"a": 1, 2: [None], (1, 2): "t"}, {"a": 1, 2: [None], (1, 2): "t"}),
        ({3, 1, 2}, {1, 2, 3}),
        ([], []),
        ({}, {}),
    ],
)
def test_values_round_trip_through_a_store(tmp_path, value, loaded):
    storage = Storage(tmp_path / "s.db")
    with storage:
        ident(value)
    with Storage(tmp_path / "s.db") as reopened:
        ref = ident(value)
        assert not ref.in_memory
        assert reopened.unwrap(ref) == loaded and type(reopened.unwrap(ref)) is type(loaded)
    assert _core.decode(_core.encode(value)) == loaded and type(_core.decode(_core.encode(value))) is type(loaded)


def test_nan_has_one_id():
    assert mandala.content_id(float("nan")) == mandala.content_id(float("nan"))


def test_unstorable_arguments_are_refused_with_the_path_to_the_value():
    import threading

    lock = threading.Lock()  # neither encoded nor picklable
    storage = Storage()
    with storage:
        with pytest.raises(
            TypeError, match=r"cannot store a value of type 'lock' \(argument 'x'\): .*pickling it failed.*; stored are"
        ):
            ident(lock)
        with pytest.raises(TypeError, match=r"type 'lock' at argument 'x'\['a'\]\[1\]"):
            ident({"a": [0, lock]})
        with pytest.raises(TypeError, match=r"type 'function' at argument 'x'\[0\]"):
            ident([lambda: 1])
        loop = []
        loop.append(loop)
        with pytest.raises(ValueError, match="levels deep"):
            ident(loop)
    assert storage.counters()["executed"] == 0


def test_unstorable_outputs_are_refused_and_not_recorded():
    import threading

    @op
    def make_lock(x):
        make_lock.runs += 1
        return threading.Lock()

    make_lock.runs = 0
    storage = Storage()
    with storage:
        for _ in range(2):
            with pytest.raises(TypeError, match=r"type 'lock' \(output 'output_0' of op 'make_lock'\)"):
                make_lock(1)
    assert make_lock.runs == 2


def test_storage_errors_are_mandala_errors(tmp_path):
    bad = tmp_path / "not-a-store.db"
    bad.write_bytes(b"this is not an SQLite database, just some bytes" * 100)
    with pytest.raises(_core.Error) as info:
        Storage(bad)
    assert isinstance(info.value, RuntimeError)
    assert info.value.code == "corrupt_store"


def test_numpy_arrays_are_typed_arrays(tmp_path):
    import numpy as np

    cpp = dict(_core._typed_content_ids())
    assert mandala.content_id(np.array([1.0, 2.5])) == cpp["vector<double>"]
    assert mandala.content_id(np.array([1.0, 2.5], dtype=">f8")) == cpp["vector<double>"], "byte order"
    matrix = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert mandala.content_id(matrix.T) == mandala.content_id(np.ascontiguousarray(matrix.T)), "C order"
    assert mandala.content_id(matrix) != mandala.content_id(matrix.reshape(4, 3)), "the shape is part of it"
    assert mandala.content_id(matrix) != mandala.content_id(matrix.astype(np.int64)), "so is the dtype"

    with Storage(tmp_path / "s.db"):
        ident(matrix.T)
    with Storage(tmp_path / "s.db") as storage:
        loaded = storage.unwrap(ident(matrix.T))
    assert loaded.dtype == np.int32 and loaded.shape == (4, 3)
    assert np.array_equal(loaded, matrix.T)

    # 0-dimensional arrays are typed arrays of rank 0: not the scalar.
    assert mandala.content_id(np.array(5.0)) != mandala.content_id(5.0)
    assert _core.decode(_core.encode(np.array(5.0))).shape == ()
