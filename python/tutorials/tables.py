"""Tables of the tutorials in a form two implementations can be compared by: rows of
{column: cell}, sorted, with calls as their op's name, numbers rounded, arrays by shape and
objects by type. Used by the tutorial scripts' --json option (python/tests/test_tutorials.py)."""

import json
import math
import sys


def _cell(value):
    if value is None:
        return None
    kind = type(value).__name__
    if kind == "Call":
        op = value.op
        return "call " + (op if isinstance(op, str) else op.name)
    if kind in ("CallCollection", "ValueCollection") or isinstance(value, (list, tuple, set)):
        items = getattr(value, "elts", None) or getattr(value, "values", None)
        if items is None or callable(items):
            items = list(value)
        return sorted((_cell(v) for v in items), key=json.dumps)
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float)) or kind.startswith(("int", "float")):
        return round(float(value), 6)
    if isinstance(value, str):
        return value
    if hasattr(value, "shape"):
        return f"array{tuple(value.shape)}"
    return kind


def normalized(df):
    """The rows of a DataFrame as sorted lists of {column: cell}."""
    rows = []
    for _, row in df.iterrows():
        rows.append({str(c): _cell(row[c]) for c in df.columns})
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


class Tables:
    """Collects named tables; written as JSON when the script got --json FILE."""

    def __init__(self):
        self.tables = {}
        self.path = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None

    def add(self, name, df):
        self.tables[name] = {"columns": [str(c) for c in df.columns], "rows": normalized(df)}
        if self.path is None:
            print(f"--- {name}")
            print(df.to_string(max_colwidth=40))

    def write(self):
        if self.path is not None:
            with open(self.path, "w") as f:
                json.dump(self.tables, f, indent=1, sort_keys=True)
