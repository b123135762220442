"""The API server's validation rules beyond the OpenAPI schema, for objects as this program renders them.

The strict OpenAPI schema (kubernetes-validate) is checked elsewhere. It says nothing of what the API
server's Go validation adds: name formats, a Deployment selector that must match its template's
labels, both of maxSurge and maxUnavailable at 0, request above limit, a preStop `sleep` that a
cluster before 1.30 does not take, and so on. Each function here follows one upstream function, named
in its docstring, from

- k8s.io/apimachinery/pkg/util/validation (validation.go): the Is* string rules;
- k8s.io/apimachinery/pkg/api/validation (objectmeta.go) and pkg/apis/meta/v1/validation: metadata,
  labels, annotations, label selectors;
- k8s.io/kubernetes/pkg/apis/core/validation (validation.go): pods, containers, Services, Namespaces;
- k8s.io/kubernetes/pkg/apis/apps/validation: Deployments;
- k8s.io/kubernetes/pkg/apis/networking/validation: Ingresses;
- k8s.io/kubernetes/pkg/apis/policy/validation: PodDisruptionBudgets.

The objects are the program's rendered inputs: camelCase dicts *before* the API server's defaulting.
Where upstream validates a defaulted field, the default is applied here first (and said so), so that
an omitted field is judged as the server would judge it. A few checks are ours, not upstream's; each
says so in its docstring.

Every function returns a list of `"<field path>: <message>"` strings, empty when valid; the message
follows the shape of field.Error ("Invalid value: ...", "Required value", "Unsupported value: ...").
Version-dependent rules take the Kubernetes minor version ("1.35", "v1.29.3" or 29).

Regular expressions use `re.fullmatch`: Go's `^...$` (without the m flag) accepts nothing after the
last character, while Python's `$` also matches before a trailing newline, so `re.match("^app$",
"app\\n")` would pass a name the API server refuses.

No Pulumi import: pure functions of dicts.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from model.quantity import parse_quantity  # the project's port of apimachinery's ParseQuantity

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

NONNEGATIVE = "must be greater than or equal to 0"  # apimachinery IsNegativeErrorMsg
POSITIVE = "must be greater than zero"  # core/validation isNotPositiveErrorMsg

# ---------------------------------------------------------------------------------------------
# field.Error shapes
# ---------------------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)  # quoted, with "\n" visible
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return repr(value)


def _invalid(path: str, value: Any, message: str) -> str:
    return f"{path}: Invalid value: {_show(value)}: {message}"


def _required(path: str, message: str = "") -> str:
    return f"{path}: Required value" + (f": {message}" if message else "")


def _forbidden(path: str, message: str) -> str:
    return f"{path}: Forbidden: {message}"


def _not_supported(path: str, value: Any, supported: list[str] | tuple[str, ...]) -> str:
    listed = ", ".join(json.dumps(s) for s in supported)
    return f"{path}: Unsupported value: {_show(value)}: supported values: {listed}"


def _duplicate(path: str, value: Any) -> str:
    return f"{path}: Duplicate value: {_show(value)}"


def _too_long(path: str, limit: int) -> str:
    return f"{path}: Too long: may not be more than {limit} bytes"


def _join(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


def _key(path: str, key: str) -> str:
    return f"{path}[{key}]"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bytes(value: str) -> int:
    """Go's len(string): bytes, not characters."""
    return len(value.encode("utf-8", "surrogatepass"))


def minor_of(version: str | int) -> int:
    """The minor of a Kubernetes version: "1.35", "v1.29.3" -> 29, or an int minor as given."""
    if _is_int(version):
        return int(version)
    match = re.fullmatch(r"v?1\.([0-9]+)(?:\.[0-9]+)?", str(version))
    if not match:
        raise ValueError(f"not a Kubernetes 1.x version: {version!r}")
    return int(match.group(1))


def _int_field(value: Any, path: str, *, minimum: int | None = None, maximum: int = INT32_MAX,
               minimum_message: str = NONNEGATIVE) -> list[str]:
    """An int32 (or int64) field: the JSON decoder refuses a non-integer or one past the type's range
    before validation runs; then ValidateNonnegativeField (or the caller's bound) applies."""
    if not _is_int(value):
        return [_invalid(path, value, "must be an integer")]
    if value > maximum or value < -maximum - 1:
        return [_invalid(path, value, f"must be no more than {maximum} (it does not fit the field's "
                                      f"{'int32' if maximum == INT32_MAX else 'int64'})")]
    if minimum is not None and value < minimum:
        return [_invalid(path, value, minimum_message)]
    return []


def _str_field(value: Any, path: str) -> list[str]:
    return [] if isinstance(value, str) else [_invalid(path, value, "must be a string")]


# ---------------------------------------------------------------------------------------------
# k8s.io/apimachinery/pkg/util/validation
# ---------------------------------------------------------------------------------------------

DNS1123_LABEL_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + r")*"
DNS1035_LABEL_FMT = r"[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
ENV_VAR_NAME_FMT = r"[-._a-zA-Z][-._a-zA-Z0-9]*"
PERCENT_FMT = r"[0-9]+%"
HTTP_HEADER_NAME_FMT = r"[-A-Za-z0-9]+"
WILDCARD_DNS1123_SUBDOMAIN_FMT = r"\*\." + DNS1123_SUBDOMAIN_FMT


def _max_len(limit: int) -> str:
    return f"must be no more than {limit} characters"


def _dns1123_label_messages(value: str) -> list[str]:
    messages = []
    if _bytes(value) > 63:
        messages.append(_max_len(63))
    if not re.fullmatch(DNS1123_LABEL_FMT, value):
        if re.fullmatch(DNS1123_SUBDOMAIN_FMT, value):
            messages.append("must not contain dots")
        else:
            messages.append("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
                            f"'-', and must start and end with an alphanumeric character (regex '{DNS1123_LABEL_FMT}')")
    return messages


