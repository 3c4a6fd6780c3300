"""@op, `with storage:`, reuse across reopening, outputs, defaults, modes, errors."""

import pytest

from mandala.imports import Ref, Storage, op

runs = {}


def count(name):
    runs[name] = runs.get(name, 0) + 1


@pytest.fixture(autouse=True)
def reset_runs():
    runs.clear()


@op
def inc(x):
    count("inc")
    return x + 1


@op
def add(x, y=10):
    count("add")
    return x + y


@op
def divmod_(a, b):
    count("divmod")
    return a // b, a % b


@op(output_names=["q", "r"])
def named_divmod(a, b):
    count("named")
    return a // b, a % b


@op(nout=2)
def pair_or_not(x):
    count("pair_or_not")
    return x if x < 0 else (x, x)


@op(ignore_args=("verbose",))
def scale(x, verbose=False):
    count("scale")
    return 2 * x


def test_outside_a_context_ops_are_plain_functions():
    assert inc(1) == 2
    assert divmod_(7, 2) == (3, 1)
    assert runs == {"inc": 1, "divmod": 1}


def test_executes_once_and_reuses(storage_factory):
    storage = storage_factory()
    with storage:
        y = inc(1)
        again = inc(1)
    assert isinstance(y, Ref)
    assert y.in_memory and y.obj == 2
    assert again.hid == y.hid and again.cid == y.cid
    assert runs == {"inc": 1}
    with storage:
        third = inc(1)
    assert third == y
    assert runs == {"inc": 1}
    assert storage.counters()["executed"] == 1


def test_reopened_store_reuses_calls_and_loads_lazily(storage_factory):
    storage = storage_factory()
    with storage:
        y = inc(20)
        z = add(y, 5)
        q, r = divmod_(z, 4)
    hids = [y.hid, z.hid, q.hid, r.hid]
    assert runs == {"inc": 1, "add": 1, "divmod": 1}
    del storage
    runs.clear()
    storage = storage_factory()
    with storage:
        y = inc(20)
        z = add(y, 5)
        q, r = divmod_(z, 4)
    assert runs == {}
    assert [y.hid, z.hid, q.hid, r.hid] == hids
    if storage_factory.persistent:
        assert not z.in_memory and z.obj is None
    assert storage.unwrap(z) == 26
    assert z.in_memory and z.obj == 26
    assert storage.unwrap([q, {"r": r}, (y,)]) == [6, {"r": 2}, (21,)]


def test_a_new_op_object_learns_its_outputs_from_the_store(storage_factory):
    storage = storage_factory()
    with storage:
        q, r = divmod_(9, 4)

    def redefine():
        @op
        def divmod_(a, b):  # the same op, redefined (as after restarting a program)
            count("redefined")
            return a // b, a % b

        return divmod_

    storage = storage_factory()
    with storage:
        q2, r2 = redefine()(9, 4)
    assert (q2.hid, r2.hid) == (q.hid, r.hid)
    assert "redefined" not in runs
    assert storage.unwrap((q2, r2)) == (2, 1)


def test_composition_reuses_content_equal_calls():
    storage = Storage()
    with storage:
        y = inc(1)
        y2 = inc(y)
        z = inc(2)
    # inc(y) and inc(2) have equal content: the second one does not run.
    assert runs == {"inc": 2}
    assert z.cid == y2.cid
    assert z.hid != y2.hid


def test_defaults_keywords_and_ignored_arguments():
    storage = Storage()
    with storage:
        a = add(1)
        b = add(1, 10)
        c = add(x=1, y=10)
        d = add(y=10, x=1)
        e = add(1, 11)
        s1 = scale(3, verbose=True)
        s2 = scale(3)
    assert a.hid == b.hid == c.hid == d.hid
    assert e.hid != a.hid
    assert runs == {"add": 2, "scale": 1}
    assert s1.hid == s2.hid


def test_output_names_and_counts():
    storage = Storage()
    with storage:
        q, r = named_divmod(17, 5)
        p1, p2 = pair_or_not(3)
        with pytest.raises(ValueError, match="must return a tuple of 2 outputs"):
            pair_or_not(-1)
    assert storage.unwrap((q, r, p1, p2)) == (3, 2, 3, 3)
    # The failed call was not recorded: it runs again.
    with storage:
        with pytest.raises(ValueError):
            pair_or_not(-1)
    assert runs["pair_or_not"] == 3


