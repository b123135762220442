"""`python -m tests.stand_in_rollout <verb> ...`: the real `rollout` command line in a process of its own,
over a stand-in stack whose state lives in a `file://` backend directory, so that processes can be
killed (SIGKILL, SIGTERM) and others (a watchdog, a resumed run) find what they left behind.

What it replaces, and only that: `operations.stacks.open_stack` (a FileStack: tests/fake_stack.py's
FakeStack, persisted), and, as the environment says:
- STAND_IN_PROBES=at-weight: each step's probing is answers_at_weight (the step passes at once);
  =hold: the answers, then the step waits for its end, which the tests bring about by a signal;
- STAND_IN_GATE=<fifo>: the first update whose message contains STAND_IN_GATE_MESSAGE says
  "stand-in: update held" on stderr and waits until the test writes to the FIFO (the update is
  running and the stack is locked meanwhile, as with a long `pulumi up`);
- STAND_IN_CLOCK_SHIFT=<seconds>: the leases' wall clock runs that far ahead (a lease expires
  without the test waiting for it);
the live weight reader (operations.step_checks.live_reader): the stand-in stack's outputs; and the
ResourceQuota check (operations.live_capacity): no quota.

FileStack keeps the stack's lock as the Pulumi DIY backend does, a file under
`.pulumi/locks/organization/<project>/<stack>/`, taken when an update starts and removed when the
CLI ends it; a process killed mid-update leaves it behind, as a killed CLI does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pulumi.automation import CommandResult
from pulumi.automation.errors import create_command_error

from tests.fake_stack import LOCKED_STDERR, FakeStack, answers_at_weight, outputs_live_reader

PERSISTED = ("config", "secret_keys", "summaries", "_outputs", "up_messages", "script", "applied", "changes", "live",
             "_live_objects")
AFTER_UPDATE = tuple(name for name in PERSISTED if name != "config")


class FileStack(FakeStack):
    """A FakeStack whose state is a file in a backend directory, shared by processes."""

    def __init__(self, name: str, backend: Path, config: dict[str, Any] | None = None):
        self.backend = backend
        self.state_path = backend / ".pulumi" / "stacks" / "app-update" / f"{name}.stand-in"
        self.locks = backend / ".pulumi" / "locks" / "organization" / "app-update" / name
        super().__init__(name, config or {})
        if config is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self.locks.mkdir(parents=True, exist_ok=True)
            with self._exclusive():
                self._save(PERSISTED)
        else:
            with self._exclusive():
                self._load()

    @contextlib.contextmanager
    def _exclusive(self):
        with open(self.state_path.with_suffix(".flock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _load(self) -> None:
        state = pickle.loads(self.state_path.read_bytes())
        for name in PERSISTED:
            setattr(self, name, state[name])

    def _save(self, names: tuple[str, ...]) -> None:
        state = pickle.loads(self.state_path.read_bytes()) if self.state_path.exists() else {}
        state.update({name: getattr(self, name) for name in names})
        temporary = self.state_path.with_suffix(f".{os.getpid()}")
        temporary.write_bytes(pickle.dumps(state))
        os.replace(temporary, self.state_path)

    def lock_files(self) -> list[Path]:
        return sorted(self.locks.glob("*.json"))

    # -- reads see what every process wrote; writes go back at once --------------------------
    def history(self, *args: Any, **kwargs: Any):
        with self._exclusive():
            self._load()
        return super().history(*args, **kwargs)

    def get_all_config(self):
        with self._exclusive():
            self._load()
        return super().get_all_config()

    def outputs(self):
        with self._exclusive():
            self._load()
        return super().outputs()

    def set_config(self, key, value, *, path=False):
        with self._exclusive():
            self._load()
            super().set_config(key, value, path=path)
            self._save(("config",))

    def remove_config(self, key, *, path=False):
        with self._exclusive():
            self._load()
            super().remove_config(key, path=path)
            self._save(("config",))

    def up(self, message: str | None = None, **kwargs: Any):
        with self._exclusive():
            self._load()
            if self.lock_files():
                raise create_command_error(CommandResult(stdout="", stderr=LOCKED_STDERR.format(stack=self.name),
                                                         code=255))
            lock = self.locks / f"{uuid.uuid4()}.json"
            lock.write_text(f'{{"pid": {os.getpid()}, "username": "stand-in"}}')
        gate, gated = os.environ.get("STAND_IN_GATE"), os.environ.get("STAND_IN_GATE_MESSAGE")
        if gate and gated and gated in (message or "") and not os.environ.get("STAND_IN_GATE_USED"):
            os.environ["STAND_IN_GATE_USED"] = "1"
            print(f"stand-in: update held: {message}", file=sys.stderr, flush=True)
            with open(gate) as fifo:  # blocks until the test opens it for writing (signals included)
                fifo.read()
        keep_lock = False
        try:
            self.locked_by = None
            return super().up(message=message, **kwargs)
        except KeyboardInterrupt:
            keep_lock = True  # the CLI died of SIGPIPE: the lock stays, as after a real one
            raise
        finally:
            with self._exclusive():
                self._save(AFTER_UPDATE)
            if not keep_lock:
                lock.unlink()


def open_file_stack(name: str, cwd: Path) -> FileStack:
    return FileStack(name, Path(os.environ["STAND_IN_BACKEND"]))


def _hold(prober: Any, duration: float, on_tick: Any) -> None:
    answers_at_weight(prober, duration, on_tick)
    print("stand-in: judging the step", flush=True)
    while not prober.stop.wait(0.2):  # wakes for signals; the step ends by one
        pass


def main(argv: list[str]) -> int:
    from operations import canary_run, live_capacity, stacks, step_checks
    from operations import lease as leases
    from rollout import cli

    stacks.open_stack = open_file_stack
    step_checks.live_reader = outputs_live_reader
    live_capacity.new_color_shortfalls = lambda *args, **kwargs: []  # no ResourceQuota behind the stand-in
    probes = os.environ.get("STAND_IN_PROBES", "at-weight")
    canary_run.Prober.run = answers_at_weight if probes == "at-weight" else _hold  # type: ignore[method-assign]
    shift = float(os.environ.get("STAND_IN_CLOCK_SHIFT", "0"))
    leases.wall_clock = lambda: time.time() + shift
    return cli.main(argv)



def release_gate(gate: Path, process: Any, output: Any) -> None:
    """Let a held update go on (STAND_IN_GATE): write to the FIFO its driver waits on, once the driver has it open.
    A driver that died instead fails the test with its output (`output()`), where a blocking open would wait
    forever."""
    import subprocess

    while True:
        try:
            fd = os.open(gate, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads it
            break
        except OSError:
            assert process.poll() is None, f"the driver ended while its update was held:\n{output()}"
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.05)  # a pause that ends early if the driver ends
    os.write(fd, b"go")
    os.close(fd)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
