#!/usr/bin/python3
"""Generate expected ComputationFrame tables from the original Python mandala.

The original library is *imported*, never copied: put a checkout of
github.com/amakelov/mandala on PYTHONPATH (see README.md next to this file).

Every scenario below builds a fresh in-memory ``Storage``, runs a few ops and
records one or more frames.  For each frame we store the graph description
(``cf.get_graph_desc()``), the column order of ``cf.df(...)`` and its rows, in
the JSON format described in ``tests/frame/data/README.md``.

Usage:
    generate.py [--out DIR] [SCENARIO ...]     # default: all scenarios into ../data
    generate.py --check-seeds 1,2,3            # rerun under other hash seeds and
                                                # report what depends on the seed

Outputs are produced with PYTHONHASHSEED=0 (the script re-executes itself with
it if needed): the reference iterates over Python sets when it orders columns
and graph lines, so without a fixed seed those orders could vary between runs.
"""
import inspect
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "data"))

# mandala imports pyarrow but never uses it, and Debian has no python3-pyarrow.
# A stub on PYTHONPATH works too; this in-process stub only fills the gap.
try:
    import pyarrow  # noqa: F401
except ImportError:
    _stub = types.ModuleType("pyarrow")
    _stub.__version__ = "0.0.1"
    sys.modules["pyarrow"] = _stub

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") is None:
    env = dict(os.environ, PYTHONHASHSEED="0")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)

import pandas as pd  # noqa: E402
from mandala.imports import MDict, MList, Storage, op  # noqa: E402
from mandala.model import Call, CallCollection, Ref, RefCollection, ValueCollection  # noqa: E402


################################################################################
### conversion of frames to JSON
################################################################################
def canon(cell):
    """Canonical sort key for a cell: null < numbers (numerically) < strings < others."""
    if cell is None:
        return (0, 0, "")
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return (1, cell, "")
    if isinstance(cell, str):
        return (2, 0, cell)
    return (3, 0, json.dumps(cell, sort_keys=True))


def row_key(columns):
    """Canonical sort key for rows: the tuple of cell keys in column order."""
    return lambda row: tuple(canon(row[c]) for c in columns)


def plain(value):
    """A stored value as a JSON-able Python object."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        return plain(value.item())  # numpy scalar
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    raise TypeError(f"value {value!r} of type {type(value)} is not JSON-able")


def is_null(x):
    return x is None or (isinstance(x, float) and math.isnan(x))


def ref_cell(storage, x):
    """Cell of a df(values='refs') frame -> JSON cell (the authoritative form)."""
    if is_null(x):
        return None
    if isinstance(x, Ref):
        return plain(storage.unwrap(x))
    if isinstance(x, Call):
        return {"call": x.op.name}
    if isinstance(x, RefCollection):
        return {"collection": sorted((ref_cell(storage, r) for r in x.refs), key=canon)}
    if isinstance(x, CallCollection):
        return {"collection": sorted((ref_cell(storage, c) for c in x.calls), key=canon)}
    raise TypeError(f"unexpected cell {x!r} of type {type(x)}")


def obj_cell(x):
    """Cell of a df(values='objs') frame -> JSON cell (used for cross-checking)."""
    if isinstance(x, Call):
        return {"call": x.op.name}
    if isinstance(x, CallCollection):
        return {"collection": sorted((obj_cell(c) for c in x.calls), key=canon)}
    if isinstance(x, ValueCollection):
        return {"collection": sorted((plain(v) for v in x.values), key=canon)}
    if isinstance(x, (Ref, RefCollection)):
        raise TypeError(f"unexpected lazy cell {x!r}")
    return plain(x)


def same_cell(a, b):
    """Equality modulo pandas' int -> float coercion of columns holding NaN."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_cell(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_cell(a[k], b[k]) for k in a)
    return a == b


def table(storage, df_refs, df_objs):
    columns = [str(c) for c in df_refs.columns]
    assert columns == [str(c) for c in df_objs.columns], (columns, list(df_objs.columns))
    assert len(df_refs) == len(df_objs)
    rows = []
    for (_, r), (_, o) in zip(df_refs.iterrows(), df_objs.iterrows()):
        row = {c: ref_cell(storage, r[c]) for c in columns}
        orow = {c: obj_cell(o[c]) for c in columns}
        assert all(same_cell(row[c], orow[c]) for c in columns), (row, orow)
        rows.append(row)
    rows.sort(key=row_key(columns))
    return columns, rows


