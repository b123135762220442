"""`rollout canary` end to end on loopback: real app processes, a weighted proxy as the load
balancer, and a stand-in stack whose update runs the program offline and re-routes the proxy."""

import contextlib
import json
import sys
import types

import pytest

from operations import canary_run as canary_module
from operations.canary_run import CanaryOptions, do_abort, run_canary
from operations.stacks import OperationError, RetryPolicy
from rollout.cli import main
from tests.apps import AppProcess, stop_all, wait_all
from tests.clock import VirtualClock
from tests.fake_stack import BACKENDS, SELF_MANAGED, FakeStack, answers_at_weight

RELEASES = "app-update:releases"


@pytest.fixture(scope="module")
def apps():
    started = {
        "v1": AppProcess.launch("v1"),
        "v2": AppProcess.launch("v2"),
        "v3": AppProcess.launch("v3", FAIL_RATE="0.5"),
        "v4": AppProcess.launch("v4", LATENCY_MS="150"),
    }
    wait_all(started.values())  # started together; all stopped if one does not start
    yield started
    stop_all(started.values())


# The latency each app declares (LATENCY_MS above), and what any other answer is said to take. The judge is fed these,
# not the machine's wall-clock time: a loaded machine takes seconds for an answer the app gives at once, and a test
# judging that against max_p99 fails for load, not for the canary (issue #26). What the apps answer stays real.
DECLARED_LATENCY_S = {"v4": 0.150}
FAST_ANSWER_S = 0.002


def _probing_module():
    """The module whose Prober calls probe_once (canary_run today; wherever the prober moves)."""
    return sys.modules[canary_module.Prober.__module__]


@contextlib.contextmanager
def declared_latency():
    """While it lasts, the prober's answers take the latency their app declares (real answers otherwise)."""
    module = _probing_module()
    real_probe = module.probe_once

    def probe(url, timeout):
        version, ok, _wall_clock_seconds = real_probe(url, timeout)
        return version, ok, DECLARED_LATENCY_S.get(version, FAST_ANSWER_S)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "probe_once", probe)
        yield real_probe


@pytest.fixture(autouse=True)
def latency_the_test_controls():
    with declared_latency() as real_probe:
        yield real_probe


class LoadBalancedStack(FakeStack):
    """Each successful update points the proxy at what the stack now runs, at its effective weight."""

    def __init__(self, proxy, apps, follow=True, backend=SELF_MANAGED):
        super().__init__("staging", {
            "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
            RELEASES: {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4,
                               "stable": {"tag": "v1"}, "canary": {"tag": "v1", "weight": 0}}},
        }, backend=backend)
        self.proxy, self.apps, self.follow = proxy, apps, follow
        self.up(message="initial")

    def up(self, **kwargs):
        result = super().up(**kwargs)
        if self.follow or len(self.summaries) == 1:
            info = self.outputs()["releases"].value["app"]
            self.proxy.route(self.apps[info["tags"]["stable"]].url, self.apps[info["tags"]["canary"]].url,
                             round(info["effectiveWeight"]))
        return result


def options(tag, **overrides):
    # Virtual time (tests/clock.py): 0.4 s at 400 probes/s is 160 answers a step; the load balancer
    # stand-in applies a weight at once, so the share is judged after 0.1 s (40 answers).
    values = {"release": "app", "tag": tag, "steps": [5, 25, 50, 100], "interval": 0.4, "rate": 400.0,
              "max_error_rate": 0.01, "max_p99": 0.5, "settle": 0.1}
    values.update(overrides)
    url = values.pop("url", None)
    return CanaryOptions(url=url, **values)


