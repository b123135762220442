"""`python -m rollout bluegreen`: a blue-green release through the stack, and its ways back.

A BlueGreen release (components/blue_green.py) has two Deployments, `<release>-blue` and
`<release>-green`, an active Service that selects one color and a preview Service that selects the
other. A run takes the new tag through four moves, each one `pulumi up` of the stack's config:

1. preview: the idle color := the new tag at full size; the update awaits its pods ready, and the
   preview Service serves them.
2. judge: probe traffic to the preview Service's address for `--interval` (at least the release's
   `previewCheck.interval`, on its `path`), judged as a canary's match-only phase is (model/judge.py:
   error rate, p99 latency, and that the answers come from the new version), stopped as soon as a
   failure is statistically clear; or, with `--metrics`, the new version's series in Prometheus (the
   release's pods `<release>-blue|green-...`; the old color's are the users' traffic, not counted).
3. switch: `active` := the new color, one update that changes only the two Services' selectors (no
   Deployment, no pod). The same update records the verification (`how: bluegreen`, the judge's
   evidence) that `rollout promote` takes as proof.
4. window: the old color stays at full size for `--scale-down-delay` (default 30 s, Argo Rollouts'
   `scaleDownDelaySeconds`), so that `rollout undo` is a selector switch; then it is scaled to 0,
   unless `--keep-old`.

Every failure before or during the switch ends with the active Service on the old color:
- a failed preview update, a failing judge, an error or Ctrl-C/SIGTERM before the switch: the new
  color is scaled to 0 (the active Service was never touched);
- a failed, locked or interrupted switch: a failed update's outputs are no proof of what went
  live (a Service may have changed before it failed), so the run switches back in an update of its
  own whenever the switch ran at all, then scales the new color to 0 in a second update (traffic
  leaves a color before its pods go). A switch that a lock kept from running changed nothing live:
  then one update puts `active` back and scales the new color down. The verification record goes
  back to what it was.
Signals are handled by operations/interrupts.py: an update under way is let finish (the stack's lock
is released), then the way back runs, shielded from further signals. Ctrl-C or SIGTERM in the
window is not a failure of the switch (judged, live): both colors stay up, the lease is left to
expire, and the watchdog then finishes the scale-down, unless someone undoes first.

The run holds the release's lease (operations/lease.py) from before its first write to its end, so
a second driver is refused with the holder's details. The lease records the run's phase, its colors
and tags, so that `rollout watchdog` can end the run of a driver that died (`finish`):
- before or during the switch: `active` back on the old color (an update whenever the switch may
  have run), then the new color scaled to 0: nobody saw the switch through, so it does not stand;
- in the window: the watchdog FINISHES the scale-down of the old color, once the window the lease
  names has passed (before that it leaves the lease alone). The new color passed its judge and
  carries the traffic; leaving the old one up would hold twice the capacity with nobody driving,
  and `rollout undo` after the window still works (it scales the old color up first). It re-reads
  what is live first: if the active Service is back on the old color (an undo by hand), it scales
  nothing down.

`rollout bluegreen --resume` goes on with the run an expired lease describes, from its phase
(resume_phase): the preview is judged again (its update changes nothing), a switch is applied again
(the same update converges a half-applied one), a window waits out what is left of it; refused when
the old color's tag or the active color live differ from the lease, from the switch on when the new color
does not run the lease's (judged) tag at full size, or when the run was on its way back.

`rollout undo STACK --release R` (undo_bluegreen) switches `active` to the other color:
- while the old color is still at full size (the window, or `--keep-old`): ONE update that changes
  the two Services' selectors and no Deployment, so no pod starts;
- after the window (the old color at 0): it says what it will do and, once confirmed, does it:
  scale the old color up (the update awaits its pods), then switch in a second update;
- only to a color that served: a successful update in the stack's history had it active with the tag it
  runs now (a color a run rolled back, or one never switched to, is refused with the reason);
- a run still in its window: undo takes the run's lease over first (a conditional write, as
  `rollout abort` does), so the run stops at its next write instead of scaling down the color that
  is active again; the run also re-reads the live active color before it scales down. While the run
  is before its switch, or in the update that scales the old color down, or the watchdog holds the lease
  (it writes `scaling-down` before its own scale-down), undo refuses and says why. The runs renew their
  lease before each write to the config, so a takeover stops them before their next write.
Undo leaves the color it switched away from at full size behind the preview Service.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from model.config import parse_config_value
from model.judge import Judge
from model.release_record import served_image
from model.stack_file import stack_name
from operations import interrupts, live_state, stacks
from operations import lease as leases
from operations.canary_lease import RunLease, merged_options
from operations.canary_run import (
    Clock,
    Prober,
    RunLog,
    StepResult,
    Tracker,
    duration_argument,
    metrics_argument,
    percent_argument,
    positive_duration_argument,
    probe_url_argument,
    rate_argument,
)
from operations.lease import Heartbeat, Lease, LeaseLost
from operations.stacks import OperationError, StackLike

STRATEGY = "BlueGreen"
COLORS = ("blue", "green")
DEFAULT_SCALE_DOWN_DELAY = 30.0  # seconds, as Argo Rollouts' scaleDownDelaySeconds
# The release's pods as Prometheus's Kubernetes discovery labels them: <release>-blue|green-<hash>-<hash>.
BLUE_GREEN_PODS = 'namespace="{namespace}",pod=~"{release}-(blue|green)-[a-z0-9]+-[a-z0-9]+"'
UNDONE = "undone"  # a lease's outcome when `rollout undo` switched the run's colors back

# The run's phases, as its lease records them (the watchdog decides on them).
PREVIEW, JUDGING, SWITCHING, WINDOW, SCALING_DOWN, ROLLING_BACK = (
    "preview", "judging", "switching", "window", "scaling-down", "rolling-back")
SWITCHED = (WINDOW, SCALING_DOWN)  # the switch went through: what is left is the old color's scale-down


@dataclass
class BlueGreenOptions:
    release: str
    tag: str
    interval: float = 60.0
    max_error_rate: float = 0.01
    max_p99: float = 0.5
    url: str | None = None  # probe this instead of the preview Service's address
    rate: float = 50.0  # probe requests per second
    concurrency: int = 8
    timeout: float = 5.0
    settle: float = 5.0  # seconds before the share of answers from the new version is judged
    scale_down_delay: float = DEFAULT_SCALE_DOWN_DELAY
    keep_old: bool = False
    retry: stacks.RetryPolicy = field(default_factory=stacks.RetryPolicy)
    # Judge from Prometheus (its URL) instead of the probe answers; probes, if rate > 0, only add traffic to the
    # preview. The series: the new version's, of the release's pods (BLUE_GREEN_PODS), or metrics_selector's.
    metrics: str | None = None
    metrics_selector: str | None = None
    scrape_interval: float | None = None  # None: read from Prometheus
    metrics_wait: float | None = None  # None: 3 scrape intervals + 30 s
    min_canary_answers: int | None = None  # what operations/step_checks reads: the default


@dataclass
class BlueGreenRun:
    exit_code: int
    judged: StepResult | None
    switched: bool  # the active Service is on the new color at the end
    aborted: str | None = None
    log_path: str | None = None
    colors: dict[str, str] = field(default_factory=dict)  # {"old": color, "new": color}

    @property
    def steps(self) -> list[StepResult]:
        return [self.judged] if self.judged is not None else []


class _Verdict(Exception):
    """The judge failed the new version."""


def other(color: str) -> str:
    return "green" if color == "blue" else "blue"


def finish_command(stack: str) -> str:
    return f"python -m rollout watchdog {stack}"


def undo_command(stack: str, release: str) -> str:
    return f"python -m rollout undo {stack} --release {release}"


def _release_config(stack: StackLike, release: str) -> tuple[dict[str, Any], dict[str, Any]]:
    config = stack.get_all_config()
    releases = stacks.releases_of(config)
    if releases is None or release not in releases:
        raise OperationError(f"release {release} is not in stack {stack.name}'s config")
    strategy = releases[release].get("strategy")
    if strategy != STRATEGY:
        raise stacks.InputError(f"release {release} is {strategy}, not BlueGreen: `rollout bluegreen` switches the "
                                "colors of a BlueGreen release")
    return config, releases


def _live_info(stack: StackLike, release: str) -> dict[str, Any]:
    return live_state.live_releases(stack).get(release) or {}


def _active(info: dict[str, Any], cfg: dict[str, Any]) -> str:
    """The color the active Service selects: the outputs' activeColor, else the config's."""
    color = info.get("activeColor") or cfg.get("active")
    if color not in COLORS:
        raise OperationError(f"cannot tell which color is active (outputs: {info.get('activeColor')!r}, "
                             f"config: {cfg.get('active')!r})")
    return str(color)


def preview_url(stack: StackLike, release: str, releases: dict[str, Any], path: str = "/") -> str:
    """The preview Service's address (the stack's outputs), on the release's servicePort, at `path`."""
    address = _live_info(stack, release).get("previewAddress")
    if not address:
        raise OperationError(f"stack {stack.name} reports no preview address for release {release} yet: pass --url")
    port = releases[release].get("servicePort", 80)
    return f"http://{address}{'' if port == 80 else f':{port}'}{path}"


