"""`python -m rollout canary`: progressive delivery through the stack, from a laptop or CI.

For each weight step: set the weight (and, first, the canary tag), update the stack, then
send probe traffic to the release's address and judge the canary as the answers arrive
(model/judge.py: sequential tests valid however often they look), or as Prometheus counts the
users' traffic (operations/prometheus.py). A failing canary is stopped as soon as its failure is clear:
weight back to 0, stack updated, exit 1. After the last step the canary tag becomes the
stable tag (the stable Deployment rolls in place) and the weight goes back to 0.

The app must say which version answered in an `X-App-Version` header equal to the image
tag (the sample app in app/ does).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from model import canary_math
from model.judge import Judge
from model.stack_file import stack_name
from operations import canary_lease, interrupts, live_state, stacks
from operations import lease as leases
from operations.lease import Heartbeat, Lease, LeaseLost
from operations.stacks import OperationError, StackLike

DEFAULT_STEPS = (5, 25, 50, 100)  # percent of traffic to the canary, step by step


@dataclass
class CanaryOptions:
    release: str
    tag: str
    steps: list[int] = field(default_factory=lambda: list(DEFAULT_STEPS))
    interval: float = 60.0
    max_error_rate: float = 0.01
    max_p99: float = 0.5
    url: str | None = None
    rate: float = 50.0  # probe requests per second
    concurrency: int = 8
    timeout: float = 5.0
    # Step updates are tried once (a failure is a reason to abort); the abort and the promotion
    # within this policy. Either waits up to lock_wait for another update's lock.
    retry: stacks.RetryPolicy = field(default_factory=stacks.RetryPolicy)
    # Seconds after a weight change before the share tests count (the load balancer applies it).
    settle: float = 5.0
    # Judge from Prometheus (its URL) instead of the probe answers; probes, if rate > 0, only add traffic.
    metrics: str | None = None
    # Label matchers naming the release's series ({namespace}, {release}, {service} filled in from the
    # stack); None: the labels' own release selector (operations.prometheus.Labels.release).
    metrics_selector: str | None = None
    # Prometheus's scrape interval (seconds); None: read from its /api/v1/targets for the release's targets.
    scrape_interval: float | None = None
    # How long a step waits for the canary's series and a whole scrape round after the weight is live;
    # None: 3 scrape intervals + 30 s.
    metrics_wait: float | None = None
    # Requests per independent trial for the share tests (model/judge.py); None: 1 for probes (a new
    # connection each), METRICS_DESIGN_EFFECT for the users' traffic from Prometheus (keep-alive).
    share_design_effect: float | None = None
    # Canary answers a step needs to pass ("canary not reached" below it); None: MIN_CANARY_ANSWERS, or
    # half the answers the probes can expect from the canary when that is fewer (warned before the run).
    min_canary_answers: int | None = None
    # Seconds to wait for the weight to be live where it takes effect (operations/live_weight.py) before
    # a step's evidence counts; None: not checked. `rollout canary` checks by default (--verify-timeout).
    verify_timeout: float | None = None
    live_reader: Any = None  # a live_weight reader; None: built from the stack when verify_timeout is set
    # A phase before the weighted steps where only requests with the release's canary.match reach the canary
    # (operations/match_phase.py); match_value: the header value the probes send for a regex match.
    match_only: bool = False
    match_value: str | None = None


@dataclass
class StepResult:
    step: int
    weight: int
    requests: int
    canary_requests: int
    canary_share: float
    error_rate: float
    canary_error_rate: float
    p99_ms: float | None
    elapsed: float
    verdict: str | None
    effective_share: float | None = None  # what the judge judged against (replicas mode: the pods' share)


@dataclass
class CanaryRun:
    exit_code: int
    steps: list[StepResult]
    aborted: str | None = None
    log_path: str | None = None


# ---------------------------------------------------------------------------------------------
# Probe traffic
# ---------------------------------------------------------------------------------------------


class _DeadlineSocket:
    """A connected socket whose every read waits only until one overall deadline: a server that
    trickles its answer (a byte a second) cannot stretch a probe past it, as a per-read timeout can."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock, self.deadline = sock, deadline

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the probe's deadline passed")
        self.sock.settimeout(remaining)
        return self.sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        # As socket.makefile does: the connection's close() leaves the descriptor to the response.
        self.sock._io_refs += 1  # type: ignore[attr-defined]
        return io.BufferedReader(socket.SocketIO(self, "rb"))  # type: ignore[arg-type]

    def _decref_socketios(self) -> None:
        self.sock._decref_socketios()  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def probe_once(url: urllib.parse.SplitResult, timeout: float,
               headers: dict[str, str] | None = None) -> tuple[str | None, bool, float]:
    """One GET on a new connection (a load balancer routes per connection): (version, ok, seconds).
    `timeout` bounds the whole probe, connect and answer together; `headers`: a match route's header or cookie."""
    import http.client  # here, not at the top: only the verbs that probe need it (ssl and email come with it)

    start = time.perf_counter()
    deadline = time.monotonic() + timeout
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(url.hostname, url.port, timeout=timeout)
    try:
        connection.connect()
        connection.sock = _DeadlineSocket(connection.sock, deadline)
        connection.request("GET", url.path or "/", headers={"User-Agent": "app-update-canary", **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response.getheader("X-App-Version"), response.status < 500, time.perf_counter() - start
    except (OSError, http.client.HTTPException):
        return None, False, time.perf_counter() - start
    finally:
        connection.close()


class Clock:
    """Real time, for `rollout canary`. Tests and benchmarks pass a virtual one (same methods)
    so that a step's interval passes as fast as its probes answer."""

    def now(self) -> float:
        return time.monotonic()

    def wait_until(self, event: threading.Event, moment: float) -> bool:
        """Wait until `moment` or until `event` is set; whether it is set."""
        return event.wait(max(0.0, moment - self.now()))

    def sleep(self, seconds: float) -> None:
        # In slices: an interrupt forwarded to a worker thread (a wave's canary) is delivered between them.
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.5))


