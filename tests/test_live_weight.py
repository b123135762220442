"""The weight read where it takes effect (operations/live_weight.py), per traffic mode: Kubernetes objects
through the official client against a loopback API server serving the API's own JSON (tests/kube_api_stub.py),
AWS through boto3 against moto; and `rollout canary` ending in the abort path when a weight never becomes live."""

from __future__ import annotations

import pytest

from model.config import Dns, Release
from operations.live_weight import (
    DeploymentsReader,
    IngressReader,
    LiveWeight,
    LoadBalancerReader,
    RecordsReader,
    RouteReader,
    WeightNotLive,
    reader_for,
)
from operations.stacks import OperationError
from tests.clock import VirtualClock
from tests.kube_api_stub import KubeApiStub, deployment, ingress

NS = "app-update"


@pytest.fixture
def api():
    with KubeApiStub() as server:
        yield server


# -- replicas: the Deployments' status ---------------------------------------------------------------


def test_replicas_is_live_when_the_ready_pods_give_the_split(api):
    reader = DeploymentsReader(api.client(), NS, "app", 4)
    api.put("Deployment", NS, "app-stable", deployment("app-stable", 3))
    api.put("Deployment", NS, "app-canary", deployment("app-canary", 1))
    live = reader.read(5, 25.0)  # 5% of 4 pods: 1 canary pod, a quarter of the traffic
    assert live == LiveWeight(True, 25.0, "app-stable 3/3 ready, app-canary 1/1 ready: the canary gets 25% of the pods")


@pytest.mark.parametrize("stable,canary,problem", [
    pytest.param(deployment("app-stable", 3), deployment("app-canary", 1, ready=0), "app-canary 0/1 ready (want 1",
                 id="the canary pod is not ready"),
    pytest.param(deployment("app-stable", 4), deployment("app-canary", 1), "app-stable 4/4 ready (want 3",
                 id="the stable track has not scaled down"),
    pytest.param(deployment("app-stable", 3), deployment("app-canary", 1, observed=1), "at the current generation",
                 id="the controller has not seen the update"),
])
def test_replicas_is_not_live_until_the_controller_has_caught_up(api, stable, canary, problem):
    api.put("Deployment", NS, "app-stable", stable)
    api.put("Deployment", NS, "app-canary", canary)
    live = DeploymentsReader(api.client(), NS, "app", 4).read(25, 25.0)
    assert not live.confirmed and live.share is None and problem in live.detail, live


def test_a_missing_deployment_is_said_with_the_api_servers_answer(api):
    api.put("Deployment", NS, "app-stable", deployment("app-stable", 3))
    with pytest.raises(WeightNotLive, match=r"Deployment app-update/app-canary: HTTP 404 Not Found"):
        DeploymentsReader(api.client(), NS, "app", 4).read(25, 25.0)


# -- nginx and skipper: the live Ingress --------------------------------------------------------------