def test_output_names_differ_from_default_names():
    storage = Storage()
    with storage:
        q, _ = named_divmod(17, 5)
        q_default, _ = divmod_(17, 5)
    assert q.cid == q_default.cid
    assert q.hid != q_default.hid


def test_declaration_errors():
    with pytest.raises(ValueError, match="Output names clash with input names for op f"):

        @op(output_names=["x"])
        def f(x):
            return x

    with pytest.raises(ValueError, match="Output names must be specified for op g"):

        @op
        def g(output_0):
            return output_0


def test_noop_mode_runs_plain_functions_and_stores_nothing():
    storage = Storage()
    with storage:
        y = inc(1)
    with storage(mode="noop"):
        assert storage.mode == "noop"
        assert inc(y) == 3
        assert inc(5) == 6
    assert storage.mode == "run"
    assert storage.counters()["executed"] == 1


def test_allow_new_calls():
    storage = Storage()
    with storage:
        inc(1)
    storage.allow_new_calls(False)
    with storage:
        assert storage.unwrap(inc(1)) == 2
        with pytest.raises(RuntimeError, match="Call to inc does not exist and new calls are not allowed."):
            inc(2)

    @op
    def never_run(x):
        raise AssertionError("must not run")

    with storage:
        with pytest.raises(RuntimeError, match="Call to never_run does not exist"):
            never_run(1)  # an op the store does not know: not even run to learn its outputs
    storage.allow_new_calls(True)


def test_an_exception_propagates_and_earlier_calls_are_kept(tmp_path):
    @op
    def fails(x):
        raise KeyError("boom")

    storage = Storage(tmp_path / "s.db")
    with pytest.raises(KeyError, match="boom"):
        with storage:
            inc(41)
            fails(1)
    runs.clear()
    storage = Storage(tmp_path / "s.db")
    with storage:
        assert storage.unwrap(inc(41)) == 42
    assert runs == {}


def stored_calls(path):
    """Calls in the store file, read without mandala (a read-only SQLite connection)."""
    import sqlite3

    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return db.execute("SELECT count(*) FROM calls").fetchone()[0]


def test_nested_contexts_commit_when_leaving_the_outermost(tmp_path):
    path = tmp_path / "s.db"
    storage = Storage(path)
    with storage:
        with storage:
            inc(7)
        assert stored_calls(path) == 0, "written when leaving an inner context"
    assert stored_calls(path) == 1, "not written when leaving the outermost context"
    runs.clear()
    with Storage(path):
        inc(7)
    assert runs == {}


def test_ops_called_inside_ops_are_memoized_too():
    @op
    def twice_inc(x):
        count("twice_inc")
        return storage.unwrap(inc(inc(x)))

    storage = Storage()
    with storage:
        r = twice_inc(1)
        assert storage.unwrap(r) == 3
        assert storage.unwrap(inc(2)) == 3
    assert runs == {"twice_inc": 1, "inc": 2}


def test_refs_show_their_value_or_that_they_are_lazy(tmp_path):
    with Storage(tmp_path / "s.db"):
        y = inc(1)
    assert repr(y) == f"Ref(2, hid={y.hid[:3]}...)"
    with Storage(tmp_path / "s.db") as storage:
        lazy = inc(1)
        assert repr(lazy) == f"Ref(hid={y.hid[:3]}..., in_memory=False)"
        assert lazy == y and hash(lazy) == hash(y)
        assert {y: "a"}[lazy] == "a"


def test_ignore_wraps_an_argument_out_of_the_call():
    from mandala.imports import Ignore

    seen = []

    @op
    def report(x, verbose):
        seen.append(verbose)
        return x

    storage = Storage()
    with storage:
        a = report(1, Ignore(True))
        b = report(1, Ignore(False))
    assert a.hid == b.hid
    assert seen == [True], "the function gets the unwrapped value; the second call is reused"
    assert report(2, Ignore("plain")) == 2 and seen[-1] == "plain"


