"""`rollout bluegreen` and undo on loopback: real app processes behind two weighted proxies (the active and
the preview Service's load balancers), a stand-in stack whose updates run the program offline and move the
proxies to what went live, and a virtual clock (tests/clock.py): no test sleeps.

Every failure path before or during the switch must end with the active Service on the old color; what
went live is the stand-in's `live` (a failed or interrupted update moved resources part of the way, the
worst case), not the outputs of the last successful update."""

from __future__ import annotations

import pytest

from operations import bluegreen_run, canary_run, stacks
from operations import lease as leases
from operations.bluegreen_run import BlueGreenOptions, run_bluegreen, undo_bluegreen
from operations.record_store import FileRecordStore
from operations.stacks import RetryPolicy
from rollout.cli import main
from tests.apps import running
from tests.clock import VirtualClock
from tests.fake_stack import FakeStack
from tests.prometheus_server import Background, PrometheusServer, in_ci, prometheus_binary
from tests.weighted_proxy import WeightedProxy

RELEASES = "app-update:releases"
NOWHERE = "http://127.0.0.1:9/"  # a preview Service with no pods: connections refused (502 from the proxy)
CONFIG = {"app-update:cluster": {"mode": "kubeconfig"},
          RELEASES: {"app": {"strategy": "BlueGreen", "replicas": 4, "active": "blue", "blue": {"tag": "v1"}}}}


@pytest.fixture(scope="module")
def apps():
    with running(v1={}, v2={}, v3={"FAIL_RATE": "0.5"}) as started:
        yield started


@pytest.fixture(autouse=True)
def fast_answers(monkeypatch):
    """The judge sees the app's own latency (none), not a loaded machine's (as tests/test_canary.py does)."""
    real = canary_run.probe_once

    def probe(url, timeout, headers=None):
        version, ok, _seconds = real(url, timeout)
        return version, ok, 0.002

    monkeypatch.setattr(canary_run, "probe_once", probe)


@pytest.fixture
def preview_proxy():
    with WeightedProxy() as server:
        yield server


class SwitchedStack(FakeStack):
    """After every update that ran (failed ones too: what moved is live), the active proxy sends to the app
    of the active color's tag and the preview proxy to the idle color's, or nowhere when it has no pods."""

    def __init__(self, proxy, preview, apps, config=CONFIG, follow_preview=True):
        super().__init__("staging", config)
        self.proxy, self.preview, self.apps, self.follow_preview = proxy, preview, apps, follow_preview
        self.up(message="initial")

    def up(self, **kwargs):
        try:
            return super().up(**kwargs)
        finally:
            self.route()

    def route(self):
        app = (self.live or self.config)[RELEASES]["app"]
        active = app["active"]
        idle = bluegreen_run.other(active)
        self.proxy.route(self.apps[app[active]["tag"]].url, None, 0)
        color = app.get(idle) or {}
        up = color.get("tag") and color.get("replicas") != 0
        if self.follow_preview or not self.summaries[1:]:
            self.preview.route(self.apps[color["tag"]].url if up else NOWHERE, None, 0)


class ScriptedStack(SwitchedStack):
    """Runs `hooks[n]` before its n-th update of the run (0: the preview, 1: the switch, 2: ...)."""

    def __init__(self, *args, hooks, **kwargs):
        self.hooks, self.calls = {}, -1
        super().__init__(*args, **kwargs)
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


def options(tag, **overrides):
    # Virtual time (tests/clock.py): 0.4 s at 100 probes/s is 40 real answers through the preview proxy, 30 of them
    # after the 0.1 s settle phase (the share tests judge from 20). A test about the judging's evidence asks for more.
    values = {"release": "app", "tag": tag, "interval": 0.4, "rate": 100.0, "settle": 0.1, "scale_down_delay": 30.0}
    values.update(overrides)
    return BlueGreenOptions(**values)


def live_app(stack):
    return stack.live[RELEASES]["app"]


def outputs(stack):
    return stack.outputs()["releases"].value["app"]


def assert_on_the_old_color(stack, proxy, apps):
    """The last update that ran succeeded, and left blue (v1) active and green at 0, in what is live, in the
    config and at the load balancer."""
    message, config, result = stack.applied[-1]
    assert result == "succeeded", stack.applied[-1]
    for app in (config[RELEASES]["app"], stack.config[RELEASES]["app"]):
        assert app["active"] == "blue" and app["blue"] == {"tag": "v1"} and app["green"]["replicas"] == 0
    assert outputs(stack)["activeColor"] == "blue" and outputs(stack)["replicas"]["green"] == 0
    assert proxy.backends["stable"] == apps["v1"].url


def services_only(changes):
    """The Kubernetes objects an update changed are Services, and only their selectors."""
    return bool(changes) and all(c.name.startswith("Service/") and c.action == "update"
                                 and all(f.startswith("spec.selector") for f in c.fields) for c in changes)


def test_a_good_version_is_judged_on_the_preview_switched_and_the_old_color_scaled_down(
        apps, proxy, preview_proxy, tmp_path, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    clock = VirtualClock()
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, rate=400.0), clock=clock,
                        log_path=tmp_path / "bg.log")
    assert run.exit_code == 0, run.aborted
    assert run.switched and run.judged.verdict is None and run.judged.canary_share == 100.0
    assert run.judged.requests >= 50 and run.judged.error_rate == 0
    assert stack.up_messages[1:] == ["bluegreen app v2: green up behind the preview Service",
                                     "bluegreen app v2: switch to green",
                                     "bluegreen app v2: blue scaled down after the window"]
    # The switch is one update of the two Services' selectors: no Deployment changes, no pod starts.
    assert services_only(stack.changes[2])
    assert {c.name for c in stack.changes[2]} == {"Service/app", "Service/app-preview"}
    assert 30.0 in clock.slept  # the window, in virtual time
    app = live_app(stack)
    assert app["active"] == "green" and app["green"] == {"tag": "v2"} and app["blue"] == {"tag": "v1", "replicas": 0}
    assert proxy.backends["stable"] == apps["v2"].url
    out = capsys.readouterr().out
    assert "1) green := v2 at full size" in out and "2) judging v2 on the preview Service" in out
    assert "3) switching the active Service to green" in out and "promoted: app runs v2 on green" in out


