"""Run the program the way `pulumi preview`/`up` do, without the Pulumi CLI (which cannot be had here).

The language host starts tests/python_exec.py (the upstream executor's steps) in the project's
virtualenv with the stack's config in PULUMI_CONFIG, as pulumi-language-python does, and reads
its exit status as the host's Run does (sdk/python/cmd/pulumi-language-python/main.go): 0 is
success, 32 means the program already reported its error (the host bails: the engine adds
nothing), anything else becomes "program exited with non-zero exit code: N", which the engine
prints as "an unhandled error occurred: ...".

The engine's side is two gRPC services on loopback, speaking the SDK's own protocol
(pulumi.runtime.proto): a resource monitor that records each registration and answers with its
URN, and an engine that records each log line. What the program registers and logs is then
exactly what a real engine would have received; what the engine would do with it (diffs,
providers) is not exercised.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import engine_pb2, engine_pb2_grpc, resource_pb2, resource_pb2_grpc

from model.stack_file import cli_string

EXECUTOR = Path(__file__).with_name("python_exec.py")
ALREADY_REPORTED = 32  # pythonProcessExitedAfterShowingUserActionableMessage


@dataclass
class EngineRecord:
    logs: list[tuple[str, str]] = field(default_factory=list)  # (severity, message)
    registered: list[tuple[str, str]] = field(default_factory=list)  # (type, name)
    inputs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # as the engine would record them


class _Monitor(resource_pb2_grpc.ResourceMonitorServicer):
    def __init__(self, record: EngineRecord, project: str, stack: str):
        self.record, self.project, self.stack = record, project, stack

    def SupportsFeature(self, request: Any, context: Any) -> Any:
        return resource_pb2.SupportsFeatureResponse(hasSupport=False)

    def RegisterResource(self, request: Any, context: Any) -> Any:
        self.record.registered.append((request.type, request.name))
        self.record.inputs[(request.type, request.name)] = json_format.MessageToDict(request.object)
        urn = f"urn:pulumi:{self.stack}::{self.project}::{request.type}::{request.name}"
        return resource_pb2.RegisterResourceResponse(urn=urn, object=struct_pb2.Struct())

    def RegisterResourceOutputs(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    # What an older engine lacks: the SDK falls back (feature probes; no shutdown handshake).
    def GetDeploymentInfo(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented by this stand-in")

    def SignalAndWaitForShutdown(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not implemented by this stand-in")


class _Engine(engine_pb2_grpc.EngineServicer):
    def __init__(self, record: EngineRecord):
        self.record = record

    def Log(self, request: Any, context: Any) -> Any:
        self.record.logs.append((engine_pb2.LogSeverity.Name(request.severity), request.message))
        return empty_pb2.Empty()


@dataclass
class HostRun:
    exit_status: int
    host_error: str  # the RunResponse error the host hands the engine ("" when none)
    bail: bool  # the host told the engine the error is already reported
    engine: EngineRecord
    stdout: str
    stderr: str

    def errors(self) -> list[str]:
        return [message for severity, message in self.engine.logs if severity == "ERROR"]


def run_like_the_engine(project_dir: Path, project: str, stack: str, settings: dict[str, Any],
                        dry_run: bool = True, timeout: float = 120) -> HostRun:
    """Run `project_dir`'s program for `stack` with `settings` (structured values keyed like the
    stack file, Pulumi.yaml defaults included, as the CLI assembles them)."""
    record = EngineRecord()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    resource_pb2_grpc.add_ResourceMonitorServicer_to_server(_Monitor(record, project, stack), server)
    engine_pb2_grpc.add_EngineServicer_to_server(_Engine(record), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        venv = Path(sys.executable).parent.parent  # the project's virtualenv (Pulumi.yaml: virtualenv: venv)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env.update(VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                   PULUMI_CONFIG=json.dumps({k: cli_string(v) for k, v in settings.items()}),
                   PULUMI_CONFIG_SECRET_KEYS="[]")
        address = f"127.0.0.1:{port}"
        argv = [sys.executable, str(EXECUTOR), "--monitor", address, "--engine", address, "--project", project,
                "--stack", stack, "--pwd", str(project_dir), "--dry_run", "true" if dry_run else "false",
                "--parallel", "16", "--organization", "organization", "."]
        done = subprocess.run(argv, env=env, cwd=project_dir, capture_output=True, text=True, timeout=timeout,
                              check=False)
    finally:
        server.stop(grace=None)
    status = done.returncode
    bail = status == ALREADY_REPORTED
    host_error = "" if status == 0 or bail else f"program exited with non-zero exit code: {status}"
    return HostRun(status, host_error, bail, record, done.stdout, done.stderr)
