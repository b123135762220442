"""A virtual clock for the canary loop: a step's interval passes as fast as the probes answer,
retries and lock waits pass at once, and nothing in the tests sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable


class VirtualClock:
    def __init__(self, on_sleep: Callable[[float], None] | None = None):
        self.time = 0.0
        self.lock = threading.Lock()
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> float:
        with self.lock:
            return self.time

    def wait_until(self, event: threading.Event, moment: float) -> bool:
        with self.lock:
            self.time = max(self.time, moment)
        return event.is_set()

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.time += seconds
        self.slept.append(seconds)
        if self.on_sleep:
            self.on_sleep(seconds)
