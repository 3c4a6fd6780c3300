"""Transient outputs of Python ops (@op(transient=...)): recorded by id, not stored, recomputed
from the call's stored inputs when loaded, the id checked (docs/storage-format.md 2.3)."""

import numpy as np
import pytest

from mandala._values import NotStored
from mandala.imports import Ignore, NewArgDefault, Storage, op


def _runs():
    return {"n": 0}


def test_a_transient_output_is_not_stored_and_is_recomputed_after_reopening(persistent_storage_factory):
    runs = _runs()

    @op(transient=True)
    def big(n):
        runs["n"] += 1
        return np.arange(n, dtype=np.float64) ** 2

    @op
    def total(a):
        return float(a.sum())

    storage = persistent_storage_factory()
    with storage:
        t = total(big(1000))
    assert runs["n"] == 1 and storage.unwrap(t) == float((np.arange(1000) ** 2).sum())

    storage = persistent_storage_factory()  # reopened: nothing of big's result was kept
    with storage:
        again = big(1000)
        t2 = total(again)  # memoized: nothing runs, nothing loads
    assert runs["n"] == 1 and t2.hid == t.hid
    df = storage.cf(again).expand_back().df()
    assert sum(isinstance(v, NotStored) for c in df.columns for v in df[c]) == 1, df
    assert runs["n"] == 1  # a table shows it and computes nothing
    value = storage.unwrap(again)  # loading it runs the function again
    assert runs["n"] == 2 and np.array_equal(value, np.arange(1000, dtype=np.float64) ** 2)

    @op
    def second(a):
        return float(a[2])

    storage = persistent_storage_factory()
    with storage:
        s = second(big(1000))  # a new consumer: the input is recomputed for it, once
    assert runs["n"] == 3 and storage.unwrap(s) == 4.0
    df = storage.cf(again).expand_back().df()  # still not stored after loading
    assert sum(isinstance(v, NotStored) for c in df.columns for v in df[c]) == 1, df


def test_only_the_named_outputs_are_transient_and_arguments_are_rebuilt(persistent_storage_factory):
    runs = _runs()

    @op(output_names=["small", "large"], transient=["large"])
    def split(x, *args, scale=NewArgDefault(1), **kwargs):
        runs["n"] += 1
        s = (x + sum(args)) * scale + sum(kwargs.values())
        return s, [s] * 100

    storage = persistent_storage_factory()
    with storage:
        small, large = split(1, 2, 3, k=4)
        small2, large2 = split(1, 2, 3, scale=2, k=4)
    assert runs["n"] == 2

    storage = persistent_storage_factory()
    with storage:
        small, large = split(1, 2, 3, k=4)
        small2, large2 = split(1, 2, 3, scale=2, k=4)
    assert runs["n"] == 2
    assert storage.unwrap(small) == 10 and runs["n"] == 2  # a stored output loads
    assert storage.unwrap(large) == [10] * 100 and runs["n"] == 3  # *args, **kwargs, omitted default
    assert storage.unwrap(large2) == [16] * 100 and runs["n"] == 4  # a given default-like argument


def test_a_changed_result_is_reported_not_returned(persistent_storage_factory):
    state = {"offset": 0}

    @op(transient=True)
    def shifted(x):
        return [x] * 10 + [state["offset"]]  # (a value no input has: it is not stored by anyone)

    storage = persistent_storage_factory()
    with storage:
        shifted(1)
    state["offset"] = 5  # the code's behaviour changed without a new version
    storage = persistent_storage_factory()
    with storage:
        r = shifted(1)
    with pytest.raises(Exception, match="gave another value"):
        storage.unwrap(r)


def test_a_call_with_an_ignored_argument_keeps_its_transient_output(persistent_storage_factory):
    runs = _runs()

    @op(transient=True)
    def noisy(x, verbose=False):
        runs["n"] += 1
        return [x] * 10

    storage = persistent_storage_factory()
    with storage:
        noisy(2, Ignore(True))  # cannot run again from what is stored: keeps its value
        noisy(3)
    storage = persistent_storage_factory()
    with storage:
        kept = noisy(2, Ignore(True))
        recomputed = noisy(3)
    assert runs["n"] == 2
    assert storage.unwrap(kept) == [2] * 10 and runs["n"] == 2
    assert storage.unwrap(recomputed) == [3] * 10 and runs["n"] == 3


def test_transient_is_not_part_of_any_id(tmp_path):
    @op
    def value(x):
        return x * 3

    with Storage(str(tmp_path / "a.db")) as storage:
        plain = value(4)

    @op(transient=True)
    def value(x):  # noqa: F811 (the same op, declared transient)
        return x * 3

    with Storage(str(tmp_path / "b.db")) as storage:
        kept_out = value(4)
    assert (plain.hid, plain.cid) == (kept_out.hid, kept_out.cid)
    assert storage.unwrap(kept_out) == 12


def test_bad_transient_declarations_are_refused(storage_factory):
    with pytest.raises(ValueError, match="transient"):

        @op(transient="big")
        def f(x):
            return x

    @op(output_names=["a"], transient=["b"])
    def g(x):
        return x

    with pytest.raises(ValueError, match="not outputs"):
        with storage_factory():
            g(1)
