"""W9: an op call with a large numpy argument, the array hashed in place and held (the package's
way) against the copying path (the array encoded into its bytes first, then hashed: what the
package did before; `mandala._core._hold_arrays(False)` selects it), in the same run.

Each measurement is a fresh interpreter run under `/usr/bin/time -v` (peak RSS, wall time): it
makes a float64 array of MB megabytes, opens a file store and calls `length(x) = len(x)` on it:

  new        the first call (its input is stored)
  memoized   the same call again in a new process (found in the store by its ids)
  array      the array alone, no call (the peak RSS every run starts from)

Usage: large_array.py --package DIR [--mb 200] [--json FILE]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap

PYTHON = "/usr/bin/python3"

CHILD = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    from mandala import _core
    from mandala.imports import Storage, op
    phase, path, mb, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    _core._hold_arrays(hold)
    @op(output_names=["n"])
    def length(x):
        return len(x)
    x = np.random.default_rng(0).random(mb * 1_000_000 // 8)
    out = {}
    if phase != "array":
        storage = Storage(path)
        t = time.perf_counter()
        with storage:
            length(x)
        out["call_s"] = time.perf_counter() - t
        out["executed"] = storage.counters()["executed"]
    print(json.dumps(out))
    """
)


def run(phase, path, mb, hold, package):
    env = dict(os.environ, PYTHONPATH=package, PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run(["/usr/bin/time", "-v", PYTHON, "-c", CHILD, phase, path, str(mb), "1" if hold else "0"],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"large_array.py: a child failed ({phase}):\n{r.stderr}")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["peak_rss_mb"] = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
    seconds = 0.0
    for part in wall.split(":"):
        seconds = seconds * 60 + float(part)
    out["wall_s"] = seconds
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", required=True, help="the folder holding this package (build/<preset>/python)")
    parser.add_argument("--mb", type=int, default=200, help="the array's size in MB (default 200)")
    parser.add_argument("--json")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mandala-arraybench.")
    results = {}
    for hold in (False, True):
        way = "held" if hold else "copying"
        path = os.path.join(work, f"{way}.db")
        results[way] = {
            "array": run("array", path, args.mb, hold, args.package),
            "new": run("new", path, args.mb, hold, args.package),
            "memoized": run("memoized", path, args.mb, hold, args.package),
        }
        assert results[way]["new"]["executed"] == 1 and results[way]["memoized"]["executed"] == 0, results[way]
    subprocess.run(["rm", "-rf", work])

    print(f"W9: length(x) on a {args.mb} MB float64 array (a fresh process each; peak RSS by /usr/bin/time -v)")
    print(f"{'':18}{'call s':>9}{'wall s':>9}{'peak RSS MB':>13}{'over array MB':>15}")
    for way in ("copying", "held"):
        base = results[way]["array"]["peak_rss_mb"]
        for phase in ("array", "new", "memoized"):
            r = results[way][phase]
            call = f"{r['call_s']:.3f}" if "call_s" in r else "-"
            print(f"{way + ' ' + phase:<18}{call:>9}{r['wall_s']:>9.2f}{r['peak_rss_mb']:>13.0f}"
                  f"{r['peak_rss_mb'] - base:>15.0f}")
    c, h = results["copying"]["memoized"], results["held"]["memoized"]
    print(f"memoized call: {c['call_s'] / h['call_s']:.1f}x faster held; peak RSS over the array "
          f"{c['peak_rss_mb'] - results['copying']['array']['peak_rss_mb']:.0f} MB copying, "
          f"{h['peak_rss_mb'] - results['held']['array']['peak_rss_mb']:.0f} MB held")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mb": args.mb, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
