"""Refs, ops and the storage context: the original mandala's model over the C++ engine.

Values are encoded by the engine's encoder (mandala._core), so a value has the same content id
here and in C++, and a store is shared with C++ programs: an op declared here with the same
name, parameters and outputs as a C++ op is the same op.
"""

import functools
import inspect

from . import _core

_MISSING = object()

# The storages entered with `with storage:`, innermost last. Like the original's context it is
# process-wide: ops called from any thread use the innermost one.
_contexts = []


def current_storage():
    """The innermost storage entered with `with storage:`, or None."""
    return _contexts[-1] if _contexts else None


class Ref:
    """A reference to a value in storage: its content id `cid`, its history id `hid` (32 hex
    digits each) and, when in memory, the value `obj` (None otherwise: `storage.unwrap(ref)`
    loads it). Refs are equal when their history ids are."""

    __slots__ = ("_ref", "_obj", "_in_memory")

    def __init__(self, core_ref, obj=_MISSING):
        self._ref = core_ref
        self._in_memory = obj is not _MISSING
        self._obj = None if obj is _MISSING else obj

    @property
    def hid(self):
        return self._ref.hid

    @property
    def cid(self):
        return self._ref.cid

    @property
    def in_memory(self):
        return self._in_memory

    @property
    def obj(self):
        return self._obj

    def _load(self):
        if not self._in_memory:
            self._obj = _from_store(self._ref.load())
            self._in_memory = True
        return self._obj

    def __eq__(self, other):
        return isinstance(other, Ref) and self._ref == other._ref

    def __hash__(self):
        return hash(self.hid)

    def __repr__(self):
        if self._in_memory:
            return f"Ref({self._obj!r}, hid={self.hid[:3]}...)"
        return f"Ref(hid={self.hid[:3]}..., in_memory=False)"


def _unwrap(obj):
    """`obj` with every Ref in it (also inside lists, tuples, dicts and sets) replaced by its
    value, loaded from its storage when not in memory."""
    if isinstance(obj, Ref):
        return obj._load()
    if type(obj) is list:
        return [_unwrap(x) for x in obj]
    if type(obj) is tuple:
        return tuple(_unwrap(x) for x in obj)
    if type(obj) is dict:
        return {_unwrap(k): _unwrap(v) for k, v in obj.items()}
    if type(obj) in (set, frozenset):
        return type(obj)(_unwrap(x) for x in obj)
    return obj


class ValuePointer:
    """A large or unserializable object passed under a human-readable name: the call's identity
    and the store use the name only, the function receives the object. Loading the stored
    argument back gives ValuePointer(id, None)."""

    __slots__ = ("id", "obj")

    def __init__(self, id, obj):
        if not isinstance(id, str) or not id:
            raise ValueError("a ValuePointer's id must be a non-empty str")
        self.id = id
        self.obj = obj

    def __repr__(self):
        return f"ValuePointer({self.id!r})"


def _from_store(obj):
    """A loaded value as the user sees it (a stored pointer name becomes a ValuePointer)."""
    if isinstance(obj, _core.PointerName):
        return ValuePointer(obj.name, None)
    return obj


class Ignore:
    """An argument passed to the function but not part of the call's identity:
    `f(x, Ignore(verbose))`."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"Ignore({self.value!r})"


class NewArgDefault(Ignore):
    """The default of a parameter added to an op after calls of it were stored:
    `def f(x, scale=NewArgDefault(1))`. When omitted, or passed a value that encodes to the same
    bytes as the default, the parameter is left out of the call, so the calls stored before it
    existed are reused; the function then receives the default's value."""

    __slots__ = ()

    def __repr__(self):
        return f"NewArgDefault({self.value!r})"


def _same_value(value, default):
    """Whether `value` (a Ref: its value) is the default's value by encoded bytes."""
    if isinstance(value, NewArgDefault):
        return True  # the parameter was omitted
    if isinstance(value, Ref):
        value = value._load()
    try:
        return _core.encode(value) == _core.encode(default)
    except (TypeError, ValueError):
        return False