def test_a_good_version_goes_through_every_step_and_is_promoted(apps, proxy, tmp_path, capsys):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v2", url=proxy.url), log_path=tmp_path / "canary.log", clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    assert [s.weight for s in run.steps] == [5, 25, 50, 100]
    for step in run.steps:
        assert step.verdict is None and step.requests >= 50
        assert abs(step.canary_share - step.weight) <= 2, step  # observed shares within 2 points
        assert step.error_rate == 0
    app = stack.config[RELEASES]["app"]
    assert app["stable"]["tag"] == "v2" and app["canary"]["weight"] == 0
    # Each step: canary pods first (skipped where they are already right), then the weight.
    assert stack.up_messages[1:] == [
        "canary app v2: weight 5%: canary pods for 5% first", "canary app v2: weight 5%",
        "canary app v2: weight 25%",  # 1 canary pod serves 5% and 25% of 4 stable pods alike
        "canary app v2: weight 50%: canary pods for 50% first", "canary app v2: weight 50%",
        "canary app v2: weight 100%: canary pods for 100% first", "canary app v2: weight 100%",
        "promote app v2: stable track",
        "promote app v2: traffic to the stable track: weight first, canary pods kept",
        "promote app v2: traffic to the stable track"]
    assert all(result == "succeeded" for _, _, result in stack.applied)
    events = [json.loads(line)["event"] for line in (tmp_path / "canary.log").read_text().splitlines()]
    assert events.count("step") == 4 and "update" in events
    out = capsys.readouterr().out
    assert "step 1/4: weight 5%" in out and "promoted: app runs v2" in out


def test_a_good_version_is_promoted_however_slowly_the_machine_answers(apps, proxy, monkeypatch):
    """A loaded machine (here: every probe takes 1.3 s of wall-clock time, as in the flaky run of issue #26) does
    not make a good canary slow: the judge sees the app's own latency."""
    module = _probing_module()
    real_time = module.time
    loaded = {"now": 0.0}

    def perf_counter():
        loaded["now"] += 1.3  # each reading 1.3 s after the one before
        return loaded["now"]

    monkeypatch.setattr(module, "time", types.SimpleNamespace(perf_counter=perf_counter, monotonic=real_time.monotonic,
                                                              sleep=real_time.sleep))
    stack = LoadBalancedStack(proxy, apps)
    # 40 answers a step (0.4 s at 100/s): the p99 is of the answers judged, however many.
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25, 100], rate=100.0), clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    assert all(step.p99_ms is not None and step.p99_ms < 500 for step in run.steps)


def test_a_failing_version_is_stopped_early_in_the_first_step(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v3", url=proxy.url, interval=30.0, rate=300.0), clock=VirtualClock())
    assert run.exit_code == 1
    assert len(run.steps) == 1
    step = run.steps[0]
    assert step.weight == 5 and "error rate" in step.verdict
    assert step.elapsed < 10  # the interval was 30 s: stopped as soon as the failure was clear
    assert step.canary_requests < 100
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0
    assert proxy.weights["canary"] == 0  # traffic back at 0%
    assert stack.up_messages[-2:] == [
        "canary app v3 aborted at step 1/4 (weight 5%): " + run.aborted + ": weight first, canary pods kept",
        "canary app v3 aborted at step 1/4 (weight 5%): " + run.aborted]
    assert "canary error rate" in run.aborted


def test_a_slow_version_is_stopped_on_p99(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v4", url=proxy.url, steps=[50], interval=30.0, max_p99=0.05), clock=VirtualClock())
    assert run.exit_code == 1 and "p99" in run.aborted
    assert run.steps[0].elapsed < 10


def test_traffic_that_never_reaches_the_canary_aborts(apps, proxy):
    stack = LoadBalancedStack(proxy, apps, follow=False)  # the load balancer ignores the weight
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25], interval=30.0), clock=VirtualClock())
    assert run.exit_code == 1 and "not reaching it" in run.aborted
    assert run.steps[0].elapsed < 10


def test_ctrl_c_sends_traffic_back_to_stable(apps, proxy, monkeypatch):
    from operations import canary_run

    def interrupted(self, duration, on_tick):
        raise KeyboardInterrupt

    monkeypatch.setattr(canary_run.Prober, "run", interrupted)
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25, 50]), clock=VirtualClock())
    assert run.exit_code == 1 and run.aborted == "interrupted by the operator"
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0 and proxy.weights["canary"] == 0


