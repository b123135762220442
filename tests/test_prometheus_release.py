"""`rollout canary --metrics` against a real Prometheus as it scrapes: a canary scraped only after its weight
is live, a slow scrape interval, and a second workload on the stable tag in the namespace. Each target
carries the labels a Kubernetes service discovery attaches (`namespace`, `pod`), so the default release
selector (operations.prometheus.Labels.release) is what scopes the queries. The tests' scenarios run on threads
begun with the module, each with a Prometheus and a proxy of its own, the first beside the other two on apps of its
own: most of a scenario is waiting on Prometheus' 5 s ticks.

Outside CI a missing binary skips these tests (`make prometheus` installs it); in CI it fails them."""

from __future__ import annotations

import functools
import io
import sys
import threading

import pytest

from operations import stacks
from operations.canary_run import CanaryOptions, run_canary
from operations.prometheus import PrometheusSource
from tests.apps import AppProcess, stop_all, wait_all
from tests.prometheus_server import Background, PrometheusServer, in_ci, prometheus_binary, wait_for
from tests.test_canary import LoadBalancedStack
from tests.weighted_proxy import WeightedProxy

RELEASES = "app-update:releases"
# Pods as their Deployments name them (<deployment>-<replica set hash>-<pod hash>); "rolling" is another
# release in the namespace (staging's app-rolling) running the stable tag.
PODS = {"v1": "app-stable-5f7d8c9b4-x2x4z", "v2": "app-canary-6c8d9f7b5-q9w8e",
        "rolling": "app-rolling-7b9c8d6f4-k3j2h"}
APP_VERSIONS = {"v1": "v1", "v2": "v2", "rolling": "v1"}  # the version each app process answers with


# Each test's own Prometheus: (the apps it scrapes from the start, its scrape interval).
SERVERS = {
    "test_a_canary_scraped_only_after_its_weight_is_live_is_waited_for_and_promoted": (["v1", "rolling"], "200ms"),
    "test_a_slow_scrape_interval_is_read_from_prometheus_and_judged_in_whole_rounds": (["v1", "v2"], "1s"),
    "test_a_second_workload_on_the_stable_tag_never_counts": (["v1", "v2", "rolling"], "200ms"),
}
# Scenarios that run one after another on one set of apps (each with a Prometheus of its own, all begun at once);
# the groups run at once, each on apps of its own: a scenario's traffic must never reach the counters another reads.
GROUPS = [["test_a_canary_scraped_only_after_its_weight_is_live_is_waited_for_and_promoted"],
          ["test_a_slow_scrape_interval_is_read_from_prometheus_and_judged_in_whole_rounds",
           "test_a_second_workload_on_the_stable_tag_never_counts"]]
# The groups the `scenarios` fixture began, by test: what each scenario raised (None: it passed), by test.
PLAYING: dict[str, Background[dict[str, BaseException | None]]] = {}
SCENARIO_DEADLINE_S = 180.0  # apps, a Prometheus (~5 s before it scrapes), runs of a few steps: for a busy machine


def begin(session: pytest.Session) -> None:
    """Begin the scenarios (GROUPS) of this module's tests that are to run, on threads, once: from this module's
    `scenarios` fixture, or earlier from tests/test_prometheus.py's, whose waits then overlap these (the two files
    run on one worker, one after the other: tests/conftest.py ONE_WORKER). Scenarios begun and never waited for are
    stopped at the interpreter's exit (Background)."""
    if PLAYING or prometheus_binary() is None:
        return
    module = sys.modules[__name__]
    to_run = {item.originalname for item in session.items if getattr(item, "module", None) is module}
    for group in GROUPS:
        tests = [test for test in group if test in to_run]
        if tests:
            playing = Background(functools.partial(play, tests), lambda _: None)
            playing.begin()
            PLAYING.update(dict.fromkeys(tests, playing))


@pytest.fixture(scope="module")
def scenarios(request):
    """The tests' scenarios, begun on threads (`begin`) so that their waits overlap: Prometheus scrapes new targets
    only ~5 s after it starts, and a new target ~5 s after it is known. A test waits for its scenario to end; the
    scenario's assertions fail that test."""
    if prometheus_binary() is None:
        reason = "the prometheus binary is not installed (make prometheus installs Debian's package)"
        if in_ci():
            pytest.fail(f"{reason}; .ci/run should have installed it")
        pytest.skip(reason)
    begin(request.session)
    yield PLAYING
    for playing in set(PLAYING.values()):
        playing.stop()
    PLAYING.clear()


def play(tests: list[str]) -> dict[str, BaseException | None]:
    """The scenarios of `tests` (SCENARIOS) one after another on one set of apps, each with its Prometheus and a
    proxy of its own; everything stopped at the end. What each scenario raised, by test."""
    apps = {name: AppProcess.launch(version) for name, version in APP_VERSIONS.items()}
    servers: dict[str, Background[PrometheusServer]] = {}
    raised: dict[str, BaseException | None] = {}
    try:
        for test in tests:  # while the apps start: their targets are given before Prometheus' first 5 s tick
            server = PrometheusServer({"app": []}, scrape_interval=SERVERS[test][1])
            servers[test] = Background(server.start, PrometheusServer.stop)
            servers[test].begin()
        wait_all(apps.values())
        for test in tests:
            scrape(servers[test].result(), apps, SERVERS[test][0])
        for test in tests:
            try:
                with WeightedProxy() as proxy:
                    server = servers[test].result()
                    server.wait_up()
                    SCENARIOS[test](apps, server, proxy)
                raised[test] = None
            except BaseException as error:  # noqa: BLE001 (raised again by the test: played())
                raised[test] = error
            finally:
                servers[test].stop()
    finally:
        for starting in servers.values():
            starting.stop()
        stop_all(apps.values())
    return raised


