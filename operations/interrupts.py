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

Python runs signal handlers in the main thread only, and a thread other than the main one cannot
install them. `rollout wave` runs its stages' stacks on worker threads, so there the main thread
owns the signals (its `guard()`) and forwards them: each worker's `guard()` (a canary stage's, a
promote stage's) registers with the owner, and a signal is handled for every registered worker as
above, in the worker: a flag while its update runs or its abort is shielded, else KeyboardInterrupt
raised in that thread (`PyThreadState_SetAsyncExc`, delivered at its next Python instruction; the
canary's waits wake at least every half second). The main thread is not interrupted while workers
run: it waits for each to end safely (a canary aborted, an update finished), then `interrupted()`
tells it to stop. With no worker running, a signal interrupts the main thread at once.

The main thread's handler only notes the signal and queues it (`queue.SimpleQueue.put`, which may
be called from a handler); a thread of the owner's (`_Forwarder`) forwards it and says what happens,
each signal to each registered worker once (a worker registering after the first was forwarded takes
it as it registers). A handler runs between two steps of whatever the main thread was doing, also
inside an earlier handler: one that took a worker's lock or the wave's output lock itself would wait
forever for a lock its own thread holds (seen: a second Ctrl-C that came while the first one's line
was being written hung the process, its update held, until killed). While the main thread runs a
pool of workers (`workers_running()`) a signal stops the stage even when no worker is registered yet,
and it waits for them in short slices (`wait_for_workers()`): the kernel gives a process's signal to
any of its threads, and a main thread blocked on a lock would run the handler only once they ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from typing import Any

_state = threading.local()
_owner: _Guard | None = None  # the main thread's guard, while one is installed


class _Guard:
    def __init__(self, finish_hint: str, say: Callable[[str], None], thread_id: int | None = None):
        self.finish_hint, self.say = finish_hint, say
        self.pending: str | None = None  # the signal that arrived during an update, not yet acted on
        self.signals = 0
        self.update: tuple[str, float] | None = None  # (what, since) while an update runs
        self.shield: str | None = None  # what the abort path is doing
        # A worker's guard: its thread, and a KeyboardInterrupt sent to it and maybe not delivered yet.
        self.thread_id = thread_id
        self.sent = False
        self.lock = threading.Lock()
        # The owner's: the workers it forwards to, the first signal its handler took and the first its forwarder
        # forwarded (under _registry), the thread forwarding them, and whether it waits for a pool of workers.
        self.workers: list[_Guard] = []
        self.interrupted: str | None = None
        self.forwarded: str | None = None
        self.forwarder: _Forwarder | None = None
        self.pool_running = False

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
        forwarder = self.forwarder
        if (self.workers or self.pool_running) and self.update is None and self.shield is None and forwarder:
            # The main thread waits for its workers: each ends safely, then it stops (interrupted()). No lock
            # and no output here: the forwarder does both (the module's docstring says why).
            if self.interrupted is None:
                self.interrupted = name
            forwarder.signals.put(name)
            return
        self._handle(name, raise_interrupt=self._raise_here)

    def forward_to_workers(self, name: str) -> None:
        """The owner's handling of a signal while workers run, on its forwarder's thread: each worker registered
        now gets it once (one that registers later gets the first signal then: guard()). A line that cannot be
        written (the terminal's pipe gone with the same Ctrl-C) must not keep the signal from the workers."""
        with _registry:
            if self.forwarded is None:
                self.forwarded = name
                with contextlib.suppress(Exception):
                    self.say(f"{name}: stopping after what runs now ends safely (a running canary is aborted, a "
                             f"running update finishes first); then continue with: {self.finish_hint}")
            for worker in list(self.workers):
                with contextlib.suppress(Exception):
                    worker.forward(name)

    @staticmethod
    def _raise_here() -> None:
        raise KeyboardInterrupt

    def forward(self, name: str) -> None:
        """A worker's handling of a signal the main thread received."""
        with self.lock:
            self._handle(name, raise_interrupt=self._send)

    def _send(self) -> None:
        """KeyboardInterrupt in the worker's thread, at its next Python instruction (under self.lock)."""
        if not self.sent:
            self.sent = True
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                       ctypes.py_object(KeyboardInterrupt))

    def withdraw(self) -> None:
        """Take back a KeyboardInterrupt sent and not delivered yet (under self.lock)."""
        if self.sent:
            self.sent = False
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id), None)

    def _handle(self, name: str, raise_interrupt: Callable[[], None]) -> None:
        self.signals += 1
        if self.update is None and self.shield is None:
            raise_interrupt()
            return
        if self.signals == 1 or self.pending is None:
            self.pending = self.pending or name
            self.say(f"{name}: letting the running update finish so the stack's lock is released; "
                     + ("then the canary is aborted" if self.shield is None else "the abort goes on")
                     + " (interrupt again to see what is running)")
            return
        self.say(f"{name} again: still running: {self.running()}. To stop now: kill -9 {os.getpid()} "
                 f"(a CLI killed mid-update may leave the lock: `pulumi cancel`), then finish with: "
                 f"{self.finish_hint}")


