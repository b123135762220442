"""The stack file's `app-update:` settings as pydantic models: every key, type and default once.

Checking only: these models say whether an input is valid and hold it as given (None where a
key is absent). What a valid input means (the canary split, the default Service name) is
resolved afterwards, in components/config.py.

Every rule's message is the one the operator reads: each failure is a PydanticCustomError of
type "app_update" whose text is the rule in words; `problems()` turns a ValidationError into one
line per problem naming the full key path (`app-update:releases.app.maxSurge: ...`), with "did
you mean" for unknown keys and an explanation for keys that belong to another strategy.
No Pulumi import.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from model import fenceposts
from model.config_constants import (  # noqa: F401 (re-exported: the models' names and defaults)
    CLUSTER_MODES,
    COLORS,
    DEFAULT_IMAGE,
    DEFAULT_KUBERNETES_VERSION,
    DEFAULT_SURGE,
    DEFAULT_UNAVAILABLE,
    GATEWAY_MODES,
    INGRESS_MODES,
    INT32_MAX,
    MATCH_COOKIE_VALUE,
    MATCH_MODES,
    MAX_RELEASE_NAME,
    NO_MATCH_REASONS,
    NO_STICKY_REASONS,
    PREVIEW_SUFFIX,
    PROJECT,
    STICKY_MODES,
    STRATEGIES,
    SUPPORTED_KUBERNETES_VERSIONS,
    TRAFFIC_MODES,
)
from model.quantity import MAX_QUANTITY_LENGTH, parse_quantity

# Kubernetes name rules (apimachinery validation), matched whole (fullmatch: "app\n" is no name).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# Distribution reference grammar, without tag or digest (the tag is its own key).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    r"(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
)
# A tag, optionally pinned to its digest (`v2@sha256:<64 hex>`, what `rollout promote` writes).
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
HEALTH_PATH = re.compile(r"/\S*")
INSTANCE_TYPE = re.compile(r"[a-z][a-z0-9-]*\.[a-z0-9]+")
ACCOUNT_ID = re.compile(r"[0-9]{12}")
ZONE_NAME = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]+[a-z]")
# Gateway API: a listener's name (SectionName) and a route's hostnames, as the CRD's patterns.
SECTION_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
HOSTNAME = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# A DNS name in a Route53 hosted zone (lowercase, labels of at most 63 characters, optional trailing dot).
DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*\.?")
PRINCIPAL_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:(role|user)/[\w+=,.@/-]+")
# What CloudWatch Logs accepts as a retention.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                      3288, 3653)
LOG_RETENTION_RULE = f"must be one of CloudWatch's retention periods in days: {', '.join(map(str, LOG_RETENTION_DAYS))}"
RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
VERSION_RULE = (f'must be a Kubernetes minor version from "{SUPPORTED_KUBERNETES_VERSIONS[0]}" to '
                f'"{SUPPORTED_KUBERNETES_VERSIONS[-1]}", quoted (the versions the schema check knows)')

# Defaults of keys the models leave None when absent (resolved in components/config.py).
DEFAULT_MIN_READY_SECONDS = 5
NODES_MIN, NODES_DESIRED, NODES_MAX = 1, 2, 3


def show(value: Any) -> str:
    """A value as the operator wrote it, for "(got ...)"."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def rule(text: str, *, at: tuple[str | int, ...] | None = None) -> PydanticCustomError:
    """A broken rule, in words. `at` reports it at another key of the same mapping (() = the mapping)."""
    context: dict[str, Any] = {"rule": text}
    if at is not None:
        context["at"] = at
    return PydanticCustomError("app_update", "{rule}", context)


# ---------------------------------------------------------------------------------------------
# Value types: a check that raises the rule in words, and the JSON Schema editors see
# ---------------------------------------------------------------------------------------------


def _integer(low: int | None, high: int | None) -> Callable[[Any], int]:
    top = INT32_MAX if high is None else high  # every integer the objects carry is an int32

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise rule(f"must be an integer (got {show(value)})")
        if low is not None and value < low and high is None:
            raise rule(f"must be at least {low} (got {value})")
        if value > top and high is None:
            raise rule(f"must be at most {top}, the largest number the Kubernetes API takes here (got {value})")
        if low is not None and value < low or value > top:
            raise rule(f"must be between {low} and {top} (got {value})")
        return value

    return check


def Integer(low: int | None = None, high: int | None = None) -> Any:  # noqa: N802 (a type factory)
    schema: dict[str, Any] = {"type": "integer", "maximum": INT32_MAX if high is None else high}
    if low is not None:
        schema["minimum"] = low
    return Annotated[int, BeforeValidator(_integer(low, high)), WithJsonSchema(schema)]


def parse_boolean(value: Any) -> bool:
    """A boolean setting as the CLI may pass it ("true"/"false") or YAML holds it."""
    return _boolean(value)


def _boolean(value: Any) -> bool:
    # The CLI hands booleans to the program as "true"/"false".
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if not isinstance(value, bool):
        raise rule(f"must be true or false (got {show(value)})")
    return value


Boolean = Annotated[bool, BeforeValidator(_boolean),
                    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"enum": ["true", "false"]}]})]


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise rule(f"must be a string (got {show(value)})")
    return value


def Text(pattern: re.Pattern[str] | None = None, why: str = "", max_length: int | None = None,  # noqa: N802
         json_pattern: str | None = None) -> Any:
    def check(value: Any) -> str:
        text = _string(value)
        if pattern is not None and not pattern.fullmatch(text):
            raise rule(f"{why} (got {text!r})")
        if max_length is not None and len(text) > max_length:
            raise rule(f"must be at most {max_length} characters")
        return text

    schema: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        schema["pattern"] = json_pattern or f"^{pattern.pattern}$"
    if max_length is not None:
        schema["maxLength"] = max_length
    return Annotated[str, BeforeValidator(check), WithJsonSchema(schema)]