class Op:
    """A memoized function: inside `with storage:` each call is looked up (by history, then by
    content) and the function runs only for a new call; the call returns Refs. Outside a storage
    context it is the plain function."""

    def __init__(self, f, output_names=None, nout="auto", ignore_args=None):
        self.f = f
        self.name = f.__name__
        self.version = 0
        self.signature = inspect.signature(f)
        for p in self.signature.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise NotImplementedError(
                    f"op {self.name}: *args and **kwargs parameters are not supported yet"
                )
        self.inputs = list(self.signature.parameters)
        self.ignore_args = tuple(ignore_args or ())
        for name in self.ignore_args:
            if name not in self.signature.parameters:
                raise ValueError(f"op {self.name}: ignore_args names '{name}', which is not a parameter")
        if nout == "var":
            raise NotImplementedError(f"op {self.name}: nout='var' is not supported yet")
        if nout != "auto" and (not isinstance(nout, int) or isinstance(nout, bool) or nout < 0):
            raise ValueError(f"op {self.name}: nout must be 'auto' or a non-negative int, not {nout!r}")
        self.nout = nout
        self.output_names = None if output_names is None else list(output_names)
        if self.output_names is not None and set(self.output_names) & set(self.inputs):
            raise ValueError(f"Output names clash with input names for op {self.name}.")
        if self.output_names is None and any(name.startswith("output_") for name in self.inputs):
            raise ValueError(
                f"Output names must be specified for op {self.name} because the input names "
                "contain 'output_'."
            )
        # The output count when known before a call: from nout, or from output_names.
        if nout != "auto":
            self._count = nout
        elif self.output_names is not None:
            self._count = len(self.output_names)
        else:
            self._count = None  # learnt from the store, or from the first execution
        self._core_ops = {}
        functools.update_wrapper(self, f)

    def _names(self, n):
        names = self.output_names or []
        return [names[i] if i < len(names) else f"output_{i}" for i in range(n)]

    def _core_op(self, n):
        core_op = self._core_ops.get(n)
        if core_op is None:
            core_op = _core.Op(self.name, self.inputs, self._names(n), self.version)
            self._core_ops[n] = core_op
        return core_op

    def _split(self, result, count):
        """The outputs of one execution, as a list of `count` values."""
        if self.nout == "auto" and self.output_names is None:
            outputs = list(result) if isinstance(result, tuple) else [result]
        elif count == 1:
            outputs = [result]
        elif count == 0:
            if result is not None:
                raise ValueError(f"op {self.name} declares no outputs but returned {result!r}")
            outputs = []
        elif isinstance(result, tuple):
            outputs = list(result)
        else:
            raise ValueError(
                f"op {self.name} must return a tuple of {count} outputs, not a {type(result).__name__}"
            )
        if len(outputs) != count:
            raise ValueError(
                f"op {self.name} returned {len(outputs)} outputs but has {count} "
                f"({', '.join(self._names(count))})"
            )
        return outputs

    def __call__(self, *args, **kwargs):
        storage = current_storage()
        if storage is None or storage.mode == "noop":
            # A plain call: Refs give their values, Ignore / NewArgDefault theirs.
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, value in bound.arguments.items():
                if isinstance(value, Ignore):
                    value = value.value
                elif isinstance(value, ValuePointer):
                    value = value.obj
                bound.arguments[name] = _unwrap(value)
            return self.f(*bound.args, **bound.kwargs)
        return storage._call(self, args, kwargs)

    def _memoized(self, storage, args, kwargs):
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        core_args = []
        for name, value in bound.arguments.items():
            default = self.signature.parameters[name].default
            if name in self.ignore_args or isinstance(value, Ignore):
                pass  # passed to the function, not part of the call
            elif isinstance(default, NewArgDefault) and _same_value(value, default.value):
                bound.arguments[name] = default.value  # as before the parameter existed
            elif isinstance(value, ValuePointer):
                core_args.append((name, _core.PointerName(value.id)))
            else:
                core_args.append((name, value._ref if isinstance(value, Ref) else value))
        for name, value in bound.arguments.items():
            if isinstance(value, Ignore):
                bound.arguments[name] = value.value
            elif isinstance(value, ValuePointer):
                bound.arguments[name] = value.obj
        args, kwargs = bound.args, bound.kwargs

        computed = []

        def execute():
            return self.f(*_unwrap(args), **_unwrap(kwargs))

        count = self._count
        early = _MISSING
        if count is None:
            stored = storage._core.op_outputs(self.name, self.version)
            if stored is not None:
                count = len(stored)
            elif not storage._allow_new_calls:
                raise RuntimeError(f"Call to {self.name} does not exist and new calls are not allowed.")
            else:
                # A new op in this store: no call of it can be found, so run it to learn how
                # many outputs it has (a tuple gives one output per element).
                early = execute()
                count = len(early) if isinstance(early, tuple) else 1
            self._count = count

        def run():
            outputs = self._split(execute() if early is _MISSING else early, count)
            computed.append(outputs)
            return outputs

        try:
            refs = self._core_op(count).call(storage._core, core_args, run)
        except TypeError as e:
            if "of type 'Ref'" not in str(e):
                raise
            raise TypeError(
                f"{e}. A Ref inside a list, tuple, dict or set would lose its history: pass Refs as "
                "arguments of their own, or their values (storage.unwrap)"
            ) from None
        if computed:
            out = [Ref(r, v) for r, v in zip(refs, computed[0])]
        else:
            out = [Ref(r) for r in refs]
        if len(out) == 1:
            return out[0]
        return tuple(out)

    def __repr__(self):
        return f"Op({self.name})"


def op(output_names=None, nout="auto", ignore_args=None, __structural__=False, __allow_side_effects__=False):
    """Makes a function an op: `@op`, or `@op(output_names=[...], nout=N, ignore_args=(...))`.

    `nout`: "auto" (a tuple return gives one output per element, anything else one output) or
    the number of outputs (the function then returns a tuple of that length). Outputs are named
    by `output_names`, else output_0, output_1, ... Parameters named in `ignore_args` are passed
    to the function but are not part of the call's identity."""
    if callable(output_names):
        return Op(output_names)
    if __structural__:
        raise NotImplementedError("structural ops are built into the engine")

    def decorator(f):
        return Op(f, output_names=output_names, nout=nout, ignore_args=ignore_args)

    return decorator


class noop:
    """`with noop():` runs ops as plain functions (on unwrapped arguments) inside a storage
    context; without one it does nothing (ops are plain functions there anyway)."""

    def __enter__(self):
        self._storage = current_storage()
        if self._storage is not None:
            self._storage(mode="noop").__enter__()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._storage is not None:
            self._storage.__exit__(exc_type, exc, tb)
        return False