@pytest.mark.parametrize("annotations,served,weight,confirmed,detail", [
    ({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "25"}, True, 25,
     True, "Ingress app-service-canary gives the canary 25%"),
    ({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "5"}, True, 25,
     False, "Ingress app-service-canary gives the canary 5%"),
    ({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "250",
      "nginx.ingress.kubernetes.io/canary-weight-total": "1000"}, True, 25, True, "gives the canary 25%"),
    ({"nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "25"}, False, 25,
     False, "no status.loadBalancer yet"),
    ({"nginx.ingress.kubernetes.io/canary-weight": "25"}, True, 25, False, "is not an ingress-nginx canary"),
])
def test_nginx_reads_the_canary_ingress(api, annotations, served, weight, confirmed, detail):
    api.put("Ingress", NS, "app-service-canary", ingress("app-service-canary", annotations, served=served))
    live = IngressReader(api.client(), NS, "app-service", "nginx").read(weight, float(weight))
    assert live.confirmed is confirmed and detail in live.detail, live


def test_skipper_reads_the_backend_weights(api):
    reader = IngressReader(api.client(), NS, "app-service", "skipper")
    weights = '{"app-service-stable":75,"app-service-canary":25}'
    api.put("Ingress", NS, "app-service", ingress("app-service", {"zalando.org/backend-weights": weights}))
    assert reader.read(25, 25.0).confirmed and not reader.read(50, 50.0).confirmed
    api.put("Ingress", NS, "app-service", ingress("app-service", {"zalando.org/backend-weights": "[1, 2]"}))
    assert "is not a JSON object of numbers" in reader.read(25, 25.0).detail


# -- gateway and istio: the route and the status its implementation writes ----------------------------


def httproute(weight: int, conditions: dict[str, str] | None, *, generation: int = 3, observed: int = 3) -> dict:
    route = {"metadata": {"name": "app-service", "namespace": NS, "generation": generation},
             "spec": {"parentRefs": [{"name": "public"}], "rules": [{"backendRefs": [
                 {"name": "app-service-stable", "port": 80, "weight": 100 - weight},
                 {"name": "app-service-canary", "port": 80, "weight": weight}]}]}}
    if conditions is not None:
        route["status"] = {"parents": [{"parentRef": {"name": "public"}, "controllerName": "example.com/gateway",
                                        "conditions": [{"type": kind, "status": value, "reason": kind,
                                                        "observedGeneration": observed, "message": "",
                                                        "lastTransitionTime": "2026-12-04T00:00:00Z"}
                                                       for kind, value in conditions.items()]}]}
    return route


@pytest.mark.parametrize("route,confirmed,detail", [
    (httproute(25, {"Accepted": "True", "ResolvedRefs": "True"}), True, "HTTPRoute app-service gives the canary 25%"),
    (httproute(25, None), False, "no status.parents yet"),
    (httproute(25, {"Accepted": "True", "ResolvedRefs": "False"}), False, "ResolvedRefs is False (ResolvedRefs)"),
    (httproute(25, {"Accepted": "True", "ResolvedRefs": "True"}, observed=2), False, "of generation 2, not 3"),
    (httproute(5, {"Accepted": "True", "ResolvedRefs": "True"}), False, "gives the canary 5%"),
])
def test_gateway_reads_the_httproute_and_its_status(api, route, confirmed, detail):
    api.put("HTTPRoute", NS, "app-service", route)
    live = RouteReader(api.client(), NS, "app-service", "gateway").read(25, 25.0)
    assert live.confirmed is confirmed and detail in live.detail, live


def virtual_service(weight: int, status: dict | None = None) -> dict:
    service = {"metadata": {"name": "app-service", "namespace": NS, "generation": 4},
               "spec": {"hosts": ["app-service"], "http": [{"route": [
                   {"destination": {"host": "app-service", "subset": "stable"}, "weight": 100 - weight},
                   {"destination": {"host": "app-service", "subset": "canary"}, "weight": weight}]}]}}
    if status is not None:
        service["status"] = status
    return service


def test_istio_reads_the_virtual_service_and_says_what_it_cannot_confirm(api):
    reader = RouteReader(api.client(), NS, "app-service", "istio")
    api.put("VirtualService", NS, "app-service", virtual_service(25))
    live = reader.read(25, 25.0)
    assert live.confirmed and "Istio wrote no status: weights only" in live.detail
    api.put("VirtualService", NS, "app-service", virtual_service(25, {
        "observedGeneration": 4, "conditions": [{"type": "Reconciled", "status": "False"}]}))
    assert "Reconciled is False" in reader.read(25, 25.0).detail
    api.put("VirtualService", NS, "app-service", virtual_service(25, {
        "observedGeneration": 4, "conditions": [{"type": "Reconciled", "status": "True"}]}))
    assert reader.read(25, 25.0) == LiveWeight(True, 25.0, "VirtualService app-service gives the canary 25%")


# -- nlb, alb, dns: AWS through boto3, against moto ---------------------------------------------------


@pytest.fixture(scope="module")
def botocore_loader():
    """botocore's reader of service models (JSON read and parsed once per client kind otherwise), shared by
    the module's sessions: the models are read-only."""
    from botocore.loaders import create_loader

    return create_loader()


@pytest.fixture
def aws(monkeypatch, botocore_loader):
    """tests/conftest.py's moto AWS (a fresh mock_aws per test, boto3 session in us-west-2, no real credentials),
    with the service models read once per module, and without moto's catalogue of default AMIs, which an EC2
    backend otherwise builds (and rebuilds at every reset) for the VPCs and subnets the load balancers sit in."""
    import boto3
    import botocore.session
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        core = botocore.session.get_session()
        core.register_component("data_loader", botocore_loader)
        yield boto3.session.Session(botocore_session=core, region_name="us-west-2")


def load_balancer(session, kind: str, weight: int, *, canary_targets: int = 1, tag: bool = True):
    """An NLB (the Service's, weights on the listener) or an ALB (the Ingress's, weights on a rule) the way the
    AWS Load Balancer Controller builds them, with its tags naming each target group's Service."""
    ec2, elbv2 = session.client("ec2"), session.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"us-west-2{zone}")
               ["Subnet"]["SubnetId"] for i, zone in ((1, "a"), (2, "b"))]
    lb = elbv2.create_load_balancer(Name=f"k8s-appupdat-{kind}", Subnets=subnets, Scheme="internet-facing",
                                    Type="network" if kind == "nlb" else "application")["LoadBalancers"][0]
    services = ("app-service", "app-service-canary") if kind == "nlb" else ("app-service-stable", "app-service-canary")
    arns = {}
    for service in services:
        key, value = (("service.k8s.aws/stack", f"{NS}/{service}") if kind == "nlb"
                      else ("ingress.k8s.aws/resource", f"{NS}/app-service-{service}:80"))
        group = elbv2.create_target_group(
            Name=f"k8s-{service}"[:32], Protocol="TCP" if kind == "nlb" else "HTTP", Port=8080, VpcId=vpc,
            TargetType="ip", Tags=[{"Key": key, "Value": value} if tag else {"Key": "team", "Value": "web"}],
        )["TargetGroups"][0]
        arns[service] = group["TargetGroupArn"]
        count = canary_targets if service.endswith("-canary") else 2
        if count:
            elbv2.register_targets(TargetGroupArn=group["TargetGroupArn"],
                                   Targets=[{"Id": f"10.0.1.{10 + i}", "Port": 8080} for i in range(count)])
    forward = [{"Type": "forward", "ForwardConfig": {"TargetGroups": [
        {"TargetGroupArn": arns[services[0]], "Weight": 100 - weight},
        {"TargetGroupArn": arns[services[1]], "Weight": weight}]}}]
    if kind == "nlb":
        elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=80, DefaultActions=forward)
    else:
        listener = elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                                         DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {
                                             "StatusCode": "404"}}])["Listeners"][0]
        elbv2.create_rule(ListenerArn=listener["ListenerArn"], Priority=1, Actions=forward,
                          Conditions=[{"Field": "path-pattern", "Values": ["/*"]}])
    return lb["DNSName"]