def Choice(choices: tuple[str, ...], why: str | None = None) -> Any:  # noqa: N802
    def check(value: Any) -> str:
        text = _string(value)
        if text not in choices:
            if why:
                raise rule(f"{why} (got {text!r})")
            close = difflib.get_close_matches(text, choices, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise rule(f"must be one of {', '.join(choices)} (got {text!r}){hint}")
        return text

    return Annotated[str, BeforeValidator(check), WithJsonSchema({"enum": list(choices)})]


def _tag(value: Any) -> str:
    # YAML and `pulumi config set --path` make a tag like 42 a number: take integers as text.
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    elif isinstance(value, float):
        raise rule(f"must be an image tag; quote it so YAML keeps it as written (got {value!r})")
    text = _string(value)
    if not TAG.fullmatch(text):
        raise rule(f"must be an image tag (letters, digits, '_', '.', '-'; at most 128 characters), optionally "
                   f"pinned by digest as TAG@sha256:<64 hex digits> (got {text!r})")
    return text


ImageTag = Annotated[str, BeforeValidator(_tag), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": f"^{TAG.pattern}$"}, {"type": "integer", "minimum": 0}]})]


def _int_or_percent(value: Any) -> int | str:
    wrong = f'must be a non-negative integer or a percentage like "25%" (got {show(value)})'
    if isinstance(value, bool):
        raise rule(wrong)
    if isinstance(value, int):
        if value < 0:
            raise rule(f"must not be negative (got {value})")
        if value > INT32_MAX:
            raise rule(f"must be at most {INT32_MAX} (got {value})")
        return value
    if isinstance(value, str) and fenceposts.parse_percent(value) is not None:
        return value
    raise rule(wrong)


IntOrPercent = Annotated[int | str, BeforeValidator(_int_or_percent), WithJsonSchema(
    {"anyOf": [{"type": "integer", "minimum": 0, "maximum": INT32_MAX}, {"type": "string", "pattern": "^[0-9]+%$"}]})]


def _quantity(value: Any) -> str:
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(text, str) or (parsed := parse_quantity(text)) is None or parsed < 0:
        raise rule(f'must be a Kubernetes quantity like "250m" or "128Mi" (got {show(value)})')
    return text


# In the schema the exponent is at most 100 in size, as parse_quantity takes it (model/quantity.MAX_QUANTITY_EXPONENT).
Quantity = Annotated[str, BeforeValidator(_quantity), WithJsonSchema(
    {"anyOf": [{"type": "string", "maxLength": MAX_QUANTITY_LENGTH,
                "pattern": r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?0*(100|[1-9]?[0-9]))?$"},
               {"type": "number", "minimum": 0}]})]


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise rule(f"must be a string, number or boolean (got {show(value)})")


def _env_name(value: Any) -> str:
    # Kubernetes before 1.32 also refuses ".", ".." and names starting with "..".
    if not isinstance(value, str) or not ENV_NAME.fullmatch(value) or value == "." or value.startswith(".."):
        raise rule("is not a valid environment variable name (letters, digits, '_', '-', '.'; not starting with a digit)")
    return value


EnvName = Annotated[str, BeforeValidator(_env_name), WithJsonSchema(
    {"type": "string", "pattern": f"^(?!\\.$|\\.\\.){ENV_NAME.pattern}$"})]
EnvValue = Annotated[str, BeforeValidator(_env_value), WithJsonSchema({"type": ["string", "number", "boolean"]})]


def _release_name(value: Any) -> str:
    if not isinstance(value, str) or not DNS1035_LABEL.fullmatch(value) or len(value) > MAX_RELEASE_NAME:
        raise rule("release names must be DNS-1123 labels that start with a letter (lowercase letters, digits and '-', "
                   f"at most {MAX_RELEASE_NAME} characters) because they name Deployments and Services")
    return value


ReleaseName = Annotated[str, BeforeValidator(_release_name), WithJsonSchema(
    {"type": "string", "pattern": f"^{DNS1035_LABEL.pattern}$", "maxLength": MAX_RELEASE_NAME})]


def _image(value: Any) -> str:
    text = _string(value)
    if not IMAGE.fullmatch(text):
        if "@" in text or re.search(r":[^/]*$", text):
            raise rule(f"must be an image reference without tag or digest; put the tag in 'tag' (got {text!r})")
        raise rule(f"is not a valid image reference (got {text!r})")
    return text


Image = Annotated[str, BeforeValidator(_image), WithJsonSchema({"type": "string", "pattern": f"^{IMAGE.pattern}$"})]


def _cidr(value: Any) -> str:
    try:
        return str(ipaddress.IPv4Network(value))
    except (ValueError, TypeError):
        raise rule(f"must be an IPv4 network in CIDR form with no host bits set (got {show(value)})") from None


Cidr = Annotated[str, BeforeValidator(_cidr), WithJsonSchema({"type": "string", "format": "ipv4-network"})]


def _non_empty_list(what: str) -> Callable[[Any], list[Any]]:
    def check(value: Any) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise rule(f"must be a non-empty list of {what}" + ("" if what == "CIDRs" else f" (got {show(value)})"))
        return value

    return check


DURATION = re.compile(r"(?:[0-9]+[dhms])+")


def _duration(value: Any) -> str:
    text = _string(value)
    if not DURATION.fullmatch(text):
        raise rule(f"must be a duration like 1h, 30m, 1h30m or 2d (got {text!r})")
    return text


Duration = Annotated[str, BeforeValidator(_duration), WithJsonSchema({"type": "string", "pattern": f"^{DURATION.pattern}$"})]


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class Section(BaseModel):
    """A mapping of the stack file: unknown keys are errors; a key set to null counts as absent."""

    model_config = ConfigDict(extra="forbid", populate_by_name=False, hide_input_in_errors=True)

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(field.alias or name for name, field in cls.model_fields.items())


def _drop_nulls(value: Any) -> Any:
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value


class Track(Section):
    tag: ImageTag
    replicas: Integer(0) | None = None


# An HTTP header or cookie name (RFC 9110 token), at most 40 characters (an ALB header condition's limit).
HTTP_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}")
# A header value the routers can all compare: printable ASCII, no leading/trailing space, at most 128 (ALB's limit).
HEADER_VALUE = re.compile(r"[!-~]([ -~]{0,126}[!-~])?")
# Regular-expression features RE2 (Envoy, Gateway API implementations) and Go (skipper) refuse.
_NOT_RE2 = re.compile(r"\(\?(=|!|<=|<!)|\\[1-9]")


def _header_regex(value: Any) -> str:
    text = _string(value)
    if not 1 <= len(text) <= 128:
        raise rule("must be 1 to 128 characters")
    try:
        re.compile(text)
    except re.error as error:
        raise rule(f"is not a regular expression ({error})") from None
    if _NOT_RE2.search(text):
        raise rule("uses lookaround or a backreference, which RE2 (Envoy, Gateway API) and Go (skipper) refuse")
    return text


class HeaderMatch(Section):
    """`canary.match.header`: a request whose header `name` equals `value` (or matches `regex`) reaches the canary."""

    name: Text(HTTP_TOKEN, "must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-, at most 40)")
    value: Text(HEADER_VALUE, "must be printable ASCII without leading or trailing spaces, at most 128 characters"
                ) | None = None
    # After value: its check reads it.
    regex: Annotated[str, BeforeValidator(_header_regex),
                     WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128})] | None = Field(
        None, validate_default=True)

    @field_validator("regex")
    @classmethod
    def _one_of(cls, regex: str | None, info: ValidationInfo) -> str | None:
        if "value" not in info.data:
            return regex
        if (regex is None) == (info.data["value"] is None):
            raise rule("give exactly one of value (an exact match) and regex", at=())
        return regex


class CanaryMatch(Section):
    """`canary.match`: requests routed to the canary whatever the weight (a header and/or a cookie)."""

    header: Annotated[HeaderMatch, BeforeValidator(_drop_nulls)] | None = None
    cookie: Text(HTTP_TOKEN, "must be a cookie name (letters, digits and !#$%&'*+.^_`|~-, at most 40)") | None = Field(
        None, validate_default=True)

    @field_validator("cookie")
    @classmethod
    def _something(cls, cookie: str | None, info: ValidationInfo) -> str | None:
        if cookie is None and info.data.get("header") is None and "header" in info.data:
            raise rule("needs a header, a cookie or both", at=())
        return cookie