def test_a_passed_run_records_bluegreen_as_the_proof_promote_takes(apps, proxy, preview_proxy):
    from model.release_record import VERIFIED
    from operations.promotion import release_records

    stack = SwitchedStack(proxy, preview_proxy, apps)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    record = release_records(stack.outputs())["app"]
    assert record["verification"]["how"] == "bluegreen" and record["verification"]["how"] in VERIFIED
    assert record["verification"]["image"] == record["image"] and record["image"].endswith(":v2")
    assert record["verification"]["verdict"] == "passed" and "requests to the preview Service" in (
        record["verification"]["evidence"])
    # Recorded in the switch update itself: no update of its own.
    assert len(stack.up_messages) == 4


def test_the_preview_address_comes_from_the_stack_outputs(apps, proxy, preview_proxy):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    address = outputs(stack)["previewAddress"]
    assert address and address != outputs(stack)["address"]
    assert bluegreen_run.preview_url(stack, "app", stack.config[RELEASES]) == f"http://{address}/"


def test_keep_old_leaves_the_old_color_at_full_size(apps, proxy, preview_proxy):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    clock = VirtualClock()
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, keep_old=True), clock=clock)
    assert run.exit_code == 0 and clock.slept == []
    app = live_app(stack)
    assert app["active"] == "green" and app["blue"] == {"tag": "v1"}
    assert stack.up_messages[-1] == "bluegreen app v2: switch to green"


def test_the_releases_preview_check_sets_the_least_judging_time_and_the_path(apps, proxy, preview_proxy, capsys):
    import copy

    config = copy.deepcopy(CONFIG)
    config[RELEASES]["app"]["previewCheck"] = {"interval": "2s", "path": "/healthz"}
    stack = SwitchedStack(proxy, preview_proxy, apps, config=config)
    # At 250 probes/s the last probe of the 2 s goes out at 1.996 s of virtual time, which the result rounds to 2.
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, interval=0.4, rate=250.0), clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    assert run.judged.elapsed >= 2.0  # not the 0.4 s of --interval
    out = capsys.readouterr().out
    assert "previewCheck: the preview is judged for 2s" in out
    assert f"judged 2s on {preview_proxy.url}healthz," in out  # --url with no path of its own takes the check's
    assert bluegreen_run.with_check_path("http://127.0.0.1:1/own?x=1", "/healthz") == "http://127.0.0.1:1/own?x=1"
    address = outputs(stack)["previewAddress"]
    assert bluegreen_run.preview_url(stack, "app", stack.config[RELEASES], "/healthz") == f"http://{address}/healthz"


def test_ctrl_c_in_the_window_keeps_the_switch_and_leaves_the_scale_down_to_the_watchdog(
        apps, proxy, preview_proxy, tmp_path, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    spec = lease_spec(tmp_path)

    def interrupt(seconds):
        if seconds == 30.0:
            raise KeyboardInterrupt

    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock(interrupt), lease=spec)
    assert run.exit_code == 1 and run.switched and run.aborted == "interrupted in the window"
    app = live_app(stack)
    assert app["active"] == "green" and app["blue"] == {"tag": "v1"} and app["green"] == {"tag": "v2"}
    assert stack.up_messages[-1] == "bluegreen app v2: switch to green"
    record = spec.read()  # not ended: once it expires, the watchdog finishes the scale-down
    assert record["state"] == "running" and record["phase"] == "window"
    assert "interrupted in the window: green (v2) stays active and blue (v1) at full size" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Failure paths: every one ends with the active Service on the old color
# ---------------------------------------------------------------------------------------------


def test_a_failing_version_is_rolled_back_by_the_judge_before_any_switch(apps, proxy, preview_proxy, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    run = run_bluegreen(stack, options("v3", url=preview_proxy.url, interval=30.0, rate=300.0), clock=VirtualClock())
    assert run.exit_code == 1 and not run.switched
    assert "the judge failed v3" in run.aborted and "error rate" in run.aborted
    assert run.judged.elapsed < 10  # stopped as soon as the failure was clear, not after 30 s
    assert not any("switch" in m for m in stack.up_messages)
    assert stack.up_messages[-1].startswith("bluegreen app: green scaled down (v3 rolled back")
    assert_on_the_old_color(stack, proxy, apps)
    assert preview_proxy.backends["stable"] == NOWHERE  # the idle color has no pods
    assert "ROLL BACK at the judging" in capsys.readouterr().out


def test_a_preview_that_does_not_serve_the_new_version_is_not_switched_to(apps, proxy, preview_proxy):
    stack = SwitchedStack(proxy, preview_proxy, apps, follow_preview=False)
    preview_proxy.route(apps["v1"].url, None, 0)  # the preview's load balancer still sends to v1
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, interval=30.0), clock=VirtualClock())
    assert run.exit_code == 1 and not run.switched and "the judge failed v2" in run.aborted
    assert_on_the_old_color(stack, proxy, apps)


@pytest.mark.parametrize("outcomes", [("fail",), ("interrupt",), ("fail-early",)],
                         ids=["fails", "ctrl-c", "fails-early"])
def test_a_failed_or_interrupted_switch_goes_back_to_the_old_color(apps, proxy, preview_proxy, outcomes, capsys):
    stack = ScriptedStack(proxy, preview_proxy, apps, hooks={1: script(*outcomes)})
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock())
    assert run.exit_code == 1 and not run.switched
    # The switch ran (part of it may be live): the Services go back in an update of their own, then the pods.
    assert stack.up_messages[2] == "bluegreen app v2: switch to green"
    assert stack.up_messages[3].startswith("bluegreen app: active back to blue")
    assert stack.up_messages[4].startswith("bluegreen app: green scaled down")
    assert services_only(stack.changes[-2]) or stack.changes[-2] == []
    assert_on_the_old_color(stack, proxy, apps)
    # The verification the switch wrote is gone with it.
    assert "app-update:verification" not in stack.config or "app" not in stack.config["app-update:verification"]
    out = capsys.readouterr().out
    assert "ROLL BACK at the switch to green" in out and "rolled back: app serves v1 from blue" in out


