"""Header and cookie routes with real app processes behind the test proxy: the proxy routes by the nginx
annotations the program renders (tests/weighted_proxy.py: header, then cookie, then weight, as ingress-nginx
does). Matched requests always reach v2; the others follow the weight; with `sticky`, a client keeps its track."""

from __future__ import annotations

import http.client
import urllib.parse
from collections import Counter
from typing import Any

import pytest

from tests.apps import running
from tests.conftest import objects_of, settings_with, shared_run
from tests.weighted_proxy import WeightedProxy

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
MATCH = {"header": {"name": "X-Canary", "value": "always"}, "cookie": "canary"}


@pytest.fixture(scope="module")
def apps():
    with running(v1={}, v2={}) as started:
        yield started


def rendered(weight: int, match: dict[str, Any] | None = MATCH, sticky: bool = False) -> tuple[dict, dict]:
    """The (stable, canary) Ingress annotations the program renders for an nginx canary."""
    canary: dict[str, Any] = {"tag": "v2", "weight": weight, "sticky": sticky}
    if match is not None:
        canary["match"] = match
    run = shared_run("test", settings_with({"app": {"strategy": "Canary", "traffic": "nginx", "replicas": 4,
                                                    "stable": {"tag": "v1"}, "canary": canary}}))
    if run.error is not None:
        raise run.error
    ingresses = objects_of(run, INGRESS)
    return (ingresses["app"]["metadata"].get("annotations") or {},
            ingresses["app-canary"]["metadata"]["annotations"])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[str, str | None]:
    """(the answering version, the Set-Cookie header) of one GET on a new connection."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", "/", headers=headers or {})
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        return response.getheader("X-App-Version") or "", response.getheader("Set-Cookie")
    finally:
        connection.close()


def versions(url: str, count: int, headers: dict[str, str] | None = None) -> Counter:
    return Counter(get(url, headers)[0] for _ in range(count))


@pytest.mark.parametrize("weight", [0, 20])
def test_matched_requests_always_reach_v2_and_the_others_follow_the_weight(apps, weight):
    stable, canary = rendered(weight)
    with WeightedProxy() as proxy:
        proxy.route_nginx(apps["v1"].url, apps["v2"].url, canary, stable)
        assert versions(proxy.url, 50, {"X-Canary": "always"}) == Counter({"v2": 50})
        assert versions(proxy.url, 50, {"Cookie": "theme=dark; canary=always"}) == Counter({"v2": 50})
        # Not the value the route names: the weight decides (smooth round-robin: exact shares).
        assert versions(proxy.url, 100, {"X-Canary": "yes"}) == Counter({"v1": 100 - weight, "v2": weight} if weight
                                                                         else {"v1": 100})
        assert versions(proxy.url, 100) == Counter({"v1": 100 - weight, "v2": weight} if weight else {"v1": 100})


def test_without_a_match_the_header_changes_nothing(apps):
    stable, canary = rendered(0, match=None)
    with WeightedProxy() as proxy:
        proxy.route_nginx(apps["v1"].url, apps["v2"].url, canary, stable)
        assert versions(proxy.url, 50, {"X-Canary": "always"}) == Counter({"v1": 50})


def test_with_sticky_each_client_keeps_its_track_over_100_requests(apps):
    stable, canary = rendered(50, sticky=True)
    with WeightedProxy() as proxy:
        proxy.route_nginx(apps["v1"].url, apps["v2"].url, canary, stable)
        first: list[str] = []
        for _client in range(4):
            version, set_cookie = get(proxy.url)
            assert set_cookie is not None and set_cookie.startswith("app-track=")
            jar = {"Cookie": set_cookie.split(";", 1)[0]}
            first.append(version)
            assert versions(proxy.url, 100, jar) == Counter({version: 100})
        assert set(first) == {"v1", "v2"}  # at 50% new clients land on both tracks
        # Without the cookie every request is a new client: the weight alone.
        assert versions(proxy.url, 100) == Counter({"v1": 50, "v2": 50})