class CanaryTrack(Section):
    tag: ImageTag
    weight: Integer(0, 100) | None = None
    replicas: Integer(0) | None = None
    # Set by `rollout canary`/`abort` between the two updates of a weight step.
    pods_for_weight: Integer(0, 100) | None = Field(None, alias="podsForWeight")
    match: Annotated[CanaryMatch, BeforeValidator(_drop_nulls)] | None = None
    sticky: Boolean | None = None


class ResourceList(Section):
    cpu: Quantity | None = None
    memory: Quantity | None = None


class Resources(Section):
    # limits first: the requests check reads them.
    limits: Annotated[ResourceList, BeforeValidator(_drop_nulls)] | None = None
    requests: Annotated[ResourceList, BeforeValidator(_drop_nulls)] | None = None

    @field_validator("requests")
    @classmethod
    def _requests_within_limits(cls, requests: ResourceList | None, info: ValidationInfo) -> ResourceList | None:
        limits = info.data.get("limits")
        for name in ("cpu", "memory"):
            req, lim = getattr(requests, name, None), getattr(limits, name, None)
            if req and lim and parse_quantity(req) > parse_quantity(lim):
                raise rule(f"must not exceed limits.{name} ({req} > {lim}): the Kubernetes API rejects it",
                           at=("requests", name))
        return requests


class ReleaseBase(Section):
    image: Image | None = None
    port: Integer(1, 65535) | None = None
    service_port: Integer(1, 65535) | None = Field(None, alias="servicePort")
    service_name: Text(DNS1035_LABEL, "must be a DNS-1035 label (a Service name)", MAX_RELEASE_NAME) | None = Field(
        None, alias="serviceName")
    health_path: Text(HEALTH_PATH, "must be an absolute HTTP path like /healthz") | None = Field(None, alias="healthPath")
    resources: Annotated[Resources, BeforeValidator(_drop_nulls)] | None = None
    env: dict[EnvName, EnvValue] | None = None
    min_ready_seconds: Integer(0) | None = Field(None, alias="minReadySeconds")
    progress_deadline_seconds: Integer(1) | None = Field(None, alias="progressDeadlineSeconds")
    pre_stop_seconds: Integer(0, 300) | None = Field(None, alias="preStopSeconds")

    @field_validator("progress_deadline_seconds")
    @classmethod
    def _deadline_after_min_ready(cls, deadline: int | None, info: ValidationInfo) -> int | None:
        if deadline is None or "min_ready_seconds" not in info.data:
            return deadline
        min_ready = info.data["min_ready_seconds"]
        min_ready = DEFAULT_MIN_READY_SECONDS if min_ready is None else min_ready
        if deadline <= min_ready:
            raise rule(f"must be greater than minReadySeconds ({deadline} <= {min_ready}): the Kubernetes API rejects it")
        return deadline


def _check_unavailable(unavailable: int | str | None, info: ValidationInfo) -> int | str | None:
    if isinstance(unavailable, str) and (fenceposts.parse_percent(unavailable) or 0) > 100:
        raise rule(f"must not be more than 100% (got {unavailable!r})")
    if "max_surge" in info.data:  # (absent when maxSurge itself is wrong)
        surge = info.data["max_surge"]
        if fenceposts.is_zero(DEFAULT_SURGE if surge is None else surge) and fenceposts.is_zero(
                DEFAULT_UNAVAILABLE if unavailable is None else unavailable):
            raise rule("must not be 0 when maxSurge is 0: the Kubernetes API rejects it "
                       "(the update could never replace a pod)")
    return unavailable


class RecreateRelease(ReleaseBase):
    strategy: Literal["Recreate"]
    tag: ImageTag
    replicas: Integer(0) | None = None


class RollingRelease(ReleaseBase):
    strategy: Literal["RollingUpdate"]
    tag: ImageTag
    replicas: Integer(0) | None = None
    max_surge: IntOrPercent | None = Field(None, alias="maxSurge")
    max_unavailable: IntOrPercent | None = Field(None, alias="maxUnavailable")

    _unavailable = field_validator("max_unavailable")(_check_unavailable)


class GatewaySettings(Section):
    """`gateway`: the Gateway a `gateway` or `istio` canary's route binds to (north-south traffic)."""

    name: Text(DNS1123_LABEL, "must be a Gateway name (a DNS-1123 label)", 63)
    namespace: Text(DNS1123_LABEL, "must be a namespace name (a DNS-1123 label)", 63) | None = None
    section_name: Text(SECTION_NAME, "must be the name of one of the Gateway's listeners (lowercase letters, "
                                     "digits, '-' and '.')", 253) | None = Field(None, alias="sectionName")
    hosts: Annotated[list[Text(HOSTNAME, "must be a host name like app.example.com or *.example.com", 253)],
                     BeforeValidator(_non_empty_list("host names"))] | None = None


def _normal_dns_name(name: str) -> str:
    return name.rstrip(".")


class DnsSettings(Section):
    """`dns`: the Route53 hosted zone and the weighted record name of a `dns` canary."""

    zone: Text(DNS_NAME, "must be the DNS name of a Route53 hosted zone like example.com", 254)
    # After zone: its check reads it.
    name: Text(DNS_NAME, "must be a DNS name like app.example.com", 254)

    @field_validator("name")
    @classmethod
    def _in_zone(cls, name: str, info: ValidationInfo) -> str:
        zone = info.data.get("zone")
        if zone is None:
            return name
        zone, short = _normal_dns_name(zone), _normal_dns_name(name)
        if short != zone and not short.endswith(f".{zone}"):
            raise rule(f"must be in zone {zone} (a record of the hosted zone: {zone} or a name ending in .{zone}; "
                       f"got {name!r})")
        return name