def normalize_graph(text):
    """Hash-seed independent form of a graph description.

    The reference iterates over Python sets/dicts when it prints a graph, so the
    order of lines of incomparable function nodes, of `a | b` alternatives and
    (after union/intersection) of arguments depends on PYTHONHASHSEED.  Here:
    alternatives are sorted, arguments are sorted by label, outputs keep the
    op's output order, and the lines are sorted.
    """
    def alts(s):
        return " | ".join(sorted(s.split(" | ")))

    lines = []
    for line in text.splitlines():
        if " = " not in line and "(" not in line:  # the isolated-variables line
            lines.append(", ".join(sorted(line.split(", "))))
            continue
        lhs, _, rhs = line.partition(" = ")
        outs = []
        for item in lhs.split(", ") if lhs else []:
            m = re.fullmatch(r"\(?(.*?)\)?@([^@]+)", item)
            vs = alts(m.group(1))
            outs.append(f"({vs})@{m.group(2)}" if " | " in vs else f"{vs}@{m.group(2)}")
        m = re.fullmatch(r"(\S+)\((.*)\)", rhs)
        args = []
        for arg in m.group(2).split(", ") if m.group(2) else []:
            label, _, vs = arg.partition("=")
            args.append(f"{label}={alts(vs)}")
        lines.append(f"{', '.join(outs)} = {m.group(1)}({', '.join(sorted(args))})")
    return "\n".join(sorted(lines))


def record(cf, expr, *nodes, **df_kwargs):
    """Graph description, structure and table of `cf.df(*nodes, **df_kwargs)`."""
    storage = cf.storage
    res = {
        "expr": expr,
        "graph": cf.get_graph_desc(),
        "graph_normalized": normalize_graph(cf.get_graph_desc()),
        "vars": {v: len(cf.vs[v]) for v in sorted(cf.vs)},
        "funcs": {f: len(cf.fs[f]) for f in sorted(cf.fs)},
        "edges": sorted([src, dst, label] for src, dst, label in cf.edges()),
    }
    try:
        df_objs = cf.df(*nodes, **df_kwargs)
        df_refs = cf.df(*nodes, values="refs", **df_kwargs)
    except Exception as e:  # the reference fails on some frames (spec 5.8 BUG)
        res.update(columns=None, rows=None, error=f"{type(e).__name__}: {e}")
        return res
    res["columns"], res["rows"] = table(storage, df_refs, df_objs)
    return res


################################################################################
### scenarios
################################################################################
def single_func():
    """upstream test_single_func: 10 calls of inc."""
    storage = Storage()

    @op
    def inc(x: int) -> int:
        return x + 1

    with storage:
        for i in range(10):
            inc(i)

    return {"df": record(storage.cf(inc), "storage.cf(inc).df()")}


def composition():
    """spec 5.8 verified example / upstream test_composition."""
    storage = Storage()

    @op(output_names=["y"])
    def inc(x):
        return x + 1

    @op(output_names=["z"])
    def add(x, y):
        return x + y

    with storage:
        for x in range(5):
            y = inc(x)
            if x % 2 == 0:
                z = add(x, y)

    fwd = storage.cf(inc).expand_forward()
    return {
        "inc_forward": record(fwd, "storage.cf(inc).expand_forward().df()"),
        "inc_forward_x_z": record(fwd, "storage.cf(inc).expand_forward().df('x', 'z')", "x", "z"),
        "inc_forward_no_calls": record(
            fwd, "storage.cf(inc).expand_forward().df(include_calls=False)", include_calls=False
        ),
        "add_all": record(storage.cf(add).expand_all(), "storage.cf(add).expand_all().df()"),
        "inc_all": record(storage.cf(inc).expand_all(), "storage.cf(inc).expand_all().df()"),
    }


def merge():
    """upstream test_merge: diamond inc -> (add | mul) -> final over 10 inputs."""
    storage = Storage()

    @op(output_names=["y"])
    def inc(x):
        return x + 1

    @op(output_names=["z"])
    def add(x, y):
        return x + y

    @op(output_names=["w"])
    def mul(x, y):
        return x * y

    @op(output_names=["v"])
    def final(t):
        return t**2

    with storage:
        for x in range(10):
            y = inc(x)
            if x < 5:
                z = add(x, y)
                v = final(z)
            else:
                w = mul(x, y)
                v = final(w)

    cf = storage.cf(final).expand_all()
    return {
        "before_merge_vars": record(cf, "storage.cf(final).expand_all().df()"),
        "after_merge_vars": record(cf.merge_vars(), "storage.cf(final).expand_all().merge_vars().df()"),
    }


