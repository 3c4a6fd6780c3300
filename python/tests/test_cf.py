"""storage.cf(...): ComputationFrames over the stored calls, df() as pandas."""

import pandas as pd
import pytest

import mandala
from mandala.imports import Call, ComputationFrame, Storage, op


@op
def inc(x):
    return x + 1


@op
def add(x, y):
    return x + y


@pytest.fixture
def storage(persistent_storage_factory):
    with persistent_storage_factory() as s:
        for i in range(3):
            add(inc(i), 10)
    return persistent_storage_factory()  # reopened: everything comes from the file or database


def test_cf_of_an_op(storage):
    cf = storage.cf(inc)
    assert isinstance(cf, ComputationFrame)
    assert cf.fnames == {"inc"}
    df = cf.df()
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 3
    variables = [c for c in df.columns if c != "inc"]
    inputs = [c for c in variables if sorted(df[c]) == [0, 1, 2]]
    outputs = [c for c in variables if sorted(df[c]) == [1, 2, 3]]
    assert inputs == ["x"] and len(outputs) == 1
    calls = list(df["inc"])
    assert all(isinstance(c, Call) and c.op == "inc" for c in calls)
    assert sorted(storage.unwrap(c.inputs["x"]) for c in calls) == [0, 1, 2]
    assert sorted(storage.unwrap(c.outputs["output_0"]) for c in calls) == [1, 2, 3]
    assert "1 operation(s) (3 unique calls)" in repr(cf)


def test_expanding_from_refs_recovers_their_history(storage):
    with storage:
        z = add(inc(2), 10)
    assert storage.unwrap(z) == 13
    cf = storage.cf(z).expand_back(recursive=True)
    assert cf.fnames == {"inc", "add"}
    df = cf.eval()
    assert len(df) == 1
    assert sorted(df.iloc[0].tolist()) == [2, 3, 10, 13]
    assert "inc" not in df.columns and "add" not in df.columns
    full = storage.cf(inc).expand_all()
    assert full.fnames == {"inc", "add"}
    assert len(full.df()) == 3


def test_cf_of_named_refs(storage):
    with storage:
        a, b = inc(0), inc(1)
    cf = storage.cf({"small": [a, b]})
    assert cf.vnames == {"small"}
    assert sorted(cf.df()["small"]) == [1, 2]
    assert sorted(storage.unwrap(r) for r in cf.refs("small")) == [1, 2]
    with pytest.raises(TypeError, match="cf"):
        storage.cf(42)


def test_provenance_and_dropping_calls_from_a_df(storage):
    with storage:
        y = inc(1)
        z = add(y, 10)
    creator = storage.get_ref_creator(z)
    assert creator.op == "add" and creator.inputs["x"] == y
    assert storage.get_ref_creator(creator.inputs["y"]) is None, "a raw input has no creator"
    assert [c.op for c in storage.get_consumers(y)] == ["add"]

    df = storage.cf(inc).df()
    small = df[df["x"] < 2]
    assert storage.get_unreferenced_cids() == set() and storage.get_orphans() == set()
    removed = storage.drop_calls(small["inc"], delete_dependents=True)
    assert removed == 4, "two inc calls and the add calls downstream of them"
    assert len(storage.cf(inc).df()) == 1
    assert len(storage.cf(add).df()) == 1
    # Left: inc(2) -> 3 and add(3, 10) -> 13; the values 0, 1, 11 and 12 no call uses any more
    # (2 is still the input of inc(2), 10 that of the add call).
    unreferenced = {mandala.content_id(v) for v in (0, 1, 11, 12)}
    assert storage.get_unreferenced_cids() == unreferenced
    assert storage.get_orphans() == set(), "a dropped call leaves values, never a ref"
    report = storage.cleanup_refs()
    assert report["values_removed"] == 4 and set(report["cids"]) == unreferenced
    assert storage.get_unreferenced_cids() == set()
    with storage:
        inc(0)  # computed again
    assert len(storage.cf(inc).df()) == 2
    with pytest.raises(ValueError, match="not a call history id"):
        storage.drop_calls(["xyz"])




@op
def extend(x, tail):
    return [x] + tail


def test_df_cells_of_a_whole_frame(tmp_path):
    """Call cells read the frame lazily and agree with the storage's Calls; a row holding
    several values of a node has a list; a value repeated in rows is one object only when it
    cannot be changed in place."""
    with Storage(tmp_path / "s.db"):
        for i in range(3):
            add(inc(i), 1)  # 1 is also inc(1)'s input: rows hold two values of x
    with Storage(tmp_path / "t.db"):
        for i in range(3):
            extend(inc(i), [7])
    storage = Storage(tmp_path / "s.db")
    df = storage.cf(inc).expand_all().df()
    assert len(df) == 3
    assert df["var_0"].dtype == "int64" and df["add"].dtype == object and df["x"].dtype == object
    cells = [sorted(v) if isinstance(v, list) else [v] for v in df["x"]]
    assert sorted(cells) == [[0, 1], [1], [1, 2]]
    for _, row in df.iterrows():
        call = row["add"]
        assert isinstance(call, Call) and call.op == "add" and call.version == 0
        creator = storage.get_ref_creator(call.outputs["output_0"])
        assert creator == call and hash(creator) == hash(call)
        assert (creator.hid, creator.cid, creator.op) == (call.hid, call.cid, call.op)
        assert storage.unwrap(call.inputs["y"]) == 1
        assert storage.get_ref_creator(call.inputs["x"]) == row["inc"]
        assert storage.unwrap(row["inc"].outputs["output_0"]) == row["var_0"]
        assert repr(call).startswith("Call(add, hid=")
    storage = Storage(tmp_path / "t.db")
    df = storage.cf(extend).expand_back(recursive=True).df()
    assert list(df["tail"]) == [[7]] * 3
    assert len({id(v) for v in df["tail"]}) == 3  # not one list object in three rows
    assert len({c.hid for c in df["extend"]}) == 3
    assert storage.drop_calls(df["extend"]) == 3
    assert storage.cf(extend).df().empty


DROP_IN_ANOTHER_PROCESS = """
import sys
from mandala.imports import Storage
print(Storage(sys.argv[1]).drop_calls([sys.argv[2]], delete_dependents=True))
"""


def test_values_another_process_left_unreferenced_are_seen_and_removed(persistent_storage_factory):
    import subprocess
    import sys

    storage = persistent_storage_factory()
    with storage:
        y = inc(1)
        add(y, 10)
    assert storage.get_unreferenced_cids() == set()
    # Another process drops inc(1) and add(2, 10) while this storage stays open.
    dropped = subprocess.run(
        [sys.executable, "-c", DROP_IN_ANOTHER_PROCESS, str(storage.db_path), storage.get_ref_creator(y).hid],
        capture_output=True, text=True, check=True,
    )
    assert dropped.stdout.strip() == "2"
    unreferenced = {mandala.content_id(v) for v in (1, 2, 10, 12)}
    assert storage.get_unreferenced_cids() == unreferenced
    assert set(storage.cleanup_refs()["cids"]) == unreferenced
    assert storage.get_unreferenced_cids() == set()
    executed = storage.counters()["executed"]
    with storage:
        assert storage.unwrap(add(inc(1), 10)) == 12
    assert storage.counters()["executed"] == executed + 2, "the dropped calls run again"
    assert persistent_storage_factory().get_unreferenced_cids() == set()