class CanaryRelease(ReleaseBase):
    strategy: Literal["Canary"]
    max_surge: IntOrPercent | None = Field(None, alias="maxSurge")
    max_unavailable: IntOrPercent | None = Field(None, alias="maxUnavailable")
    traffic: Choice(TRAFFIC_MODES) | None = None
    ingress_class: Text(DNS1123_LABEL, "must be an IngressClass name (a DNS-1123 label)") | None = Field(
        None, alias="ingressClass")
    # After traffic: their checks read it.
    gateway: Annotated[GatewaySettings, BeforeValidator(_drop_nulls)] | None = None
    dns: Annotated[DnsSettings, BeforeValidator(_drop_nulls)] | None = Field(None, validate_default=True)
    stable: Annotated[Track, BeforeValidator(_drop_nulls)]
    canary: Annotated[CanaryTrack, BeforeValidator(_drop_nulls)]
    # Last: its check reads the tracks and the traffic mode.
    replicas: Integer(0) | None = Field(None, validate_default=True)

    _unavailable = field_validator("max_unavailable")(_check_unavailable)

    @field_validator("traffic")
    @classmethod
    def _controller_present(cls, traffic: str | None, info: ValidationInfo) -> str | None:
        context = info.context or {}
        if traffic in ("nlb", "alb") and not context.get("load_balancer_controller", False):
            raise rule(f"'{traffic}' needs the AWS Load Balancer Controller: set {PROJECT}:cluster.loadBalancerController "
                       "to true (on eks it is installed; on a kubeconfig cluster it declares the controller is already "
                       "there)")
        if traffic == "dns" and not context.get("await_load_balancer", True):
            raise rule(f"'dns' points Route53 aliases at the load balancers' hostnames, which {PROJECT}:awaitLoadBalancer: "
                       "false never waits for: set it to true (or remove it)")
        return traffic

    @field_validator("canary")
    @classmethod
    def _routes_the_router_can_express(cls, canary: CanaryTrack, info: ValidationInfo) -> CanaryTrack:
        if "traffic" not in info.data:
            return canary
        traffic = info.data["traffic"] or "replicas"
        if canary.match is not None and traffic not in MATCH_MODES:
            raise rule(f"is not possible with traffic '{traffic}': {NO_MATCH_REASONS[traffic]} (header and cookie "
                       f"routes: traffic {', '.join(MATCH_MODES)})", at=("canary", "match"))
        header = canary.match.header if canary.match else None
        if traffic == "alb" and header is not None and header.regex is not None:
            raise rule("is not possible with traffic 'alb': an ALB header condition compares values with the * and ? "
                       "wildcards, not regular expressions (use value)", at=("canary", "match", "header", "regex"))
        if canary.sticky and traffic not in STICKY_MODES:
            raise rule(f"is not possible with traffic '{traffic}': {NO_STICKY_REASONS[traffic]} (sticky sessions: "
                       f"traffic {', '.join(STICKY_MODES)})", at=("canary", "sticky"))
        return canary

    @field_validator("ingress_class")
    @classmethod
    def _ingress_class_used(cls, ingress_class: str | None, info: ValidationInfo) -> str | None:
        if ingress_class is not None and (info.data.get("traffic") or "replicas") not in INGRESS_MODES:
            raise rule("is only used with traffic: alb, nginx or skipper")
        return ingress_class

    @field_validator("gateway")
    @classmethod
    def _gateway_used(cls, gateway: GatewaySettings | None, info: ValidationInfo) -> GatewaySettings | None:
        if gateway is None or "traffic" not in info.data:  # (traffic absent: it is wrong itself)
            return gateway
        traffic = info.data["traffic"] or "replicas"
        if traffic not in GATEWAY_MODES:
            raise rule("is only used with traffic: gateway or istio")
        if traffic == "istio" and gateway.section_name is not None:
            raise rule("is only used with traffic: gateway: an Istio VirtualService binds to a whole Gateway",
                       at=("gateway", "sectionName"))
        if traffic == "istio" and gateway.hosts is None:
            raise rule("is required with traffic: istio and a gateway: the host names the Istio Gateway serves, "
                       "which become the VirtualService's hosts (the release's Service name is one already)",
                       at=("gateway", "hosts"))
        return gateway

    @field_validator("dns")
    @classmethod
    def _dns_used(cls, dns: DnsSettings | None, info: ValidationInfo) -> DnsSettings | None:
        if "traffic" not in info.data:
            return dns
        traffic = info.data["traffic"] or "replicas"
        if dns is not None and traffic != "dns":
            raise rule("is only used with traffic: dns")
        if dns is None and traffic == "dns":
            raise rule("is required with traffic: dns: the Route53 hosted zone and the record name "
                       "(dns: {zone: example.com, name: app.example.com})")
        return dns

    @field_validator("replicas")
    @classmethod
    def _one_form(cls, replicas: int | None, info: ValidationInfo) -> int | None:
        stable, canary = info.data.get("stable"), info.data.get("canary")
        if stable is None or canary is None:
            return replicas
        traffic = info.data.get("traffic") or "replicas"
        explicit = stable.replicas is not None or canary.replicas is not None
        weighted = canary.weight is not None or replicas is not None
        if explicit and weighted:
            raise rule("use either replicas + canary.weight or stable.replicas + canary.replicas, not both", at=())
        if explicit and traffic != "replicas":
            raise rule(f"traffic '{traffic}' splits by weight: set replicas (stable pods) and canary.weight, "
                       "not per-track replicas", at=())
        if explicit:
            if canary.pods_for_weight is not None:
                raise rule("goes with replicas + canary.weight, not with per-track replicas",
                           at=("canary", "podsForWeight"))
            for track in ("stable", "canary"):
                if info.data[track].replicas is None:
                    raise rule("is required", at=(track, "replicas"))
            return replicas
        if replicas is None:
            raise rule("is required")
        weight = canary.weight or 0
        weights = [weight] if canary.pods_for_weight is None else [weight, canary.pods_for_weight]
        if traffic == "replicas" and any(0 < w < 100 for w in weights) and replicas < 2:
            raise rule(f"must be at least 2 for a canary weight of {max(weights)}: "
                       "each track needs a pod while 0 < weight < 100")
        if traffic != "replicas" and weight < 100 and replicas < 1:
            raise rule(f"must be at least 1 with traffic '{traffic}': the stable track serves the rest")
        return replicas


class Color(Section):
    """A BlueGreen release's color (`blue`, `green`): the tag it runs and, when 0, that it is scaled down."""

    tag: ImageTag
    # None: the release's replicas (complete); 0: scaled down, its tag kept on record.
    replicas: Integer(0) | None = None


PREVIEW_CHECK_MAX_SECONDS = 24 * 3600  # a run judging longer than a day is a typo, not a plan


class PreviewCheck(Section):
    """`previewCheck`: what `rollout bluegreen` judges on the preview Service before it switches (the canary's judge:
    probes of `path` for at least `interval`). Required for BlueGreen on protected stacks (the policy pack)."""

    interval: Duration
    path: Text(HEALTH_PATH, "must be an absolute HTTP path like /healthz") | None = None

    @field_validator("interval")
    @classmethod
    def _some_time(cls, interval: str) -> str:
        if not any(int(n) for n in re.findall(r"[0-9]+", interval)):
            raise rule(f"must be longer than 0: the judge needs time to watch the preview (got {interval!r})")
        units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        if sum(int(n) * units[u] for n, u in re.findall(r"([0-9]+)([dhms])", interval)) > PREVIEW_CHECK_MAX_SECONDS:
            raise rule(f"must be at most 24h: a run holds both colors at full size while it judges (got {interval!r})")
        return interval