class _Forwarder:
    """The owner's thread that forwards the signals its handler queued, in order, to the workers then running."""

    def __init__(self, owner: _Guard):
        self.signals: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, args=(owner,), name="signal forwarder", daemon=True)
        self.thread.start()

    def _run(self, owner: _Guard) -> None:
        while (name := self.signals.get()) is not None:
            with contextlib.suppress(Exception):  # the next signal is forwarded whatever this one met
                owner.forward_to_workers(name)

    def stop(self) -> None:
        """Forward what is queued, then end (the owner's guard ends)."""
        self.signals.put(None)
        self.thread.join()


# Held while a worker registers and while the forwarder forwards: a signal reaches each worker exactly once, from the
# forwarder or, for one registering after the forwarder took it, from its registration. Never taken by a handler.
_registry = threading.Lock()


def _start_forwarder(owner: _Guard) -> None:
    with _registry:
        if owner.forwarder is None:
            owner.forwarder = _Forwarder(owner)


def _current() -> _Guard | None:
    return getattr(_state, "guard", None)


@contextlib.contextmanager
def guard(finish_hint: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Handle SIGINT and SIGTERM as the module says, for the duration of the block: in the main
    thread by its own handlers; in another thread through the main thread's guard, when one is
    installed (elsewhere signals keep their handlers)."""
    global _owner
    speak = say or (lambda text: print(text, file=sys.stderr, flush=True))
    nested = _current()
    if nested is not None:  # (a wave's canary): its hint and its log for the block
        before = nested.finish_hint, nested.say
        nested.finish_hint, nested.say = finish_hint, speak
        try:
            yield
        finally:
            nested.finish_hint, nested.say = before
        return
    if threading.current_thread() is not threading.main_thread():
        owner = _owner
        if owner is None:
            yield
            return
        worker = _Guard(finish_hint, speak, threading.get_ident())
        _state.guard = worker
        _start_forwarder(owner)  # before the first worker: the handler forwards only through it
        try:
            with _registry:
                owner.workers.append(worker)
                if owner.forwarded:  # started after the signal was forwarded: stops before it does anything
                    with worker.lock:
                        worker._handle(owner.forwarded, worker._send)
            yield
        finally:
            with contextlib.suppress(ValueError):  # (an interrupt that came before it was in the list)
                owner.workers.remove(worker)
            with worker.lock:
                worker.withdraw()
            _state.guard = None
        return
    state = _Guard(finish_hint, speak)
    previous = {number: signal.signal(number, state.handle) for number in (signal.SIGINT, signal.SIGTERM)}
    _state.guard, _owner = state, state
    try:
        yield
    finally:
        _state.guard, _owner = None, None
        for number, handler in previous.items():
            signal.signal(number, handler)
        if state.forwarder is not None:
            state.forwarder.stop()


@contextlib.contextmanager
def workers_running() -> Iterator[None]:
    """Around the main thread's pool of workers (a wave's stage, until the pool has shut down): a signal
    meanwhile stops the stage (`interrupted()`) and reaches the workers registered, also while none is (before
    the first stack's guard, between two stacks), instead of raising KeyboardInterrupt in the main thread,
    which would leave the pool to run every stack it holds to its end."""
    owner = _owner
    if owner is None or _current() is not owner:
        yield
        return
    _start_forwarder(owner)
    owner.pool_running = True
    try:
        yield
    finally:
        owner.pool_running = False


# How long the main thread waits on its workers at a time (wait_for_workers).
WORKERS_WAKE_S = 0.5


def wait_for_workers(futures: list[Future[Any]]) -> None:
    """Until every worker's future is done, waking every WORKERS_WAKE_S. The kernel gives a process's signal to any
    of its threads, and Python runs the handler in the main thread when that thread next runs Python code: a main
    thread blocked on a lock does not wake for a signal another thread took, which would wait as long as the stack
    does (seen: a second Ctrl-C left unanswered while the update it asked about was held)."""
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=WORKERS_WAKE_S)


def interrupted() -> bool:
    """Whether the main thread's guard forwarded a signal to its workers: stop, start nothing more."""
    owner = _owner
    return owner is not None and owner.interrupted is not None


@contextlib.contextmanager
def updating(what: str) -> Iterator[None]:
    """Around `stack.up()`: signals only set a flag until it returns."""
    state = _current()
    if state is None:
        yield
        return
    with state.lock:
        if state.sent and state.shield is None:  # a worker's interrupt, not delivered yet: before the update
            state.withdraw()
            raise KeyboardInterrupt
        state.update = (what, time.monotonic())
    try:
        yield
    finally:
        with state.lock:
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
    with state.lock:
        state.withdraw()  # the abort path runs now: an interrupt on its way would only cut it short
        before = state.shield
        state.shield, state.pending, state.signals = what, None, 0
    try:
        yield
    finally:
        state.shield = before
