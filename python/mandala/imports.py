"""The public names: `from mandala.imports import *`."""

from .cf import Call, ComputationFrame
from .model import Ignore, NewArgDefault, Op, Ref, ValuePointer, noop, op
from .storage import Storage

__all__ = ["op", "Op", "Ref", "Storage", "Ignore", "NewArgDefault", "ValuePointer", "noop", "ComputationFrame", "Call"]