def test_new_arg_default_keeps_earlier_calls(tmp_path):
    from mandala.imports import NewArgDefault

    def version_1():
        @op
        def power(x):
            count("v1")
            return x * x

        return power

    def version_2():
        @op
        def power(x, p=NewArgDefault(2)):
            count("v2")
            assert not isinstance(p, NewArgDefault)
            return x**p

        return power

    with Storage(tmp_path / "s.db"):
        old = version_1()(3)
    power = version_2()
    with Storage(tmp_path / "s.db") as storage:
        assert power(3).hid == old.hid
        assert power(3, p=2).hid == old.hid
        assert power(3, 2).hid == old.hid
        cubed = power(3, p=3)
        assert storage.unwrap(cubed) == 27
    assert runs == {"v1": 1, "v2": 1}
    assert power(4) == 16, "outside a context the function gets the default's value"


def test_noop_context_manager():
    from mandala.imports import noop

    storage = Storage()
    with noop():
        assert inc(1) == 2  # no storage: a plain call
    with storage:
        y = inc(1)
        with noop():
            assert inc(y) == 3
            with storage:
                assert isinstance(inc(5), Ref), "a plain nested `with storage:` runs"
        assert storage.mode == "run"
    assert storage.counters()["executed"] == 2


def test_a_ref_inside_a_plain_container_is_refused():
    storage = Storage()
    with storage:
        y = inc(1)
        with pytest.raises(TypeError, match=r"type 'Ref' at argument 'x'\[0\].*would lose its history"):
            inc([y])


def test_threads_inside_a_context_share_it_and_each_call_is_stored_once(tmp_path):
    import threading

    @op
    def slow_square(x):
        count("slow_square")
        threading.Event().wait(0.01)
        return x * x

    storage = Storage(tmp_path / "s.db")
    results = {}
    errors = []

    def work(i):
        try:
            results[i] = storage.unwrap(slow_square(i % 4))
        except Exception as e:  # reported below
            errors.append(e)

    with storage:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    assert results == {i: (i % 4) ** 2 for i in range(16)}
    assert 4 <= runs["slow_square"] <= 16
    assert len(storage.cf(slow_square).df()) == 4, "one stored call per distinct input"
    runs.clear()
    with Storage(tmp_path / "s.db"):
        for i in range(4):
            slow_square(i)
    assert runs == {}


def test_value_pointers_store_the_name_only(tmp_path):
    from mandala import _core
    from mandala.imports import ValuePointer

    class Model:  # not storable
        def __init__(self, scale):
            self.scale = scale

    @op
    def predict(model, x):
        count("predict")
        return model.scale * x

    with Storage(tmp_path / "s.db") as storage:
        a = predict(ValuePointer("model-v1", Model(2)), 5)
        b = predict(ValuePointer("model-v1", Model(3)), 5)  # the same name: the same call
        c = predict(ValuePointer("model-v2", Model(3)), 5)
    assert storage.unwrap((a, b, c)) == (10, 10, 15)
    assert runs == {"predict": 2}
    assert predict(ValuePointer("m", Model(4)), 1) == 4, "a plain call gets the object"
    with Storage(tmp_path / "s.db") as storage:
        creator = storage.get_ref_creator(predict(ValuePointer("model-v1", None), 5))
        loaded = storage.unwrap(creator.inputs["model"])
    assert isinstance(loaded, ValuePointer) and loaded.id == "model-v1" and loaded.obj is None
    assert _core.decode(_core.encode(_core.PointerName("p"))) == _core.PointerName("p")
    with pytest.raises(ValueError, match="non-empty str"):
        ValuePointer("", 1)


def test_clearing_the_cache_waits_for_a_commit():
    storage = Storage()

    @op
    def inc(x):
        return x + 1

    with storage:
        for i in range(3):
            inc(i)
        with pytest.raises(ValueError, match="not committed yet"):
            storage.atoms.clear()
        storage.atoms.clear(allow_uncommited=True)
        storage.commit()
        storage.atoms.clear()
        inc(0)  # memoized: nothing new to commit
        storage.clear_cache()
        inc(7)
        with pytest.raises(ValueError):
            storage.clear_cache()
