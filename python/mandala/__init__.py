"""mandala: persistent, reusable, queryable computations (Python over the C++ engine).

    from mandala.imports import *

    @op
    def inc(x):
        return x + 1

    storage = Storage("my.db")
    with storage:
        y = inc(1)          # runs once; a Ref (y.hid, y.cid, y.obj)
    storage.unwrap(y)       # 2
"""

from . import _core
from ._values import PickleNotAllowedError, Tagged

__version__ = "0.1.0"
content_id = _core.content_id
