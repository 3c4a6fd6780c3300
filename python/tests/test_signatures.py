"""*args / **kwargs inputs and keyword arguments at call sites (the original's naming)."""

import pytest

from mandala.imports import Ignore, Storage, op

runs = []


@op
def add(x, *args, y=1, **kwargs):
    runs.append((x, args, y, kwargs))
    return x + sum(args) + y, kwargs


@op
def sum_args(a, *args, b=1, **kwargs):
    return a + sum(args) + b + sum(kwargs.values())


@pytest.fixture(autouse=True)
def reset_runs():
    runs.clear()


def test_the_originals_test_signatures(storage_factory):
    storage = storage_factory()
    with storage:
        r1 = add(1)
        r2 = add(1, 2, 3)
        r3 = add(1, y=10, z=5)
        r4 = add(1, 2, y=10, z=5, w=7)
    assert storage.unwrap(r1) == (2, {})
    assert storage.unwrap(r2) == (7, {})
    assert storage.unwrap(r3) == (11, {"z": 5})
    assert storage.unwrap(r4) == (13, {"z": 5, "w": 7})
    assert add(1, 2, y=10, z=5) == (13, {"z": 5}), "a plain call outside a context"


def test_inputs_are_named_like_the_originals():
    storage = Storage()
    with storage:
        s = sum_args(6, 7, 8, 9, c=11)
    call = storage.get_ref_creator(s)
    assert sorted(call.inputs) == ["a", "args_0", "args_1", "args_2", "b", "c"]
    assert list(call.outputs) == ["output_0"]
    assert storage.unwrap(s) == 6 + 7 + 8 + 9 + 1 + 11


def test_variadic_calls_are_memoized_by_their_arguments(storage_factory):
    storage = storage_factory()
    with storage:
        a = add(1, 2, z=3)
        b = add(1, 2, z=3)
        c = add(1, 2, 3)  # another shape of call: another call
        d = add(1, 2, w=3)  # another keyword: another call
        e = add(1, 2, y=1, z=3)  # the default given explicitly: the same call as a
        f = add(1, w=3, z=4)
        g = add(1, z=4, w=3)  # keyword order does not matter
    assert [r.hid for r in a] == [r.hid for r in b] == [r.hid for r in e]
    assert a[0].hid != c[0].hid and a[0].hid != d[0].hid
    assert f[0].hid == g[0].hid
    assert len(runs) == 4
    storage = storage_factory()
    with storage:
        again = add(1, 2, z=3)
        assert storage.unwrap(add(1, w=3, z=4)) == (2, {"w": 3, "z": 4})
    assert again[0].hid == a[0].hid
    assert len(runs) == 4, "reopened: nothing runs again"


def test_ignored_variadic_arguments():
    storage = Storage()
    with storage:
        a = add(1, 2, Ignore(100), z=Ignore("verbose"))
        b = add(1, 2, Ignore(200), z=Ignore("quiet"))
    assert a[0].hid == b[0].hid
    assert runs == [(1, (2, 100), 1, {"z": "verbose"})]
    assert storage.unwrap(a[0]) == 104
    assert sorted(storage.get_ref_creator(a[0]).inputs) == ["args_0", "x", "y"]


def test_keyword_arguments_are_passed_back_as_keywords():
    seen = []

    @op
    def kw_only(x, *, scale=2, **options):
        seen.append((x, scale, options))
        return x * scale

    storage = Storage()
    with storage:
        a = kw_only(3, scale=4, mode="fast")
        b = kw_only(x=3, mode="fast", scale=4)
    assert a.hid == b.hid
    assert seen == [(3, 4, {"mode": "fast"})]
    assert storage.unwrap(a) == 12


def test_refs_as_variadic_arguments_keep_their_history():
    @op
    def inc(x):
        return x + 1

    storage = Storage()
    with storage:
        one = inc(0)
        total = sum_args(one, one, k=one)
    call = storage.get_ref_creator(total)
    assert call.inputs["args_0"].hid == one.hid
    assert call.inputs["k"].hid == one.hid
    assert storage.unwrap(total) == 1 + 1 + 1 + 1


def test_a_keyword_named_like_an_output_is_refused():
    storage = Storage()
    with storage:
        with pytest.raises(Exception, match="output_0"):
            sum_args(1, output_0=2)
