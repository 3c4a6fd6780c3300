"""Tuples, sets and frozensets come back as themselves (tagged values "tuple", "set" and
"frozenset", docs/storage-format.md 1.9), at any depth, as dict keys, as op inputs and outputs
and in df() tables; a set's id depends on its elements only."""

import os
import subprocess
import sys

import pytest

import mandala
from mandala import _core
from mandala.imports import Storage, op

import mandala_test_cpp_ops as cpp


@op(output_names=["value"])  # one output, also for a tuple
def ident(x):
    ident.runs += 1
    return x


ident.runs = 0


def same(a, b):
    """Equal values of exactly the same types, all the way down (1 == True, (1,) != [1] and
    {1} == frozenset({1}) are not enough)."""
    if type(a) is not type(b):
        return False
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        if len(a) != len(b):
            return False
        keys_b = {k: k for k in b}
        return all(k in keys_b and same(k, keys_b[k]) and same(v, b[k]) for k, v in a.items())
    if type(a) in (set, frozenset):
        return a == b and all(any(same(x, y) for y in b) for x in a)
    return a == b


VALUES = [
    (),
    (1,),
    (1, "a", 0.5, None, b"x"),
    ((1, 2), [3, (4, 5)], {"k": (6,)}),
    [(1, 2), (3, 4)],
    {"t": (1, 2), "s": {1, 2}, "f": frozenset({"x"})},
    {(1, 2): "tuple key", frozenset({1, 2}): "frozenset key", ((1, 2), frozenset({3})): "nested key"},
    set(),
    {1, 2, 3, 300, -1},
    {"b", "a", (1, 2), frozenset({1}), 2.5, None},
    frozenset(),
    frozenset({frozenset({1, 2}), frozenset({3}), (1, frozenset({4}))}),
    ([], {}, set(), frozenset(), ()),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_encoded_values_decode_to_themselves(value):
    assert same(_core.decode(_core.encode(value)), value)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_through_a_store(storage_factory, value):
    storage = storage_factory()
    with storage:
        ref = ident(value)
        assert same(storage.unwrap(ref), value)
    reopened = storage_factory()
    with reopened:
        again = ident(value)
        assert again.hid == ref.hid
        if storage_factory.persistent:
            assert not again.in_memory
        assert same(reopened.unwrap(again), value)


def test_tuples_and_sets_are_other_values_than_lists():
    ids = {mandala.content_id(v) for v in ([1, 2], (1, 2), {1, 2}, frozenset({1, 2}))}
    assert len(ids) == 4
    storage = Storage()
    before = ident.runs
    with storage:
        as_list = ident([1, 2])
        as_tuple = ident((1, 2))
        ident((1, 2))
    assert ident.runs == before + 2, "a list and a tuple are two calls; the same tuple is one"
    assert type(storage.unwrap(as_list)) is list and type(storage.unwrap(as_tuple)) is tuple


def test_set_ids_depend_on_the_elements_only():
    words = [f"w{i}" for i in range(50)]
    forward = set()
    for w in words:
        forward.add(w)
    backward = set()
    for w in reversed(words):
        backward.add(w)
    assert mandala.content_id(forward) == mandala.content_id(backward)
    assert _core.encode(forward) == _core.encode(backward)
    # Other hash seeds give other iteration orders, and the same bytes.
    code = (
        "import mandala\n"
        "s = {f'w{i}' for i in range(50)} | {(1, 'a'), frozenset({'x', 'y'})}\n"
        "print(list(s)[:5], mandala.content_id(s), mandala.content_id(frozenset(s)))\n"
    )
    outputs = set()
    orders = set()
    for seed in ("0", "1", "2", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
        orders.add(out.split("]")[0])
        outputs.add(out.split("]")[1])
    assert len(orders) > 1, "the seeds changed the iteration order"
    assert len(outputs) == 1, outputs


def test_golden_bytes():
    # [ext 6 "tuple", [1, "a"]]: 92 | c7 05 06 "tuple" | 92 01 a1 61
    assert _core.encode((1, "a")).hex() == "92c70506" + b"tuple".hex() + "9201a161"
    # The elements of a set sorted by their encoded bytes: 1 (01) before 300 (cd 01 2c).
    assert _core.encode({300, 1}).hex() == "92c70306" + b"set".hex() + "9201cd012c"
    assert _core.encode(frozenset({300, 1})).hex() == "92c70906" + b"frozenset".hex() + "9201cd012c"


def test_arrays_written_before_load_as_lists_and_as_tuple_keys():
    # A store written by an earlier package (or by C++) holds tuples and sets as plain arrays.
    assert same(_core.decode(bytes.fromhex("920102")), [1, 2])
    assert same(_core.decode(bytes.fromhex("81920102a174")), {(1, 2): "t"})


def test_tuple_and_set_outputs_and_df_tables(storage_factory):
    @op(output_names=["pair", "members"])
    def split(xs):
        return (xs[0], xs[-1]), frozenset(xs)

    storage = storage_factory()
    with storage:
        for n in (2, 3):
            pair, members = split(tuple(range(n)))
            assert same(storage.unwrap(pair), (0, n - 1))
            assert same(storage.unwrap(members), frozenset(range(n)))
    storage = storage_factory()
    with storage:
        df = storage.cf(split).df()
    assert len(df) == 2
    rows = sorted(zip(df["xs"], df["pair"], df["members"]), key=lambda r: len(r[0]))
    for (xs, pair, members), n in zip(rows, (2, 3)):
        assert same(xs, tuple(range(n)))
        assert same(pair, (0, n - 1))
        assert same(members, frozenset(range(n)))


def test_cpp_ops_take_python_tuples_and_sets(storage_factory):
    # A Python tuple decodes as a C++ std::pair / std::tuple / std::vector, a set as a std::set.
    storage = storage_factory()
    before = cpp.runs()
    with storage:
        r = cpp.cpp_describe(("n", 3), {"b", "a"})
        assert storage.unwrap(r) == "n=3 #a #b"
        cpp.cpp_describe(("n", 3), {"a", "b"})
    assert cpp.runs() == before + 1
    assert cpp.cpp_describe(("n", 3), frozenset({"z"})) == "n=3 #z"