class Prober:
    """Paced probe traffic from a few threads, fed into a Judge, for one step's interval.

    Request n goes out at start + n / rate; the step ends with the first request whose time is
    past the interval, or as soon as the judge has a verdict.
    """

    def __init__(self, url: str | None, judge: Judge, rate: float, concurrency: int, timeout: float,
                 clock: Clock | None = None, rounds: Any = None, judge_probes: bool = True, settle: float = 0.0,
                 headers: dict[str, str] | None = None):
        self.url = urllib.parse.urlsplit(url) if url else None
        self.headers = headers  # the match-only phase's header or cookie
        self.rounds = rounds  # operations.prometheus.Rounds: the judge reads the users' traffic from it
        self.settle_rounds_from: int | None = None
        self.error: Exception | None = None
        self.judge_probes = judge_probes
        self.settle = settle
        self.judge = judge
        self.rate = rate
        self.timeout = timeout
        self.clock = clock or Clock()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.verdict: str | None = None
        self.next_slot = 0
        self.concurrency = concurrency

    def _work(self, deadline: float, on_tick: Callable[[float], None]) -> None:
        while not self.stop.is_set():
            with self.lock:
                slot = self.next_slot
                self.next_slot += 1
            moment = self.start + slot / self.rate
            if moment >= deadline:
                self.stop.set()  # the interval is over
                return
            if self.clock.wait_until(self.stop, moment):
                return
            version, ok, seconds = (probe_once(self.url, self.timeout, self.headers) if self.headers
                                    else probe_once(self.url, self.timeout))
            with self.lock:
                if self.stop.is_set():
                    return
                if self.judge_probes:
                    self.judge.observe(version, ok, seconds, at=self.clock.now() - self.start)
                self._after_evidence(on_tick)

    def _after_evidence(self, on_tick: Callable[[float], None]) -> None:
        """Under the lock: stop on a verdict; a progress line per second of the step."""
        verdict = self.judge.verdict()
        if verdict:
            self.verdict = verdict
            self.stop.set()
        elapsed = self.clock.now() - self.start
        if elapsed >= self.next_tick:
            self.next_tick = int(elapsed) + 1
            on_tick(elapsed)

    def _watch_metrics(self, deadline: float, on_tick: Callable[[float], None]) -> None:
        """Feed the judge each whole scrape round's increments per version, until the step ends.
        A failure to read Prometheus ends the step; run() raises it (the loop then aborts)."""
        try:
            self._feed_metrics(deadline, on_tick)
        except Exception as error:  # noqa: BLE001 (handed to the main thread, which aborts)
            self.error = error
            self.stop.set()

    def _feed_metrics(self, deadline: float, on_tick: Callable[[float], None]) -> None:
        while not self.stop.is_set():
            if self.clock.now() >= deadline:
                self.stop.set()
                return
            increments = self.rounds.poll()
            with self.lock:
                if self.stop.is_set():
                    return
                # A scrape round can hold traffic from before the weight change (even from before
                # the step). `rollout canary` starts the rounds once every target was scraped after
                # the weight became live (step_checks.metrics_rounds) and gives a judge without a
                # settle phase; with one, rounds are dropped until the first that began after the
                # settle time, which is the round after the first one to end after it.
                if increments is not None and self.judge.settling:
                    if self.settle_rounds_from is None:
                        if self.clock.now() - self.start >= self.settle:
                            self.settle_rounds_from = self.rounds.rounds
                        increments = None
                    else:
                        self.judge.end_settle()
                for version, counts in (increments or {}).items():
                    self.judge.observe_counts(version, counts.requests, counts.errors, counts.slow,
                                              at=self.clock.now() - self.start)
                self._after_evidence(on_tick)
            # Prometheus scrapes every few seconds: look again in a moment (real time).
            if self.stop.wait(0.5):
                return

    def run(self, duration: float, on_tick: Callable[[float], None]) -> str | None:
        self.start = self.clock.now()
        self.next_tick = 1.0
        deadline = self.start + duration
        threads = [threading.Thread(target=self._work, args=(deadline, on_tick), daemon=True)
                   for _ in range(self.concurrency if self.url is not None and self.rate > 0 else 0)]
        if self.rounds is not None:
            threads.append(threading.Thread(target=self._watch_metrics, args=(deadline, on_tick), daemon=True))
        for thread in threads:
            thread.start()
        try:
            # Wake now and then so Ctrl-C reaches this thread; the step ends at its deadline
            # whatever the workers do (a probe stuck on a trickling answer included).
            while not self.stop.wait(min(0.5, max(0.01, deadline - self.clock.now()))):
                if self.clock.now() >= deadline:
                    break
        finally:
            self.stop.set()
            # Workers past the stop feed nothing more; each probe ends by its own deadline, so
            # waiting for them is bounded once, not per thread.
            end = time.monotonic() + min(self.timeout, 1.0)
            for thread in threads:
                thread.join(max(0.0, end - time.monotonic()))
        if self.error is not None:
            raise self.error
        return self.verdict


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


class _Log:
    """The run's record: JSON lines in a file, and a few lines on the terminal.

    Signal handlers say things too (interrupts.py), and Python runs a handler in the main thread between two
    steps of whatever it was doing, also inside this class's own write to the same buffered file or terminal
    (a second Ctrl-C right after the first one's line): writing there is a reentrant call that raises
    RuntimeError in the run. So a line said while this thread is already writing one waits, and the write it
    interrupted writes it next, in order."""

    def __init__(self, path: Path | None, out: TextIO):
        self.out = out
        self.file = None
        self.said_at = time.monotonic()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = path.open("a")
        self.path = path
        self._writing = threading.local()
        self._waiting: list[tuple[str, dict[str, Any]]] = []

    @property
    def path_text(self) -> str | None:
        return str(self.path) if self.path else None

    def event(self, kind: str, **data: Any) -> None:
        self._emit(kind, None, data)

    def say(self, text: str, **data: Any) -> None:
        self._emit("message", text, data)

    def _emit(self, kind: str, text: str | None, data: dict[str, Any]) -> None:
        if getattr(self._writing, "now", False):  # a handler interrupted this thread's own write
            self._waiting.append((kind, {"_text": text, **data}))
            return
        self._writing.now = True
        try:
            self._write(kind, text, data)
            while self._waiting:
                kind, data = self._waiting.pop(0)
                self._write(kind, data.pop("_text"), data)
        finally:
            self._writing.now = False

    def _write(self, kind: str, text: str | None, data: dict[str, Any]) -> None:
        if text is not None:
            print(text, file=self.out, flush=True)
            self.said_at = time.monotonic()
            data = {"text": text, **data}
        if self.file:
            self.file.write(json.dumps({"time": datetime.now().isoformat(timespec="milliseconds"),
                                        "event": kind, **data}) + "\n")
            self.file.flush()

    def silent_for(self) -> float:
        return time.monotonic() - self.said_at

    def close(self) -> None:
        if self.file:
            self.file.close()


RunLog = _Log  # public for the blue-green run (operations/bluegreen_run.py), which logs as the canary does


def _release_config(stack: StackLike, release: str) -> tuple[dict[str, Any], dict[str, Any]]:
    config = stack.get_all_config()
    releases = stacks.releases_of(config)
    if releases is None or release not in releases:
        raise OperationError(f"release {release} is not in stack {stack.name}'s config")
    cfg = releases[release]
    if cfg.get("strategy") != "Canary":
        raise OperationError(f"release {release} is {cfg.get('strategy')}, not Canary")
    if "replicas" in (cfg.get("canary") or {}) or "replicas" in (cfg.get("stable") or {}):
        raise OperationError(f"release {release} sets per-track replicas: `rollout canary` steps canary.weight, "
                             "so give the release `replicas` and `canary.weight` instead")
    return config, releases


def release_url(stack: StackLike, release: str, releases: dict[str, Any]) -> str:
    value = stack.outputs().get("releases")
    info = (getattr(value, "value", value) or {}).get(release) or {}
    address = info.get("address")
    if not address:
        raise OperationError(f"stack {stack.name} reports no address for release {release} yet: pass --url")
    # Ingress-fronted modes answer on the load balancer's port 80; the Service port is inside.
    cfg = releases[release]
    port = cfg.get("servicePort", 80) if cfg.get("traffic", "replicas") in ("replicas", "nlb", "dns") else 80
    return f"http://{address}{'' if port == 80 else f':{port}'}/"


def abort_command(stack: str, release: str) -> str:
    return f"python -m rollout abort {stack} --release {release} --yes"




def live_weight(stack: StackLike, release: str) -> float:
    """The canary's share of traffic as of the stack's last successful update (its outputs)."""
    value = stack.outputs().get("releases")
    info = (getattr(value, "value", value) or {}).get(release) or {}
    return float(info.get("effectiveWeight") or 0)


class _Verdict(Exception):
    """The judge stopped the canary."""


