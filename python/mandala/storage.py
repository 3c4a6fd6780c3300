"""Storage: where memoized calls live, shared with C++ programs using libmandala."""

import os

from . import _core
from .deps import DepsConfig
from .model import ListRef, Op, Ref, _contexts, _from_store, _unwrap


class Storage:
    """A store of memoized calls.

    `db_path`: None or ":memory:" for a private in-memory store, else the store's location: a
    file path (created when missing), `sqlite:///ABSOLUTE/PATH` or `sqlite:RELATIVE/PATH`; the
    same store C++ programs open with mandala::Storage.

    `with storage:` makes ops memoize their calls in it; leaving the outermost `with` writes the
    calls made (also when an exception propagates).

    `allow_pickle`: values of types mandala does not encode itself are stored pickled; loading
    such a value runs code chosen by whoever wrote it, so from a file or database it raises
    PickleNotAllowedError unless the storage is opened with allow_pickle=True (numpy's
    convention). An in-memory storage (db_path None) holds only what this process wrote, so it
    loads its pickles unless allow_pickle=False is given."""

    def __init__(
        self,
        db_path=None,
        read_only=False,
        allow_pickle=None,
        *,
        deps_path=None,
        on_code_change="new_version",
        overflow_dir=None,
        overflow_threshold_MB=None,
        tracer_impl=None,
        strict_tracing=False,
        skip_unhashable_globals=True,
        skip_globals_silently=False,
        skip_missing_deps=True,
        skip_missing_silently=False,
        deps_package=None,
        track_globals=True,
    ):
        if db_path is not None and not isinstance(db_path, (str, os.PathLike)):
            raise TypeError(f"db_path must be None, a str or a path, not {type(db_path).__name__}")
        if isinstance(read_only, (str, os.PathLike)):
            raise TypeError(
                "Storage's second argument is read_only (the original's overflow_dir is not needed: "
                "large values go to blob files by themselves)"
            )
        self.db_path = ":memory:" if db_path is None else os.fspath(db_path)
        # Code versions: on when deps_path is given ("__main__", or a folder or file whose modules
        # are the user's code); docs/python.md.
        self._deps = (
            None
            if deps_path is None
            else DepsConfig(deps_path, track_globals=track_globals, skip_unhashable_globals=skip_unhashable_globals)
        )
        self.deps_path = deps_path
        # Objects of other types are stored pickled; loading one runs code chosen by whoever
        # wrote it, so stored pickles are loaded only when allowed (numpy's allow_pickle).
        self.allow_pickle = self.db_path == ":memory:" if allow_pickle is None else bool(allow_pickle)
        self._core = _core.Storage(
            None if self.db_path == ":memory:" else self.db_path, read_only, on_code_change, self.allow_pickle
        )
        self._allow_new_calls = True
        self._mode_stack = []
        self._next_mode = "run"
        # Counts outermost `with storage:` entries: an op's code is looked at again at each.
        self._generation = 0

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
        if not self._mode_stack:
            self._generation += 1
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
        self._committed_at = self._recorded()

    def _recorded(self):
        """How many calls this storage has recorded (computed, or reused under new ids)."""
        c = self._core.counters()
        return c["executed"] + c["reused_by_content"]

    def _uncommitted(self):
        return self._recorded() != getattr(self, "_committed_at", 0)

    @property
    def atoms(self):
        """The original's value cache, for code that clears it: `storage.atoms.clear()` refuses
        (ValueError) while calls are not committed, as the original does; the engine's caches are
        bounded and need no clearing otherwise."""
        return _CacheView(self)

    def clear_cache(self, allow_uncommitted=False):
        """The original's cache clearing: ValueError while calls are not committed, unless
        allowed; otherwise nothing to do (the engine's caches are bounded)."""
        _CacheView(self).clear(allow_uncommited=allow_uncommitted)

    def allow_new_calls(self, allow: bool):
        """When False, memoized calls still resolve but new calls raise RuntimeError."""
        self._allow_new_calls = bool(allow)
        self._core.allow_new_calls(self._allow_new_calls)

    def unwrap(self, obj):
        """`obj` with every Ref in it (also inside lists, tuples, dicts and sets) replaced by its
        value, loaded from storage when not in memory (and then kept in the Ref)."""
        return _unwrap(obj)

    def attach(self, obj, inplace=False):
        """Loads the values of the Refs in `obj` (also inside lists, tuples, dicts and sets, and
        the elements of transparent collections). Returns `obj` with each Ref replaced by an
        in-memory Ref of the same ids, or with inplace=True loads them into the given Refs and
        returns None."""
        if inplace:
            _attach_in_place(obj)
            return None
        return _attached(obj)

    @property
    def versioned(self):
        """Whether this storage versions ops by their code (deps_path was given)."""
        return self._deps is not None

    def versions(self, f, show=True, plain=None, show_dep_commit_ids=None):
        """The recorded code versions of an op (an Op or its name), oldest first. With show=True
        (the original's behaviour) prints each version with the code of its components; with
        show=False returns them as a list of dicts: number, content_version, semantic_version,
        explicit_version, decided, calls, created, components (name, kind, content, semantic,
        code). (`plain` and `show_dep_commit_ids`, the original's display options, are accepted
        and ignored.)"""
        name = _op_name(f)
        if show:
            print(self._core.versions_listing(name), end="")
            return None
        return self._core.versions(name)

    def diff(self, f, id_1=None, id_2=None, show=True, context_lines=None):
        """A unified diff of the code of two versions of an op (numbers as listed, or 4+ hex digit
        prefixes of their content or semantic version ids); by default the two newest. Printed
        (show=True), or returned ("" when the code is the same)."""
        name = _op_name(f)
        if id_1 is None and id_2 is None:
            versions = self._core.versions(name)
            if len(versions) < 2:
                raise ValueError(f"op {name} has {len(versions)} code version(s): nothing to diff")
            id_1, id_2 = str(versions[-2]["number"]), str(versions[-1]["number"])
        elif id_1 is None or id_2 is None:
            raise ValueError("diff takes two versions, or none (the two newest)")
        text = self._core.diff_versions(name, str(id_1), str(id_2))
        if show:
            print(text, end="")
            return None
        return text

    def mark_compatible(self, f, version=None):
        """Declares a version's code changes (by default the newest's) compatible with the code
        before it: the calls stored under the earlier code are reused without recomputation.
        Returns the components marked."""
        return self._core.mark_compatible(_op_name(f), "" if version is None else str(version))

    def mark_new_version(self, f, version=None):
        """Declares a version's code changes semantic (undoes mark_compatible; decides a change held
        by on_code_change="error"). Returns the components marked."""
        return self._core.mark_new_version(_op_name(f), "" if version is None else str(version))

    def sync_component(self, f, is_semantic_change):
        """The original's way to decide a change of an op's code: False marks the newest version
        compatible, True a new version."""
        if is_semantic_change:
            return self.mark_new_version(f)
        return self.mark_compatible(f)

    def drop_version(self, f, version):
        """Removes every call computed under the version (and every call downstream of them) and
        forgets the version. Returns the number of calls removed."""
        return self._core.drop_version(_op_name(f), str(version))

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

    def get_consumers(self, refs):
        """The Calls that took the given refs as inputs: a Ref, or a list of Refs or of ref
        history ids (as the original takes); each call once."""
        from .cf import Call

        out = {}
        for r in self._core_refs_of(refs):
            for c in self._core.consumers_of(r):
                out.setdefault(c.hid, Call(c))
        return list(out.values())

    def get_creators(self, refs):
        """The Calls that created the given refs (a Ref, or a list of Refs or of ref history
        ids); each call once; raw values have none."""
        from .cf import Call

        out = {}
        for r in self._core_refs_of(refs):
            c = self._core.creator_of(r)
            if c is not None:
                out.setdefault(c.hid, Call(c))
        return list(out.values())

    def _core_refs_of(self, refs):
        refs = [refs] if isinstance(refs, (Ref, str)) else refs
        out = []
        for r in refs:
            if isinstance(r, Ref):
                out.append(r._ref)
            elif isinstance(r, str):
                found = self._core.ref(r)
                if found is not None:
                    out.append(found)
            else:
                raise TypeError(f"a Ref or a ref history id is expected, not {type(r).__name__}")
        return out

    def load_ref(self, hid, lazy=False):
        """The stored Ref of a history id, with its value loaded (lazy=True: not loaded). KeyError
        when the store has no ref of that id. (The original's flag is `in_memory`, with the
        inverted meaning; this one says what it does.)"""
        found = self._core.ref(hid)
        if found is None:
            raise KeyError(hid)
        ref = Ref(found)
        if not lazy:
            ref._load()
        return ref

    def exists_call(self, hid):
        """Whether a call of this history id is stored."""
        return self._core.call_by_hid(hid) is not None

    def get_call(self, hid):
        """The stored Call of this history id (its Refs lazy); KeyError when there is none."""
        from .cf import Call

        found = self._core.call_by_hid(hid)
        if found is None:
            raise KeyError(hid)
        return Call(found)

    def mget_call(self, hids):
        """get_call for each history id, in order."""
        return [self.get_call(h) for h in hids]

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
        """Removes the values no stored call references; returns what was removed (counts, and
        the removed values' content ids under "cids")."""
        return self._core.cleanup()

    def get_unreferenced_cids(self):
        """The content ids of the stored values no call references (left by drop_calls):
        what cleanup_refs() removes. Changes nothing."""
        return set(self._core.cleanup(preview=True)["cids"])

    def get_orphans(self):
        """History ids of refs stored outside every call: always empty here. A ref's history id
        is kept only in the rows of the calls that made or took it, so a dropped call leaves no
        ref behind, only values (get_unreferenced_cids)."""
        return set()

    def counters(self):
        """Calls executed and reused since this storage was opened (this process)."""
        return self._core.counters()

    def __repr__(self):
        return f"Storage(db_path={self.db_path!r})"


