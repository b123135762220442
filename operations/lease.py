"""The lease of a running canary: who drives it, where it is, and until when it is looked after.

`rollout canary` has no controller in the cluster behind it: the process that runs it is the only
thing watching the canary. So each run holds a lease for (stack, release), kept beside the stack's
state where every machine that can run the stack can read it:

- `file://DIR` backends: `DIR/.app-update/leases/<project>/<stack>/<release>.json`;
- `s3://BUCKET[/PREFIX]` backends: the object `[PREFIX/].app-update/leases/<project>/<stack>/<release>.json`
  in the state bucket;
- any other backend (Pulumi Cloud, azblob://, gs://): the lease-dependent verbs refuse in one line.

The store is operations/record_store.py's (the wave records' too): a lease is created only if absent
and replaced only if unchanged (flock + atomic rename in a directory, S3 conditional writes
`IfNoneMatch="*"` / `IfMatch=<ETag>`), and a lost race raises RecordConflict, so two drivers can
never both hold a lease. This module holds what is the lease's own: its key, the record, taking it
(acquire), renewing it (Lease, Heartbeat), who may take it, and the line that describes it.

The record says who holds the lease (user@host, process id, the CI run's URL), which step and
weight the run is at, what tags are live, when it started, was last renewed, and when it expires.
A holder renews it (a heartbeat thread, independent of long updates and waits) every third of
its length; a lease that was not renewed in time is expired: its driver is gone, or hangs. A run
whose main loop makes no progress (no activity begun or ended: a step, an update, a wait; no line
said: probe answers, update retries) for longer than its progress bound stops being renewed, so a
hung driver's lease expires too and the watchdog takes over. The bound is the longest a healthy
run goes without progress, from its own settings (`progress_bound`): the longer of a step (DNS
settle + --verify-timeout + the Prometheus wait + --interval + a probe's timeout) and an update
(its tries x UPDATE_AWAIT, the provider's await of a Deployment rollout, + the pauses between tries
+ --lock-wait), plus one lease length of slack. A run that comes back after its lease was taken
over finds it lost at its next write and stops (Heartbeat.check renews first). A lease is never
deleted: it ends with the run's outcome (promoted, aborted, abort-failed, stopped), so the next
run, `rollout status` and the watchdog can read what happened.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from operations import record_store
from operations.record_store import RecordConflict, RecordStore
from operations.stacks import InputError, OperationError

DEFAULT_SECONDS = 300.0
# The heartbeat renews a lease every third of its length and looks at the clock every TICK seconds,
# so a lease must outlast a few ticks: the loop's longest silent wait is one tick.
TICK = 10.0
MINIMUM_SECONDS = 3 * TICK
# The Kubernetes provider's default await of a Deployment rollout (pulumi-kubernetes: 10 minutes): the
# longest one try of `pulumi up` of this program waits on one object without failing.
UPDATE_AWAIT = 600.0


def progress_bound(*, interval: float, probe_timeout: float, settle: float, verify_timeout: float | None,
                   metrics_wait: float | None, attempts: int, pause: float, lock_wait: float,
                   lease_seconds: float) -> float:
    """Seconds a healthy run can go without progress (the module says how): past it, the lease is no
    longer renewed."""
    step = settle + (verify_timeout or 0.0) + (metrics_wait or 0.0) + interval + probe_timeout
    tries = max(1, attempts)
    update = tries * UPDATE_AWAIT + sum(pause * 2 ** k for k in range(tries - 1)) + lock_wait
    return max(step, update) + lease_seconds
LEASE_KIND = "leases"  # the records' kind: .app-update/leases/<project>/<stack>/<release>.json

# States: a holder looks after the canary ("running": a canary run; "aborting": an abort or the
# watchdog's abort); "ended": nobody does, and `outcome` says how it ended.
RUNNING, ABORTING, ENDED = "running", "aborting", "ended"
PROMOTED, ABORTED, ABORT_FAILED, STOPPED = "promoted", "aborted", "abort-failed", "stopped"


def wall_clock() -> float:
    """Seconds since the epoch (leases compare times across machines). Tests move it."""
    return time.time()


def _now() -> float:
    return wall_clock()  # looked up at each call, so that a moved clock moves every lease


class LeaseHeld(OperationError):
    """A live lease of someone else: the operation is refused, with the holder's details."""

    def __init__(self, message: str, record: dict[str, Any]):
        super().__init__(message)
        self.record = record


