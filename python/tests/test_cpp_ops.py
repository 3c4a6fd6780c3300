"""C++ ops exported to Python (mandala/python.hpp): memoized in the same store as Python ops,
with the ids a C++ program gives the same calls, taking Python values and Refs of any origin."""

import json
import os
import subprocess

import numpy as np
import pytest

import mandala_test_cpp_ops as cpp
from mandala.imports import Storage, op
from mandala.cpp_ops import CppOp


@op
def halve(x):
    return x / 2


def test_a_cpp_op_is_memoized_and_reused_after_reopening(persistent_storage_factory):
    assert isinstance(cpp.cpp_scale, CppOp)
    assert cpp.cpp_scale.inputs == ["x", "k"] and cpp.cpp_scale.outputs == ["output_0"]
    before = cpp.runs()
    with persistent_storage_factory() as storage:
        y = cpp.cpp_scale(2.0, 3)
        assert storage.unwrap(y) == 6.0
        again = cpp.cpp_scale(x=2.0, k=3)
    assert cpp.runs() == before + 1
    assert again.hid == y.hid
    storage = persistent_storage_factory()
    with storage:
        reopened = cpp.cpp_scale(2.0, 3)
    assert cpp.runs() == before + 1
    assert reopened.hid == y.hid and storage.unwrap(reopened) == 6.0


def test_refs_flow_between_python_and_cpp_ops(storage_factory):
    storage = storage_factory()
    before = cpp.runs()
    with storage:
        h = halve(10.0)                 # Python -> C++
        scaled = cpp.cpp_scale(h)       # k takes its C++ default, 2
        back = halve(scaled)            # C++ -> Python
        total, count = cpp.cpp_stats(np.array([1.0, 2.0, 4.0]))
    assert storage.unwrap(scaled) == 10.0 and storage.unwrap(back) == 5.0
    assert storage.unwrap(total) == 7.0 and storage.unwrap(count) == 3
    assert cpp.runs() == before + 2
    # The frame spans both languages.
    cf = storage.cf(halve).expand_all()
    assert {"halve", "cpp_scale"} <= cf.fnames
    assert len(cf.df()) >= 1


def test_a_plain_call_outside_a_storage_runs_the_cpp_function():
    assert cpp.cpp_greet("ada") == "hello ada"
    assert cpp.cpp_stats(np.array([1.0, 3.0])) == (4.0, 2)


def test_wrong_arguments_are_clear_errors(storage_factory):
    with storage_factory():
        with pytest.raises(Exception, match="op cpp_scale: input 'x' is not a value of the C\\+\\+ parameter's type"):
            cpp.cpp_scale("two")
        with pytest.raises(TypeError, match="takes at most 2 arguments"):
            cpp.cpp_scale(1.0, 2, 3)
        with pytest.raises(TypeError, match="unexpected keyword argument 'y'"):
            cpp.cpp_scale(1.0, y=2)
        with pytest.raises(TypeError, match="pass 'x' too"):
            cpp.cpp_scale(k=2)


def test_the_command_sees_the_ids_python_gave(tmp_path):
    cli = os.environ.get("MANDALA_CLI")
    if not cli:
        pytest.skip("MANDALA_CLI names the mandala command (set by ctest)")
    path = tmp_path / "s.db"
    with Storage(path) as storage:
        y = cpp.cpp_scale(1.5, 4)
    listing = json.loads(subprocess.run([cli, "calls", str(path), "cpp_scale", "--json"], check=True,
                                        capture_output=True, text=True).stdout)
    (call,) = listing["calls"]
    assert call["outputs"]["output_0"]["hid"] == y.hid
    assert call["outputs"]["output_0"]["value"] == 6.0
    assert call["inputs"]["x"]["value"] == 1.5 and call["inputs"]["k"]["value"] == 4
    assert call["hid"] == storage.get_ref_creator(y).hid


def test_an_op_declared_alike_in_python_and_cpp_is_one_op(storage_factory):
    python_runs = []

    @op
    def cross_triple(x):
        python_runs.append(x)
        return 3 * x

    before = cpp.runs()
    with storage_factory() as storage:
        a = cpp.cross_triple(5)  # computed in C++
        b = cross_triple(5)  # found by the Python op
        c = cross_triple(6)  # computed in Python
        d = cpp.cross_triple(6)  # found by the C++ op
    assert cpp.runs() == before + 1 and python_runs == [6]
    assert (a.hid, a.cid) == (b.hid, b.cid) and (c.hid, c.cid) == (d.hid, d.cid)
    assert storage.unwrap(b) == 15 and storage.unwrap(d) == 18


def test_a_transient_cpp_output_is_not_stored_and_is_recomputed_when_loaded(persistent_storage_factory):
    from mandala._values import NotStored

    before = cpp.runs()
    with persistent_storage_factory() as storage:
        assert list(storage.unwrap(cpp.cpp_squares(4))) == [0.0, 1.0, 4.0, 9.0]
    assert cpp.runs() == before + 1
    storage = persistent_storage_factory()
    with storage:
        again = cpp.cpp_squares(4)  # memoized: nothing runs, nothing loads
    assert cpp.runs() == before + 1
    df = storage.cf(again).expand_back().df()
    shown = [v for column in df.columns for v in df[column] if isinstance(v, NotStored)]
    assert len(shown) == 1, df  # a table shows it, computes nothing
    assert repr(NotStored()) == "<not stored>"
    assert cpp.runs() == before + 1
    assert list(storage.unwrap(again)) == [0.0, 1.0, 4.0, 9.0]  # loading it runs the op again
    assert cpp.runs() == before + 2
