"""Judging the users' real traffic from Prometheus: a real server (Debian's `prometheus`) scrapes
real app processes every second while traffic goes through the weighted proxy.

Outside CI a missing binary skips the tests that need it (`make prometheus` installs it); in CI
(CI set) it fails them: .ci/run installs it."""

from __future__ import annotations

import collections
import http.client
import threading
import time
import urllib.parse

import pytest

from model.judge import Judge
from operations.prometheus import APP, Counts, Labels, PrometheusError, PrometheusSource, Rounds, Sample
from tests.apps import AppProcess
from tests.prometheus_server import (
    POLL,
    Background,
    PrometheusServer,
    free_port,
    in_ci,
    prometheus_binary,
    wait_for,
)
from tests.weighted_proxy import WeightedProxy

JOB = 'job="app"'


def _start() -> tuple[dict[str, AppProcess], PrometheusServer | None]:
    apps = {"v1": AppProcess("v1"), "v2": AppProcess("v2"), "v3": AppProcess("v3", FAIL_RATE="0.5"),
            "v4": AppProcess("v4", LATENCY_MS="150")}
    if prometheus_binary() is None:
        return apps, None
    server = PrometheusServer({"app": [f"127.0.0.1:{app.port}" for app in apps.values()]})
    try:
        server.start()
    except BaseException:
        for app in apps.values():
            app.stop()
        raise
    return apps, server


def _stop(started: tuple[dict[str, AppProcess], PrometheusServer | None]) -> None:
    apps, server = started
    if server is not None:
        server.stop()
    for app in apps.values():
        app.stop()


# Started while pytest collects (Prometheus needs ~6 s before its first scrape); the fixtures wait for it.
ENVIRONMENT = Background(_start, _stop)


@pytest.fixture(scope="module")
def apps():
    yield ENVIRONMENT.result()[0]
    ENVIRONMENT.stop()


@pytest.fixture(scope="module")
def prometheus(apps):
    server = ENVIRONMENT.result()[1]
    if server is None:
        reason = "the prometheus binary is not installed (make prometheus installs Debian's package)"
        if in_ci():
            pytest.fail(f"{reason}; .ci/run should have installed it")
        pytest.skip(reason)
    return server


@pytest.fixture
def proxy():
    with WeightedProxy() as server:
        yield server


def get(url: str) -> tuple[str | None, int]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.getheader("X-App-Version"), response.status
    except (OSError, http.client.HTTPException):
        return None, 0
    finally:
        connection.close()


def send(url: str, count: int, clients: int = 8, rate: float | None = None,
         stop: threading.Event | None = None) -> collections.Counter:
    """`count` GETs of / on new connections (a load balancer routes per connection) from a few threads,
    request i at start + i / rate when a rate is given; how many answers per (version, status)."""
    answers: collections.Counter = collections.Counter()
    lock = threading.Lock()
    stop = stop or threading.Event()
    slots = iter(range(count))
    start = time.monotonic()

    def client() -> None:
        while True:
            with lock:
                slot = next(slots, None)
            if slot is None or (rate and stop.wait(max(0.0, start + slot / rate - time.monotonic()))):
                return
            if stop.is_set():
                return
            key = get(url)
            with lock:
                answers[key] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(count / (rate or 100) + 30)
    assert not any(thread.is_alive() for thread in threads)
    return answers


def by_version(answers: collections.Counter, slow: bool = False) -> dict[str, Counts]:
    counts: dict[str, Counts] = {}
    for (version, status), n in answers.items():
        counts[version] = counts.get(version, Counts()) + Counts(n, n if status >= 500 else 0, n if slow else 0)
    return counts


def increments_until(sources: list[PrometheusSource], before: list[Sample], expected: list[dict[str, Counts]],
                     deadline_s: float = 10.0) -> None:
    """Poll until each source's increments since its `before` are as expected (Prometheus has scraped)."""
    def seen() -> bool:
        return all(all(source.sample().since(base).get(v) == c for v, c in want.items())
                   for source, base, want in zip(sources, before, expected, strict=True))

    try:
        wait_for(seen, deadline_s, "Prometheus to scrape the traffic sent")
    except TimeoutError:
        pytest.fail(f"expected {expected}, Prometheus has {[s.sample().since(b) for s, b in zip(sources, before, strict=True)]}")


