"""The match-only phase of `rollout canary --match-only`: before any weighted step, only requests that carry the
release's `canary.match` header or cookie reach the canary (canary.weight stays 0: a "dark" canary for testers).

The run writes the canary tag at weight 0 (the canary keeps one pod for matched requests, model/config.py), then its
probes send the match and are judged as a step's are (errors, p99 latency, minimum canary answers) against a share of
100%: every matched probe must reach the canary, and one answer from the stable track fails the phase (the route is
not live, or not what the stack says). The weighted steps follow; with `--steps ""` the run promotes after the phase.

This module says what the probes send and what the phase refuses; operations/canary_run.py drives it with the same
updates, lease, abort path and judge as its steps.
"""

from __future__ import annotations

import re
from typing import Any

from model.config import Match, Release

PHASE_NAME = "the match-only phase"


def refusal(release: Release, match_value: str | None, rate: float) -> str | None:
    """Why `--match-only` cannot run for this release with these options (an input error), or None."""
    if release.match is None:
        return (f"--match-only: release {release.name} has no canary.match (a header or cookie route) in its stack "
                f"file; traffic '{release.traffic}'" + ("" if release.traffic in ("alb", "nginx", "gateway", "istio",
                                                                                   "skipper") else
                                                        " cannot route by header or cookie at all"))
    if rate <= 0:
        return "--match-only: the phase is judged on probes that send the match: give --rate above 0"
    match = release.match
    if match_value is not None and match.header_name is None:
        return f"--match-value: release {release.name}'s canary.match has no header (the probes send its cookie)"
    if match_value is not None and match.header_value is not None:
        return (f"--match-value: canary.match.header of {release.name} names its exact value "
                f"({match.header_value!r}); the probes send that")
    if match.header_regex is not None and match_value is not None and not re.fullmatch(match.header_regex,
                                                                                       match_value):
        # A whole match: Envoy (gateway, istio) matches the whole value, nginx and skipper search in it.
        return f"--match-value {match_value!r} does not match canary.match.header.regex /{match.header_regex}/ whole"
    if match.header_regex is not None and match.cookie is None and match_value is None:
        return (f"--match-only: canary.match.header.regex of {release.name} needs --match-value, a header value it "
                "matches, for the probes to send")
    return None


def probe_headers(match: Match, match_value: str | None = None) -> dict[str, str]:
    """The header the probes send to be routed to the canary: the header's exact value (or --match-value for a
    regex), else the cookie `<name>=always`."""
    if match.header_name and match.header_value is not None:
        return {match.header_name: match.header_value}
    if match.header_name and match_value is not None:
        return {match.header_name: match_value}
    assert match.cookie is not None
    return {"Cookie": f"{match.cookie}={match.cookie_value}"}


def describe(headers: dict[str, str]) -> str:
    return ", ".join(f"{name}: {value}" for name, value in headers.items())


def abort_changes(cfg: dict[str, Any], stable_tag: str) -> dict[str, Any]:
    """What an abort writes besides weight 0 for a release with a match route: weight 0 still sends matched requests
    to the canary, so its track goes back to the stable tag (its pod then answers them as the stable track does)."""
    canary = cfg.get("canary") or {}
    if canary.get("match") is None or canary.get("tag") == stable_tag:
        return {}
    return {"canary.tag": stable_tag}


def sticky_warning(release: Release, metrics: bool, share_design_effect: float | None) -> str | None:
    """How the judge's share test treats `canary.sticky`. The probes never keep the router's cookie, so each probe is
    a new client and the per-probe share stays the weight: nothing to account for. The users' traffic (Prometheus) is
    correlated per session (a client's requests all land on one track), which inflates the per-request share's
    variance by about the requests per session: the share test's design effect must cover it, or a healthy sticky
    canary's share can look off. Said before the run when --share-design-effect is left at its default."""
    if not release.sticky or not metrics or share_design_effect is not None:
        return None
    return (f"release {release.name} has canary.sticky: from Prometheus each user's requests stay on one track, so the "
            "per-request share varies by about the requests per session; give --share-design-effect of about 2 x "
            "the requests per session (the default assumes keep-alive connections only)")