def with_check_path(url: str | None, path: str | None) -> str | None:
    """`--url` with the release's previewCheck path when the URL names none (no path, or `/`); a URL with a
    path of its own is probed as given."""
    if not url or not path:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return url if parts.path not in ("", "/") else urlunsplit(parts._replace(path=path))


def _in_doubt(stack: StackLike) -> bool:
    """The stack's last update did not succeed: what is live may be part of the way to its config."""
    last = stacks.revisions(stack)[:1]
    return bool(last) and not last[0].succeeded


# ---------------------------------------------------------------------------------------------
# Verification records (the switch update records the judge's verdict)
# ---------------------------------------------------------------------------------------------


def _verification(stack: StackLike, release: str) -> dict[str, Any] | None:
    from operations.promotion import VERIFICATION_KEY

    present = parse_config_value(stack.get_all_config().get(VERIFICATION_KEY)) or {}
    found = present.get(release) if isinstance(present, dict) else None
    return dict(found) if isinstance(found, dict) else None


def _put_verification(stack: StackLike, release: str, record: dict[str, Any] | None) -> None:
    """The release's verification record := `record` (None: removed)."""
    from operations.promotion import VERIFICATION_KEY, write_records

    if record is not None:
        write_records(stack, {release: record})
    elif _verification(stack, release) is not None:
        stack.remove_config(f"{VERIFICATION_KEY}.{release}", path=True)


# ---------------------------------------------------------------------------------------------
# Writes and updates, with what is live and what the config holds
# ---------------------------------------------------------------------------------------------


class _ColorTracker(Tracker):
    """The canary's tracker (writes, updates, what is live and in doubt), describing colors."""

    def describe(self, cfg: dict[str, Any] | None) -> str:
        if cfg is None:
            return "unknown"
        parts = []
        for color in COLORS:
            settings = cfg.get(color)
            if not isinstance(settings, dict):
                continue
            size = "scaled down" if settings.get("replicas") == 0 else "full size"
            parts.append(f"{color} {settings.get('tag')} {size}" + (" (active)" if cfg.get("active") == color else ""))
        return ", ".join(parts) or "no color"

    def before_write(self) -> None:
        """The lease is renewed (a conditional write) before each write, so that a takeover since the last
        renewal (an undo, the watchdog) stops this one at once, not at the heartbeat's next renewal."""
        self.heartbeat.check()
        lease = self.heartbeat.lease
        if lease is not None and not lease.ended:
            try:
                lease.renew()  # LeaseLost when someone took it
            except LeaseLost:
                raise
            except Exception as error:  # noqa: BLE001 (a store's hiccup: the heartbeat tries again, as RunLease)
                self.log.say(f"  lease renewal failed ({stacks.error_line(error)}); the heartbeat tries again")

    def state_line(self) -> str:
        live = f"live: {self.describe(self.live)} (last successful update)"
        if self.doubt is not None and self.doubt != self.live:
            live += f", or part of the way to {self.describe(self.doubt)} (an update failed part-way)"
        return f"{live}; config holds: {self.describe(self.cfg)}"


def _tracker(stack: StackLike, release: str, log: RunLog, policy: stacks.RetryPolicy, clock: Clock,
             say_stale: str) -> tuple[_ColorTracker, list[live_state.Drift]]:
    """A tracker over the releases with what is live in place of a stale stack file (said, and
    written first by the caller: an update applies the whole file)."""
    _, releases = _release_config(stack, release)
    stale = live_state.drift(stack, releases, None)
    releases = stacks.apply_changes(releases, [d.change() for d in stale])
    if stale:
        log.say(live_state.line(stale, say_stale))
    return _ColorTracker(stack, release, releases, log, policy, clock), stale


def _write_stale(stack: StackLike, stale: list[live_state.Drift], heartbeat: Heartbeat | None = None) -> None:
    for drift in stale:  # the file takes what is live before anything else is written
        if heartbeat is not None:
            heartbeat.check()
        stacks.write_changes(stack, [drift.change()])


# ---------------------------------------------------------------------------------------------
# The lease
# ---------------------------------------------------------------------------------------------


def run_may_take(stack: str) -> Callable[[dict[str, Any] | None, float], str | None]:
    """A new run: refused while a lease is live, or expired without ending (the watchdog ends it)."""
    def may_take(record: dict[str, Any] | None, now: float) -> str | None:
        if record is None or (record.get("state") == leases.ENDED and record.get("outcome") != leases.ABORT_FAILED):
            return None
        if not leases.is_expired(record, now) and record.get("state") != leases.ENDED:
            return f"the release is looked after by another run: {leases.describe(record, now)}"
        return (f"an earlier run did not end: {leases.describe(record, now)}; the watchdog ends it safely (on its "
                f"schedule too), or now: {finish_command(stack)}")
    return may_take


def run_fields(stack: str, o: BlueGreenOptions, old: str, new: str, old_tag: Any) -> dict[str, Any]:
    return {"state": leases.RUNNING, "strategy": STRATEGY, "stack": stack, "release": o.release,
            "holder": leases.holder("bluegreen"), "phase": PREVIEW, "colors": {"old": old, "new": new},
            "tags": {old: old_tag, new: o.tag}, "keepOld": o.keep_old, "scaleDownDelay": o.scale_down_delay,
            "run": {"tag": o.tag, "interval": o.interval, "maxErrorRate": o.max_error_rate, "maxP99": o.max_p99,
                    "url": o.url, "rate": o.rate, "settle": o.settle, "metrics": o.metrics,
                    "metricsSelector": o.metrics_selector, "scrapeInterval": o.scrape_interval,
                    "metricsWait": o.metrics_wait, "scaleDownDelay": o.scale_down_delay, "keepOld": o.keep_old}}


def takeover_fields(record: dict[str, Any] | None, stack: str, release: str, command: str) -> dict[str, Any]:
    """What an undo or the watchdog writes when it takes a run's lease: the run's details kept."""
    found = record or {}
    return {"state": leases.ABORTING, "strategy": STRATEGY, "stack": stack, "release": release,
            "holder": leases.holder(command),
            **{k: found.get(k) for k in ("phase", "colors", "tags", "keepOld", "scaleDownDelay", "scaleDownAt",
                                         "scaleDownTime", "switchTried", "verificationBefore", "run")}}


RESUMED_FIELDS = ("phase", "scaleDownAt", "scaleDownTime", "switchTried", "verificationBefore", "evidence")


