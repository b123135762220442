"""A real Prometheus server on a loopback port, scraping given targets every 200 ms, for the tests.

Prometheus 2.42 (Debian 12's) scrapes a new target only ~5 s after it starts (its discovery and
scrape managers pass target updates on every 5 s, with no flag to change that), however early the
target is known. So the server can start before its targets exist: each job's targets are a
file_sd file, written when they are known (`set_targets`), which Prometheus reads at once and
passes on at that 5 s tick; the apps it scrapes start meanwhile. `Background` starts such an
environment on a thread when a test module begins (not when pytest imports the module: collecting
starts nothing), so that the module's tests that need no server run while it comes up.

Every 200 ms (the scrape timeout too; a scrape of the sample app takes a few ms, ~70 ms on a busy
machine): operations/prometheus.py reads raw counters and their scrape times with instant queries
(no rate windows; the default 5 min lookback only has to reach the last scrape), and judges whole
scrape rounds, so a short interval makes the tests' rounds short and many.

Debian's `prometheus` package provides the binary (`make prometheus`; `.ci/run` installs it). The
server gets a free port, a temporary TSDB directory and a config file of its own; `start()` polls
`/-/ready`, then the targets API until every target is up (scraped), each with a deadline; `stop()`
terminates it and waits with a deadline (then kills). Nothing sleeps for a fixed time.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")
POLL = 0.05  # seconds between polls while waiting on a deadline
STARTUP_POLL = 0.25  # at most, while waiting for new targets to be scraped (~5 s: a discovery tick)
SCRAPE_INTERVAL = "200ms"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], deadline_s: float, what: str, max_poll: float = POLL) -> Any:
    """Poll `condition` until it returns something true; fail with `what` past the deadline. The poll interval
    starts at POLL and doubles up to `max_poll`: a wait known to be long (Prometheus' ~5 s before it scrapes a new
    target) asks a few times a second, not twenty."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    poll = POLL
    while True:
        try:
            result = condition()
        except (OSError, ValueError, KeyError) as error:  # not up yet
            result, last = None, error
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {deadline_s:g}s" + (f" (last: {last})" if last else ""))
        time.sleep(poll)  # poll interval while waiting on a deadline
        poll = min(2 * poll, max(max_poll, POLL))


class PrometheusServer:
    def __init__(self, targets: dict[str, list[str]], *, scrape_interval: str = SCRAPE_INTERVAL,
                 binary: str | None = None):
        """`targets`: job name → ["127.0.0.1:port", ...], each scraped on /metrics. A job's list may be
        empty at first and given later with `set_targets`."""
        self.targets = {job: list(addresses) for job, addresses in targets.items()}
        # address → target labels (what a Kubernetes service discovery's relabelling attaches: namespace, pod)
        self.labels: dict[str, dict[str, str]] = {}
        self.scrape_interval = scrape_interval
        self.binary = binary or prometheus_binary()
        if self.binary is None:
            raise FileNotFoundError("the prometheus binary is not installed (make prometheus)")
        self.process: subprocess.Popen[str] | None = None
        self.directory: Path | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _targets_file(self, job: str) -> Path:
        assert self.directory is not None
        return self.directory / f"targets-{list(self.targets).index(job)}.json"

    def config(self) -> str:
        # refresh_interval: file_sd also re-reads on file change notifications; this is the fallback.
        jobs = "".join(
            f"  - job_name: {json.dumps(job)}\n"
            f"    scrape_interval: {self.scrape_interval}\n"
            f"    scrape_timeout: {self.scrape_interval}\n"
            f"    file_sd_configs:\n"
            f"      - files: [{json.dumps(str(self._targets_file(job)))}]\n"
            f"        refresh_interval: 1s\n"
            for job in self.targets)
        return (f"global:\n  scrape_interval: {self.scrape_interval}\n  evaluation_interval: {self.scrape_interval}\n"
                f"scrape_configs:\n{jobs}")

    def set_targets(self, job: str, addresses: list[str], labels: dict[str, dict[str, str]] | None = None) -> None:
        """Scrape `addresses` in `job` (one of the constructor's), each with its `labels` if given (as a
        Kubernetes service discovery would attach `namespace` and `pod`): Prometheus scrapes new targets at
        its next 5 s tick; `wait_up()` waits for them."""
        if job not in self.targets:
            raise KeyError(f"no job {job!r} in this server's config (jobs: {', '.join(self.targets)})")
        self.targets[job] = list(addresses)
        self.labels.update(labels or {})
        if self.directory is not None:
            self._write_targets(job)

    def _write_targets(self, job: str) -> None:
        path = self._targets_file(job)
        temporary = path.with_suffix(".tmp")  # written whole, then renamed: Prometheus never reads half a file
        temporary.write_text(json.dumps([{"targets": [address], "labels": self.labels.get(address, {})}
                                         for address in self.targets[job]]))
        os.replace(temporary, path)

    def start(self, deadline_s: float = 20.0) -> PrometheusServer:
        """Start the server; return once it is ready and every target given so far is up."""
        self.directory = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
        for job in self.targets:
            self._write_targets(job)
        config = self.directory / "prometheus.yml"
        config.write_text(self.config())
        for attempt in range(3):  # the free port may be taken between asking and binding: try another
            self.port = free_port()
            log = (self.directory / f"prometheus-{attempt}.log").open("w")
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}",
                 f"--storage.tsdb.path={self.directory / 'data'}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
            log.close()
            try:
                wait_for(self._ready, deadline_s, f"Prometheus ready on {self.url}")
                break
            except TimeoutError:
                self._end()
                if attempt == 2:
                    raise RuntimeError(f"Prometheus did not start: {self.log_tail()}") from None
        self.wait_up(deadline_s)
        return self

    def wait_up(self, deadline_s: float = 20.0) -> None:
        """Wait until every target is up: scraped at least once, successfully."""
        expected = {address for addresses in self.targets.values() for address in addresses}
        if expected:
            wait_for(lambda: self._targets_up() >= expected, deadline_s, f"{len(expected)} scrape targets up",
                     max_poll=STARTUP_POLL)

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise TimeoutError(f"Prometheus exited with status {self.process.returncode}")
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def _targets_up(self) -> set[str]:
        answer = self.api("targets", {"state": "active"})
        return {target["labels"]["instance"] for target in answer["activeTargets"] if target["health"] == "up"}

    def api(self, endpoint: str, params: dict[str, str] | None = None) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{endpoint}{query}", timeout=5) as response:
            return json.loads(response.read())["data"]

    def log_tail(self) -> str:
        if self.directory is None:
            return ""
        logs = sorted(self.directory.glob("prometheus-*.log"))
        return logs[-1].read_text()[-2000:] if logs else ""

    def _end(self, deadline_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=deadline_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=deadline_s)

    def stop(self) -> None:
        self._end()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


class Background(Generic[T]):
    """Something slow to start: `begin()` starts it on a thread (nothing starts before), `result()`
    waits for it (beginning it if need be), `stop()` stops it once started; if still running at the
    interpreter's exit, it is stopped then. After `stop()`, `begin()` starts it anew."""

    def __init__(self, start: Callable[[], T], stop: Callable[[T], None]):
        self._start, self._stop = start, stop
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    def begin(self) -> None:
        with self._lock:
            if self._thread is None:
                self._value, self._error = None, None
                self._thread = threading.Thread(target=self._run, daemon=True)
                atexit.register(self.stop)
                self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._start()
        except BaseException as error:  # noqa: BLE001 (raised again where the value is used)
            self._error = error

    def result(self, deadline_s: float = 60.0) -> T:
        self.begin()
        thread = self._thread
        assert thread is not None
        thread.join(deadline_s)
        if thread.is_alive():
            raise TimeoutError(f"not started within {deadline_s:g}s")
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            atexit.unregister(self.stop)
        thread.join(60)
        value, self._value = self._value, None
        if value is not None:
            self._stop(value)