def cycle():
    """spec 5.5: an in-place update X = scale_data(X) becomes a cycle in the CF graph."""
    storage = Storage()

    @op(output_names=["X", "y"])
    def get_data():
        return [1, 2, 3, 4], [0, 1, 0, 1]

    @op(output_names=["X_scaled"])
    def scale_data(X):
        return [v * 10 for v in X]

    @op(output_names=["X_train", "X_test", "y_train", "y_test"])
    def split(X, y):
        return X[:2], X[2:], y[:2], y[2:]

    with storage:
        for scale in (True, False):
            X, y = get_data()
            if scale:
                X = scale_data(X=X)
            X_train, X_test, y_train, y_test = split(X=X, y=y)

    cf = storage.cf(split).expand_back(recursive=True)
    return {"split_back": record(cf, "storage.cf(split).expand_back(recursive=True).df()")}


def branching():
    """Two model kinds feeding one evaluation op; nulls on the branch not taken."""
    storage = Storage()

    @op(output_names=["model"])
    def train_svm(X, y, C):
        return f"svm(C={C},n={len(X)})"

    @op(output_names=["model"])
    def train_tree(X, y, depth):
        return f"tree(depth={depth},n={len(X)})"

    @op(output_names=["acc"])
    def eval_model(model, X):
        return (sum((i + 1) * ord(c) for i, c in enumerate(model)) % 89) / 100

    X, y = [1, 2, 3], [0, 1, 1]
    with storage:
        for C in (0.1, 1.0):
            eval_model(train_svm(X, y, C), X)
        for depth in (2, 4):
            eval_model(train_tree(X, y, depth), X)

    cf = storage.cf(eval_model).expand_back(recursive=True)
    return {"eval_back": record(cf, "storage.cf(eval_model).expand_back(recursive=True).df()")}


def union():
    """spec 8 scenario 11: union/intersection of frames sharing variable names (x, var_0)."""
    storage = Storage()

    @op
    def add(x, y):
        return x + y

    @op
    def square(x):
        return x * x

    with storage:
        for x in range(4):
            add(x, 10)
            square(x)
        add(7, 10)  # x=7 only reaches add, x=9 only reaches square
        square(9)

    a, s = storage.cf(add), storage.cf(square)
    u = a | s
    return {
        "add": record(a, "storage.cf(add).df()"),
        "square": record(s, "storage.cf(square).df()"),
        "union": record(u, "(storage.cf(add) | storage.cf(square)).df()"),
        "intersection": record(a & s, "(storage.cf(add) & storage.cf(square)).df()"),
        "union_and_add": record(
            u & storage.cf(add), "((storage.cf(add) | storage.cf(square)) & storage.cf(add)).df()"
        ),
    }


def collections_average():
    """spec 4: average of a transparent list; the frame expanded around it."""
    storage = Storage()

    @op
    def average(nums: MList[int]) -> float:
        return sum(nums) / len(nums)

    with storage:
        average([1, 2, 3, 4, 5])

    return {"average_all": record(storage.cf(average).expand_all(), "storage.cf(average).expand_all().df()")}


def score(model):
    return (sum((i + 1) * ord(c) for i, c in enumerate(model)) % 89) / 100


def collections_ensemble():
    """blog 01_cf: models per hyperparameter, evaluated one by one and as one transparent list."""
    storage = Storage()

    @op(output_names=["X", "y"])
    def get_data():
        return [1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 0]

    @op(output_names=["X_scaled"])
    def scale_data(X):
        return [v * 10 for v in X]

    @op(output_names=["X_train", "X_test", "y_train", "y_test"])
    def get_train_test_split(X, y):
        return X[:4], X[4:], y[:4], y[4:]

    @op(output_names=["model"])
    def train_svc(X_train, y_train, kernel):
        return f"svc({kernel},{sum(X_train)})"

    @op(output_names=["model"])
    def train_random_forest(X_train, y_train, n_estimators):
        return f"rf({n_estimators},{sum(X_train)})"

    @op(output_names=["accuracy"])
    def eval_model(model, X_test, y_test):
        return score(model)

    @op(output_names=["accuracy"])
    def eval_ensemble(models: MList[str], X_test, y_test):
        total = 0.0
        for m in models:
            total += score(m)
        return total / len(models)

    with storage:
        for scale in (True, False):
            X, y = get_data()
            if scale:
                X = scale_data(X=X)
            X_train, X_test, y_train, y_test = get_train_test_split(X=X, y=y)
            svc_models = []
            for kernel in ("linear", "rbf", "poly"):
                m = train_svc(X_train=X_train, y_train=y_train, kernel=kernel)
                eval_model(model=m, X_test=X_test, y_test=y_test)
                svc_models.append(m)
            rf_models = []
            for n_estimators in (5, 10, 20):
                m = train_random_forest(X_train=X_train, y_train=y_train, n_estimators=n_estimators)
                eval_model(model=m, X_test=X_test, y_test=y_test)
                rf_models.append(m)
            eval_ensemble(models=svc_models + rf_models, X_test=X_test, y_test=y_test)

    union = storage.cf(eval_ensemble) | storage.cf(eval_model)
    back = union.expand_back(recursive=True)
    return {
        "union": record(union, "(storage.cf(eval_ensemble) | storage.cf(eval_model)).df()"),
        "union_back": record(back, "(storage.cf(eval_ensemble) | storage.cf(eval_model)).expand_back(recursive=True).df()"),
        "ensemble_back": record(
            storage.cf(eval_ensemble).expand_back(recursive=True),
            "storage.cf(eval_ensemble).expand_back(recursive=True).df()",
        ),
    }