class _Tracker:
    """Writes and updates for one release, keeping track of what the config holds and what is
    live, so that whatever fails, the report can say both."""

    def __init__(self, stack: StackLike, release: str, releases: dict[str, Any], log: _Log,
                 policy: stacks.RetryPolicy, clock: Clock, heartbeat: Heartbeat | None = None):
        self.stack, self.release, self.log, self.policy, self.clock = stack, release, log, policy, clock
        # The lease's heartbeat: what the run is doing (its progress lines), and whether the lease
        # is still this run's (checked before every write); `applied` hears of each successful update.
        self.heartbeat = heartbeat or Heartbeat(None, log.say)
        self.applied: Callable[[dict[str, Any]], None] = lambda live: None
        self.full_config = stack.get_all_config()
        self.config = copy.deepcopy(releases)  # as written to the stack's config
        self.live = copy.deepcopy(releases[release])  # what the last successful update applied
        self.doubt: dict[str, Any] | None = None  # what a failed update may have applied part of

    @property
    def cfg(self) -> dict[str, Any]:
        return self.config[self.release]

    def get(self, field: str) -> Any:
        return stacks.get_path(self.cfg, field)

    def traffic_settle(self) -> float:
        """Seconds after an applied weight change before traffic follows it (DNS: propagation and TTL)."""
        release = stacks.check_config(self.stack.name, self.full_config, self.config).release(self.release)
        return canary_math.settle_seconds(release)

    def wait_for_traffic(self, what: str) -> None:
        seconds = self.traffic_settle()
        if seconds > 0:
            self.log.say(f"  waiting {seconds:g}s for DNS caches to follow the new weight ({what})",
                         settle=seconds)
            self.heartbeat.doing(f"waiting {seconds:g}s for DNS caches ({what})")
            self.clock.sleep(seconds)
            self.heartbeat.doing(None)

    def before_write(self) -> None:
        """Before each write to the stack's config: LeaseLost when the lease is no longer this run's."""
        self.heartbeat.check()

    def pods(self, releases: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
        checked = stacks.check_config(self.stack.name, self.full_config, releases).release(self.release)
        return checked.replica_counts(), checked.tags()

    def update(self, settings: dict[str, Any], message: str, policy: stacks.RetryPolicy | None = None,
               *, skip_if_unchanged: bool = False) -> bool:
        """Write `settings` (field → value, None removes) and update the stack; False when skipped."""
        changes = [stacks.Change(self.release, f, self.get(f), v) for f, v in settings.items() if self.get(f) != v]
        after = stacks.apply_changes(self.config, changes)
        moves_traffic = any(c.field == "canary.weight" for c in changes)
        if skip_if_unchanged and not moves_traffic and self.pods(after) == self.pods(self.config):
            return False
        self.pods(after)  # refuses a change that would make the config invalid, before writing
        self.heartbeat.check()  # a run whose lease was taken over writes (and updates) nothing more
        for change in changes:
            self.before_write()
            stacks.write_changes(self.stack, [change])
            self.config = stacks.apply_changes(self.config, [change])
        self.log.event("update", message=message, changes=[asdict(c) for c in changes])
        self.heartbeat.doing(f"updating {self.stack.name}: {message}")
        try:
            stacks.update(self.stack, message, policy=policy or self.policy,
                          on_output=lambda line: self.log.event("pulumi", line=line.rstrip()),
                          note=lambda text: self.log.say(f"  {text}"), sleep=self.clock.sleep)
        except stacks.UpdateFailed as failed:
            if failed.ran:
                self.doubt = copy.deepcopy(self.cfg)
            self.log.event("update-result", result="failed", cause=failed.cause)
            raise
        except KeyboardInterrupt:
            self.doubt = copy.deepcopy(self.cfg)  # the update may have gone part of the way
            self.log.event("update-result", result="interrupted")
            raise
        finally:
            self.heartbeat.doing(None)
        self.live, self.doubt = copy.deepcopy(self.cfg), None
        self.log.event("update-result", result="succeeded")
        self.applied(self.live)
        return True

    def move_weight(self, old: int, new: int, message: str, policy: stacks.RetryPolicy | None = None,
                    extra: dict[str, Any] | None = None, *, certain: bool = True, traffic_first: bool = False) -> None:
        """Take the canary from `old` to `new` percent in the two updates that keep capacity ahead
        of traffic (canary_math.weight_step): pods for both weights first, then the new weight alone.

        `traffic_first` (aborts): in `traffic: replicas` the share follows the pods, so "weight 0,
        pods kept" would keep the canary's share; there the first update scales the canary's pods
        down at once (out of the Service's endpoints), the stable track up."""
        if traffic_first and new < old and self.cfg.get("traffic", "replicas") == "replicas":
            self.update({"canary.weight": new, "canary.podsForWeight": None, **(extra or {})},
                        f"{message}: canary pods out of the Service first (traffic: replicas)", policy)
            return
        (first_weight, hold), (second_weight, _) = canary_math.weight_step(old, new)
        first = {"canary.weight": first_weight, "canary.podsForWeight": hold, **(extra or {})}
        # When the pods are already right the first update would change nothing: skip it, unless
        # a failed update left the live state in doubt.
        first_message = (f"{message}: canary pods for {new}% first" if new > old
                         else f"{message}: weight first, canary pods kept")
        if hold is None and first_weight == second_weight:  # no weight to move: one update converges
            self.update(first, message, policy)
            return
        if not self.update(first, first_message, policy, skip_if_unchanged=certain and not extra):
            self.log.event("skipped", message=f"{first_message}: the pods are already right")
        self.update({"canary.weight": second_weight, "canary.podsForWeight": None}, message, policy)

    def describe(self, cfg: dict[str, Any] | None) -> str:
        if cfg is None:
            return "unknown"
        canary, stable = cfg.get("canary") or {}, cfg.get("stable") or {}
        text = f"stable {stable.get('tag')}, canary {canary.get('tag')} at {canary.get('weight', 0)}%"
        if canary.get("podsForWeight") is not None:
            text += f" with pods for {canary['podsForWeight']}%"
        return text

    def effective_share(self) -> str:
        """The canary's share of traffic the stack's outputs give (replicas mode: its pods' share)."""
        try:
            return f"effective share {live_weight(self.stack, self.release):g}% (stack outputs)"
        except Exception as error:  # noqa: BLE001 (the line is still worth printing)
            return f"effective share unknown (the outputs could not be read: {stacks.error_line(error)})"

    def state_line(self) -> str:
        live = f"live: {self.describe(self.live)} (last successful update), {self.effective_share()}"
        if self.doubt is not None and self.doubt != self.live:
            live += f", or part of the way to {self.describe(self.doubt)} (an update failed part-way)"
        return f"{live}; config holds: {self.describe(self.cfg)}"

    def worst_weight(self) -> int:
        """The most traffic or pods the canary may have now: what the abort must size for."""
        values = [0]
        for cfg in (self.live, self.doubt, self.cfg):
            canary = (cfg or {}).get("canary") or {}
            values += [int(canary.get("weight") or 0), int(canary.get("podsForWeight") or 0)]
        return max(values)


Tracker = _Tracker  # public for the blue-green run, which writes and updates as the canary does


def run_canary(stack: StackLike, options: CanaryOptions, *, out: TextIO | None = None,
               log_path: Path | None = None, clock: Clock | None = None,
               lease: leases.LeaseSpec | Callable[[], leases.LeaseSpec] | None = None,
               resume: bool = False) -> CanaryRun:
    """Step the canary, judge it, promote it or send its traffic back to stable.

    From the first config write on, every way out (a verdict, a failed or locked update, an
    exception, Ctrl-C, SIGTERM) goes through the abort path, which puts the weight back to 0 with
    bounded retries; what it could not do is reported with the state that is live. With `lease`,
    the run holds the release's lease (operations/lease.py) from before its first write to its
    end, and `resume` continues the run an expired lease describes.
    """
    from report import canary_report  # before the run, not in its `finally`: an interrupt cannot land in an import

    log = _Log(log_path, out or sys.stdout)
    try:
        with interrupts.guard(abort_command(stack.name, options.release), log.say):
            return _CanaryLoop(stack, options, log, clock or Clock(), lease, resume).run()
    finally:
        log.close()
        if log_path is not None:  # the run in pictures, beside its log (report/canary_report.py); never raises
            shown = canary_report.write_beside_log(log_path, asdict(options))
            print(f"report: {shown}" if shown else "report: could not be written", file=out or sys.stdout)


class _CanaryLoop:
    def __init__(self, stack: StackLike, options: CanaryOptions, log: _Log, clock: Clock,
                 lease_spec: leases.LeaseSpec | Callable[[], leases.LeaseSpec] | None = None, resume: bool = False):
        self.stack, self.o, self.log, self.clock = stack, options, log, clock
        self.resume = resume
        # Resolved after the input is checked (a bad --tag is said before a missing backend).
        self._lease_spec = lease_spec
        self.lease_spec: leases.LeaseSpec | None = lease_spec if isinstance(lease_spec, leases.LeaseSpec) else None
        self.lease: Lease | None = None
        self.held = canary_lease.RunLease(None, log.say)
        self.results: list[StepResult] = []
        self.step, self.weight = 0, 0
        self.promoting = False
        self.stable_promoted = False
        self.original_stable_tag: Any = None

    def _refuse_start(self, cfg: dict[str, Any], info: dict[str, Any], record: dict[str, Any] | None) -> None:
        """What must hold before the first write: nothing mid-way (a new run), or what the lease says
        (a resumed run); and a tag that is not what the stable track already runs."""
        o, stack = self.o, self.stack
        tags = info.get("tags") or {}
        if self.resume:
            canary_lease.check_resume(record or {}, info, stack.name, o.release, abort_command(stack.name, o.release))
            return
        weight_now = int(stacks.get_path(cfg, "canary.weight") or 0)
        if weight_now or stacks.get_path(cfg, "canary.podsForWeight") is not None or live_weight(stack, o.release):
            raise OperationError(f"release {o.release}'s canary already carries traffic or is mid-step "
                                 f"(canary.weight {weight_now}): send it back first with "
                                 f"`{abort_command(stack.name, o.release)}`")
        if tags.get("stable") == o.tag:
            file_tag = getattr(self, "file_stable_tag", stacks.get_path(cfg, "stable.tag"))
            raise stacks.InputError(f"stack {stack.name} already runs {o.tag} on the stable track of {o.release} "
                                    f"(its outputs{'' if file_tag == o.tag else f'; the stack file says {file_tag}'}): "
                                    "nothing to canary")

    def run(self) -> CanaryRun:
        o, stack, log = self.o, self.stack, self.log
        _, releases = _release_config(stack, o.release)
        live = live_state.live_releases(stack)
        info = live.get(o.release) or {}
        if o.rate <= 0 and not o.metrics:
            raise OperationError("nothing would judge the canary: give probes a --rate or judge from --metrics")
        # Live state wins over a stale stack file: what the run does not change stays what is live.
        stale = live_state.drift(stack, releases, None, live)  # every release: an update applies them all
        self.file_stable_tag = stacks.get_path(releases[o.release], "stable.tag")
        releases = stacks.apply_changes(releases, [d.change() for d in stale])
        self.original_stable_tag = stacks.get_path(releases[o.release], "stable.tag")
        tracker = _Tracker(stack, o.release, releases, log, o.retry, self.clock)
        # The tag and the first step must make a valid config before anything is written.
        first = stacks.apply_changes(releases, [stacks.Change(o.release, "canary.tag", None, o.tag),
                                                stacks.Change(o.release, "canary.weight", None,
                                                              0 if o.match_only or not o.steps else o.steps[0])])
        if not o.steps and not o.match_only:
            raise stacks.InputError("--steps is empty: give weights, or --match-only for a run judged on matched "
                                    "requests alone")
        try:
            tracker.pods(first)
        except OperationError as error:
            raise stacks.InputError(f"--tag {o.tag!r} or --steps cannot go into {stack.name}'s config: "
                                    + str(error).split("\n", 1)[-1].strip()) from None
        self.tracker = tracker
        self._prepare_judging(stack, releases)  # refuses what cannot be judged, before any write
        if o.match_only:
            from operations import match_phase

            release = stacks.check_config(stack.name, stack.get_all_config(), first).release(o.release)
            refusal = match_phase.refusal(release, o.match_value, o.rate)
            if refusal:
                raise stacks.InputError(refusal)
            self.match_headers = match_phase.probe_headers(release.match, o.match_value)
        # The lease first: a second driver is refused with the holder's details.
        if self._lease_spec is not None and self.lease_spec is None:
            self.lease_spec = self._lease_spec()  # type: ignore[operator]
        if self.resume and self.lease_spec is None:
            raise OperationError("--resume continues the run a lease describes: it needs the lease")
        record = self.lease_spec.read() if self.lease_spec else None
        may_take = leases.resume_may_take if self.resume else leases.canary_may_take(
            abort_command(stack.name, o.release), canary_lease.resume_command(stack.name, o.release))
        refusal = may_take(record, leases.wall_clock()) if self.lease_spec else None
        if refusal:
            raise leases.LeaseHeld(refusal, record or {})
        self._refuse_start(releases[o.release], info, record)
        url = o.url or (release_url(stack, o.release, releases) if o.rate > 0 else None)
        if self.lease_spec is not None:  # before the first write; exactly one of two racing drivers wins
            fields = canary_lease.run_fields(stack.name, o, tracker.live, record if self.resume else None)
            self.lease = leases.acquire(self.lease_spec.store, self.lease_spec.key, fields, self.lease_spec.seconds,
                                        may_take=may_take)
            log.say(f"lease: {self.lease_spec.store.location(self.lease_spec.key)}, {self.lease_spec.seconds:g}s, "
                    f"renewed every {self.lease_spec.seconds / 3:g}s")
        self.held = canary_lease.RunLease(self.lease, log.say)
        # A hung run (no progress for longer than its settings allow) stops renewing: the watchdog takes over.
        metrics_wait = None if not o.metrics else o.metrics_wait if o.metrics_wait is not None else (
            3 * (self.scrape_interval or 15.0) + 30.0)
        bound = leases.progress_bound(
            interval=o.interval, probe_timeout=o.timeout, settle=tracker.traffic_settle(),
            verify_timeout=o.verify_timeout, metrics_wait=metrics_wait, attempts=o.retry.attempts,
            pause=o.retry.pause, lock_wait=o.retry.lock_wait, lease_seconds=self.lease.seconds if self.lease else 0.0)
        heartbeat = Heartbeat(self.lease, log.say, silent_for=log.silent_for, progress_bound=bound)
        tracker.heartbeat = heartbeat
        tracker.applied = self.held.applied
        with heartbeat:
            try:
                return self._drive(url, stale, record)
            except LeaseLost as lost:
                log.say(f"STOPPED: {lost}; it is in charge of the canary now, this run changes nothing more")
                return CanaryRun(1, self.results, str(lost), log.path_text)
            except BaseException as error:
                self.held.end(leases.STOPPED, f"the run stopped: {stacks.error_line(error)}")
                raise

    def _drive(self, url: str | None, stale: list[live_state.Drift], record: dict[str, Any] | None) -> CanaryRun:
        o, stack, log, tracker = self.o, self.stack, self.log, self.tracker
        log.say(f"canary {o.release} {o.tag} on {stack.name}: steps {', '.join(f'{w}%' for w in o.steps)}, "
                f"{o.interval:g}s each, error budget {100 * o.max_error_rate:g}%, p99 limit {1000 * o.max_p99:.0f}ms, "
                f"{f'probing {url}' if url else 'no probes'}"
                f"{f', judging from Prometheus at {o.metrics}' if o.metrics else ''}", url=url, metrics=o.metrics)
        start = 1
        if self.resume and record is not None:
            start = max(1, int(record.get("step") or 0))
            self.weight = int(record.get("weight") or 0)
            log.say(f"resuming the run of {leases.holder_text(record)} (lease expired {record.get('expires')}) at "
                    f"step {start}/{len(o.steps)}, live weight {self.weight}%")
        # From the first write on, every way out goes through the abort path.
        try:
            if stale:
                log.say(live_state.line(stale, "rollout canary"))
                for drift in stale:  # the file takes what is live before anything else is written
                    tracker.heartbeat.check()
                    stacks.write_changes(stack, [drift.change()])
            if o.match_only and start == 1 and not (self.resume and record is not None and record.get("step")):
                verdict = self._match_phase(url)
                if verdict:
                    raise _Verdict(verdict)
            for index, weight in enumerate(o.steps, start=1):
                if index < start:
                    continue
                self.step = index
                self.held.write(step=index)
                if (weight == self.weight and tracker.get("canary.tag") == o.tag
                        and tracker.get("canary.podsForWeight") is None):
                    log.say(f"step {index}/{len(o.steps)}: weight {weight}% is live already: judging it again")
                else:
                    log.say(f"step {index}/{len(o.steps)}: weight {weight}%, updating {stack.name}")
                    extra = {"canary.tag": o.tag} if tracker.get("canary.tag") != o.tag or index == 1 else None
                    tracker.move_weight(self.weight, weight, f"canary {o.release} {o.tag}: weight {weight}%",
                                        stacks.RetryPolicy(attempts=1, lock_wait=o.retry.lock_wait,
                                                           pause=o.retry.pause), extra)
                self.weight = weight
                tracker.wait_for_traffic("before judging the step")
                tracker.heartbeat.doing(f"judging step {index}")
                verdict = self._judge(url, index, weight)
                tracker.heartbeat.doing(None)
                if verdict:
                    raise _Verdict(verdict)
            return self._promote()
        except LeaseLost:
            raise
        except _Verdict as verdict:
            return self._abort(str(verdict))
        except stacks.UpdateFailed as failed:
            return self._abort(f"the stack update failed: {failed.cause}")
        except KeyboardInterrupt:
            return self._abort("interrupted by the operator")
        except Exception as error:  # noqa: BLE001 (any failure must end in the abort path)
            return self._abort(stacks.error_line(error))

    def _match_phase(self, url: str | None) -> str | None:
        """Weight 0 with the canary tag: only the probes' matched requests reach the canary, judged at 100%."""
        from operations import match_phase, step_checks

        o, log, tracker = self.o, self.log, self.tracker
        self.step = 0
        self.held.write(step=0)
        headers = self.match_headers
        log.say(f"{match_phase.PHASE_NAME}: weight 0%, canary {o.tag} for requests with "
                f"{match_phase.describe(headers)}, updating {self.stack.name}", match=headers)
        tracker.update({"canary.tag": o.tag, "canary.weight": 0, "canary.podsForWeight": None},
                       f"canary {o.release} {o.tag}: match-only",
                       stacks.RetryPolicy(attempts=1, lock_wait=o.retry.lock_wait, pause=o.retry.pause))
        self.weight = 0
        tracker.wait_for_traffic("before judging the match-only phase")
        tracker.heartbeat.doing("judging the match-only phase")
        version = o.tag.split("@", 1)[0]
        judge = Judge(version, 100.0, o.max_error_rate, o.max_p99, settle_seconds=o.settle, requested_weight=100,
                      min_canary_answers=step_checks.min_canary_answers(o, 100.0))
        prober = Prober(url, judge, o.rate, o.concurrency, o.timeout, self.clock, settle=o.settle, headers=headers)
        started = self.clock.now()
        try:
            verdict = prober.run(o.interval, lambda elapsed: log.say(
                f"  match-only  {elapsed:5.1f}s  requests {judge.total.requests:>6}  canary {judge.canary_share:5.1f}%  "
                f"errors {100 * judge.total.error_rate:5.2f}%"))
        finally:
            prober.stop.set()
            tracker.heartbeat.doing(None)
        if not verdict and judge.total.requests > 0:
            verdict = judge.conclude()
        if not verdict and judge.total.requests == 0:
            verdict = "no probe with the match answered in the match-only phase (is the route live?)"
        p99 = judge.canary.p99()
        result = StepResult(
            step=0, weight=0, requests=judge.total.requests, canary_requests=judge.canary.requests,
            canary_share=round(judge.canary_share, 2), error_rate=round(100 * judge.total.error_rate, 2),
            canary_error_rate=round(100 * judge.canary.error_rate, 2),
            p99_ms=None if p99 is None else round(1000 * p99, 1), elapsed=round(self.clock.now() - started, 2),
            verdict=verdict, effective_share=100.0)
        self.results.append(result)
        log.event("step", **asdict(result))
        if not verdict:
            log.say(f"{match_phase.PHASE_NAME} passed: {result.requests} matched requests, canary {result.canary_share}%, "
                    f"errors {result.error_rate}%, canary p99 {result.p99_ms}ms")
        return verdict

    def _prepare_judging(self, stack: StackLike, releases: dict[str, Any]) -> None:
        """Before any write: the share each step is judged at (replicas mode: the pods'; warned when
        it is not the weight, refused when no pod split can serve it), the Prometheus source scoped to
        the release and the scrape interval (an --interval under three of them is refused), and the
        live weight reader."""
        from operations import step_checks

        o, log = self.o, self.log
        checked = stacks.check_config(stack.name, stack.get_all_config(), releases)
        release = checked.release(o.release)
        self.shares, warnings = step_checks.step_shares(release, o.steps)
        from operations import match_phase

        sticky = match_phase.sticky_warning(release, bool(o.metrics), o.share_design_effect)
        for warning in warnings + step_checks.short_step_warnings(o, self.shares) + ([sticky] if sticky else []):
            log.say(f"warning: {warning}")
        self.metrics_source, self.scrape_interval = None, None
        if o.metrics:
            self.metrics_source, self.scrape_interval = step_checks.metrics_source(stack, checked, release, o)
            log.say(f"  Prometheus: {self.metrics_source.requests_query}; scrape interval "
                    f"{'unknown yet' if self.scrape_interval is None else f'{self.scrape_interval:g}s'}",
                    selector=self.metrics_source.selector, scrape_interval=self.scrape_interval)
        self.live_reader = o.live_reader
        if o.verify_timeout and self.live_reader is None:
            self.live_reader = step_checks.live_reader(stack, checked, release)

    def _judge(self, url: str, index: int, weight: int) -> str | None:
        from operations import step_checks

        o, log = self.o, self.log
        rounds = None
        share = self.shares[index - 1]
        if self.live_reader is not None and o.verify_timeout:
            # The weight where it takes effect, before any evidence counts; never live: the abort path.
            try:
                live = step_checks.wait_until_live(self.live_reader, weight, share, o.verify_timeout, self.clock,
                                                   lambda text: log.say(f"  {text}"))
            except step_checks.NotLive as error:
                return str(error)
            share = live.share if live.share is not None else share
        if share != weight:
            log.say(f"  step {index}: weight {weight}% gives the canary {share:g}% of the traffic: judged at {share:g}%",
                    effective_share=share)
        # DNS splits per resolver: one prober is one resolver and sees 0% or 100% of the canary, so
        version = o.tag.split("@", 1)[0]  # what the app reports: a tag pinned by digest reports its tag
        # the share is never judged from probes there (the judge stays settling), nor is the minimum of
        # canary answers; errors and latency are. From Prometheus (many resolvers) both are.
        per_resolver = self.tracker.traffic_settle() > 0 and not o.metrics
        effect = o.share_design_effect or (step_checks.METRICS_DESIGN_EFFECT if o.metrics else 1.0)
        common = {"requested_weight": weight, "share_design_effect": effect,
                  "min_canary_answers": 0 if per_resolver else step_checks.min_canary_answers(o, share)}
        if o.metrics:
            # Every round judged began after the weight was live (step_checks.metrics_rounds waits for
            # that): no settle phase.
            judge = Judge(version, share, o.max_error_rate, o.max_p99, **common)
            try:
                rounds = step_checks.metrics_rounds(self.metrics_source, self.scrape_interval, o,
                                                    lambda text: log.say(f"  {text}"))
            except step_checks.NotLive as error:
                return str(error)
        elif per_resolver:
            judge = Judge(version, share, o.max_error_rate, o.max_p99, settling=True, **common)
        else:
            judge = Judge(version, share, o.max_error_rate, o.max_p99, settle_seconds=o.settle, **common)
        prober = Prober(url, judge, o.rate, o.concurrency, o.timeout, self.clock, rounds=rounds,
                        judge_probes=rounds is None, settle=o.settle)

        def tick(elapsed: float) -> None:
            p99 = judge.canary.p99()
            log.say(f"  step {index} weight {weight:>3}%  {elapsed:5.1f}s  requests {judge.total.requests:>6}  "
                    f"canary {judge.canary_share:5.1f}%  errors {100 * judge.total.error_rate:5.2f}% "
                    f"(canary {100 * judge.canary.error_rate:5.2f}%)  canary p99 "
                    f"{'-' if p99 is None else f'{1000 * p99:.0f}ms'}"
                    + ("  (settling: traffic share not judged yet)" if judge.settling else ""),
                    settling=judge.settling)

        started = self.clock.now()
        log.event("settle", step=index, seconds=o.settle)
        try:
            verdict = prober.run(o.interval, tick)
        finally:
            prober.stop.set()  # Ctrl-C included: no probe thread outlives its step
        if not verdict and judge.total.requests > 0:
            verdict = judge.conclude()  # too few canary answers: "canary not reached"
        p99 = judge.canary.p99()
        result = StepResult(
            step=index, weight=weight, requests=judge.total.requests, canary_requests=judge.canary.requests,
            canary_share=round(judge.canary_share, 2), error_rate=round(100 * judge.total.error_rate, 2),
            canary_error_rate=round(100 * judge.canary.error_rate, 2),
            p99_ms=None if p99 is None else round(1000 * p99, 1), elapsed=round(self.clock.now() - started, 2),
            verdict=verdict, effective_share=share)
        if not verdict and judge.total.requests == 0:
            verdict = ("no answer was judged in the step: no probe answered and Prometheus counted no request "
                       "(is traffic reaching the release?)")
            result.verdict = verdict
        self.results.append(result)
        log.event("step", **asdict(result))
        if not verdict:
            log.say(f"step {index} passed: {result.requests} requests, canary {result.canary_share}%"
                    + (f" (judged at {share:g}%, weight {weight}%)" if share != weight else "")
                    + f", errors {result.error_rate}%, canary p99 {result.p99_ms}ms")
        return verdict

    def _promote(self) -> CanaryRun:
        o, log, tracker = self.o, self.log, self.tracker
        self.promoting = True
        log.say(f"all steps passed: promoting {o.tag} to the stable track of {o.release}")
        # The stable Deployment rolls to the tag (awaited) while traffic still follows the weight;
        # then traffic comes back to it, then the canary's pods go.
        tracker.update({"stable.tag": o.tag}, f"promote {o.release} {o.tag}: stable track")
        self.stable_promoted = True
        tracker.move_weight(self.weight, 0, f"promote {o.release} {o.tag}: traffic to the stable track")
        self.weight = 0
        log.say(f"promoted: {o.release} runs {o.tag}")
        self.held.end(leases.PROMOTED, None)
        return CanaryRun(0, self.results, None, log.path_text)

    def _abort(self, reason: str) -> CanaryRun:
        # Signals now say what runs instead of interrupting the abort (operations/interrupts.py).
        with interrupts.shielded(f"the abort of the canary of {self.o.release} (its traffic back to the stable track)"):
            return self._abort_shielded(reason)

    def _abort_shielded(self, reason: str) -> CanaryRun:
        o, log, tracker = self.o, self.log, self.tracker
        where = ("the promotion" if self.promoting else "the match-only phase (weight 0%)" if self.step == 0 else
                 f"step {self.step}/{len(o.steps)} (weight {o.steps[self.step - 1]}%)")
        if self.promoting and not self.stable_promoted:
            reason = f"the promotion failed: {reason}"
        log.say(f"ABORT at {where}: {reason}")
        restored = False
        try:
            # The stable track may be part-way to the new tag: back to what it ran, in the same first
            # update that sends traffic back (weight 0 is written first, so even if no update can run,
            # the next `pulumi up` does not keep the canary's traffic).
            revert = ({"stable.tag": self.original_stable_tag} if self.promoting and not self.stable_promoted
                      and tracker.get("stable.tag") != self.original_stable_tag else None)
            # A match route sends matched requests to the canary at weight 0 too: its tag goes back as well.
            from operations import match_phase

            stable_after = (revert or {}).get("stable.tag", tracker.get("stable.tag"))
            revert = {**(revert or {}), **match_phase.abort_changes(tracker.cfg, stable_after)} or None
            # Never skipped: after a failure, what is live may differ from what the config says.
            self.held.write(state=leases.ABORTING, note=f"aborting: {reason}")
            tracker.move_weight(tracker.worst_weight(), 0, f"canary {o.release} {o.tag} aborted at {where}: {reason}",
                                extra=revert, certain=False, traffic_first=not self.stable_promoted)
            tracker.wait_for_traffic("before the abort is complete")
            restored = True
        except LeaseLost as lost:
            log.say(f"STOPPED: {lost}; it is in charge of the canary now, this run changes nothing more")
            return CanaryRun(1, self.results, reason, log.path_text)
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (reported, with what is live)
            cause = "interrupted again" if isinstance(error, KeyboardInterrupt) else (
                error.cause if isinstance(error, stacks.UpdateFailed) else stacks.error_line(error))
            state = tracker.state_line()
            log.say(f"NOT RESTORED ({cause}): {state}; finish with: "
                    f"{abort_command(self.stack.name, o.release)}", live=tracker.live, config=tracker.cfg)
            self.held.end(leases.ABORT_FAILED, f"{reason}; the abort failed ({cause}): {state}")
        if restored:
            if self.stable_promoted:
                log.say(f"promoted: {o.release} runs {o.tag} (traffic reached the stable track after a retry)")
                self.held.end(leases.PROMOTED, "traffic reached the stable track after a retry")
                return CanaryRun(0, self.results, None, log.path_text)
            log.say(f"traffic to the canary is back at 0%: {o.release} runs {tracker.get('stable.tag')} on its "
                    "stable track")
            self.held.end(leases.ABORTED, reason)
        for r in self.results:
            log.say(f"  step {r.step} weight {r.weight}%: {r.requests} requests, canary {r.canary_share}%, "
                    f"errors {r.error_rate}% (canary {r.canary_error_rate}%), {r.elapsed}s"
                    + (f"  ← {r.verdict}" if r.verdict else ""))
        return CanaryRun(1, self.results, reason, log.path_text)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _duration(text: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"must be a duration like 60s, 500ms or 2m (got {text!r})")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60}[unit]


