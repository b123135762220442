"""`rollout canary --match-only` end to end on loopback: real app processes behind the test proxy, which routes by
the nginx annotations each update of the stand-in stack renders (header, then cookie, then weight). The phase's
probes send the match; every matched answer must come from the canary; a failing canary is rolled back before any
weighted step; the inputs the phase cannot run with are refused before anything is written."""

from __future__ import annotations

import copy

import pytest

from model.config import split_namespaces, validate
from operations import match_phase
from operations.canary_run import CanaryOptions, run_canary
from operations.stacks import InputError
from tests.apps import running
from tests.clock import VirtualClock
from tests.fake_stack import FakeStack

RELEASES = "app-update:releases"
MATCH = {"header": {"name": "X-Canary", "value": "always"}}


@pytest.fixture(scope="module")
def apps():
    with running(v1={}, v2={}, v3={"FAIL_RATE": "0.5"}) as started:
        yield started


class NginxStack(FakeStack):
    """Each successful update routes the proxy by the Ingress annotations it rendered; `follow=False`: the router
    never sees the match route (a controller that ignores it)."""

    def __init__(self, proxy, apps, match=MATCH, follow=True):
        canary = {"tag": "v1", "weight": 0}
        if match is not None:
            canary["match"] = copy.deepcopy(match)
        super().__init__("staging", {"app-update:cluster": {"mode": "kubeconfig"}, RELEASES: {"app": {
            "strategy": "Canary", "traffic": "nginx", "replicas": 4, "stable": {"tag": "v1"}, "canary": canary}}})
        self.proxy, self.apps, self.follow = proxy, apps, follow
        self.up(message="initial")

    def up(self, **kwargs):
        result = super().up(**kwargs)
        tags = self.outputs()["releases"].value["app"]["tags"]
        canary = dict(self._live_objects["Ingress/app-canary"]["metadata"]["annotations"])
        if not self.follow:
            canary = {k: v for k, v in canary.items() if "canary-by-" not in k}
        stable = self._live_objects["Ingress/app"]["metadata"].get("annotations") or {}
        self.proxy.route_nginx(self.apps[tags["stable"]].url, self.apps[tags["canary"]].url, canary, stable)
        return result


def options(tag, **overrides):
    values = {"release": "app", "tag": tag, "steps": [50, 100], "interval": 0.4, "rate": 400.0,
              "max_error_rate": 0.01, "max_p99": 5.0, "settle": 0.1, "match_only": True}
    values.update(overrides)
    return CanaryOptions(**values)


