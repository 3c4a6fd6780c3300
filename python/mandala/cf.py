"""ComputationFrame: a view of stored calls and refs as a graph of variables and functions,
turned into pandas DataFrames (the original's `storage.cf(...)`), over the C++ frames."""

from . import _core
from .model import Ref, _from_store


class Call:
    """A stored call: its op name and version, ids, and input and output Refs by name. Made
    cheaply (a frame's table holds one per row): a call of a df() column is a position in its
    column, read from the frame when an attribute is first used."""

    __slots__ = ("_info", "_column", "_at", "_inputs", "_outputs")

    def __init__(self, core_call, at=None):
        # core_call: a _core.Call, or (with `at`) the _core.ColumnCells of a df() column
        if at is None:
            self._info, self._column = core_call, None
        else:
            self._info, self._column = None, core_call
        self._at = at
        self._inputs = None
        self._outputs = None

    @property
    def _core(self):
        if self._info is None:
            self._info = self._column.call(self._at)
        return self._info

    @property
    def op(self):
        return self._core.op if self._column is None else self._column.op(self._at)

    @property
    def version(self):
        return self._core.version if self._column is None else self._column.version(self._at)

    @property
    def hid(self):
        return self._core.hid if self._column is None else self._column.hid(self._at)

    @property
    def cid(self):
        return self._core.cid if self._column is None else self._column.cid(self._at)

    @property
    def inputs(self):
        if self._inputs is None:
            self._inputs = {name: Ref(r) for name, r in self._core.inputs}
        return self._inputs

    @property
    def outputs(self):
        if self._outputs is None:
            self._outputs = {name: Ref(r) for name, r in self._core.outputs}
        return self._outputs

    def __eq__(self, other):
        return isinstance(other, Call) and self.hid == other.hid

    def __hash__(self):
        return hash(self.hid)

    def __repr__(self):
        return f"Call({self.op}, hid={self.hid[:3]}...)"


def _python_cell(value):
    if isinstance(value, _core.Call):
        return Call(value)
    if isinstance(value, list) and value and isinstance(value[0], _core.Call):
        return [Call(c) for c in value]
    return _from_store(value)


def _python_column(values):
    """A column of the core's table as the user sees it: stored pointer names as ValuePointers
    (calls come as Calls already). Columns of plain scalars stay lists (pandas gives them their
    dtype); others become object arrays, which pandas takes as they are (from a list it would
    look into every cell)."""
    kinds = {type(v) for v in values}
    if not kinds.isdisjoint(_WRAPPED):
        values = [_python_cell(v) for v in values]
    if kinds <= _SCALARS:
        return values
    import numpy as np

    try:
        return np.fromiter(values, dtype=object, count=len(values))
    except (TypeError, ValueError):  # numpy before 1.23: no object dtype in fromiter
        column = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            column[i] = v
        return column


_WRAPPED = {_core.PointerName, _core.Call, list}  # a list: a cell of several elements
_SCALARS = {type(None), bool, int, float, str, bytes}


class _Elements(dict):
    """The refs or calls of a frame by history id, also callable with a node name for that
    node's elements in a list."""

    def __init__(self, frame, nodes, of_node):
        super().__init__()
        self._of_node = of_node
        for node in sorted(nodes):
            for element in of_node(node):
                self.setdefault(element.hid, element)

    def __call__(self, node):
        return self._of_node(node)


def _names(nodes):
    """None (all), one name, or an iterable of names, as a list."""
    if nodes is None:
        return []
    if isinstance(nodes, str):
        return [nodes]
    return list(nodes)


def _table(storage, core_table):
    import pandas as pd

    names, columns = core_table
    return pd.DataFrame({name: _python_column(columns[name]) for name in names}, columns=names)