def test_probe_address_comes_from_the_stack_outputs(apps, proxy):
    from operations.canary_run import release_url

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
    ["canary", "staging", "--release", "app", "--tag", "v2", "--rate", "-1"],
    ["canary", "staging", "--release", "app", "--tag", "v2", "--metrics", "graphite=http://x"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Failure paths: the stand-in raises what the real Stack raises (CommandError, ConcurrentUpdateError,
# KeyboardInterrupt); whatever fails, the last update that ran leaves no traffic on the canary.
# ---------------------------------------------------------------------------------------------


def fast(tag="v2", **overrides):
    return options(tag, steps=[5, 25, 50], interval=0.25, rate=100.0, **overrides)


def last_applied(stack):
    message, config, result = stack.applied[-1]
    return result, config[RELEASES]["app"]


def assert_ends_safe(stack, proxy):
    """The last update that ran succeeded and left the canary with no weight and no held pods."""
    result, app = last_applied(stack)
    assert result == "succeeded", stack.applied[-1]
    assert app["canary"]["weight"] == 0 and "podsForWeight" not in app["canary"]
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0
    assert "podsForWeight" not in stack.config[RELEASES]["app"]["canary"]
    assert proxy.weights["canary"] == 0


class ScriptedStack(LoadBalancedStack):
    """Runs `hooks[n]` before its n-th update of the run (0 = the first after the initial deploy)."""

    def __init__(self, proxy, apps, hooks):
        self.hooks, self.calls = {}, -1  # the initial deploy is call -1
        super().__init__(proxy, apps)
        self.hooks = hooks

    def up(self, **kwargs):
        hook = self.hooks.get(self.calls)
        self.calls += 1
        if hook:
            hook(self)
        return super().up(**kwargs)


def script(*outcomes):
    def hook(stack):
        stack.script = list(outcomes)
    return hook


@pytest.mark.parametrize("at,step", [(0, 1), (1, 1), (2, 2), (4, 3)],
                         ids=["step1-pods", "step1-weight", "step2-weight", "step3-weight"])
def test_a_failed_step_update_ends_in_the_abort_path(apps, proxy, at, step, capsys):
    stack = ScriptedStack(proxy, apps, {at: script("fail")})
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 1
    assert run.aborted.startswith("the stack update failed: pulumi: ")
    out = capsys.readouterr().out
    assert f"ABORT at step {step}/3" in out and "failed to fully initialize" in out
    assert "traffic to the canary is back at 0%" in out
    assert_ends_safe(stack, proxy)


def test_ctrl_c_during_an_update_sends_traffic_back(apps, proxy, capsys):
    stack = ScriptedStack(proxy, apps, {3: script("interrupt")})  # step 3's first update (canary pods)
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 1 and run.aborted == "interrupted by the operator"
    assert_ends_safe(stack, proxy)
    assert "ABORT at step 3/3 (weight 50%): interrupted by the operator" in capsys.readouterr().out


def test_a_lock_that_is_released_in_time_is_waited_for(apps, proxy, capsys):
    def lock(stack):
        stack.locked_by = "ci"

    stack = ScriptedStack(proxy, apps, {2: lock})
    def sleep(seconds):
        if len(clock.slept) == 3:
            stack.locked_by = None  # the other update finishes

    clock = VirtualClock(sleep)
    run = run_canary(stack, fast(url=proxy.url), clock=clock)
    assert run.exit_code == 0, run.aborted
    assert clock.slept == [5.0, 5.0, 5.0]
    assert "is locked by another update; waiting" in capsys.readouterr().out


def test_a_stack_that_stays_locked_leaves_weight_0_in_the_config_and_says_what_is_live(apps, proxy, capsys):
    def lock(stack):
        stack.locked_by = "ci"

    stack = ScriptedStack(proxy, apps, {2: lock})
    run = run_canary(stack, fast(url=proxy.url, retry=RetryPolicy(lock_wait=30, pause=10)), clock=VirtualClock())
    assert run.exit_code == 1 and "stayed locked" in run.aborted
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("NOT RESTORED"))
    # One line: what is live, what the config holds, the command that finishes the job.
    assert "live: stable v1, canary v2 at 5% (last successful update)" in line
    assert "config holds: stable v1, canary v2 at 0% with pods for 25%" in line
    assert line.endswith("finish with: python -m rollout abort staging --release app --yes")
    # The next person's `pulumi up` ships weight 0, not the canary.
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0
    stack.locked_by = None
    assert do_abort(stack, "app", True, None, out=None, clock=VirtualClock()) == 0
    assert_ends_safe(stack, proxy)


@pytest.mark.parametrize("outcomes", [("fail", "fail", "fail"), ("interrupt",)], ids=["fails", "ctrl-c"])
def test_a_failed_promotion_puts_the_stable_track_back_and_traffic_on_it(apps, proxy, outcomes, capsys):
    # Updates of the run: 0,1 step 5%; 2 step 25%; 3,4 step 50%; 5 the promotion's stable track.
    stack = ScriptedStack(proxy, apps, {5: script(*outcomes)})
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 1 and run.aborted.startswith("the promotion failed")
    assert_ends_safe(stack, proxy)
    result, app = last_applied(stack)
    assert app["stable"]["tag"] == "v1"  # the tag the stable track ran before, not a half-rolled v2
    assert "ABORT at the promotion" in capsys.readouterr().out


def test_a_promotion_that_fails_once_is_retried_and_completes(apps, proxy):
    stack = ScriptedStack(proxy, apps, {5: script("fail")})
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    result, app = last_applied(stack)
    assert result == "succeeded" and app["stable"]["tag"] == "v2" and app["canary"]["weight"] == 0
    assert stack.up_messages.count("promote app v2: stable track") == 2


def test_a_backend_that_refuses_everything_is_reported_in_one_line(apps, proxy, capsys):
    def down(stack):
        stack.backend_down = True

    stack = ScriptedStack(proxy, apps, {2: down})
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 1 and "failed to load checkpoint" in run.aborted
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("NOT RESTORED"))
    assert "live: stable v1, canary v2 at 5%" in line and "config holds:" in line
    assert line.endswith("finish with: python -m rollout abort staging --release app --yes")


