"""Bounded steps: a probe has one deadline for connect plus answer, and the loop ends a step at its
deadline whatever its workers do, against a loopback server that trickles its answers (a byte every
50 ms: a whole answer would take minutes)."""

from __future__ import annotations

import socket
import threading
import urllib.parse

import pytest

from model.judge import Judge
from operations.canary_run import Clock, Prober, probe_once

BODY = 3600  # bytes announced; at 20 bytes a second, three minutes


class TricklingServer:
    """Accepts connections and answers one byte at a time, the headers too when `headers` is set."""

    def __init__(self, headers: bool = False):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.headers = headers
        self.lock = threading.Lock()
        self.open = 0
        self.finished = 0
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}/"

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with self.lock:
            self.open += 1
        head = f"HTTP/1.1 200 OK\r\nX-App-Version: v2\r\nContent-Length: {BODY}\r\n\r\n".encode()
        try:
            connection.recv(65536)
            if not self.headers:
                connection.sendall(head)
            for byte in (head if self.headers else b"") + b"x" * BODY:
                connection.sendall(bytes([byte]))
                if self.stop.wait(0.05):
                    break
            else:
                with self.lock:
                    self.finished += 1
        except OSError:
            pass  # the prober gave up on it
        finally:
            connection.close()
            with self.lock:
                self.open -= 1

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


@pytest.fixture(params=[False, True], ids=["trickled-body", "trickled-headers"])
def trickling(request):
    server = TricklingServer(headers=request.param)
    yield server
    server.close()


def test_a_probe_of_a_trickling_answer_ends_at_its_deadline(trickling):
    version, ok, seconds = probe_once(urllib.parse.urlsplit(trickling.url), timeout=0.3)
    assert ok is False and version is None
    assert trickling.finished == 0  # it gave up long before the answer could end


def test_the_loop_ends_a_step_at_its_deadline_whatever_its_workers_do(trickling):
    # Probes whose own deadline (60 s) is far past the step's (0.3 s): the step must not wait for them.
    judge = Judge("v2", 25, 0.01, 0.5, settle_seconds=0.0)
    prober = Prober(trickling.url, judge, rate=20.0, concurrency=4, timeout=60.0, clock=Clock())
    done = threading.Event()
    result = {}

    def step():
        result["verdict"] = prober.run(0.3, lambda elapsed: None)
        with trickling.lock:
            result["open"] = trickling.open
        done.set()

    threading.Thread(target=step, daemon=True).start()
    assert done.wait(120), "the step did not end"
    assert result["verdict"] is None and judge.total.requests == 0
    assert result["open"] > 0  # it ended while its probes were still receiving a trickle
    assert trickling.finished == 0