def test_a_switch_that_a_lock_kept_from_running_needs_one_update_back(apps, proxy, preview_proxy, capsys):
    def lock(stack):
        stack.locked_by = "ci"

    stack = ScriptedStack(proxy, preview_proxy, apps, hooks={1: lock})

    def sleep(seconds):
        if len(clock.slept) == 4:  # the switch waited its 30 s out; the other update ends during the way back
            stack.locked_by = None

    clock = VirtualClock(sleep)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, retry=RetryPolicy(lock_wait=30, pause=10)),
                        clock=clock)
    assert run.exit_code == 1 and "stayed locked" in run.aborted
    # Nothing of the switch ran: one update puts `active` back (a no-op live) and scales green down.
    assert stack.up_messages[1:] == ["bluegreen app v2: green up behind the preview Service",
                                     "bluegreen app: green scaled down (v2 rolled back: the stack update failed: the "
                                     "stack stayed locked by another update for 30s)"]
    assert_on_the_old_color(stack, proxy, apps)
    assert "is locked by another update; waiting" in capsys.readouterr().out


def test_a_lock_that_outlasts_the_way_back_says_what_is_live_and_leaves_old_active(apps, proxy, preview_proxy,
                                                                                   capsys):
    def lock(stack):
        stack.locked_by = "ci"

    stack = ScriptedStack(proxy, preview_proxy, apps, hooks={1: lock})
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, retry=RetryPolicy(lock_wait=30, pause=10)),
                        clock=VirtualClock())
    assert run.exit_code == 1
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("NOT RESTORED"))
    assert "live: blue v1 full size (active), green v2 full size (last successful update)" in line
    assert "config holds: blue v1 full size (active), green v2 scaled down" in line
    assert line.endswith("the lease says so; finish with: python -m rollout watchdog staging")
    assert live_app(stack)["active"] == "blue" and proxy.backends["stable"] == apps["v1"].url
    assert stack.config[RELEASES]["app"]["active"] == "blue"  # the next `pulumi up` ships the old color


def test_the_watchdog_finishes_a_way_back_that_a_lock_stopped(apps, proxy, preview_proxy, tmp_path, capsys):
    import io

    from operations.watchdog import watch_release

    def lock(stack):
        stack.locked_by = "ci"

    stack = ScriptedStack(proxy, preview_proxy, apps, hooks={1: lock})
    spec = lease_spec(tmp_path)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, retry=RetryPolicy(lock_wait=30, pause=10)),
                        clock=VirtualClock(), lease=spec)
    assert run.exit_code == 1 and spec.read()["outcome"] == "abort-failed"
    stack.locked_by = None  # the other update ends; the watchdog's next round
    line, failed = watch_release(stack, "app", spec, out=io.StringIO(), policy=RetryPolicy(), clock=VirtualClock())
    assert not failed and "ROLLED BACK by the watchdog: active on blue, green scaled down (its way back had failed)" in (
        line)
    assert_on_the_old_color(stack, proxy, apps)
    assert spec.read()["outcome"] == "aborted" and spec.read()["holder"]["command"] == "watchdog"


@pytest.mark.parametrize("at", [0, 1], ids=["preview", "judging"])
def test_a_failure_or_ctrl_c_before_the_switch_scales_the_new_color_down(apps, proxy, preview_proxy, at,
                                                                          monkeypatch):
    if at == 0:
        stack = ScriptedStack(proxy, preview_proxy, apps, hooks={0: script("fail")})
    else:
        def interrupted(self, duration, on_tick):
            raise KeyboardInterrupt

        monkeypatch.setattr(canary_run.Prober, "run", interrupted)
        stack = SwitchedStack(proxy, preview_proxy, apps)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock())
    assert run.exit_code == 1 and not run.switched
    assert not any("switch" in m or "active back" in m for m in stack.up_messages)
    assert_on_the_old_color(stack, proxy, apps)


def test_the_active_tag_again_is_the_inputs_fault_and_changes_nothing(apps, proxy, preview_proxy):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    with pytest.raises(stacks.InputError, match="already serves v1 on the active color"):
        run_bluegreen(stack, options("v1", url=preview_proxy.url), clock=VirtualClock())
    assert stack.up_messages == ["initial"]


# ---------------------------------------------------------------------------------------------
# The namespace's ResourceQuotas, read before the first write (operations/live_capacity.py)
# ---------------------------------------------------------------------------------------------

# Imported before the conftest's autouse stand-in (no quota) replaces it on the module.
REAL_NEW_COLOR_SHORTFALLS = __import__("operations.live_capacity", fromlist=["x"]).new_color_shortfalls
REAL_LIST_QUOTAS = __import__("kubernetes.client", fromlist=["x"]).CoreV1Api.list_namespaced_resource_quota
REQUESTS = {"requests": {"cpu": "250m", "memory": "256Mi"}}
WITH_REQUESTS = {**CONFIG, RELEASES: {"app": {**CONFIG[RELEASES]["app"], "resources": REQUESTS}}}


def quota(name, hard, used):
    from kubernetes import client

    return client.V1ResourceQuota(metadata=client.V1ObjectMeta(name=name, namespace="app-update"),
                                  spec=client.V1ResourceQuotaSpec(hard=hard),
                                  status=client.V1ResourceQuotaStatus(hard=hard, used=used))


@pytest.fixture
def quotas(monkeypatch):
    """The real check, over the official client's list calls patched: `found` is what the namespace holds (an
    exception: the list call raises it), `limit_ranges` its LimitRanges; `reads` the namespaces read."""
    from kubernetes import client

    from operations import live_capacity, live_weight

    state = {"found": [], "reads": [], "limit_ranges": []}

    def list_namespaced_resource_quota(self, namespace, **kwargs):
        state["reads"].append(namespace)
        if isinstance(state["found"], Exception):
            raise state["found"]
        return client.V1ResourceQuotaList(items=state["found"])

    def list_namespaced_limit_range(self, namespace, **kwargs):
        state["reads"].append(f"{namespace} limitranges")
        if isinstance(state["limit_ranges"], Exception):
            raise state["limit_ranges"]
        return client.V1LimitRangeList(items=state["limit_ranges"])

    monkeypatch.setattr(live_capacity, "new_color_shortfalls", REAL_NEW_COLOR_SHORTFALLS)
    monkeypatch.setattr(live_weight, "kubernetes_client", lambda kubeconfig=None, context=None: client.ApiClient())
    monkeypatch.setattr(client.CoreV1Api, "list_namespaced_resource_quota", list_namespaced_resource_quota)
    monkeypatch.setattr(client.CoreV1Api, "list_namespaced_limit_range", list_namespaced_limit_range)
    return state


