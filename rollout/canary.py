"""`python -m rollout canary`: progressive delivery through the stack, from a laptop or CI.

For each weight step: set the weight (and, first, the canary tag), update the stack, then
send probe traffic to the release's address and judge the canary as the answers arrive
(rollout/canary_analysis.py). A failing canary is stopped as soon as its failure is clear:
weight back to 0, stack updated, exit 1. After the last step the canary tag becomes the
stable tag (the stable Deployment rolls in place) and the weight goes back to 0.

The app must say which version answered in an `X-App-Version` header equal to the image
tag (the sample app in app/ does).
"""

from __future__ import annotations

import argparse
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

from rollout import stacks
from rollout.canary_analysis import Judge
from rollout.stacks import Change, OperationError, StackLike


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


class Prober:
    """Paced probe traffic from a few threads, fed into a Judge until stopped."""

    def __init__(self, url: str, judge: Judge, rate: float, concurrency: int, timeout: float):
        self.url = urllib.parse.urlsplit(url)
        self.judge = judge
        self.rate = rate
        self.timeout = timeout
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.verdict: str | None = None
        self.next_slot = 0
        self.start = time.monotonic()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(concurrency)]

    def _work(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                slot = self.next_slot
                self.next_slot += 1
            # Pace to `rate` requests per second across all threads.
            if self.stop.wait(max(0.0, self.start + slot / self.rate - time.monotonic())):
                return
            version, ok, seconds = probe_once(self.url, self.timeout)
            with self.lock:
                if self.stop.is_set():
                    return
                self.judge.observe(version, ok, seconds)
                verdict = self.judge.verdict()
                if verdict:
                    self.verdict = verdict
                    self.stop.set()

    def run(self, duration: float, on_tick: Callable[[float], None]) -> str | None:
        for thread in self.threads:
            thread.start()
        deadline = self.start + duration
        while not self.stop.wait(min(1.0, max(0.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                break
            on_tick(time.monotonic() - self.start)
        self.stop.set()
        for thread in self.threads:
            thread.join(self.timeout + 1)
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


def _update(stack: StackLike, log: _Log, changes: list[Change], message: str) -> tuple[bool, dict[str, Any]]:
    """Write the changes and update the stack: (succeeded, the releases config as now written)."""
    config, releases = _release_config(stack, changes[0].release)
    written = stacks.apply_changes(releases, changes)
    stacks.check_config(stack.name, config, written)
    stacks.write_changes(stack, changes)
    log.event("update", message=message, changes=[asdict(c) for c in changes])
    result = stack.up(message=message, on_output=lambda line: log.event("pulumi", line=line.rstrip()), color="never")
    outcome = getattr(getattr(result, "summary", None), "result", "succeeded")
    log.event("update-result", result=outcome)
    return outcome == "succeeded", written


def release_url(stack: StackLike, release: str, releases: dict[str, Any]) -> str:
    value = stack.outputs().get("releases")
    info = (getattr(value, "value", value) or {}).get(release) or {}
    address = info.get("address")
    if not address:
        raise OperationError(f"stack {stack.name} reports no address for release {release} yet: pass --url")
    port = releases[release].get("servicePort", 80)
    return f"http://{address}{'' if port == 80 else f':{port}'}/"


def run_canary(stack: StackLike, options: CanaryOptions, *, out: TextIO | None = None,
               log_path: Path | None = None) -> CanaryRun:
    log = _Log(log_path, out or sys.stdout)
    try:
        return _run(stack, options, log)
    finally:
        log.close()


def _run(stack: StackLike, o: CanaryOptions, log: _Log) -> CanaryRun:
    _, releases = _release_config(stack, o.release)
    url = o.url or release_url(stack, o.release, releases)
    log.say(f"canary {o.release} {o.tag} on {stack.name}: steps {', '.join(f'{w}%' for w in o.steps)}, "
            f"{o.interval:g}s each, error budget {100 * o.max_error_rate:g}%, p99 limit {1000 * o.max_p99:.0f}ms, "
            f"probing {url}", url=url)
    results: list[StepResult] = []
    for index, weight in enumerate(o.steps, start=1):
        changes = [Change(o.release, "canary.weight", stacks.get_path(releases[o.release], "canary.weight"), weight)]
        if index == 1:
            changes.insert(0, Change(o.release, "canary.tag", stacks.get_path(releases[o.release], "canary.tag"), o.tag))
        log.say(f"step {index}/{len(o.steps)}: weight {weight}%, updating {stack.name}")
        updated, releases = _update(stack, log, changes, f"canary {o.release} {o.tag}: weight {weight}%")
        if not updated:
            return _abort(stack, o, log, releases, results, index, weight, "the stack update failed")
        judge = Judge(o.tag, weight, o.max_error_rate, o.max_p99)
        prober = Prober(url, judge, o.rate, o.concurrency, o.timeout)

        def tick(elapsed: float, judge: Judge = judge, index: int = index, weight: int = weight) -> None:
            p99 = judge.canary.p99()
            log.say(f"  step {index} weight {weight:>3}%  {elapsed:5.1f}s  requests {judge.total.requests:>6}  "
                    f"canary {judge.canary_share:5.1f}%  errors {100 * judge.total.error_rate:5.2f}% "
                    f"(canary {100 * judge.canary.error_rate:5.2f}%)  canary p99 "
                    f"{'-' if p99 is None else f'{1000 * p99:.0f}ms'}")

        started = time.monotonic()
        try:
            verdict = prober.run(o.interval, tick)
        except KeyboardInterrupt:
            # Ctrl-C never leaves a half-rolled canary carrying traffic.
            prober.stop.set()
            return _abort(stack, o, log, releases, results, index, weight, "interrupted by the operator")
        p99 = judge.canary.p99()
        result = StepResult(
            step=index, weight=weight, requests=judge.total.requests, canary_requests=judge.canary.requests,
            canary_share=round(judge.canary_share, 2), error_rate=round(100 * judge.total.error_rate, 2),
            canary_error_rate=round(100 * judge.canary.error_rate, 2),
            p99_ms=None if p99 is None else round(1000 * p99, 1), elapsed=round(time.monotonic() - started, 2),
            verdict=verdict)
        results.append(result)
        log.event("step", **asdict(result))
        if verdict:
            return _abort(stack, o, log, releases, results, index, weight, verdict)
        log.say(f"step {index} passed: {result.requests} requests, canary {result.canary_share}%, "
                f"errors {result.error_rate}%, canary p99 {result.p99_ms}ms")

    promote = [Change(o.release, "stable.tag", stacks.get_path(releases[o.release], "stable.tag"), o.tag),
               Change(o.release, "canary.weight", stacks.get_path(releases[o.release], "canary.weight"), 0)]
    log.say(f"all steps passed: promoting {o.tag} to the stable track of {o.release}")
    promoted, _ = _update(stack, log, promote, f"promote {o.release} {o.tag}")
    if not promoted:
        log.say("the promotion update failed: the canary still carries the last weight; run it again or undo")
        return CanaryRun(1, results, "promotion update failed", log.path_text)
    log.say(f"promoted: {o.release} runs {o.tag}")
    return CanaryRun(0, results, None, log.path_text)


def _abort(stack: StackLike, o: CanaryOptions, log: _Log, releases: dict[str, Any], results: list[StepResult],
           index: int, weight: int, reason: str) -> CanaryRun:
    log.say(f"ABORT at step {index} (weight {weight}%): {reason}")
    back = [Change(o.release, "canary.weight", stacks.get_path(releases[o.release], "canary.weight"), 0)]
    ok, _ = _update(stack, log, back, f"canary {o.release} {o.tag} aborted at {weight}%: {reason}")
    log.say(f"traffic to the canary is back at 0%{'' if ok else ' (the update FAILED: check the stack)'}")
    for r in results:
        log.say(f"  step {r.step} weight {r.weight}%: {r.requests} requests, canary {r.canary_share}%, "
                f"errors {r.error_rate}% (canary {r.canary_error_rate}%), {r.elapsed}s"
                + (f"  ← {r.verdict}" if r.verdict else ""))
    return CanaryRun(1, results, reason, log.path_text)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def _duration(text: str) -> float:
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"must be a duration like 60s, 500ms or 2m (got {text!r})")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value * {"ms": 0.001, "s": 1, "m": 60}[unit]


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


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 10_000:
        raise argparse.ArgumentTypeError(f"must be requests per second between 0 and 10000 (got {text!r})")
    return value


def cmd_canary(args: argparse.Namespace) -> int:
    from rollout.operations import _confirm_tty
    from rollout.operations import _run as run_guarded

    options = CanaryOptions(release=args.release, tag=args.tag, steps=args.steps, interval=args.interval,
                            max_error_rate=args.max_error_rate, max_p99=args.max_p99, url=args.url, rate=args.rate)
    log_path = args.log or args.cwd / "build" / "canary" / (
        f"{args.stack}-{args.release}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.log")

    def action() -> int:
        stack = stacks.open_stack(args.stack, args.cwd)
        protected = stacks.is_protected(stack.get_all_config())
        if not args.yes and not _confirm_tty(
                f"Run a canary of {args.release} {args.tag} on stack {args.stack} ({', '.join(map(str, args.steps))}%)?",
                args.stack if protected else None):
            print("not confirmed: nothing was changed (pass --yes to skip the question)")
            return 1
        run = run_canary(stack, options, log_path=log_path)
        print(f"log: {run.log_path}")
        return run.exit_code

    return run_guarded(action)


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "canary", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="step a canary's weight with live checks; promote it or roll it back",
        description="Set the canary tag, then for each weight step update the stack and send probe traffic to the "
                    "release (its address from the stack outputs, or --url), judging success rate, p99 latency and "
                    "the share of answers from the canary (X-App-Version header). A failing canary is stopped as soon "
                    "as the failure is statistically clear: weight back to 0, exit 1. After the last step the canary "
                    "tag becomes the stable tag. Needs the Pulumi CLI and a login to the stack's backend.",
        epilog="example:\n  python -m rollout canary staging --release app --tag v2 --steps 5,25,50,100 "
               "--interval 60s --max-error-rate 1% --max-p99 500ms",
    )
    parser.add_argument("stack")
    parser.add_argument("--release", required=True, metavar="NAME")
    parser.add_argument("--tag", required=True, help="the image tag to roll out")
    parser.add_argument("--steps", type=_steps, default=[5, 25, 50, 100], help="weights in percent (default 5,25,50,100)")
    parser.add_argument("--interval", type=_duration, default=60.0, help="time at each step (default 60s)")
    parser.add_argument("--max-error-rate", type=_percent, default=0.01, help="error budget (default 1%%)")
    parser.add_argument("--max-p99", type=_duration, default=0.5, help="p99 latency limit (default 500ms)")
    parser.add_argument("--url", help="probe this URL instead of the release's address")
    parser.add_argument("--rate", type=_rate, default=50.0, help="probe requests per second (default 50)")
    parser.add_argument("--log", type=Path, help="log file (default build/canary/<stack>-<release>-<time>.log)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=cmd_canary)