@pytest.mark.parametrize("kind", ["nlb", "alb"])
def test_the_load_balancer_forwards_the_weight_to_healthy_targets(aws, kind):
    address = load_balancer(aws, kind, 25)
    reader = LoadBalancerReader(aws.client("elbv2"), address, "app-service", kind, 80)
    live = reader.read(25, 25.0)
    assert live.confirmed and live.share == 25.0 and "forwards 25% to the canary" in live.detail, live
    assert not reader.read(50, 50.0).confirmed


@pytest.mark.parametrize("kind", ["nlb", "alb"])
def test_a_canary_target_group_without_healthy_targets_is_not_live(aws, kind):
    address = load_balancer(aws, kind, 25, canary_targets=0)
    live = LoadBalancerReader(aws.client("elbv2"), address, "app-service", kind, 80).read(25, 25.0)
    assert not live.confirmed and "k8s-app-service-canary has no healthy target (no targets)" in live.detail, live


def test_the_load_balancer_is_found_by_the_release_address_only(aws):
    load_balancer(aws, "nlb", 25)
    with pytest.raises(WeightNotLive, match="no load balancer has the DNS name elsewhere.example.com"):
        LoadBalancerReader(aws.client("elbv2"), "elsewhere.example.com", "app-service", "nlb", 80).read(25, 25.0)


def test_target_groups_the_controller_did_not_tag_are_not_guessed(aws):
    address = load_balancer(aws, "nlb", 25, tag=False)
    live = LoadBalancerReader(aws.client("elbv2"), address, "app-service", "nlb", 80).read(25, 25.0)
    assert not live.confirmed and "no target group of its weighted forward is tagged with app-service-canary" in live.detail


def weighted_records(session, stable: int, canary: int) -> None:
    route53 = session.client("route53")
    zone = route53.create_hosted_zone(Name="example.com", CallerReference="app-update")["HostedZone"]["Id"]
    for identifier, weight in (("stable", stable), ("canary", canary)):
        route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {
                "Name": "app.example.com", "Type": "A", "SetIdentifier": identifier, "Weight": weight,
                "AliasTarget": {"HostedZoneId": "Z18D5FSROUN65G", "DNSName": f"{identifier}.elb.amazonaws.com",
                                "EvaluateTargetHealth": True}}}]})


def test_dns_reads_the_weighted_records(aws):
    weighted_records(aws, 75, 25)
    reader = RecordsReader(aws.client("route53"), "example.com", "app.example.com")
    assert reader.read(25, 25.0) == LiveWeight(True, 25.0, "Route53 app.example.com. weights stable 75, canary 25: "
                                                           "25% to the canary")
    assert not reader.read(5, 5.0).confirmed
    assert "no public hosted zone other.com." in RecordsReader(aws.client("route53"), "other.com", "a.other.com"
                                                               ).read(25, 25.0).detail


