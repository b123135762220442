"""Preview cost against the bare program run, and the CPU of one program run (run by hand: `make bench`).

For each stack: the same program under the bare offline mocks (no validation, rendering,
schema check or forecast) against the full `python -m rollout preview`. Both cold (a new
process each time, as an operator runs it) and warm (in one process). Target: preview at
most 1.5x the bare run.

Then the CPU (user + sys of this process, all threads: a run has a thread of its own) of one
warm program run (preview/runner.run_program) per stack, and per registered resource: what
`make preview`, the rollout verbs and every in-process run of the tests pay. The median of
RUN_REPEATS runs, CPU not wall (machines here are shared). `--runs-only` prints this part alone.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from model.stack_file import available_stacks, stack_settings  # noqa: E402
from operations.stacks import load_stack_file as load_config  # noqa: E402
from policy import rules as policy_rules  # noqa: E402
from preview import manifests, plan  # noqa: E402
from preview.runner import run_program  # noqa: E402

REPEATS = 5
RUN_REPEATS = 15
BARE = "import sys; from preview.runner import run_program; r = run_program(sys.argv[1]); assert r.error is None"


def cold(argv: list[str]) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def warm_bare(stack: str) -> float:
    settings = stack_settings(stack)
    start = time.perf_counter()
    for _ in range(REPEATS):
        run_program(stack, settings=settings)
    return (time.perf_counter() - start) / REPEATS


def warm_preview(stack: str, out: Path) -> float:
    start = time.perf_counter()
    for _ in range(REPEATS):
        settings, config = load_config(stack, ROOT)
        run = run_program(stack, settings=settings)
        objects = manifests.collect(run)
        assert not manifests.validate_all(objects, config.cluster.kubernetes_version)
        policy_rules.check_run(run.resources, config.protected)
        plan.build(config, run)
        manifests.write(objects, out)
    return (time.perf_counter() - start) / REPEATS


def run_cpu(stack: str) -> tuple[int, float]:
    """Registered resources and the median CPU seconds of one warm run of the stack's program."""
    settings = stack_settings(stack)
    run = run_program(stack, settings=settings)  # imports and caches, as any process's first run fills them
    assert run.error is None, run.error
    samples = []
    for _ in range(RUN_REPEATS):
        start = time.process_time()
        run_program(stack, settings=settings)
        samples.append(time.process_time() - start)
    return len(run.resources), statistics.median(samples)


def runs_table() -> None:
    print(f"{'stack':<10}{'resources':>10}{'CPU per run':>13}{'per resource':>14}")
    total_cpu = total_resources = 0.0
    for stack in available_stacks(ROOT):
        resources, cpu = run_cpu(stack)
        total_cpu, total_resources = total_cpu + cpu, total_resources + resources
        print(f"{stack:<10}{resources:>10}{cpu * 1000:>11.0f}ms{cpu / resources * 1000:>12.1f}ms")
    print(f"{'all':<10}{total_resources:>10.0f}{'':>13}{total_cpu / total_resources * 1000:>12.1f}ms")


def main() -> None:
    if "--runs-only" in sys.argv[1:]:
        runs_table()
        return
    print(f"{'stack':<10}{'bare cold':>11}{'preview cold':>14}{'ratio':>7}{'bare warm':>11}{'preview warm':>14}{'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for stack in available_stacks(ROOT):
            bare_c = cold([sys.executable, "-c", BARE, stack])
            prev_c = cold([sys.executable, "-m", "rollout", "preview", stack, "--out", tmp])
            warm_preview(stack, Path(tmp))  # fill the schema caches once, as one process does
            bare_w = warm_bare(stack)
            prev_w = warm_preview(stack, Path(tmp))
            print(f"{stack:<10}{bare_c:>10.2f}s{prev_c:>13.2f}s{prev_c / bare_c:>7.2f}"
                  f"{bare_w:>10.3f}s{prev_w:>13.3f}s{prev_w / bare_w:>7.2f}")
    print()
    runs_table()


if __name__ == "__main__":
    main()
