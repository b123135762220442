"""Stack config validation: every rule, each error naming its full key path."""

import pytest

from model.config import ConfigError, validate


def releases(**named):
    return {"cluster": {"mode": "kubeconfig"}, "releases": named}


def rolling(**overrides):
    release = {"strategy": "RollingUpdate", "tag": "v1", "replicas": 5, "maxSurge": 1, "maxUnavailable": 1}
    release.update(overrides)
    return release


def canary(**overrides):
    release = {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 25}}
    release.update(overrides)
    return release


def bluegreen(**overrides):
    release = {"strategy": "BlueGreen", "replicas": 4, "active": "blue", "blue": {"tag": "v1"}}
    release.update(overrides)
    return {k: v for k, v in release.items() if v is not None}


def problems(raw, extra=None):
    raw = dict(raw)
    if raw.pop("_region", False):  # an eks stack needs a region; give it one
        extra = {**(extra or {}), "aws:region": "us-west-2"}
    with pytest.raises(ConfigError) as caught:
        validate(raw, "test", extra)
    return caught.value.problems


DNS = {"zone": "example.com", "name": "app.example.com"}

# (config, the key path the one error must name, a fragment of the rule)
INVALID = [
    (releases(app=rolling(maxSurge=0, maxUnavailable=0)), "releases.app.maxUnavailable", "must not be 0 when maxSurge is 0"),
    (releases(app=rolling(maxSurge="0%", maxUnavailable=0)), "releases.app.maxUnavailable", "must not be 0 when maxSurge is 0"),
    (releases(app=rolling(maxSurge="abc")), "releases.app.maxSurge", 'percentage like "25%"'),
    (releases(app=rolling(maxSurge="5")), "releases.app.maxSurge", 'percentage like "25%"'),
    (releases(app=rolling(maxSurge=-1)), "releases.app.maxSurge", "must not be negative"),
    (releases(app=rolling(maxUnavailable="150%")), "releases.app.maxUnavailable", "not be more than 100%"),
    (releases(app={"strategy": "Recreate", "tag": "v1", "maxSurge": 1}), "releases.app.maxSurge", "rejects rollingUpdate settings with strategy Recreate"),
    (releases(app={"strategy": "Recreate", "tag": "v1", "maxUnavailable": 1}), "releases.app.maxUnavailable", "strategy Recreate"),
    (releases(App_1=rolling()), "releases.App_1", "DNS-1123"),
    (releases(**{"1app": rolling()}), "releases.1app", "start with a letter"),
    (releases(**{"a" * 57: rolling()}), "releases." + "a" * 57, "at most 56"),
    (releases(app=rolling(image="Arungupta/App")), "releases.app.image", "not a valid image reference"),
    (releases(app=rolling(image="arungupta/app-upgrade:v1")), "releases.app.image", "without tag or digest"),
    (releases(app=rolling(tag="v 1")), "releases.app.tag", "must be an image tag"),
    (releases(app=rolling(tag=None)), "releases.app.tag", "is required"),
    (releases(app=rolling(replicas=-1)), "releases.app.replicas", "at least 0"),
    (releases(app=rolling(replicas="5")), "releases.app.replicas", "must be an integer"),
    (releases(app=rolling(replicas=True)), "releases.app.replicas", "must be an integer"),
    (releases(app=rolling(port=0)), "releases.app.port", "between 1 and 65535"),
    (releases(app=rolling(port=70000)), "releases.app.port", "between 1 and 65535"),
    (releases(app=rolling(servicePort=65536)), "releases.app.servicePort", "between 1 and 65535"),
    (releases(app=rolling(strategy="Shadow")), "releases.app.strategy", "must be one of Recreate, RollingUpdate, Canary, BlueGreen"),
    (releases(app=rolling(strategy=None)), "releases.app.strategy", "is required"),
    (releases(app=rolling(maxsurge=1)), "releases.app.maxsurge", "did you mean 'maxSurge'?"),
    (releases(app=rolling(replica=3)), "releases.app.replica", "did you mean 'replicas'?"),
    (releases(app=canary(canary={"tag": "v2", "weight": 101})), "releases.app.canary.weight", "between 0 and 100"),
    (releases(app=canary(canary={"tag": "v2", "weight": -5})), "releases.app.canary.weight", "between 0 and 100"),
    (releases(app=canary(canary={"tag": "v2", "wieght": 5})), "releases.app.canary.wieght", "did you mean 'weight'?"),
    (releases(app=canary(replicas=1)), "releases.app.replicas", "at least 2"),
    (releases(app=canary(tag="v1")), "releases.app.tag", "set stable.tag and canary.tag"),
    (releases(app=canary(stable={"tag": "v1", "replicas": 2})), "releases.app", "not both"),
    (releases(app=canary(stable=None)), "releases.app.stable", "is required"),
    (releases(app=canary(traffic="linkerd")), "releases.app.traffic",
     "must be one of replicas, nlb, alb, nginx, gateway, istio, skipper, dns"),
    (releases(app=canary(traffic="nlb")), "releases.app.traffic", "needs the AWS Load Balancer Controller"),
    (releases(app=canary(traffic="alb")), "releases.app.traffic", "cluster.loadBalancerController"),
    (releases(app=canary(ingressClass="nginx")), "releases.app.ingressClass",
     "only used with traffic: alb, nginx or skipper"),
    (releases(app=canary(traffic="gateway", ingressClass="skipper")), "releases.app.ingressClass",
     "only used with traffic: alb, nginx or skipper"),
    (releases(app=rolling(resources={"requests": {"cpu": "lots"}})), "releases.app.resources.requests.cpu", "quantity"),
    (releases(app=rolling(resources={"requests": {"memory": "1Gi"}, "limits": {"memory": "128Mi"}})),
     "releases.app.resources.requests.memory", "must not exceed limits.memory"),
    (releases(app=rolling(env={"1BAD": "x"})), "releases.app.env.1BAD", "environment variable name"),
    (releases(app=rolling(healthPath="healthz")), "releases.app.healthPath", "absolute HTTP path"),
    (releases(app=rolling(minReadySeconds=30, progressDeadlineSeconds=30)), "releases.app.progressDeadlineSeconds",
     "greater than minReadySeconds"),
    (releases(app=rolling(serviceName="Bad_Name")), "releases.app.serviceName", "DNS-1035"),
    ({**releases(app=rolling()), "namespace": "App Update"}, "namespace", "DNS-1123 label"),
    ({**releases(app=rolling()), "awaitLoadBalancer": "yes"}, "awaitLoadBalancer", "true or false"),
    ({**releases(app=rolling()), "relases": {}}, "relases", "did you mean 'releases'?"),
    ({"cluster": {"mode": "gke"}, "releases": {"app": rolling()}}, "cluster.mode", "must be one of kubeconfig, eks"),
    ({"cluster": {"mode": "kubeconfig", "contxt": "kind"}, "releases": {"app": rolling()}}, "cluster.contxt", "did you mean 'context'?"),
    ({"cluster": {"mode": "kubeconfig", "kubernetesVersion": 1.33}, "releases": {"app": rolling()}}, "cluster.kubernetesVersion", "must be a string"),
    ({"cluster": {"mode": "kubeconfig"}}, "releases", "is required"),
    ({"cluster": {"mode": "kubeconfig"}, "releases": {}}, "releases", "at least one release"),
    ({"cluster": {"mode": "kubeconfig"}, "releases": ["app"]}, "releases", "must be a mapping"),
    (releases(app=rolling(preStopSeconds=301)), "releases.app.preStopSeconds", "between 0 and 300"),
    (releases(app=rolling(env={"MODE": ["a"]})), "releases.app.env.MODE", "string, number or boolean"),
    (releases(app=rolling(tag=1.10)), "releases.app.tag", "quote it"),
    (releases(app=rolling(resources={"request": {}})), "releases.app.resources.request", "did you mean 'requests'?"),
    (releases(app={"strategy": "Canary", "traffic": "nginx", "stable": {"tag": "v1", "replicas": 2},
                   "canary": {"tag": "v2", "replicas": 1}}),
     "releases.app", "splits by weight"),
    (releases(app=canary(traffic="nginx", replicas=0)), "releases.app.replicas", "at least 1 with traffic 'nginx'"),
    (releases(app=canary(traffic="nginx", ingressClass="Nginx_Class")), "releases.app.ingressClass", "IngressClass"),
    # Versions the schema check has no schema for are config errors, not a crash in preview.
    ({"cluster": {"mode": "kubeconfig", "kubernetesVersion": "1.39"}, "releases": {"app": rolling()}},
     "cluster.kubernetesVersion", 'from "1.25" to "1.37", quoted'),
    ({"cluster": {"mode": "kubeconfig", "kubernetesVersion": "1.24"}, "releases": {"app": rolling()}},
     "cluster.kubernetesVersion", "the versions the schema check knows"),
    # Every integer the objects carry is an int32.
    (releases(app=rolling(replicas=2**31)), "releases.app.replicas", "at most 2147483647"),
    (releases(app=rolling(replicas=9223372036854775808)), "releases.app.replicas", "at most 2147483647"),
    (releases(app=rolling(maxSurge=2**31)), "releases.app.maxSurge", "at most 2147483647"),
    (releases(app=rolling(minReadySeconds=2**31)), "releases.app.minReadySeconds", "at most 2147483647"),
    (releases(app=rolling(progressDeadlineSeconds=2**31)), "releases.app.progressDeadlineSeconds", "at most"),
    # Top-level nulls are input errors, not a crash inside the program.
    ({**releases(app=rolling()), "namespace": None}, "namespace", "is empty (null)"),
    ({"cluster": None, "releases": {"app": rolling()}}, "cluster", "is empty (null)"),
    ({"cluster": {"mode": "kubeconfig"}, "releases": None}, "releases", "is empty (null)"),
    # Whole-string matching: a trailing newline is no name (Python's `$` would let it through).
    (releases(**{"app\n": rolling()}), "releases.app\n", "DNS-1123"),
    ({**releases(app=rolling()), "namespace": "app-update\n"}, "namespace", "DNS-1123 label"),
    (releases(app=rolling(serviceName="web\n")), "releases.app.serviceName", "DNS-1035"),
    (releases(app=rolling(tag="v1\n")), "releases.app.tag", "must be an image tag"),
    (releases(app=rolling(maxSurge="25%\n")), "releases.app.maxSurge", 'percentage like "25%"'),
    (releases(app=rolling(env={"MODE\n": "x"})), "releases.app.env.MODE\n", "environment variable name"),
    (releases(app=canary(traffic="nginx", ingressClass="nginx\n")), "releases.app.ingressClass", "IngressClass"),
    (releases(app=rolling(healthPath="/healthz\n")), "releases.app.healthPath", "absolute HTTP path"),
    # Env names Kubernetes refuses before 1.32.
    (releases(app=rolling(env={".": "x"})), "releases.app.env..", "environment variable name"),
    (releases(app=rolling(env={"..x": "x"})), "releases.app.env...x", "environment variable name"),
    # Namespaces every cluster has are not the program's to create or delete.
    ({**releases(app=rolling()), "namespace": "default"}, "namespace", "a namespace every cluster has"),
    ({**releases(app=rolling()), "namespace": "kube-system"}, "namespace", "a namespace every cluster has"),
    ({**releases(app=rolling()), "namespace": "kube-node-lease"}, "namespace", "a namespace every cluster has"),
    # EKS: versions it no longer creates, zones, log retention, admins.
    ({"cluster": {"mode": "eks", "kubernetesVersion": "1.31"}, "releases": {"app": rolling()}, "_region": True},
     "cluster.kubernetesVersion", "EKS no longer creates Kubernetes 1.31"),
    ({"cluster": {"mode": "eks", "availabilityZoneNames": ["us-west-2a"]}, "releases": {"app": rolling()},
      "_region": True}, "cluster.availabilityZoneNames", "2 or 3 different zones"),
    ({"cluster": {"mode": "eks", "availabilityZones": 2, "availabilityZoneNames": ["us-west-2a", "us-west-2b",
                                                                                   "us-west-2c"]},
      "releases": {"app": rolling()}, "_region": True}, "cluster.availabilityZoneNames", "availabilityZones is 2"),
    ({"cluster": {"mode": "eks", "logRetentionDays": 10}, "releases": {"app": rolling()}, "_region": True},
     "cluster.logRetentionDays", "CloudWatch's retention periods"),
    ({"cluster": {"mode": "eks", "admins": ["admin"]}, "releases": {"app": rolling()}, "_region": True},
     "cluster.admins[0]", "ARN of an IAM role or user"),
    # podsForWeight (set between the two updates of a weight step) follows the weight's rules.
    (releases(app=canary(canary={"tag": "v2", "weight": 5, "podsForWeight": 101})),
     "releases.app.canary.podsForWeight", "between 0 and 100"),
    (releases(app={"strategy": "Canary", "stable": {"tag": "v1", "replicas": 2},
                   "canary": {"tag": "v2", "replicas": 1, "podsForWeight": 5}}),
     "releases.app.canary.podsForWeight", "goes with replicas + canary.weight"),
    # The other weighted modes: gateway, istio, skipper, dns. Each mode's own keys, and only there.
    ({**releases(app=canary(traffic="dns")), "_region": True}, "releases.app.dns", "is required with traffic: dns"),
    ({**releases(app=canary(traffic="dns", dns={"name": "app.example.com"})), "_region": True}, "releases.app.dns.zone",
     "is required"),
    ({**releases(app=canary(traffic="dns", dns={"zone": "example.com"})), "_region": True}, "releases.app.dns.name",
     "is required"),
    ({**releases(app=canary(traffic="dns", dns={"zone": "example.com", "name": "app.example.org"})), "_region": True},
     "releases.app.dns.name", "must be in zone example.com"),
    ({**releases(app=canary(traffic="dns", dns={"zone": "example.com", "name": "appexample.com"})), "_region": True},
     "releases.app.dns.name", "must be in zone example.com"),
    ({**releases(app=canary(traffic="dns", dns={"zone": "Example_Com", "name": "app.example.com"})), "_region": True},
     "releases.app.dns.zone", "DNS name of a Route53 hosted zone"),
    ({**releases(app=canary(traffic="dns", dns={"zone": "example.com", "name": "app .example.com"})),
      "_region": True}, "releases.app.dns.name", "must be a DNS name"),
    ({**releases(app=canary(traffic="dns", dns={**DNS, "ttl": 60})), "_region": True},
     "releases.app.dns.ttl", "unknown key; valid keys: zone, name"),
    ({**releases(app=canary(traffic="dns", dns={"zone": "example.com", "name": "app.example.com"})),
      "awaitLoadBalancer": False, "_region": True}, "releases.app.traffic", "awaitLoadBalancer"),
    (releases(app=canary(traffic="skipper", dns={"zone": "example.com", "name": "app.example.com"})),
     "releases.app.dns", "is only used with traffic: dns"),
    (releases(app=canary(dns={"zone": "example.com", "name": "app.example.com"})),
     "releases.app.dns", "is only used with traffic: dns"),
    (releases(app=canary(traffic="skipper", gateway={"name": "public"})), "releases.app.gateway",
     "is only used with traffic: gateway or istio"),
    (releases(app=canary(gateway={"name": "public"})), "releases.app.gateway",
     "is only used with traffic: gateway or istio"),
    ({**releases(app=canary(traffic="dns", gateway={"name": "public"},
                            dns={"zone": "example.com", "name": "app.example.com"})), "_region": True},
     "releases.app.gateway", "is only used with traffic: gateway or istio"),
    (releases(app=canary(traffic="gateway", gateway={"name": "Public_GW"})), "releases.app.gateway.name",
     "a Gateway name (a DNS-1123 label)"),
    (releases(app=canary(traffic="gateway", gateway={"name": "public", "namespace": "Infra"})),
     "releases.app.gateway.namespace", "a namespace name (a DNS-1123 label)"),
    (releases(app=canary(traffic="gateway", gateway={"name": "public\n"})), "releases.app.gateway.name",
     "DNS-1123 label"),
    (releases(app=canary(traffic="gateway", gateway={"name": "g" * 64})), "releases.app.gateway.name",
     "at most 63 characters"),
    (releases(app=canary(traffic="gateway", gateway={"name": "public", "sectionName": "HTTP Listener"})),
     "releases.app.gateway.sectionName", "the Gateway's listeners"),
    (releases(app=canary(traffic="gateway", gateway={"namespace": "infra"})), "releases.app.gateway.name",
     "is required"),
    (releases(app=canary(traffic="gateway", gateway={"name": "public", "sectionname": "http"})),
     "releases.app.gateway.sectionname", "did you mean 'sectionName'?"),
    (releases(app=canary(traffic="gateway", gateway={"name": "public", "hosts": ["App.Example.com"]})),
     "releases.app.gateway.hosts[0]", "host name"),
    (releases(app=canary(traffic="gateway", gateway={"name": "public", "hosts": []})),
     "releases.app.gateway.hosts", "non-empty list of host names"),
    (releases(app=canary(traffic="istio", gateway={"name": "public", "sectionName": "http",
                                                   "hosts": ["app.example.com"]})),
     "releases.app.gateway.sectionName", "is only used with traffic: gateway"),
    (releases(app=canary(traffic="istio", gateway={"name": "public"})), "releases.app.gateway.hosts",
     "is required with traffic: istio"),
    (releases(app=rolling(gateway={"name": "public"})), "releases.app.gateway", "belongs to Canary releases only"),
    (releases(app={"strategy": "Recreate", "tag": "v1", "dns": {"zone": "example.com", "name": "example.com"}}),
     "releases.app.dns", "belongs to Canary releases only"),
    (releases(app={"strategy": "Canary", "traffic": "skipper", "stable": {"tag": "v1", "replicas": 2},
                   "canary": {"tag": "v2", "replicas": 1}}), "releases.app", "traffic 'skipper' splits by weight"),
    (releases(app=canary(traffic="istio", replicas=0)), "releases.app.replicas", "at least 1 with traffic 'istio'"),
    (releases(app=canary(traffic="skipper", ingressClass="Skipper")), "releases.app.ingressClass", "IngressClass"),
    # BlueGreen: the active color, each color complete or scaled down, keys of other strategies
    (releases(app=bluegreen(active=None)), "releases.app.active", "is required"),
    (releases(app=bluegreen(active="red")), "releases.app.active", "must be one of blue, green"),
    (releases(app=bluegreen(active="green")), "releases.app.green", "is required: active is 'green'"),
    (releases(app=bluegreen(green={"tag": "v2", "replicas": 2})), "releases.app.green.replicas",
     "complete or scaled down"),
    (releases(app=bluegreen(blue={"tag": "v1", "replicas": 0}, green={"tag": "v2"})), "releases.app.blue.replicas",
     "must not be 0 while blue is active"),
    (releases(app=bluegreen(blue={"tag": "v 1"})), "releases.app.blue.tag", "must be an image tag"),
    (releases(app=bluegreen(blue={"tag": "v1", "replics": 4})), "releases.app.blue.replics",
     "did you mean 'replicas'?"),
    (releases(app=bluegreen(tag="v1")), "releases.app.tag", "a BlueGreen release has no single tag"),
    (releases(app=bluegreen(maxSurge=1)), "releases.app.maxSurge", "a BlueGreen color never rolls"),
    (releases(app=bluegreen(traffic="nlb")), "releases.app.traffic", "belongs to Canary releases only"),
    (releases(app=rolling(active="blue")), "releases.app.active", "belongs to BlueGreen releases only"),
    (releases(app=canary(previewServiceName="app-preview")), "releases.app.previewServiceName",
     "belongs to BlueGreen releases only"),
    (releases(app=bluegreen(serviceName="web", previewServiceName="web")), "releases.app.previewServiceName",
     "must differ from serviceName"),
    (releases(app=bluegreen(previewServiceName="Web")), "releases.app.previewServiceName", "DNS-1035"),
    (releases(app=bluegreen(serviceName="a" * 56)), "releases.app.previewServiceName", "is required here"),
    (releases(app=bluegreen(previewCheck={"interval": "0m"})), "releases.app.previewCheck.interval",
     "must be longer than 0"),
    (releases(app=bluegreen(previewCheck={"interval": "99999999999d"})), "releases.app.previewCheck.interval",
     "must be at most 24h"),
    (releases(app=bluegreen(previewCheck={"interval": "23h60m1s"})), "releases.app.previewCheck.interval",
     "must be at most 24h"),
    (releases(app=bluegreen(previewCheck={"interval": "2 minutes"})), "releases.app.previewCheck.interval",
     "must be a duration"),
    (releases(app=bluegreen(previewCheck={"path": "/healthz"})), "releases.app.previewCheck.interval", "is required"),
    (releases(app=bluegreen(previewCheck={"interval": "1m", "path": "healthz"})), "releases.app.previewCheck.path",
     "absolute HTTP path"),
    (releases(app=bluegreen(previewCheck={"interval": "1m", "paht": "/"})), "releases.app.previewCheck.paht",
     "did you mean 'path'?"),
    (releases(app=rolling(previewCheck={"interval": "1m"})), "releases.app.previewCheck",
     "belongs to BlueGreen releases only"),
    (releases(app=bluegreen(previewServiceName="web"), web=rolling()), "releases.web.serviceName",
     "Service name 'web' is already used by release 'app'"),
    (releases(app=bluegreen(previewServiceName="p"), web=bluegreen(serviceName="web", previewServiceName="p")),
     "releases.web.previewServiceName", "Service name 'p' is already used by release 'app' (its preview Service): "
                                        "rename this preview Service"),
]


