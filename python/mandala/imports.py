"""The public names: `from mandala.imports import *`."""

from .model import Op, Ref, op
from .storage import Storage

__all__ = ["op", "Op", "Ref", "Storage"]