def test_a_canary_already_carrying_traffic_is_not_started_again(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 25}
    stack.up(message="by hand")
    with pytest.raises(OperationError, match="already carries traffic.*rollout abort staging --release app"):
        run_canary(stack, fast(url=proxy.url))


# ---------------------------------------------------------------------------------------------
# rollout abort
# ---------------------------------------------------------------------------------------------


def test_abort_sends_a_canary_left_mid_way_back_to_stable(apps, proxy, capsys):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="canary app v2: weight 50%")  # then the laptop closed
    assert proxy.weights["canary"] == 50
    assert do_abort(stack, "app", False, lambda prompt, expected: True, clock=VirtualClock()) == 0
    assert_ends_safe(stack, proxy)
    assert stack.up_messages[-2:] == ["abort canary app: weight first, canary pods kept", "abort canary app"]
    assert "back at 0%" in capsys.readouterr().out


def test_abort_asks_and_does_nothing_without_a_yes(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="by hand")
    asked = []
    assert do_abort(stack, "app", False, lambda prompt, expected: asked.append(expected) or False) == 1
    assert asked == [None] and stack.config[RELEASES]["app"]["canary"]["weight"] == 50


def test_abort_with_nothing_to_do_changes_nothing(apps, proxy, capsys):
    stack = LoadBalancedStack(proxy, apps)
    assert do_abort(stack, "app", True, None) == 0
    assert stack.up_messages == ["initial"]
    assert "nothing to abort" in capsys.readouterr().out


