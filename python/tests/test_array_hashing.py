"""Large numeric numpy arrays are hashed where they lie (no copy) and held by the call: their
ids are those of their encoding (the copying path, and C++'s), and the encoding is made only
when the array must be stored (docs/python.md, "Large arrays")."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mandala
from mandala import _core
from mandala.imports import Storage, op, wrap_atom

N = 100_000  # 800 KB of float64: above the size held without a copy (64 KiB)


@op(output_names=["value"])
def ident(x):
    ident.runs += 1
    return x


ident.runs = 0


def copying_id(value):
    """The content id through the copying path (every array encoded first)."""
    _core._hold_arrays(False)
    try:
        return mandala.content_id(value)
    finally:
        _core._hold_arrays(True)


def arrays():
    rng = np.random.default_rng(7)
    floats = rng.standard_normal(N)
    with_nans = floats.copy()
    bits = with_nans.view(np.uint64)
    bits[3] = 0x7FF0000000000001  # a signalling NaN payload
    bits[70_000] = 0xFFF8000000000000  # -nan
    f32 = rng.standard_normal(N).astype(np.float32)
    f32[[5, 40_000]] = np.nan
    f16 = rng.standard_normal(N).astype(np.float16)
    f16.view(np.uint16)[9] = 0xFE01  # a float16 NaN with sign and payload
    c128 = (floats + 1j * floats[::-1]).astype(np.complex128)
    c128[11] = complex(np.nan, 1.0)
    c64 = c128.astype(np.complex64)
    bools = rng.integers(0, 3, N, dtype=np.uint8).view(np.bool_)  # bytes 2 are true too
    return {
        "float64": floats,
        "float64 NaNs": with_nans,
        "float32 NaNs": f32,
        "float16 NaN": f16,
        "complex128 NaN": c128,
        "complex64": c64,
        "bool bytes 0-2": bools,
        "int8": rng.integers(-128, 127, N, dtype=np.int8),
        "uint16": rng.integers(0, 60_000, N, dtype=np.uint16),
        "int32 2-D": rng.integers(-5, 5, (400, 250), dtype=np.int32),
        "uint64 3-D": rng.integers(0, 2**63, (10, 100, 100), dtype=np.uint64),
        "big-endian float64": floats.astype(">f8"),
        "transposed": rng.standard_normal((300, 400)).T,
        "strided": floats[::2],
        "read-only": np.frombuffer(floats.tobytes(), dtype=np.float64),
    }


@pytest.mark.parametrize("name", list(arrays()))
def test_ids_are_those_of_the_encoding(name):
    a = arrays()[name]
    assert a.nbytes >= 64 << 10
    held = mandala.content_id(a)
    assert held == copying_id(a)
    assert _core.atom_ref(a).cid == held
    assert wrap_atom(a).cid == held


def test_ids_equal_those_of_cpp_vectors():
    cpp = dict(_core._typed_content_ids())
    halves = np.arange(N, dtype=np.float64) * 0.5
    assert mandala.content_id(halves) == cpp["vector<double> 100000 halves"]
    halves.view(np.uint64)[7] = 0xFFF0000000000123  # a NaN of another sign and payload
    halves[99_999] = -np.inf
    assert mandala.content_id(halves) == cpp["vector<double> 100000 halves, NaN at 7, -inf at 99999"]
    counts = np.arange(-25_000, 25_000, dtype=np.int32)
    assert mandala.content_id(counts) == cpp["vector<int32_t> -25000..24999"]
    assert mandala.content_id(counts.astype(">i4")) == cpp["vector<int32_t> -25000..24999"]


@pytest.mark.parametrize("name", ["float64 NaNs", "bool bytes 0-2", "transposed", "big-endian float64"])
def test_held_arguments_are_memoized_and_stored_as_their_encoding(storage_factory, name):
    a = arrays()[name]
    storage = storage_factory()
    before = ident.runs
    with storage:
        r = ident(a)
        again = ident(a)
    assert ident.runs == before + 1 and again.hid == r.hid
    assert r.cid == copying_id(a)
    storage = storage_factory()
    with storage:
        _core._hold_arrays(False)
        try:
            copied = ident(a)  # the copying path finds the same call
        finally:
            _core._hold_arrays(True)
        assert copied.hid == r.hid
        loaded = storage.unwrap(ident(a))
    assert ident.runs == before + 1
    assert loaded.shape == a.shape
    if name == "bool bytes 0-2":
        assert np.array_equal(loaded, a.astype(bool))
    else:
        assert np.array_equal(loaded, a, equal_nan=True)


def test_an_op_that_changes_its_input_in_place_stores_the_input_it_was_given(persistent_storage_factory):
    @op(output_names=["total"])  # (an op of unknown output count runs before its call is made)
    def bump(x):
        x += 1  # changes the caller's array
        return float(x.sum())

    a = np.zeros(N)
    with persistent_storage_factory() as storage:
        bump(a)
        call = storage.cf(bump).df(include_calls=False)
    assert a[0] == 1.0
    stored = call["x"][0]
    assert np.array_equal(stored, np.zeros(N)), "the value the call was given, encoded before it ran"


def test_a_held_array_changed_before_it_is_stored_is_refused():
    a = np.zeros(N)
    ref = wrap_atom(a)  # holds the array itself (hashed once, no copy)
    a[0] = 5.0
    storage = Storage()
    with storage:
        with pytest.raises(_core.Error, match="changed in place"):
            ident(ref)
    assert storage.counters()["executed"] == 0


def test_collection_elements_are_held_too(storage_factory):
    from mandala.imports import MList

    @op
    def total(xs: MList[np.ndarray]) -> float:
        return float(sum(x.sum() for x in xs))

    xs = [np.full(N, 1.0), np.full(N, 2.0)]
    storage = storage_factory()
    with storage:
        r = total(xs)
        assert storage.unwrap(r) == 3.0 * N
    storage = storage_factory()
    with storage:
        assert total(xs).hid == r.hid
        assert storage.unwrap(total(xs)) == 3.0 * N


CHILD = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from mandala.imports import Storage, op
    @op
    def length(x):
        return len(x)
    a = np.arange(6_000_000, dtype=np.float64)  # 48 MB
    storage = Storage(sys.argv[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with storage:
        length(a)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kb": after - before, "executed": storage.counters()["executed"]}))
    """
)


def test_a_memoized_call_does_not_copy_its_array(tmp_path):
    # Peak memory, not time: the call found in the store adds no copy of its 48 MB argument
    # (the first call, which stores it, does).
    path = str(tmp_path / "s.db")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")

    def run():
        out = subprocess.run([sys.executable, "-c", CHILD, path], env=env, capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    first = run()
    assert first["executed"] == 1 and first["growth_kb"] > 40_000
    memoized = run()
    assert memoized["executed"] == 0
    assert memoized["growth_kb"] < 8_000, memoized