class LeaseLost(Exception):
    """This process's lease was taken over (by an abort or a watchdog): it must stop at once."""

    def __init__(self, record: dict[str, Any] | None):
        super().__init__(f"the lease was taken over by {holder_text(record)}" if record else "the lease is gone")
        self.record = record


# ---------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------


def lease_key(stack: str, release: str) -> str:
    """The lease's key in its project's store: `<stack>/<release>` (the store adds `.json`)."""
    return f"{stack}/{release}"


def holder(command: str) -> dict[str, Any]:
    """Who is running: user@host, process id, the CI run's URL when GitHub Actions says."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    server, repo, run = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    return {"user": f"{user}@{socket.gethostname()}", "pid": os.getpid(), "command": command,
            "ciRun": f"{server}/{repo}/actions/runs/{run}" if server and repo and run else None}


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def holder_text(record: dict[str, Any] | None) -> str:
    who = (record or {}).get("holder") or {}
    text = f"{who.get('command', 'rollout')} by {who.get('user')} (pid {who.get('pid')})"
    return text + (f", CI run {who['ciRun']}" if who.get("ciRun") else "")


def is_expired(record: dict[str, Any], now: float) -> bool:
    """Nobody looks after the canary the lease describes: its holder stopped renewing it."""
    return record.get("state") != ENDED and now >= float(record.get("expiresAt") or 0)


def needs_abort(record: dict[str, Any], now: float) -> bool:
    """What the watchdog acts on: an expired lease, or a run whose abort failed (traffic left behind)."""
    return is_expired(record, now) or (record.get("state") == ENDED and record.get("outcome") == ABORT_FAILED)


def describe(record: dict[str, Any], now: float) -> str:
    """One line for `rollout status` and refusals: holder, step, weight (a blue-green run's phase and
    colors), expiry."""
    steps = record.get("steps") or []
    where = (f"step {record.get('step')}/{len(steps)}" if steps and record.get("step") else "before its first step")
    tags = record.get("tags") or {}
    text = (f"{record.get('state')} {holder_text(record)}: {where}, weight {record.get('weight', 0)}%, "
            f"stable {tags.get('stable')}, canary {tags.get('canary')}, started {record.get('started')}")
    if record.get("strategy") == "BlueGreen":  # operations/bluegreen_run.py's runs
        colors = record.get("colors") or {}
        old, new = colors.get("old"), colors.get("new")
        text = (f"{record.get('state')} {holder_text(record)}: {record.get('phase')}, {old} {tags.get(old)} → {new} "
                f"{tags.get(new)}, started {record.get('started')}")
    if record.get("state") == ENDED:
        return text + f"; ended {record.get('outcome')} at {record.get('renewed')}" + (
            f" ({record['note']})" if record.get("note") else "")
    left = float(record.get("expiresAt") or 0) - now
    if left <= 0:
        return text + f"; EXPIRED at {record.get('expires')} ({-left:.0f}s ago): its driver is gone"
    return text + f"; renewed {record.get('renewed')}, expires {record.get('expires')} (in {left:.0f}s)"


# ---------------------------------------------------------------------------------------------
# Holding a lease
# ---------------------------------------------------------------------------------------------


@dataclass
class Lease:
    """A lease this process holds: every write is conditional on the version it last wrote."""

    store: RecordStore
    key: str
    record: dict[str, Any]
    etag: str
    seconds: float
    clock: Callable[[], float] = _now

    def __post_init__(self) -> None:
        self.mutex = threading.Lock()
        self.lost: LeaseLost | None = None

    @property
    def ended(self) -> bool:
        return self.record.get("state") == ENDED

    def _stamp(self, record: dict[str, Any]) -> dict[str, Any]:
        now = self.clock()
        return {**record, "renewed": iso(now), "renewedAt": now, "expires": iso(now + self.seconds),
                "expiresAt": now + self.seconds}

    def write(self, **changes: Any) -> None:
        """Renew, with `changes` recorded; raises LeaseLost when someone else wrote it meanwhile."""
        with self.mutex:
            if self.lost is not None:
                raise self.lost
            record = self._stamp({**self.record, **changes})
            try:
                self.etag = self.store.replace(self.key, record, self.etag)
            except RecordConflict:
                found = self.store.read(self.key)
                self.lost = LeaseLost(found[0] if found else None)
                raise self.lost from None
            self.record = record

    def renew(self) -> None:
        self.write()

    def end(self, outcome: str, note: str | None = None, **changes: Any) -> None:
        self.write(state=ENDED, outcome=outcome, note=note, **changes)


def acquire(store: RecordStore, key: str, fields: dict[str, Any], seconds: float, *,
            may_take: Callable[[dict[str, Any] | None, float], str | None],
            clock: Callable[[], float] = _now) -> Lease:
    """Take the lease at `key` with `fields`, if `may_take(current record or None, now)` returns None
    (else it returns the refusal); conditional writes make exactly one of several takers win."""
    found = store.read(key)
    now = clock()
    refusal = may_take(found[0] if found else None, now)
    if refusal is not None:
        raise LeaseHeld(refusal, found[0] if found else {})
    record = {"version": 1, "started": iso(now), "startedAt": now, "outcome": None, "note": None,
              "leaseSeconds": seconds, **fields}
    lease = Lease(store, key, record, "", seconds, clock)
    record = lease._stamp(record)
    try:
        etag = store.replace(key, record, found[1]) if found else store.create(key, record)
    except RecordConflict:
        again = store.read(key)
        theirs = again[0] if again else {}
        raise LeaseHeld(f"another process took the lease first: {describe(theirs, clock())}", theirs) from None
    lease.record, lease.etag = record, etag
    return lease


class Heartbeat:
    """A thread that renews a lease every third of its length and, when nothing was said for TICK
    seconds, prints what the run is doing (long updates, lock waits, DNS waits say nothing else).

    A renewal that finds the lease taken over stops the heartbeat and leaves `lost` set: the run
    checks it (Heartbeat.check) and stops without touching the stack. With `progress_bound`, a run
    that made no progress for longer (no `doing()` change, nothing said) is not renewed: its lease
    expires as a dead driver's does."""

    def __init__(self, lease: Lease | None, say: Callable[[str], None], *, tick: float | None = None,
                 silent_for: Callable[[], float] | None = None, monotonic: Callable[[], float] = time.monotonic,
                 progress_bound: float | None = None):
        self.lease, self.say, self.monotonic = lease, say, monotonic
        self.tick = TICK if tick is None else tick
        self.silent_for = silent_for or (lambda: 0.0)
        self.progress_bound = progress_bound
        self.activity: str | None = None
        self.since = monotonic()
        self.stop = threading.Event()
        self.renewals = 0
        self.looks = 0  # the thread's looks at the clock (tests wait for them)
        self.stalled = False  # no progress for longer than the bound: not renewed
        self.failure: str | None = None
        self.thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def doing(self, activity: str | None) -> None:
        self.activity, self.since = activity, self.monotonic()

    def without_progress(self) -> float:
        """Seconds since the run last began or ended an activity or said a line."""
        return min(self.monotonic() - self.since, self.silent_for())

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()

    def check(self) -> None:
        """Before a write: raises LeaseLost when the lease was taken over (after a stall, renewing finds out)."""
        if self.lease is not None and self.stalled and not self.lease.ended:
            self.lease.renew()  # LeaseLost when the watchdog took it meanwhile
            self.stalled = False
        if self.lease is not None and self.lease.lost is not None:
            raise self.lease.lost

    def _run(self) -> None:
        last_renewal = self.monotonic()
        renew_every = (self.lease.seconds / 3) if self.lease else None
        while not self.stop.wait(self.tick):
            self.looks += 1
            if self.activity and self.silent_for() >= self.tick:
                self.say(f"  … {self.activity} ({self.monotonic() - self.since:.0f}s)")
            if self.lease is None or self.lease.ended or renew_every is None:
                continue
            if self.progress_bound is not None and self.without_progress() > self.progress_bound:
                if not self.stalled:
                    self.stalled = True
                    self.say(f"  no progress for {self.without_progress():.0f}s (bound {self.progress_bound:g}s): the "
                             "lease is no longer renewed; once it expires the watchdog aborts the canary")
                continue
            if self.monotonic() - last_renewal >= renew_every:
                try:
                    self.lease.renew()
                    self.renewals += 1
                    last_renewal = self.monotonic()
                except LeaseLost:
                    return
                except Exception as error:  # noqa: BLE001 (a store that failed once: try next tick)
                    self.failure = f"{type(error).__name__}: {error}"
                    self.say(f"  lease renewal failed ({self.failure}); trying again in {self.tick:g}s")


