"""The workshop's sample app: `GET /` answers with the version's greeting.

    APP_VERSION=v1 python app/server.py     # Hello World!
    APP_VERSION=v2 python app/server.py     # Howdy World!

Environment, checked at start (every problem is one `error:` line on stderr, then exit status 2):
  PORT                      listening port, an integer from 0 to 65535 (default 8080; 0 picks a free one)
  HOST                      listening address (default 0.0.0.0)
  APP_VERSION               1 to 128 letters, digits, '.', '_' or '-' (default v1; v1 answers "Hello World!",
                            v2 "Howdy World!", any other version "<version> World!"); sent as X-App-Version
  FAIL_RATE                 share of 500 answers on /, a number from 0 to 1 (default 0), for canary drills
  LATENCY_MS                added to every answer on /, a number from 0 to 60000 (default 0), for canary drills
  ACCESS_LOG                1 to log requests, 0 or unset not to
  SHUTDOWN_TIMEOUT_SECONDS  the drain deadline after SIGTERM, more than 0 and at most 3600 (default 20)
GET /healthz is for the probes.

GET /metrics is for Prometheus (the official client library, prometheus-client, app/requirements.txt):
  app_requests_total{version,code}              requests answered, by the version that answered and the HTTP
                                                status code ("200", "404", "500")
  app_request_duration_seconds{version}         a histogram of the time from the request read to the answer
                                                sent, buckets 5ms to 10s including 0.1, 0.25, 0.5 and 1 s
Requests for /metrics and /healthz are not counted in either (Prometheus's scrapes and the kubelet's probes
are not traffic), so every series is the users' traffic. The series of the app's own version exist from the
start, at 0 (codes 200 and 500), so a version that has answered nothing yet shows as 0, not as absent.

Connections are kept alive (HTTP/1.1), an answer leaves in one write with TCP_NODELAY, and the listen backlog
takes bursts of new connections. On SIGTERM (or SIGINT) the server stops accepting connections, closes idle
keep-alive connections at once and finishes the requests in flight, answering them with `Connection: close`.
Whatever is still open SHUTDOWN_TIMEOUT_SECONDS after the signal (a request still running, a client still
sending its request slowly, a client not reading its answer) is closed then, and the process exits: status 0
when everything in flight finished, 1 when the deadline cut a request short. The Kubernetes pod's grace period
is preStopSeconds + 25 s, so the default of 20 s ends before the kubelet's SIGKILL.
Standard library and prometheus-client only.
"""

from __future__ import annotations

import io
import math
import os
import random
import re
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETINGS = {"v1": "Hello World!", "v2": "Howdy World!"}
VERSION = re.compile(r"[A-Za-z0-9._-]{1,128}")
PORT = re.compile(r"[0-9]{1,5}")
DEFAULT_SHUTDOWN_TIMEOUT = 20.0
# How long handlers cut at the deadline get to let go of their connections before the process exits anyway.
CUT_GRACE_SECONDS = 0.5


# Buckets of app_request_duration_seconds: each typical p99 limit is a bucket bound, so "slower than the
# limit" is exact from the histogram.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
UNCOUNTED_PATHS = ("/metrics", "/healthz")


def greeting(version: str) -> str:
    return GREETINGS.get(version, f"{version} World!")


