"""SIGINT and SIGTERM around stack updates: the CLI is left to finish or cancel, then the abort runs.

Why: after a KeyboardInterrupt the Automation API closes the Pulumi CLI's pipes within 0.25 s
(`Popen.__exit__`); a CLI still cancelling is then killed by SIGPIPE on its next line and never
releases the stack's lock, so the abort that follows waits out its whole `--lock-wait`. And a CI
runner that cancels a job sends SIGINT, then SIGTERM, then kills the step some seconds later.

So, inside `guard()` (installed by `rollout canary`, `abort` and `watchdog` when they run in the
main thread):
- while an update runs (`updating()`), a signal only sets a flag: `up()` returns or raises
  when the CLI is done (a terminal's Ctrl-C reaches the CLI too, which cancels; a SIGTERM sent
  to this process alone lets the CLI finish), and `checkpoint()` then raises KeyboardInterrupt,
  so the caller's abort path runs with the lock released;
- outside an update, a signal raises KeyboardInterrupt at once (the abort path runs);
- while the abort path runs (`shielded()`), signals only say what is still running;
- a second signal says what is still running and how to finish it by hand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

_state = threading.local()


class _Guard:
    def __init__(self, finish_hint: str, say: Callable[[str], None]):
        self.finish_hint, self.say = finish_hint, say
        self.pending: str | None = None  # the signal that arrived during an update, not yet acted on
        self.signals = 0
        self.update: tuple[str, float] | None = None  # (what, since) while an update runs
        self.shield: str | None = None  # what the abort path is doing

    def running(self) -> str:
        parts = []
        if self.update:
            what, since = self.update
            parts.append(f"`pulumi up` ({what}), for {time.monotonic() - since:.0f}s; it ends by itself and "
                         "releases the stack's lock")
        if self.shield:
            parts.append(self.shield)
        return "; then ".join(parts) or "the abort"

    def handle(self, number: int, frame: object) -> None:
        name = signal.Signals(number).name
        self.signals += 1
        if self.update is None and self.shield is None:
            raise KeyboardInterrupt
        if self.signals == 1 or self.pending is None:
            self.pending = self.pending or name
            self.say(f"{name}: letting the running update finish so the stack's lock is released; "
                     + ("then the canary is aborted" if self.shield is None else "the abort goes on")
                     + " (interrupt again to see what is running)")
            return
        self.say(f"{name} again: still running: {self.running()}. To stop now: kill -9 {os.getpid()} "
                 f"(a CLI killed mid-update may leave the lock: `pulumi cancel`), then finish with: "
                 f"{self.finish_hint}")


def _current() -> _Guard | None:
    return getattr(_state, "guard", None)


@contextlib.contextmanager
def guard(finish_hint: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as the module says, for the duration of the block (main thread
    only: elsewhere signals keep their handlers)."""
    if threading.current_thread() is not threading.main_thread() or _current() is not None:
        yield
        return
    state = _Guard(finish_hint, say or (lambda text: print(text, file=sys.stderr, flush=True)))
    previous = {number: signal.signal(number, state.handle) for number in (signal.SIGINT, signal.SIGTERM)}
    _state.guard = state
    try:
        yield
    finally:
        _state.guard = None
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextlib.contextmanager
def updating(what: str) -> Iterator[None]:
    """Around `stack.up()`: signals only set a flag until it returns."""
    state = _current()
    if state is None:
        yield
        return
    state.update = (what, time.monotonic())
    try:
        yield
    finally:
        state.update = None


def checkpoint() -> None:
    """Raise KeyboardInterrupt for a signal that arrived during an update (not while shielded)."""
    state = _current()
    if state is not None and state.pending and state.shield is None:
        state.pending = None
        raise KeyboardInterrupt


def pending() -> bool:
    state = _current()
    return state is not None and state.pending is not None


@contextlib.contextmanager
def shielded(what: str) -> Iterator[None]:
    """The abort path: signals say what runs instead of interrupting it."""
    state = _current()
    if state is None:
        yield
        return
    before = state.shield
    state.shield, state.pending, state.signals = what, None, 0
    try:
        yield
    finally:
        state.shield = before
