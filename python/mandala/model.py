"""Refs, ops and the storage context: the original mandala's model over the C++ engine.

Values are encoded by the engine's encoder (mandala._core), so a value has the same content id
here and in C++, and a store is shared with C++ programs: an op declared here with the same
name, parameters and outputs as a C++ op is the same op.
"""

import functools
import inspect
import threading
import typing
import weakref

from . import _core
from .deps import components
from .tps import output_shapes, shape_of

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


class ListRef(Ref):
    """The Ref of a transparent list (an MList result or argument): `len(ref)`, `ref[i]` (the
    element's Ref), `ref[i:j]` (a list of element Refs), iteration. `storage.unwrap(ref)` gives
    the list of values."""

    __slots__ = ("_element_shape", "_items", "_keys")
    _kind = "list"

    def __init__(self, core_ref, obj=_MISSING, element_shape=None):
        if type(obj) is tuple:
            obj = list(obj)  # as it comes back from the store
        super().__init__(core_ref, obj)
        self._element_shape = element_shape
        self._items = None
        self._keys = None

    def _elements(self):
        if self._items is None:
            keys, refs = self._ref.elements(self._kind)
            values = self._obj if self._in_memory else None
            items = []
            for i, r in enumerate(refs):
                if values is None:
                    value = _MISSING
                else:
                    value = values[i] if self._kind == "list" else values[keys[i]]
                items.append(_make_ref(r, value, self._element_shape))
            self._keys = keys
            self._items = items
        return self._items

    def __len__(self):
        return len(self._elements())

    def __getitem__(self, index):
        return self._elements()[index]

    def __iter__(self):
        return iter(self._elements())

    def shape(self):
        """A copy whose elements are lazy (their values not in memory)."""
        return type(self)(self._ref, _MISSING, self._element_shape)

    def __repr__(self):
        if self._in_memory:
            return f"{type(self).__name__}({self._obj!r}, hid={self.hid[:3]}...)"
        return f"{type(self).__name__}(hid={self.hid[:3]}..., in_memory=False)"


class DictRef(ListRef):
    """The Ref of a transparent dict with str keys (an MDict result or argument): `len(ref)`,
    `ref[key]` (the element's Ref), `keys()`, `values()`, `items()`. `storage.unwrap(ref)` gives
    the dict of values."""

    __slots__ = ()
    _kind = "dict"

    def __getitem__(self, key):
        if isinstance(key, Ref):
            key = key._load()
        items = self._elements()
        try:
            return items[self._keys.index(key)]
        except ValueError:
            raise KeyError(key) from None

    def __iter__(self):
        return iter(self.keys())

    def __contains__(self, key):
        self._elements()
        return key in self._keys

    def keys(self):
        self._elements()
        return list(self._keys)

    def values(self):
        return list(self._elements())

    def items(self):
        return list(zip(self.keys(), self._elements()))


def _recompute_function(op, count):
    """The function the engine runs to recompute `op`'s transient outputs (holding the op weakly:
    the engine's declaration must not keep it alive)."""
    op = weakref.ref(op)

    def recompute(given):
        live = op()
        if live is None:
            raise RuntimeError("the op of this transient output no longer exists in this program")
        return live._replay(given, count)

    return recompute


def _make_ref(core_ref, value, shape):
    """The Ref of an output or element of the given shape (value _MISSING: lazy)."""
    if shape is None:
        return Ref(core_ref, value)
    cls = ListRef if shape[0] == "list" else DictRef
    return cls(core_ref, value, shape[1])


def _core_refs(value):
    """A collection argument with its Refs replaced by the engine's refs (they keep their
    history) and ValuePointers by their stored names."""
    if isinstance(value, Ref):
        return value._ref
    if isinstance(value, ValuePointer):
        return _core.PointerName(value.id)
    if type(value) in (list, tuple):
        return [_core_refs(x) for x in value]
    if type(value) is dict:
        return {k: _core_refs(v) for k, v in value.items()}
    return value


