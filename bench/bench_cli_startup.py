"""The CPU `python -m rollout <verb>` spends before it does anything (run by hand: `make bench`).

Every command the operator types, and every `python -m rollout` the tests start (drivers, pipeline jobs, help
and bad-input checks), pays the start-up: the interpreter, then the modules rollout.cli imports. Each row is a
new process, measured as CPU (user + sys of the child, from getrusage), not wall time: the build machine is
shared. Median and fastest of REPEATS runs after one warm-up run; compiled modules are cached in a temporary
directory (as an installed checkout has them), whatever PYTHONDONTWRITEBYTECODE says.

Rows: the bare interpreter (the floor), help (no stack file read), a forecast (arithmetic only), and verbs that
read a stack file and stop at a bad argument (exit 2) before any Pulumi workspace is opened: those validate the
stack file, so they pay for yaml and the pydantic models, and nothing else.

`--before DIR` measures another checkout (an earlier commit) beside this one, the runs of the two alternating so
that a busy machine weighs on both alike: the before and after columns of docs/verification.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 15
COMMANDS: list[tuple[str, list[str], int]] = [  # (label, arguments after `python`, expected exit status)
    ("python -c pass (the floor)", ["-c", "pass"], 0),
    ("rollout --help", ["-m", "rollout", "--help"], 0),
    ("rollout canary --help", ["-m", "rollout", "canary", "--help"], 0),
    ("rollout forecast --replicas 5", ["-m", "rollout", "forecast", "--replicas", "5"], 0),
    ("rollout undo dev --release nope", ["-m", "rollout", "undo", "dev", "--release", "nope"], 2),
    ("rollout canary dev --release app --tag 'a b'", ["-m", "rollout", "canary", "dev", "--release", "app",
                                                      "--tag", "a b"], 2),
]


def child_cpu(argv: list[str], cwd: Path, env: dict[str, str], expected: int) -> float:
    """User + sys seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expected:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}, expected {expected}\n{done.stderr.decode()}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, metavar="DIR", help="an earlier checkout to measure beside this one")
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"runs per row (default {REPEATS})")
    args = parser.parse_args()
    checkouts = {"before": args.before, "after": ROOT} if args.before else {"this checkout": ROOT}
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        print(f"CPU (user+sys) of a new process, median (fastest) of {args.repeats} runs: "
              + ", ".join(f"{name} {path}" for name, path in checkouts.items()))
        print(f"{'command':<48}" + "".join(f"{name:>20}" for name in checkouts))
        for label, words, expected in COMMANDS:
            argv = [sys.executable, *words]
            runs: dict[str, list[float]] = {name: [] for name in checkouts}
            for path in checkouts.values():
                child_cpu(argv, path, env, expected)  # warm-up: compiles into the cache
            for _ in range(args.repeats):
                for name, path in checkouts.items():
                    runs[name].append(child_cpu(argv, path, env, expected))
            print(f"{label:<48}" + "".join(f"{statistics.median(r):>11.3f}s ({min(r):.3f}s)" for r in runs.values()))


if __name__ == "__main__":
    main()
