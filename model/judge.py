"""Judging a canary step with tests that stay valid when the evidence is checked after every answer.

Pure: no I/O, no Pulumi import, no clock. The loop feeds answers (`observe`, one probe answer) or
counts (`observe_counts`, increments read from Prometheus) and asks `verdict()` whenever it likes,
after every answer or after every scrape; `verdict()` is None while the canary may still pass.
At the step's end it asks `conclude()`, which also fails a step that heard too few canary answers.

Why not a confidence interval per answer
    A fixed-confidence interval looked at after every answer does not keep its confidence: the
    chance that it ever crosses grows with the number of looks. Today's rule (a 99.9% Wilson bound
    after each answer) aborts a canary that sits exactly at its error budget in about 12% of default
    runs, and one at half its budget in 0.37%.

The statistic: a mixture sequential probability ratio test (mSPRT) per question
    Each question is a one-sided test on Bernoulli counts (n trials, k events) against the edge p0
    of its null hypothesis. With alternatives p_j on the far side of p0 and prior weights w_j
    (summing to 1), the evidence after n trials is the mixture likelihood ratio

        Λ_n = Σ_j w_j · (p_j / p0)^k · ((1 − p_j) / (1 − p0))^(n − k)

    (Wald's SPRT is the one-component case; Johari et al., Operations Research 2022, and Lindon &
    Malek, NeurIPS 2022, for mixtures). Under any p on the null side of p0, every component, and so
    Λ_n, is a nonnegative supermartingale with Λ_0 = 1, and Ville's inequality gives

        P(Λ_n ≥ 1/α for some n, however often it is looked at) ≤ α.

    The test rejects the first time Λ_n ≥ 1/α; p_n = min(1, 1 / max_{m≤n} Λ_m) is an always-valid
    p-value (`Judge.evidence()`). Counts arriving in batches (a Prometheus scrape) are the same
    statistic looked at less often, so the same bound holds. The alternatives are given as odds
    ratios to p0 (so they stay inside (0, 1) whatever p0 is): 2× (weight 0.68: twice the budget is
    the slowest failure the benchmarks ask to catch quickly), 8× (0.1), 50× (0.1: a canary that
    fails outright), and 1.5×, 1.25×, 1.1× (0.05, 0.04, 0.03), so that any rate above about 1.05×
    the budget is caught in the end (with real traffic's volumes; a 60 s step of probes is far too
    short to tell 1.1% from 1%).

The questions, in the order a verdict reports them
    canary errors     H0: the canary's error rate ≤ max_error_rate              (α = alpha)
    all errors        H0: the error rate over all answers ≤ max_error_rate       (α = alpha)
                      (answers no track owns, connection failures and load balancer 5xx, count too)
    canary slow       H0: at most 1% of canary answers are slower than max_p99   (α = alpha)
                      (that is what "p99 at most the limit" means)
    share too low     H0: canary share ≥ the low edge of the band around the weight  (α = share_alpha)
    share too high    H0: canary share ≤ the high edge of the band               (α = share_alpha)
    The band: (max(weight/2 − 2, 0.4·weight), min(1.5·weight + 2, 100)) percent; (0, 0.5) at weight
    0 and (99.5, 100) at 100. Its low edge stays above 0 at every weight above 0, so "share too low"
    can always fail (with the old edge, weight/2 − 2 clipped at 0, a canary nobody reached at 1%, 2%
    or 4% could never be told apart). The share tests' alternatives put most weight (0.6) on share 0
    (traffic that never reaches the canary) and add a point at share 1 (all of it does). The error
    and latency tests never reject on fewer than MIN_EVIDENCE bad answers, the share tests on fewer
    than MIN_SHARE_REQUESTS answers since the settle phase ended: guards against a burst of
    correlated answers at a step's start; they only make rejection rarer, so the bounds hold.

The weight judged
    `weight` is the share the canary really gets once the step is live: in `replicas` mode the share
    of the ready pods (model/canary_math.py: 1 of 4 pods is 25% whatever weight was asked), else the
    weight. `requested_weight` is what the step asked for; verdicts say both when they differ.

Canaries nobody reaches
    Answer by answer, from the step's first, with every answer from stable: "share too low" stops the
    step after 1,808 answers at 1%, 902 at 2%, 450 at 4%, 359 at 5%, 66 at 25%, 28 at 50% (it used to
    never stop at 1-4% and take 1,467 at 5%). A canary at 1% whose every answer is a connection
    failure without a version header (a load balancer's 502) counts for no track: the overall error
    rate sits at the budget, but the share test stops it the same way. And whatever the share tests
    say, a step passes only with at least `min_canary_answers` (MIN_CANARY_ANSWERS) canary answers:
    `conclude()`, asked at the step's end, fails it as "canary not reached" with the numbers (it
    only adds aborts of canaries with almost no evidence: at the default run's 1% step, 3,000
    answers, a canary at its weight gets fewer than 5 with probability 3e-9).

Correlated (keep-alive) traffic
    The share tests count answers as independent trials. Probes are (a new connection each). Users'
    keep-alive clients are not: one connection carries a run of requests to one pod, so the canary's
    count varies more than a binomial's and a healthy canary looks far from its weight. The share
    tests take a design effect D (`share_design_effect`): they count n/D trials and k/D canary
    answers, the evidence of n/D independent connections. For connections of exactly L requests fed
    whole, D = L makes it exactly the per-connection test; for lengths of any distribution the
    variance of the share matches at D = E[len²]/E[len] (2L − 1 for geometric lengths of mean L):
    an approximation, which the benchmark checks, not a proof. The error
    and latency tests are unchanged (a bad answer is bad whoever sent it). Benchmarked (bench/
    bench_canary_abort.py, table 5: default runs of a healthy canary, whole connections fed at once):
    with D = 1, keep-alive connections of 3, 10, 30 requests on average abort 4.9%, 71%, 99% of runs;
    with D = 2L − 1, none of 1,000 runs each (the share tests' bound is 0.2% per step).

The false-abort bound designed for, and how it composes
    Per step, a canary that meets every null hypothesis is aborted with probability at most
    3·alpha + 2·share_alpha (union bound over the five tests), 3.2% with the defaults, whatever the
    step's length and however often the loop asks. A run of S steps judges fresh evidence per step:
    at most S times that (union bound over steps). That is the worst case, every null hypothesis at
    its edge at once. What it gives in the cases that matter (exact numbers by dynamic programming
    over the judge's own decisions, bench/bench_canary_abort.py; default run: steps 5, 25, 50, 100%,
    60 s each at 50 probes/s, 1% budget, stable healthy, traffic at the weight):
      a perfect canary:                 never aborted when the split is exact (smooth weighted round
                                        robin, as nginx and the test proxy do): there is no error
                                        evidence, and the share tests' evidence shrinks like
                                        1/sqrt(n) at the weight; with a random split at the weight,
                                        far less often than the share tests' 0.1% bound;
      a canary at half its budget:      0.018% of runs (today's rule: 0.37%);
      a canary exactly at its budget:   1.3% of runs, at most 1% per step (the canary-errors test;
                                        the all-errors test sees the same errors among as many or
                                        more answers); today's rule: 12%.
    The price of validity under continuous looks is time on barely failing canaries: one failing
    at twice the budget takes about 1.7 times as many requests as under today's rule, whose speed
    there came from its 12% false aborts at the budget (alpha=0.02 halves the gap, for 2.9% at the
    budget). Canaries failing 10% or 50% are stopped as fast or faster.

The settle phase
    Right after a weight change the split is still moving (pods becoming ready, a load balancer
    taking its new weights), so the share tests ignore the first answers of a step. The settle
    phase is on with `settling=True`, `settle_requests` or `settle_seconds`, and ends at the first
    of: `end_settle()` (the loop calls it when its --settle time has passed), `settle_requests`
    answers, or the first answer observed with `at >= settle_seconds` (`at`: seconds since the
    step began, by the loop's clock). With none of the three there is no settle phase. Answers
    during it count for every other test (an error is an error); the share tests start on the
    answers after it. `judge.settling` says whether it is on; a share verdict says how many
    answers it is based on and how many came before, in the settle phase. From Prometheus, feed
    whole scrape rounds (operations/prometheus.py, `Rounds`): `rollout canary` starts them only once
    every target has been scraped after the weight became live, so it needs no settle phase there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

ALPHA = 0.01  # per error or latency test, per step
SHARE_ALPHA = 0.001  # per side of the share test, per step
SLOW_SHARE = 0.01  # "p99 above the limit" = more than 1% of answers slower than the limit
MIN_EVIDENCE = 3  # bad answers before an error or latency verdict
MIN_SHARE_REQUESTS = 20  # answers since the settle phase before a share verdict
MIN_CANARY_ANSWERS = 5  # canary answers a step needs to pass at all (conclude(): "canary not reached")
LOW_EDGE_FRACTION = 0.4  # the share band's low edge is at least this fraction of the weight

# (prior weight, odds ratio to the null's edge) of the alternatives each test weighs.
ABOVE = ((0.68, 2.0), (0.1, 8.0), (0.1, 50.0), (0.05, 1.5), (0.04, 1.25), (0.03, 1.1))
SHARE_BELOW = ((0.6, 0.0), (0.2, 1 / 3), (0.2, 1 / 10))
SHARE_ABOVE = ((0.5, math.inf), (0.25, 3.0), (0.25, 10.0))


def share_band(weight: float) -> tuple[float, float]:
    """Observed canary shares (percent) still consistent with routing `weight` percent. The low edge
    stays above 0 at every weight above 0 (LOW_EDGE_FRACTION of the weight at least), so that "share
    too low" can always fail: a canary nobody reaches is caught at 1% as at 50%."""
    if weight <= 0:
        return 0.0, 0.5
    if weight >= 100:
        return 99.5, 100.0
    return max(weight / 2 - 2, LOW_EDGE_FRACTION * weight), min(100.0, weight * 1.5 + 2)


