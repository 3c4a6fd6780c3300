"""The ComputationFrame API beyond df(): reachability, selection, set operations, mutation,
tables and drawing, on the examples the original's documentation verifies."""

import pytest

from mandala.imports import Call, ComputationFrame, op


@op(output_names=["y"])
def inc(x):
    return x + 1


@op(output_names=["z"])
def add(x, y):
    return x + y


@op
def mul(a, b):
    return a * b


@op
def final(u, v):
    return u - v


@pytest.fixture
def storage(persistent_storage_factory):
    with persistent_storage_factory() as s:
        for x in range(5):
            y = inc(x)
            if x % 2 == 0:
                add(x, y)
    return persistent_storage_factory()


def test_the_documented_tables(storage):
    cf = storage.cf(inc).expand_forward()
    assert cf.get_graph_desc().splitlines() == ["y@y = inc(x=x)", "z@z = add(x=x, y=y)"]
    df = cf.df()
    assert list(df.columns) == ["x", "inc", "y", "add", "z"]
    assert len(df) == 5
    odd = df[df.x % 2 == 1]
    assert odd["add"].isna().all() and odd["z"].isna().all()
    assert list(cf.df("x", "z").columns) == ["x", "z"]
    assert list(cf.df(include_calls=False).columns) == ["x", "y", "z"]
    assert len(storage.cf(add).expand_all().df()) == 3
    assert len(storage.cf(inc).expand_all().df()) == 5


def test_graph_queries(storage):
    cf = storage.cf(inc).expand_forward()
    assert cf.sources == {"x"} and cf.sinks == {"z"}
    assert ("x", "inc", "x") in cf.edges and ("add", "z", "z") in cf.edges
    assert cf.in_neighbors("add") == {"x", "y"}
    order = cf.topsort_modulo_sccs()
    assert order.index("x") < order.index("inc") < order.index("y") < order.index("add") < order.index("z")
    stats = cf.get_var_stats().set_index("name")["num_values"].to_dict()
    assert stats == {"x": 5, "y": 5, "z": 3}
    assert cf.get_func_stats().set_index("name")["num_calls"].to_dict() == {"inc": 5, "add": 3}


def test_reachability_and_selection(storage):
    cf = storage.cf(inc).expand_forward()
    down = cf.downstream("y")
    assert down.nodes == {"y", "add", "z"}
    up = cf.upstream("z")
    assert up.nodes == {"x", "inc", "y", "add", "z"}
    assert len(up.df()) == 3  # only the computations that reached z
    sub = cf.select_nodes(["x", "inc", "y"])
    assert sub.nodes == {"x", "inc", "y"} and sub.fnames == {"inc"}
    assert cf["y"].nodes == {"y"}
    with pytest.raises(ValueError, match="Node nope not found in the CF"):
        cf.select_nodes(["nope"])
    kept = cf.isin([1, 3], by="val")
    assert sorted(storage.unwrap(r) for r in kept.refs("x")) == [1, 3]
    small = cf < 3
    assert all(storage.unwrap(r) < 3 for v in small.vnames for r in small.refs(v))


def test_set_operations(storage):
    a = storage.cf(inc)
    b = storage.cf(add)
    both = a | b
    assert both.fnames == {"inc", "add"}
    assert ComputationFrame.union(a, b).fnames == {"inc", "add"}
    common = (a | b) & a
    assert common.fnames == {"inc"}
    rest = (a | b) - b
    assert "inc" in rest.fnames


def test_mutation(storage):
    cf = storage.cf(inc).expand_forward()
    renamed = cf.rename(vars={"z": "total"})
    assert "total" in renamed.vnames and "z" not in renamed.vnames
    assert "z" in cf.vnames  # not in place
    cf.rename(vars={"z": "total"}, inplace=True)
    assert "total" in cf.vnames
    dropped = cf.drop_node("add")
    assert "add" not in dropped.fnames
    with pytest.raises(ValueError, match="not found"):
        cf.drop_node("nope")
    assert cf.copy().nodes == cf.nodes


def test_merge_vars_on_a_diamond(persistent_storage_factory):
    with persistent_storage_factory() as s:
        for i in range(10):
            a = add(i, 1)
            b = mul(i, 2)
            final(a, b)
    storage = persistent_storage_factory()
    merged = storage.cf(final).expand_all().merge_vars()
    assert len(merged.df()) == 10


def test_history_and_func_tables(storage):
    cf = storage.cf(inc).expand_forward()
    history = cf.get_history_df("z")
    assert len(history) == 3
    assert all(isinstance(c, Call) for c in history["add"])
    table = cf.get_func_table("add")
    assert len(table) == 3 and {"x", "y", "z"} <= set(table.columns)


def test_deleting_the_calls_of_a_filtered_table(storage):
    cf = storage.cf(inc).expand_forward()
    df = cf.df()
    cf.delete_calls_from_df(df[df.x == 4])
    after = storage.cf(inc).expand_forward().df()
    assert sorted(after.x) == [0, 1, 2, 3]
    assert len(storage.cf(add).df()) == 2


def test_draw_gives_svg(storage, tmp_path):
    import shutil

    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot program is not installed")
    cf = storage.cf(inc).expand_forward()
    svg = cf.draw(show_how="none", path=tmp_path / "cf.svg")
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    assert (tmp_path / "cf.svg").read_text() == svg
    assert "digraph" in cf.to_dot()
