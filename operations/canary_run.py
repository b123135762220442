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
import copy
import http.client
import json
import re
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
from operations import stacks
from operations.stacks import OperationError, StackLike


@dataclass
class CanaryOptions:
    release: str
    tag: str
    steps: list[int] = field(default_factory=lambda: [5, 25, 50, 100])
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
    metrics_selector: str | None = None


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


@dataclass
class CanaryRun:
    exit_code: int
    steps: list[StepResult]
    aborted: str | None = None
    log_path: str | None = None


# ---------------------------------------------------------------------------------------------
# Probe traffic
# ---------------------------------------------------------------------------------------------


def probe_once(url: urllib.parse.SplitResult, timeout: float) -> tuple[str | None, bool, float]:
    """One GET on a new connection (a load balancer routes per connection): (version, ok, seconds)."""
    start = time.perf_counter()
    connection_class = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(url.hostname, url.port, timeout=timeout)
    try:
        connection.request("GET", url.path or "/", headers={"User-Agent": "app-update-canary"})
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
        time.sleep(seconds)


class Prober:
    """Paced probe traffic from a few threads, fed into a Judge, for one step's interval.

    Request n goes out at start + n / rate; the step ends with the first request whose time is
    past the interval, or as soon as the judge has a verdict.
    """

    def __init__(self, url: str | None, judge: Judge, rate: float, concurrency: int, timeout: float,
                 clock: Clock | None = None, rounds: Any = None, judge_probes: bool = True, settle: float = 0.0):
        self.url = urllib.parse.urlsplit(url) if url else None
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
            version, ok, seconds = probe_once(self.url, self.timeout)
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
                # the step): rounds are dropped until the first that began after the settle time,
                # which is the round after the first one to end after it.
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
            # Wake now and then so Ctrl-C reaches this thread; the workers end the step, and the
            # step ends at its deadline even when nothing else would end it.
            while not self.stop.wait(0.5):
                if not threads and self.clock.now() >= deadline:
                    break
        finally:
            self.stop.set()
            for thread in threads:
                thread.join(self.timeout + 1)
        if self.error is not None:
            raise self.error
        return self.verdict


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


class _Log:
    """The run's record: JSON lines in a file, and a few lines on the terminal."""

    def __init__(self, path: Path | None, out: TextIO):
        self.out = out
        self.file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = path.open("a")
        self.path = path

    @property
    def path_text(self) -> str | None:
        return str(self.path) if self.path else None

    def event(self, kind: str, **data: Any) -> None:
        if self.file:
            self.file.write(json.dumps({"time": datetime.now().isoformat(timespec="milliseconds"),
                                        "event": kind, **data}) + "\n")
            self.file.flush()

    def say(self, text: str, **data: Any) -> None:
        print(text, file=self.out, flush=True)
        self.event("message", text=text, **data)

    def close(self) -> None:
        if self.file:
            self.file.close()


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
                 policy: stacks.RetryPolicy, clock: Clock):
        self.stack, self.release, self.log, self.policy, self.clock = stack, release, log, policy, clock
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
            self.clock.sleep(seconds)

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
        for change in changes:
            stacks.write_changes(self.stack, [change])
            self.config = stacks.apply_changes(self.config, [change])
        self.log.event("update", message=message, changes=[asdict(c) for c in changes])
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
        self.live, self.doubt = copy.deepcopy(self.cfg), None
        self.log.event("update-result", result="succeeded")
        return True

    def move_weight(self, old: int, new: int, message: str, policy: stacks.RetryPolicy | None = None,
                    extra: dict[str, Any] | None = None, *, certain: bool = True) -> None:
        """Take the canary from `old` to `new` percent in the two updates that keep capacity ahead
        of traffic (canary_math.weight_step): pods for both weights first, then the new weight alone."""
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

    def state_line(self) -> str:
        live = f"live: {self.describe(self.live)} (last successful update)"
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


def run_canary(stack: StackLike, options: CanaryOptions, *, out: TextIO | None = None,
               log_path: Path | None = None, clock: Clock | None = None) -> CanaryRun:
    """Step the canary, judge it, promote it or send its traffic back to stable.

    From the first config write on, every way out (a verdict, a failed or locked update, an
    exception, Ctrl-C) goes through the abort path, which puts the weight back to 0 with
    bounded retries; what it could not do is reported with the state that is live.
    """
    log = _Log(log_path, out or sys.stdout)
    try:
        return _CanaryLoop(stack, options, log, clock or Clock()).run()
    finally:
        log.close()


