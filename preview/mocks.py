"""Mocks that answer like the providers, for running the program offline.

The mocks give back what the providers would: Kubernetes auto-names (`<name>-<8 chars>`) for
objects without `metadata.name`, a load balancer hostname on LoadBalancer Services and
Ingresses that are awaited, ids and ARNs for AWS resources, answers to the data sources the
program calls, and integers as integers. The recording monitor keeps every registration.
Here too is the one hook into the SDK the offline engine installs: no source positions in a
program run's thread (skip_source_positions).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from preview import aws_mocks


def as_ints(value: Any) -> Any:
    """Protobuf hands every number over as a float; give integral ones back as ints (in new dicts and lists)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:  # the common leaves first: this runs on every registration
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_ints(v) for v in value]
    return value


def _suffix(seed: str, length: int = 8) -> str:
    # Deterministic per stack and resource, so repeated previews give the same names.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:length])


FAKE_ACCOUNT = aws_mocks.ACCOUNT
FAKE_REGION = "us-west-2"


@dataclass
class RegisteredResource:
    type: str
    name: str
    urn: str
    parent: str | None
    custom: bool
    provider: str | None
    id: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    dependencies: list[str] = field(default_factory=list)
    # The aliases registered with the resource: {"urn": ...} or {"name", "type", "stack",
    # "project", "parentUrn" / "noParent"} per alias (only the fields that were set).
    aliases: list[dict[str, Any]] = field(default_factory=list)
    delete_before_replace: bool = False
    secret_inputs: set[str] = field(default_factory=set)  # top-level inputs passed as secrets

    @property
    def parent_name(self) -> str | None:
        """The logical name of the parent resource; None at the top (parented to the stack)."""
        if not self.parent:
            return None
        qualified_type, name = self.parent.split("::")[2:4]
        return None if qualified_type.split("$")[-1] == "pulumi:pulumi:Stack" else name


def _aliases(request: Any) -> list[dict[str, Any]]:
    """A RegisterResourceRequest's aliases (alias specs and alias URNs) as plain dicts."""
    out: list[dict[str, Any]] = []
    for alias in getattr(request, "aliases", []) or []:
        if alias.HasField("spec"):
            spec = alias.spec
            entry = {key: getattr(spec, key) for key in ("name", "type", "stack", "project", "parentUrn")
                     if getattr(spec, key, "")}
            if getattr(spec, "noParent", False):
                entry["noParent"] = True
            out.append(entry)
        elif alias.urn:
            out.append({"urn": alias.urn})
    out.extend({"urn": urn} for urn in getattr(request, "aliasURNs", []) or [])
    return out


# Set in the thread of a program run (preview/runner.run_program): skip_source_positions acts only there.
PROGRAM_THREAD = threading.local()
_hooks_lock = threading.Lock()


def skip_source_positions() -> None:
    """Make the SDK's per-resource stack capture answer "no user frame" in program-run threads.

    The SDK walks the Python stack for every resource (traceback.extract_stack) to send the engine the
    line that created it; the mocks drop it and nothing offline reads it (preview/runner.py's docstring).
    The SDK has no public switch for it: this replaces its private `_get_stack_trace` with one that
    returns the empty StackTrace the SDK itself sends when it finds no user frame, in threads that set
    PROGRAM_THREAD.active, and calls the SDK's own everywhere else. Installed once per process; nothing
    happens when the SDK no longer has those private names (the capture stays on)."""
    from pulumi.runtime import resource as sdk_resource

    with _hooks_lock:
        capture = getattr(sdk_resource, "_get_stack_trace", None)
        stack_trace_type = getattr(getattr(sdk_resource, "source_pb2", None), "StackTrace", None)
        if capture is None or stack_trace_type is None or getattr(capture, "offline_skip", False):
            return

        def stack_trace_outside_program_runs() -> Any:
            if getattr(PROGRAM_THREAD, "active", False):
                return stack_trace_type()
            return capture()

        stack_trace_outside_program_runs.offline_skip = True  # type: ignore[attr-defined]
        sdk_resource._get_stack_trace = stack_trace_outside_program_runs


