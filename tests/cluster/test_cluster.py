"""The project's objects against a real Kubernetes 1.35 control plane (tests/cluster/controlplane.py): every stack's
manifests and every traffic mode's objects server-side applied (dry run, then for real), the updates users make
applied over them, the rollout forecast against the Deployment controller, and availability (zones, disruption
budgets, EndpointSlices). One file: one xdist worker, one control plane (see conftest.py)."""

from __future__ import annotations

import copy
import datetime
import functools
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import pytest
import yaml

from model.config_models import MATCH_MODES, STICKY_MODES
from model.fenceposts import ReplicaSet, Strategy, reconcile_new_replica_set, reconcile_old_replica_sets
from model.forecast import forecast
from tests.cluster import controlplane
from tests.cluster.kube import (
    FIELD_MANAGER,
    Applier,
    condition_true,
    fresh_namespace,
    into_namespace,
    missing_fields,
    pod_ready,
    preview_manifests,
    render,
    watch_until,
)
from tests.conftest import STACKS, settings_with

LBC_CLUSTER = {"mode": "kubeconfig", "loadBalancerController": True}
# Every traffic mode whose weight lives in Kubernetes objects (dns's lives in Route53), in the forms it takes:
# (release keys, stack settings).
MODES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "replicas": ({}, {}),
    "nginx": ({}, {}),
    "alb": ({}, {"app-update:cluster": LBC_CLUSTER}),
    "nlb": ({}, {"app-update:cluster": LBC_CLUSTER}),
    "skipper": ({}, {}),
    "gateway": ({}, {}),
    "gateway-north-south": ({"gateway": {"name": "public", "namespace": "infra", "sectionName": "http",
                                         "hosts": ["app.example.com"]}}, {}),
    "istio": ({}, {}),
    "istio-gateway": ({"gateway": {"name": "public", "namespace": "istio-ingress", "hosts": ["app.example.com"]}},
                      {}),
}


# The CRDs of the custom resources the traffic modes render.
CUSTOM_RESOURCE_DEFINITIONS = {"httproutes.gateway.networking.k8s.io", "virtualservices.networking.istio.io",
                               "destinationrules.networking.istio.io"}


def canary_settings(mode: str, weight: int, canary_tag: str = "v2", stable_tag: str = "v1",
                    **canary: Any) -> dict[str, Any]:
    keys, top = MODES[mode]
    release = {"strategy": "Canary", "traffic": mode.split("-")[0], "replicas": 4, "minReadySeconds": 0,
               "stable": {"tag": stable_tag},
               "canary": {"tag": canary_tag, "weight": weight, **copy.deepcopy(canary)}, **copy.deepcopy(keys)}
    settings = settings_with({"app": release})
    settings.update(copy.deepcopy(top))
    return settings


def match_keys(mode: str) -> dict[str, Any]:
    """`canary.match` with a header and a cookie, and `canary.sticky` where the router has sticky sessions."""
    return {"match": {"header": {"name": "X-Canary", "value": "always"}, "cookie": "canary"},
            **({"sticky": True} if mode in STICKY_MODES else {})}


def release_settings(**release: Any) -> dict[str, Any]:
    """One release `app`; minReadySeconds 0 (the default 5 would only make the controller's steps slower here)."""
    return settings_with({"app": {"replicas": 3, "minReadySeconds": 0, **release}})


def blue_green_settings(**release: Any) -> dict[str, Any]:
    """One BlueGreen release `app` with a preview check (what a protected stack needs)."""
    return release_settings(strategy="BlueGreen", previewCheck={"interval": "1m"}, **release)