def alternative(p0: float, odds_ratio: float) -> float:
    """The probability whose odds are `odds_ratio` times p0's (0 and inf give 0 and 1)."""
    if odds_ratio == 0:
        return 0.0
    if math.isinf(odds_ratio):
        return 1.0
    odds = p0 / (1 - p0) * odds_ratio
    return odds / (1 + odds)


class SequentialTest:
    """A one-sided mixture SPRT on Bernoulli counts, anytime-valid at level `alpha`.

    side "above": H0 p ≤ p0 against the alternatives above p0 (events are evidence);
    side "below": H0 p ≥ p0 against those below (non-events are evidence).
    Feed increments with `add`; `check()` says whether H0 is rejected now (it stays rejected).
    """

    def __init__(self, name: str, p0: float, side: str, alpha: float,
                 alternatives: tuple[tuple[float, float], ...], *, min_events: int = 0, min_trials: int = 0):
        if side not in ("above", "below"):
            raise ValueError(f"side must be 'above' or 'below' (got {side!r})")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be between 0 and 1 (got {alpha!r})")
        self.name, self.p0, self.side, self.alpha = name, p0, side, alpha
        self.min_events, self.min_trials = min_events, min_trials
        self.threshold = math.log(1 / alpha)
        self.n = 0
        self.k = 0
        self.rejected = False
        self.max_log_lr = 0.0  # the largest log Λ seen at a check (for the always-valid p-value)
        self._checked = (0, 0)
        # Components: (log weight, log LR per event or None if impossible, per non-event or None).
        total = sum(weight for weight, _ in alternatives)
        self._components: list[tuple[float, float | None, float | None]] = []
        self.trivial: bool | None = None  # True: never rejects; False: rejects on any evidence (p0 at 0 or 1)
        if (side == "above" and p0 >= 1) or (side == "below" and p0 <= 0):
            self.trivial = True  # nothing lies beyond the edge
            return
        if (side == "above" and p0 <= 0) or (side == "below" and p0 >= 1):
            self.trivial = False  # one event (above) or non-event (below) refutes H0 with certainty
            return
        for weight, ratio in alternatives:
            p1 = alternative(p0, ratio)
            if (side == "above") != (p1 > p0):
                raise ValueError(f"{name}: alternative {p1:g} is not on the {side} side of {p0:g}")
            self._components.append((math.log(weight / total),
                                     math.log(p1 / p0) if p1 > 0 else None,
                                     math.log((1 - p1) / (1 - p0)) if p1 < 1 else None))

    def add(self, trials: float, events: float) -> None:
        self.n += trials
        self.k += events

    def log_lr(self, n: int | None = None, k: int | None = None) -> float:
        """log Λ at (n, k), the current counts by default."""
        n = self.n if n is None else n
        k = self.k if k is None else k
        if self.trivial is not None:
            evidence = k if self.side == "above" else n - k
            return math.inf if (not self.trivial and evidence > 0) else 0.0
        terms = []
        for log_weight, per_event, per_non_event in self._components:
            if (per_event is None and k > 0) or (per_non_event is None and n - k > 0):
                continue  # this alternative is impossible given what was seen
            terms.append(log_weight + k * (per_event or 0.0) + (n - k) * (per_non_event or 0.0))
        if not terms:
            return -math.inf
        top = max(terms)
        return top + math.log(sum(math.exp(term - top) for term in terms))

    def rejects(self, n: int, k: int) -> bool:
        """Whether counts (n, k) are past the rejection boundary (ignoring the history)."""
        if n < self.min_trials or (self.side == "above" and k < self.min_events):
            return False
        return self.log_lr(n, k) >= self.threshold

    def check(self) -> bool:
        n, k = self.n, self.k
        n0, k0 = self._checked
        if (n, k) == (n0, k0):
            return self.rejected
        # Since the last check Λ can only have grown if evidence arrived, and a minimum can only
        # have been met now; otherwise nothing new can be rejected and the work is skipped.
        grew = k > k0 if self.side == "above" else (n - k) > (n0 - k0)
        newly_enough = (n0 < self.min_trials <= n) or (k0 < self.min_events <= k)
        self._checked = (n, k)
        if not (grew or newly_enough):
            return self.rejected
        log_lr = self.log_lr(n, k)
        self.max_log_lr = max(self.max_log_lr, log_lr)
        if log_lr >= self.threshold and n >= self.min_trials and (self.side == "below" or k >= self.min_events):
            self.rejected = True
        return self.rejected

    @property
    def p_value(self) -> float:
        """The always-valid p-value as of now: 1 / the largest Λ at any look so far (at most 1)."""
        self.max_log_lr = max(self.max_log_lr, self.log_lr())
        return min(1.0, math.exp(-self.max_log_lr))


