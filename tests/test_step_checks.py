"""What `rollout canary` checks around each step (operations/step_checks.py): the share replicas mode gives,
refusals before any write, the live weight before evidence counts. Real app processes behind the weighted
proxy; the stand-in stack's updates also move a loopback Kubernetes API server's Deployments."""

from __future__ import annotations

import re

import pytest

from operations.canary_run import CanaryOptions, run_canary
from operations.live_weight import DeploymentsReader, IngressReader, LiveWeight, RouteReader
from rollout.cli import main
from tests.apps import running
from tests.clock import VirtualClock
from tests.fake_stack import FakeStack
from tests.kube_api_stub import KubeApiStub, deployment, ingress
from tests.test_canary import latency_the_test_controls  # noqa: F401 (autouse: the judge gets the apps' declared latency)
from tests.test_live_weight import httproute

pytestmark = pytest.mark.usefixtures("shared_botocore_data")  # the moto-backed readers' clients share parsed models

RELEASES = "app-update:releases"
NS = "app-update"


@pytest.fixture(scope="module")
def apps():
    with running(v1={}, v2={}) as started:
        yield started


@pytest.fixture
def api():
    with KubeApiStub() as server:
        yield server


class PodsStack(FakeStack):
    """A `replicas` canary: each successful update points the proxy at the share its pods give, and sets the
    tracks' Deployments (all pods ready) in the API server, as the Deployment controller would."""

    def __init__(self, proxy, apps, api, replicas=4, traffic="replicas", ready=True):
        super().__init__("staging", {
            "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
            RELEASES: {"app": {"strategy": "Canary", "traffic": traffic, "replicas": replicas,
                               "stable": {"tag": "v1"}, "canary": {"tag": "v1", "weight": 0}}},
        })
        self.proxy, self.apps, self.api, self.ready, self.generation = proxy, apps, api, ready, 1
        self.up(message="initial")

    def up(self, **kwargs):
        result = super().up(**kwargs)
        info = self.outputs()["releases"].value["app"]
        self.proxy.route(self.apps[info["tags"]["stable"]].url, self.apps[info["tags"]["canary"]].url,
                         round(info["effectiveWeight"]))
        self.generation += 1
        for track, pods in info["replicas"].items():
            self.api.put("Deployment", NS, f"app-{track}", deployment(
                f"app-{track}", pods, pods if self.ready or track == "stable" else 0, generation=self.generation))
        return result


def options(tag, **overrides):
    values = {"release": "app", "tag": tag, "steps": [5, 25, 50, 100], "interval": 0.4, "rate": 400.0,
              "max_error_rate": 0.01, "max_p99": 0.5, "settle": 0.1}
    values.update(overrides)
    return CanaryOptions(**values)


def test_a_healthy_canary_of_4_replicas_is_promoted_on_the_default_steps(apps, proxy, api, capsys):
    stack = PodsStack(proxy, apps, api)
    reader = DeploymentsReader(api.client(), NS, "app", 4)
    run = run_canary(stack, options("v2", url=proxy.url, verify_timeout=30.0, live_reader=reader), clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    # 5% of 4 pods is 1 pod: a quarter of the traffic, judged as such (it used to abort: "far above the 5% weight")
    assert [(s.weight, s.effective_share) for s in run.steps] == [(5, 25.0), (25, 25.0), (50, 50.0), (100, 100.0)]
    for step in run.steps:
        assert step.verdict is None and abs(step.canary_share - step.effective_share) <= 2, step
    out = capsys.readouterr().out
    assert ("warning: step 5% is judged at 25%, the share 1 of 4 pods give (nearest exact weights: 25%; exact 5% "
            "needs a multiple of 20 pods)") in out
    assert "live: app-stable 3/3 ready, app-canary 1/1 ready: the canary gets 25% of the pods" in out
    assert re.search(r"step 1 passed: \d+ requests, canary 2\d\.\d+% \(judged at 25%, weight 5%\), errors 0.0%", out)
    assert stack.config[RELEASES]["app"]["stable"]["tag"] == "v2"


def test_a_step_no_pod_split_can_serve_is_refused_before_anything_is_written(apps, proxy, api, monkeypatch, capsys):
    from operations import stacks

    stack = PodsStack(proxy, apps, api, replicas=1)
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--steps", "5,100", "--yes",
                 "--verify-timeout", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "app-update:releases.app.replicas: must be at least 2 for a canary weight of 5" in err[0]
    assert stack.up_messages == ["initial"]
    # The steps' own check says the same with the weights that can be served (model/canary_math.step_shares).
    from model.config import load
    from operations.step_checks import step_shares

    release = load(stack.config, "staging").release("app")
    with pytest.raises(stacks.InputError) as refused:
        step_shares(release, [5, 100])
    assert str(refused.value) == (
        "release app (traffic: replicas, 1 replicas): step 5% cannot be served by 1 pod: the canary would get 0% "
        "of the traffic; weights that can: 100% (or more replicas, or a weighted traffic mode)")


def test_a_step_interval_under_three_scrape_intervals_is_refused(capsys):
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--metrics", "prometheus=http://p:9090",
                 "--scrape-interval", "1m", "--interval", "2m"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --interval 120s is shorter than 3 scrape intervals of Prometheus (60s each): a step would judge at "
        "most a round or two; use --interval 180s or more")