class ComputationFrame:
    """Variables (sets of refs) and functions (sets of calls) of a storage, connected by the
    calls' input and output names. Methods return new frames."""

    def __init__(self, storage, core):
        self.storage = storage
        self._cf = core

    @property
    def vnames(self):
        return set(self._cf.vnames)

    @property
    def fnames(self):
        return set(self._cf.fnames)

    @property
    def nodes(self):
        return set(self._cf.nodes)

    @property
    def refs(self):
        """Every ref of the frame by history id (the original's `cf.refs`); `cf.refs(vname)`
        gives the refs of one variable."""
        return _Elements(self, self.vnames, lambda name: [Ref(r) for r in self._cf.refs(name)])

    @property
    def calls(self):
        """Every call of the frame by history id (the original's `cf.calls`); `cf.calls(fname)`
        gives the calls of one function node."""
        return _Elements(self, self.fnames, lambda name: [Call(c) for c in self._cf.calls(name)])

    @property
    def vs(self):
        """{variable: set of ref hids}."""
        return {v: set(self._cf.hids(v)) for v in self.vnames}

    @property
    def fs(self):
        """{function node: set of call hids}."""
        return {f: set(self._cf.hids(f)) for f in self.fnames}

    def _new(self, core):
        return ComputationFrame(self.storage, core)

    def _result(self, core, inplace):
        if inplace:
            self._cf = core
            return None
        return self._new(core)

    def expand_back(self, varnames=None, recursive=False, skip_existing=False, inplace=False, verbose=False,
                    reuse_existing=True):
        """Adds the calls that created the refs of the given variables (all variables by
        default; a str names one), all the way back with recursive=True."""
        return self._result(self._cf.expand_back_vars(_names(varnames), recursive, skip_existing, reuse_existing),
                            inplace)

    def expand_forward(self, varnames=None, recursive=False, skip_existing=False, inplace=False, verbose=False,
                       reuse_existing=True):
        """Adds the calls that used the refs of the given variables (all by default)."""
        return self._result(self._cf.expand_forward_vars(_names(varnames), recursive, skip_existing, reuse_existing),
                            inplace)

    def expand_all(self, inplace=False, skip_existing=False, verbose=False, reuse_existing=True):
        """Adds every call connected to the frame, in both directions, until nothing changes."""
        return self._result(self._cf.expand_all_with(skip_existing, reuse_existing), inplace)

    def df(self, *nodes, include_calls=True):
        """A pandas DataFrame with one row per (partial) computation and one column per node
        (or per given node): values for variables, Call objects for functions; None where a
        row has no element."""
        import pandas as pd

        names, columns = self._cf.df(list(nodes), include_calls, Call)
        data = {name: _python_column(columns[name]) for name in names}
        return pd.DataFrame(data, columns=names)

    def eval(self, *nodes):
        """df() of the given variables, without call columns."""
        return self.df(*nodes, include_calls=False)

    def __repr__(self):
        return self._cf.summary()

    # ---- the graph ------------------------------------------------------------------------
    @property
    def sources(self):
        """Nodes without in-edges."""
        return set(self._cf.sources)

    @property
    def sinks(self):
        """Nodes without out-edges."""
        return set(self._cf.sinks)

    @property
    def edges(self):
        """(source, target, label) triples."""
        return list(self._cf.edges)

    def in_neighbors(self, node):
        return set(self._cf.in_neighbors(node))

    def out_neighbors(self, node):
        return set(self._cf.out_neighbors(node))

    def topsort_modulo_sccs(self):
        """The nodes in topological order (cycles kept together)."""
        return list(self._cf.topological_order())

    def get_var_stats(self):
        """A DataFrame of the variables: name and number of values."""
        import pandas as pd

        stats = [s for s in self._cf.node_stats() if s["is_variable"]]
        return pd.DataFrame({"name": [s["name"] for s in stats], "num_values": [s["size"] for s in stats]})

    def get_func_stats(self):
        """A DataFrame of the function nodes: name and number of calls."""
        import pandas as pd

        stats = [s for s in self._cf.node_stats() if not s["is_variable"]]
        return pd.DataFrame({"name": [s["name"] for s in stats], "num_calls": [s["size"] for s in stats]})

    def var_info(self, vname):
        """Prints the ops creating and using a variable's refs, with call counts."""
        print(self._cf.var_info(vname))

    def print_graph(self):
        print(self._cf.graph_description())

    def get_graph_desc(self):
        return self._cf.graph_description()

    # ---- restriction and selection --------------------------------------------------------
    def upstream(self, *nodes, how="strong"):
        """The part of the frame its `nodes` were computed from."""
        return self._new(self._cf.upstream(list(nodes), how))

    def downstream(self, *nodes, how="strong"):
        """The part of the frame computed from its `nodes`."""
        return self._new(self._cf.downstream(list(nodes), how))

    def midstream(self, *nodes, how="strong"):
        """The computations between the given nodes."""
        return self._new(self._cf.midstream(list(nodes), how))

    def drop_unreachable(self, direction, how="strong"):
        return self._new(self._cf.drop_unreachable(direction, how))

    def select_nodes(self, nodes):
        """The frame induced on `nodes` (ValueError for a node not in the frame)."""
        names = _names(nodes)
        for n in names:
            if n not in self.nodes:
                raise ValueError(f"Node {n} not found in the CF")
        return self._new(self._cf.select_nodes(names))

    def __getitem__(self, nodes):
        return self.select_nodes(nodes)

    def select_subsets(self, elts):
        """Keeps, per node, the elements (hids) given; `elts` names every node."""
        return self._new(self._cf.select_subsets({k: list(v) for k, v in elts.items()}))

    def isin(self, values, by="val", node_class="var"):
        """Keeps the refs of each variable whose value (by="val"), hid or cid is in `values`,
        and the calls adjacent to them."""
        if node_class != "var":
            raise NotImplementedError("isin restricts variables only (node_class='var')")
        if by == "val":
            return self._new(self._cf.isin_cids([_core.content_id(v) for v in values], [], False))
        if by == "cid":
            return self._new(self._cf.isin_cids(list(values), [], False))
        if by == "hid":
            return self._new(self._cf.isin_hids(list(values), [], False))
        raise ValueError(f"by must be 'val', 'hid' or 'cid', not {by!r}")

    def __lt__(self, other):
        if isinstance(other, ComputationFrame):
            raise NotImplementedError("a frame compares with a number, not with another frame")
        return self._new(self._cf.less_than(float(other), False))

    # ---- set operations -------------------------------------------------------------------
    def __or__(self, other):
        return self._new(self._cf.union_with(other._cf))

    def __and__(self, other):
        return self._new(self._cf.intersection_with(other._cf))

    def __sub__(self, other):
        return self._new(self._cf.difference(other._cf))

    @staticmethod
    def union(*cfs):
        out = cfs[0]
        for cf in cfs[1:]:
            out = out | cf
        return out

    @staticmethod
    def intersection(*cfs):
        out = cfs[0]
        for cf in cfs[1:]:
            out = out & cf
        return out

    # ---- mutation -------------------------------------------------------------------------
    def drop(self, nodes, inplace=False, with_dependents=False):
        if with_dependents:
            raise NotImplementedError("drop(with_dependents=True): drop the calls from the storage instead")
        return self._result(self._cf.drop(_names(nodes)), inplace)

    def drop_node(self, node, inplace=False):
        if node not in self.nodes:
            raise ValueError(f"Node {node} not found in the CF")
        return self.drop([node], inplace=inplace)

    def drop_var(self, vname, inplace=False):
        return self._result(self._cf.drop_var(vname), inplace)

    def drop_func(self, fname, inplace=False):
        return self._result(self._cf.drop_func(fname), inplace)

    def rename(self, vars=None, funcs=None, inplace=False):
        """Renames variables (`vars`) and function nodes (`funcs`): {old: new}."""
        names = dict(vars or {})
        names.update(funcs or {})
        return self._result(self._cf.rename(names), inplace)

    def rename_var(self, vname, new_vname, inplace=False):
        return self.rename(vars={vname: new_vname}, inplace=inplace)

    def merge_into(self, node_to_merge, merge_into, inplace=False):
        return self._result(self._cf.merge_into(node_to_merge, merge_into), inplace)

    def merge_vars(self, inplace=False):
        """Merges each variable into another whose refs strictly contain its refs."""
        return self._result(self._cf.merge_vars(), inplace)

    def cleanup(self, inplace=False):
        """Removes empty nodes."""
        return self._result(self._cf.cleanup(), inplace)

    simplify = cleanup

    def copy(self):
        return self._new(self._cf.copy())

    # ---- tables ---------------------------------------------------------------------------
    def get_history_df(self, vname, include_calls=True):
        """One row per ref of `vname` with the elements of its history in the frame."""
        return _table(self.storage, self._cf.history(vname, include_calls))

    def get_func_table(self, fname):
        """One row per call of a function node; columns are its input and output names."""
        return _table(self.storage, self._cf.func_table(fname))

    def delete_calls(self):
        """Drops the frame's calls, and every call computed from them, from the storage."""
        calls = [c for f in self.fnames for c in self.calls(f)]
        self.storage.drop_calls(calls, delete_dependents=True)

    def delete_calls_from_df(self, df):
        """Drops every call found in the table's cells (and what was computed from them)."""
        calls = []
        for column in df.columns:
            for cell in df[column]:
                if isinstance(cell, Call):
                    calls.append(cell)
                elif isinstance(cell, list):
                    calls.extend(c for c in cell if isinstance(c, Call))
        self.storage.drop_calls(calls, delete_dependents=True)

    # ---- display --------------------------------------------------------------------------
    def to_dot(self, verbose=False, orientation="TB"):
        return self._cf.to_dot_with(verbose, orientation)

    def draw(self, show_how="inline", path=None, verbose=False, print_dot=False, orientation="TB"):
        """The frame's graph as SVG (Graphviz's `dot` program): shown inline in Jupyter, written
        to `path` when given, returned otherwise."""
        if print_dot:
            print(self.to_dot(verbose, orientation))
        svg = self._cf.to_svg(verbose, orientation)
        if path is not None:
            with open(path, "w") as f:
                f.write(svg)
        if show_how == "inline":
            try:
                from IPython.display import SVG, display

                get_ipython  # noqa: F821 (defined inside IPython only)
                display(SVG(svg))
                return None
            except (ImportError, NameError):
                return svg
        return svg if show_how == "none" else None

    def _repr_svg_(self):
        try:
            return self._cf.to_svg(False, "TB")
        except Exception:
            return None
