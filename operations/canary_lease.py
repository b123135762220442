"""The lease as `rollout canary`, `abort` and `watchdog` use it: what a run records in it, when a
run may resume, and how an abort takes it over (the lease itself, its stores and heartbeat:
operations/lease.py).

A canary run records its step, the weight and tags the last successful update made live, and its
options, so that `rollout canary --resume` can go on from there once the lease expired, after
checking that the live weight and tags still are what the lease says. An abort (`rollout abort`
or the watchdog) takes the lease over with the run's details kept, and ends it with its outcome.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from operations import lease as leases
from operations import stacks
from operations.lease import Lease, LeaseLost

# The run's options, as `rollout canary` names them, and as the lease's `run` records them.
RUN_DEFAULTS = {"steps": [5, 25, 50, 100], "interval": 60.0, "max_error_rate": 0.01, "max_p99": 0.5, "url": None,
                "rate": 50.0, "settle": 5.0, "metrics": None, "metrics_selector": None, "scrape_interval": None,
                "metrics_wait": None, "share_design_effect": None, "min_canary_answers": None, "verify_timeout": 120.0,
                "match_only": False, "match_value": None}
LEASE_RUN_KEYS = {"steps": "steps", "interval": "interval", "max_error_rate": "maxErrorRate", "max_p99": "maxP99",
                  "url": "url", "rate": "rate", "settle": "settle", "metrics": "metrics",
                  "metrics_selector": "metricsSelector", "scrape_interval": "scrapeInterval",
                  "metrics_wait": "metricsWait", "share_design_effect": "shareDesignEffect",
                  "min_canary_answers": "minCanaryAnswers", "verify_timeout": "verifyTimeout",
                  "match_only": "matchOnly", "match_value": "matchValue"}


def resume_command(stack: str, release: str) -> str:
    return f"python -m rollout canary {stack} --release {release} --resume --yes"


def merged_options(args: argparse.Namespace, record: dict[str, Any] | None, defaults: dict[str, Any],
                   lease_keys: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """A run's options (`rollout canary`'s, `rollout bluegreen`'s): those given, then (resuming) the lease's, then
    `defaults`; and the names of those taken from the lease. A --tag other than the lease's is refused."""
    run = (record or {}).get("run") or {}
    if record is not None and args.tag and args.tag != run.get("tag"):
        raise stacks.InputError(f"--tag {args.tag} differs from the run the lease describes ({run.get('tag')}): "
                                "drop --tag to resume it")
    values, from_lease = {"tag": args.tag or run.get("tag")}, []
    for name, default in defaults.items():
        given = getattr(args, name)
        if given is not None:
            values[name] = given
        elif lease_keys[name] in run:
            values[name] = run[lease_keys[name]]
            from_lease.append(name)
        else:
            values[name] = default
    return values, from_lease


def run_options(args: argparse.Namespace, record: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """`rollout canary`'s options (merged_options), and its steps kept when resuming."""
    values, from_lease = merged_options(args, record, RUN_DEFAULTS, LEASE_RUN_KEYS)
    run = (record or {}).get("run") or {}
    # The lease's step counts in its own steps: other steps would skip steps nobody judged, or judge none.
    if record is not None and args.steps is not None and "steps" in run and list(args.steps) != list(run["steps"]):
        raise stacks.InputError(f"--steps {','.join(map(str, args.steps))} differs from the run the lease describes "
                                f"({','.join(map(str, run['steps']))}): drop --steps to resume it")
    return values, from_lease


def run_fields(stack: str, options: Any, live: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    """What a canary run writes when it takes the lease (`record`: the expired lease it resumes)."""
    o = options
    fields = {"state": leases.RUNNING, "stack": stack, "release": o.release, "holder": leases.holder("canary"),
              "steps": o.steps, "step": 0, **live_fields(live),
              "run": {"tag": o.tag, **{key: getattr(o, name) for name, key in LEASE_RUN_KEYS.items()}}}
    if record is not None:  # the run's step stays; the holder is this process
        fields.update(step=record.get("step", 0), startedBefore=record.get("started"),
                      resumedFrom=record.get("holder"))
    return fields


def live_fields(live: dict[str, Any]) -> dict[str, Any]:
    """What the last successful update made live, from a release's config as applied."""
    canary, stable = live.get("canary") or {}, live.get("stable") or {}
    return {"weight": int(canary.get("weight") or 0), "podsForWeight": canary.get("podsForWeight"),
            "tags": {"stable": stable.get("tag"), "canary": canary.get("tag")}}


def check_resume(record: dict[str, Any], info: dict[str, Any], stack: str, release: str, abort: str) -> None:
    """A resumed run goes on only if the live weight and tags (the stack's outputs) are the lease's."""
    expected = {"weight": int(record.get("weight") or 0), **(record.get("tags") or {})}
    actual = {"weight": int(info.get("requestedWeight") or 0), **(info.get("tags") or {})}
    differs = [f"{k} {expected.get(k)} in the lease, {actual.get(k)} live" for k in ("weight", "stable", "canary")
               if expected.get(k) != actual.get(k)]
    if differs:
        raise stacks.InputError(f"cannot resume the canary of {release} on {stack}: the stack changed since the "
                                f"lease was written ({'; '.join(differs)}); send its traffic back with `{abort}` "
                                "and start a new run")


def abort_fields(record: dict[str, Any] | None, stack: str, release: str, command: str) -> dict[str, Any]:
    """What an abort writes when it takes the lease: the run's details kept, the holder its own."""
    found = record or {}
    return {"state": leases.ABORTING, "stack": stack, "release": release, "holder": leases.holder(command),
            **{k: found.get(k) for k in ("steps", "step", "weight", "tags", "run")}}


def abort_taker(spec: leases.LeaseSpec, stack: str, release: str, say: Callable[[str], None]) -> Callable[[], Lease]:
    """For `rollout abort`: take the lease whatever holds it (the operator's word ends a run; a run
    whose lease is taken stops at its next write)."""
    def take() -> Lease:
        found = spec.read()
        now = leases.wall_clock()
        if found is not None and found.get("state") != leases.ENDED and not leases.is_expired(found, now):
            say(f"taking over the lease: {leases.describe(found, now)}; that run stops at its next write")
        return leases.acquire(spec.store, spec.key, abort_fields(found, stack, release, "abort"), spec.seconds,
                              may_take=leases.abort_may_take)
    return take


class RunLease:
    """A run's hold on its lease (or none; `rollout canary`'s and `rollout bluegreen`'s): writes that never stop
    the run for a store's hiccup (the heartbeat tries again), but do stop it when the lease was taken over."""

    def __init__(self, lease: Lease | None, say: Callable[[str], None]):
        self.lease, self.say = lease, say

    def write(self, **changes: Any) -> None:
        if self.lease is None:
            return
        try:
            self.lease.write(**changes)
        except LeaseLost:
            raise
        except Exception as error:  # noqa: BLE001 (the heartbeat tries again; the run goes on)
            self.say(f"  lease write failed ({stacks.error_line(error)}); the heartbeat tries again")

    def applied(self, live: dict[str, Any]) -> None:
        self.write(**live_fields(live))

    def end(self, outcome: str, note: str | None, **changes: Any) -> None:
        if self.lease is None or self.lease.ended or self.lease.lost is not None:
            return
        try:
            self.lease.end(outcome, note, **changes)
        except LeaseLost:
            pass
        except Exception as error:  # noqa: BLE001 (said; the lease then expires and the watchdog looks)
            self.say(f"the lease could not be ended ({stacks.error_line(error)}): it expires at "
                     f"{self.lease.record.get('expires')}")