class _CacheView:
    def __init__(self, storage):
        self._storage = storage

    def clear(self, allow_uncommited=False, allow_uncommitted=False):
        if self._storage._uncommitted() and not (allow_uncommited or allow_uncommitted):
            raise ValueError("calls were made and not committed yet: call storage.commit() first (or leave the "
                             "`with storage:` block), or pass allow_uncommitted=True")


def _op_name(f):
    if isinstance(f, Op):
        return f.name
    if isinstance(f, str):
        return f
    raise TypeError(f"an op or an op name is expected, not {type(f).__name__}")


def _attached(obj):
    if isinstance(obj, Ref):
        value = obj._obj if obj.in_memory else _from_store(obj._ref.load())
        if isinstance(obj, ListRef):
            return type(obj)(obj._ref, value, obj._element_shape)
        return Ref(obj._ref, value)
    if type(obj) is list:
        return [_attached(x) for x in obj]
    if type(obj) is tuple:
        return tuple(_attached(x) for x in obj)
    if type(obj) is dict:
        return {k: _attached(v) for k, v in obj.items()}
    if type(obj) in (set, frozenset):
        return type(obj)(_attached(x) for x in obj)
    return obj


def _attach_in_place(obj):
    if isinstance(obj, Ref):
        obj._load()
        if isinstance(obj, ListRef) and obj._items is not None:
            for item in obj._items:
                _attach_in_place(item)
    elif type(obj) in (list, tuple, set, frozenset):
        for x in obj:
            _attach_in_place(x)
    elif type(obj) is dict:
        for v in obj.values():
            _attach_in_place(v)


__all__ = ["Storage", "Ref"]