class _CanaryLoop:
    def __init__(self, stack: StackLike, options: CanaryOptions, log: _Log, clock: Clock):
        self.stack, self.o, self.log, self.clock = stack, options, log, clock
        self.results: list[StepResult] = []
        self.step, self.weight = 0, 0
        self.promoting = False
        self.stable_promoted = False
        self.original_stable_tag: Any = None

    def run(self) -> CanaryRun:
        o, stack, log = self.o, self.stack, self.log
        _, releases = _release_config(stack, o.release)
        cfg = releases[o.release]
        weight_now = int(stacks.get_path(cfg, "canary.weight") or 0)
        if weight_now or stacks.get_path(cfg, "canary.podsForWeight") is not None or live_weight(stack, o.release):
            raise OperationError(f"release {o.release}'s canary already carries traffic or is mid-step "
                                 f"(canary.weight {weight_now}): send it back first with "
                                 f"`{abort_command(stack.name, o.release)}`")
        if o.rate <= 0 and not o.metrics:
            raise OperationError("nothing would judge the canary: give probes a --rate or judge from --metrics")
        url = o.url or (release_url(stack, o.release, releases) if o.rate > 0 else None)
        self.original_stable_tag = stacks.get_path(cfg, "stable.tag")
        tracker = _Tracker(stack, o.release, releases, log, o.retry, self.clock)
        # The tag and the first step must make a valid config before anything is written.
        first = stacks.apply_changes(releases, [stacks.Change(o.release, "canary.tag", None, o.tag),
                                                stacks.Change(o.release, "canary.weight", None, o.steps[0])])
        try:
            tracker.pods(first)
        except OperationError as error:
            raise stacks.InputError(f"--tag {o.tag!r} or --steps cannot go into {stack.name}'s config: "
                                    + str(error).split("\n", 1)[-1].strip()) from None
        self.tracker = tracker
        log.say(f"canary {o.release} {o.tag} on {stack.name}: steps {', '.join(f'{w}%' for w in o.steps)}, "
                f"{o.interval:g}s each, error budget {100 * o.max_error_rate:g}%, p99 limit {1000 * o.max_p99:.0f}ms, "
                f"{f'probing {url}' if url else 'no probes'}"
                f"{f', judging from Prometheus at {o.metrics}' if o.metrics else ''}", url=url, metrics=o.metrics)
        # From the first write on, every way out goes through the abort path.
        try:
            for index, weight in enumerate(o.steps, start=1):
                self.step = index
                log.say(f"step {index}/{len(o.steps)}: weight {weight}%, updating {stack.name}")
                extra = {"canary.tag": o.tag} if index == 1 else None
                tracker.move_weight(self.weight, weight, f"canary {o.release} {o.tag}: weight {weight}%",
                                    stacks.RetryPolicy(attempts=1, lock_wait=o.retry.lock_wait, pause=o.retry.pause),
                                    extra)
                self.weight = weight
                tracker.wait_for_traffic("before judging the step")
                verdict = self._judge(url, index, weight)
                if verdict:
                    raise _Verdict(verdict)
            return self._promote()
        except _Verdict as verdict:
            return self._abort(str(verdict))
        except stacks.UpdateFailed as failed:
            return self._abort(f"the stack update failed: {failed.cause}")
        except KeyboardInterrupt:
            return self._abort("interrupted by the operator")
        except Exception as error:  # noqa: BLE001 (any failure must end in the abort path)
            return self._abort(stacks.error_line(error))

    def _judge(self, url: str, index: int, weight: int) -> str | None:
        o, log = self.o, self.log
        rounds = None
        # From probes the settle phase is time; from Prometheus it is also whole scrape rounds,
        # since a round can straddle the weight change (the loop ends it: Prober._watch_metrics).
        # DNS splits per resolver: one prober is one resolver and sees 0% or 100% of the canary, so
        # the share is never judged there (the judge stays settling); errors and latency are.
        per_resolver = self.tracker.traffic_settle() > 0
        version = o.tag.split("@", 1)[0]  # what the app reports: a tag pinned by digest reports its tag
        judge = (Judge(version, weight, o.max_error_rate, o.max_p99, settling=True) if o.metrics or per_resolver
                 else Judge(version, weight, o.max_error_rate, o.max_p99, settle_seconds=o.settle))
        if o.metrics:
            from operations.prometheus import PrometheusSource, Rounds

            # The baseline is taken now: only traffic of this step counts.
            rounds = Rounds(PrometheusSource(o.metrics, version, o.max_p99, selector=o.metrics_selector))
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
        p99 = judge.canary.p99()
        result = StepResult(
            step=index, weight=weight, requests=judge.total.requests, canary_requests=judge.canary.requests,
            canary_share=round(judge.canary_share, 2), error_rate=round(100 * judge.total.error_rate, 2),
            canary_error_rate=round(100 * judge.canary.error_rate, 2),
            p99_ms=None if p99 is None else round(1000 * p99, 1), elapsed=round(self.clock.now() - started, 2),
            verdict=verdict)
        if not verdict and judge.total.requests == 0:
            verdict = ("no answer was judged in the step: no probe answered and Prometheus counted no request "
                       "(is traffic reaching the release?)")
            result.verdict = verdict
        self.results.append(result)
        log.event("step", **asdict(result))
        if not verdict:
            log.say(f"step {index} passed: {result.requests} requests, canary {result.canary_share}%, "
                    f"errors {result.error_rate}%, canary p99 {result.p99_ms}ms")
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
        return CanaryRun(0, self.results, None, log.path_text)

    def _abort(self, reason: str) -> CanaryRun:
        o, log, tracker = self.o, self.log, self.tracker
        where = "the promotion" if self.promoting else f"step {self.step}/{len(o.steps)} (weight {o.steps[self.step - 1]}%)"
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
            # Never skipped: after a failure, what is live may differ from what the config says.
            tracker.move_weight(tracker.worst_weight(), 0, f"canary {o.release} {o.tag} aborted at {where}: {reason}",
                                extra=revert, certain=False)
            tracker.wait_for_traffic("before the abort is complete")
            restored = True
        except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (reported, with what is live)
            cause = "interrupted again" if isinstance(error, KeyboardInterrupt) else (
                error.cause if isinstance(error, stacks.UpdateFailed) else stacks.error_line(error))
            log.say(f"NOT RESTORED ({cause}): {tracker.state_line()}; finish with: "
                    f"{abort_command(self.stack.name, o.release)}", live=tracker.live, config=tracker.cfg)
        if restored:
            if self.stable_promoted:
                log.say(f"promoted: {o.release} runs {o.tag} (traffic reached the stable track after a retry)")
                return CanaryRun(0, self.results, None, log.path_text)
            log.say(f"traffic to the canary is back at 0%: {o.release} runs {tracker.get('stable.tag')} on its "
                    "stable track")
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


