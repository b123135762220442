"""`rollout canary` end to end on loopback: real app processes, a weighted proxy as the load
balancer, and a stand-in stack whose update runs the program offline and re-routes the proxy."""

import json

import pytest

from rollout.canary import CanaryOptions, run_canary
from rollout.cli import main
from rollout.stacks import OperationError
from tests.apps import AppProcess
from tests.fake_stack import FakeStack
from tests.weighted_proxy import WeightedProxy

RELEASES = "app-update:releases"


@pytest.fixture(scope="module")
def apps():
    started = {
        "v1": AppProcess("v1"),
        "v2": AppProcess("v2"),
        "v3": AppProcess("v3", FAIL_RATE="0.5"),
        "v4": AppProcess("v4", LATENCY_MS="150"),
    }
    yield started
    for app in started.values():
        app.stop()


class LoadBalancedStack(FakeStack):
    """Each successful update points the proxy at what the stack now runs, at its effective weight."""

    def __init__(self, proxy, apps, follow=True):
        super().__init__("staging", {
            "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
            RELEASES: {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4,
                               "stable": {"tag": "v1"}, "canary": {"tag": "v1", "weight": 0}}},
        })
        self.proxy, self.apps, self.follow = proxy, apps, follow
        self.up(message="initial")

    def up(self, **kwargs):
        result = super().up(**kwargs)
        if self.follow or len(self.summaries) == 1:
            info = self.outputs()["releases"].value["app"]
            self.proxy.route(self.apps[info["tags"]["stable"]].url, self.apps[info["tags"]["canary"]].url,
                             round(info["effectiveWeight"]))
        return result


@pytest.fixture
def proxy():
    with WeightedProxy() as server:
        yield server


def options(tag, **overrides):
    values = {"release": "app", "tag": tag, "steps": [5, 25, 50, 100], "interval": 0.6, "rate": 400.0,
              "max_error_rate": 0.01, "max_p99": 0.5}
    values.update(overrides)
    url = values.pop("url", None)
    return CanaryOptions(url=url, **values)


def test_a_good_version_goes_through_every_step_and_is_promoted(apps, proxy, tmp_path, capsys):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v2", url=proxy.url), log_path=tmp_path / "canary.log")
    assert run.exit_code == 0, run.aborted
    assert [s.weight for s in run.steps] == [5, 25, 50, 100]
    for step in run.steps:
        assert step.verdict is None and step.requests >= 50
        assert abs(step.canary_share - step.weight) <= 2, step  # observed shares within 2 points
        assert step.error_rate == 0
    app = stack.config[RELEASES]["app"]
    assert app["stable"]["tag"] == "v2" and app["canary"]["weight"] == 0
    assert stack.up_messages[1:] == ["canary app v2: weight 5%", "canary app v2: weight 25%",
                                     "canary app v2: weight 50%", "canary app v2: weight 100%", "promote app v2"]
    events = [json.loads(line)["event"] for line in (tmp_path / "canary.log").read_text().splitlines()]
    assert events.count("step") == 4 and "update" in events
    out = capsys.readouterr().out
    assert "step 1/4: weight 5%" in out and "promoted: app runs v2" in out


def test_a_failing_version_is_stopped_early_in_the_first_step(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v3", url=proxy.url, interval=30.0, rate=300.0))
    assert run.exit_code == 1
    assert len(run.steps) == 1
    step = run.steps[0]
    assert step.weight == 5 and "error rate" in step.verdict
    assert step.elapsed < 10  # the interval was 30 s: stopped as soon as the failure was clear
    assert step.canary_requests < 100
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0
    assert proxy.weights["canary"] == 0  # traffic back at 0%
    assert stack.up_messages[-1].startswith("canary app v3 aborted at 5%: canary error rate")


def test_a_slow_version_is_stopped_on_p99(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v4", url=proxy.url, steps=[50], interval=30.0, max_p99=0.05))
    assert run.exit_code == 1 and "p99" in run.aborted
    assert run.steps[0].elapsed < 10


def test_traffic_that_never_reaches_the_canary_aborts(apps, proxy):
    stack = LoadBalancedStack(proxy, apps, follow=False)  # the load balancer ignores the weight
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25], interval=30.0))
    assert run.exit_code == 1 and "not reaching it" in run.aborted
    assert run.steps[0].elapsed < 10


def test_ctrl_c_sends_traffic_back_to_stable(apps, proxy, monkeypatch):
    from rollout import canary

    def interrupted(self, duration, on_tick):
        raise KeyboardInterrupt

    monkeypatch.setattr(canary.Prober, "run", interrupted)
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25, 50]))
    assert run.exit_code == 1 and run.aborted == "interrupted by the operator"
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0 and proxy.weights["canary"] == 0


def test_probe_address_comes_from_the_stack_outputs(apps, proxy):
    from rollout.canary import release_url

    stack = LoadBalancedStack(proxy, apps)
    address = stack.outputs()["releases"].value["app"]["address"]
    assert release_url(stack, "app", stack.config[RELEASES]) == f"http://{address}/"
    stack.config[RELEASES]["app"]["servicePort"] = 8080
    assert release_url(stack, "app", stack.config[RELEASES]) == f"http://{address}:8080/"


def test_per_track_replicas_form_is_refused(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"] = {"strategy": "Canary", "stable": {"tag": "v1", "replicas": 2},
                                     "canary": {"tag": "v1", "replicas": 0}}
    with pytest.raises(OperationError, match="per-track replicas"):
        run_canary(stack, options("v2", url=proxy.url))


@pytest.mark.parametrize("argv", [
    ["canary", "staging", "--release", "app", "--tag", "v2", "--steps", "50,5"],
    ["canary", "staging", "--release", "app", "--tag", "v2", "--interval", "soon"],
    ["canary", "staging", "--release", "app", "--tag", "v2", "--max-error-rate", "150%"],
    ["canary", "staging", "--release", "app", "--tag", "v2", "--rate", "0"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
