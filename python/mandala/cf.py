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


_WRAPPED = {_core.PointerName, _core.Call}
_SCALARS = {type(None), bool, int, float, str, bytes}


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

    def refs(self, vname):
        """The refs of a variable (lazy)."""
        return [Ref(r) for r in self._cf.refs(vname)]

    def calls(self, fname):
        """The calls of a function node."""
        return [Call(c) for c in self._cf.calls(fname)]

    def _new(self, core):
        return ComputationFrame(self.storage, core)

    def expand_back(self, recursive=False):
        """Adds the calls that created the refs of the frame's sources (all the way back with
        recursive=True)."""
        return self._new(self._cf.expand_back(recursive))

    def expand_forward(self, recursive=False):
        """Adds the calls that used the refs of the frame's sinks."""
        return self._new(self._cf.expand_forward(recursive))

    def expand_all(self):
        """Adds every call connected to the frame, in both directions."""
        return self._new(self._cf.expand_all())

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
