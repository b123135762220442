"""BlueGreen releases under the program's mocks: two colors, an active and a preview Service, and a switch that
changes the Services' selectors only."""

import pytest

from model.config import load
from model.release_record import release_records, served_image
from tests.conftest import ROOT, objects_of, ok_run, pod_labels, selects, settings_with

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def bluegreen(**overrides):
    release = {"strategy": "BlueGreen", "serviceName": "app-bg-service", "replicas": 4, "active": "blue",
               "blue": {"tag": "v1"}, "green": {"tag": "v2"}}
    release.update(overrides)
    return {k: v for k, v in release.items() if v is not None}


def test_both_colors_run_complete_behind_an_active_and_a_preview_service():
    run = ok_run({"app-bg": bluegreen()})
    deps, svcs = objects_of(run, DEPLOYMENT), objects_of(run, SERVICE)
    assert set(deps) == {"app-bg-blue", "app-bg-green"}
    assert set(svcs) == {"app-bg-service", "app-bg-service-preview"}
    for color, tag in (("blue", "v1"), ("green", "v2")):
        dep = deps[f"app-bg-{color}"]
        assert dep["spec"]["replicas"] == 4
        assert dep["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "app-bg", "version": color}
        assert pod_labels(dep)["version"] == color
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"arungupta/app-upgrade:{tag}"
    active, preview = svcs["app-bg-service"], svcs["app-bg-service-preview"]
    for svc in (active, preview):
        assert svc["spec"]["type"] == "LoadBalancer"
        assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert selects(active["spec"]["selector"], pod_labels(deps["app-bg-blue"]))
    assert not selects(active["spec"]["selector"], pod_labels(deps["app-bg-green"]))
    assert selects(preview["spec"]["selector"], pod_labels(deps["app-bg-green"]))
    assert not selects(preview["spec"]["selector"], pod_labels(deps["app-bg-blue"]))
    assert set(objects_of(run, PDB)) == {"app-bg-blue", "app-bg-green"}


def test_the_switch_changes_the_services_selectors_and_nothing_else():
    before = ok_run({"app-bg": bluegreen()})
    after = ok_run({"app-bg": bluegreen(active="green")})
    for kind in (DEPLOYMENT, PDB):
        assert objects_of(before, kind) == objects_of(after, kind), kind
    old, new = objects_of(before, SERVICE), objects_of(after, SERVICE)
    for name in old:
        assert {k: v for k, v in old[name].items() if k != "spec"} == {k: v for k, v in new[name].items() if k != "spec"}
        assert {k: v for k, v in old[name]["spec"].items() if k != "selector"} == {
            k: v for k, v in new[name]["spec"].items() if k != "selector"}
    assert new["app-bg-service"]["spec"]["selector"]["version"] == "green"
    assert new["app-bg-service-preview"]["spec"]["selector"]["version"] == "blue"
    assert after.outputs["releases"]["app-bg"]["activeColor"] == "green"


def test_an_absent_color_has_no_deployment_and_a_scaled_down_one_keeps_its_tag_at_0_pods():
    absent = ok_run({"app-bg": bluegreen(green=None, previewServiceName="app-bg-preview")})
    assert set(objects_of(absent, DEPLOYMENT)) == {"app-bg-blue"}
    assert objects_of(absent, SERVICE)["app-bg-preview"]["spec"]["selector"]["version"] == "green"
    assert absent.outputs["releases"]["app-bg"]["tags"] == {"blue": "v1"}
    assert absent.outputs["releases"]["app-bg"]["replicas"] == {"blue": 4, "green": 0}
    down = ok_run({"app-bg": bluegreen(green={"tag": "v2", "replicas": 0})})
    deps = objects_of(down, DEPLOYMENT)
    assert deps["app-bg-green"]["spec"]["replicas"] == 0
    assert deps["app-bg-green"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
    assert set(objects_of(down, PDB)) == {"app-bg-blue"}  # no budget for a Deployment without pods


def test_the_outputs_name_both_services_the_active_color_and_each_colors_tag():
    run = ok_run({"app-bg": bluegreen(active="green")})
    out = run.outputs["releases"]["app-bg"]
    assert out["strategy"] == "BlueGreen" and out["activeColor"] == "green"
    assert out["service"] == "app-bg-service" and out["previewService"] == "app-bg-service-preview"
    assert out["address"] and out["previewAddress"] and out["address"] != out["previewAddress"]
    assert out["tags"] == {"blue": "v1", "green": "v2"} and out["replicas"] == {"blue": 4, "green": 4}
    assert out["images"]["app"] == "arungupta/app-upgrade:v2"
    assert out["traffic"] is None and out["requestedWeight"] is None and out["effectiveWeight"] is None
    record = run.outputs["releaseRecords"]["app-bg"]
    assert record["image"] == "arungupta/app-upgrade:v2"
    assert record["config"] == {"strategy": "BlueGreen", "tags": {"blue": "v1", "green": "v2"},
                                "replicas": {"blue": 4, "green": 4}, "activeColor": "green"}


@pytest.mark.parametrize("active,image", [("blue", "arungupta/app-upgrade:v1"), ("green", "arungupta/app-upgrade:v2")])
def test_the_served_image_is_the_active_colors(active, image):
    config = load(settings_with({"app-bg": bluegreen(active=active)}), "test")
    release = config.release("app-bg")
    assert served_image(release) == image
    assert release.idle == {"blue": "green", "green": "blue"}[active]
    assert release_records(config)["app-bg"]["image"] == image


def test_the_active_service_waits_for_the_active_color_and_the_idle_color_for_the_preview_service():
    """A release that becomes BlueGreen keeps its Service (the aliases), which must not select pods that are not
    ready; the idle color's pods come after the preview Service (load balancer readiness gates)."""
    run = ok_run({"app-bg": bluegreen()})
    by_name = {r.name: r for r in run.resources}
    assert by_name["app-bg-blue"].urn in by_name["app-bg-service"].dependencies
    assert by_name["app-bg-preview-service"].urn in by_name["app-bg-green"].dependencies


def test_a_strategy_change_keeps_the_release_service():
    rolling = ok_run({"app": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 2}})
    blue_green = ok_run({"app": bluegreen(serviceName=None, replicas=2, green=None)})
    [svc_before] = [r for r in rolling.of_type(SERVICE)]
    svc_after = next(r for r in blue_green.of_type(SERVICE) if r.inputs["metadata"]["name"] == "app")
    assert svc_before.name == svc_after.name == "app-service"  # the same child name: one resource, updated in place


def test_the_dev_stack_shows_a_blue_green_release_of_the_workshops_app():
    from model.stack_file import stack_settings

    release = stack_settings("dev", ROOT)["app-update:releases"]["app-bg"]
    assert release["strategy"] == "BlueGreen" and release["image"] == "arungupta/app-upgrade"
    assert release["active"] == "blue" and release["blue"] == {"tag": "v1"}


# ---------------------------------------------------------------------------------------------
# Preview: both colors in the plan and in the manifests; the forecast's capacity; the node group check
# ---------------------------------------------------------------------------------------------


def _plan(releases, **top):
    from preview import plan

    config = load(settings_with(releases, **top), "test")
    return plan.build(config, ok_run(releases, **top)), config


def test_the_plan_shows_both_colors_which_is_active_and_which_is_previewed():
    from preview import plan

    built, _ = _plan({"app-bg": bluegreen(green={"tag": "v2", "replicas": 0},
                                          previewCheck={"interval": "2m", "path": "/healthz"})})
    [release] = built["releases"]
    bg = release["blueGreen"]
    assert bg["active"] == "blue" and bg["idle"] == "green"
    assert bg["colors"] == {
        "blue": {"tag": "v1", "pods": 4, "role": "active", "service": "app-bg-service"},
        "green": {"tag": "v2", "pods": 0, "role": "preview", "service": "app-bg-service-preview"}}
    assert bg["previewCheck"] == {"interval": "2m", "intervalSeconds": 120, "path": "/healthz"}
    text = plan.render_text(built)
    assert "app-bg  BlueGreen (active: blue)" in text
    assert "blue       arungupta/app-upgrade:v1 × 4; active: Service app-bg-service selects it" in text
    assert "green      arungupta/app-upgrade:v2 × 0; preview: Service app-bg-service-preview selects it" in text
    assert "4 pods at rest → 8 while both colors are up" in text
    assert "judged for at least 2m on /healthz" in text


def test_the_forecast_doubles_the_pods_for_the_switch_window_and_never_lowers_the_ready_ones():
    from model.forecast import blue_green_forecast

    fc = blue_green_forecast(5)
    assert [p.pods for p in fc.phases] == [5, 10, 10, 10, 5]
    assert [p.serving for p in fc.phases] == ["old", "old", "new", "new", "new"]
    assert fc.peak_pods == 10 and fc.extra_pods == 5 and fc.fewest_ready == 5
    kept = blue_green_forecast(5, keep_old=True)
    assert kept.phases[-1].pods == 10
    up = blue_green_forecast(5, idle_pods=5)  # a preview already up: nothing more to start
    assert up.extra_pods == 0


def test_the_manifests_hold_both_deployments_and_both_services(tmp_path):
    from preview import manifests

    objects = manifests.collect(ok_run({"app-bg": bluegreen()}))
    assert manifests.validate_all(objects, "1.35") == []
    paths = manifests.write(objects, tmp_path)
    import yaml

    docs = [yaml.safe_load(p.read_text()) for p in paths]
    named = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "app-bg-blue"), ("Deployment", "app-bg-green"), ("Service", "app-bg-service"),
            ("Service", "app-bg-service-preview")} <= named