def _dns1123_subdomain_messages(value: str) -> list[str]:
    messages = []
    if _bytes(value) > 253:
        messages.append(_max_len(253))
    if not re.fullmatch(DNS1123_SUBDOMAIN_FMT, value):
        messages.append("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                        f"'.', and must start and end with an alphanumeric character (regex '{DNS1123_SUBDOMAIN_FMT}')")
    return messages


def _dns1035_label_messages(value: str) -> list[str]:
    messages = []
    if _bytes(value) > 63:
        messages.append(_max_len(63))
    if not re.fullmatch(DNS1035_LABEL_FMT, value):
        messages.append("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                        f"alphabetic character, and end with an alphanumeric character (regex '{DNS1035_LABEL_FMT}')")
    return messages


def _each(path: str, value: Any, messages: Callable[[str], list[str]]) -> list[str]:
    if not isinstance(value, str):
        return [_invalid(path, value, "must be a string")]
    return [_invalid(path, value, m) for m in messages(value)]


def is_dns1123_label(value: Any, path: str = "value") -> list[str]:
    """IsDNS1123Label: at most 63 characters of `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (namespace names,
    container names, Service port names)."""
    return _each(path, value, _dns1123_label_messages)


def is_dns1123_subdomain(value: Any, path: str = "value") -> list[str]:
    """IsDNS1123Subdomain: at most 253 characters, DNS-1123 labels joined by dots (Deployment and
    Ingress names, an ingressClassName, hosts)."""
    return _each(path, value, _dns1123_subdomain_messages)


def is_dns1035_label(value: Any, path: str = "value") -> list[str]:
    """IsDNS1035Label: at most 63 characters of `[a-z]([-a-z0-9]*[a-z0-9])?`, so starting with a letter
    (Service names, ValidateServiceName = NameIsDNS1035Label)."""
    return _each(path, value, _dns1035_label_messages)


def _qualified_name_messages(value: str) -> list[str]:
    messages = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            messages.append("prefix part must be non-empty")
        else:
            messages.extend("prefix part " + m for m in _dns1123_subdomain_messages(prefix))
    else:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                f"with an alphanumeric character (regex '{QUALIFIED_NAME_FMT}') with an optional DNS subdomain prefix "
                "and '/' (e.g. 'example.com/MyName')"]
    if not name:
        messages.append("name part must be non-empty")
    elif _bytes(name) > 63:
        messages.append("name part " + _max_len(63))
    if not re.fullmatch(QUALIFIED_NAME_FMT, name):
        messages.append("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                        f"with an alphanumeric character (regex '{QUALIFIED_NAME_FMT}')")
    return messages


def is_qualified_name(value: Any, path: str = "value") -> list[str]:
    """IsQualifiedName (content.IsLabelKey): an optional DNS-1123 subdomain prefix and '/', then a name
    of at most 63 characters of `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (label and annotation keys)."""
    return _each(path, value, _qualified_name_messages)


def _label_value_messages(value: str) -> list[str]:
    messages = []
    if _bytes(value) > 63:
        messages.append(_max_len(63))
    if not re.fullmatch(LABEL_VALUE_FMT, value):
        messages.append("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
                        f"'.', and must start and end with an alphanumeric character (regex '{QUALIFIED_NAME_FMT}')")
    return messages


def is_valid_label_value(value: Any, path: str = "value") -> list[str]:
    """IsValidLabelValue (content.IsLabelValue): empty, or at most 63 characters of the qualified-name
    pattern."""
    return _each(path, value, _label_value_messages)


# Feature gate RelaxedEnvironmentVariableValidation (KEP-4369): alpha in 1.30-1.31 (off by default),
# beta in 1.32 (on by default), GA in 1.34 (kubernetes/website feature-gates/
# RelaxedEnvironmentVariableValidation.md; KEP milestones alpha v1.30, beta v1.32, stable v1.34).
RELAXED_ENV_VAR_NAMES_FROM = 32


def is_env_var_name(value: Any, version: str | int, path: str = "value") -> list[str]:
    """IsEnvVarName before 1.32, IsRelaxedEnvVarName from 1.32 (as ValidateEnv picks by
    opts.AllowRelaxedEnvironmentVariableValidation, on by default from the gate's beta in 1.32).

    Strict: `[-._a-zA-Z][-._a-zA-Z0-9]*` and not "." or "..", nor starting with ".." (hasChDirPrefix).
    Relaxed: non-empty, every character printable ASCII (space to '~') other than '='.
    """
    if not isinstance(value, str):
        return [_invalid(path, value, "must be a string")]
    if minor_of(version) >= RELAXED_ENV_VAR_NAMES_FROM:
        messages = [] if value else ["environment variable name must be non-empty"]
        if any(not (" " <= ch <= "~") or ch == "=" for ch in value):
            messages.append("a valid environment variable name must consist only of printable ASCII characters "
                            "other than '='")
        return [_invalid(path, value, m) for m in messages]
    messages = []
    if not re.fullmatch(ENV_VAR_NAME_FMT, value):
        messages.append("a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
                        f"or '.', and must not start with a digit (regex '{ENV_VAR_NAME_FMT}')")
    if value == ".":
        messages.append("must not be '.'")
    elif value == "..":
        messages.append("must not be '..'")
    elif value.startswith(".."):
        messages.append("must not start with '..'")
    return [_invalid(path, value, m) for m in messages]


def validate_port_number(value: Any, path: str = "value") -> list[str]:
    """IsValidPortNum: an integer from 1 to 65535."""
    if not _is_int(value) or not 1 <= value <= 65535:
        return [_invalid(path, value, "must be between 1 and 65535, inclusive")]
    return []


def is_valid_port_name(value: Any, path: str = "value") -> list[str]:
    """IsValidPortName (an IANA_SVC_NAME): at most 15 characters of `[-a-z0-9]`, at least one letter,
    no '--', not starting or ending with '-' (container port names, named targetPorts)."""
    if not isinstance(value, str):
        return [_invalid(path, value, "must be a string")]
    messages = []
    if _bytes(value) > 15:
        messages.append(_max_len(15))
    if not re.fullmatch(r"[-a-z0-9]+", value):
        messages.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        messages.append("must contain at least one letter (a-z)")
    if "--" in value:
        messages.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        messages.append("must not begin or end with a hyphen")
    return [_invalid(path, value, m) for m in messages]


def is_valid_percent(value: Any, path: str = "value") -> list[str]:
    """IsValidPercent: `[0-9]+%`."""
    if not isinstance(value, str) or not re.fullmatch(PERCENT_FMT, value):
        return [_invalid(path, value, "a valid percent string must be a numeric string followed by an ending '%' "
                                      f"(regex '{PERCENT_FMT}')")]
    return []


def is_http_header_name(value: Any, path: str = "value") -> list[str]:
    """IsHTTPHeaderName: `[-A-Za-z0-9]+`."""
    if not isinstance(value, str) or not re.fullmatch(HTTP_HEADER_NAME_FMT, value):
        return [_invalid(path, value, "a valid HTTP header must consist of alphanumeric characters or '-'")]
    return []


def is_valid_user_id(value: Any, path: str = "value") -> list[str]:
    """IsValidUserID / IsValidGroupID, held to 0..2147483647: the range every supported version takes
    (recent apimachinery widened the upper bound to the uint32 maximum)."""
    if not _is_int(value) or not 0 <= value <= INT32_MAX:
        return [_invalid(path, value, f"must be between 0 and {INT32_MAX}, inclusive")]
    return []


def validate_port_num_or_name(value: Any, path: str = "value") -> list[str]:
    """ValidatePortNumOrName (core/validation): an int port number or an IANA_SVC_NAME string."""
    if _is_int(value):
        return validate_port_number(value, path)
    if isinstance(value, str):
        return is_valid_port_name(value, path)
    return [_invalid(path, value, "must be a port number or a port name")]


# ---------------------------------------------------------------------------------------------
# metadata, labels, selectors: k8s.io/apimachinery/pkg/api/validation, pkg/apis/meta/v1/validation
# ---------------------------------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024  # TotalAnnotationSizeLimitB


def validate_labels(labels: Any, path: str = "metadata.labels") -> list[str]:
    """ValidateLabels (meta/v1/validation): every key a qualified name (ValidateLabelName), every
    value a label value."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [_invalid(path, labels, "must be a map of strings")]
    errors = []
    for key, value in labels.items():
        errors += is_qualified_name(key, _key(path, str(key)))
        errors += is_valid_label_value(value, _key(path, str(key)))
    return errors


def validate_annotations(annotations: Any, path: str = "metadata.annotations") -> list[str]:
    """ValidateAnnotations (api/validation/objectmeta.go): keys are qualified names once lowercased;
    keys and values together at most 256 KiB (ValidateAnnotationsSize)."""
    if annotations is None:
        return []
    if not isinstance(annotations, Mapping):
        return [_invalid(path, annotations, "must be a map of strings")]
    errors = []
    total = 0
    for key, value in annotations.items():
        if not isinstance(key, str) or not isinstance(value, str):
            errors.append(_invalid(_key(path, str(key)), value, "annotation keys and values must be strings"))
            continue
        errors += [_invalid(path, key, m) for m in _qualified_name_messages(key.lower())]
        total += _bytes(key) + _bytes(value)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errors.append(_too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errors


def validate_label_selector(selector: Any, path: str = "selector") -> list[str]:
    """ValidateLabelSelector + ValidateLabelSelectorRequirement (meta/v1/validation): matchLabels as
    labels; each expression a qualified-name key, operator In/NotIn (with values) or Exists/
    DoesNotExist (without), values label values."""
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [_invalid(path, selector, "must be a label selector")]
    errors = validate_labels(selector.get("matchLabels"), _join(path, "matchLabels"))
    for i, expression in enumerate(selector.get("matchExpressions") or []):
        here = f"{_join(path, 'matchExpressions')}[{i}]"
        if not isinstance(expression, Mapping):
            errors.append(_invalid(here, expression, "must be a label selector requirement"))
            continue
        operator, values = expression.get("operator"), expression.get("values") or []
        if operator in ("In", "NotIn"):
            if not values:
                errors.append(_required(_join(here, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                errors.append(_forbidden(_join(here, "values"),
                                         "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errors.append(_invalid(_join(here, "operator"), operator, "not a valid selector operator"))
        errors += is_qualified_name(expression.get("key"), _join(here, "key"))
        for j, value in enumerate(values):
            errors += is_valid_label_value(value, f"{_join(here, 'values')}[{j}]")
    return errors


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    """labels.Selector.Matches of metav1.LabelSelectorAsSelector(selector): every matchLabels pair and
    every expression holds."""
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _selector_is_empty(selector: Mapping[str, Any]) -> bool:
    return not selector.get("matchLabels") and not selector.get("matchExpressions")


def _mask_trailing_dash(name: str) -> str:
    # maskTrailingDash: a generateName prefix may end with '-', the generated suffix follows.
    return name[:-1] + "a" if len(name) > 1 and name.endswith("-") else name


# Name rules by kind, as the API server registers them: ValidateNamespaceName = NameIsDNSLabel
# (core), ValidateServiceName = NameIsDNS1035Label (core; RelaxedServiceNameValidation, alpha and off
# by default from 1.34, would allow DNS-1123 labels, so DNS-1035 is what every supported version
# takes), ValidateDeploymentName = NameIsDNSSubdomain (apps), ValidateIngressName = NameIsDNSSubdomain
# (networking). A PodDisruptionBudget's name gets no name function upstream (only the generic
# ValidatePathSegmentName of the registry); holding it to a DNS-1123 subdomain, like the Deployment it
# protects, is our rule.
NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "Namespace": _dns1123_label_messages,
    "Service": _dns1035_label_messages,
    "Deployment": _dns1123_subdomain_messages,
    "Ingress": _dns1123_subdomain_messages,
    "PodDisruptionBudget": _dns1123_subdomain_messages,
}
CLUSTER_SCOPED = {"Namespace"}


def validate_object_meta(obj: Mapping[str, Any], path: str = "") -> list[str]:
    """ValidateObjectMeta / ValidateObjectMetaAccessor (api/validation/objectmeta.go) with the kind's
    name function (NAME_RULES): name (or generateName) required and valid; a namespaced kind's
    namespace a DNS-1123 label, a cluster-scoped kind's namespace forbidden; labels and annotations.

    A namespace left out is the client's to fill in (the request URL's namespace), so only a given
    one is checked. Pulumi auto-naming could fill a missing name; every object of this program names
    itself, so a missing name is reported.
    """
    here = _join(path, "metadata")
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return [_required(here)]
    kind = obj.get("kind")
    name_rule = NAME_RULES.get(kind, _dns1123_subdomain_messages)
    errors = []
    generate_name = meta.get("generateName")
    if generate_name:
        errors += _each(_join(here, "generateName"), generate_name, lambda n: name_rule(_mask_trailing_dash(n)))
    name = meta.get("name")
    if not name:
        errors.append(_required(_join(here, "name"), "name or generateName is required"))
    else:
        errors += _each(_join(here, "name"), name, name_rule)
    namespace = meta.get("namespace")
    if kind in CLUSTER_SCOPED:
        if namespace:
            errors.append(_forbidden(_join(here, "namespace"), "not allowed on this type"))
    elif namespace is not None and namespace != "":
        errors += is_dns1123_label(namespace, _join(here, "namespace"))
    generation = meta.get("generation")
    if generation is not None:
        errors += _int_field(generation, _join(here, "generation"), minimum=0, maximum=INT64_MAX)
    errors += validate_labels(meta.get("labels"), _join(here, "labels"))
    errors += validate_annotations(meta.get("annotations"), _join(here, "annotations"))
    return errors


# ---------------------------------------------------------------------------------------------
# pods: k8s.io/kubernetes/pkg/apis/core/validation
# ---------------------------------------------------------------------------------------------

DEFAULT_TERMINATION_GRACE_PERIOD = 30  # SetDefaults_PodSpec
# Feature gate PodLifecycleSleepAction (KEP-3960): alpha in 1.29 (off by default), beta in 1.30 (on by
# default), GA in 1.34 (kubernetes/website feature-gates/PodLifecycleSleepAction.md). Before 1.29 the
# field does not exist. With the gate off, dropPodLifecycleSleepAction (pkg/api/pod/util.go) clears
# `sleep` before validation; a 1.29.0 API server then refuses a preStop left with no handler
# ("lifecycle.preStop: Required value: must specify a handler type", kubernetes/kubernetes#122488),
# later code drops the emptied hook instead. Either way the pause is not there: an error here.
SLEEP_ACTION_FROM = 30
# Feature gate PodLifecycleSleepActionAllowZero (KEP-4818): alpha in 1.32 (off by default), beta in
# 1.33 (on by default), GA in 1.34 (kubernetes/website feature-gates/PodLifecycleSleepActionAllowZero.md).
# validateSleepAction takes 0 only with opts.AllowPodLifecycleSleepActionZeroValue.
SLEEP_ZERO_FROM = 33

SUPPORTED_PORT_PROTOCOLS = ("SCTP", "TCP", "UDP")


def validate_container_ports(ports: Any, path: str) -> list[str]:
    """validateContainerPorts: names IANA_SVC_NAMEs and unique, containerPort required and a port
    number, hostPort a port number when set, protocol TCP/UDP/SCTP (defaulted to TCP)."""
    if ports is None:
        return []
    if not isinstance(ports, list):
        return [_invalid(path, ports, "must be a list")]
    errors, names = [], set()
    for i, port in enumerate(ports):
        here = f"{path}[{i}]"
        if not isinstance(port, Mapping):
            errors.append(_invalid(here, port, "must be a container port"))
            continue
        name = port.get("name")
        if name:
            messages = is_valid_port_name(name, _join(here, "name"))
            if messages:
                errors += messages
            elif name in names:
                errors.append(_duplicate(_join(here, "name"), name))
            else:
                names.add(name)
        container_port = port.get("containerPort")
        if container_port is None or container_port == 0:
            errors.append(_required(_join(here, "containerPort")))
        else:
            errors += validate_port_number(container_port, _join(here, "containerPort"))
        if port.get("hostPort"):
            errors += validate_port_number(port["hostPort"], _join(here, "hostPort"))
        protocol = port.get("protocol", "TCP")
        if protocol not in SUPPORTED_PORT_PROTOCOLS:
            errors.append(_not_supported(_join(here, "protocol"), protocol, SUPPORTED_PORT_PROTOCOLS))
    return errors


def validate_env(env: Any, version: str | int, path: str) -> list[str]:
    """ValidateEnv: each name required and valid for the version (is_env_var_name); valueFrom, when
    given, one source only and not with a `value`."""
    if env is None:
        return []
    if not isinstance(env, list):
        return [_invalid(path, env, "must be a list")]
    errors = []
    for i, var in enumerate(env):
        here = f"{path}[{i}]"
        if not isinstance(var, Mapping):
            errors.append(_invalid(here, var, "must be an environment variable"))
            continue
        name = var.get("name")
        if not name:
            errors.append(_required(_join(here, "name")))
        else:
            errors += is_env_var_name(name, version, _join(here, "name"))
        value_from = var.get("valueFrom")
        if value_from is not None:
            sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef")
                       if (value_from or {}).get(k) is not None]
            if not sources:
                errors.append(_invalid(_join(here, "valueFrom"), "", "must specify one of: `fieldRef`, "
                                       "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
            elif var.get("value"):
                errors.append(_invalid(_join(here, "valueFrom"), "", "may not be specified when `value` is not empty"))
            elif len(sources) > 1:
                errors.append(_invalid(_join(here, "valueFrom"), "",
                                       "may not have more than one field specified at a time"))
    return errors


def _is_huge_pages(name: str) -> bool:
    return name.startswith("hugepages-")


def _is_native_resource(name: str) -> bool:
    # IsNativeResource: no domain, or a kubernetes.io/ one.
    return "/" not in name or "kubernetes.io/" in name


def _is_extended_resource(name: str) -> bool:
    # IsExtendedResourceName: not native, not "requests.*", and "requests."+name a qualified name.
    return (not _is_native_resource(name) and not name.startswith("requests.")
            and not _qualified_name_messages("requests." + name))


def _overcommit_allowed(name: str) -> bool:
    # IsOvercommitAllowed: native and not huge pages.
    return _is_native_resource(name) and not _is_huge_pages(name)


def _resource_name_errors(name: Any, path: str) -> list[str]:
    """validateContainerResourceName: a qualified name; without a domain one of cpu, memory,
    ephemeral-storage, hugepages-*; with a non-native domain an extended resource name."""
    if not isinstance(name, str):
        return [_invalid(path, name, "must be a string")]
    messages = _qualified_name_messages(name)
    if messages:
        return [_invalid(path, name, m) for m in messages]
    if "/" not in name:
        if name not in ("cpu", "memory", "ephemeral-storage") and not _is_huge_pages(name):
            return [_invalid(path, name, "must be a standard resource for containers")]
    elif not _is_native_resource(name) and not _is_extended_resource(name):
        return [_invalid(path, name, "doesn't follow extended resource name standard")]
    return []


def _quantity(value: Any) -> Decimal | None:
    if _is_int(value) or isinstance(value, float):
        return parse_quantity(str(value))
    return parse_quantity(value) if isinstance(value, str) else None


def validate_resource_requirements(resources: Any, path: str) -> list[str]:
    """ValidateContainerResourceRequirements (validateResourceRequirements): resource names valid,
    quantities parse and are not negative (ValidateResourceQuantityValue; extended resources whole
    numbers), every request at most its limit (and equal to it for resources that cannot be
    overcommitted, which also need a limit), huge pages only with cpu or memory."""
    if resources is None:
        return []
    if not isinstance(resources, Mapping):
        return [_invalid(path, resources, "must be resource requirements")]
    errors = []
    parsed: dict[str, dict[str, Decimal]] = {"limits": {}, "requests": {}}
    for part in ("limits", "requests"):
        given = resources.get(part) or {}
        if not isinstance(given, Mapping):
            errors.append(_invalid(_join(path, part), given, "must be a map of quantities"))
            continue
        for name, value in given.items():
            here = _key(_join(path, part), str(name))
            errors += _resource_name_errors(name, here)
            quantity = _quantity(value)
            if quantity is None:
                errors.append(_invalid(here, value, "quantities must match the regular expression "
                                                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
                continue
            if quantity < 0:
                errors.append(_invalid(here, value, NONNEGATIVE))
            if isinstance(name, str) and _is_extended_resource(name) and quantity != quantity.to_integral_value():
                errors.append(_invalid(here, value, "must be an integer"))
            parsed[part][str(name)] = quantity
    limits, requests = parsed["limits"], parsed["requests"]
    for name, request in requests.items():
        shown = resources["requests"][name]
        if name in limits:
            if request != limits[name] and not _overcommit_allowed(name):
                errors.append(_invalid(_join(path, "requests"), shown,
                                       f"must be equal to {name} limit of {resources['limits'][name]}"))
            elif request > limits[name]:
                errors.append(_invalid(_join(path, "requests"), shown,
                                       f"must be less than or equal to {name} limit of {resources['limits'][name]}"))
        elif not _overcommit_allowed(name):
            errors.append(_required(_join(path, "limits"), "Limit must be set for non overcommitable resources"))
    names = set(limits) | set(requests)
    if any(_is_huge_pages(n) for n in names) and not names & {"cpu", "memory"}:
        errors.append(_forbidden(path, "HugePages require cpu or memory"))
    return errors


def _handler_errors(handler: Mapping[str, Any], path: str) -> dict[str, list[str]]:
    """The per-action checks of validateHandler, by action."""
    checks: dict[str, list[str]] = {}
    if handler.get("exec") is not None:
        command = (handler["exec"] or {}).get("command")
        checks["exec"] = [] if command else [_required(_join(path, "exec.command"))]
    if handler.get("httpGet") is not None:
        checks["httpGet"] = validate_http_get_action(handler["httpGet"], _join(path, "httpGet"))
    if handler.get("tcpSocket") is not None:
        checks["tcpSocket"] = validate_port_num_or_name((handler["tcpSocket"] or {}).get("port", 0),
                                                        _join(path, "tcpSocket.port"))
    if handler.get("grpc") is not None:
        checks["grpc"] = validate_port_number((handler["grpc"] or {}).get("port", 0), _join(path, "grpc.port"))
    if handler.get("sleep") is not None:
        checks["sleep"] = []
    return checks


def validate_http_get_action(action: Any, path: str) -> list[str]:
    """validateHTTPGetAction: path (defaulted to "/"), port a number or name, scheme HTTP or HTTPS
    (defaulted to HTTP), header names HTTP header names."""
    if not isinstance(action, Mapping):
        return [_invalid(path, action, "must be an HTTP GET action")]
    errors = validate_port_num_or_name(action.get("port", 0), _join(path, "port"))
    scheme = action.get("scheme") or "HTTP"
    if scheme not in ("HTTP", "HTTPS"):
        errors.append(_not_supported(_join(path, "scheme"), scheme, ("HTTP", "HTTPS")))
    for i, header in enumerate(action.get("httpHeaders") or []):
        errors += is_http_header_name((header or {}).get("name"), f"{_join(path, 'httpHeaders')}[{i}].name")
    return errors


def validate_sleep_action(sleep: Any, grace_period: int | None, version: str | int, path: str) -> list[str]:
    """validateSleepAction: seconds at most terminationGracePeriodSeconds, and greater than 0 (from
    1.33, with PodLifecycleSleepActionAllowZero on by default, 0 or more)."""
    seconds = (sleep or {}).get("seconds") if isinstance(sleep, Mapping) else sleep
    errors = _int_field(seconds, _join(path, "seconds"), maximum=INT64_MAX)
    if errors or grace_period is None:
        return errors
    if minor_of(version) >= SLEEP_ZERO_FROM:
        if seconds < 0 or seconds > grace_period:
            return [_invalid(path, seconds, "must be non-negative and less than terminationGracePeriodSeconds "
                                            f"({grace_period})")]
    elif seconds <= 0 or seconds > grace_period:
        return [_invalid(path, seconds, f"must be greater than 0 and less than terminationGracePeriodSeconds "
                                        f"({grace_period}) (a zero sleep needs 1.33: PodLifecycleSleepActionAllowZero)")]
    return []


def validate_handler(handler: Any, path: str, version: str | int, grace_period: int | None,
                     lifecycle: bool = True) -> list[str]:
    """validateHandler: exactly one action (exec, httpGet, tcpSocket, grpc for probes; sleep for
    lifecycle hooks), each valid. For a lifecycle hook before 1.30 the `sleep` action is dropped
    first (PodLifecycleSleepAction off), so a hook with only `sleep` has no handler."""
    if not isinstance(handler, Mapping):
        return [_invalid(path, handler, "must be a handler")]
    checks = _handler_errors(handler, path)
    if not lifecycle:
        checks.pop("sleep", None)
    elif "grpc" in checks:
        checks.pop("grpc")  # not a field of LifecycleHandler: the decoder drops it
    errors = []
    dropped_sleep = lifecycle and "sleep" in checks and minor_of(version) < SLEEP_ACTION_FROM
    if dropped_sleep:
        checks.pop("sleep")
    elif "sleep" in checks:
        checks["sleep"] = validate_sleep_action(handler["sleep"], grace_period, version, _join(path, "sleep"))
    for n, (action, action_errors) in enumerate(checks.items()):
        if n:
            errors.append(_forbidden(_join(path, action), "may not specify more than 1 handler type"))
        else:
            errors += action_errors
    if not checks:
        reason = (" (the sleep action needs Kubernetes 1.30: PodLifecycleSleepAction is off before, and the "
                  "API server drops it)") if dropped_sleep else ""
        errors.append(_required(path, "must specify a handler type" + reason))
    return errors


def validate_lifecycle(lifecycle: Any, path: str, version: str | int, grace_period: int | None) -> list[str]:
    """validateLifecycle: postStart and preStop handlers."""
    if not isinstance(lifecycle, Mapping):
        return [_invalid(path, lifecycle, "must be a lifecycle")]
    errors = []
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            errors += validate_handler(lifecycle[hook], _join(path, hook), version, grace_period)
    return errors


PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def validate_probe(probe: Any, path: str, version: str | int, grace_period: int | None,
                   kind: str = "readiness") -> list[str]:
    """validateProbe with validateLivenessProbe / validateReadinessProbe / validateStartupProbe.

    One handler; initialDelaySeconds, timeoutSeconds, periodSeconds, successThreshold and
    failureThreshold not negative (ValidateNonnegativeField) after SetDefaults_Probe turns a 0 into
    1, 10, 1 and 3, so an explicit 0 means the default and is accepted, and a positive value is what
    the server keeps; a probe's terminationGracePeriodSeconds greater than 0 and not on a readiness
    probe; successThreshold 1 for liveness and startup probes.
    """
    if probe is None:
        return []
    if not isinstance(probe, Mapping):
        return [_invalid(path, probe, "must be a probe")]
    errors = validate_handler(probe, path, version, grace_period, lifecycle=False)
    for name in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        if probe.get(name) is not None:
            errors += _int_field(probe[name], _join(path, name), minimum=0)
    grace = probe.get("terminationGracePeriodSeconds")
    if grace is not None:
        if kind == "readiness":
            errors.append(_invalid(_join(path, "terminationGracePeriodSeconds"), grace,
                                   "must not be set for readinessProbes"))
        elif not _is_int(grace) or grace <= 0:
            errors.append(_invalid(_join(path, "terminationGracePeriodSeconds"), grace, "must be greater than 0"))
    if kind in ("liveness", "startup"):
        success = probe.get("successThreshold") or PROBE_DEFAULTS["successThreshold"]
        if success != 1:
            errors.append(_invalid(_join(path, "successThreshold"), success, "must be 1"))
    return errors


SECCOMP_TYPES = ("Localhost", "RuntimeDefault", "Unconfined")


def _validate_seccomp_profile(profile: Any, path: str) -> list[str]:
    # validateSeccompProfileField
    if profile is None:
        return []
    if not isinstance(profile, Mapping):
        return [_invalid(path, profile, "must be a seccomp profile")]
    errors = []
    kind = profile.get("type")
    if not kind:
        errors.append(_required(_join(path, "type"), "type is required when seccompProfile is set"))
    elif kind not in SECCOMP_TYPES:
        errors.append(_not_supported(_join(path, "type"), kind, SECCOMP_TYPES))
    if kind == "Localhost" and not profile.get("localhostProfile"):
        errors.append(_required(_join(path, "localhostProfile"), "must be set when seccomp type is Localhost"))
    elif kind != "Localhost" and profile.get("localhostProfile") is not None:
        errors.append(_invalid(_join(path, "localhostProfile"), profile["localhostProfile"],
                               "can only be set when seccomp type is Localhost"))
    return errors


def validate_security_context(context: Any, path: str) -> list[str]:
    """ValidateSecurityContext (a container's): runAsUser and runAsGroup valid IDs, a valid seccomp
    profile, and not `allowPrivilegeEscalation: false` with `privileged: true` or CAP_SYS_ADMIN."""
    if context is None:
        return []
    if not isinstance(context, Mapping):
        return [_invalid(path, context, "must be a security context")]
    errors = []
    if context.get("runAsUser") is not None:
        errors += is_valid_user_id(context["runAsUser"], _join(path, "runAsUser"))
    if context.get("runAsGroup") is not None:
        errors += is_valid_user_id(context["runAsGroup"], _join(path, "runAsGroup"))
    errors += _validate_seccomp_profile(context.get("seccompProfile"), _join(path, "seccompProfile"))
    if context.get("allowPrivilegeEscalation") is False:
        if context.get("privileged") is True:
            errors.append(_invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
        if "CAP_SYS_ADMIN" in ((context.get("capabilities") or {}).get("add") or []):
            errors.append(_invalid(path, "", "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` "
                                             "CAP_SYS_ADMIN"))
    return errors


def validate_pod_security_context(context: Any, path: str) -> list[str]:
    """validatePodSpecSecurityContext: fsGroup, runAsUser, runAsGroup and supplementalGroups valid IDs,
    a valid seccomp profile."""
    if context is None:
        return []
    if not isinstance(context, Mapping):
        return [_invalid(path, context, "must be a pod security context")]
    errors = []
    for name in ("fsGroup", "runAsUser", "runAsGroup"):
        if context.get(name) is not None:
            errors += is_valid_user_id(context[name], _join(path, name))
    for i, gid in enumerate(context.get("supplementalGroups") or []):
        errors += is_valid_user_id(gid, f"{_join(path, 'supplementalGroups')}[{i}]")
    errors += _validate_seccomp_profile(context.get("seccompProfile"), _join(path, "seccompProfile"))
    return errors


WHEN_UNSATISFIABLE = ("DoNotSchedule", "ScheduleAnyway")


def validate_topology_spread_constraints(constraints: Any, path: str) -> list[str]:
    """validateTopologySpreadConstraints: maxSkew > 0 (ValidateMaxSkew), topologyKey required
    (ValidateTopologyKey), whenUnsatisfiable DoNotSchedule or ScheduleAnyway, no two constraints with
    the same {topologyKey, whenUnsatisfiable} (ValidateSpreadConstraintNotRepeat), minDomains > 0 and
    only with DoNotSchedule, a valid labelSelector.

    Ours on top: the topologyKey a qualified name. Upstream only requires it non-empty, but a key that
    is not a qualified name can be no node label, so the constraint could never be met.
    """
    if constraints is None:
        return []
    if not isinstance(constraints, list):
        return [_invalid(path, constraints, "must be a list")]
    errors = []
    for i, constraint in enumerate(constraints):
        here = f"{path}[{i}]"
        if not isinstance(constraint, Mapping):
            errors.append(_invalid(here, constraint, "must be a topology spread constraint"))
            continue
        skew = constraint.get("maxSkew")
        if not _is_int(skew) or skew <= 0:
            errors.append(_invalid(_join(here, "maxSkew"), skew, POSITIVE))
        key = constraint.get("topologyKey")
        if not key:
            errors.append(_required(_join(here, "topologyKey"), "can not be empty"))
        else:
            errors += is_qualified_name(key, _join(here, "topologyKey"))
        action = constraint.get("whenUnsatisfiable")
        if action not in WHEN_UNSATISFIABLE:
            errors.append(_not_supported(_join(here, "whenUnsatisfiable"), action, WHEN_UNSATISFIABLE))
        for later in constraints[i + 1:]:
            if isinstance(later, Mapping) and (later.get("topologyKey"), later.get("whenUnsatisfiable")) == (key, action):
                errors.append(_duplicate(_join(here, "{topologyKey, whenUnsatisfiable}"), f"{{{key}, {action}}}"))
                break
        min_domains = constraint.get("minDomains")
        if min_domains is not None:
            if not _is_int(min_domains) or min_domains <= 0:
                errors.append(_invalid(_join(here, "minDomains"), min_domains, POSITIVE))
            if action != "DoNotSchedule":
                errors.append(_invalid(_join(here, "minDomains"), min_domains,
                                       f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"))
        errors += validate_label_selector(constraint.get("labelSelector"), _join(here, "labelSelector"))
    return errors


PULL_POLICIES = ("Always", "IfNotPresent", "Never")
TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")


def _validate_container_common(container: Mapping[str, Any], path: str, version: str | int) -> list[str]:
    # validateContainerCommon
    errors = []
    name = container.get("name")
    if not name:
        errors.append(_required(_join(path, "name")))
    else:
        errors += is_dns1123_label(name, _join(path, "name"))
    if not container.get("image"):
        errors.append(_required(_join(path, "image")))
    policy = container.get("terminationMessagePolicy")
    if policy is not None and policy not in TERMINATION_MESSAGE_POLICIES:
        errors.append(_not_supported(_join(path, "terminationMessagePolicy"), policy, TERMINATION_MESSAGE_POLICIES))
    errors += validate_container_ports(container.get("ports"), _join(path, "ports"))
    errors += validate_env(container.get("env"), version, _join(path, "env"))
    for i, source in enumerate(container.get("envFrom") or []):
        prefix = (source or {}).get("prefix")
        if prefix:
            errors += is_env_var_name(prefix, version, f"{_join(path, 'envFrom')}[{i}].prefix")
    pull = container.get("imagePullPolicy")
    if pull is not None and pull not in PULL_POLICIES:
        errors.append(_not_supported(_join(path, "imagePullPolicy"), pull, PULL_POLICIES))
    errors += validate_resource_requirements(container.get("resources"), _join(path, "resources"))
    errors += validate_security_context(container.get("securityContext"), _join(path, "securityContext"))
    return errors


def validate_containers(containers: Any, path: str, version: str | int, grace_period: int | None) -> list[str]:
    """validateContainers: at least one; each with validateContainerCommon (name a DNS-1123 label,
    image, ports, env, resources, security context); names unique; lifecycle and probes valid;
    no restartPolicy on a regular container."""
    if not containers:
        return [_required(path)]
    if not isinstance(containers, list):
        return [_invalid(path, containers, "must be a list")]
    errors, names = [], set()
    for i, container in enumerate(containers):
        here = f"{path}[{i}]"
        if not isinstance(container, Mapping):
            errors.append(_invalid(here, container, "must be a container"))
            continue
        errors += _validate_container_common(container, here, version)
        name = container.get("name")
        if name in names:
            errors.append(_duplicate(_join(here, "name"), name))
        names.add(name)
        if container.get("lifecycle") is not None:
            errors += validate_lifecycle(container["lifecycle"], _join(here, "lifecycle"), version, grace_period)
        errors += validate_probe(container.get("livenessProbe"), _join(here, "livenessProbe"), version,
                                 grace_period, "liveness")
        errors += validate_probe(container.get("readinessProbe"), _join(here, "readinessProbe"), version,
                                 grace_period, "readiness")
        errors += validate_probe(container.get("startupProbe"), _join(here, "startupProbe"), version,
                                 grace_period, "startup")
        if container.get("restartPolicy") is not None:
            errors.append(_forbidden(_join(here, "restartPolicy"), "may not be set for non-init containers"))
    return errors


RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")


def validate_pod_spec(spec: Any, version: str | int, path: str = "spec") -> list[str]:
    """ValidatePodSpec: terminationGracePeriodSeconds (defaulted to 30), containers (validateContainers)
    and init containers (names unique across both), restartPolicy, dnsPolicy, nodeSelector labels,
    the pod security context, topologySpreadConstraints, serviceAccountName, activeDeadlineSeconds,
    hostname, subdomain and priorityClassName.

    Ours on top: terminationGracePeriodSeconds not negative. Upstream only requires the field (and
    the default fills it); a negative grace period is no grace period at all.
    """
    if not isinstance(spec, Mapping):
        return [_required(path)]
    errors = []
    grace: int | None = spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
    grace_errors = _int_field(grace, _join(path, "terminationGracePeriodSeconds"), minimum=0, maximum=INT64_MAX)
    if grace_errors:
        errors += grace_errors
        grace = None  # as upstream, no second error from a sleep against a broken grace period
    errors += validate_containers(spec.get("containers"), _join(path, "containers"), version, grace)
    names = {c.get("name") for c in spec.get("containers") or [] if isinstance(c, Mapping)}
    for i, container in enumerate(spec.get("initContainers") or []):
        here = f"{_join(path, 'initContainers')}[{i}]"
        if not isinstance(container, Mapping):
            errors.append(_invalid(here, container, "must be a container"))
            continue
        errors += _validate_container_common(container, here, version)
        if container.get("name") in names:
            errors.append(_duplicate(_join(here, "name"), container.get("name")))
        names.add(container.get("name"))
    restart = spec.get("restartPolicy", "Always")
    if restart not in RESTART_POLICIES:
        errors.append(_not_supported(_join(path, "restartPolicy"), restart, RESTART_POLICIES))
    dns = spec.get("dnsPolicy", "ClusterFirst")
    if dns not in DNS_POLICIES:
        errors.append(_not_supported(_join(path, "dnsPolicy"), dns, DNS_POLICIES))
    errors += validate_labels(spec.get("nodeSelector"), _join(path, "nodeSelector"))
    errors += validate_pod_security_context(spec.get("securityContext"), _join(path, "securityContext"))
    errors += validate_topology_spread_constraints(spec.get("topologySpreadConstraints"),
                                                   _join(path, "topologySpreadConstraints"))
    if spec.get("serviceAccountName"):
        errors += is_dns1123_subdomain(spec["serviceAccountName"], _join(path, "serviceAccountName"))
    if spec.get("activeDeadlineSeconds") is not None:
        deadline = spec["activeDeadlineSeconds"]
        if not _is_int(deadline) or not 1 <= deadline <= INT32_MAX:
            errors.append(_invalid(_join(path, "activeDeadlineSeconds"), deadline,
                                   f"must be between 1 and {INT32_MAX}, inclusive"))
    for name in ("hostname", "subdomain"):
        if spec.get(name):
            errors += is_dns1123_label(spec[name], _join(path, name))
    if spec.get("priorityClassName"):
        errors += is_dns1123_subdomain(spec["priorityClassName"], _join(path, "priorityClassName"))
    return errors


def validate_pod_template(template: Any, version: str | int, path: str = "spec.template",
                          selector: Mapping[str, Any] | None = None) -> list[str]:
    """ValidatePodTemplateSpecForReplicaSet (apps/validation), which a Deployment's template gets:
    the template's labels matched by a non-empty selector ("`selector` does not match template
    `labels`"), then ValidatePodTemplateSpec (labels, annotations, ValidatePodSpec), restartPolicy
    Always and no activeDeadlineSeconds."""
    if not isinstance(template, Mapping):
        return [_required(path)]
    errors = []
    meta = template.get("metadata") or {}
    labels = meta.get("labels") or {}
    if isinstance(selector, Mapping) and not _selector_is_empty(selector) and not selector_matches(selector, labels):
        errors.append(_invalid(_join(path, "metadata.labels"), labels, "`selector` does not match template `labels`"))
    errors += validate_labels(meta.get("labels"), _join(path, "metadata.labels"))
    errors += validate_annotations(meta.get("annotations"), _join(path, "metadata.annotations"))
    spec = template.get("spec")
    errors += validate_pod_spec(spec, version, _join(path, "spec"))
    if isinstance(spec, Mapping):
        restart = spec.get("restartPolicy", "Always")
        if restart != "Always" and restart in RESTART_POLICIES:
            errors.append(_not_supported(_join(path, "spec.restartPolicy"), restart, ["Always"]))
        if spec.get("activeDeadlineSeconds") is not None:
            errors.append(_forbidden(_join(path, "spec.activeDeadlineSeconds"),
                                     "activeDeadlineSeconds in ReplicaSet is not Supported"))
    return errors


# ---------------------------------------------------------------------------------------------
# Deployments: k8s.io/kubernetes/pkg/apis/apps/validation
# ---------------------------------------------------------------------------------------------

DEFAULT_SURGE_OR_UNAVAILABLE = "25%"  # SetDefaults_Deployment (apps/v1)
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600


def get_percent_value(value: Any) -> tuple[int, bool]:
    """getPercentValue: the number of a valid percent string, and whether it was one."""
    if isinstance(value, str) and re.fullmatch(PERCENT_FMT, value):
        return int(value[:-1]), True
    return 0, False


def get_int_or_percent_value(value: Any) -> int:
    """getIntOrPercentValue: a percent's number, an int, or what strconv.Atoi makes of another string
    (0 when it is no number), as intstr.IntValue does."""
    number, is_percent = get_percent_value(value)
    if is_percent:
        return number
    if _is_int(value):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value)
    return 0


def validate_positive_int_or_percent(value: Any, path: str) -> list[str]:
    """ValidatePositiveIntOrPercent: a string must be a percent, an int not negative."""
    if isinstance(value, str):
        return is_valid_percent(value, path)
    if _is_int(value):
        return _int_field(value, path, minimum=0)
    return [_invalid(path, value, "must be an integer or percentage (e.g '5%')")]


def is_not_more_than_100_percent(value: Any, path: str) -> list[str]:
    """IsNotMoreThan100Percent: a percent at most 100%; ints are not bounded."""
    number, is_percent = get_percent_value(value)
    if is_percent and number > 100:
        return [_invalid(path, value, "must not be greater than 100%")]
    return []


def validate_rolling_update_deployment(rolling_update: Any, path: str) -> list[str]:
    """ValidateRollingUpdateDeployment: maxUnavailable and maxSurge ints not negative or percents
    (25% when left out), not both 0 ("may not be 0 when `maxSurge` is 0"), maxUnavailable at most
    100%."""
    if not isinstance(rolling_update, Mapping):
        return [_invalid(path, rolling_update, "must be a rolling update")]
    unavailable = rolling_update.get("maxUnavailable", DEFAULT_SURGE_OR_UNAVAILABLE)
    surge = rolling_update.get("maxSurge", DEFAULT_SURGE_OR_UNAVAILABLE)
    errors = validate_positive_int_or_percent(unavailable, _join(path, "maxUnavailable"))
    errors += validate_positive_int_or_percent(surge, _join(path, "maxSurge"))
    if get_int_or_percent_value(unavailable) == 0 and get_int_or_percent_value(surge) == 0:
        errors.append(_invalid(_join(path, "maxUnavailable"), unavailable, "may not be 0 when `maxSurge` is 0"))
    errors += is_not_more_than_100_percent(unavailable, _join(path, "maxUnavailable"))
    return errors


def validate_deployment_strategy(strategy: Any, path: str = "spec.strategy") -> list[str]:
    """ValidateDeploymentStrategy: type Recreate (without rollingUpdate) or RollingUpdate (the default,
    whose rollingUpdate defaults to 25%/25%)."""
    strategy = strategy if strategy is not None else {}
    if not isinstance(strategy, Mapping):
        return [_invalid(path, strategy, "must be a deployment strategy")]
    kind = strategy.get("type") or "RollingUpdate"
    if kind == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            return [_forbidden(_join(path, "rollingUpdate"), "may not be specified when strategy `type` is 'Recreate'")]
        return []
    if kind == "RollingUpdate":
        return validate_rolling_update_deployment(strategy.get("rollingUpdate") or {}, _join(path, "rollingUpdate"))
    return [_not_supported(path, kind, ("Recreate", "RollingUpdate"))]


def validate_deployment_spec(spec: Any, version: str | int, path: str = "spec") -> list[str]:
    """ValidateDeploymentSpec (pkg/apis/apps/validation/validation.go): replicas (default 1) an int32
    not negative; a selector, valid and not empty; the template (validate_pod_template, whose labels
    the selector must match); the strategy; minReadySeconds not negative; revisionHistoryLimit not
    negative; progressDeadlineSeconds (default 600) not negative and greater than minReadySeconds."""
    if not isinstance(spec, Mapping):
        return [_required(path)]
    errors = _int_field(spec.get("replicas", 1), _join(path, "replicas"), minimum=0)
    selector = spec.get("selector")
    if selector is None:
        errors.append(_required(_join(path, "selector")))
    else:
        errors += validate_label_selector(selector, _join(path, "selector"))
        if isinstance(selector, Mapping) and _selector_is_empty(selector):
            errors.append(_invalid(_join(path, "selector"), selector, "empty selector is invalid for deployment"))
    errors += validate_pod_template(spec.get("template"), version, _join(path, "template"),
                                    selector if isinstance(selector, Mapping) else None)
    errors += validate_deployment_strategy(spec.get("strategy"), _join(path, "strategy"))
    min_ready = spec.get("minReadySeconds", 0)
    min_ready_errors = _int_field(min_ready, _join(path, "minReadySeconds"), minimum=0)
    errors += min_ready_errors
    if spec.get("revisionHistoryLimit") is not None:
        errors += _int_field(spec["revisionHistoryLimit"], _join(path, "revisionHistoryLimit"), minimum=0)
    deadline = spec.get("progressDeadlineSeconds", DEFAULT_PROGRESS_DEADLINE_SECONDS)
    deadline_errors = _int_field(deadline, _join(path, "progressDeadlineSeconds"), minimum=0)
    errors += deadline_errors
    if not deadline_errors and not min_ready_errors and deadline <= min_ready:
        errors.append(_invalid(_join(path, "progressDeadlineSeconds"), deadline, "must be greater than minReadySeconds"))
    return errors


def validate_deployment(obj: Mapping[str, Any], version: str | int) -> list[str]:
    """ValidateDeployment: ValidateObjectMeta with ValidateDeploymentName, then ValidateDeploymentSpec."""
    return validate_object_meta(obj) + validate_deployment_spec(obj.get("spec"), version, "spec")


# ---------------------------------------------------------------------------------------------
# Services: k8s.io/kubernetes/pkg/apis/core/validation
# ---------------------------------------------------------------------------------------------

SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


def validate_service_port(port: Any, path: str, require_name: bool, names: set[str]) -> list[str]:
    """validateServicePort: a name (required when the Service has more than one port) a DNS-1123
    label and unique; port a port number; protocol TCP/UDP/SCTP (default TCP); targetPort (default:
    port) a number or an IANA_SVC_NAME; appProtocol a qualified name.

    Note: a Service port's *name* is a DNS-1123 label (up to 63 characters), not an IANA_SVC_NAME;
    the 15-character limit applies to container port names and to a named targetPort.
    """
    if not isinstance(port, Mapping):
        return [_invalid(path, port, "must be a service port")]
    errors = []
    name = port.get("name")
    if require_name and not name:
        errors.append(_required(_join(path, "name")))
    elif name:
        errors += is_dns1123_label(name, _join(path, "name"))
        if name in names:
            errors.append(_duplicate(_join(path, "name"), name))
        names.add(name)
    errors += validate_port_number(port.get("port", 0), _join(path, "port"))
    protocol = port.get("protocol", "TCP")
    if protocol not in SUPPORTED_PORT_PROTOCOLS:
        errors.append(_not_supported(_join(path, "protocol"), protocol, SUPPORTED_PORT_PROTOCOLS))
    errors += validate_port_num_or_name(port.get("targetPort", port.get("port", 0)), _join(path, "targetPort"))
    if port.get("appProtocol") is not None:
        errors += is_qualified_name(port["appProtocol"], _join(path, "appProtocol"))
    if port.get("nodePort"):
        errors += validate_port_number(port["nodePort"], _join(path, "nodePort"))
    return errors


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return "/" in value


def validate_service(obj: Mapping[str, Any], version: str | int) -> list[str]:
    """ValidateService: ObjectMeta with ValidateServiceName (a DNS-1035 label); type ClusterIP,
    NodePort, LoadBalancer or ExternalName (default ClusterIP); ports required unless headless or
    ExternalName, each valid (validate_service_port), no two with the same protocol and port, no
    nodePort on a ClusterIP Service; an ExternalName's externalName a DNS-1123 subdomain; selector
    labels valid; sessionAffinity, externalTrafficPolicy, internalTrafficPolicy values; the
    LoadBalancer-only fields (loadBalancerClass, loadBalancerSourceRanges,
    allocateLoadBalancerNodePorts) only on a LoadBalancer."""
    errors = validate_object_meta(obj)
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return errors + [_required("spec")]
    kind = spec.get("type") or "ClusterIP"
    if kind not in SERVICE_TYPES:
        errors.append(_not_supported("spec.type", kind, SERVICE_TYPES))
    cluster_ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    headless = len(cluster_ips) == 1 and cluster_ips[0] == "None"
    if headless and kind in ("LoadBalancer", "NodePort"):
        errors.append(_invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {kind} services"))
    if kind == "ExternalName":
        external = (spec.get("externalName") or "").removesuffix(".")
        if external:
            errors += is_dns1123_subdomain(external, "spec.externalName")
        else:
            errors.append(_required("spec.externalName"))
    ports = spec.get("ports") or []
    if not ports and not headless and kind != "ExternalName":
        errors.append(_required("spec.ports"))
    names: set[str] = set()
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        here = f"spec.ports[{i}]"
        errors += validate_service_port(port, here, len(ports) > 1, names)
        if not isinstance(port, Mapping):
            continue
        pair = (port.get("protocol", "TCP"), port.get("port"))
        if pair in seen:
            errors.append(_duplicate(here, {"protocol": pair[0], "port": pair[1]}))
        seen.add(pair)
        if kind == "ClusterIP" and port.get("nodePort"):
            errors.append(_forbidden(_join(here, "nodePort"), "may not be used when `type` is 'ClusterIP'"))
    errors += validate_labels(spec.get("selector"), "spec.selector")
    affinity = spec.get("sessionAffinity")
    if affinity is not None and affinity not in ("ClientIP", "None"):
        errors.append(_not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
    external_policy = spec.get("externalTrafficPolicy")
    if external_policy is not None:
        if kind not in ("LoadBalancer", "NodePort") and not spec.get("externalIPs"):
            errors.append(_invalid("spec.externalTrafficPolicy", external_policy,
                                   "may only be set for externally-accessible services"))
        elif external_policy not in ("Cluster", "Local"):
            errors.append(_not_supported("spec.externalTrafficPolicy", external_policy, ("Cluster", "Local")))
    internal_policy = spec.get("internalTrafficPolicy")
    if internal_policy is not None and internal_policy not in ("Cluster", "Local"):
        errors.append(_not_supported("spec.internalTrafficPolicy", internal_policy, ("Cluster", "Local")))
    if spec.get("loadBalancerClass") is not None:
        if kind != "LoadBalancer":
            errors.append(_forbidden("spec.loadBalancerClass", "may only be used when `type` is 'LoadBalancer'"))
        else:
            errors += is_qualified_name(spec["loadBalancerClass"], "spec.loadBalancerClass")
    ranges = spec.get("loadBalancerSourceRanges") or []
    if ranges and kind != "LoadBalancer":
        errors.append(_forbidden("spec.LoadBalancerSourceRanges", "may only be used when `type` is 'LoadBalancer'"))
    for i, cidr in enumerate(ranges):
        if not isinstance(cidr, str) or not _is_cidr(cidr):
            errors.append(_invalid(f"spec.LoadBalancerSourceRanges[{i}]", cidr,
                                   "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    if spec.get("allocateLoadBalancerNodePorts") is not None and kind != "LoadBalancer":
        errors.append(_forbidden("spec.allocateLoadBalancerNodePorts", "may only be used when `type` is 'LoadBalancer'"))
    return errors


# ---------------------------------------------------------------------------------------------
# Ingresses: k8s.io/kubernetes/pkg/apis/networking/validation
# ---------------------------------------------------------------------------------------------

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
INVALID_PATH_SUFFIXES = ("/..", "/.")
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def validate_ingress_backend(backend: Any, path: str) -> list[str]:
    """validateIngressBackend: a resource or a service backend, not both; a service's name a DNS-1035
    label (ValidateServiceName) and its port a name (IANA_SVC_NAME) or a number, exactly one."""
    if not isinstance(backend, Mapping):
        return [_invalid(path, backend, "resource or service backend is required")]
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [_invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return [] if (resource or {}).get("kind") and (resource or {}).get("name") else [
            _required(_join(path, "resource"), "kind and name are required")]
    if not isinstance(service, Mapping):
        return [_invalid(path, "", "resource or service backend is required")]
    errors = []
    name = service.get("name")
    if not name:
        errors.append(_required(_join(path, "service.name")))
    else:
        errors += is_dns1035_label(name, _join(path, "service.name"))
    port = service.get("port") or {}
    port_name, port_number = port.get("name"), port.get("number")
    if port_name and port_number:
        errors.append(_invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errors += is_valid_port_name(port_name, _join(path, "service.port.name"))
    elif port_number:
        errors += validate_port_number(port_number, _join(path, "service.port.number"))
    else:
        errors.append(_required(path, "port name or number is required"))
    return errors


def validate_http_ingress_path(ingress_path: Any, path: str) -> list[str]:
    """validateHTTPIngressPath: pathType required and Exact, Prefix or ImplementationSpecific; for
    Exact and Prefix the path absolute (starting with '/') without '//', '/./', '/../', '%2f' and not
    ending in '/..' or '/.'; for ImplementationSpecific a given path absolute; the backend valid."""
    if not isinstance(ingress_path, Mapping):
        return [_invalid(path, ingress_path, "must be an HTTP ingress path")]
    errors = []
    path_type, value = ingress_path.get("pathType"), ingress_path.get("path") or ""
    if path_type is None:
        return [_required(_join(path, "pathType"), "pathType must be specified")]
    if not isinstance(value, str):
        errors.append(_invalid(_join(path, "path"), value, "must be a string"))
    elif path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errors.append(_invalid(_join(path, "path"), value, "must be an absolute path"))
        for sequence in INVALID_PATH_SEQUENCES:
            if sequence in value:
                errors.append(_invalid(_join(path, "path"), value, f"must not contain '{sequence}'"))
        for suffix in INVALID_PATH_SUFFIXES:
            if value.endswith(suffix):
                errors.append(_invalid(_join(path, "path"), value, f"cannot end with '{suffix}'"))
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errors.append(_invalid(_join(path, "path"), value, "must be an absolute path"))
    else:
        errors.append(_not_supported(_join(path, "pathType"), path_type, PATH_TYPES))
    errors += validate_ingress_backend(ingress_path.get("backend"), _join(path, "backend"))
    return errors


def _host_errors(host: Any, path: str) -> list[str]:
    if not isinstance(host, str):
        return [_invalid(path, host, "must be a string")]
    errors = []
    try:
        ipaddress.ip_address(host)
        errors.append(_invalid(path, host, "must be a DNS name, not an IP address"))
    except ValueError:
        pass
    if "*" in host:
        if _bytes(host) > 253 or not re.fullmatch(WILDCARD_DNS1123_SUBDOMAIN_FMT, host):
            errors.append(_invalid(path, host, "a wildcard DNS-1123 subdomain must start with '*.', followed by a "
                                               "valid DNS subdomain"))
    else:
        errors += is_dns1123_subdomain(host, path)
    return errors


def validate_ingress_spec(spec: Any, path: str = "spec") -> list[str]:
    """ValidateIngressSpec: rules or a defaultBackend; the default backend valid; each rule's host a
    DNS-1123 subdomain (or wildcard), not an IP; each rule's http paths present and valid
    (validate_http_ingress_path); TLS hosts likewise; ingressClassName a DNS-1123 subdomain
    (ValidateIngressClassName = NameIsDNSSubdomain)."""
    if not isinstance(spec, Mapping):
        return [_required(path)]
    errors = []
    rules, default_backend = spec.get("rules") or [], spec.get("defaultBackend")
    if not rules and default_backend is None:
        errors.append(_invalid(path, rules, "either `defaultBackend` or `rules` must be specified"))
    if default_backend is not None:
        errors += validate_ingress_backend(default_backend, _join(path, "defaultBackend"))
    for i, rule in enumerate(rules):
        here = f"{_join(path, 'rules')}[{i}]"
        if not isinstance(rule, Mapping):
            errors.append(_invalid(here, rule, "must be an ingress rule"))
            continue
        if rule.get("host"):
            errors += _host_errors(rule["host"], _join(here, "host"))
        http = rule.get("http")
        if http is not None:
            paths = (http or {}).get("paths") or []
            if not paths:
                errors.append(_required(_join(here, "http.paths")))
            for j, ingress_path in enumerate(paths):
                errors += validate_http_ingress_path(ingress_path, f"{_join(here, 'http.paths')}[{j}]")
    for i, tls in enumerate(spec.get("tls") or []):
        for j, host in enumerate((tls or {}).get("hosts") or []):
            errors += _host_errors(host, f"{_join(path, 'tls')}[{i}].hosts[{j}]")
    if spec.get("ingressClassName") is not None:
        errors += is_dns1123_subdomain(spec["ingressClassName"], _join(path, "ingressClassName"))
    return errors


def validate_ingress(obj: Mapping[str, Any], version: str | int) -> list[str]:
    """ValidateIngressCreate: ObjectMeta with ValidateIngressName (a DNS-1123 subdomain), the
    `kubernetes.io/ingress.class` annotation matching ingressClassName when both are given, then
    ValidateIngressSpec."""
    errors = validate_object_meta(obj)
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    spec = obj.get("spec")
    class_name = spec.get("ingressClassName") if isinstance(spec, Mapping) else None
    if INGRESS_CLASS_ANNOTATION in annotations and class_name is not None \
            and annotations[INGRESS_CLASS_ANNOTATION] != class_name:
        errors.append(_invalid(f"annotations.{INGRESS_CLASS_ANNOTATION}", annotations[INGRESS_CLASS_ANNOTATION],
                               "must match `ingressClassName` when both are specified"))
    return errors + validate_ingress_spec(spec, "spec")


# ---------------------------------------------------------------------------------------------
# PodDisruptionBudgets: k8s.io/kubernetes/pkg/apis/policy/validation
# ---------------------------------------------------------------------------------------------

# unhealthyPodEvictionPolicy (feature gate PDBUnhealthyPodEvictionPolicy: alpha 1.26, beta and on by
# default 1.27, GA 1.31) is dropped, not refused, where the gate is off.
UNHEALTHY_POD_EVICTION_POLICIES = ("AlwaysAllow", "IfHealthyBudget")


def validate_pod_disruption_budget_spec(spec: Any, path: str = "spec") -> list[str]:
    """ValidatePodDisruptionBudgetSpec: minAvailable and maxUnavailable not both set; each given one an
    int not negative or a percent at most 100% (ValidatePositiveIntOrPercent, IsNotMoreThan100Percent);
    a valid selector; unhealthyPodEvictionPolicy IfHealthyBudget or AlwaysAllow.

    Ours on top: a selector present. Upstream takes a budget without one, which selects no pods in
    policy/v1 and protects nothing.
    """
    if not isinstance(spec, Mapping):
        return [_required(path)]
    errors = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errors.append(_invalid(path, "", "minAvailable and maxUnavailable cannot be both set"))
    for name in ("minAvailable", "maxUnavailable"):
        if spec.get(name) is not None:
            errors += validate_positive_int_or_percent(spec[name], _join(path, name))
            errors += is_not_more_than_100_percent(spec[name], _join(path, name))
    selector = spec.get("selector")
    if selector is None:
        errors.append(_required(_join(path, "selector"), "a budget without a selector protects no pods (our rule)"))
    else:
        errors += validate_label_selector(selector, _join(path, "selector"))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        errors.append(_not_supported(_join(path, "unhealthyPodEvictionPolicy"), policy, UNHEALTHY_POD_EVICTION_POLICIES))
    return errors


def validate_pod_disruption_budget(obj: Mapping[str, Any], version: str | int) -> list[str]:
    """ValidatePodDisruptionBudget: the spec (validate_pod_disruption_budget_spec), with the object
    metadata as the registry checks it (names held to DNS-1123 subdomains: see NAME_RULES)."""
    return validate_object_meta(obj) + validate_pod_disruption_budget_spec(obj.get("spec"), "spec")


# ---------------------------------------------------------------------------------------------
# Namespaces
# ---------------------------------------------------------------------------------------------

RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def validate_namespace(obj: Mapping[str, Any], version: str | int) -> list[str]:
    """ValidateNamespace (core/validation): ObjectMeta without a namespace, its name a DNS-1123 label
    (ValidateNamespaceName = NameIsDNSLabel).

    Ours on top: not one of the namespaces every cluster already has (default, kube-system,
    kube-public, kube-node-lease). The API server would take the object (it exists), but a Namespace
    this program *creates* there would adopt, and on `pulumi destroy` delete, a system namespace.
    """
    errors = validate_object_meta(obj)
    name = (obj.get("metadata") or {}).get("name")
    if name in RESERVED_NAMESPACES:
        errors.append(_forbidden("metadata.name", f"{name!r} is a namespace every cluster has; this program must "
                                                  "not create (and on destroy delete) it (our rule)"))
    return errors


# ---------------------------------------------------------------------------------------------
# By kind
# ---------------------------------------------------------------------------------------------

VALIDATORS: dict[str, tuple[str, Callable[[Mapping[str, Any], str | int], list[str]]]] = {
    "Deployment": ("apps/v1", validate_deployment),
    "Service": ("v1", validate_service),
    "Ingress": ("networking.k8s.io/v1", validate_ingress),
    "PodDisruptionBudget": ("policy/v1", validate_pod_disruption_budget),
    "Namespace": ("v1", validate_namespace),
}


# Custom resources the program renders (traffic: gateway, istio). The API server checks them against
# their CRD's openAPIV3Schema, not with rules like the ones above: tests/crd/validate.mjs does that
# offline. Listed one by one, so the dispatcher still refuses any other kind it has no rules for.
CUSTOM_RESOURCES = frozenset({
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
})


def is_custom_resource(obj: Mapping[str, Any]) -> bool:
    """Whether obj is one of CUSTOM_RESOURCES (which validate() refuses: keep them out of it)."""
    return isinstance(obj, Mapping) and (obj.get("apiVersion"), obj.get("kind")) in CUSTOM_RESOURCES


def validate(obj: Mapping[str, Any], version: str | int) -> list[str]:
    """Every rule above that the API server of Kubernetes `version` applies to `obj`, chosen by its
    kind (and its apiVersion checked). A kind this helper has no rules for is an error, so a new kind
    of object gets rules before it passes."""
    minor_of(version)  # refuse a malformed version up front
    if not isinstance(obj, Mapping):
        return [_invalid("", obj, "must be an object")]
    kind = obj.get("kind")
    if kind not in VALIDATORS:
        return [_not_supported("kind", kind, sorted(VALIDATORS))]
    api_version, validator = VALIDATORS[kind]
    errors = []
    if obj.get("apiVersion") != api_version:
        errors.append(_not_supported("apiVersion", obj.get("apiVersion"), [api_version]))
    return errors + validator(obj, version)


def problems_of(resources: Iterable[Any], version: str | int) -> list[str]:
    """Every rule broken by any built-in Kubernetes object among rendered resources (anything with
    `type`, `name` and the object as `inputs`, as preview.runner records a registration), each line
    naming its object. Custom resources are left to their CRDs' schemas (tests/test_traffic_modes.py)."""
    found = []
    for resource in resources:
        if is_custom_resource(resource.inputs):
            continue
        found.extend(f"{resource.type} {resource.name}: {error}" for error in validate(resource.inputs, version))
    return found