@pytest.mark.parametrize("raw,key,rule", INVALID, ids=[f"{k}:{r}" for _, k, r in INVALID])
def test_each_invalid_setting_is_one_line_naming_its_key(raw, key, rule):
    found = problems(raw)
    assert len(found) == 1, found
    assert found[0].startswith(f"app-update:{key}: "), found[0]
    assert rule in found[0]


def test_every_problem_is_reported_at_once():
    found = problems(releases(
        a=rolling(maxSurge=0, maxUnavailable=0, port=0),
        b={"strategy": "Recreate", "tag": "v1", "maxSurge": 1, "replicas": -2},
    ))
    keys = sorted(p.split(": ", 1)[0] for p in found)
    assert keys == ["app-update:releases.a.maxUnavailable", "app-update:releases.a.port",
                    "app-update:releases.b.maxSurge", "app-update:releases.b.replicas"]


def test_duplicate_service_names_are_rejected():
    found = problems(releases(a=rolling(serviceName="web"), b=rolling(serviceName="web")))
    assert found == ["app-update:releases.b.serviceName: Service name 'web' is already used by release 'a'"]


NAME_CLASHES = [
    # (releases, the release the line names, the object, the other release)
    ({"app": canary(traffic="nginx"), "app-canary": rolling()},
     "app-canary", "Deployment 'app-canary' has the name of a Deployment of release 'app'", "app"),
    ({"web": canary(), "web-stable": rolling(serviceName="other")},
     "web-stable", "Deployment 'web-stable'", "web"),
    ({"a": canary(traffic="nginx", serviceName="front"), "b": rolling(serviceName="front-canary")},
     "b.serviceName", "Service name 'front-canary' is already used", "a"),
    ({"a": canary(traffic="nginx", serviceName="w"), "b": canary(traffic="alb", serviceName="w-canary")},
     "b", "Ingress 'w-canary' has the name of a Ingress of release 'a'", None),
]