def duration_argument(text: str) -> float:
    """An argparse type: a duration like 60s, 500ms or 2m, in seconds."""
    return _duration(text)


def _interval(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a duration above 0 (got {text!r})")
    return value


def positive_duration_argument(text: str) -> float:
    """An argparse type: a duration above 0, in seconds."""
    return _interval(text)


def _percent(text: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)%?", text)
    if not match or float(match.group(1)) > 100:
        raise argparse.ArgumentTypeError(f"must be a percentage like 1% (got {text!r})")
    return float(match.group(1)) / 100


def _steps(text: str) -> list[int]:
    if text.strip() == "":
        return []  # with --match-only: the run promotes after the match-only phase
    try:
        steps = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be weights like 5,25,50,100 (got {text!r})") from None
    if not steps or any(not 0 < w <= 100 for w in steps) or steps != sorted(steps):
        raise argparse.ArgumentTypeError(f"must be increasing weights between 1 and 100 (got {text!r})")
    return steps


def _metrics(text: str) -> str:
    kind, _, url = text.partition("=")
    parsed = urllib.parse.urlsplit(url)
    if kind != "prometheus" or parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise argparse.ArgumentTypeError(f"must be prometheus=URL, like prometheus=http://prometheus:9090 (got {text!r})")
    return url


def _design_effect(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 10000 (got {text!r})")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) > 1_000_000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 1000000 (got {text!r})")
    return int(text)


def _probe_url(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL with a host (got {text!r})")
    return text


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be requests per second from 0 to 10000 (got {text!r})")
    return value


# The judge's argument types, public for `rollout bluegreen` (the same options, the same checks).
percent_argument, probe_url_argument, rate_argument, metrics_argument = _percent, _probe_url, _rate, _metrics


def do_abort(stack: StackLike, release: str, yes: bool, confirm: stacks.Confirm, *, out: TextIO | None = None,
             policy: stacks.RetryPolicy | None = None, clock: Clock | None = None,
             take_lease: Callable[[], Lease | None] | None = None) -> int:
    """Send all traffic of a canary back to its stable track, in the order that keeps traffic off
    the canary first, whatever a run left behind (a closed laptop, a killed CI job).

    `take_lease` (after the confirmation, before the first write) gives the release's lease to
    this abort, which records its outcome there; a canary run that held it stops at its next write."""
    log = _Log(None, out or sys.stdout)
    with interrupts.guard(abort_command(stack.name, release), log.say), \
            interrupts.shielded(f"the abort of the canary of {release} (its traffic back to the stable track)"):
        return _abort_release(stack, release, yes, confirm, log, policy, clock, take_lease)


def _take_lease(take_lease: Callable[[], Lease | None] | None, log: _Log) -> Lease | None:
    """The abort's lease, if it can have it: a store that fails does not stop the way out."""
    if take_lease is None:
        return None
    try:
        return take_lease()
    except Exception as error:  # noqa: BLE001 (said; the abort goes on without the lease)
        text = str(error) if isinstance(error, OperationError) else stacks.error_line(error)
        log.say(f"note: the lease could not be taken ({text}): aborting without it")
        return None


def _abort_release(stack: StackLike, release: str, yes: bool, confirm: stacks.Confirm, log: _Log,
                   policy: stacks.RetryPolicy | None, clock: Clock | None,
                   take_lease: Callable[[], Lease | None] | None) -> int:
    config, releases = _release_config(stack, release)
    live_outputs = live_state.live_releases(stack)
    info = live_outputs.get(release) or {}
    stale = live_state.drift(stack, releases, None, live_outputs)  # every release: an update applies them all
    releases = stacks.apply_changes(releases, [d.change() for d in stale])
    cfg = releases[release]
    weight = int(stacks.get_path(cfg, "canary.weight") or 0)
    hold = stacks.get_path(cfg, "canary.podsForWeight")
    live = int(info.get("requestedWeight") or 0)
    last = stacks.revisions(stack)[:1]
    in_doubt = bool(last) and not last[0].succeeded
    from operations import match_phase

    dark = match_phase.abort_changes(cfg, stacks.get_path(cfg, "stable.tag"))  # matched requests still on the canary
    if (weight == 0 and hold is None and live == 0 and float(info.get("effectiveWeight") or 0) == 0 and not in_doubt
            and not dark):
        log.say(f"nothing to abort: release {release} sends no traffic to its canary on stack {stack.name}")
        lease = _take_lease(take_lease, log)
        if lease is not None:
            lease.end(leases.ABORTED, "nothing to abort: no traffic on the canary")
        return 0
    protected = stacks.is_protected(config)
    replicas_mode = cfg.get("traffic", "replicas") == "replicas"
    tags = info.get("tags") or {}
    log.say(f"Abort the canary of {release} on stack {stack.name}{' (protected)' if protected else ''}: "
            f"live weight {live}% (effective share {float(info.get('effectiveWeight') or 0):g}%), "
            f"config weight {weight}%" + (f", pods for {hold}%" if hold is not None else "")
            + (f"; live stable {tags.get('stable')}, canary {tags.get('canary')}" if tags else "")
            + (f"; the last update (revision {last[0].number}) {last[0].result}" if in_doubt else ""))
    if stale:
        log.say(live_state.line(stale, "rollout abort"))
    log.say("  1) canary pods scaled to 0 with the weight (traffic: replicas: the share follows the pods)"
            if replicas_mode else "  1) canary.weight → 0, pods kept   2) canary pods removed")
    if not yes and not confirm(f"Send all traffic of {release} back to its stable track "
                               f"({tags.get('stable') or stacks.get_path(cfg, 'stable.tag')})?",
                               stack.name if protected else None):
        log.say("not confirmed: nothing was changed (pass --yes to skip the question)")
        return 1
    lease = _take_lease(take_lease, log)
    tracker = _Tracker(stack, release, releases, log, policy or stacks.RetryPolicy(), clock or Clock(),
                       Heartbeat(lease, log.say, silent_for=log.silent_for))
    tracker.live["canary"] = {**(tracker.live.get("canary") or {}), "weight": live}
    with tracker.heartbeat:
        try:
            for drift in stale:  # the file takes what is live first: the abort rolls no track back
                stacks.write_changes(stack, [drift.change()])
            tracker.move_weight(tracker.worst_weight(), 0, f"abort canary {release}", certain=False,
                                traffic_first=True, extra=dark or None)
            tracker.wait_for_traffic("before the abort is complete")
        except LeaseLost as lost:
            log.say(f"STOPPED: {lost}; it is in charge of the canary now")
            return 1
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (reported, with what is live)
            cause = (error.cause if isinstance(error, stacks.UpdateFailed) else "interrupted"
                     if isinstance(error, KeyboardInterrupt) else stacks.error_line(error))
            state = tracker.state_line()
            log.say(f"NOT RESTORED ({cause}): {state}; finish with: {abort_command(stack.name, release)}")
            if lease is not None:
                with contextlib.suppress(Exception):
                    lease.end(leases.ABORT_FAILED, f"the abort failed ({cause}): {state}")
            return 1
        log.say(f"traffic to the canary is back at 0%: {release} runs {tracker.get('stable.tag')} on its stable track")
        if lease is not None:
            with contextlib.suppress(Exception):
                lease.end(leases.ABORTED, f"aborted by {leases.holder_text(lease.record)}")
    return 0


def cmd_canary(args: argparse.Namespace) -> int:
    if args.rate == 0 and not args.metrics:
        print("error: --rate 0 sends no probes: then judge from --metrics prometheus=URL", file=sys.stderr)
        return stacks.EXIT_USAGE
    if not args.tag and not args.resume:
        print("error: --tag is required (the image tag to roll out), unless --resume", file=sys.stderr)
        return stacks.EXIT_USAGE
    if args.metrics and args.scrape_interval is not None:
        from operations.step_checks import check_interval

        try:
            check_interval(args.interval, args.scrape_interval)
        except stacks.InputError as error:
            print(f"error: {error}", file=sys.stderr)
            return stacks.EXIT_USAGE
    log_path = args.log or args.cwd / "build" / "canary" / (
        f"{args.stack}-{args.release}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log")

    def action() -> int:
        stack = stacks.open_stack(args.stack, args.cwd)
        spec = leases.spec_for(stack, args.release, args.cwd, args.lease_seconds) if args.resume else None
        record = spec.read() if spec else None
        values, from_lease = canary_lease.run_options(args, record)
        options = CanaryOptions(release=args.release, retry=stacks.RetryPolicy(lock_wait=args.lock_wait), **values)
        if args.resume and record is None:
            raise OperationError(leases.resume_may_take(None, 0.0) or "no lease")
        protected = stacks.is_protected(stack.get_all_config())
        verb = "Resume the canary" if args.resume else "Run a canary"
        if not args.yes and not stacks.confirm_tty(
                f"{verb} of {args.release} {options.tag} on stack {args.stack} "
                f"({', '.join(map(str, options.steps))}%)?", args.stack if protected else None):
            print("not confirmed: nothing was changed (pass --yes to skip the question)")
            return 1
        if from_lease:
            print(f"from the lease: {', '.join(from_lease)}")
        run = run_canary(stack, options, log_path=log_path, resume=args.resume,
                         lease=spec or (lambda: leases.spec_for(stack, args.release, args.cwd, args.lease_seconds)))
        print(f"log: {run.log_path}")
        from operations.promotion import record_canary  # the verdict into the release record

        record_canary(stack, args.release, options.tag, run)
        return run.exit_code

    return stacks.guarded(action)


def cmd_abort(args: argparse.Namespace) -> int:
    def action() -> int:
        stack = stacks.open_stack(args.stack, args.cwd)
        take_lease = None
        try:
            spec = leases.spec_for(stack, args.release, args.cwd, args.lease_seconds)
        except stacks.InputError as error:  # an abort goes on without a lease: it is the way out
            print(f"note: no lease is kept ({error})", file=sys.stderr)
        else:
            take_lease = canary_lease.abort_taker(spec, stack.name, args.release, print)
        return do_abort(stack, args.release, args.yes, stacks.confirm_tty,
                        policy=stacks.RetryPolicy(lock_wait=args.lock_wait), take_lease=take_lease)

    return stacks.guarded(action)


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "canary", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="step a canary's weight with live checks; promote it or roll it back",
        description="Set the canary tag, then for each weight step update the stack and send probe traffic to the "
                    "release (its address from the stack outputs, or --url), judging success rate, p99 latency and "
                    "the share of answers from the canary (X-App-Version header). Each step is two updates: the "
                    "canary's pods first (ready before traffic moves), then the weight. A failing canary is stopped "
                    "as soon as the failure is statistically clear: weight back to 0, exit 1. So is a failed or "
                    "locked update, an error, Ctrl-C or SIGTERM (an update under way is let finish first, so the "
                    "stack's lock is released). After the last step the canary tag becomes the stable tag. The run "
                    "holds a lease beside the stack's state (file:// or s3:// backends), renewed while it runs: a "
                    "second run is refused, and if this process dies, `rollout watchdog` aborts the canary once the "
                    "lease expires, or --resume continues it. Needs the Pulumi CLI and a login to the stack's backend.",
        epilog="example:\n  python -m rollout canary staging --release app --tag v2 --steps 5,25,50,100 "
               "--interval 60s --max-error-rate 1% --max-p99 500ms",
    )
    parser.add_argument("stack", type=stack_name)
    parser.add_argument("--release", required=True, metavar="NAME")
    parser.add_argument("--tag", help="the image tag to roll out (required, unless --resume)")
    parser.add_argument("--steps", type=_steps,
                        help="weights in percent (default 5,25,50,100); empty (\"\") with --match-only: promote "
                             "after the match-only phase")
    parser.add_argument("--match-only", action="store_const", const=True, default=None,
                        help="first a phase at weight 0 where only requests with the release's canary.match header "
                             "or cookie reach the canary (the probes send it), judged as a step")
    parser.add_argument("--match-value", metavar="VALUE",
                        help="the header value the probes send when canary.match.header is a regex")
    parser.add_argument("--interval", type=_interval, help="time at each step (default 60s)")
    parser.add_argument("--max-error-rate", type=_percent, help="error budget (default 1%%)")
    parser.add_argument("--max-p99", type=_duration, help="p99 latency limit (default 500ms)")
    parser.add_argument("--url", type=_probe_url, help="probe this URL instead of the release's address")
    parser.add_argument("--rate", type=_rate,
                        help="probe requests per second (default 50; 0: no probes, with --metrics)")
    parser.add_argument("--settle", type=_duration,
                        help="time after each weight change before the traffic share is judged (default 5s)")
    parser.add_argument("--metrics", type=_metrics, metavar="prometheus=URL",
                        help="judge the users' traffic from Prometheus (per-version counters) instead of the probes")
    parser.add_argument("--metrics-selector", metavar="LABELS",
                        help="PromQL label matchers naming the release's series, {namespace}, {release} and {service} "
                             "filled in from the stack (default: "
                             "'namespace=\"{namespace}\",pod=~\"{release}-(stable|canary)-[a-z0-9]+-[a-z0-9]+\"')")
    parser.add_argument("--scrape-interval", type=_interval, metavar="DURATION",
                        help="Prometheus's scrape interval for the release (default: read from its /api/v1/targets); "
                             "--interval must be at least 3 of them")
    parser.add_argument("--metrics-wait", type=_interval, metavar="DURATION",
                        help="how long a step waits for the canary's series and a whole scrape round after the weight "
                             "(default: 3 scrape intervals + 30s)")
    parser.add_argument("--share-design-effect", type=_design_effect, metavar="D",
                        help="requests per independent trial in the share tests (default 1 for probes, 20 from "
                             "Prometheus: keep-alive clients; about 2 x the mean requests per connection)")
    parser.add_argument("--min-canary-answers", type=_count, metavar="N",
                        help="canary answers a step needs to pass (default 5, fewer when the probes cannot give them)")
    parser.add_argument("--verify-timeout", type=_duration,
                        help="how long a step waits for its weight to be live where it takes effect: load balancer, "
                             "Route53, Deployments, Ingress or route status (default 2m; 0: not checked)")
    parser.add_argument("--lock-wait", type=_duration, default=300.0,
                        help="how long to wait for another update's lock on the stack (default 5m)")
    parser.add_argument("--log", type=Path, help="log file (default build/canary/<stack>-<release>-<time>.log)")
    parser.add_argument("--lease-seconds", type=leases.lease_seconds_argument, default=leases.DEFAULT_SECONDS, metavar="DURATION",
                        help="the run's lease beside the stack's state: how long it outlives its last renewal "
                             "(default 5m; renewed every third of it)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run an expired lease describes, from its step, after checking that the "
                             "live weight and tags still match it (options not given come from the lease)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=cmd_canary)

    abort = verbs.add_parser(
        "abort", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="send all traffic of a canary back to its stable track",
        description="For a canary left mid-way (a closed laptop, a killed CI job, a run that could not finish its "
                    "abort): set canary.weight to 0 and update the stack, keeping the canary's pods until traffic has "
                    "left them, then remove them (two updates). Waits for another update's lock, retries a failed "
                    "update, and says what is live if it still cannot. Needs the Pulumi CLI and a login.",
        epilog="example:\n  python -m rollout abort staging --release app",
    )
    abort.add_argument("stack", type=stack_name)
    abort.add_argument("--release", required=True, metavar="NAME")
    abort.add_argument("--lock-wait", type=_duration, default=300.0,
                       help="how long to wait for another update's lock on the stack (default 5m)")
    abort.add_argument("--lease-seconds", type=leases.lease_seconds_argument, default=leases.DEFAULT_SECONDS, metavar="DURATION",
                       help="the abort's hold on the release's lease while it runs (default 5m)")
    abort.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    abort.set_defaults(func=cmd_abort)