def resume_phase(record: dict[str, Any], info: dict[str, Any], stack: str, release: str,
                 full: int | None = None) -> str:
    """Where a resumed run goes on: the lease's phase, if what is live is still what the lease says (the old
    color's tag; the active color: the old one before the switch, the new one after it; from the switch on,
    the new color's tag is the one judged and the color is at full size (`full` pods, when known), since
    a switch or a window is not judged again); else InputError."""
    if record.get("strategy") != STRATEGY:
        raise stacks.InputError(f"the lease of {release} on {stack} is not a blue-green run's: "
                                f"{leases.describe(record, leases.wall_clock())}")
    phase, colors, tags = record.get("phase"), record.get("colors") or {}, record.get("tags") or {}
    old, new = colors.get("old"), colors.get("new")
    if phase == ROLLING_BACK:
        raise stacks.InputError(f"the run was on its way back to {old} when its driver died: the watchdog finishes "
                                f"that, and a new run starts afresh; finish with: {finish_command(stack)}")
    live_tags, active = info.get("tags") or {}, info.get("activeColor")
    differs = [f"{old} {tags.get(old)} in the lease, {live_tags.get(old)} live"] if live_tags.get(old) != tags.get(
        old) else []
    if phase in (SWITCHING, *SWITCHED):  # what was judged must be what goes (or stays) live
        judged_tag = tags.get(new) or (record.get("run") or {}).get("tag")
        if live_tags.get(new) != judged_tag:
            differs.append(f"{new} {judged_tag} in the lease (judged), {live_tags.get(new)} live")
        size = (info.get("replicas") or {}).get(new)
        if size == 0 or (full and isinstance(size, int) and size < full):
            differs.append(f"{new} at {size} pods live, not at full size ({full or 'above 0'})")
    expected = {PREVIEW: (old,), JUDGING: (old,), SWITCHING: (old, new), WINDOW: (new,), SCALING_DOWN: (new,)}
    if active not in expected.get(str(phase), ()):
        differs.append(f"active {active} live at the {phase} phase")
    if differs:
        raise stacks.InputError(f"cannot resume the blue-green run of {release} on {stack}: the stack changed since "
                                f"the lease was written ({'; '.join(differs)}); end it with: {finish_command(stack)}")
    return str(phase)


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run_bluegreen(stack: StackLike, options: BlueGreenOptions, *, out: TextIO | None = None,
                  log_path: Path | None = None, clock: Clock | None = None,
                  lease: leases.LeaseSpec | Callable[[], leases.LeaseSpec] | None = None,
                  resume: bool = False) -> BlueGreenRun:
    """Preview, judge, switch, scale down; or back to the old color (the module says how). `resume`: go on
    with the run an expired lease describes, from its phase (resume_phase says where)."""
    log = RunLog(log_path, out or sys.stdout)
    try:
        with interrupts.guard(finish_command(stack.name), log.say):
            return _BlueGreenLoop(stack, options, log, clock or Clock(), lease, resume).run()
    finally:
        log.close()