class SettingsError(ValueError):
    """Every problem with the environment, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def _shown(value: str) -> str:
    """A value for an error message: quoted and escaped (so always one line), long values shortened."""
    return repr(value if len(value) <= 64 else value[:64] + "...")


class Settings:
    def __init__(self, environ: Mapping[str, str]):
        problems: list[str] = []

        def number(name: str, default: float, low: float, high: float, *, above_low: bool = False) -> float:
            raw = environ.get(name)
            if raw is None:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = math.nan
            if math.isfinite(value) and (value > low if above_low else value >= low) and value <= high:
                return value
            bounds = f"more than {low:g} and at most {high:g}" if above_low else f"from {low:g} to {high:g}"
            problems.append(f"{name} must be a number {bounds} (got {_shown(raw)})")
            return default

        port = environ.get("PORT", "8080")
        self.port = 8080
        if PORT.fullmatch(port) and int(port) <= 65535:
            self.port = int(port)
        else:
            problems.append(f"PORT must be an integer from 0 to 65535 (got {_shown(port)})")
        self.host = environ.get("HOST", "0.0.0.0")
        self.version = environ.get("APP_VERSION", "v1")
        if not VERSION.fullmatch(self.version):
            problems.append("APP_VERSION must be 1 to 128 letters, digits, '.', '_' or '-' "
                            f"(got {_shown(self.version)})")
        self.fail_rate = number("FAIL_RATE", 0.0, 0, 1)
        self.latency = number("LATENCY_MS", 0.0, 0, 60_000) / 1000
        access_log = environ.get("ACCESS_LOG", "")
        if access_log not in ("", "0", "1"):
            problems.append(f"ACCESS_LOG must be 1 (log requests) or 0 (got {_shown(access_log)})")
        self.access_log = access_log == "1"
        self.shutdown_timeout = number("SHUTDOWN_TIMEOUT_SECONDS", DEFAULT_SHUTDOWN_TIMEOUT, 0, 3600,
                                       above_low=True)
        if problems:
            raise SettingsError(problems)


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self, version: str):
        # Imported here, once the settings passed: a refused start does not pay for loading it.
        from prometheus_client import (
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            Counter,
            Histogram,
            disable_created_metrics,
            generate_latest,
        )

        self.version = version
        self.content_type = CONTENT_TYPE_LATEST
        self._generate_latest = generate_latest
        disable_created_metrics()  # no *_created series: a process start time per series says nothing here
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("app_requests", "Requests answered, by the version that answered and the HTTP status "
                                "code (not /metrics or /healthz).", ["version", "code"], registry=self.registry)
        self.duration = Histogram("app_request_duration_seconds", "Time from the request read to the answer sent "
                                  "(not /metrics or /healthz).", ["version"], buckets=DURATION_BUCKETS,
                                  registry=self.registry)
        for code in ("200", "500"):  # present from the first scrape, at 0
            self.requests.labels(version, code)
        self.duration.labels(version)

    def record(self, status: int, seconds: float) -> None:
        self.requests.labels(self.version, str(status)).inc()
        self.duration.labels(self.version).observe(seconds)

    def exposition(self) -> bytes:
        return self._generate_latest(self.registry)


class Connection:
    """One accepted connection, as the shutdown sees it. Fields change under AppServer.lock."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.state = "new"  # "new" (no handler yet), "waiting" (for a request's first line), "busy"
        self.requests = 0  # requests whose head has been read
        self.received = 0  # bytes read while waiting: more than 0 means a request has begun to arrive
        self.cut = False  # closed by the drain deadline

    def idle(self) -> bool:
        """A kept-alive connection with no request under way (new connections get to send their first one)."""
        return self.state == "waiting" and self.requests > 0 and self.received == 0 and not _readable(self.sock)

    def unfinished(self) -> bool:
        return self.state == "busy" or (self.state == "waiting" and self.received > 0)


def _readable(sock: socket.socket) -> bool:
    """Whether bytes (or the client's close) wait in the kernel that the handler has not read yet."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _shut(sock: socket.socket) -> None:
    """Wake whatever thread reads or writes this socket: reads see the end, writes fail."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Reader(io.RawIOBase):
    """The socket as the handler's raw input, counting what arrives while the handler waits for a request."""

    def __init__(self, server: AppServer, connection: Connection):
        super().__init__()
        self._server = server
        self._connection = connection

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count = self._connection.sock.recv_into(buffer)
        if count:
            with self._server.lock:
                self._connection.received += count
        return count


