"""Transparent collections: MList / MDict annotations (the original's tps.py)."""

from typing import Tuple

import pytest

from mandala.imports import DictRef, ListRef, MDict, MList, Ref, Storage, op

runs = {}


def count(name):
    runs[name] = runs.get(name, 0) + 1


@pytest.fixture(autouse=True)
def reset_runs():
    runs.clear()


@op
def primes_below(n) -> MList[int]:
    count("primes")
    return [p for p in range(2, n) if all(p % d for d in range(2, p))]


@op
def total(nums: MList[int]) -> int:
    count("total")
    return sum(nums)


@op
def squares(nums: MList[int]) -> MList[int]:
    count("squares")
    return [x * x for x in nums]


@op
def stats(n) -> MDict[str, int]:
    count("stats")
    return {"n": n, "double": 2 * n}


@op
def keys_of(d: MDict[str, int]) -> MList[str]:
    return sorted(d)


@op
def split(n) -> Tuple[MList[int], int]:
    return list(range(n)), n


@op
def inc(x):
    count("inc")
    return x + 1


def test_the_originals_test_lists(storage_factory):
    storage = storage_factory()
    with storage:
        primes = primes_below(10)
        assert isinstance(primes, ListRef)
        assert len(primes) == 4
        assert storage.unwrap(primes[0]) == 2
        assert storage.unwrap(primes[:2]) == [2, 3]
        t1 = total(primes[:2])
        t2 = total(primes[1:3])  # overlapping sublists
        sq = squares(primes)
    assert storage.unwrap((t1, t2)) == (5, 8)
    assert storage.unwrap(sq) == [4, 9, 25, 49]
    assert storage.unwrap(primes) == [2, 3, 5, 7]
    storage = storage_factory()
    runs.clear()
    with storage:
        primes = primes_below(10)
        t1 = total(primes[:2])
        sq = squares(primes)
    assert runs == {}, "retraced: nothing runs"
    if storage_factory.persistent:
        assert not primes.in_memory and not primes[0].in_memory
    assert storage.unwrap(primes[3]) == 7
    assert storage.unwrap(sq[1]) == 9
    assert storage.unwrap(t1) == 5


def test_elements_get_their_history_from_getitem_calls():
    storage = Storage()
    with storage:
        primes = primes_below(10)
    creator = storage.get_ref_creator(primes[0])
    assert creator.op == "__list_getitem__"
    assert creator.inputs["list"].hid == primes.hid
    assert storage.unwrap(creator.inputs["i"]) == 0
    assert storage.get_ref_creator(primes).op == "primes_below"


def test_a_list_argument_is_made_by_a_make_list_call():
    storage = Storage()
    with storage:
        one = inc(0)
        t = total([one, 2, 3])
        again = total([one, 2, 3])
        other = total([inc(0), 2, 3])
    assert runs == {"inc": 1, "total": 1}
    assert again.hid == t.hid == other.hid
    call = storage.get_ref_creator(t)
    made = storage.get_ref_creator(call.inputs["nums"])
    assert made.op == "__make_list__"
    assert sorted(made.inputs) == ["elts_0", "elts_1", "elts_2"]
    assert made.inputs["elts_0"].hid == one.hid, "an element given as a Ref keeps its history"
    assert storage.unwrap(t) == 6


def test_the_same_elements_are_stored_once_and_lists_share_them():
    storage = Storage()
    with storage:
        a = total([1, 2, 3])
        b = total([3, 2, 1])
        c = total([1, 2, 3, 4])
    assert storage.unwrap((a, b, c)) == (6, 6, 10)
    assert runs["total"] == 3
    nums_a = storage.get_ref_creator(a).inputs["nums"]
    nums_c = storage.get_ref_creator(c).inputs["nums"]
    elts_a = storage.get_ref_creator(nums_a).inputs
    elts_c = storage.get_ref_creator(nums_c).inputs
    assert elts_a["elts_0"].cid == elts_c["elts_0"].cid


