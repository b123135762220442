"""Header and cookie routes (`canary.match`) and sticky sessions (`canary.sticky`) on each router that can express
them: the exact objects, matched requests on the canary at weight 0, the refusals (with their reasons) where the
router cannot, and the committed schema saying the same as the loader."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest

from components.canary_pair import cookie_regex
from model.config import ConfigError, split_namespaces, validate
from model.config_models import SCHEMA_FILE
from tests.conftest import ROOT, objects_of, settings_with, shared_run

INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
VIRTUAL_SERVICE = "kubernetes:networking.istio.io/v1:VirtualService"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
HEADER = {"name": "X-Canary", "value": "always"}
BOTH = {"header": HEADER, "cookie": "canary"}
CONTROLLER = {"app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True}}


def settings(traffic: str, match: dict[str, Any] | None = None, weight: int = 0, sticky: bool | None = None,
             **extra: Any) -> dict[str, Any]:
    canary: dict[str, Any] = {"tag": "v2", "weight": weight}
    if match is not None:
        canary["match"] = copy.deepcopy(match)
    if sticky is not None:
        canary["sticky"] = sticky
    release = {"strategy": "Canary", "traffic": traffic, "replicas": 4, "stable": {"tag": "v1"}, "canary": canary,
               **extra}
    result = settings_with({"app": release})
    if traffic in ("alb", "nlb"):
        result.update(copy.deepcopy(CONTROLLER))
    if traffic == "dns":
        result["aws:region"] = "us-west-2"
    return result


def problems(values: dict[str, Any]) -> list[str]:
    own, other = split_namespaces(values)
    try:
        validate(own, "test", other)
    except ConfigError as error:
        return error.problems
    return []


def run(values: dict[str, Any]):
    result = shared_run("test", values)
    if result.error is not None:
        raise result.error
    return result


SCHEMA = jsonschema.Draft202012Validator(json.loads((ROOT / SCHEMA_FILE).read_text()))


def schema_errors(values: dict[str, Any]) -> list[str]:
    return [e.message for e in SCHEMA.iter_errors({"config": values})]


# ---------------------------------------------------------------------------------------------
# The objects each router gets
# ---------------------------------------------------------------------------------------------


def test_nginx_canary_ingress_routes_the_header_and_cookie_before_the_weight():
    canary = objects_of(run(settings("nginx", BOTH)), INGRESS)["app-canary"]
    assert canary["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/canary": "true", "nginx.ingress.kubernetes.io/canary-weight": "0",
        "nginx.ingress.kubernetes.io/canary-by-header": "X-Canary",
        "nginx.ingress.kubernetes.io/canary-by-header-value": "always",
        "nginx.ingress.kubernetes.io/canary-by-cookie": "canary",
    }
    regex = objects_of(run(settings("nginx", {"header": {"name": "X-User", "regex": "^(alice|bob)$"}})), INGRESS)
    annotations = regex["app-canary"]["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/canary-by-header-pattern"] == "^(alice|bob)$"
    assert "nginx.ingress.kubernetes.io/canary-by-header-value" not in annotations


def test_alb_lists_a_rule_per_match_kind_before_the_weighted_rule():
    ingress = objects_of(run(settings("alb", BOTH, weight=0)), INGRESS)["app"]
    paths = ingress["spec"]["rules"][0]["http"]["paths"]
    assert [p["backend"]["service"]["name"] for p in paths] == ["canary-header", "canary-cookie", "canary-split"]
    assert all(p["backend"]["service"]["port"] == {"name": "use-annotation"} for p in paths)
    annotations = ingress["metadata"]["annotations"]
    forward = {"type": "forward", "forwardConfig": {"targetGroups": [
        {"serviceName": "app-canary", "servicePort": 80, "weight": 100}]}}
    assert json.loads(annotations["alb.ingress.kubernetes.io/actions.canary-header"]) == forward
    assert json.loads(annotations["alb.ingress.kubernetes.io/actions.canary-cookie"]) == forward
    assert json.loads(annotations["alb.ingress.kubernetes.io/conditions.canary-header"]) == [
        {"field": "http-header", "httpHeaderConfig": {"httpHeaderName": "X-Canary", "values": ["always"]}}]
    cookie = json.loads(annotations["alb.ingress.kubernetes.io/conditions.canary-cookie"])
    assert cookie[0]["httpHeaderConfig"]["httpHeaderName"] == "Cookie"
    assert "canary=always" in cookie[0]["httpHeaderConfig"]["values"]
    weighted = json.loads(annotations["alb.ingress.kubernetes.io/actions.canary-split"])
    assert [g["weight"] for g in weighted["forwardConfig"]["targetGroups"]] == [100, 0]


def test_gateway_route_has_a_header_rule_before_the_weighted_one():
    route = objects_of(run(settings("gateway", BOTH)), HTTPROUTE)["app"]
    first, weighted = route["spec"]["rules"]
    assert first == {"matches": [
        {"headers": [{"type": "Exact", "name": "X-Canary", "value": "always"}]},
        {"headers": [{"type": "RegularExpression", "name": "Cookie", "value": r"^(.*;\s*)?canary=always(;.*)?$"}]},
    ], "backendRefs": [{"name": "app-canary", "port": 80}]}
    assert [b["weight"] for b in weighted["backendRefs"]] == [100, 0]
    assert "matches" not in weighted


def test_istio_virtual_service_matches_first_with_lowercase_header_names():
    virtual = objects_of(run(settings("istio", {"header": {"name": "X-Canary", "regex": "alw.*"}, "cookie": "c"})),
                         VIRTUAL_SERVICE)["app"]
    first, weighted = virtual["spec"]["http"]
    assert first["match"] == [{"headers": {"x-canary": {"regex": "alw.*"}}},
                              {"headers": {"cookie": {"regex": r"^(.*;\s*)?c=always(;.*)?$"}}}]
    assert first["route"] == [{"destination": {"host": "app", "subset": "canary", "port": {"number": 80}}}]
    assert [r["weight"] for r in weighted["route"]] == [100, 0]


def test_skipper_gets_an_ingress_per_match_kind_with_its_predicate():
    ingresses = objects_of(run(settings("skipper", BOTH)), INGRESS)
    assert set(ingresses) == {"app", "app-canary-header", "app-canary-cookie"}
    header, cookie = ingresses["app-canary-header"], ingresses["app-canary-cookie"]
    assert header["metadata"]["annotations"]["zalando.org/skipper-predicate"] == 'Header("X-Canary", "always")'
    assert cookie["metadata"]["annotations"]["zalando.org/skipper-predicate"] == 'Cookie("canary", "always")'
    for ingress in (header, cookie):
        paths = ingress["spec"]["rules"][0]["http"]["paths"]
        assert [p["backend"]["service"]["name"] for p in paths] == ["app-canary"]
    regex = objects_of(run(settings("skipper", {"header": {"name": "X-User", "regex": "^a.*"}})), INGRESS)
    assert regex["app-canary-header"]["metadata"]["annotations"]["zalando.org/skipper-predicate"] == (
        'HeaderRegexp("X-User", "^a.*")')


@pytest.mark.parametrize("traffic", ["nginx", "alb", "gateway", "istio", "skipper"])
def test_a_dark_canary_at_weight_0_keeps_a_pod_for_matched_requests(traffic):
    deployments = objects_of(run(settings(traffic, {"header": HEADER})), DEPLOYMENT)
    assert deployments["app-canary"]["spec"]["replicas"] == 1
    assert deployments["app-stable"]["spec"]["replicas"] == 4
    without = objects_of(run(settings(traffic)), DEPLOYMENT)
    assert without["app-canary"]["spec"]["replicas"] == 0


def test_the_cookie_regex_matches_the_pair_anywhere_in_the_header_and_nothing_else():
    import re

    from model.config import Match

    pattern = re.compile(cookie_regex(Match(cookie="canary")))
    for header in ("canary=always", "a=1; canary=always", "canary=always; b=2", "a=1;canary=always;b=2"):
        assert pattern.fullmatch(header), header
    for header in ("canary=never", "xcanary=always", "canary=alwaysx", "a=canary=always"):
        assert not pattern.fullmatch(header), header


# ---------------------------------------------------------------------------------------------
# Sticky sessions
# ---------------------------------------------------------------------------------------------


def test_sticky_on_nginx_and_alb():
    stable = objects_of(run(settings("nginx", BOTH, weight=10, sticky=True)), INGRESS)["app"]
    assert stable["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert stable["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity-canary-behavior"] == "sticky"
    alb = objects_of(run(settings("alb", None, weight=10, sticky=True)), INGRESS)["app"]
    action = json.loads(alb["metadata"]["annotations"]["alb.ingress.kubernetes.io/actions.canary-split"])
    assert action["forwardConfig"]["targetGroupStickinessConfig"] == {"enabled": True, "durationSeconds": 3600}
    plain = objects_of(run(settings("alb", None, weight=10)), INGRESS)["app"]
    assert "targetGroupStickinessConfig" not in plain["metadata"]["annotations"][
        "alb.ingress.kubernetes.io/actions.canary-split"]


# ---------------------------------------------------------------------------------------------
# Refusals: one line naming the key and the reason; the committed schema refuses the same
# ---------------------------------------------------------------------------------------------

DNS = {"dns": {"zone": "example.com", "name": "app.example.com"}}


@pytest.mark.parametrize(("traffic", "reason"), [
    ("nlb", "an NLB forwards TCP and never sees a header or cookie"),
    ("dns", "DNS answers name lookups and never sees a request"),
    ("replicas", "kube-proxy picks a pod per connection and never reads a header or cookie"),
])
def test_routers_that_never_see_a_request_refuse_a_match(traffic, reason):
    values = settings(traffic, {"header": HEADER}, **(DNS if traffic == "dns" else {}))
    found = problems(values)
    assert len(found) == 1 and found[0].startswith(
        f"app-update:releases.app.canary.match: is not possible with traffic '{traffic}': "), found
    assert reason in found[0]
    assert schema_errors(values)
    if traffic == "replicas":  # the default mode, traffic absent
        del values["app-update:releases"]["app"]["traffic"]
        assert problems(values) == [found[0]]
        assert schema_errors(values)


@pytest.mark.parametrize(("traffic", "reason"), [
    ("nlb", "never sees a header"), ("dns", "never sees a request"), ("replicas", "kube-proxy"),
    ("istio", "within a subset"), ("skipper", "per request"), ("gateway", "experimental channel only"),
])
def test_routers_without_affinity_refuse_sticky(traffic, reason):
    values = settings(traffic, None, weight=5, sticky=True, **(DNS if traffic == "dns" else {}))
    found = problems(values)
    assert len(found) == 1 and found[0].startswith(
        f"app-update:releases.app.canary.sticky: is not possible with traffic '{traffic}': "), found
    assert reason in found[0]
    assert schema_errors(values)
    values["app-update:releases"]["app"]["canary"]["sticky"] = False
    assert problems(values) == [] and schema_errors(values) == []


def test_alb_refuses_a_header_regex_with_the_reason():
    values = settings("alb", {"header": {"name": "X-User", "regex": "^a"}})
    assert problems(values) == ["app-update:releases.app.canary.match.header.regex: is not possible with traffic "
                                "'alb': an ALB header condition compares values with the * and ? wildcards, not "
                                "regular expressions (use value)"]
    assert schema_errors(values)


@pytest.mark.parametrize(("match", "line"), [
    ({}, "app-update:releases.app.canary.match: needs a header, a cookie or both"),
    ({"header": {"name": "X-Canary"}}, "app-update:releases.app.canary.match.header: give exactly one of value "
                                       "(an exact match) and regex"),
    ({"header": {"name": "X-Canary", "value": "a", "regex": "a"}},
     "app-update:releases.app.canary.match.header: give exactly one of value (an exact match) and regex"),
    ({"header": {"name": "X Canary", "value": "a"}}, "app-update:releases.app.canary.match.header.name: must be"),
    ({"header": {"name": "X-Canary", "regex": "a(?=b)"}},
     "app-update:releases.app.canary.match.header.regex: uses lookaround or a backreference"),
    ({"header": {"name": "X-Canary", "regex": "a("}}, "app-update:releases.app.canary.match.header.regex: is not a "
                                                      "regular expression"),
    ({"cookie": "a b"}, "app-update:releases.app.canary.match.cookie: must be a cookie name"),
    ({"header": HEADER, "cokie": "x"}, "app-update:releases.app.canary.match.cokie: unknown key; did you mean "
                                       "'cookie'?"),
])
def test_a_bad_match_is_one_line_naming_its_key(match, line):
    found = problems(settings("nginx", match))
    assert len(found) == 1 and found[0].startswith(line), found


@pytest.mark.parametrize("traffic", ["nginx", "alb", "gateway", "istio", "skipper"])
def test_a_match_passes_the_committed_schema_where_the_loader_takes_it(traffic):
    match = BOTH if traffic != "alb" else {"header": HEADER, "cookie": "canary"}
    values = settings(traffic, match, sticky=traffic in ("nginx", "alb"))
    assert problems(values) == []
    assert schema_errors(values) == []


# ---------------------------------------------------------------------------------------------
# The plan shows the route
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("traffic", ["nginx", "alb", "gateway", "istio", "skipper"])
def test_the_plan_shows_the_match_route_and_where_it_lives(traffic):
    from preview import plan

    values = settings(traffic, {"header": HEADER} if traffic == "alb" else BOTH, sticky=traffic == "nginx")
    own, other = split_namespaces(values)
    config = validate(own, "test", other)
    text = plan.render_text(plan.build(config, run(values)))
    line = next(line for line in text.splitlines() if line.strip().startswith("match "))
    assert "header X-Canary: always" in line and "→ canary at every weight" in line
    assert ("cookie canary=always" in line) == (traffic != "alb")
    sticky = [line for line in text.splitlines() if line.strip().startswith("sticky ")]
    assert len(sticky) == (traffic == "nginx")
    assert not [line for line in plan.render_text(plan.build(
        validate(*split_namespaces(settings(traffic))[:1], "test", split_namespaces(settings(traffic))[1]),
        run(settings(traffic)))).splitlines() if line.strip().startswith("match ")]


def test_the_plans_abort_keeps_the_canary_pod_a_match_route_needs():
    from preview import plan

    values = settings("gateway", BOTH, weight=5)
    own, other = split_namespaces(values)
    text = plan.render_text(plan.build(validate(own, "test", other), run(values)))
    abort = next(line for line in text.splitlines() if "abort 5% → 0%" in line)
    assert "canary 1 → 0 pods" not in abort and "weight 5% → 0%" in abort
