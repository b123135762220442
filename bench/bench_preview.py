"""Preview cost against the bare program run (run by hand: `make bench`).

For each stack: the same program under the bare offline mocks (no validation, rendering,
schema check or forecast) against the full `python -m rollout preview`. Both cold (a new
process each time, as an operator runs it) and warm (in one process). Target: preview at
most 1.5x the bare run.
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


def main() -> None:
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


if __name__ == "__main__":
    main()
