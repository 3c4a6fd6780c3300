"""The original's first tutorial ("01_hello") as a script: memoization, composition, frames,
and a change of code that reaches a helper function. Run with the package on PYTHONPATH;
`--json FILE` writes the tables (tables.py) instead of printing them."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import Tables  # noqa: E402

from mandala.imports import *  # noqa: E402,F403

tables = Tables()
storage = Storage(deps_path="__main__")  # noqa: F405


@op  # noqa: F405
def inc(x):
    print("Hello from inc!")
    return x + 1


with storage:
    a = inc(1)
    b = inc(1)  # reused, not executed


@op  # noqa: F405
def add(x, y):
    print("Hello from add!")
    return x + y


with storage:
    for i in range(5):
        j = inc(i)
        if i % 2 == 0:
            k = add(i, j)

cf = storage.cf(inc)
tables.add("inc", cf.df())
cf = cf.expand_all()
tables.add("inc_expanded", cf.df())


# A new version of `add` that calls a helper: the change is seen and `add` runs again.
@track  # noqa: F405 (the original needs it; this package finds helpers by itself)
def square(num):
    return num**2


@op  # noqa: F405
def add(x, y):  # noqa: F811
    print("Hello from the new add!")
    return x + square(y)


def run_again():
    with storage:
        for i in range(5):
            j = inc(i)
            if i % 2 == 0:
                add(i, j)


if hasattr(storage, "_core"):
    run_again()  # this package: a changed op gets a new version by default
else:
    # the original asks whether the change is semantic: answer yes
    from unittest.mock import patch

    from mandala.utils import mock_input

    with patch("builtins.input", mock_input(["y"])):
        run_again()
tables.add("add_new_version", storage.cf(add).expand_back(recursive=True).df())
tables.write()
