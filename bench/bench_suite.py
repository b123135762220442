"""The test suite's time at several commits, measured back to back on this machine (run by hand).

    venv/bin/python bench/bench_suite.py                   # HEAD and the commits in COMMITS
    venv/bin/python bench/bench_suite.py HEAD 0b0da16 -n 3 # these, three times each

Each commit is checked out in a temporary worktree and its own pytest configuration is run with this
venv (`python -m pytest -p no:cacheprovider`, plus the commit's addopts: HEAD runs on two workers),
as `make test` runs it after installs. Reported per commit: tests collected, the median wall time and
the median CPU time of pytest and everything it started (user + sys). The 2-core build machines are
shared: wall times vary by 10-20% from run to run, CPU times less; compare commits measured in one
invocation, not numbers from different days.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# 0b0da16: the suite when the layout issue (#13) was filed (427 tests; its README said "about 20 s").
# 5677d1f: the last commit before that work began, after the fail-safe canary's tests.
COMMITS = ("HEAD", "5677d1f", "0b0da16")


def run_suite(tree: Path) -> tuple[int, float, float, bool]:
    """(tests, wall seconds, CPU seconds of the run and its children, passed) of one pytest run in tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"], cwd=tree,
                            capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = re.findall(r"(\d+) (passed|failed|error)", result.stdout)
    tests = sum(int(n) for n, _ in counts)
    return tests, wall, cpu, result.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("commits", nargs="*", default=list(COMMITS), help="commits to measure (default: %(default)s)")
    parser.add_argument("-n", "--runs", type=int, default=2, help="runs per commit; the median is shown")
    args = parser.parse_args()
    print(f"{'commit':<9} {'tests':>6} {'wall s':>7} {'CPU s':>7}  runs")
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        for commit in args.commits:
            tree = Path(scratch) / commit
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), commit],
                           check=True)
            try:
                modules = ROOT / "tests" / "crd" / "node_modules"  # `make test` installs them once (npm ci)
                if (tree / "tests" / "crd").is_dir() and modules.is_dir():
                    (tree / "tests" / "crd" / "node_modules").symlink_to(modules)
                runs = [run_suite(tree) for _ in range(args.runs)]
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
            tests = max(r[0] for r in runs)
            walls = [r[1] for r in runs]
            cpus = [r[2] for r in runs]
            failed = "" if all(r[3] for r in runs) else "  (some tests failed)"
            print(f"{commit:<9} {tests:>6} {statistics.median(walls):>7.1f} {statistics.median(cpus):>7.1f}  "
                  f"{', '.join(f'{w:.1f}' for w in walls)}{failed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