NAME_CLASHES += [
    ({"a": canary(traffic="dns", dns=DNS), "b": canary(traffic="dns", serviceName="web", dns={**DNS, "zone": "app.example.com"})},
     "b.dns.name", "record 'app.example.com' is already used by release 'a' (both would write its weighted records", "a"),
    ({"a": canary(traffic="istio", serviceName="front"), "b": rolling(serviceName="front")},
     "b.serviceName", "Service name 'front' is already used", "a"),
    ({"a": canary(traffic="gateway", serviceName="front"), "b": rolling(serviceName="front")},
     "b.serviceName", "Service name 'front' is already used", "a"),
    ({"a": canary(traffic="istio", serviceName="w"), "b": canary(traffic="gateway", serviceName="w")},
     "b.serviceName", "Service name 'w' is already used by release 'a'", "a"),
    ({"a": canary(traffic="gateway", serviceName="w"), "b": canary(traffic="istio", serviceName="w-stable")},
     "b.serviceName", "Service name 'w-stable' is already used by release 'a'", "a"),
]


def test_a_gateway_release_leaves_its_service_name_to_the_gateway():
    # North-south, the HTTPRoute (not a Service) takes the name: a Service of that name elsewhere is fine.
    raw = releases(a=canary(traffic="gateway", serviceName="web", gateway={"name": "public"}),
                   b=rolling(serviceName="web"))
    config = validate(raw, "test")
    assert config.release("a").object_names() == {"Deployment": ("a-stable", "a-canary"),
                                                  "Service": ("web-stable", "web-canary"), "HTTPRoute": ("web",)}
    # In the mesh form it is the release's own front Service, so it clashes.
    raw["releases"]["a"].pop("gateway")
    assert problems(raw) == ["app-update:releases.b.serviceName: Service name 'web' is already used by release 'a'"]