class Handler(BaseHTTPRequestHandler):
    server: AppServer
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections end after this; also the limit on each read and write.
    timeout = 5

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(self.timeout)
        # Answers leave in one write (see _answer); no Nagle delay waiting for the client's ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.tracked = self.server.connections[self.request]
        self.rfile = io.BufferedReader(_Reader(self.server, self.tracked))
        self.wfile = self.connection.makefile("wb")  # buffered: headers and body are sent together on flush

    def handle_one_request(self) -> None:
        if not self.server.await_request(self.tracked):
            self.close_connection = True  # stopping: a kept-alive connection gets no further requests
            return
        super().handle_one_request()

    def parse_request(self) -> bool:
        self.server.request_started(self.tracked)
        parsed = super().parse_request()
        if self.tracked.cut:  # the drain deadline closed the connection while the request arrived
            self.close_connection = True
            return False
        return parsed

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        started = time.perf_counter()
        if self.server.access_log:
            print(f"start GET {self.path}", flush=True)
        path = self.path.split("?", 1)[0]
        if path == "/metrics" and self.server.metrics is not None:
            self._answer(200, self.server.metrics.exposition(), self.server.metrics.content_type)
            return
        status = self._respond(path)
        if self.server.metrics is not None and path not in UNCOUNTED_PATHS:
            self.server.metrics.record(status, time.perf_counter() - started)

    def _respond(self, path: str) -> int:
        """Answer GET `path`; the status sent."""
        settings = self.server.settings
        if self.path == "/healthz":
            status, body = 200, "ok\n"
        elif path != "/":
            status, body = 404, "not found\n"
        else:
            if settings.latency:
                time.sleep(settings.latency)
            if settings.fail_rate and self.server.random.random() < settings.fail_rate:
                status, body = 500, "injected failure\n"
            else:
                status, body = 200, greeting(settings.version) + "\n"
        self._answer(status, body.encode())
        return status

    def _answer(self, status: int, data: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", self.server.settings.version)
        if self.server.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()  # one write: status line, headers and body

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.access_log:
            super().log_message(format, *args)


class AppServer(ThreadingHTTPServer):
    # The drain below waits for connections itself, up to its deadline; a thread stuck past it must not keep
    # the process alive.
    daemon_threads = True
    block_on_close = False
    # The listen backlog: bursts of new connections wait here instead of in SYN retries (1 s, then 3 s).
    request_queue_size = 1024

    def __init__(self, settings: Settings, metrics: Metrics | None = None):
        self.settings = settings
        self.metrics = metrics
        self.random = random.Random()
        self.stopping = threading.Event()
        self.stop_requested_at = 0.0
        self.access_log = settings.access_log
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.connections: dict[socket.socket, Connection] = {}
        super().__init__((settings.host, settings.port), Handler)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        with self.lock:
            self.connections[request] = Connection(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:
        with self.lock:
            self.connections.pop(request, None)
            self.changed.notify_all()
        super().shutdown_request(request)

    def handle_error(self, request: socket.socket, client_address: tuple[str, int]) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away, or the drain deadline closed the connection
        super().handle_error(request, client_address)

    def await_request(self, connection: Connection) -> bool:
        """A handler is about to read a request: False when stopping and the connection has had its turn."""
        with self.lock:
            if self.stopping.is_set() and connection.requests > 0:
                return False
            connection.state, connection.received = "waiting", 0
            return True

    def request_started(self, connection: Connection) -> None:
        with self.lock:
            connection.state = "busy"
            connection.requests += 1

    def request_stop(self) -> None:
        """Called from the signal handler: only flags, never blocks."""
        if not self.stopping.is_set():
            self.stop_requested_at = time.monotonic()
            self.stopping.set()
            # shutdown() waits for serve_forever() to return, so it cannot run on the signal's thread.
            threading.Thread(target=self.shutdown, daemon=True).start()

    def drain(self) -> int:
        """After serve_forever(): stop accepting, close idle connections, wait for the rest up to the deadline,
        then close what is left. Returns how many connections were closed with a request unfinished."""
        self.server_close()
        deadline = self.stop_requested_at + self.settings.shutdown_timeout
        with self.lock:
            for connection in self.connections.values():
                if connection.idle():
                    _shut(connection.sock)
            while self.connections and self.changed.wait(max(0.0, deadline - time.monotonic())):
                pass
            cut = 0
            for connection in self.connections.values():
                cut += connection.unfinished()
                connection.cut = True
                _shut(connection.sock)
            end = time.monotonic() + CUT_GRACE_SECONDS
            while self.connections and self.changed.wait(max(0.0, end - time.monotonic())):
                pass
        return cut


def serve(settings: Settings) -> int:
    try:
        server = AppServer(settings, Metrics(settings.version))
    except OSError as error:
        print(f"error: cannot listen on {settings.host}:{settings.port}: {error.strerror or error}", file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: object) -> None:
        server.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"app {settings.version} listening on :{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.1)
    print(f"app stopping: finishing requests in flight, at most {settings.shutdown_timeout:g}s", flush=True)
    cut = server.drain()
    if cut:
        print(f"app: closed {cut} connection(s) with a request unfinished at the "
              f"{settings.shutdown_timeout:g}s shutdown deadline", file=sys.stderr, flush=True)
    print("app stopped", flush=True)
    return 1 if cut else 0


def main() -> int:
    try:
        settings = Settings(os.environ)
    except SettingsError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        import prometheus_client  # noqa: F401 - only after the settings check (Metrics uses it)
    except ImportError:
        print("error: the prometheus-client package is missing: pip install -r app/requirements.txt", file=sys.stderr)
        return 2
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
