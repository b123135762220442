"""How fast a bad canary is stopped (run by hand: `make bench`).

Simulates probe traffic against a canary that fails 50%, 10% or 2% of its requests, with a
1% error budget, and counts the requests and seconds until `rollout canary`'s sequential
judge aborts. Compared with the rule Flagger uses: a failed metric check per interval,
rollback after `threshold` failed checks (defaults: 60 s interval, threshold 5), so at least
interval x threshold whatever the failure rate.
"""

from __future__ import annotations

import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rollout.canary_analysis import Judge  # noqa: E402

RATE = 50.0  # probe requests per second, the `rollout canary` default
TRIALS = 200
FLAGGER_INTERVAL, FLAGGER_THRESHOLD = 60.0, 5


def requests_to_abort(fail_rate: float, weight: int, rng: random.Random, limit: int = 200_000) -> int:
    judge = Judge("v2", weight, max_error_rate=0.01, max_p99=0.5)
    for n in range(1, limit + 1):
        canary = rng.random() * 100 < weight
        ok = not (canary and rng.random() < fail_rate)
        judge.observe("v2" if canary else "v1", ok, 0.005)
        if judge.verdict():
            return n
    return limit


def main() -> None:
    rng = random.Random(20261128)
    flagger = FLAGGER_INTERVAL * FLAGGER_THRESHOLD
    print(f"probe rate {RATE:g} req/s, error budget 1%, {TRIALS} trials each; Flagger: {flagger:.0f} s")
    print(f"{'canary fails':>12}{'weight':>8}{'requests (median)':>19}{'p90':>8}{'seconds (median)':>18}{'vs Flagger':>12}")
    for fail_rate in (0.5, 0.1, 0.02):
        for weight in (5, 25, 50):
            counts = [requests_to_abort(fail_rate, weight, rng) for _ in range(TRIALS)]
            median = statistics.median(counts)
            p90 = statistics.quantiles(counts, n=10)[-1]
            seconds = median / RATE
            print(f"{fail_rate:>11.0%} {weight:>6}%{median:>19.0f}{p90:>8.0f}{seconds:>17.1f}s{flagger / seconds:>11.0f}x")


if __name__ == "__main__":
    main()