@dataclass
class TrackStats:
    requests: int = 0
    errors: int = 0
    slow: int = 0
    latencies: list[float] = field(default_factory=list)  # from observe() only; counts carry none

    def observe(self, bad: bool, slow: bool, seconds: float) -> None:
        """One answer: whether it failed, whether it was slower than the limit, how long it took."""
        self.requests += 1
        self.errors += bad
        self.slow += slow
        self.latencies.append(seconds)

    def p99(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class Judge:
    """The evidence of one weight step; `verdict()` is None while the canary may still pass."""

    def __init__(self, canary_version: str, weight: float, max_error_rate: float, max_p99: float, *,
                 alpha: float = ALPHA, share_alpha: float = SHARE_ALPHA, settling: bool = False,
                 settle_requests: int = 0, settle_seconds: float = 0.0, requested_weight: float | None = None,
                 share_design_effect: float = 1.0, min_canary_answers: int = MIN_CANARY_ANSWERS):
        if not 0 <= weight <= 100:
            raise ValueError(f"weight must be a percentage from 0 to 100 (got {weight!r})")
        if not 0 <= max_error_rate <= 1:
            raise ValueError(f"max_error_rate must be a fraction from 0 to 1 (got {max_error_rate!r})")
        if not max_p99 > 0:
            raise ValueError(f"max_p99 must be more than 0 seconds (got {max_p99!r})")
        if settle_requests < 0 or settle_seconds < 0:
            raise ValueError("settle_requests and settle_seconds must not be negative")
        if not share_design_effect >= 1:
            raise ValueError(f"share_design_effect must be at least 1 (got {share_design_effect!r})")
        if min_canary_answers < 0:
            raise ValueError(f"min_canary_answers must not be negative (got {min_canary_answers!r})")
        self.requested_weight = weight if requested_weight is None else requested_weight
        self.share_design_effect = share_design_effect
        self.min_canary_answers = min_canary_answers
        self.canary_version = canary_version
        self.weight = weight
        self.max_error_rate = max_error_rate
        self.max_p99 = max_p99
        self.alpha, self.share_alpha = alpha, share_alpha
        self.settle_requests, self.settle_seconds = settle_requests, settle_seconds
        self.total = TrackStats()
        self.canary = TrackStats()
        self.errors = SequentialTest("canary errors", max_error_rate, "above", alpha, ABOVE,
                                     min_events=MIN_EVIDENCE)
        self.all_errors = SequentialTest("all errors", max_error_rate, "above", alpha, ABOVE,
                                         min_events=MIN_EVIDENCE)
        self.slow = SequentialTest("canary slow", SLOW_SHARE, "above", alpha, ABOVE, min_events=MIN_EVIDENCE)
        low, high = share_band(weight)
        self.share_low = SequentialTest("share too low", low / 100, "below", share_alpha, SHARE_BELOW,
                                        min_trials=MIN_SHARE_REQUESTS)
        self.share_high = SequentialTest("share too high", high / 100, "above", share_alpha, SHARE_ABOVE,
                                         min_trials=MIN_SHARE_REQUESTS)
        self._settling = settling or settle_requests > 0 or settle_seconds > 0
        self.settled_after = 0 if not self._settling else None  # answers in the settle phase
        self._verdict: str | None = None

    # -- the settle phase ----------------------------------------------------------------------

    @property
    def settling(self) -> bool:
        """Whether the share tests are still waiting for the split to settle."""
        return self._settling

    def end_settle(self) -> None:
        """End the settle phase now: the share tests count the answers from here on."""
        if self._settling:
            self._settling = False
            self.settled_after = self.total.requests

    def _settle_clock(self, at: float | None) -> None:
        if self._settling and at is not None and self.settle_seconds > 0 and at >= self.settle_seconds:
            self.end_settle()

    def _settle_count(self) -> None:
        if self._settling and self.settle_requests > 0 and self.total.requests >= self.settle_requests:
            self.end_settle()

    # -- evidence ------------------------------------------------------------------------------

    def observe(self, version: str | None, ok: bool, seconds: float, at: float | None = None) -> None:
        """One answer: the version that sent it (None: no track owns it), whether it succeeded, how
        long it took; `at`, seconds since the step began, ends a settle phase given in seconds."""
        self._settle_clock(at)
        slow = seconds > self.max_p99
        bad = 0 if ok else 1
        self.total.observe(not ok, slow, seconds)
        self.all_errors.add(1, bad)
        is_canary = version == self.canary_version
        if is_canary:
            self.canary.observe(not ok, slow, seconds)
            self.errors.add(1, bad)
            self.slow.add(1, 1 if slow else 0)
        if not self._settling:
            self._add_share(1, 1 if is_canary else 0)
        self._settle_count()

    def observe_counts(self, version: str | None, requests: int, errors: int, slow: int,
                       at: float | None = None) -> None:
        """Increments of one version's counters (from Prometheus): requests, 5xx errors among them,
        and answers slower than max_p99 among them. Feed every version's increments of a scrape,
        then ask `verdict()`: the share tests compare the canary's with everyone's."""
        for name, value in (("requests", requests), ("errors", errors), ("slow", slow)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a whole number of at least 0 (got {value!r})")
        if errors > requests or slow > requests:
            raise ValueError(f"errors ({errors}) and slow ({slow}) cannot exceed requests ({requests})")
        self._settle_clock(at)
        if requests == 0:
            return
        total = self.total
        total.requests += requests
        total.errors += errors
        total.slow += slow
        self.all_errors.add(requests, errors)
        is_canary = version == self.canary_version
        if is_canary:
            canary = self.canary
            canary.requests += requests
            canary.errors += errors
            canary.slow += slow
            self.errors.add(requests, errors)
            self.slow.add(requests, slow)
        if not self._settling:
            self._add_share(requests, requests if is_canary else 0)
        self._settle_count()

    def _add_share(self, requests: int, canary: int) -> None:
        """Answers for the share tests, in independent trials: n / D of them (the design effect D, see
        the module's docstring on correlated traffic)."""
        effect = self.share_design_effect
        self.share_low.add(requests / effect, canary / effect)
        self.share_high.add(requests / effect, canary / effect)

    @property
    def canary_share(self) -> float:
        """Percent of the step's answers that came from the canary."""
        return 100 * self.canary.requests / self.total.requests if self.total.requests else 0.0

    def evidence(self) -> dict[str, float]:
        """Each test's always-valid p-value (a test rejects when its p-value is at most its alpha)."""
        return {test.name: test.p_value for test in self._tests()}

    def _tests(self) -> list[SequentialTest]:
        return [self.errors, self.all_errors, self.slow, self.share_low, self.share_high]

    # -- the verdict ---------------------------------------------------------------------------

    def verdict(self) -> str | None:
        """Why the canary fails, once a test rejects (and from then on); None while it may pass."""
        if self._verdict is None:
            for test in self._tests():
                if test.check():
                    self._verdict = self._reason(test)
                    break
        return self._verdict

    def conclude(self) -> str | None:
        """The verdict at the end of a step: `verdict()`, else "canary not reached" when fewer than
        min_canary_answers canary answers were judged (a step proves nothing about a canary it did
        not hear from, whatever its share tests could tell); None: the step passes."""
        verdict = self.verdict()
        if verdict is None and self.canary.requests < self.min_canary_answers:
            expected = self.total.requests * self.weight / 100
            self._verdict = verdict = (
                f"canary not reached: {self.canary.requests} canary answers of {self.total.requests} in the step "
                f"(about {expected:.0f} expected at {self._weight_text()}), fewer than the "
                f"{self.min_canary_answers} a step needs")
        return verdict

    def _weight_text(self) -> str:
        if self.requested_weight == self.weight:
            return f"the {self.weight:g}% weight"
        return f"the {self.weight:g}% effective share (weight {self.requested_weight:g}% requested)"

    def _reason(self, test: SequentialTest) -> str:
        canary, total = self.canary, self.total
        budget = f"{100 * self.max_error_rate:g}%"
        proof = f"anytime-valid p={test.p_value:.2g} ≤ {test.alpha:g}"
        if test is self.errors:
            return (f"canary error rate {100 * canary.error_rate:.1f}% over {canary.requests} requests is above "
                    f"the {budget} budget ({proof})")
        if test is self.all_errors:
            return (f"error rate {100 * total.error_rate:.1f}% over all {total.requests} requests is above "
                    f"the {budget} budget ({proof})")
        if test is self.slow:
            p99 = canary.p99()
            shown = "" if p99 is None else f" {1000 * p99:.0f}ms"
            return (f"canary p99{shown} is above {1000 * self.max_p99:.0f}ms ({canary.slow} of {canary.requests} "
                    f"requests slower; {proof})")
        counted = round(test.n * self.share_design_effect)
        share = 100 * test.k / test.n if test.n else 0.0
        since = f" since the settle phase ({self.settled_after} before it)" if self.settled_after else ""
        effect = (f"; design effect {self.share_design_effect:g}: {test.n:.0f} independent trials"
                  if self.share_design_effect != 1 else "")
        if test is self.share_low:
            return (f"canary gets {share:.1f}% of {counted} requests{since}, far below {self._weight_text()}: "
                    f"traffic is not reaching it ({proof}{effect})")
        return (f"canary gets {share:.1f}% of {counted} requests{since}, far above {self._weight_text()} "
                f"({proof}{effect})")


# -- Operating characteristics, exact (for the tests and bench/bench_canary_abort.py) -------------------


def abort_boundary(rejects: Callable[[int, int], bool], horizon: int) -> list[int]:
    """For n = 0..horizon answers, the fewest bad answers among them on which `rejects(n, k)` says
    abort (horizon + 1 where none does). Assumes more bad answers are never less evidence, and that
    the boundary never drops by more than one per answer (true of every test here)."""
    boundary: list[int] = []
    k = 0  # where the search at n starts: one below the boundary at n - 1 (or n, past it, if none)
    for n in range(horizon + 1):
        k = max(0, k - 1)
        while k <= n and not rejects(n, k):
            k += 1
        boundary.append(k if k <= n else horizon + 1)
    return boundary


def abort_probabilities(boundary: list[int], p: float) -> list[float]:
    """P(aborted within the first n answers) for n = 0..len(boundary) - 1, when each answer is bad
    with probability p independently and the verdict is asked after every answer."""
    alive = {0: 1.0}  # bad answers so far → probability of that and no abort yet
    aborted, result = 0.0, [0.0]
    for n in range(1, len(boundary)):
        step: dict[int, float] = {}
        for k, probability in alive.items():
            step[k] = step.get(k, 0.0) + probability * (1 - p)
            step[k + 1] = step.get(k + 1, 0.0) + probability * p
        limit = boundary[n]
        alive = {}
        for k, probability in step.items():
            if k >= limit:
                aborted += probability
            elif probability > 1e-18:
                alive[k] = probability
        result.append(aborted)
    return result


def run_false_abort_probability(boundary: list[int], p: float, canary_answers: list[int]) -> float:
    """P(a run is aborted) when its steps give the canary these many answers each, each bad with
    probability p: 1 − Π (1 − P(aborted within the step))."""
    within = abort_probabilities(boundary, p)
    survive = 1.0
    for n in canary_answers:
        survive *= 1 - within[min(n, len(within) - 1)]
    return 1 - survive


def median_requests_to_abort(boundary: list[int], fail_rate: float, weight: float) -> int | None:
    """The median of all requests (canary or not) until the abort, when a share `weight` (0-1) of
    them reaches the canary at random and each of its answers fails with probability `fail_rate`;
    None when the abort is less likely than not within the boundary's horizon."""
    within = abort_probabilities(boundary, fail_rate)
    at = [within[n] - within[n - 1] for n in range(1, len(within))]  # P(abort on canary answer n)
    if within[-1] < 0.5:
        return None

    def by(total: int) -> float:  # P(aborted within `total` requests) = Σ P(abort at n) P(Bin(total, w) ≥ n)
        tail, probability = 0.0, 0.0
        pmf = [0.0] * (total + 2)
        log_w, log_rest = math.log(weight), math.log1p(-weight)
        for j in range(total + 1):
            pmf[j] = math.exp(math.lgamma(total + 1) - math.lgamma(j + 1) - math.lgamma(total - j + 1)
                              + j * log_w + (total - j) * log_rest)
        at_least = [0.0] * (total + 2)
        for j in range(total, -1, -1):
            tail += pmf[j]
            at_least[j] = tail
        for n, chance in enumerate(at, start=1):
            if n > total:
                break
            probability += chance * at_least[n]
        return probability

    low, high = 1, max(2, int(4 * len(boundary) / weight))
    while low < high:
        middle = (low + high) // 2
        if by(middle) >= 0.5:
            high = middle
        else:
            low = middle + 1
    return low
