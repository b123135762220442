"""The workshop's sample app: `GET /` answers with the version's greeting.

    APP_VERSION=v1 python app/server.py     # Hello World!
    APP_VERSION=v2 python app/server.py     # Howdy World!

Environment: PORT (default 8080), HOST (default 0.0.0.0), APP_VERSION (default v1; other versions answer
"<version> World!"), for canary drills FAIL_RATE (share of 500 answers on /, 0..1) and
LATENCY_MS (added to every answer on /), and ACCESS_LOG=1 to log requests. GET /healthz is for the probes. On SIGTERM the
server stops accepting connections, finishes the requests in flight and exits 0.
Standard library only.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

GREETINGS = {"v1": "Hello World!", "v2": "Howdy World!"}


def greeting(version: str) -> str:
    return GREETINGS.get(version, f"{version} World!")


class Settings:
    def __init__(self, environ: dict[str, str]):
        self.port = int(environ.get("PORT", "8080"))
        self.host = environ.get("HOST", "0.0.0.0")
        self.version = environ.get("APP_VERSION", "v1")
        self.fail_rate = float(environ.get("FAIL_RATE", "0"))
        self.latency = float(environ.get("LATENCY_MS", "0")) / 1000
        self.access_log = environ.get("ACCESS_LOG") == "1"
        if not 0 <= self.fail_rate <= 1:
            raise ValueError(f"FAIL_RATE must be between 0 and 1, got {self.fail_rate}")
        if self.latency < 0:
            raise ValueError("LATENCY_MS must not be negative")


class Handler(BaseHTTPRequestHandler):
    server: AppServer
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections end after this, so shutdown never waits on them for long.
    timeout = 5

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        settings = self.server.settings
        if self.server.access_log:
            print(f"start GET {self.path}", flush=True)
        if self.path == "/healthz":
            self._answer(200, "ok\n")
            return
        if self.path.split("?", 1)[0] != "/":
            self._answer(404, "not found\n")
            return
        if settings.latency:
            time.sleep(settings.latency)
        if settings.fail_rate and self.server.random.random() < settings.fail_rate:
            self._answer(500, "injected failure\n")
            return
        self._answer(200, greeting(settings.version) + "\n")

    def _answer(self, status: int, body: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-App-Version", self.server.settings.version)
        if self.server.stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.access_log:
            super().log_message(format, *args)


class AppServer(ThreadingHTTPServer):
    # Request threads are joined on close, so in-flight requests finish before exit.
    daemon_threads = False
    block_on_close = True

    def __init__(self, settings: Settings):
        self.settings = settings
        self.random = random.Random()
        self.stopping = threading.Event()
        self.access_log = settings.access_log
        super().__init__((settings.host, settings.port), Handler)


def serve(settings: Settings) -> None:
    server = AppServer(settings)

    def on_sigterm(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        if not server.stopping.is_set():
            server.stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)
    print(f"app {settings.version} listening on :{server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()  # stop accepting, then wait for requests in flight
    print("app stopped", flush=True)


if __name__ == "__main__":
    try:
        config = Settings(dict(os.environ))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    serve(config)