def test_a_quota_that_cannot_hold_the_new_color_refuses_the_run_before_anything_is_written(
        apps, proxy, preview_proxy, quotas, tmp_path, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps, config=WITH_REQUESTS)
    before = {k: v.value for k, v in stack.get_all_config().items()}
    quotas["found"] = [quota("roomy", {"pods": "100"}, {"pods": "4"}),
                       quota("team", {"pods": "6", "requests.cpu": "2", "requests.memory": "2Gi"},
                             {"pods": "4", "requests.cpu": "1", "requests.memory": "1Gi"})]
    spec = lease_spec(tmp_path)
    code = stacks.guarded(lambda: run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock(),
                                                lease=spec).exit_code)
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: the namespace's ResourceQuotas cannot hold green of app "
                                                    "(4 pods, requests cpu 250m, memory 256Mi each) beside blue")
    # pods are short (4 + 4 > 6); CPU (1 + 1 core <= 2) and memory (1Gi + 1Gi <= 2Gi) are not.
    assert "ResourceQuota app-update/team: pods: 4 used + 4 for the new color > 6 hard" in err
    assert "requests.cpu" not in err and "requests.memory" not in err and "roomy" not in err
    assert "raise the quota" in err and "lower the release's replicas or resources.requests" in err
    assert stack.up_messages == ["initial"] and {k: v.value for k, v in stack.get_all_config().items()} == before
    assert spec.read() is None  # no lease was taken: nothing to release, the next run may go
    assert quotas["reads"] == ["app-update", "app-update limitranges"]


def test_each_quota_key_short_is_named_with_its_numbers(apps, proxy, preview_proxy, quotas):
    stack = SwitchedStack(proxy, preview_proxy, apps, config=WITH_REQUESTS)
    quotas["found"] = [quota("team", {"requests.cpu": "1500m", "limits.memory": "1Gi", "requests.memory": "2Gi"},
                             {"requests.cpu": "1", "requests.memory": "1025Mi"})]
    with pytest.raises(stacks.OperationError) as refused:
        run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock())
    text = str(refused.value)
    assert "requests.cpu: 1 core used + 1 core for the new color > 1.5 cores hard" in text
    assert "requests.memory: 1025Mi used + 1024Mi for the new color > 2048Mi hard" in text
    # The release sets no memory limit: the quota's admission refuses such pods outright ("must specify").
    assert ("ResourceQuota app-update/team: limits.memory: the pods would not set it (no resources.limits.memory and "
            "no LimitRange default) and the API server refuses a pod without it") in text
    assert stack.up_messages == ["initial"]


def limit_range(name, default_request=None, default=None, kind="Container", **bounds):
    """A LimitRange of one item; `bounds`: min, max, max_limit_request_ratio."""
    from kubernetes import client

    return client.V1LimitRange(metadata=client.V1ObjectMeta(name=name, namespace="app-update"),
                               spec=client.V1LimitRangeSpec(limits=[client.V1LimitRangeItem(
                                   type=kind, default_request=default_request, default=default, **bounds)]))


@pytest.mark.parametrize("resources,ranges,expected", [
    pytest.param({}, [], ["requests.cpu: the pods would not set it (no resources.requests.cpu and no LimitRange "
                          "default) and the API server refuses a pod without it"], id="no requests, no LimitRange"),
    pytest.param({}, [limit_range("defaults", {"cpu": "500m"})],
                 ["requests.cpu: 0m used + 2 cores for the new color > 1 core hard",
                  "counted with the defaults of LimitRange app-update/defaults: cpu request 500m each"],
                 id="the LimitRange's defaultRequest is counted"),
    pytest.param({}, [limit_range("a-small", {"cpu": "100m"}), limit_range("b-big", {"cpu": "2"})], [],
                 id="the first LimitRange by name"),
    pytest.param({}, [limit_range("a-memory", {"memory": "64Mi"}), limit_range("b-cpu", {"cpu": "500m"})],
                 ["requests.cpu: 0m used + 2 cores for the new color > 1 core hard",
                  "counted with the defaults of LimitRange app-update/a-memory, app-update/b-cpu: cpu request 500m, "
                  "memory request 64Mi each"],
                 id="each LimitRange sets what the ones before it left unset"),
    pytest.param({"limits": {"cpu": "200m"}}, [limit_range("defaults", {"cpu": "500m"})], [],
                 id="a request from the release's limit comes before any LimitRange default"),
    pytest.param({"requests": {"cpu": "100m"}}, [limit_range("defaults", {"cpu": "500m"})], [],
                 id="the release's own request"),
])
def test_a_limit_ranges_defaults_are_what_the_new_colors_pods_take(resources, ranges, expected):
    """As the API server admits each pod: a request from its limit (defaulting), then the LimitRanger's Container
    defaults for what is still unset; a quota on requests.cpu refuses a pod that sets none."""
    from model.config import load
    from operations import live_capacity

    release = load({**CONFIG, RELEASES: {"app": {**CONFIG[RELEASES]["app"], "resources": resources}}},
                   "staging").release("app")
    found = quota("team", {"requests.cpu": "1"}, {"requests.cpu": "0"})
    lines = live_capacity.shortfalls([found], release, 4, ranges)
    assert lines == [line if line.startswith("counted") else f"ResourceQuota app-update/team: {line}"
                     for line in expected]


def test_limit_ranges_are_read_even_where_no_quota_is(apps, proxy, preview_proxy, quotas):
    stack = SwitchedStack(proxy, preview_proxy, apps, config=WITH_REQUESTS)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock())
    assert run.exit_code == 0 and quotas["reads"] == ["app-update", "app-update limitranges"]


WITH_LIMITS = {**CONFIG, RELEASES: {"app": {**CONFIG[RELEASES]["app"], "resources": {
    "requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1"}}}}}


def test_a_limit_range_that_refuses_the_new_colors_pods_refuses_the_run_before_anything_is_written(
        apps, proxy, preview_proxy, quotas, tmp_path, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps, config=WITH_LIMITS)
    before = {k: v.value for k, v in stack.get_all_config().items()}
    quotas["limit_ranges"] = [limit_range("caps", max={"cpu": "500m"}, default={"cpu": "500m"}),
                              limit_range("pods", kind="Pod", max_limit_request_ratio={"cpu": "2"}),
                              limit_range("roomy", max={"cpu": "4"}, default={"cpu": "4"})]
    spec = lease_spec(tmp_path)
    code = stacks.guarded(lambda: run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock(),
                                                lease=spec).exit_code)
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(
        "error: the namespace's LimitRanges refuse the pods of green of app (resources requests cpu 250m, memory "
        "256Mi; limits cpu 1): LimitRange app-update/caps: maximum cpu usage per Container is 500m, but limit is 1; "
        "LimitRange app-update/pods: cpu max limit to request ratio per Pod is 2, but provided ratio is 4.000000; "
        "the API server would refuse each pod"), err
    assert "roomy" not in err and "kubectl edit limitrange -n app-update" in err and "nothing was written" in err
    assert "change the release's resources (app-update:releases.app.resources)" in err
    assert stack.up_messages == ["initial"] and {k: v.value for k, v in stack.get_all_config().items()} == before
    assert spec.read() is None  # no lease was taken


