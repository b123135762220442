"""The old canary judge (a per-answer Wilson bound), kept only for bench/bench_canary_abort.py.

Each answer is attributed to a track by its X-App-Version header. The canary fails as soon
as a one-sided 99.9% Wilson lower bound says its error rate is above the budget, or that
more than 1% of its answers are slower than the p99 limit (which is what "p99 above the
limit" means), or when the observed canary share is clearly outside the band around the
weight. The error and latency rules also wait for MIN_EVIDENCE bad answers. A bad canary is stopped after a handful of its requests, not after a fixed interval.
No Pulumi import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from model.judge import TrackStats  # the same counts the new judge keeps

Z_999 = 3.090  # one-sided 99.9%
# Never judge on fewer bad answers than this: one unlucky request is not a failing canary,
# and the evidence is looked at after every answer.
MIN_EVIDENCE = 5


def wilson_interval(successes: int, trials: int, z: float = Z_999) -> tuple[float, float]:
    """Wilson score interval for a proportion; (0, 1) with no trials."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - margin), min(1.0, centre + margin)


def share_band(weight: float) -> tuple[float, float]:
    """Observed canary shares (percent) still consistent with routing `weight` percent."""
    if weight <= 0:
        return 0.0, 0.5
    if weight >= 100:
        return 99.5, 100.0
    return max(0.0, weight / 2 - 2), min(100.0, weight * 1.5 + 2)


@dataclass
class Judge:
    """Observations of one step; `verdict()` is None while the canary may still pass."""

    canary_version: str
    weight: float
    max_error_rate: float  # 0.01 for 1%
    max_p99: float  # seconds
    total: TrackStats = field(default_factory=TrackStats)
    canary: TrackStats = field(default_factory=TrackStats)

    def observe(self, version: str | None, ok: bool, latency: float) -> None:
        for stats in (self.total, self.canary) if version == self.canary_version else (self.total,):
            stats.observe(not ok, latency > self.max_p99, latency)

    @property
    def canary_share(self) -> float:
        return 100 * self.canary.requests / self.total.requests if self.total.requests else 0.0

    def verdict(self) -> str | None:
        canary, total = self.canary, self.total
        low, _ = wilson_interval(canary.errors, canary.requests)
        if canary.errors >= MIN_EVIDENCE and low > self.max_error_rate:
            return (f"canary error rate {100 * canary.error_rate:.1f}% over {canary.requests} requests is above "
                    f"the {100 * self.max_error_rate:g}% budget")
        # Errors no track owns (connection failures, load balancer 5xx) count against the step too.
        low_all, _ = wilson_interval(total.errors, total.requests)
        if total.errors >= MIN_EVIDENCE and low_all > self.max_error_rate:
            return (f"error rate {100 * total.error_rate:.1f}% over all {total.requests} requests is above "
                    f"the {100 * self.max_error_rate:g}% budget")
        slow_low, _ = wilson_interval(canary.slow, canary.requests)
        if canary.slow >= MIN_EVIDENCE and slow_low > 0.01:
            return (f"canary p99 {1000 * (canary.p99() or 0):.0f}ms is above {1000 * self.max_p99:.0f}ms "
                    f"({canary.slow} of {canary.requests} requests slower)")
        share_low, share_high = wilson_interval(canary.requests, total.requests)
        band_low, band_high = share_band(self.weight)
        if 100 * share_high < band_low:
            return (f"canary gets {self.canary_share:.1f}% of {total.requests} requests, far below the "
                    f"{self.weight:g}% weight: traffic is not reaching it")
        if 100 * share_low > band_high:
            return (f"canary gets {self.canary_share:.1f}% of {total.requests} requests, far above the "
                    f"{self.weight:g}% weight")
        return None
