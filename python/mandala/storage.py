"""Storage: where memoized calls live, shared with C++ programs using libmandala."""

import os

from . import _core
from .model import Op, Ref, _contexts, _unwrap


class Storage:
    """A store of memoized calls.

    `db_path`: None or ":memory:" for a private in-memory store, else the store's location: a
    file path (created when missing), `sqlite:///ABSOLUTE/PATH` or `sqlite:RELATIVE/PATH`; the
    same store C++ programs open with mandala::Storage.

    `with storage:` makes ops memoize their calls in it; leaving the outermost `with` writes the
    calls made (also when an exception propagates).

    `allow_pickle`: values of types mandala does not encode itself are stored pickled; loading
    such a value runs code chosen by whoever wrote it, so it raises PickleNotAllowedError unless
    the storage is opened with allow_pickle=True (numpy's convention)."""

    def __init__(self, db_path=None, read_only=False, allow_pickle=False):
        if db_path is not None and not isinstance(db_path, (str, os.PathLike)):
            raise TypeError(f"db_path must be None, a str or a path, not {type(db_path).__name__}")
        self.db_path = ":memory:" if db_path is None else os.fspath(db_path)
        # Objects of other types are stored pickled; loading one runs code chosen by whoever
        # wrote it, so stored pickles are loaded only when allowed (numpy's allow_pickle).
        self.allow_pickle = bool(allow_pickle)
        self._core = _core.Storage(None if self.db_path == ":memory:" else self.db_path, read_only, self.allow_pickle)
        self._allow_new_calls = True
        self._mode_stack = []
        self._next_mode = "run"

    # ---- contexts ------------------------------------------------------------------------
    def __call__(self, mode="run"):
        """Sets the mode of the next `with storage:` ("run" memoizes, "noop" runs ops as plain
        functions on unwrapped arguments)."""
        if mode not in ("run", "noop"):
            raise ValueError(f"mode must be 'run' or 'noop', not {mode!r}")
        self._next_mode = mode
        return self

    @property
    def mode(self):
        return self._mode_stack[-1] if self._mode_stack else "run"

    def __enter__(self):
        self._mode_stack.append(self._next_mode)
        self._next_mode = "run"  # a plain nested `with storage:` runs
        _contexts.append(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        self._mode_stack.pop()
        for i in range(len(_contexts) - 1, -1, -1):
            if _contexts[i] is self:
                del _contexts[i]
                break
        if not self._mode_stack and self not in _contexts:
            self.commit()
        return False

    def in_context(self):
        """Whether any storage context is active."""
        return bool(_contexts)

    # ---- calls ---------------------------------------------------------------------------
    def _call(self, op: Op, args, kwargs):
        return op._memoized(self, args, kwargs)

    def commit(self):
        """Writes the pending calls (leaving the outermost `with` does it)."""
        self._core.flush()

    def allow_new_calls(self, allow: bool):
        """When False, memoized calls still resolve but new calls raise RuntimeError."""
        self._allow_new_calls = bool(allow)
        self._core.allow_new_calls(self._allow_new_calls)

    def unwrap(self, obj):
        """`obj` with every Ref in it (also inside lists, tuples, dicts and sets) replaced by its
        value, loaded from storage when not in memory (and then kept in the Ref)."""
        return _unwrap(obj)

    def cf(self, source):
        """A ComputationFrame: of all calls of an op, of a Ref or a list of Refs (one variable
        `v`), or of a dict naming lists of Refs (one variable per key)."""
        from .cf import ComputationFrame

        if isinstance(source, Op):
            core = _core.ComputationFrame.from_op(self._core, source.name, source.version)
        elif isinstance(source, Ref):
            core = _core.ComputationFrame.from_refs(self._core, [source._ref])
        elif isinstance(source, (list, tuple, set)) and all(isinstance(r, Ref) for r in source):
            core = _core.ComputationFrame.from_refs(self._core, [r._ref for r in source])
        elif isinstance(source, dict):
            variables = {}
            for name, refs in source.items():
                refs = [refs] if isinstance(refs, Ref) else list(refs)
                if not all(isinstance(r, Ref) for r in refs):
                    raise TypeError(f"cf: variable {name!r} must be a Ref or a list of Refs")
                variables[name] = [r._ref for r in refs]
            core = _core.ComputationFrame.from_vars(self._core, variables)
        else:
            raise TypeError(
                "cf() takes an op, a Ref, a list of Refs or a dict of them, not " + type(source).__name__
            )
        return ComputationFrame(self, core)

    # ---- provenance and deletion ------------------------------------------------------------
    def get_ref_creator(self, ref):
        """The Call that created `ref`, or None for a value passed in raw."""
        from .cf import Call

        call = self._core.creator_of(ref._ref)
        return None if call is None else Call(call)

    def get_consumers(self, ref):
        """The Calls that took `ref` as an input."""
        from .cf import Call

        return [Call(c) for c in self._core.consumers_of(ref._ref)]

    def drop_calls(self, calls_or_hids, delete_dependents=False):
        """Removes calls (Call objects or call history ids; e.g. a function column of df());
        with delete_dependents=True also every call downstream of their outputs. Values stay
        until cleanup_refs(). Returns the number of calls removed."""
        from .cf import Call

        hids = []
        for c in calls_or_hids:
            if isinstance(c, Call):
                hids.append(c.hid)
            elif isinstance(c, str):
                hids.append(c)
            elif c is None:
                continue  # a null cell of a df() column
            else:
                raise TypeError(f"drop_calls takes Calls or call history ids, not {type(c).__name__}")
        return self._core.drop_calls(hids, bool(delete_dependents))

    def cleanup_refs(self):
        """Removes the values no stored call references; returns what was removed."""
        return self._core.cleanup()

    def counters(self):
        """Calls executed and reused since this storage was opened (this process)."""
        return self._core.counters()

    def __repr__(self):
        return f"Storage(db_path={self.db_path!r})"


__all__ = ["Storage", "Ref"]