# -- a weight that never becomes live, per mode: the abort path with the reason ------------------------


def stuck(mode, api, aws_session):
    """A reader of `mode` whose live state stays at weight 0 whatever the stack writes."""
    if mode == "replicas":
        return DeploymentsReader(api.client(), NS, "app", 4)  # the canary's pod never becomes ready
    if mode == "nginx":
        api.put("Ingress", NS, "app-service-canary", ingress("app-service-canary", {
            "nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0"}))
        return IngressReader(api.client(), NS, "app-service", "nginx")
    if mode == "skipper":
        api.put("Ingress", NS, "app-service", ingress("app-service", {
            "zalando.org/backend-weights": '{"app-service-stable":100,"app-service-canary":0}'}))
        return IngressReader(api.client(), NS, "app-service", "skipper")
    if mode == "gateway":
        api.put("HTTPRoute", NS, "app-service", httproute(25, {"Accepted": "True", "ResolvedRefs": "False"}))
        return RouteReader(api.client(), NS, "app-service", "gateway")
    if mode == "istio":
        from tests.test_live_weight import virtual_service

        api.put("VirtualService", NS, "app-service", virtual_service(0))
        return RouteReader(api.client(), NS, "app-service", "istio")
    from operations.live_weight import LoadBalancerReader, RecordsReader
    from tests.test_live_weight import load_balancer, weighted_records

    if mode == "dns":
        weighted_records(aws_session, 100, 0)
        return RecordsReader(aws_session.client("route53"), "example.com", "app.example.com")
    address = load_balancer(aws_session, mode, 0)
    return LoadBalancerReader(aws_session.client("elbv2"), address, "app-service", mode, 80)


@pytest.mark.parametrize("mode", ["replicas", "nlb", "alb", "nginx", "gateway", "istio", "skipper", "dns"])
def test_a_weight_that_never_becomes_live_ends_in_the_abort_path(apps, proxy, api, aws, mode):
    stack = PodsStack(proxy, apps, api, ready=False)
    reader = stuck(mode, api, aws)
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25, 50], verify_timeout=6.0, live_reader=reader),
                     clock=VirtualClock())
    assert run.exit_code == 1 and run.steps == []
    assert run.aborted.startswith("the weight 25% did not become live within 6s (--verify-timeout): "), run.aborted
    app = stack.config[RELEASES]["app"]
    assert app["canary"]["weight"] == 0 and "podsForWeight" not in app["canary"] and proxy.weights["canary"] == 0


def test_the_share_judged_is_the_live_one(apps, proxy, api):
    class Says:
        def read(self, weight, share):
            return LiveWeight(True, 90.0, "the pods give 90%")

    # The plan says 25% (1 of 4 pods), the live state says 90%, and the proxy sends 25%: judged at 90%, the
    # canary gets too little.
    stack = PodsStack(proxy, apps, api)
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25], interval=30.0, verify_timeout=5.0,
                                    live_reader=Says()), clock=VirtualClock())
    assert run.exit_code == 1 and "far below the 90% effective share (weight 25% requested)" in run.aborted


