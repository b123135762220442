"""A small weighted HTTP proxy on loopback that stands in for the load balancer in canary tests.

Each request goes to the stable or the canary backend by smooth weighted round-robin, so the
shares are exact and the tests need no tolerance for chance.

`route_nginx` takes the annotations the program renders for ingress-nginx (the canary Ingress's
canary-by-header / -value / -pattern / -cookie and canary-weight, the stable Ingress's cookie affinity)
and routes as ingress-nginx does: the header first (`always`/`never` without a value), then the cookie
(`always`/`never`), then the weight; with affinity, a client's track cookie keeps it on its track.

Clients get a connection per request (as the probes open one each); towards the apps the proxy keeps its
connections alive and reuses them, as a load balancer does (a new connection per request was a third of an
app's CPU). A reused connection the app has closed meanwhile is retried once on a new one.
"""

from __future__ import annotations

import http.client
import http.cookies
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


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
        self.canary_annotations: dict[str, str] = {}
        self.affinity_cookie: str | None = None
        self.idle_connections: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def route(self, stable: str, canary: str | None, weight: int) -> None:
        with self.lock:
            self.backends = {"stable": stable, "canary": canary or stable}
            self.weights = {"stable": 100 - weight, "canary": weight if canary else 0}
            self.current = {"stable": 0, "canary": 0}
            self.canary_annotations, self.affinity_cookie = {}, None

    def route_nginx(self, stable: str, canary: str, canary_annotations: dict[str, str],
                    stable_annotations: dict[str, str] | None = None) -> None:
        """Route as ingress-nginx would with these rendered annotations."""
        prefix = "nginx.ingress.kubernetes.io/"
        self.route(stable, canary, int(canary_annotations[prefix + "canary-weight"]))
        with self.lock:
            self.canary_annotations = {k.removeprefix(prefix): v for k, v in canary_annotations.items()}
            stable_annotations = {k.removeprefix(prefix): v for k, v in (stable_annotations or {}).items()}
            if stable_annotations.get("affinity") == "cookie":
                self.affinity_cookie = stable_annotations.get("session-cookie-name", "INGRESSCOOKIE")

    def track_for(self, headers: Any) -> tuple[str, str | None]:
        """(track, the affinity cookie to set or None) for a request's headers."""
        rules = self.canary_annotations
        header = rules.get("canary-by-header")
        if header is not None and headers.get(header) is not None:
            given = headers.get(header)
            if "canary-by-header-value" in rules:
                if given == rules["canary-by-header-value"]:
                    return "canary", None
            elif "canary-by-header-pattern" in rules:
                if re.search(rules["canary-by-header-pattern"], given):  # ngx.re.match: unanchored
                    return "canary", None
            elif given in ("always", "never"):
                return ("canary" if given == "always" else "stable"), None
        cookies = http.cookies.SimpleCookie()
        try:
            cookies.load(headers.get("Cookie") or "")
        except http.cookies.CookieError:
            pass
        cookie = rules.get("canary-by-cookie")
        if cookie is not None and cookie in cookies and cookies[cookie].value in ("always", "never"):
            return ("canary" if cookies[cookie].value == "always" else "stable"), None
        if self.affinity_cookie and self.affinity_cookie in cookies and cookies[self.affinity_cookie].value in (
                "stable", "canary"):
            return cookies[self.affinity_cookie].value, None
        track = self.pick_track()
        return track, (f"{self.affinity_cookie}={track}; Path=/" if self.affinity_cookie else None)

    def pick(self) -> str:
        return self.backends[self.pick_track()]

    def pick_track(self) -> str:
        with self.lock:
            total = sum(self.weights.values())
            for name, weight in self.weights.items():
                self.current[name] += weight
            chosen = max(self.current, key=self.current.get)
            self.current[chosen] -= total
            return chosen

    def __enter__(self) -> WeightedProxy:
        self.thread.start()
        return self

    def take_connection(self, host: str, port: int) -> tuple[http.client.HTTPConnection, bool]:
        """(a connection to the backend, whether it was reused from an earlier request)."""
        with self.lock:
            idle = self.idle_connections.get((host, port))
            if idle:
                return idle.pop(), True
        return http.client.HTTPConnection(host, port, timeout=10), False

    def give_back(self, host: str, port: int, connection: http.client.HTTPConnection) -> None:
        with self.lock:
            self.idle_connections.setdefault((host, port), []).append(connection)

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        with self.lock:
            for connections in self.idle_connections.values():
                for connection in connections:
                    connection.close()
            self.idle_connections.clear()


class _Handler(BaseHTTPRequestHandler):
    server: WeightedProxy
    # Headers and body leave in separate writes: without this, Nagle and delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:  # noqa: N802
        track, set_cookie = self.server.track_for(self.headers)
        backend = urllib.parse.urlsplit(self.server.backends[track])
        host, port = backend.hostname or "127.0.0.1", backend.port or 80
        try:
            response, body = self._forward(host, port)
            self.send_response(response.status)
            for header in ("Content-Type", "X-App-Version"):
                if response.getheader(header):
                    self.send_header(header, response.getheader(header))
        except OSError:
            body = b"bad gateway\n"
            self.send_response(502)
        if set_cookie:
            self.send_header("Set-Cookie", set_cookie)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _forward(self, host: str, port: int) -> tuple[http.client.HTTPResponse, bytes]:
        """The backend's answer to this GET, on a kept-alive connection; one that the app closed while it sat idle
        (its idle timeout, its graceful stop) is retried on a new connection. A new connection's failure is raised."""
        connection, reused = self.server.take_connection(host, port)
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            body = response.read()
        except (ConnectionError, http.client.HTTPException):
            connection.close()
            if reused:
                return self._forward(host, port)
            raise
        except OSError:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self.server.give_back(host, port, connection)
        return response, body

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass
