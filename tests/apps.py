"""Real processes of the sample app on loopback ports, for the app and canary tests.

    app = AppProcess("v2", LATENCY_MS="150")     # started and answering /healthz
    ...
    app.stop()

Each start is a Python start-up (~0.2 s, most of it CPU). To start several, launch them all and then wait for
them, so that their start-ups overlap; stop them together too (a stop waits up to the app's 0.1 s poll interval):

    apps = {"v1": AppProcess.launch("v1"), "v3": AppProcess.launch("v3", FAIL_RATE="0.5")}
    wait_all(apps.values())
    ...
    stop_all(apps.values())
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "app" / "server.py"
START_DEADLINE_S = 10.0  # a start-up is ~0.2 s; this is for a busy machine
STOP_DEADLINE_S = 10.0  # then the process is killed


class AppProcess:
    """`python app/server.py` on 127.0.0.1, a free port; its stdout and stderr are `process.stdout`."""

    def __init__(self, version: str, **env: str):
        self._launch(version, env)
        self.wait_started()

    @classmethod
    def launch(cls, version: str, **env: str) -> AppProcess:
        """Start the process without waiting for it: `port` and `url` are there after wait_started()."""
        app = cls.__new__(cls)
        app._launch(version, env)
        return app

    def _launch(self, version: str, env: dict[str, str]) -> None:
        self.version = version
        environ = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", "APP_VERSION": version, **env}
        self.process = subprocess.Popen([sys.executable, "-u", str(SERVER)], env=environ, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.port = 0
        self.url = ""

    def wait_started(self, deadline_s: float = START_DEADLINE_S) -> None:
        """Wait for "app <version> listening on :<port>", then for /healthz to answer; the process is stopped
        if either does not come."""
        if self.port:
            return
        try:
            ready, _, _ = select.select([self.process.stdout], [], [], deadline_s)
            line = self.process.stdout.readline() if ready else ""
            match = re.search(r"listening on :(\d+)", line)
            if not match:
                raise RuntimeError(f"app {self.version} did not start within {deadline_s:g} s: {line!r}")
            self.port = int(match.group(1))
            self.url = f"http://127.0.0.1:{self.port}/"
            self.wait_ready(deadline_s)
        except BaseException:
            self.process.kill()
            self.stop()
            raise

    def wait_ready(self, deadline_s: float = 10) -> None:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)  # poll interval while waiting on a deadline

    def stop(self) -> None:
        """SIGTERM (the app's graceful stop), and wait for the exit; killed if it takes STOP_DEADLINE_S."""
        self._terminate()
        self._reap()

    def _terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    def _reap(self) -> None:
        try:
            self.process.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


def wait_all(apps: Iterable[AppProcess]) -> None:
    """Wait for launched apps to be started; if one does not start, all are stopped."""
    apps = list(apps)
    try:
        for app in apps:
            app.wait_started()
    except BaseException:
        stop_all(apps)
        raise


@contextlib.contextmanager
def running(**versions: dict[str, str]) -> Iterator[dict[str, AppProcess]]:
    """The apps named (version: its environment), launched together, waited for, and stopped together at the end:
    `with running(v1={}, v3={"FAIL_RATE": "0.5"}) as apps: ...`"""
    started = {version: AppProcess.launch(version, **env) for version, env in versions.items()}
    wait_all(started.values())
    try:
        yield started
    finally:
        stop_all(started.values())


def stop_all(apps: Iterable[AppProcess]) -> None:
    """Stop apps together: all get SIGTERM first, then each is waited for."""
    apps = list(apps)
    for app in apps:
        app._terminate()
    for app in apps:
        app._reap()