def collections_lists():
    """upstream test_lists ops; frames expanded through the structural ops both ways, and dicts."""
    storage = Storage()

    @op
    def get_sum(elts: MList[int]) -> int:
        return sum(elts)

    @op
    def primes_below(n: int) -> MList[int]:
        primes = []
        for i in range(2, n):
            if all(i % p != 0 for p in primes):
                primes.append(i)
        return primes

    @op(output_names=["stats"])
    def describe(n: int) -> MDict[str, int]:
        return {"low": n // 2, "high": n}

    @op(output_names=["spread"])
    def spread(stats: MDict[str, int]) -> int:
        return stats["high"] - stats["low"]

    with storage:
        primes = primes_below(12)
        get_sum(primes[:2])
        get_sum(primes)
        for n in (4, 6):
            spread(describe(n))

    frames = {
        "sum_back": ("storage.cf(get_sum).expand_back(recursive=True)", lambda: storage.cf(get_sum).expand_back(recursive=True)),
        "primes_forward": (
            "storage.cf(primes_below).expand_forward(recursive=True)",
            lambda: storage.cf(primes_below).expand_forward(recursive=True),
        ),
        "spread_back": ("storage.cf(spread).expand_back(recursive=True)", lambda: storage.cf(spread).expand_back(recursive=True)),
        "describe_forward": (
            "storage.cf(describe).expand_forward(recursive=True)",
            lambda: storage.cf(describe).expand_forward(recursive=True),
        ),
        "all_from_sum": ("storage.cf(get_sum).expand_all()", lambda: storage.cf(get_sum).expand_all()),
    }
    out = {}
    for key, (text, build) in frames.items():
        expr = text + ".df()"
        try:
            out[key] = record(build(), expr)
        except Exception as e:  # the reference fails to build some of these frames
            out[key] = {"expr": expr, "graph": None, "columns": None, "rows": None, "error": f"{type(e).__name__}: {e}"}
    return out


################################################################################
### shapes (issue 15): per-variable element sets, nodes, edges and rows
################################################################################
def elements(cf):
    """Per variable, its values (unwrapped, canonically sorted: a multiset)."""
    return {v: sorted((plain(cf.storage.unwrap(cf.refs[h])) for h in cf.vs[v]), key=canon) for v in sorted(cf.vs)}


def shape(build, expr, *nodes, **df_kwargs):
    """`record` plus the element sets; a frame the reference cannot build is recorded as an error."""
    try:
        cf = build()
        res = record(cf, expr, *nodes, **df_kwargs)
    except Exception as e:
        return {"expr": expr, "graph": None, "columns": None, "rows": None, "error": f"{type(e).__name__}: {e}"}
    res["elements"] = elements(cf)
    return res


def shapes(storage, queries):
    """Records every (key, expression) of `queries`; expressions see `storage` and the ops."""
    frame = inspect.currentframe().f_back
    env = dict(frame.f_globals)
    env.update(frame.f_locals)
    out = {}
    for key, expr, *df_args in queries:
        out[key] = shape(lambda: eval(expr, env), expr + ".df(" + ", ".join(repr(a) for a in df_args) + ")", *df_args)
    return out


def diamond_program():
    """The issue's diamond: inc; add for x < 2 and x == 4, mul for 2 <= x < 4; final after add/mul for x < 4.
    Returns the storage and the ops (shape_diamond and shape_intersection query it)."""
    storage = Storage()

    @op(output_names=["y"])
    def inc(x):
        return x + 1

    @op(output_names=["z"])
    def add(x, y):
        return x + y

    @op(output_names=["w"])
    def mul(x, y):
        return x * y

    @op(output_names=["v"])
    def final(t):
        return t**2

    with storage:
        for x in range(6):
            y = inc(x)
            if x < 2:
                final(add(x, y))
            elif x < 4:
                final(mul(x, y))
            elif x == 4:
                add(x, y)

    return storage, inc, add, mul, final


def shape_diamond():
    """The issue's diamond: inc; add for x < 2 and x == 4, mul for 2 <= x < 4; final after add/mul for x < 4."""
    storage, inc, add, mul, final = diamond_program()
    return shapes(storage, [
        ("inc_forward", "storage.cf(inc).expand_forward(recursive=True)"),
        ("inc_forward_once", "storage.cf(inc).expand_forward()"),
        ("inc_all", "storage.cf(inc).expand_all()"),
        ("final_back", "storage.cf(final).expand_back(recursive=True)"),
        ("add_all", "storage.cf(add).expand_all()"),
        ("mul_all", "storage.cf(mul).expand_all()"),
        ("inc_all_x_v", "storage.cf(inc).expand_all()", "x", "v"),
        ("inc_all_merged", "storage.cf(inc).expand_all().merge_vars()"),
    ])


def shape_loop():
    """A loop: x = init(seed); three times x = step(x); score(x), for three seeds."""
    storage = Storage()

    @op(output_names=["x"])
    def init(seed):
        return seed * 10

    @op
    def step(x):
        return x + 1

    @op(output_names=["s"])
    def score(x):
        return x * 2

    with storage:
        for seed in range(3):
            x = init(seed)
            for _ in range(3):
                x = step(x)
            score(x)

    return shapes(storage, [
        ("score_back", "storage.cf(score).expand_back(recursive=True)"),
        ("score_back_once", "storage.cf(score).expand_back()"),
        ("init_forward", "storage.cf(init).expand_forward(recursive=True)"),
        ("step_all", "storage.cf(step).expand_all()"),
        ("score_all", "storage.cf(score).expand_all()"),
        ("step_only", "storage.cf(step)"),
    ])


def shape_inplace():
    """In-place updates under a condition: X = load(i); if i is odd, X = scale(X); summarize(X)."""
    storage = Storage()

    @op(output_names=["X"])
    def load(i):
        return [i, i + 1]

    @op(output_names=["X_scaled"])
    def scale(X):
        return [v * 10 for v in X]

    @op(output_names=["m"])
    def summarize(X):
        return sum(X)

    with storage:
        for i in range(4):
            X = load(i)
            if i % 2 == 1:
                X = scale(X)
            summarize(X)

    return shapes(storage, [
        ("summarize_back", "storage.cf(summarize).expand_back(recursive=True)"),
        ("load_forward", "storage.cf(load).expand_forward(recursive=True)"),
        ("scale_all", "storage.cf(scale).expand_all()"),
        ("summarize_all", "storage.cf(summarize).expand_all()"),
        ("summarize_all_X_m", "storage.cf(summarize).expand_all()", "X", "m"),
    ])


def shape_inplace_twice():
    """Two conditional in-place updates in a row: X = load(i); if i % 2: X = scale(X); if i % 3 == 0: X = shift(X); total(X)."""
    storage = Storage()

    @op(output_names=["X"])
    def load(i):
        return i

    @op(output_names=["X_scaled"])
    def scale(X):
        return X * 10

    @op(output_names=["X_shifted"])
    def shift(X):
        return X + 100

    @op(output_names=["t"])
    def total(X):
        return X + 0.5

    with storage:
        for i in range(6):
            X = load(i)
            if i % 2:
                X = scale(X)
            if i % 3 == 0:
                X = shift(X)
            total(X)

    return shapes(storage, [
        ("total_back", "storage.cf(total).expand_back(recursive=True)"),
        ("load_forward", "storage.cf(load).expand_forward(recursive=True)"),
        ("shift_all", "storage.cf(shift).expand_all()"),
        ("total_all_merged", "storage.cf(total).expand_all().merge_vars()"),
    ])


def shape_two_producers():
    """Two producers feeding one consumer: a = make_a(i) for i < 3, b = make_b(i) for i >= 2; use(v) of each."""
    storage = Storage()

    @op(output_names=["a"])
    def make_a(i):
        return i * 2

    @op(output_names=["b"])
    def make_b(i):
        return i * 3

    @op(output_names=["u"])
    def use(v):
        return v + 1000

    with storage:
        for i in range(5):
            if i < 3:
                use(make_a(i))
            if i >= 2:
                use(make_b(i))
        make_b(9)  # never used

    return shapes(storage, [
        ("use_back", "storage.cf(use).expand_back(recursive=True)"),
        ("make_a_forward", "storage.cf(make_a).expand_forward(recursive=True)"),
        ("make_a_all", "storage.cf(make_a).expand_all()"),
        ("make_b_all", "storage.cf(make_b).expand_all()"),
        ("use_all", "storage.cf(use).expand_all()"),
        ("use_all_i_u", "storage.cf(use).expand_all()", "i", "u"),
    ])


def shape_shared_ancestor():
    """Shared ancestors: base = root(i); l = left(base); r = right(base) for even i; join(l, r) for i < 3."""
    storage = Storage()

    @op(output_names=["base"])
    def root(i):
        return i + 1

    @op(output_names=["l"])
    def left(base):
        return base * 2

    @op(output_names=["r"])
    def right(base):
        return base * 3

    @op(output_names=["j"])
    def join(l, r):
        return l + r

    with storage:
        for i in range(5):
            base = root(i)
            l = left(base)
            if i % 2 == 0:
                r = right(base)
                if i < 3:
                    join(l, r)

    return shapes(storage, [
        ("join_back", "storage.cf(join).expand_back(recursive=True)"),
        ("root_forward", "storage.cf(root).expand_forward(recursive=True)"),
        ("root_all", "storage.cf(root).expand_all()"),
        ("right_all", "storage.cf(right).expand_all()"),
        ("root_all_i_j", "storage.cf(root).expand_all()", "i", "j"),
    ])


def shape_multi_output():
    """Several outputs, consumed partially: q, r = divmod_(n, 3); half(q) for n < 6, sq(r) for even n; both into pair(a, b) when both exist."""
    storage = Storage()

    @op(output_names=["q", "r"])
    def divmod_(n, d):
        return n // d, n % d

    @op(output_names=["h"])
    def half(a):
        return a / 2

    @op(output_names=["s"])
    def sq(a):
        return a * a

    @op(output_names=["p"])
    def pair(a, b):
        return a * 100 + b

    with storage:
        for n in range(9):
            q, r = divmod_(n, 3)
            h = half(q) if n < 6 else None
            s = sq(r) if n % 2 == 0 else None
            if h is not None and s is not None:
                pair(h, s)

    return shapes(storage, [
        ("divmod_forward", "storage.cf(divmod_).expand_forward(recursive=True)"),
        ("pair_back", "storage.cf(pair).expand_back(recursive=True)"),
        ("divmod_all", "storage.cf(divmod_).expand_all()"),
        ("sq_all", "storage.cf(sq).expand_all()"),
        # divmod_ first joined by `q` (calls n < 6), then reached back through `r` (calls of even n)
        ("q_then_r_back", "(storage.cf(half).expand_back(recursive=True).rename(vars={'a': 'qa'}) | storage.cf(sq)).expand_back(recursive=True)"),
    ])


def shape_union():
    """Unions of expanded frames over the diamond's ops (x in 0..5, add for x < 3, mul for x >= 2)."""
    storage = Storage()

    @op(output_names=["y"])
    def inc(x):
        return x + 1

    @op(output_names=["z"])
    def add(x, y):
        return x + y

    @op(output_names=["w"])
    def mul(x, y):
        return x * y

    with storage:
        for x in range(6):
            y = inc(x)
            if x < 3:
                add(x, y)
            if x >= 2:
                mul(x, y)

    return shapes(storage, [
        ("add_back", "storage.cf(add).expand_back(recursive=True)"),
        ("mul_back", "storage.cf(mul).expand_back(recursive=True)"),
        ("union_back", "storage.cf(add).expand_back(recursive=True) | storage.cf(mul).expand_back(recursive=True)"),
        ("union_then_forward", "(storage.cf(add) | storage.cf(mul)).expand_back(recursive=True)"),
        ("union_inc", "storage.cf(inc).expand_forward(recursive=True) | storage.cf(add).expand_back(recursive=True)"),
        ("union_expanded_all", "(storage.cf(add).expand_back(recursive=True) | storage.cf(mul).expand_back(recursive=True)).expand_all()"),
    ])


def shape_intersection():
    """Intersections and a union of expanded frames (the diamond of shape_diamond)."""
    storage, inc, add, mul, final = diamond_program()
    fwd = "storage.cf(inc).expand_forward(recursive=True)"
    back = "storage.cf(final).expand_back(recursive=True)"
    return shapes(storage, [
        ("fwd_and_back", f"{fwd} & {back}"),
        ("fwd_and_all", f"{fwd} & storage.cf(inc).expand_all()"),
        ("all_and_add", "storage.cf(inc).expand_all() & storage.cf(add).expand_all()"),
        ("add_back_and_fwd", f"storage.cf(add).expand_back(recursive=True) & {fwd}"),
        ("fwd_once_and_all", "storage.cf(inc).expand_forward() & storage.cf(inc).expand_all()"),
        ("fwd_or_back", f"{fwd} | {back}"),
    ])


def shape_restrictions():
    """Restrictions of an expanded frame: prep(i) for i < 6; fit(p) for i < 4; predict(m, p) for i < 2."""
    storage = Storage()

    @op(output_names=["p"])
    def prep(i):
        return i * 10

    @op(output_names=["m"])
    def fit(p):
        return p + 1

    @op(output_names=["y"])
    def predict(m, p):
        return m * 1000 + p

    with storage:
        for i in range(6):
            p = prep(i)
            if i < 4:
                m = fit(p)
                if i < 2:
                    predict(m, p)

    cf = "storage.cf(prep).expand_all()"
    return shapes(storage, [
        ("all", cf),
        ("isin", f"{cf}.isin([10, 20, 11])"),
        ("less_than", f"({cf} < 15)"),
        ("downstream_fit", f"{cf}.downstream('fit')"),
        ("upstream_m", f"{cf}.upstream('m')"),
        ("midstream_i_y", f"{cf}.midstream('i', 'y')"),
        ("drop_unreachable_back", f"{cf}.drop_unreachable('back')"),
        ("select_p_fit_m", f"{cf}.select_nodes(['p', 'fit', 'm'])"),
    ])


def shape_alternating_loop():
    """A loop through two alternating ops: x = start(k); x = up(x); x = down(x); x = up(x); for k < 2, then end(x); k == 2 stops after one up."""
    storage = Storage()

    @op(output_names=["x"])
    def start(k):
        return k

    @op(output_names=["x_up"])
    def up(x):
        return x + 10

    @op(output_names=["x_down"])
    def down(x):
        return x - 3

    @op(output_names=["e"])
    def end(x):
        return -x

    with storage:
        for k in range(3):
            x = up(start(k))
            if k < 2:
                x = up(down(x))
                end(x)

    return shapes(storage, [
        ("end_back", "storage.cf(end).expand_back(recursive=True)"),
        ("start_forward", "storage.cf(start).expand_forward(recursive=True)"),
        ("up_all", "storage.cf(up).expand_all()"),
        ("end_all_merged", "storage.cf(end).expand_all().merge_vars()"),
    ])


def shape_accumulate():
    """An accumulation chain acc = add_to(acc, i) (in-place update fed by a second input), read by report(acc) at the end and halfway."""
    storage = Storage()

    @op(output_names=["acc"])
    def zero():
        return 0

    @op(output_names=["acc_next"])
    def add_to(acc, i):
        return acc + i

    @op(output_names=["out"])
    def report(acc):
        return f"total={acc}"

    with storage:
        acc = zero()
        for i in range(1, 5):
            acc = add_to(acc, i)
            if i in (2, 4):
                report(acc)

    return shapes(storage, [
        ("report_back", "storage.cf(report).expand_back(recursive=True)"),
        ("zero_forward", "storage.cf(zero).expand_forward(recursive=True)"),
        ("add_to_all", "storage.cf(add_to).expand_all()"),
        ("add_to_back", "storage.cf(add_to).expand_back(recursive=True)"),
    ])


def shape_fan_in():
    """Shared inputs and a fan-in: a = src(i); b = src(i + 10); combine(a, b) for i < 3; combine(a, a) for i == 3."""
    storage = Storage()

    @op(output_names=["v"])
    def src(i):
        return i * 2

    @op(output_names=["c"])
    def combine(left, right):
        return left * 1000 + right

    with storage:
        for i in range(4):
            a = src(i)
            if i < 3:
                combine(a, src(i + 10))
            else:
                combine(a, a)

    return shapes(storage, [
        ("combine_back", "storage.cf(combine).expand_back(recursive=True)"),
        ("src_forward", "storage.cf(src).expand_forward(recursive=True)"),
        ("combine_all", "storage.cf(combine).expand_all()"),
        ("combine_back_left", "storage.cf(combine).expand_back('left', recursive=True)"),
    ])


# The programs a scenario runs through a helper (their source is recorded with it).
PROGRAMS = {shape_diamond: (diamond_program,), shape_intersection: (diamond_program,)}
SHAPES = (shape_diamond, shape_loop, shape_inplace, shape_inplace_twice, shape_two_producers, shape_shared_ancestor,
          shape_multi_output, shape_union, shape_intersection, shape_restrictions, shape_alternating_loop,
          shape_accumulate, shape_fan_in)


SCENARIOS = {
    f.__name__: f for f in (single_func, composition, merge, cycle, branching, union, collections_average, collections_ensemble, collections_lists) + SHAPES
}


################################################################################
### output
################################################################################
def render(doc):
    """JSON text with table rows, edges and other flat lists/dicts on one line each."""
    parts = []

    def compact(o):
        parts.append(json.dumps(o, ensure_ascii=False))
        return f"@@PART{len(parts) - 1}@@"

    def scalar(x):
        return x is None or isinstance(x, (str, int, float, bool))

    def walk(o, key=None):
        if key == "rows" and isinstance(o, list):
            return [compact(r) for r in o]
        if isinstance(o, dict):
            if o and all(scalar(v) for v in o.values()):
                return compact(o)
            return {k: walk(v, k) for k, v in o.items()}
        if isinstance(o, list):
            if all(scalar(x) for x in o):
                return compact(o)
            return [walk(x) for x in o]
        return o

    text = json.dumps(walk(doc), indent=2, ensure_ascii=False)
    for i, p in enumerate(parts):
        text = text.replace(f'"@@PART{i}@@"', p, 1)
    return text + "\n"


def versions():
    import joblib
    import numpy

    sha = None
    import mandala

    root = os.path.dirname(os.path.dirname(os.path.abspath(mandala.__file__)))
    try:
        sha = subprocess.run(
            ["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except Exception:
        pass
    return {
        "python": sys.version.split()[0],
        "pandas": pd.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
        "mandala_path": root,
        "mandala_git_head": sha,
        "pythonhashseed": os.environ.get("PYTHONHASHSEED"),
    }


def generate(names, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        fn = SCENARIOS[name]
        doc = {
            "scenario": name,
            "description": inspect.getdoc(fn),
            "source": "".join(inspect.getsource(f) + "\n" for f in PROGRAMS.get(fn, ())) + inspect.getsource(fn),
            "frames": fn(),
        }
        path = os.path.join(out_dir, f"{name}.json")
        with open(path, "w") as f:
            f.write(render(doc))
        summary = ", ".join(
            f"{k}: {'ERROR' if v['rows'] is None else len(v['rows'])} rows"
            for k, v in doc["frames"].items()
        )
        print(f"{path}: {summary}")


def normalized(frame):
    """Seed-independent view of a frame."""
    res = {k: frame.get(k) for k in ("graph_normalized", "vars", "funcs", "edges", "error")}
    res["columns"] = sorted(frame["columns"] or [])
    res["rows"] = sorted(json.dumps(r, sort_keys=True) for r in frame["rows"] or [])
    return res


def check_seeds(seeds):
    with open_all(DEFAULT_OUT) as base:
        ok = True
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, PYTHONHASHSEED=str(seed))
                subprocess.run([sys.executable, __file__, "--out", tmp], env=env, check=True,
                               stdout=subprocess.DEVNULL)
                with open_all(tmp) as other:
                    for name in SCENARIOS:
                        for key, frame in base[name]["frames"].items():
                            o = other[name]["frames"][key]
                            if normalized(frame) != normalized(o):
                                ok = False
                                print(f"seed {seed}: {name}/{key}: CONTENT DIFFERS")
                            elif (frame["graph"], frame["columns"]) != (o["graph"], o["columns"]):
                                print(f"seed {seed}: {name}/{key}: only graph line/column order differs")
        print("all seeds agree up to ordering" if ok else "CONTENT DIFFERS BETWEEN SEEDS")
        return ok


class open_all:
    def __init__(self, d):
        self.d = d

    def __enter__(self):
        res = {}
        for name in SCENARIOS:
            with open(os.path.join(self.d, f"{name}.json")) as f:
                res[name] = json.load(f)
        return res

    def __exit__(self, *a):
        return False


def main(argv):
    out = DEFAULT_OUT
    names = []
    it = iter(argv)
    for a in it:
        if a == "--out":
            out = next(it)
        elif a == "--check-seeds":
            seeds = [int(s) for s in next(it).split(",")]
            return 0 if check_seeds(seeds) else 1
        elif a == "--versions":
            print(json.dumps(versions(), indent=2))
            return 0
        elif a in SCENARIOS:
            names.append(a)
        else:
            print(f"unknown argument {a!r}; scenarios: {', '.join(SCENARIOS)}", file=sys.stderr)
            return 2
    generate(names or list(SCENARIOS), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