def test_dicts(storage_factory):
    storage = storage_factory()
    with storage:
        d = stats(3)
        assert isinstance(d, DictRef)
        assert sorted(d.keys()) == ["double", "n"]
        assert storage.unwrap(d["double"]) == 6
        k = keys_of(d)
        k2 = keys_of({"n": 3, "double": 6})
    assert storage.unwrap(d) == {"n": 3, "double": 6}
    assert storage.unwrap(k) == ["double", "n"]
    assert k.cid == k2.cid
    assert storage.get_ref_creator(d["n"]).op == "__dict_getitem__"
    storage = storage_factory()
    with storage:
        d = stats(3)
    assert runs["stats"] == 1
    assert storage.unwrap(d["n"]) == 3
    assert dict(d.items()).keys() == {"n", "double"}


def test_tuple_annotations_apply_per_output():
    storage = Storage()
    with storage:
        xs, n = split(3)
    assert isinstance(xs, ListRef) and not isinstance(n, ListRef) and isinstance(n, Ref)
    assert storage.unwrap(xs[2]) == 2
    assert storage.unwrap(n) == 3


def test_plain_calls_and_wrong_kinds():
    assert total([1, 2]) == 3
    assert primes_below(5) == [2, 3]
    storage = Storage()
    with storage:
        with pytest.raises(TypeError, match="MList: a list is expected"):
            total(5)

        @op
        def bad() -> MList[int]:
            return 7

        with pytest.raises(TypeError, match="MList: a list is expected, not a int"):
            bad()
        with pytest.raises(TypeError, match="keys must be str"):
            keys_of({1: 2})


def test_attach_loads_the_values(tmp_path):
    with Storage(tmp_path / "s.db"):
        primes_below(10)
        y = inc(1)
    storage = Storage(tmp_path / "s.db")
    with storage:
        primes = primes_below(10)
        lazy_y = inc(1)
    assert not primes.in_memory and not lazy_y.in_memory
    attached = storage.attach([primes, {"y": lazy_y}])
    assert attached[0].in_memory and attached[0].obj == [2, 3, 5, 7]
    assert attached[0].hid == primes.hid and isinstance(attached[0], ListRef)
    assert attached[1]["y"].obj == 2 and attached[1]["y"] == y
    assert not primes.in_memory, "a copy: the given Refs stay lazy"
    assert storage.attach(primes, inplace=True) is None
    assert primes.in_memory and primes.obj == [2, 3, 5, 7]


def test_lookups_by_history_id(tmp_path):
    with Storage(tmp_path / "s.db") as storage:
        y = inc(1)
        t = total([y, 5])
    storage = Storage(tmp_path / "s.db")
    loaded = storage.load_ref(y.hid)
    assert loaded == y and loaded.in_memory and loaded.obj == 2
    assert not storage.load_ref(y.hid, lazy=True).in_memory
    with pytest.raises(KeyError):
        storage.load_ref("0" * 32)
    creator = storage.get_ref_creator(t)
    assert storage.exists_call(creator.hid) and not storage.exists_call("0" * 32)
    assert storage.get_call(creator.hid) == creator
    assert storage.mget_call([creator.hid]) == [creator]
    with pytest.raises(KeyError):
        storage.get_call("0" * 32)
    assert storage.get_creators([y.hid]) == storage.get_creators(y) == [storage.get_ref_creator(y)]
    consumers = storage.get_consumers([y.hid, y])
    assert [c.op for c in consumers] == ["__make_list__"]


def test_a_tuple_returned_for_an_mlist_is_one_list():
    @op
    def as_tuple(n) -> MList[int]:
        return tuple(range(n))

    storage = Storage()
    with storage:
        xs = as_tuple(3)
        again = as_tuple(3)
    assert isinstance(xs, ListRef) and again.hid == xs.hid
    assert storage.unwrap(xs) == [0, 1, 2]
    assert storage.unwrap(xs[1]) == 1