def mock_classes() -> tuple[type, type]:
    # pulumi is imported lazily: `python -m rollout forecast` does not need it.
    from pulumi.runtime import mocks as pulumi_mocks

    class ProviderLikeMocks(pulumi_mocks.Mocks):
        def __init__(self, stack: str, region: str):
            self.stack = stack
            self.region = region
            self.invokes: list[tuple[str, dict[str, Any]]] = []  # data sources called: (token, args)
            # The inputs the monitor deserialized for each registration in progress, innermost last
            # (a registration's reply can run others before it returns): the recording monitor
            # keeps them instead of deserializing the request a second time.
            self.inputs_in_progress: list[Any] = []

        def call(self, args: pulumi_mocks.MockCallArgs):
            token = args.token
            self.invokes.append((token, as_ints(dict(args.args))))
            if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
                names = [f"{self.region}{z}" for z in "abcd"]
                return {"names": names, "zoneIds": [f"usw2-az{i + 1}" for i in range(4)], "id": self.region,
                        "groupNames": [self.region]}, []
            if token == "aws:index/getCallerIdentity:getCallerIdentity":
                return {"accountId": FAKE_ACCOUNT, "arn": f"arn:aws:iam::{FAKE_ACCOUNT}:user/deployer",
                        "userId": "AIDAEXAMPLEUSERID", "id": FAKE_ACCOUNT}, []
            if token == "aws:index/getRegion:getRegion":
                return {"name": self.region, "region": self.region, "id": self.region,
                        "endpoint": f"ec2.{self.region}.amazonaws.com"}, []
            if token == "aws:index/getPartition:getPartition":
                return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}, []
            if token == "aws:iam/getSessionContext:getSessionContext":
                arn = args.args.get("arn", "")
                return {"issuerArn": arn, "arn": arn, "id": arn}, []
            if token == "aws:route53/getZone:getZone":
                return aws_mocks.hosted_zone(str(args.args.get("name") or "")), []
            if token in ("aws:lb/getHostedZoneId:getHostedZoneId", "aws:elb/getHostedZoneId:getHostedZoneId"):
                # application is aws.lb's default type; aws.elb answers for classic ELBs.
                kind = (args.args.get("loadBalancerType") or "application") if token.startswith("aws:lb/") else "classic"
                region = args.args.get("region") or self.region
                try:
                    zone_id = aws_mocks.load_balancer_zone_id(kind, region)
                except LookupError as error:  # the provider fails the invoke, naming the region
                    return {}, [("region", str(error).strip("'\""))]
                answer = {"id": zone_id, "region": region}
                if token.startswith("aws:lb/"):
                    answer["loadBalancerType"] = kind
                return answer, []
            raise NotImplementedError(f"the offline mocks do not answer {token}")

        def new_resource(self, args: pulumi_mocks.MockResourceArgs):
            if self.inputs_in_progress:
                self.inputs_in_progress[-1] = args.inputs
            inputs = as_ints(args.inputs)  # fresh dicts and lists: the state is the provider's own copy
            if not args.custom:
                return f"{args.name}-component", inputs
            if args.typ.startswith("pulumi:providers:"):
                return f"{args.name}-{_suffix(self.stack + args.name)}", inputs
            if args.typ.startswith("kubernetes:"):
                return self._kubernetes(args.typ, args.name, inputs)
            if args.typ.startswith("aws:"):
                return aws_mocks.new_resource(args.typ, args.name, inputs, self.stack, self.region)
            return f"{args.name}-id", inputs

        def _kubernetes(self, typ: str, name: str, state: dict[str, Any]):
            if typ.startswith("kubernetes:helm.sh/"):
                state.setdefault("status", {"status": "deployed", "name": state.get("name", name)})
                return f"{state.get('namespace', 'default')}/{state.get('name', name)}", state
            metadata = state.setdefault("metadata", {})
            if not metadata.get("name"):
                metadata["name"] = f"{name}-{_suffix(self.stack + typ + name)}"
                metadata.setdefault("annotations", {})
            metadata.setdefault("uid", _suffix(self.stack + name + "uid", 8) + "-0000-4000-8000-000000000000")
            kind = state.get("kind")
            skip_await = (metadata.get("annotations") or {}).get("pulumi.com/skipAwait") == "true"
            spec = state.get("spec") or {}
            wants_address = (kind == "Service" and spec.get("type") == "LoadBalancer") or kind == "Ingress"
            if wants_address and not skip_await:
                host = f"k8s-{_suffix(self.stack + name, 10)}-{_suffix(name, 10)}.elb.{self.region}.amazonaws.com"
                state["status"] = {"loadBalancer": {"ingress": [{"hostname": host}]}}
            identity = metadata["name"]
            if metadata.get("namespace"):
                identity = f"{metadata['namespace']}/{identity}"
            return identity, state

    class RecordingMonitor(pulumi_mocks.MockMonitor):
        """The stock mock monitor, also keeping parent, provider and inputs of each registration."""

        def __init__(self, mocks: pulumi_mocks.Mocks):
            super().__init__(mocks)
            self.registrations: list[RegisteredResource] = []

        def RegisterResource(self, request: Any) -> Any:
            from pulumi.runtime import rpc

            self.mocks.inputs_in_progress.append(None)
            try:
                response = super().RegisterResource(request)
            finally:
                deserialized = self.mocks.inputs_in_progress.pop()
            if request.type != "pulumi:pulumi:Stack":
                if deserialized is None:  # (the stock monitor answered without asking the mocks)
                    deserialized = rpc.deserialize_properties(request.object)
                inputs, secret_inputs = unwrap_secrets(deserialized)
                urn = response.urn
                state = self.resources[urn].state
                self.registrations.append(RegisteredResource(
                    type=request.type, name=request.name, urn=urn, parent=request.parent or None,
                    custom=bool(request.custom), provider=request.provider or None, id=self.resources[urn].id,
                    inputs=inputs, outputs=as_ints(state), dependencies=list(request.dependencies),
                    aliases=_aliases(request), delete_before_replace=bool(request.deleteBeforeReplace),
                    secret_inputs=secret_inputs,
                ))
            return response

    return ProviderLikeMocks, RecordingMonitor


def unwrap_secrets(inputs: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """Inputs with secret values unwrapped and integral numbers as ints (as as_ints does: new dicts and
    lists), in one pass, and the names of the top-level inputs that were secret.

    The SDK marks a secret in serialized properties with a special signature key that it does
    not export (pulumi/pulumi#6666 asks for a public way to inspect what a test registered):
    this is the one place that reads it.
    """
    from pulumi.runtime import rpc

    signature_key, secret_signature = rpc._special_sig_key, rpc._special_secret_sig
    secret: set[str] = set()

    def plain(value: Any, top: str | None) -> Any:
        kind = type(value)
        if kind is str or value is None or kind is bool:  # the common leaves first, as in as_ints
            return value
        if isinstance(value, float):
            return int(value) if value.is_integer() else value
        if isinstance(value, dict):
            if value.get(signature_key) == secret_signature:
                if top is not None:
                    secret.add(top)
                return plain(value.get("value"), top)
            return {k: plain(v, top if top is not None else k) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v, top) for v in value]
        return value

    return {k: plain(v, k) for k, v in inputs.items()}, secret
