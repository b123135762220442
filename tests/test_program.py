"""The real program under provider-like mocks: what each component registers."""

import os

import pytest
import yaml

from components.stack_config import StackConfigRejected
from model.stack_file import stack_settings
from tests.conftest import ROOT, STACKS, objects_of, ok_run, pod_labels, run_with, selects, workshop_release

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"


def deployments(run):
    return objects_of(run, DEPLOYMENT)


def services(run):
    return objects_of(run, SERVICE)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_runs(stack_runs, stack):
    run = stack_runs[stack]
    assert run.error is None, run.error
    assert run.of_type("kubernetes:core/v1:Namespace")
    assert run.of_type(DEPLOYMENT)
    assert set(run.outputs["releases"]) == {r.name for r in run.resources if r.type.startswith("app-update:index:")
                                             and not r.type.endswith("Cluster")}


@pytest.mark.parametrize("stack", STACKS)
def test_every_kubernetes_resource_uses_the_explicit_provider(stack_runs, stack):
    run = stack_runs[stack]
    providers = {r.urn for r in run.resources if r.type == "pulumi:providers:kubernetes"}
    assert len(providers) == 1
    for resource in run.kubernetes_objects():
        assert resource.provider and resource.provider.rsplit("::", 1)[0] in providers, resource.name


