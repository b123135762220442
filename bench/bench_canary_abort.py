"""How fast a bad canary is stopped, and how often a good one is stopped anyway (run by hand: `make bench`).

Three rules at a 1% error budget and 50 probe requests per second:
  old      the old judge (bench/wilson_judge.py, kept for comparison): a one-sided 99.9% Wilson bound after every answer,
           never on fewer than 5 bad answers
  new      model/judge.py: mixture SPRTs, anytime-valid (alpha 1% per error test per step)
  Flagger  a metric check per interval (60 s), rollback after `threshold` (5) failed checks; a check fails
           when the interval's canary error rate is above the budget

1. Requests to abort a canary failing 50%, 10% or 2% at weights 5, 25, 50%: simulated (TRIALS runs,
   answer by answer, the verdict asked after each), and the exact median (dynamic programming over
   the judge's own decisions, bench-free of sampling noise).
2. False aborts per default run (steps 5, 25, 50, 100%, 60 s each, traffic at the weight, stable
   healthy) for a canary failing 0%, 0.5x and 1x the budget: exact, for all three.
3. Canaries nobody reaches, answer by answer: answers until the verdict when the traffic never
   reaches the canary (every answer from stable), and when every canary answer is a connection
   failure without a version header (a load balancer's 502); and how often a default-length step
   (3,000 answers) ends with fewer canary answers than a step needs ("canary not reached").
5. Correlated (keep-alive) traffic: a healthy canary at its weight, fed whole connections of a
   random length (geometric, mean L requests, each connection to one version) as bursts, over
   default runs; how often the share tests abort it with no design effect and with the design
   effect D = E[len²]/E[len] = 2L − 1 that the docs tell users to give (`--share-design-effect`).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.wilson_judge import Judge as OldJudge  # noqa: E402
from model.judge import (  # noqa: E402
    MIN_CANARY_ANSWERS,
    SHARE_ALPHA,
    abort_boundary,
    median_requests_to_abort,
    run_false_abort_probability,
)
from model.judge import Judge as NewJudge  # noqa: E402

RATE = 50.0  # probe requests per second, the `rollout canary` default
INTERVAL = 60.0
BUDGET = 0.01
STEPS = (5, 25, 50, 100)
SEED = 20261128
FLAGGER_INTERVAL, FLAGGER_THRESHOLD = 60.0, 5
JUDGES: dict[str, Callable[..., object]] = {"old": OldJudge, "new": NewJudge}


def requests_to_abort(make: Callable[..., object], fail_rate: float, weight: int, rng: random.Random,
                      limit: int = 200_000) -> int:
    judge = make("v2", weight, BUDGET, 0.5)
    for n in range(1, limit + 1):
        canary = rng.random() * 100 < weight
        ok = not (canary and rng.random() < fail_rate)
        judge.observe("v2" if canary else "v1", ok, 0.005)
        if judge.verdict():
            return n
    return limit


def boundary(make: Callable[..., object], horizon: int) -> list[int]:
    """Fewest canary errors among n canary answers on which the judge aborts (weight 100)."""
    if hasattr(make("v2", 100, BUDGET, 0.5), "observe_counts"):
        def rejects(n: int, k: int) -> bool:
            judge = make("v2", 100, BUDGET, 0.5)
            judge.observe_counts("v2", n, k, 0)
            return judge.verdict() is not None
        return abort_boundary(rejects, horizon)
    first = [horizon + 1] * (horizon + 1)  # the old judge: answer by answer, errors first, a pass per count
    for k in range(horizon + 1):
        judge = make("v2", 100, BUDGET, 0.5)
        for n in range(1, horizon + 1):
            judge.observe("v2", n > k, 0.005)
            if n >= k and first[n] > k and judge.verdict():
                first[n] = k
        if first[horizon] <= k:
            break
    return first


def binomial_above(m: int, p: float, threshold: float) -> float:
    """P(Bin(m, p) > threshold)."""
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0 if m > threshold else 0.0
    total = 0.0
    for k in range(m + 1):
        if k > threshold:
            total += math.exp(math.lgamma(m + 1) - math.lgamma(k + 1) - math.lgamma(m - k + 1)
                              + k * math.log(p) + (m - k) * math.log1p(-p))
    return total


def binomial_at_most(m: int, p: float, k: int) -> float:
    """P(Bin(m, p) ≤ k), summed from the low tail (no cancellation)."""
    if p >= 1:
        return 0.0 if k < m else 1.0
    return sum(math.exp(math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1)
                        + j * math.log(p) + (m - j) * math.log1p(-p)) for j in range(k + 1))


def flagger_check_fails(fail_rate: float, weight: int) -> float:
    answers = round(RATE * FLAGGER_INTERVAL * weight / 100)
    return binomial_above(answers, fail_rate, BUDGET * answers)


def flagger_abort_probability(fail_rate: float) -> float:
    """A default run under Flagger: a failed check repeats the step, a passed one moves on; rollback at
    the `threshold`-th failed check."""
    alive = {0: 1.0}  # failed checks so far → probability, at the current step
    aborted = 0.0
    for weight in STEPS:
        q = flagger_check_fails(fail_rate, weight)
        moving_on: dict[int, float] = {}
        for failed, probability in alive.items():
            # at this step: j more failures then a pass, or failures up to the threshold
            for more in range(FLAGGER_THRESHOLD - failed):
                moving_on[failed + more] = moving_on.get(failed + more, 0.0) + probability * q**more * (1 - q)
            aborted += probability * q ** (FLAGGER_THRESHOLD - failed)
        alive = moving_on
    return aborted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="simulated runs per case (default 200)")
    args = parser.parse_args()
    flagger = FLAGGER_INTERVAL * FLAGGER_THRESHOLD
    canary_answers = [round(RATE * INTERVAL * w / 100) for w in STEPS]

    started = time.perf_counter()
    boundaries = {name: boundary(make, 6000) for name, make in JUDGES.items()}
    print(f"(exact decision boundaries in {time.perf_counter() - started:.1f}s)")

    print(f"\n1. Requests to abort: probe rate {RATE:g}/s, error budget {BUDGET:.0%}, {args.trials} simulated runs "
          f"each (median, p90) and the exact median; Flagger: {flagger:.0f} s when every check fails")
    print(f"{'fails':>6}{'weight':>7} | {'old median':>10}{'p90':>8}{'exact':>7}{'s':>7} | {'new median':>10}"
          f"{'p90':>8}{'exact':>7}{'s':>7} | {'new/old':>7} | {'Flagger':>8}{'check fails':>12}")
    results = {}
    for name, make in JUDGES.items():
        rng = random.Random(SEED)  # the same sequence for both judges (as docs/verification.md's earlier table)
        for fail_rate in (0.5, 0.1, 0.02):
            for weight in (5, 25, 50):
                counts = [requests_to_abort(make, fail_rate, weight, rng) for _ in range(args.trials)]
                results[name, fail_rate, weight] = (statistics.median(counts),
                                                    statistics.quantiles(counts, n=10)[-1],
                                                    median_requests_to_abort(boundaries[name], fail_rate, weight / 100))
    for fail_rate in (0.5, 0.1, 0.02):
        for weight in (5, 25, 50):
            old, new = results["old", fail_rate, weight], results["new", fail_rate, weight]
            print(f"{fail_rate:>6.0%}{weight:>6}% | {old[0]:>10.0f}{old[1]:>8.0f}{old[2] or 0:>7}{old[0] / RATE:>6.1f}s"
                  f" | {new[0]:>10.0f}{new[1]:>8.0f}{new[2] or 0:>7}{new[0] / RATE:>6.1f}s | "
                  f"{(new[2] or 0) / (old[2] or 1):>7.2f} | {flagger:>7.0f}s{flagger_check_fails(fail_rate, weight):>11.0%}")

    print(f"\n2. False aborts per default run (steps {', '.join(f'{w}%' for w in STEPS)}, {INTERVAL:g} s each at "
          f"{RATE:g}/s; canary answers per step {canary_answers}), exact")
    print(f"{'canary fails':>14} | {'old':>9} | {'new':>9} | {'Flagger':>9}")
    for fraction in (0.0, 0.5, 1.0):
        p = fraction * BUDGET
        row = [run_false_abort_probability(boundaries[name], p, canary_answers) for name in JUDGES]
        print(f"{f'{fraction:g}x budget':>14} | {row[0]:>9.4%} | {row[1]:>9.4%} | {flagger_abort_probability(p):>9.4%}")

    unreached(args.trials)

    print("\n4. Cost per answer (observe + verdict), 100,000 answers at 25%")
    for name, make in JUDGES.items():
        judge = make("v2", 25, BUDGET, 0.5)
        rng = random.Random(1)
        versions = ["v2" if rng.random() < 0.25 else "v1" for _ in range(100_000)]
        started = time.perf_counter()
        for version in versions:
            judge.observe(version, True, 0.005)
            judge.verdict()
        print(f"  {name}: {(time.perf_counter() - started) * 10:.1f} µs")


    correlated(args.trials)


def answers_until_verdict(make: Callable[..., object], weight: int, rng: random.Random | None,
                          limit: int = 100_000) -> int:
    """Answers until a verdict: every answer from stable (rng None), or each canary answer a
    connection failure without a version header (probability `weight`, from rng)."""
    judge = make("v2", weight, BUDGET, 0.5)
    for n in range(1, limit + 1):
        if rng is not None and rng.random() * 100 < weight:
            judge.observe(None, False, 0.005)
        else:
            judge.observe("v1", True, 0.005)
        if judge.verdict():
            return n
    return limit


def unreached(trials: int) -> None:
    print(f"\n3. Canaries nobody reaches: answers until the verdict (from the step's first answer; 'never' past "
          f"100,000), {trials} runs for connection failures (median)")
    print(f"{'weight':>7} | {'no traffic: old':>16}{'new':>7} | {'all canary answers fail: old':>29}{'new':>7} | "
          f"{'P(< ' + str(MIN_CANARY_ANSWERS) + ' canary answers in 3,000)':>33}")
    for weight in (1, 2, 4, 5, 25, 50, 100):
        row = []
        for make in JUDGES.values():
            row.append(answers_until_verdict(make, weight, None))
        for make in JUDGES.values():
            rng = random.Random(SEED + weight)
            row.append(statistics.median(answers_until_verdict(make, weight, rng) for _ in range(trials)))
        short = binomial_at_most(3000, weight / 100, MIN_CANARY_ANSWERS - 1)
        shown = ["never" if value >= 100_000 else f"{value:.0f}" for value in row]
        print(f"{weight:>6}% | {shown[0]:>16}{shown[1]:>7} | {shown[2]:>29}{shown[3]:>7} | {short:>33.2g}")


def correlated_run_aborted(rng: random.Random, mean_length: float, effect: float) -> bool:
    """A default run of a healthy canary whose traffic comes in keep-alive connections: each carries
    a geometric number of requests (mean `mean_length`) to one version, chosen at the weight, and
    reaches the judge as one burst (the worst case for the share tests: a whole connection at one look)."""
    for weight in STEPS:
        judge = NewJudge("v2", weight, BUDGET, 0.5, share_design_effect=effect)
        answered = 0
        while answered < RATE * INTERVAL:
            length = 1 + int(math.log(1 - rng.random()) / math.log(1 - 1 / mean_length)) if mean_length > 1 else 1
            version = "v2" if rng.random() * 100 < weight else "v1"
            judge.observe_counts(version, length, 0, 0)
            answered += length
            if judge.verdict():
                return True
    return False


def correlated(trials: int) -> None:
    runs = 5 * trials
    bound = 2 * SHARE_ALPHA * len(STEPS)
    print(f"\n5. A healthy canary fed keep-alive traffic (geometric connection lengths, whole connections at a "
          f"look), {runs} default runs each: share-test aborts per run; the share tests' bound is {bound:.1%} "
          f"per run (2 x {SHARE_ALPHA:g} per step)")
    print(f"{'mean requests per connection':>29} | {'D = 1':>8} | {'D = 2L - 1':>11} | {'D':>5}")
    for mean_length in (3, 10, 30):
        effect = 2 * mean_length - 1
        rng = random.Random(SEED + mean_length)
        naive = sum(correlated_run_aborted(rng, mean_length, 1.0) for _ in range(runs)) / runs
        designed = sum(correlated_run_aborted(rng, mean_length, effect) for _ in range(runs)) / runs
        print(f"{mean_length:>29} | {naive:>8.2%} | {designed:>11.2%} | {effect:>5}")


if __name__ == "__main__":
    main()