def test_abort_finishes_a_step_left_half_way_even_when_the_config_says_0(apps, proxy):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 0, "podsForWeight": 50}
    stack.up(message="half a step")
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 0
    assert_ends_safe(stack, proxy)


def test_abort_that_cannot_update_says_what_is_live(apps, proxy, capsys):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="by hand")
    stack.script = ["fail"] * 3
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("NOT RESTORED (pulumi: ") and "live: stable v1, canary v2 at 50%" in line


@pytest.mark.parametrize("backend", BACKENDS)
def test_abort_and_status_through_the_command_line(apps, proxy, monkeypatch, capsys, backend):
    from operations import stacks

    stack = LoadBalancedStack(proxy, apps, backend=backend)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 25}
    stack.up(message="canary app v2: weight 25%")
    stack.up(message="nothing changed")
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    assert main(["status", "staging"]) == 0
    out = capsys.readouterr().out
    assert ("! canary v2 carries 25% of traffic since revision 2 (2026-11-01 11:00:00, "
            "'canary app v2: weight 25%'); send it back with: python -m rollout abort staging --release app") in out
    assert main(["abort", "staging", "--release", "app"]) == 1  # no terminal: nothing confirmed
    assert main(["abort", "staging", "--release", "app", "--yes"]) == 0
    capsys.readouterr()
    assert main(["status", "staging", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["releases"]["app"]["flags"] == []


# ---------------------------------------------------------------------------------------------
# Order of a weight step, in every traffic mode
# ---------------------------------------------------------------------------------------------

# Where each mode keeps the split: a change there moves traffic.
TRAFFIC_FIELD = {
    "replicas": ("Deployment/app-stable", "spec.replicas"),
    "nlb": ("Service/app", "metadata.annotations"),
    "alb": ("Ingress/app", "metadata.annotations"),
    "nginx": ("Ingress/app-canary", "metadata.annotations"),
}


def mode_stack(mode):
    stack = FakeStack("staging", {
        "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
        RELEASES: {"app": {"strategy": "Canary", "traffic": mode, "replicas": 20 if mode == "replicas" else 4,
                           "maxSurge": 1, "maxUnavailable": 1, "stable": {"tag": "v1"},
                           "canary": {"tag": "v1", "weight": 0}}},
    })
    stack.up(message="initial")
    return stack


def changed(stack, update, name, field):
    return any(c.name == name and field in c.fields for c in stack.changes[update])


def pods(config):
    from operations.stacks import check_config

    checked = check_config("staging", {k: v for k, v in config.items()}, config[RELEASES])
    return checked.release("app").replica_counts()


@pytest.mark.parametrize("mode", sorted(TRAFFIC_FIELD))
def test_raising_a_weight_readies_canary_pods_before_traffic_moves(mode, monkeypatch):
    from operations import canary_run

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    stack = mode_stack(mode)
    assert run_canary(stack, options("v2", steps=[50], url="http://127.0.0.1:9/"), clock=VirtualClock()).exit_code == 0
    traffic = TRAFFIC_FIELD[mode]
    # Update 1: the canary Deployment scales up (awaited ready); the split does not move.
    assert changed(stack, 1, "Deployment/app-canary", "spec.replicas") and not changed(stack, 1, *traffic)
    # Update 2: the split moves; the canary's pods stay as they are.
    assert changed(stack, 2, *traffic) and not changed(stack, 2, "Deployment/app-canary", "spec.replicas")
    # Within one update too, the split waits for the canary Deployment.
    split = next(c for c in stack.changes[2] if c.name == traffic[0])
    assert "Deployment/app-canary" in split.depends_on
    before, during, after = (pods(stack.applied[i][1]) for i in (0, 1, 2))
    assert during["canary"] == after["canary"] > before["canary"]
    assert during["stable"] == before["stable"] >= after["stable"]
    if mode == "replicas":  # ready pods never fall below replicas - maxUnavailable (20 - 1)
        assert min(sum(p.values()) for p in (before, during, after)) >= 19


@pytest.mark.parametrize("mode", sorted(set(TRAFFIC_FIELD) - {"replicas"}))
def test_lowering_a_weight_moves_traffic_before_canary_pods_go(mode):
    stack = mode_stack(mode)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="at 50%")
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 0
    traffic = TRAFFIC_FIELD[mode]
    # Update 1 (index 2): the split moves back; the canary keeps its pods.
    assert changed(stack, 2, *traffic) and not changed(stack, 2, "Deployment/app-canary", "spec.replicas")
    # Update 2: the canary's pods go; the split stays.
    assert changed(stack, 3, "Deployment/app-canary", "spec.replicas") and not changed(stack, 3, *traffic)
    before, during, after = (pods(stack.applied[i][1]) for i in (1, 2, 3))
    assert during["canary"] == before["canary"] > after["canary"] == 0
    assert during["stable"] == after["stable"] >= before["stable"]


def test_a_replicas_mode_abort_drops_the_canarys_share_in_its_first_update(capsys):
    # In `traffic: replicas` the share follows the pods: "weight 0, pods kept" would leave it where it
    # was (4 replicas at 50%: 33.33% effective). The abort's first update scales the canary down.
    stack = FakeStack("staging", {
        "app-update:cluster": {"mode": "kubeconfig"},
        RELEASES: {"app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"},
                           "canary": {"tag": "v2", "weight": 50}}}})
    stack.up(message="at 50%")
    assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 50
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 0
    first = stack.applied[1][1][RELEASES]["app"]
    assert pods(stack.applied[1][1])["canary"] == 0 and first["canary"]["weight"] == 0
    assert changed(stack, 1, "Deployment/app-canary", "spec.replicas")
    assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0
    assert len(stack.applied) == 2  # one update: traffic and pods leave together
    assert "canary pods scaled to 0 with the weight" in capsys.readouterr().out


