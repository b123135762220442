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
