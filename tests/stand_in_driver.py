"""The test's side of `python -m tests.stand_in_rollout` (the real command line in a process of its own, over
a stand-in stack in a file:// backend): the backend, a Driver that starts such a process and reads what it
says line by line, the leases' clock, and the program runs the drivers' updates ask of the test process.

Shared by tests/test_driver_death.py (canaries, waves) and tests/test_bluegreen_driver_death.py. No helper
waits on the wall clock: a driver says where it is, a lease's expiry is reached by moving the leases' clock.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

from operations import lease as leases
from operations import stacks
from tests.fake_stack import PROGRAM_RUN_LOCK
from tests.program_runs import ROOT, shared_run
from tests.stand_in_rollout import PROGRAM_RUNS_ENV, FileStack, portable_run

URL = "http://127.0.0.1:9/"
# Generous bounds on a process that hangs, not thresholds: each is minutes beyond what a test needs.
HANG = int(os.environ.get("HANG", 300))


def file_backend(tmp_path: Path, monkeypatch: Any, config: dict[str, Any]) -> Path:
    """new_backend in `tmp_path`, which this process's `rollout` uses (use_backend)."""
    return use_backend(new_backend(tmp_path, config), monkeypatch)


def new_backend(directory: Path, config: dict[str, Any], name: str = "staging") -> Path:
    """A file:// backend directory, `directory`/state, holding stack `name` deployed once with `config`."""
    state = directory / "state"
    FileStack(name, state, config).up(message="initial")
    return state


def use_backend(state: Path, monkeypatch: Any) -> Path:
    """This process's `rollout` (rollout.cli.main) opens its stacks in the backend `state`, as the drivers do."""
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{state}")
    monkeypatch.setattr(stacks, "open_stack", lambda stack, cwd: FileStack(stack, state))
    return state


def lease_record(backend: Path, stack: str = "staging", release: str = "app") -> dict[str, Any]:
    return json.loads((backend / f".app-update/leases/app-update/{stack}/{release}.json").read_text())


def shift_clock(monkeypatch: Any, seconds: float) -> None:
    """This process's leases' clock, `seconds` ahead (a lease expires without waiting for it)."""
    real = leases.wall_clock
    monkeypatch.setattr(leases, "wall_clock", lambda: real() + seconds)


class Driver:
    """A `rollout` process over the stand-in; its output read line by line as it comes (a thread per
    process; drivers started together share one condition, so a test can wait for the first of them)."""

    def __init__(self, backend: Path, *argv: str, probes: str = "hold", env: dict[str, str] | None = None,
                 heard: threading.Condition | None = None):
        environment = {**os.environ, "STAND_IN_BACKEND": str(backend), "PULUMI_BACKEND_URL": f"file://{backend}",
                       "STAND_IN_PROBES": probes, PROGRAM_RUNS_ENV: program_runs(), "PYTHONPATH": str(ROOT),
                       **(env or {})}
        self.process = subprocess.Popen([sys.executable, "-u", "-m", "tests.stand_in_rollout", *argv], cwd=ROOT,
                                        env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.ended = False
        self.heard = heard or threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self.heard:
                self.lines.append(line.rstrip("\n"))
                self.heard.notify_all()
        with self.heard:
            self.ended = True
            self.heard.notify_all()

    def said(self, text: str) -> str | None:
        return next((line for line in self.lines if text in line), None)

    def wait_for(self, text: str) -> str:
        """Wait for a line containing `text` (the process says where it is)."""
        with self.heard:
            assert self.heard.wait_for(lambda: self.said(text) or self.ended, HANG), \
                f"the process hangs, waited {HANG}s for {text!r}; it said:\n{self.output}"
            line = self.said(text)
        assert line is not None, f"the process ended without saying {text!r}:\n{self.output}"
        return line

    def finish(self) -> int:
        self.process.wait(timeout=HANG)
        with self.heard:
            assert self.heard.wait_for(lambda: self.ended, HANG)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no handler runs, what the process held stays as it was."""
        self.process.kill()
        self.process.wait()

    def release_gate(self, gate: Path) -> None:
        """Let the update held at the FIFO `gate` go on (STAND_IN_GATE): write to it once the driver has it
        open. A driver that died instead fails the test with its output, where a blocking open would wait
        forever."""
        while True:
            try:
                fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads it
                break
            except OSError:
                assert self.process.poll() is None, f"the driver ended while its update was held:\n{self.output}"
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=0.05)  # a pause that ends early if the driver ends
        os.write(fd, b"go")
        os.close(fd)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


# -- the program runs of the drivers' updates ---------------------------------------------------------------
# A stand-in stack's update runs the real program under mocks (tests/fake_stack.py). In a driver of its own, the
# first run would pay the Pulumi SDK's and the providers' cold start (about a second of CPU) for a run this process
# has warm, often cached. So a driver asks this process over a Unix socket (tests/stand_in_rollout.py
# ask_for_run): one request a connection, the stack's name and settings in, the run out, both pickled. The
# program still runs in a process other than the one calling `up()`, as a real `pulumi up`'s does.

_service: ProgramRuns | None = None
_service_lock = threading.Lock()


def program_runs() -> str:
    """The address of this process's program-run service, started on first use."""
    global _service
    with _service_lock:
        if _service is None:
            _service = ProgramRuns()
        return _service.address


class ProgramRuns:
    """A thread answering the drivers' program runs, one at a time, for as long as this process lives."""

    def __init__(self) -> None:
        directory = tempfile.mkdtemp(prefix="stand-in-runs-")
        atexit.register(shutil.rmtree, directory, True)
        self.address = os.path.join(directory, "runs.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.address)
        self.listener.listen(16)
        threading.Thread(target=self._serve, name="stand-in program runs", daemon=True).start()

    def _serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()  # blocks: no polling between drivers
            with connection:
                try:
                    self._answer(connection)
                except OSError:
                    pass  # the driver died while it waited (SIGKILL): nobody to answer

    @staticmethod
    def _answer(connection: socket.socket) -> None:
        request = b"".join(iter(lambda: connection.recv(1 << 16), b""))
        try:
            stack, settings = pickle.loads(request)
            with PROGRAM_RUN_LOCK:  # as tests/fake_stack.py's up(): one program run at a time in this process
                run = shared_run(stack, settings)
            answer = ("run", portable_run(run))
        except Exception:
            answer = ("failed", traceback.format_exc())
        connection.sendall(pickle.dumps(answer))