@pytest.mark.parametrize("stack", STACKS)
def test_selectors_never_overlap_between_deployments(stack_runs, stack):
    deps = deployments(stack_runs[stack])
    for name, dep in deps.items():
        selector = dep["spec"]["selector"]["matchLabels"]
        assert selects(selector, pod_labels(dep)), name
        tags = {dep["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[-1].split("@")[0]}
        assert "app.kubernetes.io/version" not in selector and not tags & set(selector.values()), \
            "an image tag must never be in a selector"
        for other_name, other in deps.items():
            if other_name != name:
                assert not selects(selector, pod_labels(other)), f"{name} would adopt pods of {other_name}"


def test_dev_is_the_workshop(stack_runs):
    run = stack_runs["dev"]
    deps = deployments(run)
    assert deps["app-recreate"]["spec"]["replicas"] == 5
    assert deps["app-recreate"]["spec"]["strategy"] == {"type": "Recreate"}
    assert deps["app-rolling"]["spec"]["replicas"] == 5
    assert deps["app-rolling"]["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    for dep in deps.values():
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"].startswith("arungupta/app-upgrade:")
    # At rest: the workshop's 2 + 2 split is a commented example in the file (next test).
    assert (deps["app-stable"]["spec"]["replicas"], deps["app-canary"]["spec"]["replicas"]) == (4, 0)
    svcs = services(run)
    assert set(svcs) == {"app-recreate", "app-rolling", "app-service", "app-bg-service", "app-bg-preview"}
    for svc in svcs.values():
        assert svc["spec"]["type"] == "LoadBalancer"
        assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize("stack", STACKS)
def test_committed_stack_files_start_with_every_canary_at_weight_0(stack_runs, stack):
    """The first `rollout canary` on a fresh stack refuses a canary that already carries traffic:
    every committed stack file starts at rest (no weight, no pods for a weight, no per-track split)."""
    releases = stack_settings(stack, ROOT)["app-update:releases"]
    canaries = {name: r for name, r in releases.items() if r["strategy"] == "Canary"}
    for name, release in canaries.items():
        assert release["canary"].get("weight", 0) == 0, name
        assert "podsForWeight" not in release["canary"] and "replicas" not in release["canary"], name
        assert stack_runs[stack].outputs["releases"][name]["effectiveWeight"] == 0, name


def test_dev_shows_the_workshops_split_as_a_commented_example_that_works():
    lines = (ROOT / "Pulumi.dev.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "workshop's split" in line)
    example = yaml.safe_load("\n".join(line.strip().removeprefix("#").strip() for line in lines[start + 1:start + 5]
                                        if line.strip().startswith("#   ")))
    dev = stack_settings("dev", ROOT)["app-update:releases"]["app"]
    split = {k: v for k, v in dev.items() if k not in ("replicas", "stable", "canary")} | example
    deps = deployments(ok_run({"app": split}))
    assert (deps["app-stable"]["spec"]["replicas"], deps["app-canary"]["spec"]["replicas"]) == (2, 2)
    assert {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deps.values()} == {
        "arungupta/app-upgrade:v1", "arungupta/app-upgrade:v2"}


def test_single_track_release_wires_service_to_its_pods():
    run = ok_run({"web": workshop_release()})
    dep = deployments(run)["web"]
    svc = services(run)["web"]
    assert selects(svc["spec"]["selector"], pod_labels(dep))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert svc["spec"]["ports"][0]["targetPort"] == container["ports"][0]["containerPort"]


def test_custom_ports_map_service_port_to_container_port():
    run = ok_run({"web": workshop_release(port=9000, servicePort=8081)})
    svc = services(run)["web"]
    assert svc["spec"]["ports"][0]["port"] == 8081 and svc["spec"]["ports"][0]["targetPort"] == 9000
    container = deployments(run)["web"]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 9000


def test_pod_template_is_hardened_and_drains_gracefully():
    run = ok_run({"web": workshop_release(healthPath="/healthz", preStopSeconds=10,
                                          resources={"requests": {"cpu": "100m", "memory": "96Mi"},
                                                     "limits": {"cpu": "500m", "memory": "256Mi"}})})
    dep = deployments(run)["web"]
    pod = dep["spec"]["template"]["spec"]
    container = pod["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"] == {"requests": {"cpu": "100m", "memory": "96Mi"},
                                      "limits": {"cpu": "500m", "memory": "256Mi"}}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 1000
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 10}}
    assert pod["terminationGracePeriodSeconds"] > 10
    spec = dep["spec"]
    assert spec["revisionHistoryLimit"] == 10
    assert spec["minReadySeconds"] == 5 and spec["progressDeadlineSeconds"] == 600


def test_change_cause_names_stack_and_image():
    run = ok_run({"web": workshop_release(tag="v2")}, stack="staging")
    annotations = deployments(run)["web"]["metadata"]["annotations"]
    assert annotations["kubernetes.io/change-cause"] == "app-update staging: arungupta/app-upgrade:v2"


def test_canary_pair_service_selects_both_tracks_and_nothing_else():
    run = ok_run({
        "app": {"strategy": "Canary", "serviceName": "app-service",
                "stable": {"tag": "v1", "replicas": 2}, "canary": {"tag": "v2", "replicas": 2}},
        "other": workshop_release(),
    })
    deps = deployments(run)
    selector = services(run)["app-service"]["spec"]["selector"]
    assert selects(selector, pod_labels(deps["app-stable"]))
    assert selects(selector, pod_labels(deps["app-canary"]))
    assert not selects(selector, pod_labels(deps["other"]))
    assert pod_labels(deps["app-stable"])["app.kubernetes.io/version"] == "v1"
    assert pod_labels(deps["app-canary"])["app.kubernetes.io/version"] == "v2"


def canary_step(stable, canary):
    return {"app": {"strategy": "Canary", "serviceName": "app-service",
                    "stable": {"tag": "v1", "replicas": stable}, "canary": {"tag": "v2", "replicas": canary}}}


def test_workshop_canary_sequence():
    shares = []
    for stable, canary in [(2, 2), (2, 4), (0, 4)]:
        run = ok_run(canary_step(stable, canary))
        deps = deployments(run)
        assert (deps["app-stable"]["spec"]["replicas"], deps["app-canary"]["spec"]["replicas"]) == (stable, canary)
        shares.append(run.outputs["releases"]["app"]["effectiveWeight"])
    assert shares == [50.0, pytest.approx(66.67), 100.0]


def test_promotion_changes_images_but_never_names_or_selectors():
    before = ok_run(canary_step(2, 2))
    promoted = {"app": {"strategy": "Canary", "serviceName": "app-service",
                        "stable": {"tag": "v2", "replicas": 4}, "canary": {"tag": "v2", "replicas": 0}}}
    after = ok_run(promoted)
    for name in ("app-stable", "app-canary"):
        b, a = deployments(before)[name], deployments(after)[name]
        assert b["spec"]["selector"] == a["spec"]["selector"]
        assert b["metadata"]["name"] == a["metadata"]["name"]
    assert deployments(after)["app-stable"]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v2")
    assert services(before)["app-service"]["spec"]["selector"] == services(after)["app-service"]["spec"]["selector"]


def test_local_stack_does_not_wait_for_load_balancers(stack_runs):
    for svc in stack_runs["local"].of_type(SERVICE):
        if svc.inputs["spec"]["type"] == "LoadBalancer":
            assert svc.inputs["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    for svc in stack_runs["dev"].of_type(SERVICE):
        assert "pulumi.com/skipAwait" not in (svc.inputs["metadata"].get("annotations") or {})


def test_outputs_carry_addresses_images_and_weights(stack_runs):
    releases = stack_runs["dev"].outputs["releases"]
    assert releases["app-rolling"]["address"].endswith(".amazonaws.com")
    assert releases["app-rolling"]["images"] == {"app": "arungupta/app-upgrade:v1"}
    assert releases["app"]["tags"] == {"stable": "v1", "canary": "v2"}
    assert releases["app"]["effectiveWeight"] == 0


def test_approximated_canary_weight_logs_a_warning_naming_the_exact_total():
    run = ok_run({"app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"},
                          "canary": {"tag": "v2", "weight": 5}}})
    assert any("20 pods" in w and "app" in w for w in run.warnings), run.warnings
    exact = ok_run({"app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"},
                            "canary": {"tag": "v2", "weight": 25}}})
    assert not exact.warnings