def test_not_restored_reports_the_effective_share_from_the_outputs(capsys):
    stack = FakeStack("staging", {
        "app-update:cluster": {"mode": "kubeconfig"},
        RELEASES: {"app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"},
                           "canary": {"tag": "v2", "weight": 50}}}})
    stack.up(message="at 50%")
    stack.script = ["fail-early"] * 3
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("NOT RESTORED") and "effective share 50% (stack outputs)" in line


@pytest.mark.parametrize("backend", BACKENDS)
def test_abort_after_a_failed_update_converges_the_stack_even_at_weight_0(apps, proxy, backend, capsys):
    stack = LoadBalancedStack(proxy, apps, backend=backend)
    for n in range(11):  # more than the CLI's default page of history
        stack.up(message=f"nothing changed {n}")
    stack.config[RELEASES]["app"]["replicas"] = 5
    stack.script = ["fail"]
    with pytest.raises(Exception, match="code: 255"):
        stack.up(message="a failed update by hand")
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 0
    assert "; the last update (revision 13) failed" in capsys.readouterr().out
    assert stack.up_messages[-1] == "abort canary app" and stack.applied[-1][2] == "succeeded"


def test_no_probes_and_no_metrics_is_refused(capsys):
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--rate", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --rate 0 sends no probes: then judge from --metrics prometheus=URL"


def test_a_share_far_from_the_weight_waits_for_the_settle_phase(apps, proxy):
    # The load balancer ignores the weight; with a settle phase longer than the step, the share
    # tests never count, but a step that heard no canary answer does not pass: "canary not reached".
    stack = LoadBalancedStack(proxy, apps, follow=False)
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25], interval=0.3, settle=10.0), clock=VirtualClock())
    assert run.exit_code == 1 and run.aborted.startswith("canary not reached: 0 canary answers of "), run.aborted
    assert "fewer than the 5 a step needs" in run.aborted
    stack = LoadBalancedStack(proxy, apps, follow=False)  # at 100/s the settle phase is 50 answers, then judged
    run = run_canary(stack, options("v2", url=proxy.url, steps=[25], interval=30.0, settle=0.5, rate=100.0),
                     clock=VirtualClock())
    assert run.exit_code == 1 and "not reaching it" in run.aborted and "settle" in run.aborted