class BlueGreenRelease(ReleaseBase):
    """Two complete colors of one app: the active Service selects one, the preview Service the other.

    Traffic moves all at once, by switching `active` (the Services' selectors); each color is either complete
    (the release's replicas) or scaled down to 0, never in between."""

    strategy: Literal["BlueGreen"]
    preview_service: Text(DNS1035_LABEL, "must be a DNS-1035 label (a Service name)", 63) | None = Field(
        None, alias="previewServiceName")
    replicas: Integer(0) | None = None
    active: Choice(COLORS)
    preview_check: Annotated[PreviewCheck, BeforeValidator(_drop_nulls)] | None = Field(None, alias="previewCheck")
    # After replicas and active: their checks read them. Validated when absent too (the active one is required).
    blue: Annotated[Color, BeforeValidator(_drop_nulls)] | None = Field(None, validate_default=True)
    green: Annotated[Color, BeforeValidator(_drop_nulls)] | None = Field(None, validate_default=True)

    @field_validator("preview_service")
    @classmethod
    def _preview_differs(cls, name: str | None, info: ValidationInfo) -> str | None:
        if name is not None and name == info.data.get("service_name"):
            raise rule(f"must differ from serviceName ({name!r}): the preview Service selects the idle color, the "
                       "active one the active color")
        return name

    @field_validator("blue", "green")
    @classmethod
    def _complete_or_scaled_down(cls, color: Color | None, info: ValidationInfo) -> Color | None:
        name = info.field_name
        replicas = info.data.get("replicas")
        size = 1 if replicas is None else replicas
        if color is None:
            if info.data.get("active") == name:
                raise rule(f"is required: active is {name!r}, so {name} needs a tag ({name}: {{tag: v1}})")
            return None
        if "replicas" not in info.data or color.replicas is None:  # (replicas absent from data: it is wrong itself)
            return color
        if color.replicas not in (0, size):
            raise rule(f"must be 0 (scaled down) or omitted/{size} (the release's replicas; got {color.replicas}): a "
                       "color is either complete or scaled down, because blue-green switches all traffic at once to "
                       "a complete color", at=(name, "replicas"))
        if color.replicas == 0 and size > 0 and info.data.get("active") == name:
            raise rule(f"must not be 0 while {name} is active: the active Service would select no pod (scale the idle "
                       "color down, or switch active first)", at=(name, "replicas"))
        return color

    # The helpers `rollout bluegreen` and the components read.
    @property
    def idle(self) -> str:
        """The color the preview Service selects: the one that is not active."""
        return other_color(self.active)

    @property
    def colors(self) -> dict[str, Color | None]:
        return {"blue": self.blue, "green": self.green}

    @property
    def size(self) -> int:
        """Each color's size when it is up: the release's replicas (default 1)."""
        return 1 if self.replicas is None else self.replicas

    def color_replicas(self, color: str) -> int:
        """Pods of a color: 0 if absent or scaled down, else the release's replicas."""
        given = self.colors[color]
        if given is None:
            return 0
        return self.size if given.replicas is None else given.replicas

    @property
    def preview_service_name(self) -> str:
        """The preview Service's name, when serviceName is given (else the loader resolves it from the release's
        name, model/config.py)."""
        return self.preview_service or default_preview_service(self.service_name or "")

    def tags(self) -> dict[str, str]:
        return {name: color.tag for name, color in self.colors.items() if color is not None}

    def replica_counts(self) -> dict[str, int]:
        return {name: self.color_replicas(name) for name in COLORS}


def other_color(color: str) -> str:
    """blue -> green, green -> blue."""
    return COLORS[1 - COLORS.index(color)]


def default_preview_service(service_name: str) -> str:
    """`<serviceName>-preview`, the preview Service when previewServiceName is not given."""
    return f"{service_name}{PREVIEW_SUFFIX}"


Release = Annotated[RecreateRelease | RollingRelease | CanaryRelease | BlueGreenRelease,
                    Field(discriminator="strategy")]
RELEASE_MODELS = {"Recreate": RecreateRelease, "RollingUpdate": RollingRelease, "Canary": CanaryRelease,
                  "BlueGreen": BlueGreenRelease}

# Keys that belong to another strategy: what to say instead of "unknown key".
CANARY_KEYS = ("stable", "canary", "traffic", "ingressClass", "gateway", "dns")
BLUE_GREEN_KEYS = ("active", "blue", "green", "previewServiceName", "previewCheck")
_ROLLING_ONLY = ("is a RollingUpdate setting: a BlueGreen color never rolls while it serves; the new version starts "
                 "complete on the idle color")
MISPLACED = {
    "Recreate": {
        "maxSurge": "is a RollingUpdate setting: the Kubernetes API rejects rollingUpdate settings with strategy Recreate",
        "maxUnavailable": "is a RollingUpdate setting: the Kubernetes API rejects rollingUpdate settings with strategy "
                          "Recreate",
        **{key: "belongs to Canary releases only" for key in CANARY_KEYS},
        **{key: "belongs to BlueGreen releases only" for key in BLUE_GREEN_KEYS},
    },
    "RollingUpdate": {**{key: "belongs to Canary releases only" for key in CANARY_KEYS},
                      **{key: "belongs to BlueGreen releases only" for key in BLUE_GREEN_KEYS}},
    "Canary": {"tag": "a Canary release has no single tag: set stable.tag and canary.tag",
               **{key: "belongs to BlueGreen releases only" for key in BLUE_GREEN_KEYS}},
    "BlueGreen": {
        "tag": "a BlueGreen release has no single tag: set the colors' tags (blue.tag, green.tag) and active",
        "maxSurge": _ROLLING_ONLY, "maxUnavailable": _ROLLING_ONLY,
        **{key: "belongs to Canary releases only" for key in CANARY_KEYS},
    },
}


class NodeGroup(Section):
    instance_types: Annotated[list[Text(INSTANCE_TYPE, "must be an EC2 instance type like t3.medium")],
                              BeforeValidator(_non_empty_list("EC2 instance types"))] | None = Field(
        None, alias="instanceTypes")
    min: Integer(1) | None = None
    desired: Integer(1) | None = None
    max: Integer(1) | None = Field(None, validate_default=True)
    capacity_type: Choice(("ON_DEMAND", "SPOT")) | None = Field(None, alias="capacityType")

    @field_validator("max")
    @classmethod
    def _ordered(cls, high: int | None, info: ValidationInfo) -> int | None:
        if "min" not in info.data or "desired" not in info.data:
            return high
        low, desired, top = info.data["min"] or NODES_MIN, info.data["desired"] or NODES_DESIRED, high or NODES_MAX
        if not low <= desired <= top:
            raise rule(f"must satisfy min <= desired <= max (got {low}, {desired}, {top})", at=())
        return high


class KubeconfigCluster(Section):
    mode: Literal["kubeconfig"]
    context: Text() | None = None
    kubernetes_version: Choice(SUPPORTED_KUBERNETES_VERSIONS, VERSION_RULE) | None = Field(None, alias="kubernetesVersion")
    load_balancer_controller: Boolean | None = Field(None, alias="loadBalancerController")


# An IPv4 network of /16 to /20 written as the loader takes it (the host bits being 0 is checked by the loader only).
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
VPC_CIDR_PATTERN = f"^({_OCTET}\\.){{3}}{_OCTET}/(1[6-9]|20)$"


def _vpc_cidr(value: Any) -> str:
    text = value if isinstance(value, str) else None
    try:
        network = ipaddress.IPv4Network(text)
    except (ValueError, TypeError):
        raise rule(f"must be an IPv4 network in CIDR form like 10.0.0.0/16 (got {show(value)})") from None
    if not 16 <= network.prefixlen <= 20:
        raise rule(f"must be a /16 to /20 network so every subnet gets room (got {text!r})")
    return str(network)