def wrap_atom(obj, history_id=None):
    """A Ref of `obj` as a value without history, in memory: the ids it gets when passed as a
    raw argument (so passing the Ref or the value is the same call), computed once. A Ref is
    returned unchanged (a ListRef / DictRef: ValueError); a ValuePointer is wrapped by its name.
    Wrapping a large global once (`DATA = wrap_atom(load())`, then `DATA.obj` in code) saves
    hashing it at every call and, under code versions, at every `with storage:`."""
    if history_id is not None:
        raise ValueError(
            "wrap_atom: history_id is not supported (a value's history comes from the calls that made it)"
        )
    if isinstance(obj, Ref):
        if isinstance(obj, ListRef):
            raise ValueError(f"Expected an atom Ref, got {type(obj).__name__}")
        return obj
    if isinstance(obj, ValuePointer):
        return Ref(_core.atom_ref(_core.PointerName(obj.id)), ValuePointer(obj.id, None))
    return Ref(_core.atom_ref(obj), obj)


def _type_hints(f):
    """The annotations of `f` (resolved; the raw ones when they cannot be resolved)."""
    try:
        return typing.get_type_hints(f)
    except Exception:  # unresolvable string annotations: use what is there
        return dict(getattr(f, "__annotations__", {}) or {})


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


def _for_function(value):
    """An argument as the function gets it (before Refs are unwrapped)."""
    if isinstance(value, Ignore):
        return value.value
    if isinstance(value, ValuePointer):
        return value.obj
    return value


def _plain(value):
    """An argument of a plain (unmemoized) call."""
    return _unwrap(_for_function(value))


