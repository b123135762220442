"""Run the real `__main__.py` offline under Pulumi mocks that answer like the providers.

No Pulumi CLI, engine, cloud or cluster: the program runs in this process against a mock
resource monitor. The mocks give back what the providers would: Kubernetes auto-names
(`<name>-<8 chars>`) for objects without `metadata.name`, a load balancer hostname on
LoadBalancer Services and Ingresses that are awaited, ids and ARNs for AWS resources,
and integers as integers. What comes back is every registered resource with its parent,
inputs and outputs, the stack's exports and the warnings the program logged.

Stack files are read here as the CLI would: project defaults from Pulumi.yaml, then
`Pulumi.<stack>.yaml`, every value passed to the program as a string (structured ones as JSON).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rollout import aws_mocks

PROJECT_DIR = Path(__file__).resolve().parent.parent
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)


class StackFileError(Exception):
    """The stack file is missing or is not a Pulumi stack file."""


# ---------------------------------------------------------------------------------------------
# Stack files, read as the CLI reads them
# ---------------------------------------------------------------------------------------------


def project_name(project_dir: Path = PROJECT_DIR) -> str:
    return _load_yaml((project_dir / "Pulumi.yaml").read_text())["name"]


def available_stacks(project_dir: Path = PROJECT_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in project_dir.glob("Pulumi.*.yaml"))


def cli_string(value: Any) -> str:
    """A config value as the CLI hands it to the program: JSON text for structured values."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def stack_settings(stack: str, project_dir: Path = PROJECT_DIR,
                   overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The stack's config as structured values: Pulumi.yaml defaults, the stack file, overrides."""
    project = _load_yaml((project_dir / "Pulumi.yaml").read_text())
    name = project["name"]
    settings: dict[str, Any] = {}
    for key, spec in (project.get("config") or {}).items():
        full = key if ":" in key else f"{name}:{key}"
        if isinstance(spec, dict) and "default" in spec:
            settings[full] = spec["default"]
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        known = ", ".join(available_stacks(project_dir)) or "none"
        raise StackFileError(f"no stack file {path.name} (stacks here: {known})")
    try:
        document = _load_yaml(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise StackFileError(f"{path.name} is not valid YAML: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("config", {}), dict):
        raise StackFileError(f"{path.name}: expected a mapping with a 'config' mapping")
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value and len(value) == 1:
            value = "[secret]"  # ciphertext: only the CLI can decrypt it
        settings[key if ":" in key else f"{name}:{key}"] = value
    settings.update(overrides or {})
    return settings


# ---------------------------------------------------------------------------------------------
# Mocks that behave like the providers
# ---------------------------------------------------------------------------------------------


def _ints(value: Any) -> Any:
    """Protobuf hands every number over as a float; give integral ones back as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
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

    @property
    def parent_name(self) -> str | None:
        """The logical name of the parent resource; None at the top (parented to the stack)."""
        if not self.parent:
            return None
        qualified_type, name = self.parent.split("::")[2:4]
        return None if qualified_type.split("$")[-1] == "pulumi:pulumi:Stack" else name


def _mock_classes():
    # pulumi is imported lazily: `python -m rollout forecast` does not need it.
    from pulumi.runtime import mocks as pulumi_mocks

    class ProviderLikeMocks(pulumi_mocks.Mocks):
        def __init__(self, stack: str, region: str):
            self.stack = stack
            self.region = region

        def call(self, args: pulumi_mocks.MockCallArgs):
            token = args.token
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
            raise NotImplementedError(f"the offline mocks do not answer {token}")

        def new_resource(self, args: pulumi_mocks.MockResourceArgs):
            inputs = _ints(copy.deepcopy(args.inputs))
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

            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                urn = response.urn
                state = self.resources[urn].state
                self.registrations.append(RegisteredResource(
                    type=request.type, name=request.name, urn=urn, parent=request.parent or None,
                    custom=bool(request.custom), provider=request.provider or None, id=self.resources[urn].id,
                    inputs=_ints(rpc.deserialize_properties(request.object)), outputs=_ints(state),
                    dependencies=list(request.dependencies),
                ))
            return response

    return ProviderLikeMocks, RecordingMonitor


# ---------------------------------------------------------------------------------------------
# Running the program
# ---------------------------------------------------------------------------------------------


@dataclass
class ProgramRun:
    stack: str
    resources: list[RegisteredResource]
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, typ: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == typ]

    def kubernetes_objects(self) -> list[RegisteredResource]:
        return [r for r in self.resources if r.custom and r.type.startswith("kubernetes:")
                and not r.type.startswith("kubernetes:helm.sh/")]

    def named(self, name: str) -> RegisteredResource:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_program(stack: str, project_dir: Path = PROJECT_DIR, overrides: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> ProgramRun:
    """Run `__main__.py` for `stack` under provider-like mocks and return what it registered.

    `settings` replaces the stack file entirely (tests pass config directly); `overrides`
    patches individual keys on top of the stack file. An exception from the program is
    returned in `error`, with whatever registered before it.
    """
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings as pulumi_settings
    from pulumi.runtime.stack import run_pulumi_func
    from pulumi.runtime.sync_await import _sync_await

    values = settings if settings is not None else stack_settings(stack, project_dir, overrides)
    region = values.get("aws:region") or FAKE_REGION
    mocks_class, monitor_class = _mock_classes()
    mocks = mocks_class(stack, str(region))
    monitor = monitor_class(mocks)
    collector = _Collect()
    logger = logging.getLogger(f"app-update.offline.{stack}")
    logger.propagate = False
    logger.handlers = [collector]

    pulumi_settings.reset_options()
    pulumi.runtime.set_all_config({k: cli_string(v) for k, v in values.items()}, [])
    pulumi_mocks.set_mocks(mocks, project=project_name(project_dir), stack=stack, preview=False,
                           logger=logger, monitor=monitor)
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    error: BaseException | None = None

    def program() -> Any:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

    try:
        _sync_await(run_pulumi_func(program))
        root = pulumi.runtime.get_root_resource()
        exported = getattr(root, "outputs", {}) or {}
        outputs = _ints(_sync_await(pulumi.Output.from_input(exported).future())) or {}
        secret_outputs = {key for key, value in exported.items()
                          if isinstance(value, pulumi.Output) and _sync_await(value.is_secret())}
    except Exception as exc:  # the program's own failure is the caller's to report
        error = exc
    finally:
        pulumi_settings.reset_options()
    return ProgramRun(stack=stack, resources=list(monitor.registrations), outputs=outputs,
                      warnings=collector.messages, error=error, secret_outputs=secret_outputs)
