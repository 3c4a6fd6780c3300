"""wrap_atom: a value as a Ref without history."""

import pytest

from mandala.imports import Ref, Storage, ValuePointer, op, wrap_atom
from mandala.model import ListRef

runs = []


@op
def inc(x):
    runs.append(x)
    return x + 1


def test_a_wrapped_value_is_the_raw_argument(tmp_path):
    runs.clear()
    w = wrap_atom(41)
    assert isinstance(w, Ref) and w.in_memory and w.obj == 41
    with Storage(tmp_path / "s.db") as storage:
        a = inc(w)
        b = inc(41)
    assert a.hid == b.hid and runs == [41]
    assert storage.get_ref_creator(a).inputs["x"].hid == w.hid
    assert wrap_atom(w) is w
    with Storage(tmp_path / "s.db") as storage:
        assert inc(wrap_atom(41)).hid == a.hid
        assert storage.unwrap(storage.get_ref_creator(a).inputs["x"]) == 41, "the value was stored"
    assert runs == [41]
    p = wrap_atom(ValuePointer("model", object()))
    assert p.obj.id == "model" and p.obj.obj is None
    with pytest.raises(ValueError, match="history_id"):
        wrap_atom(1, history_id="0" * 32)
    with pytest.raises(ValueError, match="ListRef"):
        wrap_atom(ListRef(w._ref, [1]))
