"""A small weighted HTTP proxy on loopback that stands in for the load balancer in canary tests.

Each request goes to the stable or the canary backend by smooth weighted round-robin, so the
shares are exact and the tests need no tolerance for chance.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WeightedProxy(ThreadingHTTPServer):
    daemon_threads = True
    # A burst of probe connections must not overflow the listen backlog (a 1 s SYN retry each).
    request_queue_size = 1024

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.backends: dict[str, str] = {}
        self.weights: dict[str, int] = {}
        self.current: dict[str, int] = {}
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def route(self, stable: str, canary: str | None, weight: int) -> None:
        with self.lock:
            self.backends = {"stable": stable, "canary": canary or stable}
            self.weights = {"stable": 100 - weight, "canary": weight if canary else 0}
            self.current = {"stable": 0, "canary": 0}

    def pick(self) -> str:
        with self.lock:
            total = sum(self.weights.values())
            for name, weight in self.weights.items():
                self.current[name] += weight
            chosen = max(self.current, key=self.current.get)
            self.current[chosen] -= total
            return self.backends[chosen]

    def __enter__(self) -> WeightedProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: WeightedProxy
    # Headers and body leave in separate writes: without this, Nagle and delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802
        backend = urllib.parse.urlsplit(self.server.pick())
        connection = http.client.HTTPConnection(backend.hostname, backend.port, timeout=10)
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            body = response.read()
            self.send_response(response.status)
            for header in ("Content-Type", "X-App-Version"):
                if response.getheader(header):
                    self.send_header(header, response.getheader(header))
        except OSError:
            body = b"bad gateway\n"
            self.send_response(502)
        finally:
            connection.close()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass
