"""Judging the users' real traffic from Prometheus: a real server (Debian's `prometheus`) scrapes
real app processes every 200 ms while traffic goes through the weighted proxy.

Outside CI a missing binary skips the tests that need it (`make prometheus` installs it); in CI
(CI set) it fails them: .ci/run installs it."""

from __future__ import annotations

import collections
import contextlib
import functools
import http.client
import http.server
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from model.judge import Judge
from operations.prometheus import APP, Counts, Labels, PrometheusError, PrometheusSource, Rounds, Sample
from tests.apps import AppProcess
from tests.prometheus_server import (
    Background,
    PrometheusServer,
    free_port,
    in_ci,
    prometheus_binary,
    wait_for,
)

JOB = 'job="app"'
# Between reads of Prometheus while waiting for its next scrape (every 200 ms): a read is four queries, ~12 ms of
# CPU here and in Prometheus, so half a scrape interval, not the 50 ms of a plain wait.
SCRAPE_POLL = 0.1
APPS = {"v1": {}, "v2": {}, "v3": {"FAIL_RATE": "0.5"}, "v4": {"LATENCY_MS": "150"}}


@dataclass
class Environment:
    apps: dict[str, AppProcess]
    server: PrometheusServer


def _start() -> Environment:
    """Prometheus and the apps at once (it scrapes new targets only ~5 s after it starts), then
    Prometheus is given the apps' addresses and scrapes each."""
    server = PrometheusServer({"app": []})
    with ThreadPoolExecutor(len(APPS) + 1) as pool:
        starting = pool.submit(server.start)
        launching = {version: pool.submit(AppProcess, version, **env) for version, env in APPS.items()}
    started = Environment({version: future.result() for version, future in launching.items()
                           if future.exception() is None}, server)
    try:
        for future in (starting, *launching.values()):
            if future.exception() is not None:
                raise future.exception()
        server.set_targets("app", [f"127.0.0.1:{app.port}" for app in started.apps.values()])
        server.wait_up()
    except BaseException:
        _stop(started)
        raise
    return started


def _stop(environment: Environment) -> None:
    """Everything at once."""
    with ThreadPoolExecutor(len(environment.apps) + 1) as pool:
        stopping = [pool.submit(environment.server.stop)]
        stopping += [pool.submit(app.stop) for app in environment.apps.values()]
    for future in stopping:
        future.result()


# Begun by the `environment` fixture, when this module's first test runs: not at import.
ENVIRONMENT = Background(_start, _stop)


@pytest.fixture(scope="module", autouse=True)
def environment(request):
    """Prometheus and the apps, begun on a thread as this module's first test starts, when one of the
    tests to run needs them. Only a process that runs the module's tests starts them (of xdist's
    workers, which all import every module to collect it, the one given this module); the tests that
    need no server (first in this file) run while Prometheus comes up (~5 s). The scenarios of
    tests/test_prometheus_release.py, which runs next on the same worker, begin with it: their waits
    on Prometheus' ticks overlap these."""
    if prometheus_binary() is not None and any(
            getattr(item, "module", None) is request.module and "prometheus" in getattr(item, "fixturenames", ())
            for item in request.session.items):
        ENVIRONMENT.begin()
        from tests import test_prometheus_release
        from tests.conftest import runs_one_worker_groups

        if runs_one_worker_groups(request.config):  # else another worker may run them: it begins them itself
            test_prometheus_release.begin(request.session)
    yield
    ENVIRONMENT.stop()


@pytest.fixture(scope="module")
def prometheus():
    if prometheus_binary() is None:
        reason = "the prometheus binary is not installed (make prometheus installs Debian's package)"
        if in_ci():
            pytest.fail(f"{reason}; .ci/run should have installed it")
        pytest.skip(reason)
    return ENVIRONMENT.result().server


@pytest.fixture(scope="module")
def apps(prometheus):
    return ENVIRONMENT.result().apps


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
        wait_for(seen, deadline_s, "Prometheus to scrape the traffic sent", max_poll=SCRAPE_POLL)
    except TimeoutError:
        pytest.fail(f"expected {expected}, Prometheus has {[s.sample().since(b) for s, b in zip(sources, before, strict=True)]}")


def quiet_sample(source: PrometheusSource, deadline_s: float = 10.0) -> Sample:
    """A sample that counts every request answered so far, whatever ran before: taken once two samples
    a whole scrape round apart (every target scraped again in between) count the same. Right after
    traffic a sample can lack the last requests: an app counts a request just after answering it, and
    the last scrape may not have happened yet. A sample without the canary's series (its last scrape failed
    or timed out on a loaded machine, so Prometheus marked them stale) is never one of the two."""
    previous: Sample | None = None

    def still() -> Sample | None:
        nonlocal previous
        now = source.sample(require_canary=False)
        if not source.has_canary(now.requests):
            return None
        if previous is not None:
            if any(now.scraped.get(target, -1.0) <= at for target, at in previous.scraped.items()):
                return None  # a target not scraped again yet
            if now.requests == previous.requests and now.latency == previous.latency:
                return now
        previous = now
        return None

    return wait_for(still, deadline_s, "the counters to stand still", max_poll=SCRAPE_POLL)


# ---------------------------------------------------------------------------------------------
# No server needed (first in the file: they run while Prometheus comes up)
# ---------------------------------------------------------------------------------------------


def test_unreachable_prometheus_is_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PrometheusError) as raised:
        PrometheusSource(url, "v2", max_p99=0.5, timeout=2).sample()
    assert str(raised.value).startswith(f"Prometheus at {url} is unreachable: ")
    assert "\n" not in str(raised.value)


@contextlib.contextmanager
def loopback_server(handler: Callable[..., http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """An HTTP server with `handler` on a loopback port while the block runs; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits for serve_forever to see the flag: at the default 0.5 s poll, half a second a test.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_something_that_is_not_prometheus_is_one_line(tmp_path):
    # A plain file server (an empty directory): /api/v1/query is a 404 page of HTML.
    with loopback_server(functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))) as url:
        with pytest.raises(PrometheusError) as raised:
            PrometheusSource(f"{url}/", "v2", max_p99=0.5).sample()
        assert str(raised.value) == (f"Prometheus at {url} answered HTTP 404 with something that is "
                                     "not the Prometheus API's JSON (is the URL right?)")


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


# Increments between samples, and the queries


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


def scraped_sample(time: float, **targets: tuple[str, float]) -> Sample:
    """targets: instance → (version, requests), each scraped at `time`; a target left out has no series
    (its last scrape failed: Prometheus marked its series stale)."""
    return Sample(time=time, requests={("app", i, v): (r, 0.0) for i, (v, r) in targets.items()},
                  scraped={("app", i): time for i in targets})


def scripted_rounds(samples: list[Sample], **options) -> tuple[Rounds, PrometheusSource]:
    """Rounds over a source whose instant queries answer `samples` in turn (the first is the baseline)."""
    source = PrometheusSource("http://prometheus:9090", "v2", 0.5)
    answers = iter(samples)
    source.sample = lambda require_canary=True: next(answers)  # type: ignore[method-assign]
    return Rounds(source, **options), source


def test_a_canary_missing_from_a_scrape_holds_the_round_open_and_loses_nothing():
    rounds, _ = scripted_rounds([
        scraped_sample(0, a=("v1", 10), b=("v2", 5)),
        scraped_sample(1, a=("v1", 20)),  # the canary's scrape failed
        scraped_sample(2, a=("v1", 30), b=("v2", 9)),
    ])
    assert rounds.poll() is None  # not a round of the stable version alone
    assert rounds.poll() == {"v1": Counts(20, 0, 0), "v2": Counts(4, 0, 0)}  # both versions over the whole span
    assert rounds.rounds == 1


def test_a_canary_missing_for_its_grace_is_named_with_how_long():
    rounds, _ = scripted_rounds([scraped_sample(0, a=("v1", 10), b=("v2", 5))]
                                + [scraped_sample(t, a=("v1", 10 + t)) for t in (3, 6, 9)], canary_grace=6)
    assert rounds.poll() is None and rounds.poll() is None  # missing since 3 s: 3 s of 6
    with pytest.raises(PrometheusError) as raised:
        rounds.poll()
    assert str(raised.value) == ('Prometheus at http://prometheus:9090 has no series of app_requests_total with '
                                 'version="v2" for 6s (versions seen: "v1"): is the canary scraped?')


def test_the_grace_starts_again_once_the_canary_is_back():
    rounds, _ = scripted_rounds([
        scraped_sample(0, a=("v1", 10), b=("v2", 5)),
        scraped_sample(4, a=("v1", 14)),
        scraped_sample(5, a=("v1", 15), b=("v2", 6)),
        scraped_sample(8, a=("v1", 18)),
        scraped_sample(12, a=("v1", 22)),
    ], canary_grace=5)
    assert rounds.poll() is None
    assert rounds.poll() == {"v1": Counts(5, 0, 0), "v2": Counts(1, 0, 0)}
    assert rounds.poll() is None and rounds.poll() is None  # missing 4 s of 5 since it came back


def test_without_require_canary_a_round_of_the_others_is_judged_and_the_grace_defaults_to_the_round_timeout():
    rounds, _ = scripted_rounds([scraped_sample(0, a=("v1", 10), b=("v2", 5)), scraped_sample(1, a=("v1", 20))],
                                require_canary=False)
    assert rounds.poll() == {"v1": Counts(10, 0, 0)}  # an ingress's canary series appear with its first request
    assert Rounds(PrometheusSource("http://prometheus:9090", "v2", 0.5), round_timeout=30,
                  base=scraped_sample(0)).canary_grace == 30


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


class ScrapingPrometheus:
    """A loopback stand-in for Prometheus' instant-query API whose data moves on by one scrape of
    every target after each of the queries `scrape_after` names (the scrape lands between queries,
    as it can on a real server). Scrape n stamps the targets at 10 + n s, with v1 at 100 n requests
    and v2 at 10 n: a read whose counters are not of its scrape times shows at once."""

    def __init__(self, scrape_after: set[int]) -> None:
        import json

        self.scrape_after, self.queries, self.scrapes = scrape_after, 0, 1
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                params = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                n, at = owner.scrapes, float(params.get("time", ["50"])[0])
                if params["query"][0].startswith("max by (job, instance) (timestamp("):
                    result = [{"metric": {"job": "app", "instance": i}, "value": [at, str(10 + n)]} for i in "ab"]
                else:
                    result = [{"metric": {"job": "app", "instance": i, "version": v, "code": "200"},
                               "value": [at, str(per * n)]} for i, v, per in (("a", "v1", 100), ("b", "v2", 10))]
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
                owner.queries += 1
                if owner.queries in owner.scrape_after:
                    owner.scrapes += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._serving = loopback_server(Handler)
        self.url = ""

    def __enter__(self) -> ScrapingPrometheus:
        self.url = self._serving.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._serving.__exit__(*exc)


def consistent(sample: Sample) -> bool:
    """Each target's counters are those of the scrape its time says."""
    scrape = {instance: stamp - 10 for (_, instance), stamp in sample.scraped.items()}
    return all(count == {"v1": 100, "v2": 10}[version] * scrape[instance]
               for (_, instance, version), (count, _) in sample.requests.items())


@pytest.mark.parametrize("scrape_after,reads", [
    pytest.param(set(), 1, id="nothing lands: one read"),
    pytest.param({1}, 2, id="a scrape lands after the first query: read again"),
    pytest.param({2}, 2, id="a scrape lands after the counters: read again"),
    pytest.param({1, 4}, 3, id="and again on the second read"),
])
def test_a_sample_never_pairs_counters_with_the_times_of_another_scrape(scrape_after, reads):
    no_latency = Labels(duration=None)
    with ScrapingPrometheus(scrape_after) as server:
        taken = PrometheusSource(server.url, "v2", 0.5, labels=no_latency).sample()
        assert consistent(taken), taken
        assert taken.scraped[("app", "a")] == 10 + server.scrapes  # the newest scrape at the end of the read
        assert server.queries == 3 * reads  # times, counters, times again, per read


def test_a_sample_that_keeps_moving_is_taken_after_a_bounded_number_of_reads():
    from operations.prometheus import CONSISTENT_READS

    with ScrapingPrometheus(set(range(1, 100))) as server:
        taken = PrometheusSource(server.url, "v2", 0.5, labels=Labels(duration=None)).sample()
        assert server.queries == 3 * CONSISTENT_READS
        assert taken.totals()["v2"].requests > 0
        # The times from before the last read's counters: no target looks scraped again with older counters.
        assert all(count >= {"v1": 100, "v2": 10}[version] * (taken.scraped[("app", instance)] - 10)
                   for (_, instance, version), (count, _) in taken.requests.items())


# ---------------------------------------------------------------------------------------------
# The source against a real Prometheus
# ---------------------------------------------------------------------------------------------


def test_the_source_reads_the_traffic_sent_by_version(prometheus, apps, proxy):
    source = PrometheusSource(prometheus.url, "v2", max_p99=0.1, selector=JOB)  # 0.1 s is a bucket bound
    between = PrometheusSource(prometheus.url, "v2", max_p99=0.12, selector=JOB)  # the next bound is 0.25 s
    before = [quiet_sample(source), between.sample()]
    assert before[0].totals()["v2"].requests >= 0 and set(before[0].scraped) == {
        ("app", f"127.0.0.1:{app.port}") for app in apps.values()}
    proxy.route(apps["v1"].url, apps["v2"].url, 25)
    sent: dict[str, collections.Counter] = {}
    threads = [threading.Thread(target=lambda name=name, url=url, n=n: sent.__setitem__(name, send(url, n)))
               for name, url, n in (("proxy", proxy.url, 100), ("v3", apps["v3"].url, 40),
                                    ("v4", apps["v4"].url, 8))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sent["proxy"] == {("v1", 200): 75, ("v2", 200): 25}  # the proxy's split is exact
    assert 0 < by_version(sent["v3"])["v3"].errors < 40  # FAIL_RATE 0.5: about half are 500s
    assert sent["v4"] == {("v4", 200): 8}  # LATENCY_MS 150: every answer takes at least 150 ms
    expected = {**by_version(sent["proxy"]), **by_version(sent["v3"]), **by_version(sent["v4"], slow=True)}
    # 150 ms lies between the 0.12 s limit and the 0.25 s bucket: not counted slow there (a fast answer is
    # never counted slow; a limit on a bucket bound is exact)
    increments_until([source, between], before, [expected, {**expected, "v4": Counts(8, 0, 0)}])
    assert source.slow_bucket == 0.1 and between.slow_bucket == 0.25


@dataclass
class Judged:
    judge: Judge
    verdict: str | None
    sent: dict[str, Counts]  # the answers the client got, by the version that answered
    counted: dict[str, Counts]  # every scrape round's increments, until they add up to what was sent


def judge_from_prometheus(prometheus, proxy, apps, canary: str, weight: int = 25, rate: float = 150.0,
                          judged_s: float = 1.5, judged_requests: int = 100, deadline_s: float = 20.0) -> Judged:
    """The judging loop on Prometheus. Paced traffic through the proxy all along; the first scrape round
    (the traffic starting) is the judge's settle phase; each round's increments per version go to
    `Judge.observe_counts`, then `verdict()`. Ends at a verdict, or once the rounds judged after the
    settle phase span `judged_s` seconds (of Prometheus time) and the judge has counted more than
    `judged_requests` answers: a loaded machine sends fewer a second, so it judges longer, not on less.
    Then the traffic stops and the rounds go on until their increments add up to the answers the client
    got (fails if they never do): Rounds loses and doubles nothing.

    Many short rounds rather than a few long ones: should a round's increments still miss a target's
    last scrape (PrometheusSource.sample() re-reads until the counters and scrape times agree, a bounded
    number of times), the next round makes it up, and with 200 ms rounds at 150 requests/s that is at
    most ~25 requests of one version, far below what the judge's share tests reject on."""
    proxy.route(apps["v1"].url, apps[canary].url, weight)
    judge = Judge(canary, weight, 0.01, 0.5, settling=True)  # until end_settle() below
    stop = threading.Event()
    answers: collections.Counter = collections.Counter()
    traffic = threading.Thread(target=lambda: answers.update(send(proxy.url, int(rate * deadline_s), rate=rate,
                                                                  stop=stop)))
    source = PrometheusSource(prometheus.url, canary, max_p99=0.5, selector=JOB)
    quiet = quiet_sample(source)  # an earlier test's traffic is all scraped: the rounds' baseline
    counted: dict[str, Counts] = {}

    def count(increments: dict[str, Counts]) -> None:
        for version, counts in increments.items():
            counted[version] = counted.get(version, Counts()) + counts

    traffic.start()
    try:
        rounds = Rounds(source, base=quiet)
        settled_at = None
        verdict: str | None = None
        deadline = time.monotonic() + deadline_s
        while True:
            if time.monotonic() > deadline:
                pytest.fail(f"{rounds.rounds} scrape rounds in {deadline_s}s")
            increments = rounds.poll()
            if increments is not None:
                count(increments)
                for version, counts in increments.items():
                    judge.observe_counts(version, counts.requests, counts.errors, counts.slow)
                if rounds.rounds == 1:
                    judge.end_settle()
                    settled_at = rounds.base.time
                verdict = judge.verdict()
                if verdict or (rounds.base.time - settled_at >= judged_s
                               and judge.total.requests > judged_requests):
                    break
            time.sleep(SCRAPE_POLL)  # poll interval while waiting on a deadline for the next scrape round
    finally:
        stop.set()
        traffic.join(30)
    assert not traffic.is_alive()
    sent = by_version(answers)
    assert None not in sent, answers  # every request was answered (by v1, or by the canary)

    def added_up() -> bool:
        increments = rounds.poll()
        if increments is not None:
            count(increments)
        return {v: c for v, c in counted.items() if c != Counts()} == sent

    try:
        wait_for(added_up, 10.0, "the rounds to count every answer sent", max_poll=SCRAPE_POLL)
    except TimeoutError:
        pytest.fail(f"the scrape rounds counted {counted}; the client got {sent}")
    return Judged(judge, verdict, sent, counted)


def test_a_judge_fed_from_prometheus_keeps_a_good_canary(prometheus, apps, proxy):
    judged = judge_from_prometheus(prometheus, proxy, apps, "v2")
    judge = judged.judge
    assert judged.verdict is None
    assert judge.total.errors == 0 and set(judged.sent) == {"v1", "v2"}
    assert judge.share_high.n > 0 and abs(judge.canary_share - 25) < 10  # judged on the share, near the weight
    assert not judge.settling


def test_a_judge_fed_from_prometheus_aborts_a_failing_canary(prometheus, apps, proxy):
    judged = judge_from_prometheus(prometheus, proxy, apps, "v3")
    judge, verdict = judged.judge, judged.verdict
    assert verdict is not None and verdict.startswith("canary error rate"), verdict
    assert judge.canary.errors >= 3 and judge.total.errors == judge.canary.errors  # v1 never failed
    assert judged.sent["v3"].errors > 0 and judged.sent["v1"].errors == 0


# ---------------------------------------------------------------------------------------------
# `rollout canary --metrics prometheus=URL`: the canary loop judged from Prometheus
# ---------------------------------------------------------------------------------------------


def canary_from_prometheus(prometheus, apps, proxy, tag, steps, interval):
    from operations.canary_run import CanaryOptions, run_canary
    from tests.test_canary import LoadBalancedStack

    stack = LoadBalancedStack(proxy, apps)
    # Probes only make traffic here; the judge reads Prometheus' per-version counters. The loop reads
    # Prometheus every 0.5 s (scrapes every 200 ms): rounds are dropped until the one after the first to
    # end past the settle time, so a step's judging starts ~1 s in.
    options = CanaryOptions(release="app", tag=tag, steps=steps, interval=interval, rate=60.0, url=proxy.url,
                            settle=0.5, metrics=prometheus.url, metrics_selector=JOB)
    return stack, run_canary(stack, options)


def test_the_canary_loop_judged_from_prometheus_promotes_a_good_version(prometheus, apps, proxy):
    stack, run = canary_from_prometheus(prometheus, apps, proxy, "v2", [100], 2.5)
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
    assert message.startswith(f"Prometheus at {prometheus.url} answered bad_data (HTTP 400) for ")
    assert '{job=~"(unclosed"}' in message  # the query it refused, with the selector at fault
    assert "\n" not in message


def test_a_missing_histogram_says_how_to_judge_without_latency(prometheus):
    labels = Labels(duration="no_such_histogram_seconds")
    with pytest.raises(PrometheusError, match=r"no series of no_such_histogram_seconds_bucket.*Labels\(duration=None\)"):
        PrometheusSource(prometheus.url, "v2", max_p99=0.5, labels=labels, selector=JOB).sample()
    plain = PrometheusSource(prometheus.url, "v2", max_p99=0.5, labels=Labels(duration=None), selector=JOB).sample()
    assert plain.latency == {} and plain.requests


# ---------------------------------------------------------------------------------------------
# The release's selector, durations, the targets' scrape interval
# ---------------------------------------------------------------------------------------------


def test_the_release_selector_is_filled_in_from_the_stack():
    from operations.prometheus import INGRESS_NGINX, ISTIO, release_selector

    names = {"namespace": "app-update", "release": "app", "service": "app-service"}
    assert release_selector(APP.release, **names) == (
        'namespace="app-update",pod=~"app-(stable|canary)-[a-z0-9]+-[a-z0-9]+"')
    assert release_selector(ISTIO.release, **names) == (
        'destination_workload_namespace="app-update",destination_workload=~"app-(stable|canary)"')
    assert release_selector(INGRESS_NGINX.release, **names) == (
        'exported_namespace="app-update",ingress=~"app-service|app-service-canary"')
    with pytest.raises(PrometheusError, match="placeholder other than"):
        release_selector('pod="{pod}"', **names)
    with pytest.raises(PrometheusError, match="namespace 'App\"' is not a Kubernetes name"):
        release_selector(APP.release, **{**names, "namespace": 'App"'})


@pytest.mark.parametrize("text,seconds", [("15s", 15), ("1m", 60), ("1m30s", 90), ("200ms", 0.2), ("2h", 7200)])
def test_prometheus_durations(text, seconds):
    from operations.prometheus import parse_duration

    assert parse_duration(text) == pytest.approx(seconds)


def test_a_bad_duration_is_refused():
    from operations.prometheus import parse_duration

    with pytest.raises(PrometheusError, match="'1 m' is not a Prometheus duration"):
        parse_duration("1 m")


def test_the_scrape_interval_is_the_release_targets_longest(prometheus, apps):
    from operations.prometheus import scrape_interval

    source = PrometheusSource(prometheus.url, "v2", 0.5, selector=JOB)
    targets = set(source.sample().scraped)
    assert scrape_interval(source, targets) == pytest.approx(0.2)  # the test server's 200ms
    assert scrape_interval(source, {("app", "127.0.0.1:1")}) is None  # not one of its targets