NEW_MODE_NAMES = [
    ("gateway", {}, {"Deployment": ("app-stable", "app-canary"), "Service": ("app-stable", "app-canary", "app"),
                     "HTTPRoute": ("app",)},
     {"Service": ("app-stable-service", "app-canary-service", "app-service"), "HTTPRoute": ("app-httproute",)}),
    ("istio", {}, {"Deployment": ("app-stable", "app-canary"), "Service": ("app",), "VirtualService": ("app",),
                   "DestinationRule": ("app",)},
     {"Service": ("app-service",), "VirtualService": ("app-virtualservice",),
      "DestinationRule": ("app-destinationrule",)}),
    ("skipper", {}, {"Deployment": ("app-stable", "app-canary"), "Service": ("app-stable", "app-canary"),
                     "Ingress": ("app",)},
     {"Service": ("app-stable-service", "app-canary-service"), "Ingress": ("app-ingress",)}),
    ("dns", {"dns": DNS}, {"Deployment": ("app-stable", "app-canary"), "Service": ("app-stable", "app-canary"),
                           "Route53 record": ("app.example.com",)},
     {"Service": ("app-stable-service", "app-canary-service"), "Record": ("app-stable-record", "app-canary-record")}),
]


@pytest.mark.parametrize("traffic,keys,objects,resources", NEW_MODE_NAMES, ids=[n[0] for n in NEW_MODE_NAMES])
def test_the_new_modes_name_every_object_and_resource_they_register(traffic, keys, objects, resources):
    from preview.runner import run_program
    from tests.conftest import settings_with

    settings = settings_with({"app": canary(traffic=traffic, **keys)})
    settings["aws:region"] = "us-west-2"
    run = run_program("test", settings=settings)
    assert run.error is None
    release = validate({"cluster": {"mode": "kubeconfig"}, "releases": {"app": canary(traffic=traffic, **keys)}},
                       "test", {"aws:region": "us-west-2"}).release("app")
    assert release.object_names() == objects
    names = release.resource_names()
    assert {k: v for k, v in names.items() if k not in ("Deployment", "PodDisruptionBudget")} == resources
    # Every resource the component registers is one resource_names() knows (the URN check covers it).
    kind_of = lambda typ: typ.split(":")[-1]  # noqa: E731
    registered = {(kind_of(r.type), r.name) for r in run.resources if r.parent_name == "app"}
    known = {(kind, name) for kind, listed in names.items() for name in listed}
    assert registered <= known, registered - known