def test_each_mode_gets_its_reader(aws, api):
    def release(traffic: str) -> Release:
        from model.config import Resources

        return Release(name="app", strategy="Canary", image="app", replicas=4, port=8080, service_port=80,
                       service_name="app-service", health_path="/healthz", resources=Resources({}, {}),
                       env={}, min_ready_seconds=0, progress_deadline_seconds=600, pre_stop_seconds=0,
                       traffic=traffic, dns=Dns("example.com", "app.example.com", "us-west-2", "network")
                       if traffic == "dns" else None)

    kinds = {}
    for traffic in ("replicas", "nlb", "alb", "nginx", "gateway", "istio", "skipper", "dns"):
        reader = reader_for(release(traffic), namespace=NS, outputs={"address": "lb.example.com"},
                            kubernetes=api.client(), session=aws)
        kinds[traffic] = type(reader).__name__
    assert kinds == {"replicas": "DeploymentsReader", "nlb": "LoadBalancerReader", "alb": "LoadBalancerReader",
                     "nginx": "IngressReader", "gateway": "RouteReader", "istio": "RouteReader",
                     "skipper": "IngressReader", "dns": "RecordsReader"}
    with pytest.raises(WeightNotLive, match="reports no address"):
        reader_for(release("nlb"), namespace=NS, outputs={}, session=aws)


# -- the wait, on a virtual clock ---------------------------------------------------------------------


class Scripted:
    """A reader whose readings are given in turn (the last one repeats)."""

    def __init__(self, *readings):
        self.readings, self.reads = list(readings), 0

    def read(self, weight, share):
        reading = self.readings[min(self.reads, len(self.readings) - 1)]
        self.reads += 1
        if isinstance(reading, Exception):
            raise reading
        return reading


def test_the_wait_polls_until_the_weight_is_live():
    from operations.step_checks import wait_until_live

    said = []
    clock = VirtualClock()
    reader = Scripted(WeightNotLive("HTTP 404"), LiveWeight(False, None, "5%"), LiveWeight(True, 25.0, "25%"))
    assert wait_until_live(reader, 25, 25.0, 60.0, clock, said.append).share == 25.0
    assert reader.reads == 3 and clock.time == 4.0 and said == ["live: 25%"]


def test_a_weight_that_never_becomes_live_is_an_error_with_the_last_reading():
    from operations.step_checks import wait_until_live

    clock = VirtualClock()
    with pytest.raises(OperationError, match=r"the weight 25% did not become live within 30s \(--verify-timeout\): "
                                             r"Ingress app-service-canary gives the canary 5%"):
        wait_until_live(Scripted(LiveWeight(False, 5.0, "Ingress app-service-canary gives the canary 5%")), 25, 25.0,
                        30.0, clock, print)
    assert clock.time >= 30.0