def test_invalid_config_fails_with_the_key_path_and_registers_nothing():
    run = run_with({"app-rolling": workshop_release(maxSurge=0, maxUnavailable=0),
                    "app": {"strategy": "Recreate", "tag": "v1", "maxSurge": 1}})
    assert isinstance(run.error, StackConfigRejected) and run.error.code == 32  # exit status 32: already reported
    message = str(run.error)
    assert message.splitlines()[0] == "2 problems in Pulumi.test.yaml; nothing was deployed or written"
    assert "app-update:releases.app-rolling.maxUnavailable" in message
    assert "app-update:releases.app.maxSurge" in message
    assert run.warnings == [message]  # logged once, as an error diagnostic
    assert run.resources == []


def test_eks_mode_without_region_registers_nothing():
    run = run_with({"web": workshop_release()}, cluster={"mode": "eks"})
    assert isinstance(run.error, StackConfigRejected)
    assert "aws:region" in str(run.error)
    assert run.resources == []


def test_kubeconfig_provider_targets_the_configured_context():
    run = ok_run({"web": workshop_release()}, cluster={"mode": "kubeconfig", "context": "kind-app-update"})
    [provider] = run.of_type("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "kind-app-update"
    current = ok_run({"web": workshop_release()})
    assert "context" not in current.of_type("pulumi:providers:kubernetes")[0].inputs


PDB = "kubernetes:policy/v1:PodDisruptionBudget"


@pytest.mark.parametrize("stack", STACKS)
def test_every_deployment_of_two_or_more_pods_has_a_budget_selecting_exactly_its_pods(stack_runs, stack):
    run = stack_runs[stack]
    deps = deployments(run)
    budgets = objects_of(run, PDB)
    assert set(budgets) == {name for name, d in deps.items() if d["spec"]["replicas"] >= 2}
    for name, budget in budgets.items():
        spec = budget["spec"]
        # The budget's pods are this Deployment's and no other's.
        owners = [n for n, d in deps.items() if selects(spec["selector"]["matchLabels"], pod_labels(d))]
        assert owners == [name]
        assert spec["selector"] == deps[name]["spec"]["selector"]
        # Always at least one eviction allowed: a drain never hangs on it.
        assert isinstance(spec["maxUnavailable"], int) and spec["maxUnavailable"] >= 1
        assert "minAvailable" not in spec
        assert spec["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_template_spreads_over_zones_and_nodes_softly(stack_runs, stack):
    for deployment in deployments(stack_runs[stack]).values():
        spec = deployment["spec"]["template"]["spec"]
        constraints = spec["topologySpreadConstraints"]
        assert [c["topologyKey"] for c in constraints] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
        for constraint in constraints:
            assert constraint["whenUnsatisfiable"] == "ScheduleAnyway" and constraint["maxSkew"] == 1
            assert constraint["labelSelector"] == deployment["spec"]["selector"]


@pytest.mark.parametrize("replicas,surge,unavailable,budget", [
    (2, 1, 0, 1), (5, 1, 1, 1), (10, "25%", "25%", 2), (10, 1, "50%", 5), (3, "25%", "25%", 1),
])
def test_budget_follows_the_rolling_update_fencepost_and_never_drops_below_one(replicas, surge, unavailable, budget):
    run = ok_run({"app": workshop_release(replicas=replicas, maxSurge=surge, maxUnavailable=unavailable)})
    assert objects_of(run, PDB)["app"]["spec"]["maxUnavailable"] == budget


def test_one_pod_gets_no_budget_and_a_canary_track_gets_its_own():
    run = ok_run({"solo": workshop_release(replicas=1),
                  "app": {"strategy": "Canary", "replicas": 10, "stable": {"tag": "v1"},
                          "canary": {"tag": "v2", "weight": 20}}})
    assert set(objects_of(run, PDB)) == {"app-stable", "app-canary"}


def test_budgets_skip_the_eviction_policy_before_kubernetes_1_27():
    run = ok_run({"app": workshop_release()}, cluster={"mode": "kubeconfig", "kubernetesVersion": "1.26"})
    assert "unhealthyPodEvictionPolicy" not in objects_of(run, PDB)["app"]["spec"]


@pytest.mark.parametrize("version,handler", [("1.29", {"exec": {"command": ["sleep", "5"]}}),
                                             ("1.30", {"sleep": {"seconds": 5}}), ("1.35", {"sleep": {"seconds": 5}})])
def test_the_pre_stop_pause_uses_the_sleep_action_only_where_the_version_has_it(version, handler):
    run = ok_run({"app": workshop_release()}, cluster={"mode": "kubeconfig", "kubernetesVersion": version})
    [container] = deployments(run)["app"]["spec"]["template"]["spec"]["containers"]
    assert container["lifecycle"]["preStop"] == handler


@pytest.mark.parametrize("strategy", ["Recreate", "RollingUpdate", "Canary", "BlueGreen"])
def test_each_release_component_aliases_the_other_strategies(strategy):
    release = workshop_release(strategy=strategy) if strategy != "Canary" else {
        "strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 0}}
    if strategy == "Recreate":
        release = {"strategy": "Recreate", "tag": "v1", "replicas": 2}
    if strategy == "BlueGreen":
        release = {"strategy": "BlueGreen", "replicas": 2, "active": "blue", "blue": {"tag": "v1"}}
    run = ok_run({"app": release})
    [component] = [r for r in run.resources if not r.custom and r.name == "app"]
    others = {"Recreate": "RecreateDeployment", "RollingUpdate": "RollingDeployment", "Canary": "CanaryPair",
              "BlueGreen": "BlueGreenPair"}
    expected = {f"app-update:index:{t}" for s, t in others.items() if s != strategy}
    assert {alias["type"] for alias in component.aliases} == expected


@pytest.mark.parametrize("stack", STACKS)
def test_services_never_wait_for_pods_that_come_after_them(stack_runs, stack):
    # pulumi-kubernetes' default Service await waits for ready endpoints; the Deployments come after
    # their Services (and a canary track may have none), so a Service waits for its address at most.
    for svc in stack_runs[stack].of_type(SERVICE):
        annotations = svc.inputs["metadata"].get("annotations") or {}
        if svc.inputs["spec"]["type"] == "LoadBalancer" and annotations.get("pulumi.com/skipAwait") != "true":
            assert annotations["pulumi.com/waitFor"] == "jsonpath={.status.loadBalancer.ingress}"
        else:
            assert annotations.get("pulumi.com/skipAwait") == "true"


@pytest.mark.parametrize("environment", [
    {"KUBECONFIG": "/home/alice/.kube/config"},
    {"KUBECONFIG": "/srv/ci/kubeconfig:/home/ci/.kube/config"},
    {"KUBECONFIG": None, "HOME": "/home/bob"},
])
def test_the_kubeconfig_providers_inputs_do_not_depend_on_where_the_operator_keeps_the_file(monkeypatch,
                                                                                            environment):
    from preview.runner import run_program  # a fresh run: the shared runs are keyed on config, not environment

    for name, value in environment.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    settings = {"app-update:cluster": {"mode": "kubeconfig", "context": "kind-app-update"},
                "app-update:releases": {"web": workshop_release()}}
    run = run_program("local", ROOT, settings=settings)
    assert run.error is None, run.error
    [provider] = run.of_type("pulumi:providers:kubernetes")
    assert provider.inputs == {"context": "kind-app-update"}
    assert os.environ.get("KUBECONFIG") == environment.get("KUBECONFIG")  # the program put it back