def test_dns_needs_an_aws_region_on_a_kubeconfig_stack():
    raw = releases(app=canary(traffic="dns", dns=DNS))
    assert problems(raw) == [
        "aws:region: is required when a release uses traffic: dns (releases app): its Route53 records are created "
        "with the stack's AWS provider, and the load balancers' canonical hosted zone depends on the region"]
    assert validate(raw, "test", {"aws:region": "us-west-2"}).release("app").dns.region == "us-west-2"
    # On an eks stack the region is required anyway: one line, not two.
    raw["cluster"] = {"mode": "eks"}
    assert problems(raw) == ["aws:region: is required when app-update:cluster.mode is eks"]


def test_gateway_istio_and_skipper_need_no_cluster_key():
    raw = releases(g=canary(traffic="gateway"), i=canary(traffic="istio"), s=canary(traffic="skipper"))
    config = validate(raw, "test")
    assert [r.traffic for r in config.releases] == ["gateway", "istio", "skipper"]
    assert config.release("s").ingress_class == "skipper" and config.release("g").ingress_class is None


def test_the_dns_load_balancers_follow_the_controller():
    raw = releases(app=canary(traffic="dns", dns={"zone": "example.com.", "name": "app.example.com."}))
    dns = validate(raw, "test", {"aws:region": "eu-west-1"}).release("app").dns
    assert (dns.zone, dns.name, dns.region, dns.load_balancer_type) == ("example.com", "app.example.com",
                                                                        "eu-west-1", "classic")
    raw["cluster"]["loadBalancerController"] = True
    assert validate(raw, "test", {"aws:region": "eu-west-1"}).release("app").dns.load_balancer_type == "network"


