"""The stack-file schema as editors and CI use it (issue #26): check-jsonschema (the validator the YAML language
server's rules follow: ECMAScript regexes, no OpenAPI `discriminator`) reports the error of the branch the user
meant, naming the misspelt key or the bad value; and it refuses what the loader refuses, except the rules listed
below with the reason JSON Schema cannot say them."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from model.config_models import SCHEMA_FILE
from tests.conftest import ROOT
from tests.test_config import INVALID
from tests.test_eks import EKS_INVALID
from tests.test_quantity import INVALID as INVALID_QUANTITIES

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def check(files):
    """check-jsonschema over the files, in one run: {file name: [(path, message)]}."""
    run = subprocess.run([str(CHECK_JSONSCHEMA), "-o", "json", "--schemafile", str(ROOT / SCHEMA_FILE),
                          *map(str, files)], capture_output=True, text=True, timeout=120)
    report = json.loads(run.stdout)
    errors = {Path(f).name: [] for f in files}
    for error in report.get("errors", []):
        errors[Path(error["filename"]).name].append((error["path"], error["message"]))
    assert run.returncode == (1 if report.get("errors") else 0), run.stderr
    return errors


def rolling(**overrides):
    return {"strategy": "RollingUpdate", "tag": "v1", "replicas": 5, "maxSurge": 1, "maxUnavailable": 1, **overrides}


def canary(**overrides):
    return {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 25},
            **overrides}


def stack(releases=None, **top):
    config = {"app-update:cluster": {"mode": "kubeconfig"}, "app-update:releases": releases or {"app": rolling()}}
    config.update({f"app-update:{k}" if ":" not in k else k: v for k, v in top.items()})
    return {"config": config}


EKS = {"mode": "eks", "vpcCidr": "10.10.0.0/16"}

# (what, stack file, what the error names: the misspelt key or the bad value)
BROKEN = [
    ("a misspelt key of a RollingUpdate release", stack({"app": {**rolling(), "maxUnavailabe": 1}}), "maxUnavailabe"),
    ("a negative replica count", stack({"app": {"strategy": "Recreate", "tag": "v1", "replicas": -3}}), "-3"),
    ("an empty namespace", stack(namespace=None), "app-update:namespace"),
    ("a /33 network", stack(cluster={**EKS, "vpcCidr": "10.10.0.0/33"}, **{"aws:region": "us-west-2"}),
     "10.10.0.0/33"),
    ("a /8 network", stack(cluster={**EKS, "vpcCidr": "10.0.0.0/8"}, **{"aws:region": "us-west-2"}), "10.0.0.0/8"),
    ("a misspelt key of a canary track", stack({"app": canary(canary={"tag": "v2", "wieght": 5})}), "wieght"),
    ("an unknown strategy", stack({"app": rolling(strategy="Shadow")}), "Shadow"),
    ("an unknown cluster mode", stack(cluster={"mode": "gke"}), "gke"),
    ("an EKS key on a kubeconfig cluster", stack(cluster={"mode": "kubeconfig", "natGateways": "single"}),
     "natGateways"),
    ("a misspelt key of a cluster without mode", stack(cluster={"contxt": "kind"}), "contxt"),
    ("an unknown traffic mode", stack({"app": canary(traffic="linkerd")}), "linkerd"),
    ("gateway settings with nginx traffic", stack({"app": canary(traffic="nginx", gateway={"name": "public"})}),
     "gateway"),
    ("an ingress class with gateway traffic", stack({"app": canary(traffic="gateway", gateway={"name": "gw"},
                                                                   ingressClass="nginx")}), "ingressClass"),
    ("dns traffic without its zone", stack({"app": canary(traffic="dns")}, **{"aws:region": "us-west-2"}), "dns"),
    ("istio without hosts", stack({"app": canary(traffic="istio", gateway={"name": "gw"})}), "hosts"),
    ("a single tag on a Canary release", stack({"app": canary(tag="v1")}), "tag"),
    ("a Canary key on a RollingUpdate release", stack({"app": rolling(stable={"tag": "v1"})}), "stable"),
    ("maxSurge on a Recreate release", stack({"app": {"strategy": "Recreate", "tag": "v1", "maxSurge": 1}}),
     "maxSurge"),
    ("a count as a string", stack({"app": rolling(replicas="5")}), "'5'"),
    ("a fencepost without %", stack({"app": rolling(maxSurge="5")}), "'5'"),
    ("maxUnavailable above 100%", stack({"app": rolling(maxUnavailable="150%")}), "150%"),
    ("no tag", stack({"app": {"strategy": "RollingUpdate", "replicas": 2}}), "'tag' is a required property"),
    ("nlb without the load balancer controller", stack({"app": canary(traffic="nlb")}), "nlb"),
    ("a namespace every cluster has", stack(namespace="kube-system"), "kube-system"),
    ("both fenceposts 0", stack({"app": rolling(maxSurge=0, maxUnavailable="0%")}), "maxUnavailable"),
]

# What another branch's errors look like: never shown for a release whose strategy (or cluster whose mode) is known.
OTHER_BRANCH = ("was expected", "is not valid under any of the given schemas", "is not of type 'null'",
                "is not one of ['Recreate']", "is not one of ['eks']")


def test_check_jsonschema_names_the_misspelt_key_or_the_bad_value_of_the_branch_meant(checked):
    errors = checked
    for i, (what, _, named) in enumerate(BROKEN):
        found = errors[f"Pulumi.case{i}.yaml"]
        assert found, f"{what}: not refused"
        assert any(named in f"{path}: {message}" for path, message in found), (what, found)
        for path, message in found:
            assert not any(fragment in message for fragment in OTHER_BRANCH), (what, path, message)


def test_the_stack_files_pass_check_jsonschema(checked):
    assert {name: checked[name] for name in SHIPPED} == {name: [] for name in SHIPPED}


# The loader's rules JSON Schema cannot say: each compares two values, or a value with the calendar or a unit.
SCHEMA_CANNOT = {
    "releases.app.replicas:at least 2": "cross-key: the fewest replicas follow the canary weight and traffic mode",
    "releases.app:not both": "cross-key: replicas with per-track replicas (one form or the other)",
    "releases.app.resources.requests.memory:must not exceed limits.memory": "compares two quantities with units",
    "releases.app.progressDeadlineSeconds:greater than minReadySeconds": "compares two numbers",
    "releases.app:splits by weight": "cross-key: per-track replicas with a weighted traffic mode",
    "releases.app.replicas:at least 1 with traffic 'nginx'": "cross-key: replicas, traffic and the canary weight",
    "releases.app.replicas:at least 1 with traffic 'istio'": "cross-key: replicas, traffic and the canary weight",
    "releases.app:traffic 'skipper' splits by weight": "cross-key: per-track replicas with a weighted traffic mode",
    "cluster.kubernetesVersion:EKS no longer creates Kubernetes 1.31": "the versions EKS creates move with the "
                                                                       "calendar (model/eks_versions.py)",
    "cluster.availabilityZoneNames:availabilityZones is 2": "compares a count with a list's length",
    "releases.app.canary.podsForWeight:goes with replicas + canary.weight": "cross-key: the form of the release",
    "releases.app.dns.name:must be in zone example.com": "compares two names (a suffix of another value)",
    "cluster.nodes:min <= desired <= max": "compares three numbers",
    "cluster.endpointPublicAccessCidrs[0]:no host bits": "host bits are arithmetic on the address and the prefix",
    "releases.app.green.replicas:complete or scaled down": "compares a color's replicas with the release's",
    "releases.app.blue.replicas:must not be 0 while blue is active": "cross-key: active, the release's replicas "
                                                                      "and the color's",
    "releases.app.previewServiceName:must differ from serviceName": "compares two names",
    "releases.app.previewCheck.interval:must be longer than 0": "arithmetic on a duration's numbers",
    "releases.app.previewServiceName:is required here": "the length of a name made from another value",
    "releases.web.serviceName:Service name 'web' is already used": "compares names across releases",
    "releases.web.previewServiceName:Service name 'p' is already used": "compares names across releases",
    "releases.app.previewCheck.interval:must be at most 24h": "arithmetic on a duration's numbers",
}


def _case_id(key, rule):
    return f"{key}:{rule}"


def _document(raw):
    config = {}
    for key, value in raw.items():
        if key == "_region":
            config["aws:region"] = "us-west-2"
        else:
            config[f"app-update:{key}"] = copy.deepcopy(value)
    return {"config": config}


def _eks(cluster):
    return {"cluster": {"mode": "eks", **cluster}, "releases": {"app": {"strategy": "Recreate", "tag": "v1"}},
            "_region": True}


def _quantity(text):
    return {"cluster": {"mode": "kubeconfig"},
            "releases": {"app": {"strategy": "Recreate", "tag": "v1", "resources": {"requests": {"cpu": text}}}}}


# The project's invalid-config tables: (config, key path, rule) as test_config.INVALID has them.
INVALID_TABLES = [*INVALID, *((_eks(cluster), key, rule) for cluster, key, rule in EKS_INVALID),
                  *((_quantity(text), "releases.app.resources.requests.cpu", f"quantity {text!r}")
                    for text in INVALID_QUANTITIES)]


def test_the_schema_refuses_every_invalid_config_the_loader_refuses_or_says_why_it_cannot(checked):
    errors = checked
    cannot = SCHEMA_CANNOT
    accepted = set()
    for i, (_, key, rule) in enumerate(INVALID_TABLES):
        if not errors[f"Pulumi.invalid{i}.yaml"]:
            accepted.add(_case_id(key, rule))
    unexplained = sorted(case for case in accepted if not any(case.startswith(c) or c == case for c in cannot))
    assert not unexplained, "the schema accepts what the loader refuses: " + "; ".join(map(repr, unexplained))
    stale = sorted(c for c in cannot if not any(case.startswith(c) for case in accepted))
    assert not stale, f"listed as beyond the schema, but refused by it now: {stale}"


# The cases of issue #26 together, as a user's file would have them.
ISSUES_CASES = stack({"app-rolling": {**rolling(), "maxUnavailabe": 1},
                      "app-recreate": {"strategy": "Recreate", "tag": "v1", "replicas": -3}},
                     namespace=None, cluster={**EKS, "vpcCidr": "10.10.0.0/33"}, **{"aws:region": "us-west-2"})


def test_the_issues_cases_in_one_file(checked):
    """The cases of issue #26 together, as a user's file would have them: each reported, nothing else."""
    found = checked["Pulumi.mine.yaml"]
    assert len(found) == 4, found
    text = "\n".join(f"{p}: {m}" for p, m in found)
    for named in ("maxUnavailabe", "-3 is less than the minimum of 0", "app-update:namespace", "10.10.0.0/33"):
        assert named in text
    assert "'tag' was unexpected" not in text and "'Recreate' was expected" not in text


SHIPPED = [f"Pulumi.{s}.yaml" for s in ("dev", "local", "prod", "staging")]


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """check-jsonschema's errors, by file name, over every file this module's tests read, in one run (its
    start-up is most of a run's time): the BROKEN cases (Pulumi.case<i>.yaml), the invalid-config tables
    (Pulumi.invalid<i>.yaml), the issue's cases in one file (Pulumi.mine.yaml) and this project's stack files."""
    assert CHECK_JSONSCHEMA.exists(), "check-jsonschema is pinned in requirements-dev.txt"
    directory = tmp_path_factory.mktemp("stack-files")
    files = []
    for i, (_, document, _) in enumerate(BROKEN):
        files.append(directory / f"Pulumi.case{i}.yaml")
        files[-1].write_text(yaml.safe_dump(document))
    for i, (raw, _, _) in enumerate(INVALID_TABLES):
        files.append(directory / f"Pulumi.invalid{i}.yaml")
        files[-1].write_text(json.dumps(_document(raw)))  # JSON is YAML; keys like "app\n" survive as written
    files.append(directory / "Pulumi.mine.yaml")
    files[-1].write_text(yaml.safe_dump(ISSUES_CASES))
    return check([*files, *(ROOT / name for name in SHIPPED)])
