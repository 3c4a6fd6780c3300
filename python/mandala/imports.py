"""The public names: `from mandala.imports import *`."""

from .cf import Call, ComputationFrame
from .model import DictRef, Ignore, ListRef, NewArgDefault, Op, Ref, ValuePointer, noop, op, track, wrap_atom
from .storage import Storage
from .tps import MDict, MList

__all__ = [
    "op",
    "Op",
    "Ref",
    "ListRef",
    "DictRef",
    "Storage",
    "Ignore",
    "NewArgDefault",
    "ValuePointer",
    "noop",
    "track",
    "wrap_atom",
    "MList",
    "MDict",
    "ComputationFrame",
    "Call",
]