class _BlueGreenLoop:
    def __init__(self, stack: StackLike, options: BlueGreenOptions, log: RunLog, clock: Clock,
                 lease_spec: leases.LeaseSpec | Callable[[], leases.LeaseSpec] | None, resume: bool = False):
        self.stack, self.o, self.log, self.clock = stack, options, log, clock
        self.resume = resume
        self.record: dict[str, Any] | None = None  # the expired lease a resumed run goes on from
        self._lease_spec = lease_spec
        self.held = RunLease(None, log.say)
        self.judged: StepResult | None = None
        self.phase = PREVIEW
        self.switch_ran = False  # the switch update ran (part of it may be live)
        self.verification_before: dict[str, Any] | None = None

    # -- before the first write -------------------------------------------------------------
    def run(self) -> BlueGreenRun:
        o, stack, log = self.o, self.stack, self.log
        if o.rate <= 0 and not o.metrics:
            raise stacks.InputError("--rate 0 sends no probes: then judge from --metrics prometheus=URL")
        tracker, stale = _tracker(stack, o.release, log, o.retry, self.clock, "rollout bluegreen")
        info = _live_info(stack, o.release)
        spec = self._lease_spec() if callable(self._lease_spec) else self._lease_spec
        if self.resume:
            if spec is None:
                raise OperationError("--resume goes on with the run a lease describes: it needs the lease")
            self.record = spec.read()
            refusal = leases.resume_may_take(self.record, leases.wall_clock())
            if refusal is not None:
                raise leases.LeaseHeld(refusal, self.record or {})
            full = tracker.cfg.get("replicas")
            self.phase = resume_phase(self.record or {}, info, stack.name, o.release,
                                      full if isinstance(full, int) else None)
            colors = (self.record or {}).get("colors") or {}
            self.old, self.new = colors["old"], colors["new"]
        else:
            self.old = _active(info, tracker.cfg)
            self.new = other(self.old)
        self.old_tag = (info.get("tags") or {}).get(self.old) or stacks.get_path(tracker.cfg, f"{self.old}.tag")
        if self.old_tag == o.tag and not self.resume:
            raise stacks.InputError(f"stack {stack.name} already serves {o.tag} on the active color ({self.old}) of "
                                    f"{o.release}: nothing to switch to")
        first = stacks.apply_changes(tracker.config, self._preview_changes(tracker))
        try:
            tracker.pods(first)
            tracker.pods(stacks.apply_changes(first, [stacks.Change(o.release, "active", self.old, self.new)]))
        except OperationError as error:
            raise stacks.InputError(f"--tag {o.tag!r} cannot go into {stack.name}'s config: "
                                    + str(error).split("\n", 1)[-1].strip()) from None
        self.tracker = tracker
        # The release's previewCheck (required on protected stacks): judged at least its interval, on its path.
        check = stacks.check_config(stack.name, tracker.full_config, tracker.config).release(o.release).preview_check
        if check is not None and check.interval_seconds > o.interval:
            log.say(f"previewCheck: the preview is judged for {check.interval} (--interval {o.interval:g}s is shorter)")
            self.o = o = replace(o, interval=float(check.interval_seconds))
        url = with_check_path(o.url, check.path if check is not None else None) or (
            preview_url(stack, o.release, tracker.config, check.path if check is not None else "/")
            if o.rate > 0 else None)
        self.metrics_source, self.scrape_interval = None, None
        if o.metrics:  # refuses (exit 2) a selector or --interval Prometheus cannot judge, before any write
            from operations import step_checks

            selector = BLUE_GREEN_PODS if o.metrics_selector is None else o.metrics_selector
            checked = stacks.check_config(stack.name, tracker.full_config, tracker.config)
            self.metrics_source, self.scrape_interval = step_checks.metrics_source(
                stack, checked, checked.release(o.release), replace(o, metrics_selector=selector))
            log.say(f"  Prometheus: {self.metrics_source.requests_query}; scrape interval "
                    f"{'unknown yet' if self.scrape_interval is None else f'{self.scrape_interval:g}s'}")
        self._check_quotas(stacks.check_config(stack.name, tracker.full_config, tracker.config))
        # The lease first: a second driver is refused with the holder's details.
        lease = None
        if spec is not None:
            fields = run_fields(stack.name, o, self.old, self.new, self.old_tag)
            if self.record is not None:  # resumed: the run's phase, window and records stay; the holder is this one
                fields.update({k: self.record[k] for k in RESUMED_FIELDS if k in self.record},
                              startedBefore=self.record.get("started"), resumedFrom=self.record.get("holder"))
                self.verification_before = self.record.get("verificationBefore")
                self.switch_ran = bool(self.record.get("switchTried"))
            lease = leases.acquire(spec.store, spec.key, fields, spec.seconds,
                                   may_take=leases.resume_may_take if self.resume else run_may_take(stack.name))
            log.say(f"lease: {spec.store.location(spec.key)}, {spec.seconds:g}s, renewed every {spec.seconds / 3:g}s")
        self.held = RunLease(lease, log.say)
        heartbeat = Heartbeat(lease, log.say, silent_for=log.silent_for)
        tracker.heartbeat = heartbeat
        with heartbeat:
            try:
                return self._drive(url, stale)
            except LeaseLost as lost:
                log.say(f"STOPPED: {lost}; it is in charge of the release now, this run changes nothing more")
                return self._result(1, str(lost))
            except BaseException as error:
                self.held.end(leases.STOPPED, f"the run stopped: {stacks.error_line(error)}")
                raise

    def _check_quotas(self, checked: Any) -> None:
        """Before anything is written (the lease included): the namespace's LimitRanges must admit the new color's
        pods and its ResourceQuotas hold the pods it adds (operations/live_capacity.py), else OperationError (exit
        1). What cannot be read is said and passed over: a refused pod then fails the preview update, and the run
        goes back."""
        from operations import live_capacity

        release = checked.release(self.o.release)
        pods = release.replicas - release.color_replicas(self.new)  # with what is live: 0 when the color is up
        if pods <= 0 or (self.resume and self.phase != PREVIEW):
            return
        try:
            found = live_capacity.new_color_shortfalls(self.stack, checked.namespace, checked.cluster.context,
                                                       release, pods)
        except live_capacity.QuotaUnreadable as error:
            self.log.say(f"could not read the namespace's ResourceQuotas: {error}; going on")
            return
        if found.refused:
            requests, limits = live_capacity.admitted_resources(release, None)
            each = "; ".join(f"{kind} " + ", ".join(f"{k} {v}" for k, v in sorted(given.items()))
                             for kind, given in (("requests", requests), ("limits", limits)) if given) or "none"
            also = f"; the ResourceQuotas too: {'; '.join(found.short)}" if found.short else ""
            raise OperationError(
                f"the namespace's LimitRanges refuse the pods of {self.new} of {self.o.release} (resources {each}): "
                f"{'; '.join(found.refused)}{also}; the API server would refuse each pod and the preview update "
                f"would wait 10 minutes for them: change the release's resources (app-update:releases."
                f"{self.o.release}.resources) or the LimitRange (kubectl edit limitrange -n {checked.namespace}); "
                f"nothing was written")
        if found.short:
            requests = live_capacity.pod_requests(release)
            each = ", ".join(f"{k} {v}" for k, v in sorted(requests.items()) if k in ("cpu", "memory")) or "none"
            raise OperationError(
                f"the namespace's ResourceQuotas cannot hold {self.new} of {self.o.release} ({pods} pods, requests "
                f"{each} each) beside {self.old}: {'; '.join(found.short)}; the API server would refuse its pods and "
                f"the preview update would wait 10 minutes for them: raise the quota (kubectl edit resourcequota -n "
                f"{checked.namespace}) or lower the release's replicas or resources.requests; nothing was written")

    def _preview_changes(self, tracker: _ColorTracker) -> list[stacks.Change]:
        """The new color at full size with the new tag (replicas unset: the release's)."""
        new, o = self.new, self.o
        return [stacks.Change(o.release, f"{new}.tag", tracker.get(f"{new}.tag"), o.tag),
                stacks.Change(o.release, f"{new}.replicas", tracker.get(f"{new}.replicas"), None)]

    def _result(self, code: int, reason: str | None, switched: bool = False) -> BlueGreenRun:
        return BlueGreenRun(code, self.judged, switched, reason, self.log.path_text,
                            {"old": self.old, "new": self.new})

    def _set_phase(self, phase: str, **changes: Any) -> None:
        self.phase = phase
        self.held.write(phase=phase, **changes)

    # -- the moves ------------------------------------------------------------------------------
    def _drive(self, url: str | None, stale: list[live_state.Drift]) -> BlueGreenRun:
        o, stack, log, tracker = self.o, self.stack, self.log, self.tracker
        once = stacks.RetryPolicy(attempts=1, lock_wait=o.retry.lock_wait, pause=o.retry.pause)
        log.say(f"blue-green {o.release} {o.tag} on {stack.name}: {self.old} ({self.old_tag}) is active, {self.new} "
                f"takes {o.tag}; judged {o.interval:g}s on {url or 'the preview (no probes)'}"
                + (f" from Prometheus at {o.metrics}" if o.metrics else "") + f", error budget {100 * o.max_error_rate:g}%, "
                f"p99 limit {1000 * o.max_p99:.0f}ms; scale-down delay "
                + ("none (--keep-old)" if o.keep_old else f"{o.scale_down_delay:g}s"), url=url,
                colors={"old": self.old, "new": self.new})
        start = self.phase
        if self.record is not None:
            log.say(f"resuming the run of {leases.holder_text(self.record)} (lease expired "
                    f"{self.record.get('expires')}) at its {start} phase")
        if start in SWITCHED:
            _write_stale(stack, stale, tracker.heartbeat)
            return self._window(resumed=True)
        try:
            _write_stale(stack, stale, tracker.heartbeat)
            if start in (PREVIEW, JUDGING):  # a resumed run's preview is up already: its update changes nothing
                log.say(f"1) {self.new} := {o.tag} at full size, behind the preview Service: updating {stack.name}")
                tracker.update({c.field: c.new for c in self._preview_changes(tracker)},
                               f"bluegreen {o.release} {o.tag}: {self.new} up behind the preview Service", once)
                self._set_phase(JUDGING)
                log.say(f"2) judging {o.tag} on the preview Service for {o.interval:g}s")
                tracker.heartbeat.doing(f"judging {o.tag} on the preview Service")
                verdict = self._judge(url)
                tracker.heartbeat.doing(None)
                if verdict:
                    raise _Verdict(verdict)
            self._switch(once)  # a run resumed in its switch: the same update again converges it
        except LeaseLost:
            raise
        except _Verdict as verdict:
            return self._rollback(f"the judge failed {o.tag}: {verdict}")
        except stacks.UpdateFailed as failed:
            if self.phase == SWITCHING:
                self.switch_ran = self.switch_ran or failed.ran
            return self._rollback(f"the stack update failed: {failed.cause}")
        except KeyboardInterrupt:
            return self._rollback("interrupted by the operator")
        except Exception as error:  # noqa: BLE001 (any failure before the switch ends on the old color)
            return self._rollback(stacks.error_line(error))
        return self._window()

    def _judge(self, url: str | None) -> str | None:
        from operations import step_checks

        o, log = self.o, self.log
        version = o.tag.split("@", 1)[0]  # what the app reports: a tag pinned by digest reports its tag
        rounds = None
        if o.metrics:
            # Every round judged began after the new color was scraped (no settle phase); only its series
            # count (the old color's are the users' traffic on the active Service, not the preview's).
            judge = Judge(version, 100.0, o.max_error_rate, o.max_p99, requested_weight=100,
                          share_design_effect=step_checks.METRICS_DESIGN_EFFECT,
                          min_canary_answers=step_checks.min_canary_answers(o, 100.0))
            try:
                rounds = _NewVersionRounds(step_checks.metrics_rounds(
                    self.metrics_source, self.scrape_interval, o, lambda text: log.say(f"  {text}")), version)
            except step_checks.NotLive as error:
                return str(error)
        else:
            # Every answer of the preview Service should come from the new version: judged at a share of 100%.
            judge = Judge(version, 100.0, o.max_error_rate, o.max_p99, settle_seconds=o.settle, requested_weight=100,
                          min_canary_answers=step_checks.min_canary_answers(o, 100.0))
        prober = Prober(url, judge, o.rate, o.concurrency, o.timeout, self.clock, rounds=rounds,
                        judge_probes=rounds is None, settle=o.settle)

        def tick(elapsed: float) -> None:
            p99 = judge.canary.p99()
            log.say(f"  preview {elapsed:5.1f}s  requests {judge.total.requests:>6}  {version} "
                    f"{judge.canary_share:5.1f}%  errors {100 * judge.total.error_rate:5.2f}%  p99 "
                    f"{'-' if p99 is None else f'{1000 * p99:.0f}ms'}"
                    + ("  (settling: share not judged yet)" if judge.settling else ""))

        started = self.clock.now()
        try:
            verdict = prober.run(o.interval, tick)
        finally:
            prober.stop.set()  # Ctrl-C included: no probe thread outlives the judging
        if not verdict and judge.total.requests > 0:
            verdict = judge.conclude()  # too few answers from the new version: "not reached"
        if not verdict and judge.total.requests == 0:
            verdict = "no probe of the preview Service was answered (is it serving?)"
        p99 = judge.canary.p99()
        self.judged = StepResult(
            step=1, weight=100, requests=judge.total.requests, canary_requests=judge.canary.requests,
            canary_share=round(judge.canary_share, 2), error_rate=round(100 * judge.total.error_rate, 2),
            canary_error_rate=round(100 * judge.canary.error_rate, 2),
            p99_ms=None if p99 is None else round(1000 * p99, 1), elapsed=round(self.clock.now() - started, 2),
            verdict=verdict, effective_share=100.0)
        log.event("step", **asdict(self.judged))
        if not verdict:
            log.say(f"   passed: {self.judged.requests} requests, {version} {self.judged.canary_share}%, errors "
                    f"{self.judged.error_rate}%, p99 {self.judged.p99_ms}ms")
        return verdict

    def _switch(self, once: stacks.RetryPolicy) -> None:
        o, stack, tracker = self.o, self.stack, self.tracker
        # The record names the tag judged (this run's, or the lease's when resumed), never what is live.
        after = stacks.apply_changes(tracker.config, [stacks.Change(o.release, "active", self.old, self.new),
                                                      stacks.Change(o.release, f"{self.new}.tag", None, o.tag)])
        checked = stacks.check_config(stack.name, tracker.full_config, after).release(o.release)
        from operations.promotion import actor, next_revision, utc_now

        judged = self.judged
        evidence = (f"{judged.requests} requests to the preview Service in {judged.elapsed:g}s, error rate "
                    f"{judged.error_rate:g}%, p99 {judged.p99_ms}ms") if judged else (self.record or {}).get("evidence")
        entry = {"how": "bluegreen", "image": served_image(checked), "revision": next_revision(stacks.revisions(stack)),
                 "verdict": "passed", "evidence": evidence or "",
                 "at": utc_now().isoformat(timespec="seconds").replace("+00:00", "Z"), "by": actor()}
        if not self.switch_ran:  # a resumed switch keeps the record from before the first try
            self.verification_before = _verification(stack, o.release)
        self._set_phase(SWITCHING, switchTried=True, verificationBefore=self.verification_before, evidence=evidence)
        self.log.say(f"3) switching the active Service to {self.new} ({o.tag}): one update, Services only")
        tracker.heartbeat.check()
        _put_verification(stack, o.release, entry)
        self.switch_ran = True  # from here on, part of the switch may be live whatever happens
        try:
            tracker.update({"active": self.new}, f"bluegreen {o.release} {o.tag}: switch to {self.new}", once)
        except stacks.UpdateFailed as failed:
            self.switch_ran = failed.ran
            raise

    def _window(self, resumed: bool = False) -> BlueGreenRun:
        o, stack, log = self.o, self.stack, self.log
        if resumed:  # what is left of the window the lease names
            delay = max(0.0, float((self.record or {}).get("scaleDownAt") or 0) - leases.wall_clock())
            return self._scale_down_after(delay)
        if o.keep_old:
            log.say(f"switched: {o.release} serves {o.tag} from {self.new}; {self.old} ({self.old_tag}) stays at full "
                    f"size (--keep-old); to switch back in one update: {undo_command(stack.name, o.release)}")
            self.held.end(leases.PROMOTED, f"switched to {self.new}; {self.old} kept at full size (--keep-old)")
            return self._result(0, None, switched=True)
        scale_down_at = leases.wall_clock() + o.scale_down_delay
        self._set_phase(WINDOW, scaleDownAt=scale_down_at, scaleDownTime=leases.iso(scale_down_at))
        log.say(f"switched: {o.release} serves {o.tag} from {self.new}; {self.old} ({self.old_tag}) stays at full "
                f"size for {o.scale_down_delay:g}s, then is scaled to 0; to switch back meanwhile (one update, no "
                f"pod): {undo_command(stack.name, o.release)}")
        return self._scale_down_after(o.scale_down_delay)

    def _scale_down_after(self, delay: float) -> BlueGreenRun:
        o, stack, log, tracker = self.o, self.stack, self.log, self.tracker
        tracker.heartbeat.doing(f"waiting {delay:g}s before scaling {self.old} down")
        try:
            self.clock.sleep(delay)
        except KeyboardInterrupt:
            # The switch stands (judged, live): the old color stays up; the lease is left to expire, and
            # then the watchdog finishes the scale-down (unless someone undoes first).
            tracker.heartbeat.doing(None)
            log.say(f"interrupted in the window: {self.new} ({o.tag}) stays active and {self.old} ({self.old_tag}) at "
                    f"full size; the watchdog scales {self.old} down once the lease expires (at "
                    f"{self.held.lease.record.get('expires') if self.held.lease else '?'}): {finish_command(stack.name)}"
                    f"; to switch back instead: {undo_command(stack.name, o.release)}")
            self.held.write(note="the driver was interrupted in the window: the watchdog finishes the scale-down")
            return self._result(1, "interrupted in the window", switched=True)
        tracker.heartbeat.doing(None)
        # The undo's takeover of the lease wins over this write (the run then stops), and the live
        # active color is read again: the run never scales down the color that is active.
        self._set_phase(SCALING_DOWN)
        info = _live_info(stack, o.release)
        if info.get("activeColor") != self.new:
            log.say(f"the active Service is on {info.get('activeColor')} again (undone in the window): {self.old} "
                    "is not scaled down, and this run changes nothing more")
            self.held.end(UNDONE, f"the active Service was on {info.get('activeColor')} again after the window")
            return self._result(1, "undone in the window")
        log.say(f"4) scaling {self.old} ({self.old_tag}) to 0")
        try:
            with interrupts.shielded(f"the scale-down of {self.old} (the switch to {self.new} stands)"):
                tracker.update({f"{self.old}.replicas": 0},
                               f"bluegreen {o.release} {o.tag}: {self.old} scaled down after the window")
        except LeaseLost:
            raise
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (the switch stands; said, left to the watchdog)
            cause = error.cause if isinstance(error, stacks.UpdateFailed) else stacks.error_line(error)
            log.say(f"switched to {self.new} ({o.tag}), but {self.old} could not be scaled down ({cause}): "
                    f"{tracker.state_line()}; finish with: {finish_command(stack.name)}")
            self.held.end(leases.ABORT_FAILED, f"switched; the scale-down of {self.old} failed ({cause})")
            return self._result(1, f"the scale-down failed: {cause}", switched=True)
        log.say(f"promoted: {o.release} runs {o.tag} on {self.new}; {self.old} is scaled down")
        self.held.end(leases.PROMOTED, None)
        return self._result(0, None, switched=True)

    # -- the way back ---------------------------------------------------------------------------
    def _rollback(self, reason: str) -> BlueGreenRun:
        with interrupts.shielded(f"the way back of {self.o.release} (active on {self.old}, {self.new} scaled down)"):
            return self._rollback_shielded(reason)

    def _rollback_shielded(self, reason: str) -> BlueGreenRun:
        o, log, tracker = self.o, self.log, self.tracker
        where = {PREVIEW: f"the preview of {self.new}", JUDGING: "the judging",
                 SWITCHING: f"the switch to {self.new}"}.get(self.phase, self.phase)
        log.say(f"ROLL BACK at {where}: {reason}")
        switching = self.phase == SWITCHING
        try:
            self._set_phase(ROLLING_BACK, note=f"rolling back: {reason}")
            code = back_to_old(self.stack, o.release, self.old, self.new, tracker, log,
                               switch_may_have_run=switching and self.switch_ran, restore_verification=switching,
                               verification=self.verification_before, why=f"{o.tag} rolled back: {reason}")
        except LeaseLost as lost:
            log.say(f"STOPPED: {lost}; it is in charge of the release now, this run changes nothing more")
            return self._result(1, reason)
        if code == 0:
            log.say(f"rolled back: {o.release} serves {self.old_tag} from {self.old}; {self.new} ({o.tag}) is "
                    "scaled down")
            self.held.end(leases.ABORTED, reason)
        else:
            self.held.end(leases.ABORT_FAILED, f"{reason}; the way back failed: {tracker.state_line()}")
        if self.judged is not None and self.judged.verdict:
            j = self.judged
            log.say(f"  preview: {j.requests} requests, {o.tag.split('@', 1)[0]} {j.canary_share}%, errors "
                    f"{j.error_rate}%, p99 {j.p99_ms}ms, {j.elapsed}s  ← {j.verdict}")
        return self._result(1, reason)