@pytest.mark.parametrize("named,path,what,other", NAME_CLASHES, ids=[c[1] for c in NAME_CLASHES])
def test_objects_of_two_releases_never_share_a_name_in_the_namespace(named, path, what, other):
    raw = releases(**named)
    raw["cluster"]["loadBalancerController"] = True
    found = [p for p in problems(raw, {"aws:region": "us-west-2"}) if p.startswith(f"app-update:releases.{path}: ")]
    assert len(found) == 1, problems(raw)
    assert what in found[0]
    if other:
        assert f"release '{other}'" in found[0]


def test_distinct_releases_with_suffix_like_names_are_fine():
    raw = releases(app=canary(traffic="nginx"), **{"app-v2": rolling()})
    assert [r.name for r in validate(raw, "test").releases] == ["app", "app-v2"]


def test_every_supported_version_has_a_schema():
    import kubernetes_validate.utils as kv

    from model.config import SUPPORTED_KUBERNETES_VERSIONS

    known = {".".join(v.split(".")[:2]) for v in kv.all_versions()}
    assert set(SUPPORTED_KUBERNETES_VERSIONS) <= known


def test_pods_for_weight_keeps_each_tracks_larger_count():
    # replicas mode: 20 pods at 5% is 19 + 1, at 25% 15 + 5; between them 19 + 5.
    release = validate(releases(app=canary(replicas=20, canary={"tag": "v2", "weight": 5, "podsForWeight": 25})),
                       "test").release("app")
    assert release.replica_counts() == {"stable": 19, "canary": 5}
    raw = releases(app=canary(traffic="nlb", replicas=4, canary={"tag": "v2", "weight": 0, "podsForWeight": 50}))
    raw["cluster"]["loadBalancerController"] = True
    release = validate(raw, "test").release("app")
    assert release.replica_counts() == {"stable": 4, "canary": 2} and release.effective_weight == 0


