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
- STAND_IN_PROGRAM_RUNS=<Unix socket>: each update's program run is asked of the test process that
  started this one (tests/stand_in_driver.py), whose SDK is warm and which keeps the runs of each
  config (a real `pulumi up`, too, runs the program in a process other than its caller's); without
  it, this process runs the program;
the live weight reader (operations.step_checks.live_reader): the stand-in stack's outputs; and the
ResourceQuota check (operations.live_capacity): no quota.

FileStack keeps the stack's lock as the Pulumi DIY backend does, a file under
`.pulumi/locks/organization/<project>/<stack>/`, taken when an update starts and removed when the
CLI ends it; a process killed mid-update leaves it behind, as a killed CLI does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import os
import pickle
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pulumi.automation import CommandResult
from pulumi.automation.errors import create_command_error

from tests.fake_stack import LOCKED_STDERR, FakeStack, answers_at_weight, outputs_live_reader

PROGRAM_RUNS_ENV = "STAND_IN_PROGRAM_RUNS"
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


@dataclasses.dataclass
class RaisedError:
    """A program run's exception on its way between processes: rebuilt without calling its class's __init__
    again (StackConfigRejected's takes a ConfigError and a stack, not what it keeps)."""

    module: str
    name: str
    args: tuple[Any, ...]
    state: dict[str, Any]

    @classmethod
    def of(cls, error: BaseException) -> RaisedError:
        state = dict(vars(error))  # whatever cannot travel stays behind; the message always goes
        return cls(type(error).__module__, type(error).__qualname__,
                   error.args if _travels(error.args) else (str(error),), state if _travels(state) else {})

    def rebuilt(self) -> BaseException:
        kind: Any = importlib.import_module(self.module)
        for part in self.name.split("."):
            kind = getattr(kind, part)
        error = kind.__new__(kind)
        error.args = self.args
        vars(error).update(self.state)
        return error


def _travels(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def portable_run(run: Any) -> Any:
    """A ProgramRun that pickles (its error as a RaisedError)."""
    return run if run.error is None else dataclasses.replace(run, error=RaisedError.of(run.error))


def ask_for_run(address: str, stack: str, settings: dict[str, Any]) -> Any:
    """The program's run for these settings, from the test process's service at `address`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(address)
        connection.sendall(pickle.dumps((stack, settings)))
        connection.shutdown(socket.SHUT_WR)
        kind, answer = pickle.loads(b"".join(iter(lambda: connection.recv(1 << 16), b"")))
    if kind == "failed":
        raise RuntimeError(f"the test process could not run the program:\n{answer}")
    if isinstance(answer.error, RaisedError):
        answer.error = answer.error.rebuilt()
    return answer


def main(argv: list[str]) -> int:
    from operations import canary_run, live_capacity, stacks, step_checks
    from operations import lease as leases
    from rollout import cli
    from tests import fake_stack

    stacks.open_stack = open_file_stack
    step_checks.live_reader = outputs_live_reader
    live_capacity.new_color_shortfalls = lambda *args, **kwargs: live_capacity.NewColorCheck()  # no quota there
    probes = os.environ.get("STAND_IN_PROBES", "at-weight")
    canary_run.Prober.run = answers_at_weight if probes == "at-weight" else _hold  # type: ignore[method-assign]
    shift = float(os.environ.get("STAND_IN_CLOCK_SHIFT", "0"))
    leases.wall_clock = lambda: time.time() + shift
    address = os.environ.get(PROGRAM_RUNS_ENV)
    if address:
        fake_stack.shared_run = lambda stack, settings: ask_for_run(address, stack, settings)
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