class _NewVersionRounds:
    """Prometheus's scrape rounds (operations/prometheus.Rounds) with the new version's counts alone."""

    def __init__(self, rounds: Any, version: str):
        self.inner, self.version = rounds, version

    @property
    def rounds(self) -> int:
        return int(self.inner.rounds)

    def poll(self) -> Any:
        increments = self.inner.poll()
        return None if increments is None else {v: c for v, c in increments.items() if v == self.version}


def back_to_old(stack: StackLike, release: str, old: str, new: str, tracker: _ColorTracker, log: RunLog, *,
                switch_may_have_run: bool, restore_verification: bool, verification: dict[str, Any] | None,
                why: str) -> int:
    """Active on `old`, `new` scaled to 0: 0 when both are live, 1 (said, with what is live) when not.

    When the switch may have run (a failed, interrupted or unfinished switch update, or a last
    update in doubt), the Services go back in an update of their own before the new color's pods
    go, so no request reaches a color while it scales down; otherwise one update does both."""
    back = {"active": old}
    try:
        if restore_verification:
            _put_verification(stack, release, verification)
        if switch_may_have_run or _live_info(stack, release).get("activeColor") not in (None, old):
            log.say(f"  the switch may have gone live: the active Service back to {old} first")
            tracker.update(back, f"bluegreen {release}: active back to {old} ({why})")
        # A new color the config never got (a driver that died before its first write) has nothing to scale down.
        down = {f"{new}.replicas": 0} if tracker.get(f"{new}.tag") is not None else {}
        tracker.update({**back, **down}, f"bluegreen {release}: {new} scaled down ({why})")
        return 0
    except LeaseLost:
        raise
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (reported, with what is live)
        cause = "interrupted again" if isinstance(error, KeyboardInterrupt) else (
            error.cause if isinstance(error, stacks.UpdateFailed) else stacks.error_line(error))
        log.say(f"NOT RESTORED ({cause}): {tracker.state_line()}; the lease says so; finish with: "
                f"{finish_command(stack.name)}", live=tracker.live, config=tracker.cfg)
        return 1


