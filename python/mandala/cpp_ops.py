"""Ops written in C++ and exported to Python by an extension module (mandala/python.hpp, built
with the CMake function mandala_add_python_ops): called like any @op, memoized in the storage of
the innermost `with storage:` block, with the C++ op's own identity, so C++ programs and Python
share their calls."""

import inspect

from . import _core
from .model import Ref, ValuePointer, _unwrap, current_storage


class CppOp:
    """A C++ op callable from Python: `name`, `version`, `inputs` (its parameters in order) and
    `outputs`. Arguments are Python values (encoded as for any op; they must decode as the C++
    parameter's type) or Refs. Returns a Ref (a tuple of Refs for several outputs, None for
    none) inside `with storage:`, plain values outside."""

    def __init__(self, name, version, inputs, outputs, call, module):
        self.name = name
        self.version = version
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self._call = call
        self.__module__ = module
        self.__name__ = self.__qualname__ = name
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in self.inputs])

    def _arguments(self, args, kwargs):
        if len(args) > len(self.inputs):
            raise TypeError(f"{self.name}() takes at most {len(self.inputs)} arguments ({len(args)} given)")
        given = dict(zip(self.inputs, args))
        for key, value in kwargs.items():
            if key not in self.inputs:
                raise TypeError(f"{self.name}() got an unexpected keyword argument {key!r}")
            if key in given:
                raise TypeError(f"{self.name}() got multiple values for argument {key!r}")
            given[key] = value
        # The parameters given must be a leading run: the C++ op fills in the trailing defaults.
        count = len(given)
        missing = [p for p in self.inputs[:count] if p not in given]
        if missing:
            raise TypeError(f"{self.name}(): pass {missing[0]!r} too (a C++ op takes defaults only for its last "
                            f"parameters)")
        out = []
        for p in self.inputs[:count]:
            value = given[p]
            if isinstance(value, ValuePointer):
                raise TypeError(f"{self.name}(): ValuePointer arguments are not supported by C++ ops")
            out.append(value._ref if isinstance(value, Ref) else _core.encode(value))
        return out

    def __call__(self, *args, **kwargs):
        storage = current_storage()
        if storage is None or storage.mode == "noop":
            # A plain call: the C++ function runs on the values.
            plain = self._arguments([_unwrap(a) for a in args], {k: _unwrap(v) for k, v in kwargs.items()})
            values = [Ref(r)._load() for r in self._call(None, plain)]
            return None if not values else values[0] if len(values) == 1 else tuple(values)
        refs = [Ref(r) for r in self._call(storage._core, self._arguments(args, kwargs))]
        return None if not refs else refs[0] if len(refs) == 1 else tuple(refs)

    def __repr__(self):
        return f"CppOp({self.name}, version {self.version}, from {self.__module__})"