def eks_cluster(max_nodes, instance_type="t3.medium"):
    return {"mode": "eks", "vpcCidr": "10.10.0.0/16",
            "nodes": {"instanceTypes": [instance_type], "min": 1, "desired": 1, "max": max_nodes}}


def test_the_plan_warns_where_the_node_group_cannot_hold_both_colors():
    from preview import plan

    big = bluegreen(replicas=20, green=None, resources={"requests": {"cpu": "250m", "memory": "256Mi"}})
    releases = {"app-bg": big}
    config = load({**settings_with(releases, cluster=eks_cluster(2)), "aws:region": "us-west-2"}, "test")
    warnings = plan.capacity_warnings(config)["app-bg"]
    # 2 × t3.medium: 15 pods each for workloads, less 2 CoreDNS = 28; 40 pods while both colors are up.
    assert len(warnings) == 1 and "40 pods > 28" in warnings[0] and "2 × t3.medium" in warnings[0]
    assert "CPU requests 10 cores" in warnings[0]
    roomy = load({**settings_with(releases, cluster=eks_cluster(8, "m5.xlarge")), "aws:region": "us-west-2"}, "test")
    assert plan.capacity_warnings(roomy) == {}
    kubeconfig = load(settings_with(releases), "test")
    assert plan.capacity_warnings(kubeconfig) == {}  # nodes are not in config: checked live only
    # limits only: each pod requests its limits (the API server's defaulting), and the scheduler counts that
    limits_only = {"app-bg": bluegreen(replicas=6, green=None, resources={"limits": {"cpu": "1", "memory": "512Mi"}})}
    config = load({**settings_with(limits_only, cluster=eks_cluster(2)), "aws:region": "us-west-2"}, "test")
    warnings = plan.capacity_warnings(config)["app-bg"]
    assert len(warnings) == 1 and "CPU requests 12 cores" in warnings[0], warnings


