"""Code versions of Python ops: the code an op reaches, found statically from code objects.

An op's components are its own function and everything of the user's own modules it reaches:
functions (also methods of reached classes, and ops called inside it), classes and global
variables its code names. Names are taken from the code objects (`co_names`, nested code
objects such as comprehensions and inner functions included), not from tracing calls, so a
helper reachable through any branch counts. Library code (the standard library, site-packages,
mandala itself) is not tracked.

A function's or class's content is its source parsed and unparsed (`ast.unparse`) without
docstrings: comments, blank lines and formatting do not count. A global variable's content is
its value's content id (values mandala cannot store count by type only). The components go to
the engine, which keeps each one's history in the store and gives the op a new version when one
changes (docs/versioning.md)."""

import ast
import hashlib
import inspect
import os
import sys
import sysconfig
import textwrap
import threading
import types

from . import _core


def _library_dirs():
    dirs = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            dirs.add(os.path.realpath(path))
    for path in sys.path:
        if path and ("site-packages" in path or "dist-packages" in path):
            dirs.add(os.path.realpath(path))
    dirs.add(os.path.realpath(os.path.dirname(os.path.abspath(__file__))))  # mandala itself
    return tuple(sorted(dirs))


_LIBRARY_DIRS = _library_dirs()


def _under(path, directory):
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def _hash(tag, text):
    h = hashlib.blake2b(digest_size=16)
    h.update(tag.encode())
    h.update(b"\0")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


class DepsConfig:
    """Which modules are the user's: `deps_path="__main__"` only the running script or notebook;
    a directory (or file) the modules whose source is under it."""

    def __init__(self, deps_path, track_globals=True, skip_unhashable_globals=True):
        if deps_path == "__main__":
            self.root = None
        else:
            if not isinstance(deps_path, (str, os.PathLike)):
                raise TypeError(f"deps_path must be '__main__' or a path, not {type(deps_path).__name__}")
            root = os.path.realpath(os.fspath(deps_path))
            if not os.path.exists(root):
                raise ValueError(f"deps_path {deps_path!r} does not exist")
            self.root = root
        self.deps_path = deps_path
        self.track_globals = track_globals
        self.skip_unhashable_globals = skip_unhashable_globals
        self._owned = {}

    def owns(self, module_name):
        """Whether the module's code is tracked."""
        if module_name is None:
            return False
        known = self._owned.get(module_name)
        if known is not None:
            return known
        owned = self._decide(module_name)
        self._owned[module_name] = owned
        return owned

    def _decide(self, module_name):
        if module_name == "__main__":
            return True
        if self.root is None:
            return False
        module = sys.modules.get(module_name)
        path = getattr(module, "__file__", None)
        if not path:
            return False
        path = os.path.realpath(path)
        if not _under(path, self.root):
            return False
        # A library folder inside the root (a virtual environment in the project) is not the
        # user's code, unless the root itself is inside that folder.
        return not any(_under(path, d) and not _under(self.root, d) for d in _LIBRARY_DIRS)


def _strip_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _code_description(code):
    """A formatting-independent description of a code object (when its source is unavailable):
    its instructions, names and constants, nested code objects recursively; line numbers do not
    count."""
    parts = [code.co_code.hex(), repr(code.co_names), repr(code.co_varnames), repr(code.co_freevars)]
    for const in code.co_consts:
        parts.append(_code_description(const) if isinstance(const, types.CodeType) else repr(const))
    return "\n".join(parts)


_source_cache = {}
_source_lock = threading.Lock()