def played(test: str) -> None:
    """Wait for `test`'s scenario; what it raised is raised here."""
    error = PLAYING[test].result(SCENARIO_DEADLINE_S)[test]
    if error is not None:
        raise error


def address(app: AppProcess) -> str:
    return f"127.0.0.1:{app.port}"


def scrape(server: PrometheusServer, apps: dict[str, AppProcess], names: list[str]) -> None:
    server.set_targets("app", [address(apps[name]) for name in names],
                       {address(apps[name]): {"namespace": "app-update", "pod": PODS[name]} for name in names})


class ScrapedStack(LoadBalancedStack):
    """Routes the proxy like LoadBalancedStack; `on_up(weight)` runs after each successful update."""

    def __init__(self, proxy, apps, on_up=None):
        self.on_up = on_up
        super().__init__(proxy, {"v1": apps["v1"], "v2": apps["v2"]})

    def up(self, **kwargs):
        result = super().up(**kwargs)
        if self.on_up:
            self.on_up(self.outputs()["releases"].value["app"]["effectiveWeight"])
        return result


def options(server, proxy, **overrides):
    values = {"release": "app", "tag": "v2", "steps": [50, 100], "interval": 2.0, "rate": 60.0, "settle": 0.5,
              "metrics": server.url, "url": proxy.url}
    values.update(overrides)
    return CanaryOptions(**values)


def canary_scraped_only_after_its_weight_is_live(apps, server, proxy):
    def discover_canary(weight):  # the canary pod is discovered once it carries traffic: ~5 s later
        if weight > 0 and address(apps["v2"]) not in server.targets["app"]:
            scrape(server, apps, ["v1", "rolling", "v2"])

    stack = ScrapedStack(proxy, apps, discover_canary)
    printed = io.StringIO()
    run = run_canary(stack, options(server, proxy), out=printed)
    out = printed.getvalue()
    assert run.exit_code == 0, out
    assert "waiting up to 30.6s for Prometheus to scrape the canary and a whole round after the weight" in out
    assert all(step.canary_requests > 0 for step in run.steps)
    assert stack.config[RELEASES]["app"]["stable"]["tag"] == "v2"


def slow_scrape_interval(apps, server, proxy):
    # server: scraping every 1s
    printed = io.StringIO()
    stack = ScrapedStack(proxy, apps)
    with pytest.raises(stacks.InputError, match=r"--interval 2s is shorter than 3 scrape intervals of Prometheus "
                                                r"\(1s each\).*use --interval 3s or more"):
        run_canary(stack, options(server, proxy), out=printed)
    assert stack.up_messages == ["initial"]  # refused before anything was written
    run = run_canary(stack, options(server, proxy, steps=[100], interval=3.0), out=printed)
    out = printed.getvalue()
    assert run.exit_code == 0, run.aborted
    assert "scrape interval 1s" in out
    # With a scrape as long as a third of the step, the rounds after the wait still hold the step's traffic
    # (it used to drop every round but the last and judge none: "no answer was judged").
    assert run.steps[0].requests > 0 and run.steps[0].canary_share == 100.0


def second_workload_on_the_stable_tag(apps, server, proxy):
    stop = threading.Event()

    def other_release_traffic():  # app-rolling's own users, straight to its pod: 200 requests/s, more than the probes
        from tests.test_prometheus import send

        send(f"http://{address(apps['rolling'])}/", 200 * 60, clients=2, rate=200.0, stop=stop)

    everything = PrometheusSource(server.url, "v2", 0.5, selector='job="app"')
    before = everything.sample().totals()
    stack = ScrapedStack(proxy, apps)
    traffic = threading.Thread(target=other_release_traffic)
    traffic.start()
    try:
        run = run_canary(stack, options(server, proxy, steps=[100], interval=2.5), out=io.StringIO())
    finally:
        stop.set()
        traffic.join(10)
    # The unscoped query counts app-rolling's answers as v1: at the 100% step the canary would read far below.
    wait_for(lambda: everything.sample().totals()["v1"].requests > before["v1"].requests + 100, 10,
             "app-rolling's traffic to be scraped")
    assert run.exit_code == 0, run.aborted
    assert run.steps[0].canary_share == 100.0 and run.steps[0].requests > 0


SCENARIOS = {
    "test_a_canary_scraped_only_after_its_weight_is_live_is_waited_for_and_promoted":
        canary_scraped_only_after_its_weight_is_live,
    "test_a_slow_scrape_interval_is_read_from_prometheus_and_judged_in_whole_rounds": slow_scrape_interval,
    "test_a_second_workload_on_the_stable_tag_never_counts": second_workload_on_the_stable_tag,
}


def test_a_canary_scraped_only_after_its_weight_is_live_is_waited_for_and_promoted(scenarios):
    played("test_a_canary_scraped_only_after_its_weight_is_live_is_waited_for_and_promoted")


def test_a_slow_scrape_interval_is_read_from_prometheus_and_judged_in_whole_rounds(scenarios):
    played("test_a_slow_scrape_interval_is_read_from_prometheus_and_judged_in_whole_rounds")


def test_a_second_workload_on_the_stable_tag_never_counts(scenarios):
    played("test_a_second_workload_on_the_stable_tag_never_counts")