# ---------------------------------------------------------------------------------------------
# Review findings: each failure still ends in the abort path, with what is live said
# ---------------------------------------------------------------------------------------------


def test_a_step_with_no_answer_judged_does_not_pass(apps, proxy, monkeypatch):
    from operations import canary_run

    monkeypatch.setattr(canary_run.Prober, "run", lambda self, duration, on_tick: None)
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 1 and run.aborted.startswith("no answer was judged in the step")
    assert_ends_safe(stack, proxy)


def test_prometheus_failing_mid_step_ends_the_step_and_aborts():
    import threading

    from model.judge import Judge
    from operations.canary_run import Prober
    from operations.prometheus import PrometheusError

    class Failing:
        rounds = 0

        def poll(self):
            raise PrometheusError("Prometheus at http://127.0.0.1:9 did not answer: connection refused")

    prober = Prober(None, Judge("v2", 25, 0.01, 0.5, settling=True), 0.0, 1, 1.0, rounds=Failing())
    done = threading.Event()
    with pytest.raises(PrometheusError, match="did not answer"):
        try:
            prober.run(3600.0, lambda elapsed: None)
        finally:
            done.set()
    assert done.is_set()


def test_an_unreachable_prometheus_aborts_the_canary(apps, proxy, capsys):
    stack = LoadBalancedStack(proxy, apps)
    run = run_canary(stack, fast(url=proxy.url, metrics="http://127.0.0.1:9"), clock=VirtualClock())
    assert run.exit_code == 1 and "127.0.0.1:9" in run.aborted
    assert_ends_safe(stack, proxy)


def test_a_tag_the_config_cannot_take_is_the_inputs_fault_and_changes_nothing(apps, proxy, monkeypatch, capsys):
    from operations import stacks as stack_operations

    stack = LoadBalancedStack(proxy, apps)
    monkeypatch.setattr(stack_operations, "open_stack", lambda name, cwd: stack)
    assert main(["canary", "staging", "--release", "app", "--tag", "v2:bad", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --tag 'v2:bad' or --steps cannot go into staging's config: ")
    assert stack.up_messages == ["initial"] and stack.config[RELEASES]["app"]["canary"]["tag"] == "v1"


def test_a_promotion_that_cannot_be_undone_writes_weight_0_first_and_says_what_is_live(apps, proxy, capsys):
    stack = ScriptedStack(proxy, apps, {5: script(*["fail"] * 12)})
    run = run_canary(stack, fast(url=proxy.url), clock=VirtualClock())
    assert run.exit_code == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("NOT RESTORED"))
    assert "config holds: stable v1, canary v2 at 0% with pods for 50%" in line
    assert stack.config[RELEASES]["app"]["canary"]["weight"] == 0  # the next `pulumi up` sends traffic back


def test_ingress_fronted_modes_are_probed_on_port_80():
    from operations.canary_run import release_url

    class Outputs:
        name = "staging"

        def outputs(self):
            return {"releases": {"app": {"address": "lb.example"}}}

    releases = {"app": {"traffic": "alb", "servicePort": 8080}}
    assert release_url(Outputs(), "app", releases) == "http://lb.example/"
    releases["app"]["traffic"] = "nlb"
    assert release_url(Outputs(), "app", releases) == "http://lb.example:8080/"


def test_abort_with_a_backend_gone_says_what_is_live(apps, proxy, capsys):
    stack = LoadBalancedStack(proxy, apps)
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="by hand")
    real_up = stack.up

    def down_before_update(**kwargs):
        stack.backend_down = True
        return real_up(**kwargs)

    stack.up = down_before_update
    assert do_abort(stack, "app", True, None, clock=VirtualClock()) == 1
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("NOT RESTORED (pulumi: failed to load checkpoint") and "live: stable v1, canary v2 at 50%" in line