def test_a_match_route_does_not_count_as_weight(api):
    # A header/cookie route's rule sends all its requests to the canary whatever the weight: only the weighted
    # rule (gateway) or route (istio) says the weight, whichever order they come in.
    route = httproute(0, {"Accepted": "True", "ResolvedRefs": "True"})
    match_rule = {"matches": [{"headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]}],
                  "backendRefs": [{"name": "app-service-canary", "port": 80}]}
    route["spec"]["rules"].append(match_rule)
    api.put("HTTPRoute", NS, "app-service", route)
    assert RouteReader(api.client(), NS, "app-service", "gateway").read(0, 0.0).share == 0.0
    service = virtual_service(0)
    service["spec"]["http"].append({"match": [{"headers": {"x-canary": {"exact": "always"}}}], "route": [
        {"destination": {"host": "app-service", "subset": "canary"}, "weight": 100}]})
    api.put("VirtualService", NS, "app-service", service)
    assert RouteReader(api.client(), NS, "app-service", "istio").read(0, 0.0).share == 0.0


def test_a_rule_matching_only_the_path_is_the_weighted_rule(api):
    # The API server defaults every HTTPRoute rule's matches to PathPrefix / (the real one in tests/cluster
    # does): that rule still says the weight; only a rule that picks requests by header is the match route.
    route = httproute(25, {"Accepted": "True", "ResolvedRefs": "True"})
    route["spec"]["rules"][0]["matches"] = [{"path": {"type": "PathPrefix", "value": "/"}}]
    route["spec"]["rules"].insert(0, {"matches": [{"path": {"type": "PathPrefix", "value": "/"}, "headers": [
        {"type": "Exact", "name": "X-Canary", "value": "always"}]}], "backendRefs": [{"name": "app-service-canary",
                                                                                      "port": 80}]})
    api.put("HTTPRoute", NS, "app-service", route)
    live = RouteReader(api.client(), NS, "app-service", "gateway").read(25, 25.0)
    assert (live.confirmed, live.share) == (True, 25.0), live


# -- nlb, alb on a kubeconfig stack: the region the load balancer's hostname says ---------------------

from operations.step_checks import live_reader as real_live_reader  # noqa: E402 (before conftest's stand-in)


@pytest.mark.parametrize("address,region", [
    ("k8s-ns-name-abc.elb.us-west-2.amazonaws.com", "us-west-2"),  # NLB
    ("name-123.us-east-1.elb.amazonaws.com", "us-east-1"),  # ALB, classic ELB
    ("internal-name-123.eu-central-1.elb.amazonaws.com", "eu-central-1"),
    ("dualstack.name-123.ap-southeast-2.elb.amazonaws.com", "ap-southeast-2"),
    ("k8s-a-b.elb.cn-north-1.amazonaws.com.cn", "cn-north-1"),
    ("name-1.us-gov-west-1.elb.amazonaws.com.", "us-gov-west-1"),
    ("NAME-1.EU-WEST-1.ELB.AMAZONAWS.COM", "eu-west-1"),
    ("203.0.113.10", None), ("app.example.com", None), ("elb.amazonaws.com", None), (None, None),
])
def test_an_elb_hostname_says_its_region(address, region):
    from operations.live_weight import region_of_hostname

    assert region_of_hostname(address) == region


@pytest.fixture
def no_aws_region(monkeypatch, tmp_path):
    """Neither the environment nor a profile gives boto3 a region."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))


class OutputsOnly:
    """A stack as live_reader sees it: its name and outputs."""

    def __init__(self, address):
        from pulumi.automation import OutputValue

        self.name = "staging"
        self._outputs = {"namespace": OutputValue(NS, False),
                         "releases": OutputValue({"app": {"address": address} if address else {}}, False)}

    def outputs(self):
        return self._outputs


def kubeconfig_stack_config(kind):
    from model.config import load

    return load({"app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
                 "app-update:releases": {"app": {"strategy": "Canary", "traffic": kind, "replicas": 4,
                                                 "serviceName": "app-service", "stable": {"tag": "v1"},
                                                 "canary": {"tag": "v1", "weight": 0}}}},
                "staging")


@pytest.mark.parametrize("kind", ["nlb", "alb"])
def test_a_kubeconfig_stack_without_a_region_reads_the_load_balancer_in_the_region_its_hostname_says(
        aws, no_aws_region, kind):
    address = load_balancer(aws, kind, 25)  # moto's load balancer, in us-west-2: its DNS name says so
    config = kubeconfig_stack_config(kind)
    assert config.region is None
    reader = real_live_reader(OutputsOnly(address), config, config.release("app"))
    live = reader.read(25, 25.0)
    assert live.confirmed and live.share == 25.0, live


@pytest.mark.parametrize("kind", ["nlb", "alb"])
@pytest.mark.parametrize("address", ["203.0.113.10", None])
def test_without_a_region_anywhere_the_check_is_refused_as_the_inputs_fault(no_aws_region, kind, address):
    from operations.stacks import InputError

    config = kubeconfig_stack_config(kind)
    with pytest.raises(InputError) as refused:
        real_live_reader(OutputsOnly(address), config, config.release("app"))
    line = str(refused.value)
    assert "\n" not in line and "no AWS region is known" in line
    assert "aws:region" in line and "--verify-timeout 0" in line


def test_rollout_canary_refuses_it_with_exit_2_before_anything_is_written(no_aws_region, monkeypatch, capsys):
    from operations import stacks, step_checks
    from rollout.cli import main
    from tests.fake_stack import FakeStack

    class NoElbAddress(FakeStack):  # the Service's load balancer answers on an address, not an ELB name
        def outputs(self):
            outputs = super().outputs()
            outputs["releases"].value["app"]["address"] = "203.0.113.10"
            return outputs

    stack = NoElbAddress("staging", {
        "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
        "app-update:releases": {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4,
                                        "stable": {"tag": "v1"}, "canary": {"tag": "v1", "weight": 0}}}})
    stack.up(message="initial")
    config_before = {key: value.value for key, value in stack.get_all_config().items()}
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    monkeypatch.setattr(step_checks, "live_reader", real_live_reader)
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--yes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: release app (traffic: nlb): the live-weight check"), err
    assert "aws:region" in err[0] and "--verify-timeout 0" in err[0]
    assert stack.up_messages == ["initial"] and {key: value.value for key, value in stack.get_all_config().items()} == config_before