class EksCluster(Section):
    mode: Literal["eks"]
    kubernetes_version: Choice(SUPPORTED_KUBERNETES_VERSIONS, VERSION_RULE) | None = Field(None, alias="kubernetesVersion")
    vpc_cidr: Annotated[str, BeforeValidator(_vpc_cidr), WithJsonSchema({"type": "string", "pattern": VPC_CIDR_PATTERN,
                                                                          "description": "a /16 to /20 IPv4 network"})] | None = Field(
        None, alias="vpcCidr")
    availability_zones: Integer(2, 3) | None = Field(None, alias="availabilityZones")
    nodes: Annotated[NodeGroup, BeforeValidator(_drop_nulls)] | None = None
    endpoint_public_access_cidrs: Annotated[list[Cidr], BeforeValidator(_non_empty_list("CIDRs"))] | None = Field(
        None, alias="endpointPublicAccessCidrs")
    nat_gateways: Choice(("single", "perAz")) | None = Field(None, alias="natGateways")
    load_balancer_controller: Boolean | None = Field(None, alias="loadBalancerController")
    tags: dict[str, Text()] | None = None
    # Zones by name instead of "the first N": pins the cluster where its capacity is.
    availability_zone_names: Annotated[list[Text(ZONE_NAME, "must be an availability zone name like us-west-2a")],
                                       BeforeValidator(_non_empty_list("availability zone names"))] | None = Field(
        None, alias="availabilityZoneNames", validate_default=True)
    log_retention_days: Annotated[Choice(tuple(str(d) for d in LOG_RETENTION_DAYS), LOG_RETENTION_RULE),
                                  BeforeValidator(_log_retention),
                                  WithJsonSchema({"enum": list(LOG_RETENTION_DAYS)})] | None = Field(
        None, alias="logRetentionDays")
    # The IAM roles or users that administer the cluster (EKS access entries).
    admins: Annotated[list[Text(PRINCIPAL_ARN, "must be the ARN of an IAM role or user, like "
                                               "arn:aws:iam::111122223333:role/platform-admin")],
                      BeforeValidator(_non_empty_list("IAM role or user ARNs"))] | None = None

    @field_validator("availability_zone_names")
    @classmethod
    def _zones_fit(cls, names: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if names is None:
            return names
        if not 2 <= len(names) <= 3 or len(set(names)) != len(names):
            raise rule(f"must name 2 or 3 different zones (got {len(names)})")
        count = info.data.get("availability_zones")
        if count is not None and count != len(names):
            raise rule(f"names {len(names)} zones but availabilityZones is {count}: give one of the two")
        return names


def _log_retention(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _cluster_mode_default(value: Any) -> Any:
    if isinstance(value, dict):
        value = _drop_nulls(value)
        return {"mode": "kubeconfig", **value} if "mode" not in value else value
    return value


Cluster = Annotated[KubeconfigCluster | EksCluster, Field(discriminator="mode"), BeforeValidator(_cluster_mode_default)]
CLUSTER_MODELS = {"kubeconfig": KubeconfigCluster, "eks": EksCluster}


def _not_reserved(value: Any) -> Any:
    if value in RESERVED_NAMESPACES:
        raise rule(f"{value!r} is a namespace every cluster has: the program creates its namespace (and `pulumi destroy` "
                   "deletes it), so name one of its own")
    return value


def _releases(value: Any) -> Any:
    if isinstance(value, dict) and not value:
        raise rule("must name at least one release")
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items()}
    return value


STACK_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class Promotion(Section):
    """Where a stack takes releases from, and how long they must have soaked there (`rollout promote`)."""

    from_: Annotated[list[Text(STACK_NAME, "must be a stack name")], BeforeValidator(_non_empty_list("stack names"))] = Field(
        alias="from")
    soak: Duration | None = None


def _recorded_text(value: Any) -> str:
    # `pulumi config set --path` stores a reason like "42" or "true" as a number or a boolean.
    return show(value) if isinstance(value, (bool, int, float)) and not isinstance(value, str) else _string(value)


RecordedText = Annotated[str, BeforeValidator(_recorded_text), WithJsonSchema({"type": ["string", "number", "boolean"]})]


class Verification(Section):
    """How a release got onto the stack, written by `rollout promote | verify | canary`, never by hand."""

    how: Choice(("promotion", "approved", "canary", "bluegreen", "verify"))
    image: Text()
    revision: Integer(1) | None = None
    from_: Text(STACK_NAME, "must be a stack name") | None = Field(None, alias="from")
    from_revision: Integer(1) | None = Field(None, alias="fromRevision")
    verdict: RecordedText | None = None
    evidence: RecordedText | None = None
    reason: RecordedText | None = None
    at: RecordedText | None = None
    by: RecordedText | None = None


class StackSettings(Section):
    """Everything under `app-update:` in a stack file (keys without the namespace)."""

    namespace: Annotated[Text(DNS1123_LABEL, "must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 "
                                             "characters)", 63), BeforeValidator(_not_reserved)] | None = None
    await_load_balancer: Boolean | None = Field(None, alias="awaitLoadBalancer")
    protected: Boolean | None = None
    cluster: Cluster | None = None
    releases: Annotated[dict[ReleaseName, Release], BeforeValidator(_releases)]
    promotion: Promotion | None = None
    verification: dict[ReleaseName, Verification] | None = None


# ---------------------------------------------------------------------------------------------
# Checking and messages
# ---------------------------------------------------------------------------------------------

_CLUSTER = TypeAdapter(Cluster)


def check(raw: Mapping[str, Any]) -> tuple[StackSettings | None, list[str]]:
    """Validate the `app-update:` settings: the models, or every problem as one line each."""
    nulls = [key for key in StackSettings.keys() if key in raw and raw[key] is None]
    problems = [f"{PROJECT}:{key}: is empty (null); give it a value or remove the key for the default" for key in nulls]
    data = {k: v for k, v in raw.items() if v is not None}
    context = {"load_balancer_controller": _controller(data.get("cluster")),
               "await_load_balancer": data.get("awaitLoadBalancer") not in (False, "false")}
    try:
        settings = StackSettings.model_validate(data, context=context)
    except ValidationError as error:
        found = [e for e in error.errors(include_url=False) if not (e["type"] == "missing" and e["loc"][0] in nulls)]
        return None, problems + [line for e in found for line in _lines(e, data)]
    return (settings, []) if not problems else (None, problems)


def _controller(cluster: Any) -> bool:
    """cluster.loadBalancerController as the release checks need it (False unless clearly set)."""
    try:
        return bool(_CLUSTER.validate_python(cluster).load_balancer_controller) if cluster is not None else False
    except ValidationError:
        return isinstance(cluster, dict) and cluster.get("loadBalancerController") in (True, "true")


def _lines(error: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    loc = list(error["loc"])
    kind = error["type"]
    context = error.get("ctx") or {}
    # Drop what pydantic adds to a location: the union member's tag and the "[key]" of a mapping key.
    if len(loc) >= 3 and loc[0] == "releases" and loc[2] in STRATEGIES:
        del loc[2]
    if len(loc) >= 2 and loc[0] == "cluster" and loc[1] in CLUSTER_MODES:
        del loc[1]
    if loc and loc[-1] == "[key]":
        loc.pop()
    if "at" in context:
        loc = loc[:-1] + list(context["at"])
    path = _path(loc)
    if kind == "app_update":
        return [f"{PROJECT}:{path}: {context['rule']}"]
    if kind == "missing":
        return [f"{PROJECT}:{path}: is required"]
    if kind == "extra_forbidden":
        return [f"{PROJECT}:{path}: {_unknown_key(loc, data)}"]
    if kind == "union_tag_not_found":
        if loc[:1] == ["releases"]:
            return [f"{PROJECT}:{path}.strategy: is required"]
        return [f"{PROJECT}:{path}.mode: is required"]
    if kind == "union_tag_invalid":
        field, choices = ("strategy", STRATEGIES) if loc[:1] == ["releases"] else ("mode", CLUSTER_MODES)
        tag = _lookup(data, loc + [field])
        if not isinstance(tag, str):
            return [f"{PROJECT}:{path}.{field}: must be a string (got {show(tag)})"]
        close = difflib.get_close_matches(tag, choices, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return [f"{PROJECT}:{path}.{field}: must be one of {', '.join(choices)} (got {tag!r}){hint}"]
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        value = _lookup(data, loc)
        if len(loc) == 2 and loc[0] == "releases":
            return [f"{PROJECT}:{path}: must be a mapping with at least 'strategy'"]
        return [f"{PROJECT}:{path}: must be a mapping (got {show(value)})"]
    if kind == "list_type":
        return [f"{PROJECT}:{path}: must be a list (got {show(_lookup(data, loc))})"]
    return [f"{PROJECT}:{path}: {error['msg']}"]


def _path(loc: Iterable[Any]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _lookup(data: Any, loc: list[Any]) -> Any:
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _model_at(loc: list[Any], data: Mapping[str, Any]) -> tuple[type[Section] | None, dict[str, str]]:
    """The model of the mapping at `loc` (the parent of an unknown key), and its misplaced-key notes."""
    if not loc:
        return StackSettings, {}
    if loc[0] in ("promotion", "verification"):
        return (Promotion if loc[0] == "promotion" else Verification if len(loc) == 2 else None), {}
    if loc[0] == "cluster":
        cluster = _lookup(data, ["cluster"]) or {}
        model = CLUSTER_MODELS.get(cluster.get("mode", "kubeconfig") if isinstance(cluster, dict) else "", None)
        return (model, {}) if len(loc) == 1 else (NodeGroup, {})
    if loc[0] == "releases" and len(loc) >= 2:
        strategy = (_lookup(data, loc[:2]) or {}).get("strategy")
        if len(loc) == 2:
            return RELEASE_MODELS.get(strategy), MISPLACED.get(strategy, {})
        nested = {"stable": Track, "canary": CanaryTrack, "resources": Resources, "gateway": GatewaySettings,
                  "dns": DnsSettings, "blue": Color, "green": Color, "previewCheck": PreviewCheck}
        if len(loc) == 3:
            return nested.get(loc[2]), {}
        if loc[2] == "resources":
            return ResourceList, {}
        if loc[2:] == ["canary", "match"]:
            return CanaryMatch, {}
        if loc[2:] == ["canary", "match", "header"]:
            return HeaderMatch, {}
    return None, {}


def _unknown_key(loc: list[Any], data: Mapping[str, Any]) -> str:
    model, misplaced = _model_at(loc[:-1], data)
    key = str(loc[-1])
    if key in misplaced:
        return misplaced[key]
    allowed = model.keys() if model else ()
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    return f"unknown key; did you mean '{close[0]}'?" if close else f"unknown key; valid keys: {', '.join(allowed)}"


# ---------------------------------------------------------------------------------------------
# JSON Schema of a stack file
# ---------------------------------------------------------------------------------------------


def stack_file_schema() -> dict[str, Any]:
    """A JSON Schema for `Pulumi.<stack>.yaml`: this project's keys with their types; other
    namespaces (aws:, kubernetes:, pulumi:) free; unknown `app-update:` keys refused.

    Written for the validators editors and CI run (check-jsonschema, the YAML language server), which ignore
    OpenAPI's `discriminator`: each choice of a model (a release by `strategy`, a cluster by `mode`) is an
    `if`/`then` on that key, so a validator checks the one branch the user chose and reports its errors only; the
    keys of a traffic mode are allowed with that mode only, the same way. Top-level keys may not be null (the
    loader refuses an empty `app-update:namespace:`)."""
    settings = _closed(StackSettings.model_json_schema(by_alias=True, ref_template="#/$defs/{model}"))
    settings["properties"]["releases"]["minProperties"] = 1
    definitions = settings.pop("$defs", {})
    _choices_as_if_then(settings)
    _choices_as_if_then(definitions)
    definitions["CanaryRelease"]["allOf"] = _traffic_rules()  # before _value_rules, which adds to it
    definitions["BlueGreenRelease"]["allOf"] = _color_rules()
    _value_rules(settings, definitions)
    properties: dict[str, Any] = {}
    for key, schema in settings["properties"].items():
        schema.pop("default", None)
        properties[f"{PROJECT}:{key}"] = _not_null(schema)
    _nullable_in_place(properties)
    _nullable_in_place(definitions)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://app-update.example/stack-file.schema.json",
        "title": f"Pulumi stack file of the {PROJECT} project",
        "description": "Generated from the config models by `make schema`; do not edit by hand.",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "required": [f"{PROJECT}:releases"],
                "patternProperties": {f"^(?!{PROJECT}:)[A-Za-z0-9_.-]+:.+$": {}},
                "additionalProperties": False,
                "allOf": _cross_key_rules(),
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
            "environment": {},
        },
        "required": ["config"],
        "additionalProperties": False,
        "$defs": definitions,
    }


def _choices_as_if_then(node: Any) -> None:
    """Replace pydantic's `oneOf` + `discriminator` (which JSON Schema validators ignore, reporting every branch's
    errors) by: the key's allowed values, then one `if key == value then branch` per value."""
    if isinstance(node, list):
        for value in node:
            _choices_as_if_then(value)
        return
    if not isinstance(node, dict):
        return
    if "discriminator" in node and "oneOf" in node:
        key = node["discriminator"]["propertyName"]
        mapping = node["discriminator"]["mapping"]
        default = "kubeconfig" if key == "mode" else None  # a cluster without `mode` is a kubeconfig one
        node.pop("oneOf")
        node.pop("discriminator")
        node.update({
            "type": "object",
            "properties": {key: {"enum": list(mapping)}},
            "allOf": [{"if": {"properties": {key: {"const": value}}} if value == default else
                       {"properties": {key: {"const": value}}, "required": [key]},
                       "then": {"$ref": ref}} for value, ref in mapping.items()],
        })
        if default is None:
            node["required"] = [key]
    for value in node.values():
        _choices_as_if_then(value)


def _when(traffic: tuple[str, ...], then: dict[str, Any], otherwise: dict[str, Any] | None = None) -> dict[str, Any]:
    rule_: dict[str, Any] = {"if": {"properties": {"traffic": {"enum": list(traffic)}}, "required": ["traffic"]},
                             "then": then}
    if otherwise is not None:
        rule_["else"] = otherwise
    return rule_


def _value_rules(settings: dict[str, Any], definitions: dict[str, Any]) -> None:
    """Rules of the loader on one value or a pair of keys that JSON Schema can say too."""
    settings["properties"]["namespace"]["not"] = {"enum": list(RESERVED_NAMESPACES)}
    zones = definitions["EksCluster"]["properties"]["availabilityZoneNames"]
    for choice in zones.get("anyOf", [zones]):
        if choice.get("type") == "array":
            choice.update({"minItems": 2, "maxItems": 3, "uniqueItems": True})
    zero = {"anyOf": [{"const": 0}, {"type": "string", "pattern": "^0+%$"}]}
    for name in ("RollingRelease", "CanaryRelease"):
        release = definitions[name]
        for choice in release["properties"]["maxUnavailable"]["anyOf"]:
            if choice.get("type") == "string":
                choice["pattern"] = "^0*(100|[1-9]?[0-9])%$"  # the API refuses more than 100%
        release.setdefault("allOf", []).append(
            {"if": {"properties": {"maxSurge": zero}, "required": ["maxSurge"]},
             "then": {"properties": {"maxUnavailable": {"not": zero, "description": "must not be 0 when maxSurge is 0"}}}})
    _non_empty_arrays(definitions)


def _non_empty_arrays(node: Any) -> None:
    """Every list of the stack file holds at least one item (the loader's _non_empty_list)."""
    if isinstance(node, dict):
        if node.get("type") == "array":
            node.setdefault("minItems", 1)
        for value in node.values():
            _non_empty_arrays(value)
    elif isinstance(node, list):
        for value in node:
            _non_empty_arrays(value)


def _traffic_rules() -> list[dict[str, Any]]:
    """A Canary release's keys that belong to some traffic modes only (the loader's rules in CanaryRelease)."""
    return [
        _when(GATEWAY_MODES, {}, _without("gateway")),
        _when(INGRESS_MODES, {}, _without("ingressClass")),
        _when(("dns",), {"required": ["dns"]}, _without("dns")),
        # In the mesh an istio canary needs no gateway; bound to one, it names its hosts and no listener.
        _when(("istio",), {"properties": {"gateway": {"required": ["hosts"], "properties": {"sectionName": False}}}}),
        # Header and cookie routes where the router reads requests; sticky sessions where it keeps them.
        _when(MATCH_MODES, {}, {"properties": {"canary": _without("match")}}),
        _when(("alb",), {"properties": {"canary": {"properties": {"match": {"properties": {
            "header": _without("regex")}}}}}}),
        _when(STICKY_MODES, {}, {"properties": {"canary": {"properties": {"sticky": {
            "not": {"enum": [True, "true"]}, "description": "sticky sessions: traffic " + ", ".join(STICKY_MODES)}}}}}),
    ]


def _color_rules() -> list[dict[str, Any]]:
    """A BlueGreen release's active color is configured (the loader also checks each color's replicas: 0 or the
    release's, which JSON Schema cannot compare)."""
    return [{"if": {"properties": {"active": {"const": color}}, "required": ["active"]},
             "then": {"required": [color], "description": f"active: {color} needs {color}.tag"}} for color in COLORS]


def _without(key: str) -> dict[str, Any]:
    """No `key` here; a validator says "'key' should not be valid under {'const': 'key'}", naming it."""
    return {"propertyNames": {"not": {"const": key}}}


def _cross_key_rules() -> list[dict[str, Any]]:
    """Rules between a release and the top-level keys: nlb/alb need the load balancer controller; dns needs the
    program to wait for the load balancers."""
    releases = f"{PROJECT}:releases"
    cluster, wait = f"{PROJECT}:cluster", f"{PROJECT}:awaitLoadBalancer"
    true, false = {"enum": [True, "true"]}, {"enum": [False, "false"]}

    def no_traffic(*modes: str) -> dict[str, Any]:
        return {"properties": {releases: {"additionalProperties": {"properties": {
            "traffic": {"not": {"enum": list(modes)}, "description": f"{' and '.join(modes)} need {cluster}."
                        "loadBalancerController: true" if "nlb" in modes else
                        f"dns needs {wait} true"}}}}}}

    return [
        {"if": {"not": {"required": [cluster], "properties": {cluster: {
            "required": ["loadBalancerController"], "properties": {"loadBalancerController": true}}}}},
         "then": no_traffic("nlb", "alb")},
        {"if": {"required": [wait], "properties": {wait: false}}, "then": no_traffic("dns")},
    ]


# The keywords that apply to one JSON type only: choices of different types, each with its own, merge into one schema.
_TYPE_KEYWORDS = {
    "integer": {"minimum", "maximum"}, "number": {"minimum", "maximum"}, "null": set(), "boolean": set(),
    "string": {"pattern", "maxLength", "minLength", "format"},
    "array": {"items", "minItems", "maxItems", "uniqueItems"},
}


def _nullable_in_place(node: Any) -> None:
    """`anyOf: [{type: integer, minimum: 0}, {type: string, pattern: P}, {type: null}]` as one schema,
    `{type: [integer, string, null], minimum: 0, pattern: P}` (the same values: each keyword applies to its own type
    only): a validator then reports the rule that failed ("-3 is less than the minimum of 0", "'5' does not match"),
    not "is not valid under any of the given schemas" or "is not of type 'null'"."""
    if isinstance(node, list):
        for value in node:
            _nullable_in_place(value)
        return
    if not isinstance(node, dict):
        return
    choices = node.get("anyOf")
    if isinstance(choices, list) and all(isinstance(c, dict) for c in choices):
        types = [c.get("type") for c in choices]
        mergeable = (all(isinstance(t, str) and t in _TYPE_KEYWORDS for t in types) and len(set(types)) == len(types)
                     and all(set(c) - {"type", "description", "title"} <= _TYPE_KEYWORDS[c["type"]] for c in choices)
                     and not ({"integer", "number"} <= set(types)))
        if mergeable:
            node.pop("anyOf")
            for choice in choices:
                node.update({k: v for k, v in choice.items() if k != "type"})
            node["type"] = types
        elif len(choices) == 2 and {"type": "null"} in choices:
            other = next(c for c in choices if c != {"type": "null"})
            if set(other) == {"enum"}:
                node.pop("anyOf")
                node["enum"] = [*other["enum"], None]
    for value in node.values():
        _nullable_in_place(value)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A top-level key's schema without its `null` choice: the loader refuses an empty top-level key."""
    if isinstance(schema.get("type"), list) and "null" in schema["type"]:
        schema["type"] = [t for t in schema["type"] if t != "null"]
    choices = [c for c in schema.get("anyOf", []) if c != {"type": "null"}]
    if "anyOf" in schema and len(choices) == 1:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**choices[0], **rest}
    if "anyOf" in schema:
        schema["anyOf"] = choices
    return schema


SCHEMA_FILE = "schema/pulumi-stack.schema.json"


def schema_text() -> str:
    """The stack-file schema as committed (`make schema` writes it; a test compares)."""
    return json.dumps(stack_file_schema(), indent=2) + "\n"


def _closed(node: Any) -> Any:
    """Mappings whose keys have a pattern (release names, env names) take no other keys. The pattern is said again
    in propertyNames: validators match `pattern` as ECMAScript does (no name with a trailing newline), while some
    match patternProperties' keys with Python's re.search, whose `$` lets one through."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
            if len(node["patternProperties"]) == 1:
                node.setdefault("propertyNames", {})["pattern"] = next(iter(node["patternProperties"]))
        for value in node.values():
            _closed(value)
    elif isinstance(node, list):
        for value in node:
            _closed(value)
    return node