# ---------------------------------------------------------------------------------------------
# The source against a real Prometheus
# ---------------------------------------------------------------------------------------------


def test_the_source_reads_the_traffic_sent_by_version(prometheus, apps, proxy):
    source = PrometheusSource(prometheus.url, "v2", max_p99=0.1, selector=JOB)  # 0.1 s is a bucket bound
    between = PrometheusSource(prometheus.url, "v2", max_p99=0.12, selector=JOB)  # the next bound is 0.25 s
    before = [source.sample(), between.sample()]
    assert before[0].totals()["v2"].requests >= 0 and set(before[0].scraped) == {
        ("app", f"127.0.0.1:{app.port}") for app in apps.values()}
    proxy.route(apps["v1"].url, apps["v2"].url, 25)
    sent: dict[str, collections.Counter] = {}
    threads = [threading.Thread(target=lambda name=name, url=url, n=n: sent.__setitem__(name, send(url, n)))
               for name, url, n in (("proxy", proxy.url, 200), ("v3", apps["v3"].url, 60),
                                    ("v4", apps["v4"].url, 16))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sent["proxy"] == {("v1", 200): 150, ("v2", 200): 50}  # the proxy's split is exact
    assert 0 < by_version(sent["v3"])["v3"].errors < 60  # FAIL_RATE 0.5: about half are 500s
    assert sent["v4"] == {("v4", 200): 16}  # LATENCY_MS 150: every answer takes at least 150 ms
    expected = {**by_version(sent["proxy"]), **by_version(sent["v3"]), **by_version(sent["v4"], slow=True)}
    # 150 ms lies between the 0.12 s limit and the 0.25 s bucket: not counted slow there (a fast answer is
    # never counted slow; a limit on a bucket bound is exact)
    increments_until([source, between], before, [expected, {**expected, "v4": Counts(16, 0, 0)}])
    assert source.slow_bucket == 0.1 and between.slow_bucket == 0.25


def judge_from_prometheus(prometheus, proxy, apps, canary: str, weight: int = 25, rate: float = 200.0,
                          judged_rounds: int = 2, deadline_s: float = 20.0) -> tuple[Judge, str | None]:
    """The judging loop on Prometheus. Paced traffic through the proxy all along; the first scrape round
    (the traffic starting) is the judge's settle phase; each round's increments per version go to
    `Judge.observe_counts`, then `verdict()`. Ends at a verdict or after `judged_rounds` rounds past it."""
    proxy.route(apps["v1"].url, apps[canary].url, weight)
    judge = Judge(canary, weight, 0.01, 0.5, settling=True)  # until end_settle() below
    stop = threading.Event()
    traffic = threading.Thread(target=send, args=(proxy.url, int(rate * deadline_s)),
                               kwargs={"rate": rate, "stop": stop})
    traffic.start()
    try:
        rounds = Rounds(PrometheusSource(prometheus.url, canary, max_p99=0.5, selector=JOB))
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            increments = rounds.poll()
            if increments is not None:
                for version, counts in increments.items():
                    judge.observe_counts(version, counts.requests, counts.errors, counts.slow)
                if rounds.rounds == 1:
                    judge.end_settle()
                verdict = judge.verdict()
                if verdict or rounds.rounds > judged_rounds:
                    return judge, verdict
            time.sleep(POLL)  # poll interval while waiting on a deadline for the next scrape round
        pytest.fail(f"{rounds.rounds} scrape rounds in {deadline_s}s")
    finally:
        stop.set()
        traffic.join(30)


def test_a_judge_fed_from_prometheus_keeps_a_good_canary(prometheus, apps, proxy):
    judge, verdict = judge_from_prometheus(prometheus, proxy, apps, "v2")
    assert verdict is None
    assert judge.total.requests > 100 and judge.total.errors == 0
    assert judge.share_high.n > 0 and abs(judge.canary_share - 25) < 10  # judged on the share, near the weight
    assert not judge.settling


def test_a_judge_fed_from_prometheus_aborts_a_failing_canary(prometheus, apps, proxy):
    judge, verdict = judge_from_prometheus(prometheus, proxy, apps, "v3")
    assert verdict is not None and verdict.startswith("canary error rate"), verdict
    assert judge.canary.errors >= 3 and judge.total.errors == judge.canary.errors  # v1 never failed


# ---------------------------------------------------------------------------------------------
# `rollout canary --metrics prometheus=URL`: the canary loop judged from Prometheus
# ---------------------------------------------------------------------------------------------


def canary_from_prometheus(prometheus, apps, proxy, tag, steps, interval):
    from operations.canary_run import CanaryOptions, run_canary
    from tests.test_canary import LoadBalancedStack

    stack = LoadBalancedStack(proxy, apps)
    # Probes only make traffic here; the judge reads Prometheus' per-version counters.
    options = CanaryOptions(release="app", tag=tag, steps=steps, interval=interval, rate=60.0, url=proxy.url,
                            settle=1.0, metrics=prometheus.url, metrics_selector=JOB)
    return stack, run_canary(stack, options)


def test_the_canary_loop_judged_from_prometheus_promotes_a_good_version(prometheus, apps, proxy):
    stack, run = canary_from_prometheus(prometheus, apps, proxy, "v2", [100], 4.0)
    assert run.exit_code == 0, run.aborted
    assert all(step.requests > 0 for step in run.steps)  # counted by Prometheus, not by the probes
    assert stack.config["app-update:releases"]["app"]["stable"]["tag"] == "v2"


def test_the_canary_loop_judged_from_prometheus_aborts_a_failing_version(prometheus, apps, proxy):
    stack, run = canary_from_prometheus(prometheus, apps, proxy, "v3", [50], 20.0)
    assert run.exit_code == 1 and run.aborted.startswith("canary error rate"), run.aborted
    assert run.steps[0].elapsed < 15
    assert stack.config["app-update:releases"]["app"]["canary"]["weight"] == 0 and proxy.weights["canary"] == 0


# ---------------------------------------------------------------------------------------------
# Clear errors, one line each
# ---------------------------------------------------------------------------------------------


def test_a_version_without_series_is_named(prometheus):
    with pytest.raises(PrometheusError) as raised:
        PrometheusSource(prometheus.url, "v9", max_p99=0.5, selector=JOB).sample()
    message = str(raised.value)
    assert 'no series of app_requests_total with version="v9"' in message and '"v1"' in message
    assert "\n" not in message
    assert PrometheusSource(prometheus.url, "v9", max_p99=0.5, selector=JOB).sample(require_canary=False).requests


def test_a_selector_matching_nothing_says_so(prometheus):
    with pytest.raises(PrometheusError, match=r'no series of app_requests_total\{job="nope"\}: is the app scraped'):
        PrometheusSource(prometheus.url, "v2", max_p99=0.5, selector='job="nope"').sample()


def test_an_error_answered_by_prometheus_is_one_line(prometheus):
    with pytest.raises(PrometheusError) as raised:
        PrometheusSource(prometheus.url, "v2", max_p99=0.5, selector='job=~"(unclosed"').sample()
    message = str(raised.value)
    assert message.startswith(f"Prometheus at {prometheus.url} answered bad_data (HTTP 400) for sum by")
    assert "\n" not in message


def test_a_missing_histogram_says_how_to_judge_without_latency(prometheus):
    labels = Labels(duration="no_such_histogram_seconds")
    with pytest.raises(PrometheusError, match=r"no series of no_such_histogram_seconds_bucket.*Labels\(duration=None\)"):
        PrometheusSource(prometheus.url, "v2", max_p99=0.5, labels=labels, selector=JOB).sample()
    plain = PrometheusSource(prometheus.url, "v2", max_p99=0.5, labels=Labels(duration=None), selector=JOB).sample()
    assert plain.latency == {} and plain.requests


def test_unreachable_prometheus_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusError) as raised:
        PrometheusSource(url, "v2", max_p99=0.5, timeout=2).sample()
    assert str(raised.value).startswith(f"Prometheus at {url} is unreachable: ")
    assert "\n" not in str(raised.value)