def lease_seconds_argument(text: str) -> float:
    """An argparse type for `--lease-seconds`: a duration (300, 300s, 5m) of at least MINIMUM_SECONDS."""
    import argparse
    import re

    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?", text)
    value = float(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2) or "s"] if match else -1.0
    if value < MINIMUM_SECONDS:
        raise argparse.ArgumentTypeError(
            f"must be a duration of at least {MINIMUM_SECONDS:g}s: the lease is renewed every third of it and must "
            f"outlast the heartbeat's {TICK:g}s between looks (got {text!r})")
    return value


# ---------------------------------------------------------------------------------------------
# Who may take a lease
# ---------------------------------------------------------------------------------------------


@dataclass
class LeaseSpec:
    """Where a verb's lease lives and how long it lasts (`--lease-seconds`)."""

    store: RecordStore
    key: str
    seconds: float = DEFAULT_SECONDS

    def read(self) -> dict[str, Any] | None:
        found = self.store.read(self.key)
        return found[0] if found else None


def lease_store(url: str | None, project_dir: Path, project: str, *, s3_client: Any = None) -> RecordStore:
    """The store of `project`'s leases beside the state at `url`; refuses (InputError, one line) a backend
    that is neither file:// nor s3://, or none; a relative file:// path is taken from `project_dir`."""
    return record_store.store_for(
        url, LEASE_KIND, project, project_dir=project_dir, s3_client=s3_client,
        what="the canary's lease is kept beside the stack's state",
        refused=" (the lease-dependent verbs `rollout canary` and `rollout watchdog` refuse it)")


def spec_for(stack: Any, release: str, project_dir: Path, seconds: float = DEFAULT_SECONDS) -> LeaseSpec:
    """The lease of (stack, release) beside the stack's state (refuses other backends: InputError)."""
    from model.stack_file import project_name

    store = lease_store(record_store.backend_url(project_dir, stack), project_dir, project_name(project_dir))
    return LeaseSpec(store, lease_key(stack.name, release), seconds)


def canary_may_take(finish: str, resume: str) -> Callable[[dict[str, Any] | None, float], str | None]:
    """A new canary: refused while a lease is live, or expired without ending (resume or abort it)."""
    def may_take(record: dict[str, Any] | None, now: float) -> str | None:
        if record is None or (record.get("state") == ENDED and record.get("outcome") != ABORT_FAILED):
            return None
        if not is_expired(record, now) and record.get("state") != ENDED:
            return f"the release's canary is looked after by another run: {describe(record, now)}"
        return (f"an earlier run did not end: {describe(record, now)}; continue it with `{resume}`, or send its "
                f"traffic back with `{finish}` (`rollout watchdog` does it on its schedule)")
    return may_take


def resume_may_take(record: dict[str, Any] | None, now: float) -> str | None:
    """`--resume`: only a run whose lease expired without ending."""
    if record is None:
        return "there is no lease to resume: no canary of this release was started with one"
    if record.get("state") == ENDED:
        return f"the run the lease describes has ended, nothing to resume: {describe(record, now)}"
    if record.get("state") != RUNNING:
        return f"the lease is not a canary run's (an abort holds it): {describe(record, now)}"
    if not is_expired(record, now):
        return f"the run is still looked after: {describe(record, now)}"
    return None


def abort_may_take(record: dict[str, Any] | None, now: float) -> str | None:
    """`rollout abort` takes any lease: the operator's word ends a run (it stops at its next write)."""
    return None


def watchdog_may_take(record: dict[str, Any] | None, now: float) -> str | None:
    """The watchdog: only an expired lease, or a run whose abort failed."""
    if record is None or not needs_abort(record, now):
        return "not expired" if record else "no lease"
    return None


def watchdog_takeover(spec: LeaseSpec, record: dict[str, Any], fields: dict[str, Any]) -> Lease:
    """The watchdog takes the lease of a run that needs it (`record`, as read), with `fields` for the way it ends
    the run and the holder it replaces; LeaseHeld when something else took it first."""
    return acquire(spec.store, spec.key, {**fields, "expiredLease": record.get("holder")}, spec.seconds,
                   may_take=watchdog_may_take)


def takeover_reason(record: dict[str, Any], what_failed: str) -> str:
    """Why the watchdog ends a run: its lease expired, or (ended) `what_failed` had failed."""
    if record.get("state") == ENDED:
        return f"its {what_failed} had failed"
    return f"its lease expired at {record.get('expires')} ({holder_text(record)})"


def status_of(stack: Any, project_dir: Path, releases: list[str]) -> dict[str, dict[str, Any]]:
    """For `rollout status`: each release's lease record and its line; {} on a backend that keeps none."""
    try:
        spec = spec_for(stack, "-", project_dir)
    except InputError:
        return {}
    now = wall_clock()
    out = {}
    for release in releases:
        found = spec.store.read(lease_key(stack.name, release))
        if found is not None:
            out[release] = {**found[0], "expired": is_expired(found[0], now), "line": describe(found[0], now)}
    return out