# ---------------------------------------------------------------------------------------------
# The watchdog's end of a run whose driver is gone
# ---------------------------------------------------------------------------------------------


def finish(stack: StackLike, release: str, record: dict[str, Any], *, log: RunLog, policy: stacks.RetryPolicy,
           clock: Clock | None = None, lease: Lease | None = None) -> tuple[int, str]:
    """End the run a lease describes safely (the module says how); (exit status, what was done)."""
    colors = record.get("colors") or {}
    old, new = colors.get("old"), colors.get("new")
    if old not in COLORS or new not in COLORS:
        raise OperationError(f"the lease of {release} names no colors: {leases.describe(record, leases.wall_clock())}")
    held = RunLease(lease, log.say)
    tracker, stale = _tracker(stack, release, log, policy, clock or Clock(), "rollout watchdog")
    tracker.heartbeat = Heartbeat(lease, log.say, silent_for=log.silent_for)
    with tracker.heartbeat, interrupts.guard(finish_command(stack.name), log.say), \
            interrupts.shielded(f"the end of the blue-green run of {release}"):
        _write_stale(stack, stale)
        if record.get("phase") in SWITCHED:
            # As the run does: the lease says "scaling-down" before the live active color is read and the
            # update runs, so that an undo is refused from here on (it would leave `active` on a color at 0).
            try:
                held.write(phase=SCALING_DOWN)
            except LeaseLost as lost:
                return 0, f"stopped: {lost}; nothing scaled down"
            info = _live_info(stack, release)
            if info.get("activeColor") != new:
                held.end(UNDONE, f"the active Service is on {info.get('activeColor')}: nothing scaled down")
                return 0, f"the active Service is on {info.get('activeColor')} (undone): nothing scaled down"
            if record.get("keepOld"):
                held.end(leases.PROMOTED, "kept the old color (--keep-old)")
                return 0, f"{old} kept at full size (--keep-old)"
            try:
                tracker.update({f"{old}.replicas": 0}, f"bluegreen {release}: {old} scaled down after the window "
                                                      "(watchdog)")
            except LeaseLost as lost:
                return 0, f"stopped: {lost}; nothing scaled down"
            except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (said; the next run tries again)
                cause = error.cause if isinstance(error, stacks.UpdateFailed) else stacks.error_line(error)
                held.end(leases.ABORT_FAILED, f"switched; the scale-down of {old} failed ({cause})")
                return 1, f"the scale-down of {old} failed ({cause})"
            held.end(leases.PROMOTED, f"the watchdog scaled {old} down after the window")
            return 0, f"FINISHED by the watchdog: {new} active, {old} scaled down after the window"
        tried = bool(record.get("switchTried"))
        code = back_to_old(stack, release, old, new, tracker, log, switch_may_have_run=tried or _in_doubt(stack),
                           restore_verification=tried,
                           verification=record.get("verificationBefore"),
                           why="its driver is gone" if record.get("state") != leases.ENDED else "its way back failed")
        if code == 0:
            held.end(leases.ABORTED, f"rolled back by the watchdog: active on {old}, {new} scaled down")
            return 0, f"ROLLED BACK by the watchdog: active on {old}, {new} scaled down"
        held.end(leases.ABORT_FAILED, f"the watchdog's way back failed: {tracker.state_line()}")
        return 1, "ROLL BACK FAILED"


def watch_release(stack: StackLike, release: str, spec: leases.LeaseSpec, record: dict[str, Any], *, out: TextIO,
                  policy: stacks.RetryPolicy, clock: Clock | None = None) -> tuple[str, bool]:
    """The watchdog's line for a blue-green lease that needs it (expired, or its way back failed)."""
    name = f"{stack.name} {release}"
    now = leases.wall_clock()
    if (record.get("phase") == WINDOW and record.get("state") != leases.ENDED
            and now < float(record.get("scaleDownAt") or 0)):
        return (f"{name}: {leases.describe(record, now)}; its window ends at {record.get('scaleDownTime')}: "
                "left alone until then"), False
    try:
        lease = leases.watchdog_takeover(spec, record, takeover_fields(record, stack.name, release, "watchdog"))
    except leases.LeaseHeld as held:
        return f"{name}: {held}: left to it", False
    why = leases.takeover_reason(record, "way back")
    print(f"{name}: ending the blue-green run ({record.get('phase')}): {why}", file=out, flush=True)
    code, done = finish(stack, release, record, log=RunLog(None, out), policy=policy, clock=clock, lease=lease)
    return f"{name}: {done} ({why}); the lease says so", code != 0