def test_a_quota_read_live_is_checked_against_the_new_color():
    from model.capacity import pod_room, quota_shortfalls

    extra = pod_room({"cpu": "250m", "memory": "256Mi"}, 4)
    hard = {"pods": "10", "requests.cpu": "2", "requests.memory": "2Gi", "limits.cpu": "4"}
    assert quota_shortfalls(hard, {"pods": "4", "requests.cpu": "1", "requests.memory": "1Gi"}, extra) == []
    short = quota_shortfalls(hard, {"pods": "8", "requests.cpu": "1500m", "requests.memory": "1Gi"}, extra)
    assert short == ["pods: 8 used + 4 for the new color > 10 hard",
                     "requests.cpu: 1.5 cores used + 1 core for the new color > 2 cores hard"]
    # the object-count name of the pod count: the API server refuses pods past it the same way
    assert quota_shortfalls({"count/pods": "10"}, {"count/pods": "8"}, extra) == [
        "count/pods: 8 used + 4 for the new color > 10 hard"]
    assert quota_shortfalls({"count/pods": "12", "count/services": "1"}, {"count/pods": "8", "count/services": "1"},
                            extra) == []  # the preview adds pods, not Services


# The LimitRanger's validation (model/limit_ranges.py), case by case: (item type, min, max, maxLimitRequestRatio),
# the pod's admitted requests and limits, and the refusals in the plugin's words.
@pytest.mark.parametrize("item,requests,limits,expected", [
    pytest.param(("Container", {}, {"cpu": "500m"}, {}), {"cpu": "250m"}, {"cpu": "500m"}, [], id="max: at the bound"),
    pytest.param(("Container", {}, {"cpu": "500m"}, {}), {"cpu": "250m"}, {"cpu": "1"},
                 ["maximum cpu usage per Container is 500m, but limit is 1"], id="max: the limit past it"),
    pytest.param(("Container", {}, {"memory": "1Gi"}, {}), {"memory": "512Mi"}, {},
                 ["maximum memory usage per Container is 1Gi.  No limit is specified"], id="max: no limit"),
    pytest.param(("Container", {}, {"cpu": "500m"}, {}), {"cpu": "600m"}, {"cpu": "500m"},
                 ["maximum cpu usage per Container is 500m, but request is 600m"], id="max: the request past it"),
    pytest.param(("Container", {"memory": "128Mi"}, {}, {}), {"memory": "64Mi"}, {"memory": "256Mi"},
                 ["minimum memory usage per Container is 128Mi, but request is 64Mi"], id="min: the request under"),
    pytest.param(("Container", {"memory": "128Mi"}, {}, {}), {}, {},
                 ["minimum memory usage per Container is 128Mi.  No request is specified"], id="min: no request"),
    pytest.param(("Container", {"cpu": "100m"}, {}, {}), {"cpu": "100m"}, {"cpu": "100m"}, [], id="min: at the bound"),
    pytest.param(("Container", {}, {}, {"cpu": "2"}), {"cpu": "250m"}, {"cpu": "1"},
                 ["cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"],
                 id="ratio: past it"),
    pytest.param(("Container", {}, {}, {"cpu": "2"}), {"cpu": "500m"}, {"cpu": "1"}, [], id="ratio: at it"),
    pytest.param(("Container", {}, {}, {"memory": "1500m"}), {"memory": "200Mi"}, {"memory": "256Mi"}, [],
                 id="ratio: a fraction, within"),
    pytest.param(("Container", {}, {}, {"cpu": "2"}), {"cpu": "250m"}, {},
                 ["cpu max limit to request ratio per Container is 2, but no limit is specified or limit is 0"],
                 id="ratio: no limit"),
    pytest.param(("Container", {}, {}, {"cpu": "2"}), {}, {"cpu": "1"},
                 ["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"],
                 id="ratio: no request"),
    pytest.param(("Container", {}, {}, {"cpu": "2"}), {"cpu": "0"}, {"cpu": "1"},
                 ["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"],
                 id="ratio: a request of 0"),
    pytest.param(("Pod", {}, {"memory": "256Mi"}, {}), {"memory": "128Mi"}, {"memory": "512Mi"},
                 ["maximum memory usage per Pod is 256Mi, but limit is 512Mi"], id="Pod max: the pod's total"),
    pytest.param(("Pod", {"cpu": "200m"}, {}, {}), {"cpu": "100m"}, {}, ["minimum cpu usage per Pod is 200m, but "
                                                                         "request is 100m"], id="Pod min"),
    pytest.param(("PersistentVolumeClaim", {"storage": "1Gi"}, {}, {}), {}, {}, [], id="a claim's bounds: no pod's"),
    pytest.param(("Container", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "1", "memory": "1Gi"}, {}),
                 {"memory": "32Mi"}, {"cpu": "2", "memory": "512Mi"},
                 ["minimum cpu usage per Container is 100m.  No request is specified",
                  "minimum memory usage per Container is 64Mi, but request is 32Mi",
                  "maximum cpu usage per Container is 1, but limit is 2"], id="every bound broken: one line each"),
    # Compared in thousandths rounded up, as upstream does: 1.0001m counts as 2m, past a 1m max.
    pytest.param(("Container", {}, {"cpu": "1m"}, {}), {}, {"cpu": "1000100n"},
                 ["maximum cpu usage per Container is 1m, but limit is 1000100n"], id="rounding up to thousandths"),
])
def test_a_limit_ranges_bounds_refuse_a_pod_as_the_limit_ranger_does(item, requests, limits, expected):
    from model.limit_ranges import LimitRangeItem, pod_refusals

    kind, minimum, maximum, ratio = item
    bounds = LimitRangeItem(kind, min=minimum, max=maximum, max_limit_request_ratio=ratio)
    assert pod_refusals([bounds], requests, limits) == expected


def test_a_bound_that_is_not_a_quantity_is_named():
    from model.limit_ranges import LimitRangeItem, pod_refusals

    with pytest.raises(ValueError, match="the max cpu bound 'lots' is not a Kubernetes quantity"):
        pod_refusals([LimitRangeItem("Container", max={"cpu": "lots"})], {}, {"cpu": "1"})


def test_rollout_forecast_shows_the_blue_green_phases(capsys):
    import json

    from rollout.cli import main

    assert main(["forecast", "--replicas", "3", "--strategy", "BlueGreen", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["peakPods"] == 6 and [p["pods"] for p in data["phases"]] == [3, 6, 6, 6, 3]
    assert main(["forecast", "--replicas", "3", "--strategy", "BlueGreen", "--max-surge", "1"]) == 2
    assert "a BlueGreen color never rolls" in capsys.readouterr().err