@pytest.mark.parametrize("resources,ranges,expected", [
    pytest.param({"requests": {"cpu": "250m"}}, [limit_range("caps", max={"cpu": "500m"}, default={"cpu": "500m"})],
                 [], id="a max's default gives the pods a limit at the bound"),
    pytest.param({"requests": {"cpu": "250m"}}, [limit_range("caps", max={"cpu": "500m"})],
                 ["LimitRange app-update/caps: maximum cpu usage per Container is 500m.  No limit is specified"],
                 id="a max without a default (a hand-made object): no limit"),
    pytest.param({"limits": {"cpu": "1"}}, [limit_range("floor", min={"cpu": "2"})],
                 ["LimitRange app-update/floor: minimum cpu usage per Container is 2, but request is 1"],
                 id="the request the API server takes from the limit"),
    pytest.param({}, [limit_range("defaults", {"ephemeral-storage": "1Gi"}, {"ephemeral-storage": "1Gi"}),
                      limit_range("pods", kind="Pod", max={"ephemeral-storage": "2Gi"})], [],
                 id="a default of a resource the release does not set is validated as admitted"),
    pytest.param({}, [limit_range("pods", kind="Pod", max={"memory": "1Gi"})],
                 ["LimitRange app-update/pods: maximum memory usage per Pod is 1Gi.  No limit is specified"],
                 id="a Pod item gets no defaults"),
])
def test_a_limit_ranges_bounds_are_checked_against_the_pods_as_admitted(resources, ranges, expected):
    from model.config import load
    from operations import live_capacity

    release = load({**CONFIG, RELEASES: {"app": {**CONFIG[RELEASES]["app"], "resources": resources}}},
                   "staging").release("app")
    assert live_capacity.limit_range_refusals(ranges, release) == expected


def test_a_limit_range_bound_that_is_not_a_quantity_is_said_as_unreadable():
    from model.config import load
    from operations import live_capacity

    release = load(WITH_LIMITS, "staging").release("app")
    with pytest.raises(live_capacity.QuotaUnreadable,
                       match="LimitRange app-update/odd: the max cpu bound 'lots' is not a Kubernetes quantity"):
        live_capacity.limit_range_refusals([limit_range("odd", max={"cpu": "lots"})], release)


@pytest.mark.parametrize("failure,said", [
    ("forbidden", "HTTP 403 Forbidden"), ("unreachable", "MaxRetryError"), ("no-kubeconfig", "ConfigException"),
    ("limit-ranges-forbidden", "LimitRanges: HTTP 403 Forbidden")])
def test_quotas_that_cannot_be_read_are_said_and_the_run_goes_on(apps, proxy, preview_proxy, quotas, monkeypatch,
                                                                 failure, said, capsys):
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from operations import live_weight

    if failure == "no-kubeconfig":
        def no_config(kubeconfig=None, context=None):
            raise ConfigException("Invalid kube-config file. No configuration found.")
        monkeypatch.setattr(live_weight, "kubernetes_client", no_config)
    elif failure == "limit-ranges-forbidden":  # RBAC that lists quotas but not LimitRanges (none needed to fail)
        quotas["limit_ranges"] = ApiException(403, "Forbidden")
    else:
        quotas["found"] = ApiException(403, "Forbidden")
    if failure == "unreachable":  # the real list call, to a loopback port nobody listens on
        from kubernetes import client

        monkeypatch.setattr(live_weight, "kubernetes_client", lambda kubeconfig=None, context=None: client.ApiClient(
            client.Configuration(host="http://127.0.0.1:9")))
        monkeypatch.setattr(client.CoreV1Api, "list_namespaced_resource_quota", REAL_LIST_QUOTAS)
    stack = SwitchedStack(proxy, preview_proxy, apps, config=WITH_REQUESTS)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock())
    assert run.exit_code == 0 and run.switched
    line = next(x for x in capsys.readouterr().out.splitlines() if "ResourceQuotas" in x)
    assert line.startswith("could not read the namespace's ResourceQuotas: ") and line.endswith("; going on")
    assert said in line


