"""W8: the Python package against the original mandala and joblib.Memory, in one run.

Each workload runs in a fresh interpreter per implementation (the original and this package are
both imported as `mandala`), on the same calls: a trivial op `inc(x) = x + 1` for x < N.

  new        N new calls into a new store (file-backed: the original's SQLite file, our store
             file, joblib's cache directory), persisted at the end (timed)
  memo       the same N calls again in the same process
  reopen     a new process opens the store and makes the N calls again (open included)
  frame      (this package only) storage.cf(inc).expand_all().df() over a store of F calls
             of a two-op pipeline, as a pandas DataFrame

Usage: bench.py [--short] [--original DIR] [--json FILE]
  --original DIR: a checkout of the original mandala (default $MANDALA_ORIGINAL); it needs
  pandas and joblib, and a stand-in `pyarrow` package, which this script provides.
Run through `bench/run --python [--short]`, which builds the package first.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time

PYTHON = "/usr/bin/python3"

# One workload in a child interpreter: prints a JSON object of timings (seconds). This package
# and the original run the same code (the same API), each with its own PYTHONPATH.
CHILD = {
    "ours": textwrap.dedent(
        """
        import json, sys, time
        phase, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
        t0 = time.perf_counter()
        from mandala.imports import Storage, op
        @op
        def inc(x):
            return x + 1
        out = {}
        storage = Storage(db_path=path)
        if phase == "new":
            t = time.perf_counter()
            with storage:
                for i in range(n):
                    inc(i)
            out["new"] = time.perf_counter() - t
            t = time.perf_counter()
            with storage:
                for i in range(n):
                    inc(i)
            out["memo"] = time.perf_counter() - t
        else:
            with storage:
                for i in range(n):
                    inc(i)
            out["reopen"] = time.perf_counter() - t0
        print(json.dumps(out))
        """
    ),
    "joblib": textwrap.dedent(
        """
        import json, sys, time
        phase, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
        t0 = time.perf_counter()
        import joblib
        memory = joblib.Memory(path, verbose=0)
        @memory.cache
        def inc(x):
            return x + 1
        out = {}
        if phase == "new":
            t = time.perf_counter()
            for i in range(n):
                inc(i)
            out["new"] = time.perf_counter() - t
            t = time.perf_counter()
            for i in range(n):
                inc(i)
            out["memo"] = time.perf_counter() - t
        else:
            for i in range(n):
                inc(i)
            out["reopen"] = time.perf_counter() - t0
        print(json.dumps(out))
        """
    ),
}

FRAME = textwrap.dedent(
    """
    import json, sys, time
    path, calls = sys.argv[1], int(sys.argv[2])
    import pandas  # imported before the clock starts: a one-time cost of the environment, not of the frame
    from mandala.imports import Storage, op
    @op
    def inc(x):
        return x + 1
    @op
    def add(x, y):
        return x + y
    storage = Storage(path)
    t = time.perf_counter()
    with storage:
        for i in range(calls // 2):
            add(inc(i), -1)
    build = time.perf_counter() - t
    storage = Storage(path)  # reopened: the frame reads the store
    t = time.perf_counter()
    df = storage.cf(inc).expand_all().df()
    frame = time.perf_counter() - t
    assert len(df) == calls // 2, len(df)
    print(json.dumps({"build": build, "frame": frame, "rows": len(df), "columns": list(map(str, df.columns))}))
    """
)


def run_child(code, args, pythonpath):
    env = dict(os.environ, PYTHONPATH=pythonpath, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([PYTHON, "-c", code, *map(str, args)], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bench.py: a child failed ({args}):\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="1,000 calls, a frame of 10,000")
    parser.add_argument("--original", default=os.environ.get("MANDALA_ORIGINAL"))
    parser.add_argument("--package", required=True, help="the folder holding this package (build/<preset>/python)")
    parser.add_argument("--json")
    args = parser.parse_args()
    if not args.original or not os.path.isfile(os.path.join(args.original, "mandala", "imports.py")):
        sys.exit("bench.py: give the original mandala's checkout with --original DIR or MANDALA_ORIGINAL "
                 "(a clone of github.com/amakelov/mandala)")
    n = 1000 if args.short else 10000
    frame_calls = 10000 if args.short else 100000

    work = tempfile.mkdtemp(prefix="mandala-pybench.")
    stub = os.path.join(work, "stub")
    os.makedirs(os.path.join(stub, "pyarrow"))
    with open(os.path.join(stub, "pyarrow", "__init__.py"), "w") as f:
        f.write('__version__ = "0.0.1"\n')  # the original imports pyarrow and never uses it
    paths = {
        "ours": args.package,
        "original": os.pathsep.join([args.original, stub]),
        "joblib": "",
    }
    stores = {
        "ours": os.path.join(work, "ours.db"),
        "original": os.path.join(work, "original.db"),
        "joblib": os.path.join(work, "joblib"),
    }
    results = {}
    for impl in ("ours", "joblib", "original"):
        code = CHILD["joblib" if impl == "joblib" else "ours"]
        first = run_child(code, ["new", stores[impl], n], paths[impl])
        second = run_child(code, ["reopen", stores[impl], n], paths[impl])
        results[impl] = {k: v / n * 1e6 for k, v in {**first, **second}.items()}  # us per call
    frame = run_child(FRAME, [os.path.join(work, "frame.db"), frame_calls], paths["ours"])

    print(f"W8: Python, {n} calls of inc(x) = x + 1 (us per call; new store in a file, reopened)")
    print(f"{'':22}{'this package':>14}{'joblib.Memory':>15}{'original':>12}{'vs joblib':>11}{'vs original':>13}")
    for phase, label in (("new", "new call"), ("memo", "memoized, same process"), ("reopen", "memoized, reopened")):
        ours, jl, orig = results["ours"][phase], results["joblib"][phase], results["original"][phase]
        print(f"{label:22}{ours:>14.1f}{jl:>15.1f}{orig:>12.1f}{jl / ours:>10.1f}x{orig / ours:>12.1f}x")
    print(f"frame: {frame_calls} calls built in {frame['build']:.2f} s; "
          f"storage.cf(inc).expand_all().df() -> {frame['rows']} rows in {frame['frame']:.3f} s")
    targets = [
        ("at least 100x faster per new call than the original",
         results["original"]["new"] / results["ours"]["new"] >= 100),
        ("at least 100x faster per memoized call than the original",
         results["original"]["memo"] / results["ours"]["memo"] >= 100),
        ("at least 5x faster per new call than joblib.Memory", results["joblib"]["new"] / results["ours"]["new"] >= 5),
        ("at least 5x faster per memoized call than joblib.Memory",
         results["joblib"]["memo"] / results["ours"]["memo"] >= 5),
        (f"the frame of {frame_calls} calls to a DataFrame in under 1 s", frame["frame"] < 1.0),
    ]
    for text, met in targets:
        print(f"  target: {text}: {'met' if met else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"calls": n, "us_per_call": results, "frame": frame,
                       "targets": {t: m for t, m in targets}}, f, indent=2)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