def test_defaults_follow_kubernetes_and_the_workshop():
    config = validate(releases(app={"strategy": "RollingUpdate", "tag": "v1"}), "test")
    release = config.release("app")
    assert (release.max_surge, release.max_unavailable) == ("25%", "25%")
    assert (release.image, release.port, release.service_port) == ("arungupta/app-upgrade", 8080, 80)
    assert release.replicas == 1
    assert config.namespace == "app-update"
    assert config.await_load_balancer is True
    assert config.cluster.kubernetes_version == "1.35"


def test_canary_weight_form_splits_by_closest_share():
    release = validate(releases(app=canary(replicas=4, canary={"tag": "v2", "weight": 5})), "test").release("app")
    assert (release.stable.replicas, release.canary.replicas) == (3, 1)
    assert release.requested_weight == 5
    assert release.effective_weight == 25.0


def test_canary_workshop_form_gives_effective_weight():
    raw = releases(app={"strategy": "Canary", "stable": {"tag": "v1", "replicas": 2}, "canary": {"tag": "v2", "replicas": 4}})
    release = validate(raw, "test").release("app")
    assert release.requested_weight is None
    assert release.effective_weight == pytest.approx(66.67)
    assert release.replicas == 6


def test_weighted_modes_keep_the_stable_fleet_whole():
    raw = releases(app=canary(traffic="nlb", replicas=4, canary={"tag": "v2", "weight": 5}))
    raw["cluster"]["loadBalancerController"] = True
    release = validate(raw, "test").release("app")
    assert (release.stable.replicas, release.canary.replicas) == (4, 1)
    assert release.effective_weight == 5.0