def test_a_good_version_passes_the_match_only_phase_then_the_weighted_steps(apps, proxy, tmp_path):
    stack = NginxStack(proxy, apps)
    run = run_canary(stack, options("v2", url=proxy.url), log_path=tmp_path / "c.log", clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    phase, *steps = run.steps
    assert (phase.step, phase.weight, phase.canary_share, phase.verdict) == (0, 0, 100.0, None)
    assert phase.requests >= 50
    assert [s.weight for s in steps] == [50, 100]
    assert stack.up_messages[1] == "canary app v2: match-only"
    assert stack.config[RELEASES]["app"]["stable"]["tag"] == "v2"
    assert "the match-only phase: weight 0%, canary v2 for requests with X-Canary: always" in (
        tmp_path / "c.log").read_text()


def test_with_no_steps_the_run_promotes_after_the_match_only_phase(apps, proxy, tmp_path):
    stack = NginxStack(proxy, apps, match={"cookie": "canary"})
    run = run_canary(stack, options("v2", url=proxy.url, steps=[]), log_path=tmp_path / "c.log", clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    assert [s.step for s in run.steps] == [0]
    assert not [m for m in stack.up_messages if "weight" in m and "%" in m and "promote" not in m]
    assert stack.config[RELEASES]["app"]["stable"]["tag"] == "v2"


def test_a_failing_version_is_rolled_back_before_any_weighted_step(apps, proxy, tmp_path):
    stack = NginxStack(proxy, apps)
    run = run_canary(stack, options("v3", url=proxy.url), log_path=tmp_path / "c.log", clock=VirtualClock())
    assert run.exit_code == 1
    assert "match-only phase" in (tmp_path / "c.log").read_text().split("ABORT at ", 1)[1].splitlines()[0]
    assert [s.step for s in run.steps] == [0] and run.steps[0].verdict
    assert not any("weight 50%" in m for m in stack.up_messages)
    app = stack.live[RELEASES]["app"]
    assert app["stable"]["tag"] == "v1" and app["canary"].get("weight", 0) == 0
    # After the abort no request reaches v3, matched or not.
    assert stack.outputs()["releases"].value["app"]["tags"]["canary"] != "v3"


def test_a_route_the_router_does_not_apply_fails_the_phase(apps, proxy, tmp_path):
    stack = NginxStack(proxy, apps, follow=False)
    run = run_canary(stack, options("v2", url=proxy.url), log_path=tmp_path / "c.log", clock=VirtualClock())
    assert run.exit_code == 1
    assert run.steps[0].canary_share < 100 and run.steps[0].verdict
    assert stack.live[RELEASES]["app"]["stable"]["tag"] == "v1"


def test_the_phase_refuses_what_it_cannot_probe_before_any_write(apps, proxy, tmp_path):
    stack = NginxStack(proxy, apps, match=None)
    with pytest.raises(InputError, match="has no canary.match"):
        run_canary(stack, options("v2", url=proxy.url), log_path=tmp_path / "c.log", clock=VirtualClock())
    assert stack.up_messages == ["initial"]
    stack = NginxStack(proxy, apps, match={"header": {"name": "X-User", "regex": "^(alice|bob)$"}})
    with pytest.raises(InputError, match="needs --match-value"):
        run_canary(stack, options("v2", url=proxy.url), log_path=tmp_path / "c.log", clock=VirtualClock())
    with pytest.raises(InputError, match="does not match"):
        run_canary(stack, options("v2", url=proxy.url, match_value="carol"), log_path=tmp_path / "c.log",
                   clock=VirtualClock())
    assert stack.up_messages == ["initial"]
    run = run_canary(stack, options("v2", url=proxy.url, match_value="alice", steps=[]), log_path=tmp_path / "c.log",
                     clock=VirtualClock())
    assert run.exit_code == 0, run.aborted


def release_with(match):
    from tests.conftest import settings_with

    values = settings_with({"app": {"strategy": "Canary", "traffic": "nginx", "replicas": 2, "stable": {"tag": "v1"},
                                    "canary": {"tag": "v2", "weight": 0, "match": match}}})
    own, other = split_namespaces(values)
    return validate(own, "test", other).release("app")


def test_the_probes_send_the_exact_header_else_the_given_value_else_the_cookie():
    both = {"header": {"name": "X-Canary", "value": "always"}, "cookie": "c"}
    assert match_phase.probe_headers(release_with(both).match) == {"X-Canary": "always"}
    regex = release_with({"header": {"name": "X-User", "regex": "a.*"}, "cookie": "c"}).match
    assert match_phase.probe_headers(regex, "alice") == {"X-User": "alice"}
    assert match_phase.probe_headers(regex) == {"Cookie": "c=always"}
    assert match_phase.refusal(release_with(both), None, 0) == (
        "--match-only: the phase is judged on probes that send the match: give --rate above 0")


def test_rollout_abort_takes_the_matched_requests_off_a_dark_canary(apps, proxy, tmp_path):
    import io

    from operations.canary_run import do_abort

    stack = NginxStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"]["tag"] = "v2"  # a dark canary: weight 0, matched requests on v2
    stack.up(message="dark canary")
    assert proxy.track_for({"X-Canary": "always"})[0] == "canary"
    assert do_abort(stack, "app", True, lambda *a: True, out=io.StringIO()) == 0
    app = stack.live[RELEASES]["app"]
    assert app["canary"]["tag"] == "v1" and app["canary"].get("weight", 0) == 0
    assert stack.outputs()["releases"].value["app"]["tags"] == {"stable": "v1", "canary": "v1"}


def test_the_judge_says_how_sticky_sessions_skew_the_users_share():
    from tests.conftest import settings_with

    values = settings_with({"app": {"strategy": "Canary", "traffic": "nginx", "replicas": 2, "stable": {"tag": "v1"},
                                    "canary": {"tag": "v2", "weight": 5, "sticky": True}}})
    own, other = split_namespaces(values)
    release = validate(own, "test", other).release("app")
    assert "--share-design-effect" in match_phase.sticky_warning(release, True, None)
    assert match_phase.sticky_warning(release, False, None) is None  # probes: each one a new client
    assert match_phase.sticky_warning(release, True, 40.0) is None


def test_the_command_line_refuses_a_match_only_run_the_release_cannot_take(capsys, tmp_path):
    from rollout.cli import main

    # Pulumi.staging.yaml's app has no canary.match: the input's fault, before any workspace opens.
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--match-only", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --match-only: release app has no canary.match"), err
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--steps", "", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --steps is empty: give weights, or --match-only for a run judged on matched requests alone"]