@pytest.mark.parametrize("scopes,selects", [
    (None, True), (["NotTerminating"], True), (["NotBestEffort"], True), (["Terminating"], False),
    (["BestEffort"], False), ({"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}, False),
    ({"scopeName": "PriorityClass", "operator": "DoesNotExist"}, True),
], ids=str)
def test_a_quota_counts_only_where_its_scopes_select_the_releases_pods(scopes, selects):
    """Limits count against limits.* keys; a request not given takes its limit, as the API server defaults it."""
    from kubernetes import client

    from model.config import load
    from operations import live_capacity

    settings = {**WITH_REQUESTS, RELEASES: {"app": {**WITH_REQUESTS[RELEASES]["app"], "resources": {
        "requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "512Mi"}}}}}
    release = load(settings, "staging").release("app")
    found = quota("team", {"limits.cpu": "2", "requests.memory": "1Gi"}, {"limits.cpu": "1", "requests.memory": "0"})
    if isinstance(scopes, dict):
        found.spec.scope_selector = client.V1ScopeSelector(match_expressions=[client.V1ScopedResourceSelectorRequirement(
            scope_name=scopes["scopeName"], operator=scopes["operator"], values=scopes.get("values"))])
    else:
        found.spec.scopes = scopes
    lines = live_capacity.shortfalls([found], release, 4)
    # requests.memory: 4 x 512Mi (the limit, no request given) > 1Gi; limits.cpu: 1 + 4 x 500m > 2.
    assert lines == ([
        "ResourceQuota app-update/team: requests.memory: 0Mi used + 2048Mi for the new color > 1024Mi hard",
        "ResourceQuota app-update/team: limits.cpu: 1 core used + 2 cores for the new color > 2 cores hard",
    ] if selects else [])


def test_a_quota_is_not_read_when_the_new_color_is_up_already(apps, proxy, preview_proxy, quotas, tmp_path,
                                                              monkeypatch):
    """--resume past the preview, or --keep-old's color at full size: its pods are in the quota's used already."""
    quotas["found"] = [quota("full", {"pods": "4"}, {"pods": "4"})]
    stack, spec = killed_at_the_switch(tmp_path, monkeypatch, {})
    run = run_bluegreen(stack, options("v2", url=NOWHERE, keep_old=True), clock=VirtualClock(), lease=spec,
                        resume=True)
    assert run.exit_code == 0 and run.switched and quotas["reads"] == []


# ---------------------------------------------------------------------------------------------
# Undo: in the window, one update of the Services; after it, scale up then switch
# ---------------------------------------------------------------------------------------------


def lease_spec(tmp_path):
    return leases.LeaseSpec(FileRecordStore(tmp_path / "leases"), leases.lease_key("staging", "app"))


@pytest.mark.parametrize("with_lease", [True, False], ids=["lease", "no-lease"])
def test_undo_in_the_window_switches_back_without_a_pod_and_the_run_scales_nothing_down(
        apps, proxy, preview_proxy, tmp_path, with_lease, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    spec = lease_spec(tmp_path) if with_lease else None
    undone = []

    def undo_in_the_window(seconds):
        if seconds == 30.0:  # the run waits out its scale-down delay
            undone.append(undo_bluegreen(stack, "app", True, None, spec=spec, clock=VirtualClock()))

    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock(undo_in_the_window),
                        lease=spec)
    assert undone == [0]
    assert stack.up_messages[-1] == "undo app: switch back to blue (v1)"
    assert services_only(stack.changes[-1])  # ONE update, no Deployment: no pod starts
    assert run.exit_code == 1 and not run.switched
    app = live_app(stack)
    assert app["active"] == "blue" and app["blue"] == {"tag": "v1"} and app["green"] == {"tag": "v2"}
    assert proxy.backends["stable"] == apps["v1"].url
    out = capsys.readouterr().out
    if with_lease:  # the undo took the lease over: the run stopped at its next write
        assert "STOPPED: the lease was taken over by undo by" in out
        record = spec.read()
        assert record["state"] == "ended" and record["outcome"] == "undone" and record["holder"]["command"] == "undo"
    else:  # no lease: the run read the live active color again before scaling down
        assert "undone in the window" in out


def test_undo_after_the_window_scales_the_old_color_up_then_switches(apps, proxy, preview_proxy, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    assert run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock()).exit_code == 0
    updates = len(stack.up_messages)
    assert undo_bluegreen(stack, "app", True, None) == 0
    assert stack.up_messages[updates:] == ["undo app: blue (v1) scaled up before the switch back",
                                           "undo app: switch back to blue (v1)"]
    assert not services_only(stack.changes[-2]) and services_only(stack.changes[-1])
    app = live_app(stack)
    assert app["active"] == "blue" and app["blue"] == {"tag": "v1"} and app["green"] == {"tag": "v2"}
    out = capsys.readouterr().out
    assert "blue is scaled down (its window is over): 1) blue scaled up to 4 pods of v1" in out


def test_undo_refuses_while_a_run_is_before_its_switch(apps, proxy, preview_proxy, tmp_path, monkeypatch):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    spec = lease_spec(tmp_path)
    refusals = []

    def judged_while_someone_undoes(self, duration, on_tick):
        with pytest.raises(stacks.OperationError) as refused:
            undo_bluegreen(stack, "app", True, None, spec=spec)
        refusals.append(str(refused.value))
        return "stopped by the test"

    monkeypatch.setattr(canary_run.Prober, "run", judged_while_someone_undoes)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock(), lease=spec)
    assert run.exit_code == 1
    assert "is judging" in refusals[0] and "the active Service is still on the old color" in refusals[0]
    assert not any(m.startswith("undo") for m in stack.up_messages)


def test_undo_never_switches_to_a_color_that_did_not_serve_its_tag(apps, proxy, preview_proxy):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    run = run_bluegreen(stack, options("v3", url=preview_proxy.url, interval=30.0, rate=300.0), clock=VirtualClock())
    assert run.exit_code == 1  # rolled back: green runs v3, scaled down
    updates = len(stack.up_messages)
    with pytest.raises(stacks.OperationError, match="green runs v3, which never served app's users on stack staging"):
        undo_bluegreen(stack, "app", True, None)
    assert len(stack.up_messages) == updates and live_app(stack)["active"] == "blue"


def test_a_second_run_is_refused_while_the_first_holds_the_lease(apps, proxy, preview_proxy, tmp_path, monkeypatch):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    spec = lease_spec(tmp_path)
    refusals = []

    def second_driver_while_judging(self, duration, on_tick):
        with pytest.raises(leases.LeaseHeld) as refused:
            run_bluegreen(stack, options("v3", url=preview_proxy.url), clock=VirtualClock(), lease=spec)
        refusals.append(str(refused.value))
        return "stopped by the test"

    monkeypatch.setattr(canary_run.Prober, "run", second_driver_while_judging)
    run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock(), lease=spec)
    assert "looked after by another run" in refusals[0] and "judging, blue v1 → green v2" in refusals[0]
    assert not any("v3" in m for m in stack.up_messages)


def killed_at_the_switch(tmp_path, monkeypatch, moved):
    """A stack with green v2 up (judged) and blue active, a lease a driver left in its switch phase (expired),
    and `moved` done to the stack meanwhile."""
    from pulumi.automation import ConfigValue

    config = {**CONFIG, RELEASES: {"app": {**CONFIG[RELEASES]["app"], "green": {"tag": "v2"}}}}
    stack = FakeStack("staging", config)
    stack.up(message="initial: green v2 up behind the preview, judged")
    spec = lease_spec(tmp_path)
    fields = bluegreen_run.run_fields("staging", options("v2"), "blue", "green", "v1")
    fields.update(phase="switching", switchTried=True, evidence="200 requests to the preview Service")
    leases.acquire(spec.store, spec.key, fields, spec.seconds, may_take=bluegreen_run.run_may_take("staging"))
    for path, value in moved.items():
        stack.set_config(f"{RELEASES}.app.{path}", ConfigValue(value), path=True)
    if moved:
        stack.up(message="by hand")
    real = leases.wall_clock
    monkeypatch.setattr(leases, "wall_clock", lambda: real() + spec.seconds + 60)  # the lease expired

    def not_judged(*args, **kwargs):
        raise AssertionError("a resumed switch is not judged again")

    monkeypatch.setattr(canary_run.Prober, "run", not_judged)
    return stack, spec


@pytest.mark.parametrize("moved,said", [({"green.tag": "v3"}, "green v2 in the lease (judged), v3 live"),
                                        ({"green.replicas": "0"}, "green at 0 pods live, not at full size (4)")],
                         ids=["new-tag", "scaled-down"])
def test_resume_at_the_switch_refuses_a_new_color_that_is_not_what_was_judged(tmp_path, monkeypatch, moved, said):
    stack, spec = killed_at_the_switch(tmp_path, monkeypatch, moved)
    updates = list(stack.up_messages)
    with pytest.raises(stacks.InputError, match="cannot resume") as refused:
        run_bluegreen(stack, options("v2", url=NOWHERE), clock=VirtualClock(), lease=spec, resume=True)
    assert said in str(refused.value) and "\n" not in str(refused.value)
    assert stack.up_messages == updates and live_app(stack)["active"] == "blue"
    assert bluegreen_run._verification(stack, "app") is None


def test_resume_at_the_switch_records_the_tag_the_lease_judged(tmp_path, monkeypatch):
    stack, spec = killed_at_the_switch(tmp_path, monkeypatch, {})
    run = run_bluegreen(stack, options("v2", url=NOWHERE, keep_old=True), clock=VirtualClock(), lease=spec,
                        resume=True)
    assert run.exit_code == 0 and run.switched
    assert live_app(stack)["active"] == "green" and live_app(stack)["green"] == {"tag": "v2"}
    record = bluegreen_run._verification(stack, "app")
    assert record["image"].endswith(":v2") and record["evidence"] == "200 requests to the preview Service"


def test_undo_cannot_cut_into_the_watchdogs_scale_down(tmp_path, monkeypatch):
    """A run killed in its window: the watchdog scales the old color down; an undo that comes while the watchdog
    writes is refused, so no stack file is left with `active: blue` and `blue.replicas: 0`."""
    import io

    from pulumi.automation import ConfigValue

    from operations.watchdog import watch_release

    stack = FakeStack("staging", CONFIG)
    stack.up(message="initial")
    for path, value, message in (("green.tag", "v2", "green up"), ("active", "green", "switch to green")):
        stack.set_config(f"{RELEASES}.app.{path}", ConfigValue(value), path=True)
        stack.up(message=message)
    spec = lease_spec(tmp_path)
    fields = bluegreen_run.run_fields("staging", options("v2"), "blue", "green", "v1")
    fields.update(phase="window", scaleDownAt=leases.wall_clock() + 1)
    leases.acquire(spec.store, spec.key, fields, spec.seconds, may_take=bluegreen_run.run_may_take("staging"))
    real_clock, real_write = leases.wall_clock, stacks.write_changes
    monkeypatch.setattr(leases, "wall_clock", lambda: real_clock() + spec.seconds + 60)  # expired, window over
    refusals = []

    def undo_while_the_watchdog_writes(target, changes):
        if not refusals and any(c.field == "blue.replicas" for c in changes):
            with pytest.raises((stacks.OperationError, leases.LeaseHeld)) as refused:
                undo_bluegreen(stack, "app", True, None, spec=spec, clock=VirtualClock())
            refusals.append(str(refused.value))
        real_write(target, changes)

    monkeypatch.setattr(stacks, "write_changes", undo_while_the_watchdog_writes)
    line, failed = watch_release(stack, "app", spec, out=io.StringIO(), policy=RetryPolicy(attempts=1),
                                 clock=VirtualClock())
    assert not failed and "FINISHED by the watchdog" in line
    assert "scaling-down" in refusals[0] and "watchdog" in refusals[0]
    for app in (stack.config[RELEASES]["app"], live_app(stack)):
        assert app["active"] == "green" and app["blue"] == {"tag": "v1", "replicas": 0}
    assert not any(m.startswith("undo") for m in stack.up_messages)
    # Nor the other way round: a watchdog's live lease, whatever phase it kept, is not undo's to take.
    record = {**fields, "state": leases.ABORTING, "expiresAt": real_clock() + 10**6}
    assert "is ending the run now (window)" in bluegreen_run._undo_may_take(record, real_clock())


def test_a_lease_taken_over_between_two_writes_stops_the_second(tmp_path, monkeypatch):
    """The tracker makes sure of its lease before each write of an update, not once before them all."""
    from operations.canary_run import RunLog

    stack = FakeStack("staging", {**CONFIG, RELEASES: {"app": {**CONFIG[RELEASES]["app"], "green": {"tag": "v2"}}}})
    stack.up(message="initial")
    spec = lease_spec(tmp_path)
    fields = bluegreen_run.run_fields("staging", options("v2"), "blue", "green", "v1")
    lease = leases.acquire(spec.store, spec.key, fields, spec.seconds, may_take=bluegreen_run.run_may_take("staging"))
    tracker, _ = bluegreen_run._tracker(stack, "app", RunLog(None, None), RetryPolicy(), VirtualClock(), "test")
    tracker.heartbeat = leases.Heartbeat(lease, print)
    real_write, written = stacks.write_changes, []

    def write_then_taken_over(target, changes):
        real_write(target, changes)
        written.extend(c.field for c in changes)
        leases.acquire(spec.store, spec.key, {**fields, "state": leases.ABORTING}, spec.seconds,
                       may_take=lambda record, now: None)  # an undo, between the heartbeat's renewals

    monkeypatch.setattr(stacks, "write_changes", write_then_taken_over)
    with pytest.raises(leases.LeaseLost):
        tracker.update({"green.tag": "v3", "green.replicas": 0}, "green v3, scaled down")
    assert written == ["green.tag"] and stack.up_messages == ["initial"]


# ---------------------------------------------------------------------------------------------
# The command line: input before the environment
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,complaint", [
    (["--release", "app", "--tag", "v2", "--scale-down-delay", "soon"], "--scale-down-delay"),
    (["--release", "app", "--tag", "v2", "--max-error-rate", "150%"], "--max-error-rate"),
    (["--release", "app", "--tag", "v2", "--interval", "0s"], "--interval"),
])
def test_bad_arguments_exit_2(argv, complaint, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["bluegreen", "staging", *argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err and "Traceback" not in err


def test_a_release_that_is_not_blue_green_is_the_inputs_fault(capsys, monkeypatch):
    def no_environment(*args):
        raise AssertionError("the stack was opened before the input was checked")

    monkeypatch.setattr(stacks, "open_stack", no_environment)
    assert main(["bluegreen", "staging", "--release", "app", "--tag", "v2", "--yes"]) == 2
    assert "--release app: it is a Canary release in Pulumi.staging.yaml; bluegreen needs a BlueGreen one" in (
        capsys.readouterr().err)


# ---------------------------------------------------------------------------------------------
# Judged from a real Prometheus as it scrapes the colors' pods
# ---------------------------------------------------------------------------------------------


def scraping_the_colors(apps):
    """A real Prometheus scraping the apps every 200 ms, as it would the colors' pods: the targets carry the labels
    Kubernetes discovery gives them (the default selector's); v3 is another release's pod."""
    pods = {"v1": "app-blue-5f7d8c9b4-x2x4z", "v2": "app-green-6c8d9f7b5-q9w8e", "v3": "other-7b9c8d6f4-k3j2h"}
    targets = {f"127.0.0.1:{apps[v].port}": {"namespace": "app-update", "pod": pod} for v, pod in pods.items()}
    server = PrometheusServer({"app": []}, scrape_interval="200ms")
    server.set_targets("app", list(targets), targets)
    return server.start()


@pytest.fixture(scope="module", autouse=True)
def scraping(request):
    """The Prometheus of `colors_scraped`, begun on a thread as this module's first test starts when a test that
    asks for it is to run: Prometheus scrapes new targets only ~5 s after it starts, and the tests before run
    meanwhile."""
    if prometheus_binary() is None or not any(
            getattr(item, "module", None) is request.module and "colors_scraped" in getattr(item, "fixturenames", ())
            for item in request.session.items):
        yield None
        return
    apps = request.getfixturevalue("apps")
    server = Background(lambda: scraping_the_colors(apps), PrometheusServer.stop)
    server.begin()
    yield server
    server.stop()


@pytest.fixture
def colors_scraped(scraping):
    """Prometheus scraping the colors' apps, stopped at the test's end (nothing scrapes on through the tests after
    it). Outside CI a missing binary skips the test (`make prometheus` installs it); in CI it fails it."""
    if scraping is None:
        reason = "the prometheus binary is not installed (make prometheus installs Debian's package)"
        if in_ci():
            pytest.fail(f"{reason}; .ci/run should have installed it")
        pytest.skip(reason)
    try:
        yield scraping.result()
    finally:
        scraping.stop()


def test_a_good_version_judged_from_prometheus_is_switched_to(apps, proxy, preview_proxy, colors_scraped, capsys):
    stack = SwitchedStack(proxy, preview_proxy, apps)
    run = run_bluegreen(stack, options("v2", url=preview_proxy.url, interval=2.0, rate=60.0, scale_down_delay=0.0,
                                       metrics=colors_scraped.url))
    out = capsys.readouterr().out
    assert run.exit_code == 0, out
    assert 'pod=~"app-(blue|green)-[a-z0-9]+-[a-z0-9]+"' in out  # the colors' pods, not another release's
    assert run.judged.canary_requests > 0 and run.judged.canary_share == 100.0
    assert live_app(stack)["active"] == "green"


@pytest.mark.parametrize("argv,complaint", [
    (["--tag", "v2 with spaces"], "--tag 'v2 with spaces' cannot go into dev's config: "
                                  "app-update:releases.app-bg.green.tag"),
    (["--tag", "v2", "--rate", "0"], "--rate 0 sends no probes: then judge from --metrics prometheus=URL"),
    ([], "--tag is required (the image tag to switch to), unless --resume"),
    (["--tag", "v1"], "--tag v1: Pulumi.dev.yaml already has it on the active color (blue) of app-bg: nothing to "
                      "switch to"),
    (["--tag", "v2", "--keep-old", "--scale-down-delay", "10s"],
     "--keep-old never scales the old color down: --scale-down-delay would not be used"),
    (["--tag", "v2", "--metrics", "prometheus=http://127.0.0.1:9", "--scrape-interval", "30s", "--interval", "60s"],
     "--interval 60s is shorter than 3 scrape intervals"),
])
def test_what_the_stack_file_cannot_take_is_said_before_any_stack_opens(argv, complaint, capsys, monkeypatch):
    def no_environment(*args):
        raise AssertionError("the stack was opened before the input was checked")

    monkeypatch.setattr(stacks, "open_stack", no_environment)
    assert main(["bluegreen", "dev", "--release", "app-bg", "--yes", *argv]) == 2
    assert complaint in capsys.readouterr().err


def test_undo_to_a_revision_of_a_blue_green_release_is_the_inputs_fault(capsys, monkeypatch):
    def no_environment(*args):
        raise AssertionError("the stack was opened before the input was checked")

    monkeypatch.setattr(stacks, "open_stack", no_environment)
    assert main(["undo", "dev", "--release", "app-bg", "--to-revision", "1", "--yes"]) == 2
    assert "--to-revision: app-bg is a BlueGreen release in Pulumi.dev.yaml" in capsys.readouterr().err


def test_a_stale_stack_file_takes_the_live_colors_before_the_run_writes(apps, proxy, preview_proxy, capsys):
    """Live state wins: a checkout whose file predates a switch (blue active, green absent) would switch back
    and start green's pods again; the run writes what is live first, and says so."""
    stack = SwitchedStack(proxy, preview_proxy, apps)
    assert run_bluegreen(stack, options("v2", url=preview_proxy.url), clock=VirtualClock()).exit_code == 0
    stack.config[RELEASES]["app"] = {"strategy": "BlueGreen", "replicas": 4, "active": "blue", "blue": {"tag": "v1"}}
    from operations import live_state

    found = {(d.field, d.file, d.live) for d in live_state.drift(stack, stack.config[RELEASES])}
    assert found == {("active", "blue", "green"), ("green.tag", None, "v2"), ("blue.replicas", None, 0)}
    capsys.readouterr()
    run = run_bluegreen(stack, options("v3", url=preview_proxy.url, interval=30.0, rate=300.0), clock=VirtualClock())
    assert run.exit_code == 1 and run.colors == {"old": "green", "new": "blue"}  # v3 on blue, rolled back
    assert "the stack file is stale" in capsys.readouterr().out
    app = live_app(stack)
    assert app["active"] == "green" and app["green"] == {"tag": "v2"} and app["blue"] == {"tag": "v3", "replicas": 0}
    assert proxy.backends["stable"] == apps["v2"].url