@pytest.fixture(scope="package")
def crds(kube, tmp_path_factory) -> list[str]:
    """The traffic modes' CRDs from the Go modules controlplane/crds/go.mod pins, installed and Established."""
    from kubernetes import client

    applier = Applier(kube.api_client, tmp_path_factory.mktemp("crds") / "discovery.json")
    installed = []
    for path in sorted(controlplane.crd_dir().glob("*.yaml")):
        # The files carry other kinds (Istio's: all its CRDs, megabytes): only the documents naming one are sent,
        # as they are (the API server parses them: hundreds of kilobytes of schema, slow to parse in Python).
        for text in re.split(r"^---\s*$", path.read_text(), flags=re.MULTILINE):
            if not re.search(r"^kind: CustomResourceDefinition\s*$", text, flags=re.MULTILINE):
                continue
            name = next((name for name in CUSTOM_RESOURCE_DEFINITIONS
                         if re.search(rf"^  name: {re.escape(name)}\s*$", text, flags=re.MULTILINE)), None)
            if name:
                kept = applier.apply_yaml(text, "apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                assert kept["metadata"]["name"] == name
                installed.append(name)

    def established(definitions: dict[str, Any]) -> bool:
        return all(name in definitions and condition_true(definitions[name], "Established") for name in installed)

    watch_until(client.ApiextensionsV1Api(kube.api_client).list_custom_resource_definition, established,
                "the CRDs to be Established")
    assert set(installed) == CUSTOM_RESOURCE_DEFINITIONS
    return installed


@pytest.fixture(scope="package")
def applier(kube, crds, tmp_path_factory) -> Applier:
    # After the CRDs: discovery (cached in the file) must see their kinds.
    return Applier(kube.api_client, tmp_path_factory.mktemp("discovery") / "discovery.json")


def apps(kube):
    from kubernetes import client

    return client.AppsV1Api(kube.api_client)


def core(kube):
    from kubernetes import client

    return client.CoreV1Api(kube.api_client)


# ---------------------------------------------------------------------------------------------
# 1. The control plane itself
# ---------------------------------------------------------------------------------------------


def test_control_plane_has_three_ready_nodes_in_three_zones_and_serves_1_35(kube):
    from kubernetes import client

    version = client.VersionApi(kube.api_client).get_code()
    assert (version.major, version.minor) == ("1", "35")
    nodes = json.loads(core(kube).list_node(_preload_content=False).data)["items"]
    zones = sorted(n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes)
    assert zones == sorted(controlplane.ZONES)
    assert all(controlplane._node_ready(n) for n in nodes)
    config = yaml.safe_load(kube.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    # It keeps no Events (controlplane.ControlPlane.refuse_events): a test that reads them must lift that first.
    from kubernetes.client.exceptions import ApiException

    with pytest.raises(ApiException) as refused:
        core(kube).create_namespaced_event("default", {
            "metadata": {"name": "refused"}, "involvedObject": {"kind": "Namespace", "name": "default"},
            "reason": "Test", "message": "refused"})
    assert controlplane.REFUSE_EVENTS in refused.value.body


# ---------------------------------------------------------------------------------------------
# 2. What the project renders, applied for real
# ---------------------------------------------------------------------------------------------


class AppliedStack(NamedTuple):
    namespace: str
    preview: list[dict[str, Any]]  # `rollout preview`'s objects, as it wrote them
    sent: list[dict[str, Any]]  # those moved into the namespace, as applied
    kept: list[dict[str, Any]]  # what the server kept of each
    plan: dict[str, Any]  # the plan `rollout preview --json` printed


# The stacks whose pods tests read (the zones test: dev's; the EndpointSlices test: local's).
STACKS_WITH_PODS = {"dev", "local"}


@pytest.fixture(scope="package")
def applied_stacks(kube, applier, tmp_path_factory):
    """`rollout preview <stack> --json --out DIR`'s files server-side applied into a fresh namespace of their own,
    dry run first, then for real: once per stack. Tests read what runs there (the stack's own test, the zones of
    its pods, its EndpointSlices); none changes it."""
    cache: dict[str, AppliedStack] = {}

    def applied(stack: str) -> AppliedStack:
        if stack not in cache:
            objects, plan = preview_manifests(stack, tmp_path_factory.mktemp(f"preview-{stack}"))
            namespace = fresh_namespace(kube.api_client, pods=stack in STACKS_WITH_PODS)
            sent = into_namespace(objects, namespace)
            cache[stack] = AppliedStack(namespace, objects, sent, applier.apply_all(sent), plan)
        return cache[stack]

    return applied


@pytest.mark.parametrize("stack", STACKS)
def test_stack_manifests_are_accepted_by_the_api_server(stack, applied_stacks):
    """`make preview`'s files for the stack, server-side applied into a fresh namespace: dry run, then for real;
    the server keeps every field sent (its defaults add more), and `app-update` owns them through an Apply."""
    applied = applied_stacks(stack)
    assert applied.preview and applied.preview[0]["kind"] == "Namespace"
    kept = applied.kept
    for sent, stored in zip(applied.sent, kept, strict=True):
        label = f"{sent['kind']}/{sent['metadata']['name']}"
        assert missing_fields(sent, stored) == [], label
        managers = {(entry["manager"], entry["operation"]) for entry in stored["metadata"]["managedFields"]}
        assert (FIELD_MANAGER, "Apply") in managers, label
    deployments = [o for o in kept if o["kind"] == "Deployment"]
    assert deployments and all(d["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst" for d in deployments)
    services = [o for o in kept if o["kind"] == "Service"]
    assert services and all(s["spec"]["clusterIP"].startswith("10.96.") for s in services)


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["apiVersion"], obj["kind"], obj["metadata"]["name"]


def update(applier: Applier, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What `pulumi up` does to the cluster for a config change: the new objects applied over the old ones (same
    names: in place), then the objects the new config no longer has deleted. Returns what the server kept."""
    kept = applier.apply_all(new)
    names = {key(o) for o in new}
    for obj in old:
        if key(obj) not in names:
            applier.delete(obj)
    return kept


def apply_in_turn(applier: Applier, namespace: str, configs: list[dict[str, Any]], label: str) -> None:
    """Each config's objects in turn, applied over the one before (`update`): the server keeps every field sent."""
    previous: list[dict[str, Any]] = []
    for settings in configs:
        objects = into_namespace(render(settings), namespace)
        for sent, kept in zip(objects, update(applier, previous, objects), strict=True):
            assert missing_fields(sent, kept) == [], f"{label}: {sent['kind']}/{sent['metadata']['name']}"
        previous = objects


def weight_step(mode: str) -> list[dict[str, Any]]:
    """A canary weight step in a traffic mode: 25%, then 50%."""
    return [canary_settings(mode, 25), canary_settings(mode, 50)]


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.no_pods
def test_traffic_mode_objects_are_accepted_with_the_upstream_crds_and_take_a_weight_step(mode, applier, namespace):
    """The mode's objects (a canary at 25%) server-side applied into a fresh namespace, the custom resources
    against their upstream CRDs, then a weight step (50%) applied over them in place, as users make it: no
    conflict, nothing immutable, every field sent kept."""
    apply_in_turn(applier, namespace, weight_step(mode), f"{mode} weight 25->50")


# ---------------------------------------------------------------------------------------------
# 3. Updates the way users make them (a weight step in each traffic mode: above)
# ---------------------------------------------------------------------------------------------


@functools.cache  # the cases are only read: one dict for the collection and every test
def release_update_cases() -> dict[str, list[dict[str, Any]]]:
    return {
        "Recreate v1->v2": [release_settings(strategy="Recreate", tag="v1"),
                            release_settings(strategy="Recreate", tag="v2")],
        "RollingUpdate v1->v2": [release_settings(strategy="RollingUpdate", tag="v1", maxSurge=1, maxUnavailable=1),
                                 release_settings(strategy="RollingUpdate", tag="v2", maxSurge=1, maxUnavailable=1)],
        "Canary v2->v3->promoted": [canary_settings("replicas", 25), canary_settings("replicas", 25, "v3"),
                                    canary_settings("replicas", 0, "v3", "v3")],
        "RollingUpdate->Recreate->RollingUpdate": [
            release_settings(strategy="RollingUpdate", tag="v1", maxSurge=1, maxUnavailable=1),
            release_settings(strategy="Recreate", tag="v1"),
            release_settings(strategy="RollingUpdate", tag="v1")],
        "RollingUpdate->Canary->RollingUpdate": [
            release_settings(strategy="RollingUpdate", tag="v1"), canary_settings("replicas", 25),
            release_settings(strategy="RollingUpdate", tag="v2")],
        "replicas->nginx->gateway->istio->replicas": [
            canary_settings("replicas", 25), canary_settings("nginx", 25), canary_settings("gateway", 25),
            canary_settings("istio", 25), canary_settings("replicas", 25)],
        # The configs of a `rollout bluegreen` run (preview up, switch, old color scaled down), its undo, and a
        # release becoming BlueGreen and back (its Service kept, its selector changed).
        "BlueGreen preview->switch->scale-down->undo": [
            blue_green_settings(active="blue", blue={"tag": "v1"}),
            blue_green_settings(active="blue", blue={"tag": "v1"}, green={"tag": "v2"}),
            blue_green_settings(active="green", blue={"tag": "v1"}, green={"tag": "v2"}),
            blue_green_settings(active="green", blue={"tag": "v1", "replicas": 0}, green={"tag": "v2"}),
            blue_green_settings(active="blue", blue={"tag": "v1"}, green={"tag": "v2"})],
        "RollingUpdate->BlueGreen->RollingUpdate": [
            release_settings(strategy="RollingUpdate", tag="v1"),
            blue_green_settings(active="blue", blue={"tag": "v1"}),
            release_settings(strategy="RollingUpdate", tag="v1")],
        # Each router's header and cookie route (and sticky sessions where it has them): a dark canary that only
        # matched requests reach, then weighted with the route kept, then the route removed.
        **{f"{mode} header and cookie route: dark, weighted, removed": [
            canary_settings(mode, 0, **match_keys(mode)), canary_settings(mode, 25, **match_keys(mode)),
            canary_settings(mode, 25)] for mode in MATCH_MODES},
    }


@pytest.mark.parametrize("case", sorted(release_update_cases()))
@pytest.mark.no_pods
def test_updates_apply_in_place_without_conflicts(case, applier, namespace):
    """Each config in turn, applied over the one before (no "field is immutable", no apply conflict)."""
    apply_in_turn(applier, namespace, release_update_cases()[case], case)


@pytest.mark.no_pods
def test_a_blue_green_switch_changes_the_services_selectors_only_and_starts_no_pod(kube, applier, namespace):
    """Both colors up, then `active: green` applied: the API server takes it in place (no conflict, nothing
    immutable), the active Service selects green and the preview Service blue, and neither Deployment changes (its
    generation stays: no new ReplicaSet, no pod)."""
    both = into_namespace(render(blue_green_settings(active="blue", blue={"tag": "v1"}, green={"tag": "v2"})),
                          namespace)
    applier.apply_all(both)
    generations = {d.metadata.name: d.metadata.generation
                   for d in apps(kube).list_namespaced_deployment(namespace).items}
    assert set(generations) == {"app-blue", "app-green"}
    switched = into_namespace(render(blue_green_settings(active="green", blue={"tag": "v1"}, green={"tag": "v2"})),
                              namespace)
    changed = [o for o in switched if o not in both]
    assert {(o["kind"], o["metadata"]["name"]) for o in changed} == {("Service", "app"), ("Service", "app-preview")}
    kept = update(applier, both, switched)
    for sent, stored in zip(switched, kept, strict=True):
        assert missing_fields(sent, stored) == [], f"{sent['kind']}/{sent['metadata']['name']}"
    services = {s.metadata.name: s.spec.selector for s in core(kube).list_namespaced_service(namespace).items}
    assert services["app"]["version"] == "green" and services["app-preview"]["version"] == "blue"
    assert {d.metadata.name: d.metadata.generation
            for d in apps(kube).list_namespaced_deployment(namespace).items} == generations


def test_undo_applies_the_earlier_revision_back_and_the_controller_reuses_its_replica_set(kube, applier, namespace):
    """`rollout undo` re-runs the program with the earlier revision's config: applied back over v2, the
    Deployment's template is v1's again and the controller scales v1's ReplicaSet back up (no third one)."""
    v1 = into_namespace(render(release_settings(strategy="RollingUpdate", tag="v1", maxSurge=1, maxUnavailable=1)),
                        namespace)
    v2 = into_namespace(render(release_settings(strategy="RollingUpdate", tag="v2", maxSurge=1, maxUnavailable=1)),
                        namespace)
    deployment = next(o for o in v1 if o["kind"] == "Deployment")
    name = deployment["metadata"]["name"]
    api = apps(kube)

    def image(replica_set: dict[str, Any]) -> str:
        return replica_set["spec"]["template"]["spec"]["containers"][0]["image"]

    def settled_on(tag: str):
        def done(replica_sets: dict[str, Any]) -> bool:
            live = [rs for rs in replica_sets.values() if rs["spec"].get("replicas", 0) > 0]
            return (len(live) == 1 and image(live[0]).endswith(f":{tag}")
                    and live[0].get("status", {}).get("readyReplicas") == deployment["spec"]["replicas"])
        return done

    for objects, tag in ((v1, "v1"), (v2, "v2"), (v1, "v1")):
        applier.apply_all(objects)
        replica_sets = watch_until(api.list_namespaced_replica_set, settled_on(tag), f"{name} settled on {tag}",
                                   namespace=namespace)
    assert len(replica_sets) == 2  # v1's ReplicaSet came back: the undo made no new one
    revisions = {image(rs): rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                 for rs in replica_sets.values()}
    assert revisions == {"arungupta/app-upgrade:v1": "3", "arungupta/app-upgrade:v2": "2"}


@pytest.mark.no_pods
def test_a_changed_selector_fails_in_place_so_no_update_here_changes_one(applier, namespace):
    """The one immutable field the program could change is a Deployment's selector: in place, the real server
    refuses it (so such a change would need replaceOnChanges/deleteBeforeReplace). No config change above changes
    it under the same name: the selector is the release name (and the track), and those name the Deployment."""
    from kubernetes.dynamic.exceptions import UnprocessibleEntityError  # (sic: the client's spelling)

    objects = into_namespace(render(release_settings(strategy="RollingUpdate", tag="v1")), namespace)
    applier.apply_all(objects)
    deployment = copy.deepcopy(next(o for o in objects if o["kind"] == "Deployment"))
    deployment["spec"]["selector"]["matchLabels"]["app-update/track"] = "stable"
    deployment["spec"]["template"]["metadata"]["labels"]["app-update/track"] = "stable"
    with pytest.raises(UnprocessibleEntityError, match="field is immutable"):
        applier.apply(deployment, dry_run=True)
    by_name: dict[str, set[str]] = {}
    every_config = [s for configs in release_update_cases().values() for s in configs]
    for settings in every_config + [s for mode in MODES for s in weight_step(mode)]:
        for obj in render(settings):
            if obj["kind"] == "Deployment":
                selector = yaml.safe_dump(obj["spec"]["selector"], sort_keys=True)
                by_name.setdefault(obj["metadata"]["name"], set()).add(selector)
    assert {name: len(selectors) for name, selectors in by_name.items()} == dict.fromkeys(by_name, 1)


# ---------------------------------------------------------------------------------------------
# 4. The forecast against the real Deployment controller
# ---------------------------------------------------------------------------------------------

# (strategy, replicas, maxSurge, maxUnavailable): the workshop's two Deployments, then fencepost cases (rounding
# of percentages, a zero on either side, one replica, a surge pod that does not keep a pod ready).
FORECAST_CASES: dict[str, tuple[str, int, Any, Any]] = {
    "workshop Recreate 5": ("Recreate", 5, None, None),
    "workshop RollingUpdate 5 surge 1 unavailable 1": ("RollingUpdate", 5, 1, 1),
    "RollingUpdate 5 surge 25% unavailable 25%": ("RollingUpdate", 5, "25%", "25%"),
    "RollingUpdate 3 surge 1 unavailable 0": ("RollingUpdate", 3, 1, 0),
    "RollingUpdate 3 surge 0 unavailable 1": ("RollingUpdate", 3, 0, 1),
    "RollingUpdate 3 surge 100% unavailable 0": ("RollingUpdate", 3, "100%", 0),
    "RollingUpdate 1 surge 0 unavailable 1": ("RollingUpdate", 1, 0, 1),
    "RollingUpdate 3 surge 2 unavailable 0": ("RollingUpdate", 3, 2, 0),
    "RollingUpdate 4 surge 0 unavailable 2": ("RollingUpdate", 4, 0, 2),
    "RollingUpdate 10 surge 25% unavailable 25%": ("RollingUpdate", 10, "25%", "25%"),
    "RollingUpdate 4 surge 1 unavailable 100%": ("RollingUpdate", 4, 1, "100%"),
}
# How long kwok keeps a v1 pod from Ready. The v2 pods are paced (ReadinessPacer).
READY_DELAY = "750ms"


def forecast_settings(strategy: str, replicas: int, surge: Any, unavailable: Any, tag: str) -> dict[str, Any]:
    release: dict[str, Any] = {"strategy": strategy, "tag": tag, "replicas": replicas}
    if surge is not None:
        release["maxSurge"] = surge
    if unavailable is not None:
        release["maxUnavailable"] = unavailable
    return release_settings(**release)


def slow_ready(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Deployment with kwok's readiness delay on its pods (a test-only annotation: the controller ignores it)."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            annotations = obj["spec"]["template"]["metadata"].setdefault("annotations", {})
            annotations[controlplane.READY_DELAY_ANNOTATION] = READY_DELAY
    return objects


def paced_ready(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Deployment with pods that wait for the test to say when they get Ready (ReadinessPacer)."""
    for obj in objects:
        if obj["kind"] == "Deployment":
            annotations = obj["spec"]["template"]["metadata"].setdefault("annotations", {})
            annotations[controlplane.READY_PACED_ANNOTATION] = "true"
    return objects


class ReadinessPacer:
    """Makes the paced pods Ready one at a time, each once the Deployment controller has settled: the forecast's
    model, and what pods that start at different moments do. With one delay for all, the pods of one scale-up,
    created within milliseconds of each other, get Ready together or apart by chance, and so would a fixed interval
    between pods on a loaded machine.

    Settled: every ReplicaSet's status has caught up with its spec, every pod released is Ready and counted
    Available by its ReplicaSet, and the controller's arithmetic (model/fenceposts.py, upstream's tables) scales
    nothing from there. A pacer that released a pod too early would only let the controller see two pods at once:
    the sequence compared is always the controller's own. Called from both watch threads."""

    def __init__(self, core_api, namespace: str, case: tuple[str, int, Any, Any], old_names: set[str]):
        strategy, replicas, surge, unavailable = case
        self.core_api, self.namespace, self.old_names = core_api, namespace, old_names
        self.spec = Strategy(strategy, replicas, surge, unavailable)
        self.lock = threading.Lock()
        self.replica_sets: dict[str, dict[str, Any]] = {}
        self.waiting: list[str] = []  # paced pods not released yet, in the order they appeared
        self.released: set[str] = set()
        self.ready: set[str] = set()

    def replica_set(self, rs: dict[str, Any], deleted: bool) -> None:
        with self.lock:
            self.replica_sets.pop(rs["metadata"]["name"], None)
            if not deleted:
                self.replica_sets[rs["metadata"]["name"]] = rs
            self._release_when_settled()

    def pod(self, pod: dict[str, Any], gone: bool) -> None:
        name = pod["metadata"]["name"]
        if controlplane.READY_PACED_ANNOTATION not in (pod["metadata"].get("annotations") or {}):
            return  # a v1 pod
        with self.lock:
            if gone:
                self.waiting = [other for other in self.waiting if other != name]
                self.released.discard(name)
                self.ready.discard(name)
            elif pod_ready(pod):
                self.ready.add(name)
            elif name not in self.released and name not in self.waiting:
                self.waiting.append(name)
            self._release_when_settled()

    def _settled(self) -> bool:
        if not self.waiting or not self.released <= self.ready:
            return False
        old_spec = old_available = new_spec = new_available = 0
        for name, rs in self.replica_sets.items():
            status = rs.get("status", {})
            if (status.get("replicas", 0) != rs["spec"]["replicas"]
                    or status.get("observedGeneration") != rs["metadata"]["generation"]):
                return False
            if name in self.old_names:
                old_spec, old_available = old_spec + rs["spec"]["replicas"], old_available + status.get(
                    "availableReplicas", 0)
            else:
                new_spec, new_available = new_spec + rs["spec"]["replicas"], new_available + status.get(
                    "availableReplicas", 0)
        if old_available != old_spec or new_available != len(self.ready):
            return False
        if self.spec.type == "Recreate":
            return old_spec == 0 and new_spec == self.spec.replicas
        old_rs, new_rs = ReplicaSet(old_spec, old_available), ReplicaSet(new_spec, new_available)
        return (reconcile_new_replica_set(self.spec, [old_rs, new_rs], new_rs) is None
                and reconcile_old_replica_sets(self.spec, [old_rs], new_rs)[1] == 0)

    def _release_when_settled(self) -> None:
        if not self._settled():
            return
        name = self.waiting.pop(0)
        key = "/metadata/annotations/" + controlplane.READY_AT_ANNOTATION.replace("~", "~0").replace("/", "~1")
        now = datetime.datetime.now(datetime.UTC).isoformat()
        self.core_api.patch_namespaced_pod(name, self.namespace, [{"op": "add", "path": key, "value": now}])
        self.released.add(name)


def dedupe(sequence: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [item for i, item in enumerate(sequence) if i == 0 or item != sequence[i - 1]]


def observe_update(control_plane, tmp_path, case: str, rendered: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Deploy the case's v1 (its Deployment: the Service and the disruption budget around it change nothing the
    controller decides, and would only add writes per pod), wait for it to be Ready, apply v2 and watch, through
    two watch streams started before the change: the ReplicaSets (the controller's decisions: old and new
    spec.replicas, whose sum is the forecast's "most pods") and the pods (how many are Ready at every change:
    "fewest ready"; and how many exist, not being deleted: up to one more than the controller's sum here, a pod the
    old ReplicaSet's scale-down has not reached yet when the new one's pod is created). Events are read as plain
    JSON: every case at once, the client's model objects would cost more CPU than the control plane."""
    from kubernetes import client, watch

    strategy, replicas, surge, unavailable = FORECAST_CASES[case]
    api_client = control_plane.api_client()
    core_api, apps_api = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    namespace = f"f-{abs(hash(case)) % 10**8}-{threading.get_ident() % 10**4}"
    core_api.create_namespace({"metadata": {"name": namespace}})

    def listing(call) -> dict[str, Any]:
        return json.loads(call(namespace, _preload_content=False).data)

    try:
        applier = Applier(api_client, tmp_path / f"{namespace}.json")
        v1, v2 = ([o for o in into_namespace(rendered[tag], namespace) if o["kind"] == "Deployment"]
                  for tag in ("v1", "v2"))
        v1, v2 = slow_ready(v1), paced_ready(v2)
        applier.apply_all(v1)
        watch_until(core_api.list_namespaced_pod,
                    lambda pods: len(pods) == replicas and all(map(pod_ready, pods.values())), f"{case}: v1 Ready",
                    namespace=namespace)
        replica_sets = listing(apps_api.list_namespaced_replica_set)
        pods = listing(core_api.list_namespaced_pod)
        old_names = {rs["metadata"]["name"] for rs in replica_sets["items"]}
        old_hashes = {rs["metadata"]["labels"]["pod-template-hash"] for rs in replica_sets["items"]}
        rs_spec = {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in replica_sets["items"]}
        rs_available = {name: 0 for name in rs_spec}
        live_pods = {p["metadata"]["name"]: p for p in pods["items"]}
        pacer = ReadinessPacer(core_api, namespace, FORECAST_CASES[case], old_names)
        for rs in replica_sets["items"]:
            pacer.replica_set(rs, deleted=False)
        decisions = [(replicas, 0)]
        ready_counts, pod_counts = [replicas], [replicas]

        def old_new() -> tuple[int, int]:
            return (sum(n for name, n in rs_spec.items() if name in old_names),
                    sum(n for name, n in rs_spec.items() if name not in old_names))

        def watch_replica_sets() -> None:
            watcher = watch.Watch()
            for event in watcher.stream(apps_api.list_namespaced_replica_set, namespace, deserialize=False,
                                        resource_version=replica_sets["metadata"]["resourceVersion"],
                                        timeout_seconds=60):
                rs, deleted = event["object"], event["type"] == "DELETED"
                name = rs["metadata"]["name"]
                rs_spec[name] = 0 if deleted else rs["spec"]["replicas"]
                pacer.replica_set(rs, deleted)
                rs_available[name] = 0 if deleted else rs.get("status", {}).get("availableReplicas", 0)
                decisions.append(old_new())
                new_available = sum(n for name, n in rs_available.items() if name not in old_names)
                if decisions[-1] == (0, replicas) and new_available == replicas:
                    watcher.stop()
            assert decisions[-1] == (0, replicas), f"{case}: the update did not finish: {decisions}"

        def watch_pods() -> None:
            watcher = watch.Watch()
            for event in watcher.stream(core_api.list_namespaced_pod, namespace, deserialize=False,
                                        resource_version=pods["metadata"]["resourceVersion"], timeout_seconds=60):
                pod = event["object"]
                gone = event["type"] == "DELETED" or bool(pod["metadata"].get("deletionTimestamp"))
                if gone:
                    live_pods.pop(pod["metadata"]["name"], None)
                else:
                    live_pods[pod["metadata"]["name"]] = pod
                pacer.pod(pod, gone)
                ready_counts.append(sum(map(pod_ready, live_pods.values())))
                pod_counts.append(len(live_pods))
                new = [p for p in live_pods.values() if p["metadata"]["labels"]["pod-template-hash"] not in old_hashes]
                if len(new) == len(live_pods) == replicas and all(map(pod_ready, new)):
                    watcher.stop()

        with ThreadPoolExecutor(2) as pool:
            watchers = [pool.submit(watch_replica_sets), pool.submit(watch_pods)]
            applier.apply_all(v2)
            for future in watchers:
                future.result()
        return {"decisions": dedupe(decisions), "fewest_ready": min(ready_counts),
                "most_pods": max(old + new for old, new in decisions), "most_pods_present": max(pod_counts)}
    finally:
        api_client.close()


@pytest.fixture(scope="module")
def observed_updates(control_plane, crds, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Every case's update, all at once (each in its own namespace): the suite waits for the slowest only."""
    tmp_path = tmp_path_factory.mktemp("forecast")
    # Rendered here, one after the other: the program's runs are not for threads of one process.
    rendered = {case: {tag: render(forecast_settings(*FORECAST_CASES[case], tag)) for tag in ("v1", "v2")}
                for case in FORECAST_CASES}
    with ThreadPoolExecutor(len(FORECAST_CASES)) as pool:
        futures = {case: pool.submit(observe_update, control_plane, tmp_path, case, rendered[case])
                   for case in FORECAST_CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize("case", list(FORECAST_CASES))
def test_forecast_extremes_equal_the_real_controllers(case, observed_updates):
    strategy, replicas, surge, unavailable = FORECAST_CASES[case]
    expected = forecast(replicas, strategy, surge, unavailable)
    observed = observed_updates[case]
    assert (observed["fewest_ready"], observed["most_pods"]) == (expected.min_available_seen,
                                                                 expected.max_pods_seen), observed


@pytest.mark.parametrize("case", list(FORECAST_CASES))
def test_forecast_old_new_sequence_equals_the_real_controllers(case, observed_updates):
    strategy, replicas, surge, unavailable = FORECAST_CASES[case]
    expected = dedupe([(step.old, step.new) for step in forecast(replicas, strategy, surge, unavailable).steps])
    assert observed_updates[case]["decisions"] == expected


# ---------------------------------------------------------------------------------------------
# 5. Availability for real
# ---------------------------------------------------------------------------------------------


def test_pods_spread_across_the_three_zones_as_the_constraints_say(kube, applied_stacks):
    """The dev stack's pods, as the real scheduler placed them: each Deployment's across the three zones within
    the maxSkew of its zone constraint."""
    dev = applied_stacks("dev")
    deployments = {o["metadata"]["name"]: o for o in dev.sent if o["kind"] == "Deployment"}
    total = sum(d["spec"]["replicas"] for d in deployments.values())
    pods = watch_until(core(kube).list_namespaced_pod,
                       lambda ps: sum(bool(p["spec"].get("nodeName")) for p in ps.values()) == total,
                       "every pod scheduled", namespace=dev.namespace)
    nodes = json.loads(core(kube).list_node(_preload_content=False).data)["items"]
    zone_of = {n["metadata"]["name"]: n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes}
    for name, deployment in deployments.items():
        constraint = next(c for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
                          if c["topologyKey"] == "topology.kubernetes.io/zone")
        selector = constraint["labelSelector"]["matchLabels"]
        counts = dict.fromkeys(controlplane.ZONES, 0)
        for pod in pods.values():
            if all(pod["metadata"]["labels"].get(k) == v for k, v in selector.items()):
                counts[zone_of[pod["spec"]["nodeName"]]] += 1
        assert max(counts.values()) - min(counts.values()) <= constraint["maxSkew"], (name, counts)


def test_an_eviction_the_disruption_budget_forbids_is_refused_with_429(kube, applier, namespace):
    """A drain's evictions: the nodes cordoned (a replacement stays Pending), the first eviction is allowed
    (maxUnavailable 1), the second is refused with HTTP 429 by the PodDisruptionBudget the program renders."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    objects = into_namespace(render(release_settings(strategy="RollingUpdate", tag="v1", replicas=3)), namespace)
    budget = next(o for o in objects if o["kind"] == "PodDisruptionBudget")
    assert budget["spec"]["maxUnavailable"] == 1
    applier.apply_all(objects)
    policy = client.PolicyV1Api(kube.api_client)
    watch_until(policy.list_namespaced_pod_disruption_budget,
                lambda pdbs: any(p.get("status", {}).get("disruptionsAllowed") == 1
                                 and p["status"].get("currentHealthy") == 3 for p in pdbs.values()),
                "the budget to allow one disruption", namespace=namespace)
    api = core(kube)
    nodes = [n.metadata.name for n in api.list_node().items]
    try:
        for node in nodes:
            api.patch_node(node, {"spec": {"unschedulable": True}})
        first, second = sorted(api.list_namespaced_pod(namespace).items, key=lambda p: p.metadata.name)[:2]

        def evict(pod):
            return api.create_namespaced_pod_eviction(pod.metadata.name, namespace, client.V1Eviction(
                metadata=client.V1ObjectMeta(name=pod.metadata.name, namespace=namespace)))

        evict(first)
        with pytest.raises(ApiException) as refused:
            evict(second)
        assert refused.value.status == 429
        assert "disruption budget" in refused.value.body
    finally:
        for node in nodes:
            api.patch_node(node, {"spec": {"unschedulable": None}})


def test_replicas_mode_endpoint_slices_split_as_the_plan_says(kube, applied_stacks):
    """`traffic: replicas` (the local stack's `app`, 25%): the Service's EndpointSlices hold the plan's stable
    and canary pods, all ready: the share of endpoints the plan prints."""
    local = applied_stacks("local")
    namespace = local.namespace
    release = next(r for r in local.plan["releases"] if r["name"] == "app")
    assert release["traffic"]["mode"] == "replicas"
    stable, canary = release["traffic"]["stablePods"], release["traffic"]["canaryPods"]
    service = release["service"]["name"]
    from kubernetes import client

    discovery = client.DiscoveryV1Api(kube.api_client)

    def ready_endpoints(slices: dict[str, Any]) -> list[dict[str, Any]]:
        return [e for s in slices.values() for e in s.get("endpoints") or [] if e.get("conditions", {}).get("ready")]

    slices = watch_until(discovery.list_namespaced_endpoint_slice,
                         lambda ss: len(ready_endpoints(ss)) == stable + canary, f"{stable + canary} endpoints",
                         namespace=namespace, label_selector=f"kubernetes.io/service-name={service}")
    pods = watch_until(core(kube).list_namespaced_pod, lambda pods: True, "the pods", namespace=namespace)
    tracks = [pods[e["targetRef"]["name"]]["metadata"]["labels"]["app-update/track"] for e in ready_endpoints(slices)]
    assert (tracks.count("stable"), tracks.count("canary")) == (stable, canary)
    assert 100 * canary / (stable + canary) == release["traffic"]["canaryShare"]


# ---------------------------------------------------------------------------------------------
# 6. The live reads of the operations (operations/live_weight.py, issue #22) against the real API server
# ---------------------------------------------------------------------------------------------


def test_live_weight_readers_confirm_what_the_api_server_holds(kube, applier, namespace):
    """`rollout canary`'s check that a weight is live, read from a real API server: the replicas mode's
    Deployments once their pods are Ready, the VirtualService's weights (no istiod here: weights only), and an
    HTTPRoute no Gateway implementation accepted, which must not count as live."""
    live_weight = pytest.importorskip("operations.live_weight")
    replicas_mode = into_namespace(render(canary_settings("replicas", 25)), namespace)
    applier.apply_all(replicas_mode)
    reader = live_weight.DeploymentsReader(kube.api_client, namespace, "app", 4)
    watch_until(apps(kube).list_namespaced_deployment,
                lambda deployments: len(deployments) == 2 and all(
                    d.get("status", {}).get("readyReplicas", 0) == d["spec"]["replicas"] and
                    d["status"].get("observedGeneration", 0) >= d["metadata"]["generation"]
                    for d in deployments.values()),
                "both tracks Ready", namespace=namespace)
    reading = reader.read(25, 25.0)
    assert (reading.confirmed, reading.share) == (True, 25.0), reading.detail
    assert not reader.read(50, 50.0).confirmed
    for mode, confirmed in (("istio", True), ("gateway", False)):
        applier.apply_all(into_namespace(render(canary_settings(mode, 25)), namespace))
        reading = live_weight.RouteReader(kube.api_client, namespace, "app", mode).read(25, 25.0)
        assert (reading.confirmed, reading.share) == (confirmed, 25.0), reading.detail


# ---------------------------------------------------------------------------------------------
# 7. The namespace's ResourceQuotas (operations/live_capacity.py): what `rollout bluegreen` checks before its preview
# ---------------------------------------------------------------------------------------------

QUOTA_REQUESTS = {"cpu": "250m", "memory": "256Mi"}  # per pod; blue at rest: 3 pods, 750m, 768Mi


@pytest.mark.parametrize("hard,short", [
    ({"pods": "4", "requests.cpu": "10", "requests.memory": "10Gi"}, "pods"),
    ({"count/pods": "4", "requests.cpu": "10", "requests.memory": "10Gi"}, "count/pods"),  # the object-count name
    ({"pods": "20", "requests.cpu": "1", "requests.memory": "10Gi"}, "requests.cpu"),
    ({"pods": "20", "requests.cpu": "10", "requests.memory": "1280Mi"}, "requests.memory"),
    ({"pods": "6", "requests.cpu": "1500m", "requests.memory": "1536Mi"}, None),  # exactly room for both colors
], ids=["pods", "count-pods", "cpu", "memory", "room"])
def test_quota_reader_names_what_the_api_server_refuses_the_new_color(kube, applier, namespace, hard, short):
    """A ResourceQuota filled by blue's pods (status.used written by the quota controller and admission), read as
    `rollout bluegreen` reads it; then green applied at full size, as the preview update does: the API server
    refuses green's pods exactly where the reader said (the refusal's `requested:` names the same keys) and
    admits all of them where it said nothing."""
    from kubernetes import client

    from model.config import load
    from operations import live_capacity

    api = core(kube)
    api.create_namespaced_resource_quota(namespace, {"metadata": {"name": "team"}, "spec": {"hard": hard}})
    watch_until(api.list_namespaced_resource_quota, lambda qs: bool(qs["team"].get("status", {}).get("hard")),
                "the quota controller to write the quota's status", namespace=namespace)
    settings = blue_green_settings(active="blue", blue={"tag": "v1"}, resources={"requests": QUOTA_REQUESTS})
    applier.apply_all(into_namespace(render(settings), namespace))
    watch_until(api.list_namespaced_resource_quota,
                lambda qs: "3" in (qs["team"]["status"].get("used", {}).get(key) for key in ("pods", "count/pods")),
                "blue's 3 pods in the quota's used",
                namespace=namespace)
    release = load(settings, "test").release("app")
    lines = live_capacity.shortfalls(live_capacity.read_quotas(kube.api_client, namespace), release, 3)
    assert [line.split(": ")[1] for line in lines] == ([short] if short else []), lines
    assert all(line.startswith(f"ResourceQuota {namespace}/team: ") for line in lines)

    preview = blue_green_settings(active="blue", blue={"tag": "v1"}, green={"tag": "v2"},
                                  resources={"requests": QUOTA_REQUESTS})
    applier.apply_all(into_namespace(render(preview), namespace))
    green = "version=green"

    def refused(sets: dict[str, Any]) -> list[str]:
        return [c.get("message", "") for rs in sets.values() for c in rs.get("status", {}).get("conditions", [])
                if c["type"] == "ReplicaFailure" and "exceeded quota" in c.get("message", "")]

    if short is None:
        watch_until(apps(kube).list_namespaced_replica_set,
                    lambda sets: sum(rs.get("status", {}).get("readyReplicas", 0) for rs in sets.values()) == 3,
                    "green's 3 pods ready",
                    namespace=namespace, label_selector=green)
        assert refused(watch_until(apps(kube).list_namespaced_replica_set, lambda sets: True, "green's ReplicaSets",
                                   namespace=namespace, label_selector=green)) == []
        return
    sets = watch_until(apps(kube).list_namespaced_replica_set, lambda found: bool(refused(found)),
                       "green's ReplicaSet refused a pod by the quota", namespace=namespace, label_selector=green)
    message = refused(sets)[0]
    found = re.search(r"exceeded quota: team, requested: (\S+), used:", message)
    assert found, message
    assert sorted(item.split("=")[0] for item in found.group(1).split(",")) == [short]
    pods = client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace, label_selector=green).items
    assert len(pods) < 3  # the new color cannot come up complete: its Deployment would never be ready


LIMIT_RANGE = {"metadata": {"name": "defaults"},
               "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "500m"}}]}}


@pytest.mark.parametrize("hard,with_limit_range,expected", [
    # blue's 3 pods at the LimitRange's 500m, and green's 3 more, are 3 cores: past 2
    ({"requests.cpu": "2"}, True, ["requests.cpu: 1.5 cores used + 1.5 cores for the new color > 2 cores hard",
                                   "counted with the defaults of LimitRange {ns}/defaults: cpu request 500m each"]),
    ({"requests.cpu": "3"}, True, []),  # exactly room for both colors at the default
    ({"requests.cpu": "10"}, False, ["requests.cpu: the pods would not set it (no resources.requests.cpu and no "
                                     "LimitRange default) and the API server refuses a pod without it"]),
], ids=["limit-range-short", "limit-range-room", "must-specify"])
def test_quota_reader_counts_pods_as_admitted_with_the_limit_ranges_defaults(kube, applier, namespace, hard,
                                                                             with_limit_range, expected):
    """A release that sets no requests: its pods take the namespace's LimitRange defaults at admission (the
    LimitRanger plugin), and a quota on requests.cpu refuses pods that have none. Blue comes up first, then the
    quota; the reader's lines, then green applied: the API server refuses green's pods exactly where the reader
    said (over the quota, or "must specify"), and admits all of them where it said nothing."""
    from model.config import load
    from operations import live_capacity

    api = core(kube)
    if with_limit_range:
        api.create_namespaced_limit_range(namespace, LIMIT_RANGE)
    no_cpu = {"requests": {"memory": "64Mi"}}  # a given `resources` replaces the program's defaults whole
    settings = blue_green_settings(active="blue", blue={"tag": "v1"}, resources=no_cpu)
    applier.apply_all(into_namespace(render(settings), namespace))
    watch_until(apps(kube).list_namespaced_replica_set,
                lambda sets: sum(rs.get("status", {}).get("readyReplicas", 0) for rs in sets.values()) == 3,
                "blue's 3 pods ready", namespace=namespace, label_selector="version=blue")
    api.create_namespaced_resource_quota(namespace, {"metadata": {"name": "team"}, "spec": {"hard": hard}})
    blue_cpu = "1500m" if with_limit_range else "0"
    watch_until(api.list_namespaced_resource_quota,
                lambda qs: qs["team"].get("status", {}).get("used", {}).get("requests.cpu") == blue_cpu,
                "blue's pods in the quota's used", namespace=namespace)
    release = load(settings, "test").release("app")
    lines = live_capacity.shortfalls(live_capacity.read_quotas(kube.api_client, namespace), release, 3,
                                     live_capacity.read_limit_ranges(kube.api_client, namespace))
    assert lines == [line.format(ns=namespace) if line.startswith("counted") else
                     f"ResourceQuota {namespace}/team: {line}" for line in expected]

    preview = blue_green_settings(active="blue", blue={"tag": "v1"}, green={"tag": "v2"}, resources=no_cpu)
    applier.apply_all(into_namespace(render(preview), namespace))
    green = "version=green"

    def refused(sets: dict[str, Any]) -> list[str]:
        return [c.get("message", "") for rs in sets.values() for c in rs.get("status", {}).get("conditions", [])
                if c["type"] == "ReplicaFailure" and "quota" in c.get("message", "")]

    if not expected:
        watch_until(apps(kube).list_namespaced_replica_set,
                    lambda sets: sum(rs.get("status", {}).get("readyReplicas", 0) for rs in sets.values()) == 3,
                    "green's 3 pods ready", namespace=namespace, label_selector=green)
        return
    sets = watch_until(apps(kube).list_namespaced_replica_set, lambda found: bool(refused(found)),
                       "green's ReplicaSet refused a pod by the quota", namespace=namespace, label_selector=green)
    message = refused(sets)[0]
    if with_limit_range:
        assert "exceeded quota: team, requested: requests.cpu=500m," in message, message
    else:
        assert "failed quota: team: must specify requests.cpu" in message, message


WITHIN = {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}}


@pytest.mark.parametrize("limits,resources,expected", [
    ([{"type": "Container", "max": {"cpu": "500m"}}], {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}},
     "maximum cpu usage per Container is 500m, but limit is 1"),
    ([{"type": "Container", "min": {"memory": "128Mi"}}], {"requests": {"cpu": "250m", "memory": "64Mi"}},
     "minimum memory usage per Container is 128Mi, but request is 64Mi"),
    ([{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}],
     {"requests": {"cpu": "250m"}, "limits": {"cpu": "1"}},
     "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"),
    ([{"type": "Pod", "max": {"memory": "256Mi"}}], {"requests": {"memory": "128Mi"}, "limits": {"memory": "512Mi"}},
     "maximum memory usage per Pod is 256Mi, but limit is 512Mi"),
    ([{"type": "Pod", "max": {"memory": "256Mi"}}], {"requests": {"memory": "128Mi"}},
     "maximum memory usage per Pod is 256Mi.  No limit is specified"),
    # every kind of bound, each met: the API server admits the pod, the check names nothing
    ([{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "32Mi"}, "maxLimitRequestRatio": {"cpu": "4"}},
      {"type": "Pod", "max": {"memory": "1Gi"}}], WITHIN, None),
], ids=["container-max", "container-min", "container-ratio", "pod-max", "pod-max-no-limit", "within"])
def test_limit_range_check_names_what_the_api_server_refuses_the_new_colors_pods(kube, namespace, limits,
                                                                                 resources, expected):
    """A LimitRange's bounds, as the API server's LimitRanger admission enforces them: the new color's pod template
    created as a Pod (dryRun=All: nothing is stored or runs) is refused with 403 and the plugin's message exactly
    where the check names the bound, and admitted where it names nothing. The API server fills the stored
    LimitRange's defaults (a `max` gives `default`, a `min` gives `defaultRequest`), and the check reads it back."""
    from kubernetes.client.exceptions import ApiException

    from model.config import load
    from operations import live_capacity

    api = core(kube)
    api.create_namespaced_limit_range(namespace, {"metadata": {"name": "bounds"}, "spec": {"limits": limits}})
    settings = blue_green_settings(active="blue", blue={"tag": "v1"}, green={"tag": "v2"}, resources=resources)
    release = load(settings, "test").release("app")
    lines = live_capacity.limit_range_refusals(live_capacity.read_limit_ranges(kube.api_client, namespace), release)
    assert lines == ([f"LimitRange {namespace}/bounds: {expected}"] if expected else [])

    template = next(obj["spec"]["template"] for obj in render(settings) if obj["kind"] == "Deployment"
                    and obj["spec"]["template"]["metadata"]["labels"].get("version") == "green")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "green", "labels": template["metadata"]["labels"]},
           "spec": template["spec"]}
    # The ServiceAccount admission refuses a pod before its namespace's `default` ServiceAccount exists.
    watch_until(api.list_namespaced_service_account, lambda accounts: "default" in accounts,
                "the namespace's default ServiceAccount", namespace=namespace)
    if expected is None:
        created = api.create_namespaced_pod(namespace, pod, dry_run="All")
        assert created.spec.containers[0].resources.limits["cpu"] == "1"
        return
    with pytest.raises(ApiException) as refused:
        api.create_namespaced_pod(namespace, pod, dry_run="All")
    assert refused.value.status == 403, refused.value.body
    assert json.loads(refused.value.body)["message"] == f'pods "green" is forbidden: {expected}'
