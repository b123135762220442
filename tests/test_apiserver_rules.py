"""The API server's validation beyond the schema (tests/apiserver_rules.py): the rules case by case,
then every object the program renders (each stack file, a few Kubernetes versions) through them.
Each canary traffic mode at each weight goes through them beside its other checks, on the same
runs: tests/test_traffic.py (replicas, nlb, alb, nginx) and tests/test_traffic_modes.py (the rest)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from tests import apiserver_rules as rules
from tests.conftest import ROOT, STACKS, objects_of, ok_run

try:  # the stack file reader; conftest takes it from wherever the runner lives
    from tests.conftest import stack_settings
except ImportError:  # pragma: no cover - a re-layout moved it
    try:
        from preview.runner import stack_settings
    except ImportError:
        from model.stack_file import stack_settings

try:
    from model.config_models import DEFAULT_KUBERNETES_VERSION
except ImportError:  # pragma: no cover - a re-layout moved it
    try:
        from model.config import DEFAULT_KUBERNETES_VERSION
    except ImportError:
        DEFAULT_KUBERNETES_VERSION = "1.35"

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
DELETE = object()


def changed(obj: dict[str, Any], **paths: Any) -> dict[str, Any]:
    """A deep copy of obj with each dotted path (given as **{"spec.template.spec.containers[0].name": v})
    set to its value, or removed when the value is DELETE."""
    result = copy.deepcopy(obj)
    for dotted, value in paths.items():
        steps: list[str | int] = []
        for part in dotted.split("."):
            match = re.fullmatch(r"([^\[]+)((?:\[\d+\])*)", part)
            assert match, dotted
            steps.append(match.group(1))
            steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
        node: Any = result
        for step in steps[:-1]:
            if isinstance(step, str) and step not in node:
                node[step] = {}
            node = node[step]
        if value is DELETE:
            del node[steps[-1]]
        else:
            node[steps[-1]] = value
    return result


def errors_of(obj: dict[str, Any], version: str = "1.35") -> list[str]:
    return rules.validate(obj, version)


# ---------------------------------------------------------------------------------------------
# Minimal valid objects, shaped like the program's
# ---------------------------------------------------------------------------------------------

LABELS = {"app.kubernetes.io/name": "app", "app-update/track": "stable", "app.kubernetes.io/version": "v1"}
SELECTOR = {"matchLabels": {"app.kubernetes.io/name": "app", "app-update/track": "stable"}}


def a_deployment() -> dict[str, Any]:
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "app-stable", "namespace": "app-update", "labels": dict(LABELS),
                     "annotations": {"kubernetes.io/change-cause": "app-update dev: arungupta/app-upgrade:v1"}},
        "spec": {
            "replicas": 4, "selector": copy.deepcopy(SELECTOR), "minReadySeconds": 5, "progressDeadlineSeconds": 600,
            "revisionHistoryLimit": 10,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": dict(LABELS)},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "app", "image": "arungupta/app-upgrade:v1",
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [{"name": "LOG_LEVEL", "value": "info"}],
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                        "readinessProbe": dict(probe, successThreshold=1),
                        "livenessProbe": dict(probe, initialDelaySeconds=10),
                        "lifecycle": {"preStop": {"sleep": {"seconds": 5}}},
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                            "allowPrivilegeEscalation": False, "privileged": False,
                                            "capabilities": {"drop": ["ALL"]},
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                    }],
                    "topologySpreadConstraints": [
                        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
                         "labelSelector": copy.deepcopy(SELECTOR)}
                        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")],
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "automountServiceAccountToken": False,
                },
            },
        },
    }


def a_service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "app", "namespace": "app-update", "labels": {"app.kubernetes.io/name": "app"},
                         "annotations": {"service.beta.kubernetes.io/actions.TCP-80": "{}"}},
            "spec": {"type": "LoadBalancer", "selector": dict(SELECTOR["matchLabels"]),
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}}


def an_ingress() -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "app", "namespace": "app-update"},
            "spec": {"ingressClassName": "alb", "rules": [{"http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "canary-split", "port": {"name": "use-annotation"}}}}]}}]}}


def a_budget() -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "app-stable", "namespace": "app-update"},
            "spec": {"maxUnavailable": 1, "selector": copy.deepcopy(SELECTOR), "unhealthyPodEvictionPolicy": "AlwaysAllow"}}


def a_namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-update"}}


# ---------------------------------------------------------------------------------------------
# The string rules (k8s.io/apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------------------------


def test_pythons_dollar_takes_a_trailing_newline_which_is_why_the_rules_use_fullmatch():
    assert re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "app\n")  # what a Go port with `$` would get wrong
    assert rules.is_dns1123_label("app\n")


STRING_RULES = [
    # (rule, value, valid)
    pytest.param(rules.is_dns1123_label, "app-update", True, id="label-ok"),
    pytest.param(rules.is_dns1123_label, "1app", True, id="label-leading-digit-ok"),
    pytest.param(rules.is_dns1123_label, "a" * 63, True, id="label-63"),
    pytest.param(rules.is_dns1123_label, "a" * 64, False, id="label-64"),
    pytest.param(rules.is_dns1123_label, "App", False, id="label-upper"),
    pytest.param(rules.is_dns1123_label, "app-", False, id="label-trailing-dash"),
    pytest.param(rules.is_dns1123_label, "app.v1", False, id="label-dot"),
    pytest.param(rules.is_dns1123_label, "app\n", False, id="label-newline"),
    pytest.param(rules.is_dns1123_label, "", False, id="label-empty"),
    pytest.param(rules.is_dns1123_subdomain, "app.example.com", True, id="subdomain-ok"),
    pytest.param(rules.is_dns1123_subdomain, "a" * 253, True, id="subdomain-253"),
    pytest.param(rules.is_dns1123_subdomain, "a" * 254, False, id="subdomain-254"),
    pytest.param(rules.is_dns1123_subdomain, "app..x", False, id="subdomain-empty-label"),
    pytest.param(rules.is_dns1123_subdomain, "app.example.com\n", False, id="subdomain-newline"),
    pytest.param(rules.is_dns1123_subdomain, "App.example.com", False, id="subdomain-upper"),
    pytest.param(rules.is_dns1035_label, "app-1", True, id="dns1035-ok"),
    pytest.param(rules.is_dns1035_label, "1app", False, id="dns1035-leading-digit"),
    pytest.param(rules.is_dns1035_label, "app\n", False, id="dns1035-newline"),
    pytest.param(rules.is_dns1035_label, "a" * 64, False, id="dns1035-64"),
    pytest.param(rules.is_qualified_name, "app.kubernetes.io/name", True, id="qname-prefixed"),
    pytest.param(rules.is_qualified_name, "Name_1.x", True, id="qname-plain"),
    pytest.param(rules.is_qualified_name, "service.beta.kubernetes.io/actions.TCP-80", True, id="qname-upper-name"),
    pytest.param(rules.is_qualified_name, "/name", False, id="qname-empty-prefix"),
    pytest.param(rules.is_qualified_name, "example.com/", False, id="qname-empty-name"),
    pytest.param(rules.is_qualified_name, "a/b/c", False, id="qname-two-slashes"),
    pytest.param(rules.is_qualified_name, "Example.com/x", False, id="qname-upper-prefix"),
    pytest.param(rules.is_qualified_name, "x" * 64, False, id="qname-64"),
    pytest.param(rules.is_qualified_name, "app\n", False, id="qname-newline"),
    pytest.param(rules.is_qualified_name, "bad key", False, id="qname-space"),
    pytest.param(rules.is_valid_label_value, "", True, id="labelvalue-empty"),
    pytest.param(rules.is_valid_label_value, "V1.0_rc-1", True, id="labelvalue-ok"),
    pytest.param(rules.is_valid_label_value, "-v1", False, id="labelvalue-leading-dash"),
    pytest.param(rules.is_valid_label_value, "v1\n", False, id="labelvalue-newline"),
    pytest.param(rules.is_valid_label_value, "x" * 64, False, id="labelvalue-64"),
    pytest.param(rules.is_valid_label_value, "a b", False, id="labelvalue-space"),
    pytest.param(rules.validate_port_number, 1, True, id="port-1"),
    pytest.param(rules.validate_port_number, 65535, True, id="port-65535"),
    pytest.param(rules.validate_port_number, 0, False, id="port-0"),
    pytest.param(rules.validate_port_number, 65536, False, id="port-65536"),
    pytest.param(rules.validate_port_number, "80", False, id="port-string"),
    pytest.param(rules.validate_port_number, True, False, id="port-bool"),
    pytest.param(rules.is_valid_port_name, "http", True, id="portname-http"),
    pytest.param(rules.is_valid_port_name, "use-annotation", True, id="portname-14"),
    pytest.param(rules.is_valid_port_name, "a" * 15, True, id="portname-15"),
    pytest.param(rules.is_valid_port_name, "a" * 16, False, id="portname-16"),
    pytest.param(rules.is_valid_port_name, "8080", False, id="portname-no-letter"),
    pytest.param(rules.is_valid_port_name, "http--alt", False, id="portname-double-dash"),
    pytest.param(rules.is_valid_port_name, "-http", False, id="portname-leading-dash"),
    pytest.param(rules.is_valid_port_name, "HTTP", False, id="portname-upper"),
    pytest.param(rules.is_valid_port_name, "http\n", False, id="portname-newline"),
    pytest.param(rules.is_valid_percent, "25%", True, id="percent-25"),
    pytest.param(rules.is_valid_percent, "150%", True, id="percent-150-is-a-percent"),
    pytest.param(rules.is_valid_percent, "25", False, id="percent-no-sign"),
    pytest.param(rules.is_valid_percent, "-5%", False, id="percent-negative"),
    pytest.param(rules.is_valid_percent, "5%\n", False, id="percent-newline"),
    pytest.param(rules.is_valid_percent, 25, False, id="percent-int"),
]


@pytest.mark.parametrize("rule,value,valid", STRING_RULES)
def test_string_rules(rule, value, valid):
    errors = rule(value, "f")
    assert (errors == []) is valid, errors
    assert all(e.startswith("f: Invalid value: ") for e in errors)


def test_the_length_errors_say_the_limit():
    assert any("must be no more than 63 characters" in e for e in rules.is_dns1123_label("a" * 64))
    assert any("must be no more than 15 characters" in e for e in rules.is_valid_port_name("a" * 16))
    assert rules.is_dns1123_label("app.v1", "metadata.name") == [
        'metadata.name: Invalid value: "app.v1": must not contain dots']


ENV_NAMES = [
    # (name, valid before 1.32, valid from 1.32)
    pytest.param("LOG_LEVEL", True, True, id="plain"),
    pytest.param("my.env-name", True, True, id="dots-dashes"),
    pytest.param(".x", True, True, id="one-leading-dot"),
    pytest.param(".", False, True, id="dot"),
    pytest.param("..", False, True, id="dotdot"),
    pytest.param("..x", False, True, id="leading-dotdot"),
    pytest.param("1ABC", False, True, id="leading-digit"),
    pytest.param("MY VAR", False, True, id="space"),
    pytest.param("A=B", False, False, id="equals"),
    pytest.param("A\n", False, False, id="newline"),
    pytest.param("ÄRGER", False, False, id="non-ascii"),
    pytest.param("", False, False, id="empty"),
]


@pytest.mark.parametrize("name,strict,relaxed", ENV_NAMES)
def test_env_names_follow_relaxed_validation_from_1_32(name, strict, relaxed):
    for version in ("1.29", "1.30", "1.31"):  # alpha, off by default, in 1.30 and 1.31
        assert (rules.is_env_var_name(name, version) == []) is strict, version
    for version in ("1.32", "1.34", "1.35"):  # beta (on) in 1.32, GA in 1.34
        assert (rules.is_env_var_name(name, version) == []) is relaxed, version


def test_versions_are_read_in_the_forms_the_project_writes():
    assert [rules.minor_of(v) for v in ("1.29", "v1.30.2", 31)] == [29, 30, 31]
    with pytest.raises(ValueError):
        rules.minor_of("2.0")


def test_quantities_are_compared_by_value_not_by_text():
    same = {"requests": {"memory": "1Gi", "cpu": "0.5"}, "limits": {"memory": "1024Mi", "cpu": "500m"}}
    assert rules.validate_resource_requirements(same, "r") == []
    more = {"requests": {"memory": "1025Mi"}, "limits": {"memory": "1Gi"}}
    assert rules.validate_resource_requirements(more, "r") == [
        'r.requests: Invalid value: "1025Mi": must be less than or equal to memory limit of 1Gi']


# ---------------------------------------------------------------------------------------------
# Deployments, pod templates and pods
# ---------------------------------------------------------------------------------------------

C = "spec.template.spec.containers[0]"
T = "spec.template.spec"

DEPLOYMENT_CASES = [
    # (changes, version, expected error fragment or None for valid)
    pytest.param({}, "1.35", None, id="valid"),
    pytest.param({"metadata.name": "app.v1"}, "1.35", None, id="name-subdomain-ok"),
    pytest.param({"metadata.name": "App"}, "1.35", "metadata.name: Invalid value", id="name-upper"),
    pytest.param({"metadata.name": "app\n"}, "1.35", "metadata.name: Invalid value", id="name-newline"),
    pytest.param({"metadata.name": DELETE}, "1.35", "metadata.name: Required value", id="name-missing"),
    pytest.param({"metadata.namespace": "App"}, "1.35", "metadata.namespace: Invalid value", id="namespace-upper"),
    pytest.param({"metadata.labels": {"bad key": "v"}}, "1.35", "metadata.labels[bad key]", id="label-key"),
    pytest.param({"metadata.labels": {"k": "v1\n"}}, "1.35", "metadata.labels[k]", id="label-value-newline"),
    pytest.param({"metadata.annotations": {"Example.COM/X": "y"}}, "1.35", None, id="annotation-key-case-free"),
    pytest.param({"metadata.annotations": {"a": "x" * (256 * 1024)}}, "1.35", "metadata.annotations: Too long",
                 id="annotations-over-256KiB"),
    pytest.param({"spec.replicas": 2**31}, "1.35", "spec.replicas: Invalid value: 2147483648", id="replicas-int32"),
    pytest.param({"spec.replicas": 2**31 - 1}, "1.35", None, id="replicas-int32-max"),
    pytest.param({"spec.replicas": -1}, "1.35", "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                 id="replicas-negative"),
    pytest.param({"spec.selector": DELETE}, "1.35", "spec.selector: Required value", id="selector-missing"),
    pytest.param({"spec.selector": {}}, "1.35", "empty selector is invalid for deployment", id="selector-empty"),
    pytest.param({"spec.selector.matchLabels": {"app.kubernetes.io/name": "other"}}, "1.35",
                 "spec.template.metadata.labels: Invalid value", id="selector-label-mismatch"),
    pytest.param({"spec.selector": {"matchExpressions": [{"key": "app-update/track", "operator": "In",
                                                          "values": ["canary"]}]}}, "1.35",
                 "`selector` does not match template `labels`", id="selector-expression-mismatch"),
    pytest.param({"spec.selector": {"matchExpressions": [{"key": "app-update/track", "operator": "Exists"}]}},
                 "1.35", None, id="selector-expression-match"),
    pytest.param({"spec.selector": {"matchExpressions": [{"key": "k", "operator": "In"}]}}, "1.35",
                 "spec.selector.matchExpressions[0].values: Required value", id="selector-in-without-values"),
    pytest.param({"spec.strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}}, "1.35",
                 "spec.strategy.rollingUpdate: Forbidden", id="recreate-with-rolling-update"),
    pytest.param({"spec.strategy": {"type": "Recreate"}}, "1.35", None, id="recreate"),
    pytest.param({"spec.strategy": DELETE}, "1.35", None, id="strategy-defaulted-25-percent"),
    pytest.param({"spec.strategy.type": "BlueGreen"}, "1.35", "spec.strategy: Unsupported value",
                 id="strategy-unknown"),
    pytest.param({"spec.strategy.rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}, "1.35",
                 "may not be 0 when `maxSurge` is 0", id="surge-0-unavailable-0"),
    pytest.param({"spec.strategy.rollingUpdate": {"maxSurge": "0%", "maxUnavailable": 0}}, "1.35",
                 "may not be 0 when `maxSurge` is 0", id="surge-0-percent-unavailable-0"),
    pytest.param({"spec.strategy.rollingUpdate": {"maxSurge": 0}}, "1.35", None, id="unavailable-defaulted-25-percent"),
    pytest.param({"spec.strategy.rollingUpdate.maxUnavailable": "150%"}, "1.35", "must not be greater than 100%",
                 id="unavailable-150-percent"),
    pytest.param({"spec.strategy.rollingUpdate.maxSurge": "150%"}, "1.35", None, id="surge-150-percent-ok"),
    pytest.param({"spec.strategy.rollingUpdate.maxUnavailable": "25"}, "1.35",
                 "a valid percent string", id="unavailable-string-not-percent"),
    pytest.param({"spec.strategy.rollingUpdate.maxUnavailable": -1}, "1.35",
                 "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: -1", id="unavailable-negative"),
    pytest.param({"spec.minReadySeconds": -1}, "1.35", "spec.minReadySeconds", id="min-ready-negative"),
    pytest.param({"spec.progressDeadlineSeconds": 5}, "1.35", "must be greater than minReadySeconds",
                 id="deadline-equal-min-ready"),
    pytest.param({"spec.progressDeadlineSeconds": DELETE, "spec.minReadySeconds": 600}, "1.35",
                 "must be greater than minReadySeconds", id="defaulted-deadline-vs-min-ready"),
    pytest.param({"spec.revisionHistoryLimit": -1}, "1.35", "spec.revisionHistoryLimit", id="history-negative"),
    pytest.param({f"{T}.restartPolicy": "Never"}, "1.35", f"{T}.restartPolicy: Unsupported value",
                 id="template-restart-never"),
    pytest.param({f"{T}.activeDeadlineSeconds": 60}, "1.35", f"{T}.activeDeadlineSeconds: Forbidden",
                 id="template-active-deadline"),
    pytest.param({f"{T}.containers": []}, "1.35", f"{T}.containers: Required value", id="no-containers"),
    pytest.param({f"{C}.name": "App"}, "1.35", f"{C}.name: Invalid value", id="container-name-upper"),
    pytest.param({f"{T}.containers": [{"name": "app", "image": "x"}, {"name": "app", "image": "y"}]}, "1.35",
                 "spec.template.spec.containers[1].name: Duplicate value", id="container-name-duplicate"),
    pytest.param({f"{C}.image": DELETE}, "1.35", f"{C}.image: Required value", id="image-missing"),
    pytest.param({f"{C}.ports[0].name": "http-metrics-alt"}, "1.35", "must be no more than 15 characters",
                 id="container-port-name-16"),
    pytest.param({f"{C}.ports[0].containerPort": 0}, "1.35", f"{C}.ports[0].containerPort: Required value",
                 id="container-port-0"),
    pytest.param({f"{C}.ports[0].containerPort": 70000}, "1.35", "must be between 1 and 65535",
                 id="container-port-70000"),
    pytest.param({f"{C}.ports[0].protocol": "HTTP"}, "1.35", f"{C}.ports[0].protocol: Unsupported value",
                 id="container-port-protocol"),
    pytest.param({f"{C}.env[0].name": "."}, "1.31", f"{C}.env[0].name: Invalid value", id="env-dot-1.31"),
    pytest.param({f"{C}.env[0].name": "."}, "1.32", None, id="env-dot-1.32"),
    pytest.param({f"{C}.env[0].name": "..x"}, "1.31", "must not start with '..'", id="env-dotdot-1.31"),
    pytest.param({f"{C}.env[0].name": "..x"}, "1.32", None, id="env-dotdot-1.32"),
    pytest.param({f"{C}.resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "100m"}}}, "1.35",
                 "must be less than or equal to cpu limit of 100m", id="cpu-request-over-limit"),
    pytest.param({f"{C}.resources.requests.memory": "256Mi"}, "1.35",
                 "must be less than or equal to memory limit of 128Mi", id="memory-request-over-limit"),
    pytest.param({f"{C}.resources.requests.memory": "128Mi"}, "1.35", None, id="memory-request-at-limit"),
    pytest.param({f"{C}.resources.requests.memory": "lots"}, "1.35", "quantities must match", id="quantity-garbage"),
    pytest.param({f"{C}.resources.requests.cpu": "-1"}, "1.35", "must be greater than or equal to 0",
                 id="quantity-negative"),
    pytest.param({f"{C}.resources.requests.gpu": "1"}, "1.35", "must be a standard resource for containers",
                 id="resource-name-unknown"),
    pytest.param({f"{C}.resources": {"requests": {"nvidia.com/gpu": "1"}}}, "1.35",
                 "Limit must be set for non overcommitable resources", id="extended-resource-without-limit"),
    pytest.param({f"{C}.resources": {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "2"}}},
                 "1.35", "must be equal to nvidia.com/gpu limit of 2", id="extended-resource-overcommit"),
    pytest.param({f"{C}.readinessProbe.periodSeconds": -1}, "1.35",
                 f"{C}.readinessProbe.periodSeconds: Invalid value: -1", id="probe-period-negative"),
    pytest.param({f"{C}.readinessProbe.periodSeconds": 0}, "1.35", None, id="probe-period-0-is-the-default"),
    pytest.param({f"{C}.readinessProbe.failureThreshold": -3}, "1.35", "failureThreshold", id="probe-failure-negative"),
    pytest.param({f"{C}.livenessProbe.successThreshold": 2}, "1.35",
                 f"{C}.livenessProbe.successThreshold: Invalid value: 2: must be 1", id="liveness-success-2"),
    pytest.param({f"{C}.readinessProbe.successThreshold": 2}, "1.35", None, id="readiness-success-2"),
    pytest.param({f"{C}.readinessProbe.httpGet": DELETE}, "1.35", "must specify a handler type", id="probe-no-handler"),
    pytest.param({f"{C}.readinessProbe.tcpSocket": {"port": 8080}}, "1.35",
                 f"{C}.readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
                 id="probe-two-handlers"),
    pytest.param({f"{C}.readinessProbe.httpGet.port": "http-metrics-alt"}, "1.35",
                 f"{C}.readinessProbe.httpGet.port", id="probe-port-name-16"),
    pytest.param({f"{C}.readinessProbe.httpGet.scheme": "TCP"}, "1.35", "scheme: Unsupported value",
                 id="probe-scheme"),
    pytest.param({f"{C}.readinessProbe.terminationGracePeriodSeconds": 10}, "1.35",
                 "must not be set for readinessProbes", id="readiness-probe-grace"),
    pytest.param({}, "1.29", f"{C}.lifecycle.preStop: Required value: must specify a handler type",
                 id="prestop-sleep-1.29"),
    pytest.param({}, "1.30", None, id="prestop-sleep-1.30"),
    pytest.param({f"{C}.lifecycle.preStop": {"exec": {"command": ["sleep", "5"]}}}, "1.29", None,
                 id="prestop-exec-1.29"),
    pytest.param({f"{C}.lifecycle.preStop": {"exec": {"command": []}}}, "1.35",
                 f"{C}.lifecycle.preStop.exec.command: Required value", id="prestop-exec-empty"),
    pytest.param({f"{C}.lifecycle.preStop.exec": {"command": ["sleep", "5"]}}, "1.35",
                 f"{C}.lifecycle.preStop.sleep: Forbidden: may not specify more than 1 handler type",
                 id="prestop-sleep-and-exec"),
    pytest.param({f"{C}.lifecycle.preStop.sleep.seconds": 0}, "1.32", "must be greater than 0",
                 id="prestop-sleep-0-1.32"),
    pytest.param({f"{C}.lifecycle.preStop.sleep.seconds": 0}, "1.33", None, id="prestop-sleep-0-1.33"),
    pytest.param({f"{C}.lifecycle.preStop.sleep.seconds": 31}, "1.35",
                 "less than terminationGracePeriodSeconds (30)", id="prestop-sleep-over-grace"),
    pytest.param({f"{C}.lifecycle.preStop.sleep.seconds": 31, f"{T}.terminationGracePeriodSeconds": DELETE},
                 "1.35", "less than terminationGracePeriodSeconds (30)", id="prestop-sleep-over-default-grace"),
    pytest.param({f"{T}.terminationGracePeriodSeconds": -1}, "1.35",
                 f"{T}.terminationGracePeriodSeconds: Invalid value: -1", id="grace-negative"),
    pytest.param({f"{T}.topologySpreadConstraints[0].maxSkew": 0}, "1.35",
                 f"{T}.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
                 id="spread-max-skew-0"),
    pytest.param({f"{T}.topologySpreadConstraints[0].whenUnsatisfiable": "Maybe"}, "1.35",
                 "whenUnsatisfiable: Unsupported value", id="spread-when-unsatisfiable"),
    pytest.param({f"{T}.topologySpreadConstraints[1].topologyKey": "topology.kubernetes.io/zone"}, "1.35",
                 "{topologyKey, whenUnsatisfiable}: Duplicate value", id="spread-duplicate-pair"),
    pytest.param({f"{T}.topologySpreadConstraints[1].topologyKey": "topology.kubernetes.io/zone",
                  f"{T}.topologySpreadConstraints[1].whenUnsatisfiable": "DoNotSchedule"}, "1.35", None,
                 id="spread-same-key-other-action"),
    pytest.param({f"{T}.topologySpreadConstraints[0].topologyKey": ""}, "1.35",
                 "topologyKey: Required value", id="spread-key-empty"),
    pytest.param({f"{T}.topologySpreadConstraints[0].topologyKey": "not a key!"}, "1.35",
                 "topologyKey: Invalid value", id="spread-key-not-a-label-key"),
    pytest.param({f"{T}.topologySpreadConstraints[0].minDomains": 2}, "1.35",
                 "can only use minDomains if whenUnsatisfiable=DoNotSchedule", id="spread-min-domains"),
    pytest.param({f"{T}.securityContext.runAsUser": -1}, "1.35", f"{T}.securityContext.runAsUser: Invalid value: -1",
                 id="pod-run-as-user-negative"),
    pytest.param({f"{C}.securityContext.runAsUser": 2**31}, "1.35", f"{C}.securityContext.runAsUser",
                 id="container-run-as-user-too-big"),
    pytest.param({f"{C}.securityContext.privileged": True}, "1.35",
                 "cannot set `allowPrivilegeEscalation` to false and `privileged` to true", id="privileged-no-escalation"),
    pytest.param({f"{C}.securityContext.seccompProfile": {"type": "Localhost"}}, "1.35",
                 "must be set when seccomp type is Localhost", id="seccomp-localhost"),
]


@pytest.mark.parametrize("changes,version,expected", DEPLOYMENT_CASES)
def test_deployment_rules(changes, version, expected):
    errors = errors_of(changed(a_deployment(), **changes), version)
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_a_selector_mismatch_is_reported_as_the_api_server_words_it():
    deployment = changed(a_deployment(), **{"spec.selector.matchLabels": {"app.kubernetes.io/name": "other"}})
    [error] = rules.validate_deployment_spec(deployment["spec"], "1.35")
    assert error.startswith("spec.template.metadata.labels: Invalid value: ")
    assert error.endswith(": `selector` does not match template `labels`")


# ---------------------------------------------------------------------------------------------
# Services, Ingresses, PodDisruptionBudgets, Namespaces
# ---------------------------------------------------------------------------------------------

SERVICE_CASES = [
    pytest.param({}, None, id="valid"),
    pytest.param({"metadata.name": "1app"}, "metadata.name: Invalid value", id="name-leading-digit-dns1035"),
    pytest.param({"metadata.name": "app\n"}, "metadata.name: Invalid value", id="name-newline"),
    pytest.param({"spec.ports[0].name": "http-metrics-alt"}, None, id="port-name-16-is-a-dns-label"),
    pytest.param({"spec.ports[0].name": "p" * 64}, "spec.ports[0].name: Invalid value", id="port-name-64"),
    pytest.param({"spec.ports[0].name": "HTTP"}, "spec.ports[0].name: Invalid value", id="port-name-upper"),
    pytest.param({"spec.ports[0].targetPort": "http-metrics-alt"}, "spec.ports[0].targetPort: Invalid value",
                 id="target-port-name-16"),
    pytest.param({"spec.ports[0].targetPort": "http"}, None, id="target-port-name"),
    pytest.param({"spec.ports[0].targetPort": DELETE, "spec.ports[0].port": 70000}, "spec.ports[0].targetPort",
                 id="target-port-defaults-to-port"),
    pytest.param({"spec.ports[0].port": 0}, "spec.ports[0].port: Invalid value", id="port-0"),
    pytest.param({"spec.ports[0].protocol": "HTTP"}, "spec.ports[0].protocol: Unsupported value", id="protocol"),
    pytest.param({"spec.ports": [{"port": 80}, {"port": 443}]}, "spec.ports[0].name: Required value",
                 id="two-ports-unnamed"),
    pytest.param({"spec.ports": [{"name": "web", "port": 80}, {"name": "web", "port": 443}]},
                 "spec.ports[1].name: Duplicate value", id="two-ports-same-name"),
    pytest.param({"spec.ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
                 "spec.ports[1]: Duplicate value", id="two-ports-same-port"),
    pytest.param({"spec.ports": []}, "spec.ports: Required value", id="no-ports"),
    pytest.param({"spec.type": "Internal"}, "spec.type: Unsupported value", id="type-unknown"),
    pytest.param({"spec.type": "ClusterIP", "spec.ports[0].nodePort": 30080}, "spec.ports[0].nodePort: Forbidden",
                 id="cluster-ip-node-port"),
    pytest.param({"spec.type": "ClusterIP", "spec.externalTrafficPolicy": "Local"},
                 "may only be set for externally-accessible services", id="cluster-ip-external-policy"),
    pytest.param({"spec.type": "ExternalName"}, "spec.externalName: Required value", id="external-name-missing"),
    pytest.param({"spec.selector": {"app.kubernetes.io/name": "app\n"}}, "spec.selector[app.kubernetes.io/name]",
                 id="selector-value-newline"),
    pytest.param({"spec.loadBalancerSourceRanges": ["10.0.0.0/8", "nowhere"]},
                 "spec.LoadBalancerSourceRanges[1]: Invalid value", id="source-range"),
]


@pytest.mark.parametrize("changes,expected", SERVICE_CASES)
def test_service_rules(changes, expected):
    errors = errors_of(changed(a_service(), **changes))
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


P = "spec.rules[0].http.paths[0]"
INGRESS_CASES = [
    pytest.param({}, None, id="valid-alb-annotation-backend"),
    pytest.param({f"{P}.path": "api"}, f"{P}.path: Invalid value: \"api\": must be an absolute path", id="path-relative"),
    pytest.param({f"{P}.path": "/a//b"}, "must not contain '//'", id="path-double-slash"),
    pytest.param({f"{P}.path": "/a/.."}, "cannot end with '/..'", id="path-dotdot-suffix"),
    pytest.param({f"{P}.pathType": DELETE}, f"{P}.pathType: Required value", id="path-type-missing"),
    pytest.param({f"{P}.pathType": "Regex"}, f"{P}.pathType: Unsupported value", id="path-type-unknown"),
    pytest.param({f"{P}.pathType": "ImplementationSpecific", f"{P}.path": DELETE}, None,
                 id="implementation-specific-without-path"),
    pytest.param({f"{P}.backend.service.name": "canary_split"}, f"{P}.backend.service.name: Invalid value",
                 id="backend-name"),
    pytest.param({f"{P}.backend.service.port": {"name": "http", "number": 80}},
                 "cannot set both port name & port number", id="backend-port-both"),
    pytest.param({f"{P}.backend.service.port": {}}, "port name or number is required", id="backend-port-neither"),
    pytest.param({f"{P}.backend.service.port": {"name": "use-annotations-x"}},
                 f"{P}.backend.service.port.name: Invalid value", id="backend-port-name-16"),
    pytest.param({f"{P}.backend.service.port": {"number": 80}}, None, id="backend-port-number"),
    pytest.param({"spec.ingressClassName": "Nginx"}, "spec.ingressClassName: Invalid value", id="class-upper"),
    pytest.param({"spec.rules[0].host": "10.0.0.1"}, "must be a DNS name, not an IP address", id="host-ip"),
    pytest.param({"spec.rules[0].host": "*.example.com"}, None, id="host-wildcard"),
    pytest.param({"spec.rules[0].host": "*.*.example.com"}, "wildcard DNS-1123 subdomain", id="host-bad-wildcard"),
    pytest.param({"spec.rules": []}, "either `defaultBackend` or `rules` must be specified", id="no-rules"),
    pytest.param({"spec.rules[0].http.paths": []}, "spec.rules[0].http.paths: Required value", id="no-paths"),
    pytest.param({"metadata.annotations": {"kubernetes.io/ingress.class": "nginx"}},
                 "must match `ingressClassName` when both are specified", id="class-annotation-mismatch"),
]


@pytest.mark.parametrize("changes,expected", INGRESS_CASES)
def test_ingress_rules(changes, expected):
    errors = errors_of(changed(an_ingress(), **changes))
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


BUDGET_CASES = [
    pytest.param({}, None, id="valid"),
    pytest.param({"spec.maxUnavailable": "50%"}, None, id="percent"),
    pytest.param({"spec.minAvailable": 1}, "minAvailable and maxUnavailable cannot be both set", id="both"),
    pytest.param({"spec.maxUnavailable": "150%"}, "spec.maxUnavailable: Invalid value: \"150%\"", id="over-100"),
    pytest.param({"spec.maxUnavailable": DELETE, "spec.minAvailable": -1}, "spec.minAvailable", id="negative"),
    pytest.param({"spec.selector": DELETE}, "spec.selector: Required value", id="no-selector-our-rule"),
    pytest.param({"spec.unhealthyPodEvictionPolicy": "Never"}, "unhealthyPodEvictionPolicy: Unsupported value",
                 id="eviction-policy"),
    pytest.param({"metadata.name": "App"}, "metadata.name: Invalid value", id="name-upper"),
]


@pytest.mark.parametrize("changes,expected", BUDGET_CASES)
def test_pod_disruption_budget_rules(changes, expected):
    errors = errors_of(changed(a_budget(), **changes))
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


NAMESPACE_CASES = [
    pytest.param({}, None, id="valid"),
    pytest.param({"metadata.name": "default"}, "metadata.name: Forbidden", id="default"),
    pytest.param({"metadata.name": "kube-system"}, "metadata.name: Forbidden", id="kube-system"),
    pytest.param({"metadata.name": "kube-node-lease"}, "metadata.name: Forbidden", id="kube-node-lease"),
    pytest.param({"metadata.name": "app.update"}, "must not contain dots", id="dots"),
    pytest.param({"metadata.name": "a" * 64}, "must be no more than 63 characters", id="64"),
    pytest.param({"metadata.namespace": "x"}, "metadata.namespace: Forbidden", id="namespaced-namespace"),
]


@pytest.mark.parametrize("changes,expected", NAMESPACE_CASES)
def test_namespace_rules(changes, expected):
    errors = errors_of(changed(a_namespace(), **changes))
    if expected is None:
        assert errors == []
    else:
        assert any(expected in e for e in errors), errors


def test_the_dispatcher_refuses_kinds_and_versions_it_has_no_rules_for():
    assert errors_of({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}) == [
        'kind: Unsupported value: "ConfigMap": supported values: "Deployment", "Ingress", "Namespace", '
        '"PodDisruptionBudget", "Service"']
    assert errors_of(changed(a_budget(), apiVersion="policy/v1beta1")) == [
        'apiVersion: Unsupported value: "policy/v1beta1": supported values: "policy/v1"']
    with pytest.raises(ValueError):
        rules.validate(a_namespace(), "latest")


# ---------------------------------------------------------------------------------------------
# What the program renders
# ---------------------------------------------------------------------------------------------


def problems(run, version: str) -> list[str]:
    return rules.problems_of(run.kubernetes_objects(), version)


def stack_version(stack: str) -> str:
    cluster = stack_settings(stack, ROOT).get("app-update:cluster") or {}
    return cluster.get("kubernetesVersion") or DEFAULT_KUBERNETES_VERSION


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_of_every_stack_file_passes(stack, stack_runs):
    run = stack_runs[stack]
    assert run.error is None
    assert run.kubernetes_objects()
    assert problems(run, stack_version(stack)) == []


def canary(traffic: str, weight: int) -> dict[str, Any]:
    return {"app": {"strategy": "Canary", "traffic": traffic, "replicas": 4,
                    "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": weight}},
            "other": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 2}}


def test_custom_resources_are_skipped_by_name_and_still_refused_by_the_dispatcher():
    route = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "app"}}
    assert rules.is_custom_resource(route)
    assert errors_of(route)[0].startswith('kind: Unsupported value: "HTTPRoute"')
    assert not rules.is_custom_resource({**route, "apiVersion": "gateway.networking.k8s.io/v1beta1"})
    assert not rules.is_custom_resource({"apiVersion": "v1", "kind": "ConfigMap"})


RELEASES = {
    "app-recreate": {"strategy": "Recreate", "tag": "v1", "replicas": 2, "env": {"LOG_LEVEL": "info"}},
    "app-rolling": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 5, "maxSurge": "25%",
                    "maxUnavailable": 0, "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                                                       "limits": {"cpu": "1", "memory": "128Mi"}}},
}


@pytest.mark.parametrize("version", ["1.29", "1.30", "1.32", "1.35"])
def test_recreate_and_rolling_releases_pass_at_each_version(version):
    run = ok_run(RELEASES, cluster={"mode": "kubeconfig", "kubernetesVersion": version})
    assert len(run.of_type(DEPLOYMENT)) == 2
    assert problems(run, version) == []


def test_the_rules_would_catch_a_1_30_pause_sent_to_a_1_29_cluster():
    """What the version-dependent rules are for: the pause rendered for 1.30 is a preStop `sleep`, which
    a 1.29 API server does not take; the program renders an exec `sleep` there instead."""
    deployment = objects_of(ok_run(RELEASES, cluster={"mode": "kubeconfig", "kubernetesVersion": "1.30"}),
                            DEPLOYMENT)["app-recreate"]
    assert rules.validate(deployment, "1.30") == []
    assert rules.validate(deployment, "1.29") == [
        f"{C}.lifecycle.preStop: Required value: must specify a handler type (the sleep action needs Kubernetes "
        "1.30: PodLifecycleSleepAction is off before, and the API server drops it)"]


def test_the_real_runs_exercise_every_kind_the_rules_know(stack_runs):
    kinds = {r.inputs.get("kind") for run in stack_runs.values() for r in run.kubernetes_objects()}
    kinds |= {r.inputs.get("kind") for r in ok_run(canary("nginx", 5)).kubernetes_objects()}
    assert kinds == set(rules.VALIDATORS)