# ---------------------------------------------------------------------------------------------
# Undo: the selector switch back
# ---------------------------------------------------------------------------------------------


def undo_bluegreen(stack: StackLike, release: str, yes: bool, confirm: stacks.Confirm, *, out: TextIO | None = None,
                   spec: leases.LeaseSpec | None = None, policy: stacks.RetryPolicy | None = None,
                   clock: Clock | None = None) -> int:
    """Switch the active Service to the other color (the module says when it takes one update, when two)."""
    log = RunLog(None, out or sys.stdout)
    tracker, stale = _tracker(stack, release, log, policy or stacks.RetryPolicy(), clock or Clock(), "rollout undo")
    info = _live_info(stack, release)
    active = _active(info, tracker.cfg)
    back = other(active)
    tags = info.get("tags") or {}
    tag = tags.get(back) or tracker.get(f"{back}.tag")
    if tag is None:
        raise OperationError(f"nothing to undo: {back}, the color {release} would switch back to, was never deployed "
                             f"({active} {tags.get(active)} is the only one)")
    record = spec.read() if spec else None
    now = leases.wall_clock()
    live_run = record is not None and record.get("state") != leases.ENDED and not leases.is_expired(record, now)
    if live_run and (record or {}).get("phase") not in (WINDOW,):
        raise OperationError(f"a blue-green run of {release} is {record.get('phase')}: {leases.describe(record, now)}; "
                             + ("wait for its scale-down to end, then undo (it scales the old color up first)"
                                if record.get("phase") == SCALING_DOWN else
                                "the active Service is still on the old color: stop that run (Ctrl-C) instead"))
    served = _served_before(stack, release, back, tag)
    if served is None:
        raise OperationError(f"{back} runs {tag}, which never served {release}'s users on stack {stack.name} (no "
                             f"successful update had {back} active with {tag}): undo only goes back to what served; "
                             f"judge it first with: python -m rollout bluegreen {stack.name} --release {release} "
                             f"--tag {tag}")
    replicas = info.get("replicas") or {}
    scaled_down = replicas.get(back, 0) == 0 if back in replicas else tracker.get(f"{back}.replicas") == 0
    full = int(tracker.cfg.get("replicas") or 0)
    log.say(f"Undo {release} on stack {stack.name}: active {active} ({tags.get(active)}) → {back} ({tag}, which "
            f"served in revision {served})")
    if scaled_down:
        log.say(f"  {back} is scaled down (its window is over): 1) {back} scaled up to {full} pods of {tag}, the "
                f"update awaits them ready  2) the active Service switched to {back}; {active} stays at full size "
                "behind the preview Service")
    else:
        log.say(f"  one update: the active and preview Services' selectors swap; no Deployment changes, no pod starts; "
                f"{active} stays at full size behind the preview Service")
    protected = stacks.is_protected(tracker.full_config)
    if not yes and not confirm(f"Switch {release} on stack {stack.name} back to {back} ({tag})?",
                               stack.name if protected else None):
        log.say("not confirmed: nothing was changed (pass --yes to skip the question)")
        return 1
    lease = None
    if spec is not None and record is not None and record.get("state") != leases.ENDED:
        if live_run:
            log.say(f"taking over the lease: {leases.describe(record, now)}; that run stops at its next write")
        lease = leases.acquire(spec.store, spec.key, takeover_fields(record, stack.name, release, "undo"),
                               spec.seconds, may_take=_undo_may_take)
    held = RunLease(lease, log.say)
    tracker.heartbeat = Heartbeat(lease, log.say, silent_for=log.silent_for)
    with tracker.heartbeat:
        _write_stale(stack, stale)
        if scaled_down:
            tracker.update({f"{back}.tag": tag, f"{back}.replicas": None},
                           f"undo {release}: {back} ({tag}) scaled up before the switch back")
        tracker.update({"active": back}, f"undo {release}: switch back to {back} ({tag})")
    log.say(f"{stack.name}: {release} serves {tag} from {back} again")
    held.end(UNDONE, f"undone: active on {back} ({tag})")
    return 0


def _served_before(stack: StackLike, release: str, color: str, tag: Any) -> int | None:
    """The newest successful update that had `color` active with `tag` (its revision number), or None."""
    for revision in stacks.revisions(stack):
        cfg = (revision.releases or {}).get(release) or {}
        if (revision.kind == "update" and revision.succeeded and cfg.get("active") == color
                and stacks.get_path(cfg, f"{color}.tag") == tag):
            return revision.number
    return None