class Op:
    """A memoized function: inside `with storage:` each call is looked up (by history, then by
    content) and the function runs only for a new call; the call returns Refs. Outside a storage
    context it is the plain function."""

    def __init__(self, f, output_names=None, nout="auto", ignore_args=None, version=None, transient=False):
        self.f = f
        self.name = f.__name__
        # An explicit version overrides code versions: the op is versioned by this number only.
        if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
            raise ValueError(f"op {self.name}: version must be a non-negative int, not {version!r}")
        self.version = version or 0
        self.explicit_version = version is not None
        self.signature = inspect.signature(f)
        params = self.signature.parameters.values()
        self._variadic = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
        # The declared inputs: every named parameter; *args elements are inputs <param>_0,
        # <param>_1, ... and **kwargs entries inputs named by their keys, per call.
        self.inputs = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        self.ignore_args = tuple(ignore_args or ())
        for name in self.ignore_args:
            if name not in self.signature.parameters:
                raise ValueError(f"op {self.name}: ignore_args names '{name}', which is not a parameter")
        if nout == "var":
            raise NotImplementedError(f"op {self.name}: nout='var' is not supported yet")
        # Outputs kept out of the storage, recomputed when loaded: True (every output) or names.
        if transient is True or transient is False:
            self.transient = transient
        elif isinstance(transient, str) or not all(isinstance(t, str) for t in transient):
            raise ValueError(f"op {self.name}: transient is True, False or a list of output names, not {transient!r}")
        else:
            self.transient = list(transient)
        if nout != "auto" and (not isinstance(nout, int) or isinstance(nout, bool) or nout < 0):
            raise ValueError(f"op {self.name}: nout must be 'auto' or a non-negative int, not {nout!r}")
        self.nout = nout
        self.output_names = None if output_names is None else list(output_names)
        if self.output_names is not None and set(self.output_names) & set(self.signature.parameters):
            raise ValueError(f"Output names clash with input names for op {self.name}.")
        if self.output_names is None and any(name.startswith("output_") for name in self.signature.parameters):
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
        hints = _type_hints(f)
        self._input_shapes = {}
        for p in params:
            shape = shape_of(hints.get(p.name))
            if shape is not None:
                self._input_shapes[p.name] = shape
        self._return_annotation = hints.get("return")
        # `-> MList[T]` / `-> MDict[str, T]`: one output, even when the function returns a tuple.
        self._one_collection = shape_of(self._return_annotation) is not None
        self._core_ops = {}
        self._code_lock = threading.Lock()
        self._code_cache = {}  # DepsConfig -> (generation, components)
        functools.update_wrapper(self, f)

    def _names(self, n):
        names = self.output_names or []
        return [names[i] if i < len(names) else f"output_{i}" for i in range(n)]

    def _output_shapes(self, n):
        return output_shapes(self._return_annotation, n)

    def _code(self, storage):
        """The op's code components for `storage` as (key, components) (None when the storage
        tracks no code or the op has an explicit version), computed once per outermost
        `with storage:`."""
        config = storage._deps
        if config is None or self.explicit_version:
            return None
        with self._code_lock:
            cached = self._code_cache.get(id(config))
            if cached is not None and cached[0] == storage._generation and cached[1] is config:
                return cached[2]
        found = components(self, config)
        # The components, and a key naming them (a str: its hash is computed once).
        code = ("\n".join(f"{c[0]}\t{c[4]}" for c in found), found)
        with self._code_lock:
            self._code_cache[id(config)] = (storage._generation, config, code)
        return code

    def _core_op(self, n, code=None, replayable=True):
        # A call that could not run again from its stored inputs (an ignored argument, a value
        # pointer) goes through the op without transient outputs: it keeps its outputs stored.
        transient = bool(self.transient) and replayable
        key = (n, None if code is None else code[0], transient)
        core_op = self._core_ops.get(key)
        if core_op is None:
            shapes = self._output_shapes(n)
            names = self._names(n)
            if not transient:
                kept_out = []
            elif self.transient is True:
                kept_out = names
            else:
                kept_out = self.transient
                unknown = [t for t in kept_out if t not in names]
                if unknown:
                    raise ValueError(
                        f"op {self.name}: transient names {unknown}, which are not outputs ({', '.join(names)})"
                    )
            core_op = _core.Op(
                self.name,
                self.inputs,
                self._names(n),
                self.version,
                open_inputs=self._variadic,
                code=None if code is None else list(code[1]),
                output_shapes=shapes if any(sh is not None for sh in shapes) else None,
                transient_outputs=kept_out,
                recompute=_recompute_function(self, n) if kept_out else None,
            )
            self._core_ops[key] = core_op
        return core_op

    def _split(self, result, count):
        """The outputs of one execution, as a list of `count` values."""
        if self.nout == "auto" and self.output_names is None:
            split = isinstance(result, tuple) and not self._one_collection
            outputs = list(result) if split else [result]
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
            # A plain call: Refs give their values, Ignore / NewArgDefault / ValuePointer theirs.
            bound = self.signature.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, value in bound.arguments.items():
                kind = self.signature.parameters[name].kind
                if kind == inspect.Parameter.VAR_POSITIONAL:
                    bound.arguments[name] = tuple(_plain(v) for v in value)
                elif kind == inspect.Parameter.VAR_KEYWORD:
                    bound.arguments[name] = {k: _plain(v) for k, v in value.items()}
                else:
                    bound.arguments[name] = _plain(value)
            return self.f(*bound.args, **bound.kwargs)
        return storage._call(self, args, kwargs)

    def _bind(self, storage, args, kwargs):
        """The storage inputs of a call as (name, value or core ref) pairs, and the arguments the
        function gets (Refs kept: unwrapped when it runs)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        core_args = []
        replayable = not self.ignore_args

        def storage_input(name, value, shape):
            nonlocal replayable
            if isinstance(value, ValuePointer):
                replayable = False
                core_args.append((name, _core.PointerName(value.id)))
            elif shape is not None and not isinstance(value, Ref):
                # A transparent collection: recorded as __make_list__ / __make_dict__ calls.
                core_args.append(
                    (name, _core.make_collection(storage._core, shape, _core_refs(value), f"argument '{name}'"))
                )
            else:
                core_args.append((name, value._ref if isinstance(value, Ref) else value))

        for name, value in bound.arguments.items():
            param = self.signature.parameters[name]
            shape = self._input_shapes.get(name)
            if param.kind == param.VAR_POSITIONAL:
                for i, v in enumerate(value):
                    if not isinstance(v, Ignore) and name not in self.ignore_args:
                        storage_input(f"{name}_{i}", v, shape)
                    else:
                        replayable = False
                bound.arguments[name] = tuple(_for_function(v) for v in value)
                continue
            if param.kind == param.VAR_KEYWORD:
                for k, v in value.items():
                    if not isinstance(v, Ignore) and name not in self.ignore_args:
                        storage_input(k, v, shape)
                    else:
                        replayable = False
                bound.arguments[name] = {k: _for_function(v) for k, v in value.items()}
                continue
            default = param.default
            if name in self.ignore_args or isinstance(value, Ignore):
                # passed to the function, not part of the call (an omitted NewArgDefault
                # parameter's default is known again when the call is recomputed)
                replayable = replayable and name not in self.ignore_args and value is default
            elif isinstance(default, NewArgDefault) and _same_value(value, default.value):
                bound.arguments[name] = default.value  # as before the parameter existed
            else:
                storage_input(name, value, shape)
            bound.arguments[name] = _for_function(bound.arguments[name])
        return core_args, bound.args, bound.kwargs, replayable

    def _replay(self, given, count):
        """Runs the function again on a stored call's arguments ((input name, core ref) pairs, as
        _bind made them): every output, to recompute a transient one."""
        refs = dict(given)
        args, kwargs = [], {}

        def value(name, param):
            return _unwrap(_make_ref(refs.pop(name), _MISSING, self._input_shapes.get(param)))

        for p in self.signature.parameters.values():
            if p.kind == p.VAR_POSITIONAL:
                i = 0
                while f"{p.name}_{i}" in refs:
                    args.append(value(f"{p.name}_{i}", p.name))
                    i += 1
            elif p.kind == p.VAR_KEYWORD:
                kwargs.update({k: value(k, p.name) for k in list(refs)})
            elif p.name in refs:
                if p.kind == p.KEYWORD_ONLY:
                    kwargs[p.name] = value(p.name, p.name)
                else:
                    args.append(value(p.name, p.name))
            else:  # left out of the call: a NewArgDefault parameter given its default
                default = p.default.value if isinstance(p.default, Ignore) else p.default
                if default is inspect.Parameter.empty:
                    raise ValueError(f"op {self.name}: the stored call has no argument '{p.name}' to recompute it")
                if p.kind == p.KEYWORD_ONLY:
                    kwargs[p.name] = default
                else:
                    args.append(default)
        return self._split(self.f(*args, **kwargs), count)

    def _memoized(self, storage, args, kwargs):
        core_args, args, kwargs, replayable = self._bind(storage, args, kwargs)
        code = self._code(storage)

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
                count = len(early) if isinstance(early, tuple) and not self._one_collection else 1
            self._count = count

        def run():
            outputs = self._split(execute() if early is _MISSING else early, count)
            computed.append(outputs)
            return outputs

        try:
            refs = self._core_op(count, code, replayable).call(storage._core, core_args, run)
        except TypeError as e:
            if "of type 'Ref'" not in str(e):
                raise
            raise TypeError(
                f"{e}. A Ref inside a list, tuple, dict or set would lose its history: pass Refs as "
                "arguments of their own, annotate the parameter MList / MDict, or pass their values "
                "(storage.unwrap)"
            ) from None
        shapes = self._output_shapes(count)
        values = computed[0] if computed else [_MISSING] * count
        out = [_make_ref(r, v, shape) for r, v, shape in zip(refs, values, shapes)]
        if len(out) == 1:
            return out[0]
        return tuple(out)

    def __repr__(self):
        return f"Op({self.name})"


def op(
    output_names=None,
    nout="auto",
    ignore_args=None,
    __structural__=False,
    __allow_side_effects__=False,
    version=None,
    transient=False,
):
    """Makes a function an op: `@op`, or `@op(output_names=[...], nout=N, ignore_args=(...))`.

    `nout`: "auto" (a tuple return gives one output per element, anything else one output) or
    the number of outputs (the function then returns a tuple of that length). Outputs are named
    by `output_names`, else output_0, output_1, ... Parameters named in `ignore_args` are passed
    to the function but are not part of the call's identity. `version`: an explicit version
    (folded into the calls' ids); it overrides code versions (Storage(deps_path=...)), so the op
    is versioned by this number only. `transient`: True, or a list of output names: those
    outputs are not stored; a call records their ids, and loading one runs the function again
    on the call's stored inputs and checks the id (a call with an ignored argument or a value
    pointer keeps them stored: it could not run again). Not part of any id."""
    if callable(output_names):
        return Op(output_names)
    if __structural__:
        raise NotImplementedError("structural ops are built into the engine")

    def decorator(f):
        return Op(
            f, output_names=output_names, nout=nout, ignore_args=ignore_args, version=version, transient=transient
        )

    return decorator


def track(f):
    """The original's decorator marking a helper as a dependency. Not needed here: the code an
    op reaches is found from its code objects (Storage(deps_path=...)); `track` returns `f`
    unchanged so code written for the original keeps working."""
    return f


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