def test_numeric_tags_are_taken_as_text():
    # YAML and `pulumi config set --path` turn a tag like 42 into a number
    assert validate(releases(app=rolling(tag=42)), "test").release("app").tag == "42"


def test_yaml_strings_for_booleans_are_accepted_as_the_cli_passes_them():
    config = validate({**releases(app=rolling()), "awaitLoadBalancer": "false", "protected": "true"}, "test")
    assert config.await_load_balancer is False and config.protected is True


def test_eks_mode_needs_a_region():
    found = problems({"cluster": {"mode": "eks"}, "releases": {"app": rolling()}})
    assert found == ["aws:region: is required when app-update:cluster.mode is eks"]


def test_eks_versions_follow_the_calendar():
    from datetime import date

    raw = {"cluster": {"mode": "eks", "kubernetesVersion": "1.33"}, "releases": {"app": rolling()}}
    region = {"aws:region": "us-west-2"}
    assert validate(raw, "t", region, today=date(2027, 7, 29)).cluster.kubernetes_version == "1.33"  # extended
    [line] = problems_on(raw, region, date(2027, 7, 30))
    assert "extended support ended 2027-07-29" in line and "EKS creates 1.34, 1.35" in line
    raw["cluster"]["kubernetesVersion"] = "1.35"
    [line] = problems_on(raw, region, date(2025, 12, 1))
    assert "EKS releases Kubernetes 1.35 on 2026-01-28" in line


def problems_on(raw, extra, today):
    with pytest.raises(ConfigError) as caught:
        validate(raw, "t", extra, today=today)
    return caught.value.problems


def test_eks_version_warnings_name_extended_support_and_its_price():
    from datetime import date

    from model.eks_versions import version_warning

    assert "six times" in version_warning("1.33", date(2026, 11, 29))
    assert "leaves EKS standard support on 2026-12-02" in version_warning("1.34", date(2026, 11, 29))
    assert version_warning("1.35", date(2026, 11, 29)) is None


def test_pinned_zones_set_the_count():
    raw = {"cluster": {"mode": "eks", "availabilityZoneNames": ["us-west-2b", "us-west-2c", "us-west-2d"]},
           "releases": {"app": rolling()}}
    cluster = validate(raw, "t", {"aws:region": "us-west-2"}).cluster
    assert cluster.availability_zones == 3 and cluster.availability_zone_names == ("us-west-2b", "us-west-2c",
                                                                                   "us-west-2d")
    assert cluster.log_retention_days == 30 and cluster.admins == ()


def test_the_kubeconfig_identity_comes_from_the_aws_provider_config():
    raw = {"cluster": {"mode": "eks"}, "releases": {"app": rolling()}}
    config = validate(raw, "t", {"aws:region": "us-west-2", "aws:profile": "team",
                                 "aws:assumeRoles": [{"roleArn": "arn:aws:iam::111122223333:role/deployer"}]})
    assert (config.aws_profile, config.aws_role_arn) == ("team", "arn:aws:iam::111122223333:role/deployer")


URN_CLASHES = [
    pytest.param({"app": canary(traffic="nginx"), "app-canary": canary(traffic="nlb", serviceName="other")},
                 "Service 'app-canary-service'", id="canary app and canary app-canary"),
    pytest.param({"app": canary(traffic="nlb"), "app-canary": canary(serviceName="other")},
                 "Service 'app-canary-service'", id="nlb track service and a replicas canary"),
]


@pytest.mark.parametrize("named,what", URN_CLASHES)
def test_two_releases_never_register_the_same_urn(named, what):
    raw = releases(**named)
    raw["cluster"]["loadBalancerController"] = True
    found = [p for p in problems(raw) if "same URN" in p]
    assert len(found) == 1 and found[0].startswith("app-update:releases.app-canary: its Pulumi ") and what in found[0]
    assert "release 'app'" in found[0]