def _undo_may_take(record: dict[str, Any] | None, now: float) -> str | None:
    """Undo takes a run's lease in its window (checked before), or an expired one: the operator's word. Never
    a live lease that the watchdog (or another undo) holds: it is ending the run (`aborting`), whatever phase
    the lease it took kept."""
    if record is None or record.get("state") == leases.ENDED or leases.is_expired(record, now):
        return None
    if record.get("state") == leases.ABORTING:
        return (f"{leases.holder_text(record)} is ending the run now ({record.get('phase')}): "
                f"{leases.describe(record, now)}; undo once it is done")
    if record.get("phase") != WINDOW:
        return f"the run is {record.get('phase')} now: {leases.describe(record, now)}"
    return None


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _delay(text: str) -> float:
    value = duration_argument(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a duration of 0 or more (got {text!r})")
    return value


def fits(stack: str, settings: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """Before the environment: the release is BlueGreen, and the new tag on its idle color makes a valid
    stack file (the run's first write)."""
    from model.config import ConfigError, load
    from operations.stacks import RELEASES_KEY, Change, apply_changes

    releases = parse_config_value(settings.get(RELEASES_KEY)) or {}
    cfg = releases.get(args.release) or {}
    if cfg.get("strategy") != STRATEGY:
        return [f"--release {args.release}: it is a {cfg.get('strategy')} release in Pulumi.{stack}.yaml; "
                "bluegreen needs a BlueGreen one"]
    active = cfg.get("active")
    if active not in COLORS or args.tag is None:
        return []  # the stack file's own check says why; --resume: the lease's tag
    if args.tag == stacks.get_path(cfg, f"{active}.tag"):  # said again against what is live, once the stack opens
        return [f"--tag {args.tag}: Pulumi.{stack}.yaml already has it on the active color ({active}) of "
                f"{args.release}: nothing to switch to"]
    idle = other(active)
    first = apply_changes(releases, [Change(args.release, f"{idle}.tag", None, args.tag),
                                     Change(args.release, f"{idle}.replicas", None, None)])
    try:
        load({**settings, RELEASES_KEY: first}, stack)
    except ConfigError as error:
        return [f"--tag {args.tag!r} cannot go into {stack}'s config: {problem}" for problem in error.problems]
    return []


# The run's options: their defaults, and their keys in the lease's `run` (what --resume takes from it).
RUN_DEFAULTS = {"interval": 60.0, "max_error_rate": 0.01, "max_p99": 0.5, "url": None, "rate": 50.0, "settle": 5.0,
                "metrics": None, "metrics_selector": None, "scrape_interval": None, "metrics_wait": None,
                "scale_down_delay": DEFAULT_SCALE_DOWN_DELAY, "keep_old": False}
LEASE_RUN_KEYS = {"interval": "interval", "max_error_rate": "maxErrorRate", "max_p99": "maxP99", "url": "url",
                  "rate": "rate", "settle": "settle", "metrics": "metrics", "metrics_selector": "metricsSelector",
                  "scrape_interval": "scrapeInterval", "metrics_wait": "metricsWait",
                  "scale_down_delay": "scaleDownDelay", "keep_old": "keepOld"}


def run_options(args: argparse.Namespace, record: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The options given, then (resuming) the lease's, then the defaults; and the names taken from the lease."""
    return merged_options(args, record, RUN_DEFAULTS, LEASE_RUN_KEYS)


def _usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments alone (exit 2), before the environment."""
    if not args.tag and not args.resume:
        return "--tag is required (the image tag to switch to), unless --resume"
    if args.keep_old and args.scale_down_delay is not None:
        return "--keep-old never scales the old color down: --scale-down-delay would not be used (drop one)"
    if args.rate == 0 and not args.metrics:
        return "--rate 0 sends no probes: then judge from --metrics prometheus=URL"
    if args.metrics and args.scrape_interval is not None:
        from operations.step_checks import check_interval

        try:
            check_interval(RUN_DEFAULTS["interval"] if args.interval is None else args.interval, args.scrape_interval)
        except stacks.InputError as error:
            return str(error)
    return None


def cmd_bluegreen(args: argparse.Namespace) -> int:
    problem = _usage(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return stacks.EXIT_USAGE
    log_path = args.log or args.cwd / "build" / "bluegreen" / (
        f"{args.stack}-{args.release}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log")

    def action() -> int:
        stack = stacks.open_stack(args.stack, args.cwd)
        spec = leases.spec_for(stack, args.release, args.cwd, args.lease_seconds)
        record = spec.read() if args.resume else None
        if args.resume and record is None:
            raise OperationError(leases.resume_may_take(None, 0.0) or "no lease")
        values, from_lease = run_options(args, record)
        options = BlueGreenOptions(release=args.release, retry=stacks.RetryPolicy(lock_wait=args.lock_wait), **values)
        protected = stacks.is_protected(stack.get_all_config())
        verb = "Resume the blue-green release" if args.resume else "Run a blue-green release"
        if not args.yes and not stacks.confirm_tty(f"{verb} of {args.release} {options.tag} on stack {args.stack}?",
                                                   args.stack if protected else None):
            print("not confirmed: nothing was changed (pass --yes to skip the question)")
            return 1
        if from_lease:
            print(f"from the lease: {', '.join(from_lease)}")
        run = run_bluegreen(stack, options, log_path=log_path, lease=spec, resume=args.resume)
        print(f"log: {run.log_path}")
        return run.exit_code

    return stacks.guarded(action)


def cmd_undo(args: argparse.Namespace) -> int:
    """`rollout undo`: a BlueGreen release (with --release, no --to-revision) switches back; every other
    case is operations/revisions.py's undo."""
    from operations import revisions

    def action() -> int:
        stack = stacks.open_stack(args.stack, args.cwd)
        releases = stacks.releases_of(stack.get_all_config()) or {}
        if (releases.get(args.release) or {}).get("strategy") != STRATEGY:
            return revisions.do_undo(stack, args.to_revision, args.release, args.yes, stacks.confirm_tty)
        if args.to_revision is not None:
            raise stacks.InputError(f"--to-revision: {args.release} is a BlueGreen release, whose undo switches the "
                                    "active Service back to the other color (drop --to-revision)")
        spec = None
        try:
            spec = leases.spec_for(stack, args.release, args.cwd)
        except stacks.InputError as error:  # undo goes on without a lease: it is a way back
            print(f"note: no lease is kept ({error})", file=sys.stderr)
        return undo_bluegreen(stack, args.release, args.yes, stacks.confirm_tty, spec=spec)

    return stacks.guarded(action)


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "bluegreen", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="bring a tag up on the idle color, judge it on the preview Service, switch all traffic at once",
        description="For a BlueGreen release: 1) the idle color takes the tag at full size behind the preview "
                    "Service (the update awaits its pods ready); 2) probe traffic to the preview Service (its address "
                    "from the stack outputs, or --url) is judged for --interval on error rate, p99 latency and the "
                    "share of answers from the new version (X-App-Version header); 3) the active Service switches to "
                    "the new color in one update that changes no Deployment, recording the verification that "
                    "`rollout promote` takes as proof; 4) after --scale-down-delay the old color is scaled to 0, "
                    "unless --keep-old. Until then `rollout undo STACK --release R` switches back in one update. A "
                    "failing judge, a failed, locked or interrupted update, an error, Ctrl-C or SIGTERM before or "
                    "during the switch ends with the active Service on the old color and the new one scaled to 0. "
                    "The run holds the release's lease beside the stack's state (file:// or s3:// backends): a "
                    "second run is refused, and if this process dies, `rollout watchdog` ends the run safely once "
                    "the lease expires. Needs the Pulumi CLI and a login to the stack's backend.",
        epilog="example:\n  python -m rollout bluegreen staging --release app-bg --tag v2 --interval 60s "
               "--max-error-rate 1% --max-p99 500ms",
    )
    parser.add_argument("stack", type=stack_name)
    parser.add_argument("--release", required=True, metavar="NAME")
    parser.add_argument("--tag", help="the image tag to bring up on the idle color and switch to (required, unless "
                                      "--resume)")
    parser.add_argument("--interval", type=positive_duration_argument,
                        help="how long the preview is judged (default 60s)")
    parser.add_argument("--max-error-rate", type=percent_argument, help="error budget (default 1%%)")
    parser.add_argument("--max-p99", type=positive_duration_argument, help="p99 latency limit (default 500ms)")
    parser.add_argument("--url", type=probe_url_argument,
                        help="probe this URL instead of the preview Service's address (with no path of its own, the "
                             "release's previewCheck.path is appended)")
    parser.add_argument("--rate", type=rate_argument,
                        help="probe requests per second (default 50; 0: no probes, with --metrics)")
    parser.add_argument("--metrics", type=metrics_argument, metavar="prometheus=URL",
                        help="judge the preview's traffic from Prometheus (the new version's per-version counters) "
                             "instead of the probe answers; probes, if --rate > 0, still send traffic")
    parser.add_argument("--metrics-selector", metavar="LABELS",
                        help="PromQL label matchers naming the release's series, {namespace}, {release} and {service} "
                             "filled in from the stack (default: "
                             "'namespace=\"{namespace}\",pod=~\"{release}-(blue|green)-[a-z0-9]+-[a-z0-9]+\"')")
    parser.add_argument("--scrape-interval", type=positive_duration_argument, metavar="DURATION",
                        help="Prometheus's scrape interval for the release (default: read from its /api/v1/targets); "
                             "--interval must be at least 3 of them")
    parser.add_argument("--metrics-wait", type=positive_duration_argument, metavar="DURATION",
                        help="how long to wait for the new version's series and a whole scrape round (default: 3 "
                             "scrape intervals + 30s)")
    parser.add_argument("--settle", type=duration_argument,
                        help="time before the share of answers from the new version is judged (default 5s)")
    parser.add_argument("--scale-down-delay", type=_delay, metavar="DURATION",
                        help="how long the old color stays at full size after the switch, for an instant undo "
                             "(default 30s, as Argo Rollouts)")
    parser.add_argument("--keep-old", action="store_const", const=True,
                        help="never scale the old color down: it stays behind the preview Service (not with "
                             "--scale-down-delay)")
    parser.add_argument("--lock-wait", type=duration_argument, default=300.0,
                        help="how long to wait for another update's lock on the stack (default 5m)")
    parser.add_argument("--log", type=Path, help="log file (default build/bluegreen/<stack>-<release>-<time>.log)")
    parser.add_argument("--lease-seconds", type=leases.lease_seconds_argument, default=leases.DEFAULT_SECONDS,
                        metavar="DURATION", help="the run's lease beside the stack's state: how long it outlives its "
                                                 "last renewal (default 5m; renewed every third of it)")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the run an expired lease describes, from its phase (preview, judging, switch or "
                             "window), after checking that what is live still matches it (options not given come from "
                             "the lease)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=cmd_bluegreen)