def normalized_source(obj):
    """The normalized source of a function or class: parsed, docstrings removed, unparsed.
    Cached per code object (functions) or class."""
    key = obj.__code__ if isinstance(obj, types.FunctionType) else obj
    with _source_lock:
        hit = _source_cache.get(id(key))
        if hit is not None and hit[0] is key:
            return hit[1]
    text = None
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        tree = ast.parse(source)
        if tree.body and isinstance(tree.body[0], (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            text = ast.unparse(_strip_docstrings(tree))
    except (OSError, TypeError, SyntaxError, IndentationError):
        text = None
    if text is None:
        if isinstance(obj, types.FunctionType):
            text = "<source unavailable: bytecode>\n" + _code_description(obj.__code__)
        else:
            text = f"<source unavailable: class {obj.__qualname__}>"
    with _source_lock:
        _source_cache[id(key)] = (key, text)
    return text


def _code_names(code, out):
    out.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_names(const, out)
    return out


def _function_of(obj):
    """The plain function behind a function, method, staticmethod, classmethod, property or op."""
    from .model import Op

    if isinstance(obj, Op):
        return obj.f
    if isinstance(obj, (staticmethod, classmethod)):
        return obj.__func__
    if isinstance(obj, types.MethodType):
        return obj.__func__
    if isinstance(obj, types.FunctionType):
        return obj
    return None


def _source_file(obj):
    try:
        return inspect.getsourcefile(obj) or ""
    except TypeError:
        return ""


def components(op, config):
    """The op's components as (name, kind, file, code, content id) tuples, sorted by name. Code
    whose source cannot be read is described by its bytecode."""
    from .model import Op, Ref

    out = {}
    seen = set()
    work = [(op.f, f"op {op.name}")]

    def add_function(f, name=None, bound_to=None):
        if f is None or id(f) in seen:
            return
        if name is None and not config.owns(getattr(f, "__module__", None)):
            return
        seen.add(id(f))
        if name is None:
            # A lambda is named by the global that holds it (all lambdas share a qualname).
            qualname = f.__qualname__
            if f.__name__ == "<lambda>" and bound_to:
                qualname = qualname[: -len("<lambda>")] + bound_to
            name = f"{f.__module__}.{qualname}"
        work.append((f, name))

    def add_class(cls):
        if id(cls) in seen or not config.owns(getattr(cls, "__module__", None)):
            return
        seen.add(id(cls))
        name = f"class {cls.__module__}.{cls.__qualname__}"
        code = normalized_source(cls)
        out[name] = (name, "class", _source_file(cls), code, _hash("class", code))
        for attr in vars(cls).values():
            if isinstance(attr, property):
                for g in (attr.fget, attr.fset, attr.fdel):
                    if g is not None:
                        _follow_names(g, set())
            else:
                f = _function_of(attr)
                if f is not None:
                    _follow_names(f, set())

    def add_value(module_name, name, value):
        key = f"global {module_name}.{name}"
        if key in out or not config.track_globals:
            return
        if isinstance(value, Ref):
            # A wrapped value (wrap_atom, or an op's result) counts by its content id: not hashed again.
            out[key] = (key, "variable", "", f"{name} = <Ref with content id {value.cid}>", value.cid)
            return
        try:
            content = _core.content_id(value)
            text = f"{name} = {_short_repr(value)}"
        except (TypeError, ValueError) as e:
            if not config.skip_unhashable_globals:
                raise RuntimeError(
                    f"op {op.name} reads the global {module_name}.{name}, whose value mandala cannot hash "
                    f"({e}); wrap it (wrap_atom) or pass skip_unhashable_globals=True"
                ) from None
            # Not storable: counted by its type only (a change of its value is invisible).
            text = f"{name} = <a value of type {type(value).__qualname__}, not tracked by content>"
            content = _hash("unhashable", type(value).__qualname__)
        out[key] = (key, "variable", "", text, content)

    def reach(value, name, module_name, names):
        if isinstance(value, Op):
            add_function(value.f, f"op {value.name}")
        elif isinstance(value, types.ModuleType):
            if config.owns(value.__name__):
                for attr in names:
                    if attr in vars(value) and attr != name:
                        reach(vars(value)[attr], attr, value.__name__, ())
        elif isinstance(value, type):
            add_class(value)
        elif _function_of(value) is not None:
            add_function(_function_of(value), bound_to=name)
        elif callable(value):
            pass  # builtins and other callable objects (library code)
        elif config.owns(module_name):
            add_value(module_name, name, value)

    def _follow_names(f, _unused):
        names = _code_names(f.__code__, set())
        module_name = getattr(f, "__module__", None)
        g = getattr(f, "__globals__", {})
        for n in sorted(names):
            if n in g:
                reach(g[n], n, module_name, names)
        for cell_name, cell in zip(f.__code__.co_freevars, f.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                continue
            if isinstance(value, (Op, type)) or _function_of(value) is not None:
                reach(value, cell_name, module_name, names)

    seen.add(id(op.f))
    while work:
        f, name = work.pop()
        code = normalized_source(f)
        out[name] = (name, "function", _source_file(f), code, _hash("function", code))
        _follow_names(f, set())
    return sorted(out.values())


def _short_repr(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

