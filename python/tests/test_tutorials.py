"""The original's tutorials as scripts (python/tutorials) give the same tables here as under
the original (their expected/*.json were written by running the same scripts under it:
python/tutorials/README.md)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"


@pytest.mark.parametrize("script", ["hello", "ml", "cf_blog"])
def test_a_tutorial_gives_the_originals_tables(script, tmp_path):
    out = tmp_path / f"{script}.json"
    r = subprocess.run([sys.executable, str(TUTORIALS / f"{script}.py"), "--json", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    ours = json.loads(out.read_text())
    expected = json.loads((TUTORIALS / "expected" / f"{script}.json").read_text())
    assert sorted(ours) == sorted(expected)
    for name in expected:
        # Columns come in a topological order; among nodes with no order between them the
        # original's choice follows Python's string hashing, which changes from run to run.
        assert sorted(ours[name]["columns"]) == sorted(expected[name]["columns"]), name
        assert ours[name]["rows"] == expected[name]["rows"], name