def _interval(text: str) -> float:
    value = _duration(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a duration above 0 (got {text!r})")
    return value


def _percent(text: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)%?", text)
    if not match or float(match.group(1)) > 100:
        raise argparse.ArgumentTypeError(f"must be a percentage like 1% (got {text!r})")
    return float(match.group(1)) / 100


def _steps(text: str) -> list[int]:
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


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be requests per second from 0 to 10000 (got {text!r})")
    return value


def do_abort(stack: StackLike, release: str, yes: bool, confirm: stacks.Confirm, *, out: TextIO | None = None,
             policy: stacks.RetryPolicy | None = None, clock: Clock | None = None) -> int:
    """Send all traffic of a canary back to its stable track, in the order that keeps capacity
    ahead of traffic, whatever a run left behind (a closed laptop, a killed CI job)."""
    log = _Log(None, out or sys.stdout)
    config, releases = _release_config(stack, release)
    cfg = releases[release]
    weight = int(stacks.get_path(cfg, "canary.weight") or 0)
    hold = stacks.get_path(cfg, "canary.podsForWeight")
    value = stack.outputs().get("releases")
    info = (getattr(value, "value", value) or {}).get(release) or {}
    live = int(info.get("requestedWeight") or 0)
    last = stacks.revisions(stack)[:1]
    in_doubt = bool(last) and not last[0].succeeded
    if weight == 0 and hold is None and live == 0 and float(info.get("effectiveWeight") or 0) == 0 and not in_doubt:
        log.say(f"nothing to abort: release {release} sends no traffic to its canary on stack {stack.name}")
        return 0
    protected = stacks.is_protected(config)
    log.say(f"Abort the canary of {release} on stack {stack.name}{' (protected)' if protected else ''}: "
            f"live weight {live}%, config weight {weight}%"
            + (f", pods for {hold}%" if hold is not None else "")
            + (f"; the last update (revision {last[0].number}) {last[0].result}" if in_doubt else ""))
    log.say("  1) canary.weight → 0, pods kept   2) canary pods removed")
    if not yes and not confirm(f"Send all traffic of {release} back to its stable track?",
                               stack.name if protected else None):
        log.say("not confirmed: nothing was changed (pass --yes to skip the question)")
        return 1
    tracker = _Tracker(stack, release, releases, log, policy or stacks.RetryPolicy(), clock or Clock())
    tracker.live["canary"] = {**(tracker.live.get("canary") or {}), "weight": live}
    try:
        tracker.move_weight(tracker.worst_weight(), 0, f"abort canary {release}", certain=False)
        tracker.wait_for_traffic("before the abort is complete")
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (reported, with what is live)
        cause = (error.cause if isinstance(error, stacks.UpdateFailed) else "interrupted"
                 if isinstance(error, KeyboardInterrupt) else stacks.error_line(error))
        log.say(f"NOT RESTORED ({cause}): {tracker.state_line()}; finish with: {abort_command(stack.name, release)}")
        return 1
    log.say(f"traffic to the canary is back at 0%: {release} runs {tracker.get('stable.tag')} on its stable track")
    return 0


def cmd_canary(args: argparse.Namespace) -> int:
    if args.rate == 0 and not args.metrics:
        print("error: --rate 0 sends no probes: then judge from --metrics prometheus=URL", file=sys.stderr)
        return stacks.EXIT_USAGE
    options = CanaryOptions(release=args.release, tag=args.tag, steps=args.steps, interval=args.interval,
                            max_error_rate=args.max_error_rate, max_p99=args.max_p99, url=args.url, rate=args.rate,
                            retry=stacks.RetryPolicy(lock_wait=args.lock_wait), settle=args.settle,
                            metrics=args.metrics, metrics_selector=args.metrics_selector)
    log_path = args.log or args.cwd / "build" / "canary" / (
        f"{args.stack}-{args.release}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log")

    def action() -> int:
        stack = stacks.open_stack(args.stack, args.cwd)
        protected = stacks.is_protected(stack.get_all_config())
        if not args.yes and not stacks.confirm_tty(
                f"Run a canary of {args.release} {args.tag} on stack {args.stack} ({', '.join(map(str, args.steps))}%)?",
                args.stack if protected else None):
            print("not confirmed: nothing was changed (pass --yes to skip the question)")
            return 1
        run = run_canary(stack, options, log_path=log_path)
        print(f"log: {run.log_path}")
        from operations.promotion import record_canary  # the verdict into the release record

        record_canary(stack, args.release, args.tag, run)
        return run.exit_code

    return stacks.guarded(action)


def cmd_abort(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: do_abort(stacks.open_stack(args.stack, args.cwd), args.release, args.yes,
                                           stacks.confirm_tty, policy=stacks.RetryPolicy(lock_wait=args.lock_wait)))


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "canary", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="step a canary's weight with live checks; promote it or roll it back",
        description="Set the canary tag, then for each weight step update the stack and send probe traffic to the "
                    "release (its address from the stack outputs, or --url), judging success rate, p99 latency and "
                    "the share of answers from the canary (X-App-Version header). Each step is two updates: the "
                    "canary's pods first (ready before traffic moves), then the weight. A failing canary is stopped "
                    "as soon as the failure is statistically clear: weight back to 0, exit 1. So is a failed or "
                    "locked update, an error or Ctrl-C. After the last step the canary tag becomes the stable tag. "
                    "Needs the Pulumi CLI and a login to the stack's backend.",
        epilog="example:\n  python -m rollout canary staging --release app --tag v2 --steps 5,25,50,100 "
               "--interval 60s --max-error-rate 1% --max-p99 500ms",
    )
    parser.add_argument("stack", type=stack_name)
    parser.add_argument("--release", required=True, metavar="NAME")
    parser.add_argument("--tag", required=True, help="the image tag to roll out")
    parser.add_argument("--steps", type=_steps, default=[5, 25, 50, 100], help="weights in percent (default 5,25,50,100)")
    parser.add_argument("--interval", type=_interval, default=60.0, help="time at each step (default 60s)")
    parser.add_argument("--max-error-rate", type=_percent, default=0.01, help="error budget (default 1%%)")
    parser.add_argument("--max-p99", type=_duration, default=0.5, help="p99 latency limit (default 500ms)")
    parser.add_argument("--url", help="probe this URL instead of the release's address")
    parser.add_argument("--rate", type=_rate, default=50.0,
                        help="probe requests per second (default 50; 0: no probes, with --metrics)")
    parser.add_argument("--settle", type=_duration, default=5.0,
                        help="time after each weight change before the traffic share is judged (default 5s)")
    parser.add_argument("--metrics", type=_metrics, metavar="prometheus=URL",
                        help="judge the users' traffic from Prometheus (per-version counters) instead of the probes")
    parser.add_argument("--metrics-selector", metavar="LABELS",
                        help='PromQL label matchers for the app\'s series, e.g. \'namespace="app-update"\'')
    parser.add_argument("--lock-wait", type=_duration, default=300.0,
                        help="how long to wait for another update's lock on the stack (default 5m)")
    parser.add_argument("--log", type=Path, help="log file (default build/canary/<stack>-<release>-<time>.log)")
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
    abort.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    abort.set_defaults(func=cmd_abort)