def test_something_that_is_not_prometheus_is_one_line():
    app = AppProcess("v1")  # answers 404 "not found" on /api/v1/query
    try:
        with pytest.raises(PrometheusError) as raised:
            PrometheusSource(app.url, "v2", max_p99=0.5).sample()
        assert str(raised.value) == (f"Prometheus at {app.url.rstrip('/')} answered HTTP 404 with something that is "
                                     "not the Prometheus API's JSON (is the URL right?)")
    finally:
        app.stop()


@pytest.mark.parametrize("kwargs,problem", [
    ({"url": "127.0.0.1:9090"}, "must be http(s)://host:port"),
    ({"labels": Labels(version="destination version")}, "'destination version' is not a Prometheus label name"),
    ({"labels": Labels(requests="app-requests")}, "'app-requests' is not a Prometheus metric name"),
    ({"max_p99": 0}, "max_p99 and the duration unit must be more than 0"),
])
def test_bad_settings_are_refused(kwargs, problem):
    settings = {"url": "http://127.0.0.1:9090", "canary_version": "v2", "max_p99": 0.5, **kwargs}
    with pytest.raises(PrometheusError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        PrometheusSource(**settings)


# ---------------------------------------------------------------------------------------------
# Increments between samples, and the queries (no server needed)
# ---------------------------------------------------------------------------------------------


def sample(time, **targets):
    """targets: instance → (version, requests, errors, all, slow)."""
    return Sample(time=time,
                  requests={("app", i, v): (r, e) for i, (v, r, e, _, _) in targets.items()},
                  latency={("app", i, v): (a, s) for i, (v, _, _, a, s) in targets.items()})


@pytest.mark.parametrize("earlier,later,expected", [
    pytest.param(dict(a=("v1", 10, 1, 10, 0)), dict(a=("v1", 25, 3, 25, 2)), {"v1": Counts(15, 2, 2)},
                 id="increments"),
    pytest.param(dict(a=("v1", 100, 5, 100, 4)), dict(a=("v1", 7, 1, 7, 1)), {"v1": Counts(7, 1, 1)},
                 id="a restarted target counts what it counted since"),
    pytest.param(dict(a=("v1", 10, 0, 10, 0)), dict(a=("v1", 12, 0, 12, 0), b=("v2", 5, 5, 5, 0)),
                 {"v1": Counts(2, 0, 0), "v2": Counts(5, 5, 0)}, id="a new target counts whole"),
    pytest.param(dict(a=("v2", 10, 0, 10, 0), b=("v2", 20, 0, 20, 0)), dict(a=("v2", 15, 1, 15, 0),
                 b=("v2", 30, 2, 30, 0)), {"v2": Counts(15, 3, 0)}, id="targets of one version add up"),
    pytest.param(dict(a=("v1", 10, 0, 9, 0)), dict(a=("v1", 12, 0, 9, 0)), {"v1": Counts(2, 0, 0)},
                 id="a histogram behind the counter adds no slow"),
])
def test_increments_between_samples(earlier, later, expected):
    assert sample(2.0, **later).since(sample(1.0, **earlier)) == expected


def test_the_queries_carry_the_label_mapping():
    app = PrometheusSource("http://prometheus:9090/", "v2", 0.5, selector='namespace="app-update"')
    assert app.url == "http://prometheus:9090"
    assert app.requests_query == 'sum by (job, instance, version, code) (app_requests_total{namespace="app-update"})'
    assert app.latency_query == ('sum by (job, instance, version, le) '
                                 '(app_request_duration_seconds_bucket{namespace="app-update"})')
    from operations.prometheus import INGRESS_NGINX, ISTIO
    istio = PrometheusSource("http://p:9090", "v2", 0.5, labels=ISTIO, selector='destination_service_name="app"')
    assert istio.requests_query == ('sum by (job, instance, destination_version, response_code) '
                                    '(istio_requests_total{reporter="destination",destination_service_name="app"})')
    nginx = PrometheusSource("http://p:9090", "app-update-app-canary-80", 0.5, labels=INGRESS_NGINX)
    assert nginx.requests_query == 'sum by (job, instance, canary, status) (nginx_ingress_controller_requests{})'
    assert nginx.latency_query == ('sum by (job, instance, canary, le) '
                                   '(nginx_ingress_controller_request_duration_seconds_bucket{})')
    assert APP.error_codes == "5.."
