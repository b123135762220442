"""The EKS stacks (dev, staging, prod) under mocks: network, IAM, control plane, provider wiring."""

import ipaddress
import json
import re

import pytest

from model.config import validate
from model.stack_file import stack_settings
from model.subnets import subnet_plan
from tests.conftest import ROOT

EKS_STACKS = ["dev", "staging", "prod"]


def by_type(run, typ):
    return [r for r in run.resources if r.type == typ]


def config_of(stack):
    own = {k.split(":", 1)[1]: v for k, v in stack_settings(stack, ROOT).items() if k.startswith("app-update:")}
    other = {k: v for k, v in stack_settings(stack, ROOT).items() if not k.startswith("app-update:")}
    return validate(own, stack, other)


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_subnets_fit_the_vpc_without_overlap_and_carry_load_balancer_tags(stack_runs, stack):
    run = stack_runs[stack]
    assert run.error is None
    vpc = ipaddress.ip_network(by_type(run, "aws:ec2/vpc:Vpc")[0].inputs["cidrBlock"])
    subnets = by_type(run, "aws:ec2/subnet:Subnet")
    networks = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(n.subnet_of(vpc) for n in networks)
    assert not any(a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1:])
    public = [s for s in subnets if "public" in s.name]
    private = [s for s in subnets if "private" in s.name]
    zones = config_of(stack).cluster.availability_zones
    assert len(public) == len(private) == zones
    assert all(s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in private)
    assert len({s.inputs["availabilityZone"] for s in private}) == zones


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_nodes_run_in_private_subnets_only_and_roll_one_at_a_time(stack_runs, stack):
    run = stack_runs[stack]
    private_ids = {s.id for s in by_type(run, "aws:ec2/subnet:Subnet") if "private" in s.name}
    group = by_type(run, "aws:eks/nodeGroup:NodeGroup")[0]
    assert set(group.inputs["subnetIds"]) == private_ids
    assert group.inputs["updateConfig"] == {"maxUnavailable": 1}
    nodes = config_of(stack).cluster.nodes
    assert group.inputs["scalingConfig"] == {"minSize": nodes.min, "desiredSize": nodes.desired, "maxSize": nodes.max}


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_control_plane_logs_encrypts_secrets_and_limits_the_endpoint(stack_runs, stack):
    run = stack_runs[stack]
    cluster = by_type(run, "aws:eks/cluster:Cluster")[0].inputs
    assert set(cluster["enabledClusterLogTypes"]) >= {"api", "audit", "authenticator"}
    key = by_type(run, "aws:kms/key:Key")[0]
    assert key.inputs["enableKeyRotation"] is True
    assert cluster["encryptionConfig"] == {"provider": {"keyArn": key.outputs["arn"]}, "resources": ["secrets"]}
    vpc_config = cluster["vpcConfig"]
    assert vpc_config["endpointPrivateAccess"] is True
    assert vpc_config["publicAccessCidrs"] == list(config_of(stack).cluster.endpoint_public_access_cidrs)
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert cluster["version"] == "1.35"


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_deployer_is_cluster_admin_through_an_access_entry(stack_runs, stack):
    run = stack_runs[stack]
    association = by_type(run, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation")[0].inputs
    assert association["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert association["principalArn"] == by_type(run, "aws:eks/accessEntry:AccessEntry")[0].inputs["principalArn"]


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_iam_roles_get_only_the_managed_policies_they_need(stack_runs, stack):
    run = stack_runs[stack]
    attached = {}
    for a in by_type(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        attached.setdefault(a.inputs["role"], set()).add(a.inputs["policyArn"].rsplit("/", 1)[-1])
    roles = {r.name: r.outputs["name"] for r in by_type(run, "aws:iam/role:Role")}
    assert attached[roles["cluster-control-plane"]] == {"AmazonEKSClusterPolicy"}
    assert attached[roles["cluster-nodes"]] == {"AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy",
                                               "AmazonEC2ContainerRegistryReadOnly"}
    for policies in attached.values():
        assert "AdministratorAccess" not in policies


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_kubeconfig_is_a_secret_output_with_no_static_credentials(stack_runs, stack):
    run = stack_runs[stack]
    assert "kubeconfig" in run.secret_outputs
    kubeconfig = json.loads(run.outputs["kubeconfig"])
    user = kubeconfig["users"][0]["user"]
    assert set(user) == {"exec"}
    assert user["exec"]["command"] == "aws" and "get-token" in user["exec"]["args"]
    everything = json.dumps(run.outputs) + json.dumps([r.outputs for r in run.resources])
    assert not re.search(r"AKIA[0-9A-Z]{16}|aws_secret_access_key|\"token\"\s*:", everything)


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_kubernetes_provider_comes_from_the_cluster_and_survives_kubeconfig_refresh(stack_runs, stack):
    run = stack_runs[stack]
    provider = by_type(run, "pulumi:providers:kubernetes")[0]
    assert provider.parent_name == "cluster"
    cluster = by_type(run, "aws:eks/cluster:Cluster")[0]
    assert provider.inputs["clusterIdentifier"] == cluster.outputs["arn"]
    # The provider receives the kubeconfig as a secret value.
    assert "kubeconfig" in provider.secret_inputs
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster.outputs["endpoint"]


def test_nat_per_zone_in_prod_single_elsewhere(stack_runs):
    assert len(by_type(stack_runs["prod"], "aws:ec2/natGateway:NatGateway")) == 3
    assert len(by_type(stack_runs["dev"], "aws:ec2/natGateway:NatGateway")) == 1


def test_prod_is_pinned_to_its_account_and_protected():
    settings = stack_settings("prod", ROOT)
    assert settings["aws:allowedAccountIds"] == ["123456789012"]
    config = config_of("prod")
    assert config.allowed_account_ids == ("123456789012",) and config.protected is True


def test_load_balancer_controller_is_pinned_and_releases_wait_for_it(stack_runs):
    run = stack_runs["staging"]
    release = by_type(run, "kubernetes:helm.sh/v3:Release")[0]
    assert release.inputs["chart"] == "aws-load-balancer-controller"
    major, minor, _ = (int(x) for x in release.inputs["version"].split("."))
    assert (major, minor) >= (1, 16)  # controller v2.16: weighted NLB target groups
    role_arn = release.inputs["values"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"]
    role = next(r for r in by_type(run, "aws:iam/role:Role") if r.outputs["arn"] == role_arn)
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert any(v == "system:serviceaccount:kube-system:aws-load-balancer-controller"
               for v in trust["Condition"]["StringEquals"].values())
    group_urn = by_type(run, "aws:eks/nodeGroup:NodeGroup")[0].urn
    assert group_urn in release.dependencies
    namespace = run.named("namespace")
    assert release.urn in namespace.dependencies and group_urn in namespace.dependencies


def test_nlb_annotations_only_with_the_controller(stack_runs):
    for svc in by_type(stack_runs["staging"], "kubernetes:core/v1:Service"):
        if svc.inputs["spec"]["type"] == "LoadBalancer":
            annotations = svc.inputs["metadata"]["annotations"]
            assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"
            assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"
            assert annotations["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    for svc in by_type(stack_runs["dev"], "kubernetes:core/v1:Service"):
        annotations = svc.inputs["metadata"].get("annotations") or {}
        # (app-update/ annotations are the project's own: a blue-green Service's role and preview check)
        assert not [k for k in annotations if not k.startswith(("pulumi.com/", "app-update/"))]
    assert not by_type(stack_runs["dev"], "kubernetes:helm.sh/v3:Release")


@pytest.mark.parametrize("cidr,zones", [("10.0.0.0/16", 2), ("10.0.0.0/16", 3), ("172.16.0.0/20", 3)])
def test_subnet_plan(cidr, zones):
    public, private = subnet_plan(cidr, zones)
    nets = [ipaddress.ip_network(n) for n in public + private]
    assert len(nets) == 2 * zones and len(set(nets)) == len(nets)
    assert all(n.subnet_of(ipaddress.ip_network(cidr)) for n in nets)


EKS_INVALID = [
    ({"nodes": {"min": 3, "desired": 2, "max": 4}}, "cluster.nodes", "min <= desired <= max"),
    ({"vpcCidr": "10.0.0.0/33"}, "cluster.vpcCidr", "CIDR"),
    ({"vpcCidr": "10.0.0.0/8"}, "cluster.vpcCidr", "/16 to /20"),
    ({"availabilityZones": 4}, "cluster.availabilityZones", "between 2 and 3"),
    ({"natGateways": "many"}, "cluster.natGateways", "single, perAz"),
    ({"endpointPublicAccessCidrs": ["10.0.0.1/8"]}, "cluster.endpointPublicAccessCidrs[0]", "no host bits"),
    ({"nodes": {"instanceTypes": ["huge"]}}, "cluster.nodes.instanceTypes[0]", "EC2 instance type"),
    ({"nodes": {"capacityType": "CHEAP"}}, "cluster.nodes.capacityType", "ON_DEMAND, SPOT"),
    ({"context": "kind"}, "cluster.context", "unknown key"),
]


@pytest.mark.parametrize("cluster,key,rule", EKS_INVALID)
def test_eks_settings_are_validated(cluster, key, rule):
    from model.config import ConfigError

    raw = {"cluster": {"mode": "eks", **cluster}, "releases": {"app": {"strategy": "Recreate", "tag": "v1"}}}
    with pytest.raises(ConfigError) as caught:
        validate(raw, "test", {"aws:region": "us-west-2"})
    assert len(caught.value.problems) == 1, caught.value.problems
    assert caught.value.problems[0].startswith(f"app-update:{key}: ") and rule in caught.value.problems[0]


def test_allowed_account_ids_must_be_account_ids():
    from model.config import ConfigError

    raw = {"releases": {"app": {"strategy": "Recreate", "tag": "v1"}}}
    with pytest.raises(ConfigError) as caught:
        validate(raw, "test", {"aws:allowedAccountIds": ["12345"]})
    assert caught.value.problems[0].startswith("aws:allowedAccountIds: ")


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_node_group_follows_the_control_plane_version(stack_runs, stack):
    run = stack_runs[stack]
    cluster = by_type(run, "aws:eks/cluster:Cluster")[0]
    nodes = by_type(run, "aws:eks/nodeGroup:NodeGroup")[0]
    assert nodes.inputs["version"] == cluster.outputs["version"] == config_of(stack).cluster.kubernetes_version


POLICY_SHA256 = "16f232c9d9f79366fe949c4550ad517a202380058a9e48d45a4e215044a20a6a"


def test_the_lb_controller_policy_is_the_vendored_upstream_document():
    import hashlib

    from components import lb_controller_policy

    assert hashlib.sha256(lb_controller_policy.POLICY_FILE.read_bytes()).hexdigest() == POLICY_SHA256
    document = json.loads(lb_controller_policy.policy_document())
    assert document["Version"] == "2012-10-17"
    actions = {a for s in document["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    # What the weighted canary modes need of the controller.
    assert {"elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:ModifyListener",
            "elasticloadbalancing:ModifyRule", "elasticloadbalancing:RegisterTargets"} <= actions
    # Deleting or retagging a load balancer needs the controller's own cluster tag on it.
    for statement in document["Statement"]:
        mutating = {"elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DeleteTargetGroup"}
        if mutating & set(statement["Action"]):
            assert statement["Condition"] == {"Null": {"aws:ResourceTag/elbv2.k8s.aws/cluster": "false"}}


def test_the_policy_follows_the_partition():
    from components.lb_controller_policy import policy_document

    assert "arn:aws:" not in policy_document("aws-us-gov") and "arn:aws-us-gov:ec2:" in policy_document("aws-us-gov")


@pytest.mark.parametrize("stack", [s for s in EKS_STACKS if config_of(s).cluster.load_balancer_controller])
def test_the_controller_role_gets_the_upstream_policy(stack_runs, stack):
    from components.lb_controller_policy import POLICY_FILE

    policy = next(r for r in by_type(stack_runs[stack], "aws:iam/policy:Policy") if r.name.endswith("lb-controller"))
    assert json.loads(policy.inputs["policy"]) == json.loads(POLICY_FILE.read_text())  # the vendored file, as is


def urn_of(run, typ, name_suffix=""):
    return next(r.urn for r in by_type(run, typ) if r.name.endswith(name_suffix))


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_control_plane_logs_go_to_a_log_group_the_stack_owns(stack_runs, stack):
    run = stack_runs[stack]
    [group] = by_type(run, "aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == f"/aws/eks/app-update-{stack}/cluster"
    assert group.inputs["retentionInDays"] == config_of(stack).cluster.log_retention_days
    cluster = by_type(run, "aws:eks/cluster:Cluster")[0]
    assert group.urn in cluster.dependencies  # before EKS would create it without a retention


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_arns_take_the_partition_from_the_provider(stack_runs, stack):
    run = stack_runs[stack]
    for attachment in by_type(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment"):
        if "lb-controller" not in attachment.name:
            assert attachment.inputs["policyArn"].startswith("arn:aws:iam::aws:policy/")
    for association in by_type(run, "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        assert association.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"


def test_prod_admins_are_the_ones_its_config_names():
    from model.stack_file import stack_settings
    from preview.runner import run_program

    run = run_program("prod", settings=stack_settings("prod", ROOT))
    entries = by_type(run, "aws:eks/accessEntry:AccessEntry")
    assert [e.inputs["principalArn"] for e in entries] == list(config_of("prod").cluster.admins)


def test_kubeconfig_token_uses_the_providers_profile_and_role():
    from model.stack_file import stack_settings
    from preview.runner import run_program

    settings = {**stack_settings("dev", ROOT), "aws:profile": "team-dev",
                "aws:assumeRoles": [{"roleArn": "arn:aws:iam::111122223333:role/deployer"}]}
    run = run_program("dev", settings=settings)
    user = json.loads(run.outputs["kubeconfig"])["users"][0]["user"]["exec"]
    assert user["env"] == [{"name": "AWS_PROFILE", "value": "team-dev"}]
    assert user["args"][-2:] == ["--role-arn", "arn:aws:iam::111122223333:role/deployer"]


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_namespace_gets_readiness_gates_where_the_controller_serves_ip_targets(stack_runs, stack):
    [namespace] = by_type(stack_runs[stack], "kubernetes:core/v1:Namespace")
    labels = namespace.inputs["metadata"]["labels"]
    if config_of(stack).cluster.load_balancer_controller:
        assert labels["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    else:
        assert "elbv2.k8s.aws/pod-readiness-gate-inject" not in labels


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_every_deployment_comes_after_the_service_in_front_of_its_pods(stack_runs, stack):
    run = stack_runs[stack]
    services = {r.urn: r for r in by_type(run, "kubernetes:core/v1:Service")}
    for deployment in by_type(run, "kubernetes:apps/v1:Deployment"):
        labels = deployment.inputs["spec"]["template"]["metadata"]["labels"]
        fronting = [s for s in services.values()
                    if all(labels.get(k) == v for k, v in s.inputs["spec"]["selector"].items())]
        assert fronting, deployment.name
        # A blue-green release's active Service is the exception: it waits for the active color's pods instead (a
        # release that becomes BlueGreen keeps its Service, which must not select pods that are not ready yet; the
        # color's pods were started behind the preview Service, which they wait for).
        active = [s for s in fronting if (s.inputs["metadata"].get("annotations") or {}).get(
            "app-update/blue-green") == "active"]
        for svc in active:
            assert deployment.urn in svc.dependencies, (deployment.name, svc.name)
        fronting = [s for s in fronting if s not in active]
        # It waits for each Service selecting its pods, directly or through the canary Deployment.
        waits = set(deployment.dependencies)
        for dep in by_type(run, "kubernetes:apps/v1:Deployment"):
            if dep.urn in waits:
                waits |= set(dep.dependencies)
        assert {s.urn for s in fronting} <= waits, deployment.name


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_zones_are_those_that_need_no_opt_in(stack_runs, stack):
    calls = [args for token, args in stack_runs[stack].invokes
             if token == "aws:index/getAvailabilityZones:getAvailabilityZones"]
    assert calls and all(args["state"] == "available" and
                         args["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
                         for args in calls)


def test_pinned_zones_are_used_as_named_without_a_lookup():
    from model.stack_file import stack_settings
    from preview.runner import run_program

    settings = stack_settings("dev", ROOT)
    settings["app-update:cluster"] = {**settings["app-update:cluster"],
                                      "availabilityZoneNames": ["us-west-2c", "us-west-2d"]}
    run = run_program("dev", settings=settings)
    assert sorted(s.inputs["availabilityZone"] for s in by_type(run, "aws:ec2/subnet:Subnet")) == [
        "us-west-2c", "us-west-2c", "us-west-2d", "us-west-2d"]
    assert not [t for t, _ in run.invokes if t.endswith("getAvailabilityZones")]


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_the_named_cluster_is_replaced_delete_first(stack_runs, stack):
    [cluster] = by_type(stack_runs[stack], "aws:eks/cluster:Cluster")
    assert cluster.delete_before_replace
