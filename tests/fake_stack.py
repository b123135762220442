"""A stand-in for `pulumi.automation.Stack`: same methods, real UpdateSummary history, real failures.

Its `up` runs the real program offline under the provider-like mocks with the stack's config
and records an UpdateSummary, so history, outputs and config move together as on a backend.
Setting config with path=True parses "true"/"false" and integers as the Pulumi CLI does.

It fails the way the real API fails (read pulumi/automation/_cmd.py and errors.py):
- a failed update RAISES: `create_command_error` turns the CLI's output into `CommandError`
  (or `RuntimeError` for a program that threw), and the failed update is in the history;
- another update holding the lock raises `ConcurrentUpdateError` before anything runs, and
  nothing is recorded;
- Ctrl-C during an update (the "interrupt" outcome) is a real SIGINT to this process: when the
  caller's handler lets `KeyboardInterrupt` out of `up()`, the CLI dies of SIGPIPE and keeps the
  stack's lock for good, as the real one can; when the handler only sets a flag, the CLI cancels,
  records the update as failed, releases the lock and `up()` raises `CommandError`;
- a backend that cannot be reached fails every call, config included.

What went live is tracked apart from what succeeded: a failed or interrupted update may have
changed some resources before it stopped, so `live` takes its config (the worst case).
"""

from __future__ import annotations

import copy
import signal
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pulumi.automation import CommandResult, ConfigValue, OutputValue, UpdateSummary, UpResult
from pulumi.automation.errors import create_command_error

from components.stack_config import StackConfigRejected
from model.stack_file import cli_string
from tests.program_runs import shared_run

START = datetime(2026, 11, 1, 9, 0, 0)

# Where the stack's state lives. Self-managed backends (file://, s3://) never set an update's
# version: `pulumi stack history --json` says "version": 0 for every update. Pulumi Cloud numbers
# them 1, 2, ... (the first update is 1). The stand-in is self-managed unless told otherwise.
SELF_MANAGED, PULUMI_CLOUD = "self-managed", "pulumi-cloud"
PROGRAM_RUN_LOCK = threading.Lock()
BACKENDS = (SELF_MANAGED, PULUMI_CLOUD)
# `pulumi stack history`'s --page-size and --page defaults (pkg/cmd/pulumi/stack/stack_history.go);
# the SDK passes neither flag when it is given no page_size (pulumi/automation/_stack.py).
CLI_PAGE_SIZE = 10

# What the CLI prints in these cases; `create_command_error` classifies on these texts.
LOCKED_STDERR = ("error: the stack is currently locked by 1 lock(s). Either wait for the other process(es) to end "
                 "or delete the lock file with `pulumi cancel`.\n  file:///state/.pulumi/locks/organization/"
                 "app-update/{stack}/1.json: created by ci@runner (pid 4242) at 2026-11-01T10:00:00Z")
UPDATE_FAILED_STDOUT = ("Updating ({stack})\n\n ~  kubernetes:apps/v1:Deployment app-canary updating (600s) "
                        "error: 1 error occurred:\n ~  kubernetes:apps/v1:Deployment app-canary **updating failed** "
                        "error: 1 error occurred:\n\nDiagnostics:\n  kubernetes:apps/v1:Deployment (app-canary):\n"
                        "    error: 1 error occurred:\n    \t* the Kubernetes API server reported that "
                        "\"app-update/app-canary\" failed to fully initialize or become live: Timeout occurred\n\n"
                        "  pulumi:pulumi:Stack (app-update-{stack}):\n    error: update failed\n\n"
                        "Resources:\n    1 errored\n\nDuration: 10m2s\n")
CONFIG_REJECTED_STDOUT = ("Updating ({stack})\n\n     Type                 Name                Status\n"
                          " +   pulumi:pulumi:Stack  app-update-{stack}  **creating failed**     1 error\n\n"
                          "Diagnostics:\n  pulumi:pulumi:Stack (app-update-{stack}):\n    error: {report}\n\n"
                          "Resources:\n\nDuration: 1s\n")
CANCELLED_STDOUT = ("Updating ({stack})\n\n^C received; cancelling. If you would like to terminate immediately, "
                    "press ^C again.\nerror: update canceled\n")
BACKEND_STDERR = ("error: failed to load checkpoint: blob (key \".pulumi/stacks/app-update/{stack}.json\") "
                  "(code=Unknown): RequestError: send request failed: dial tcp: lookup state.example: "
                  "no such host")


def _cli_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text.lstrip("-").isdigit():
        return int(text)
    return text


@dataclass
class ObjectChange:
    """A Kubernetes object an update created, changed or deleted, in the order it was registered."""

    name: str  # "Deployment/app-canary"
    action: str  # "create", "update", "delete"
    fields: tuple[str, ...]  # top-level paths that differ, e.g. ("spec.replicas",)
    depends_on: tuple[str, ...]  # the objects it waited for, as "Kind/name"


class FakeStack:
    def __init__(self, name: str, config: dict[str, Any], secret_keys: tuple[str, ...] = (),
                 backend: str = SELF_MANAGED):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.name = name
        self.config = copy.deepcopy(config)
        self.secret_keys = set(secret_keys)
        self.backend = backend
        self.summaries: list[UpdateSummary] = []  # oldest first, as recorded
        self.history_calls: list[tuple[int | None, int | None]] = []  # (page_size, page) of each history()
        self._outputs: dict[str, Any] = {}
        self.up_messages: list[str] = []
        # Failure scripting: each up() takes the next entry of `script` ("ok", "fail", "fail-early",
        # "interrupt"); `locked_by` makes every up() meet a lock; `backend_down` fails every call.
        self.script: list[str] = []
        self.locked_by: str | None = None
        self.refusals_until_unlocked: int | None = None  # a lock that goes after this many refusals
        self.backend_down = False
        # Every update that ran: (message, config it ran with, result); and what it changed.
        self.applied: list[tuple[str, dict[str, Any], str]] = []
        self.changes: list[list[ObjectChange]] = []
        self.live: dict[str, Any] | None = None  # the config the resources were last moved towards
        self._live_objects: dict[str, dict[str, Any]] = {}

    def _backend(self) -> None:
        if self.backend_down:
            raise create_command_error(CommandResult(stdout="", stderr=BACKEND_STDERR.format(stack=self.name),
                                                     code=255))

    # -- history --------------------------------------------------------------------------
    def record(self, message: str, result: str = "succeeded", kind: str = "update",
               config: dict[str, Any] | None = None) -> None:
        count = len(self.summaries) + 1
        recorded = {}
        for key, value in (self.config if config is None else config).items():
            recorded[key] = {"value": cli_string(value), "secret": key in self.secret_keys}
        self.summaries.append(UpdateSummary(
            kind=kind, start_time=START + timedelta(hours=count), message=message, environment={},
            config=recorded, result=result, end_time=START + timedelta(hours=count, minutes=3),
            version=count if self.backend == PULUMI_CLOUD else 0))

    def history(self, page_size: int | None = None, page: int | None = None, show_secrets: bool = True):
        """What `Stack.history` returns: newest first, one page of it. Without page_size the SDK
        passes no paging flags and the CLI answers with its default page (the newest 10); with
        page_size the page defaults to 1. Both backends page the same way (diy getHistory,
        httpstate GetStackUpdates): a page_size of 0 or less means everything, a page below 1 is
        page 1, and a page past the end is an empty list."""
        self._backend()
        self.history_calls.append((page_size, page))
        size, number = (CLI_PAGE_SIZE, 1) if page_size is None else (page_size, max(page or 1, 1))
        newest_first = list(reversed(self.summaries))
        if size > 0:
            newest_first = newest_first[(number - 1) * size:number * size]
        if show_secrets:
            return newest_first
        hidden = []
        for s in newest_first:
            config = {k: ({"secret": True} if v.secret else {"value": v.value, "secret": False})
                      for k, v in s.config.items()}
            hidden.append(UpdateSummary(kind=s.kind, start_time=s.start_time, message=s.message, environment={},
                                        config=config, result=s.result, end_time=s.end_time, version=s.version))
        return hidden

    # -- config ---------------------------------------------------------------------------
    def get_all_config(self) -> dict[str, ConfigValue]:
        self._backend()
        return {k: ConfigValue(value=cli_string(v), secret=k in self.secret_keys) for k, v in self.config.items()}

    def _walk(self, key: str):
        namespace, _, path = key.partition(":")
        top, *rest = path.split(".")
        node = self.config.setdefault(f"{namespace}:{top}", {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        return node, rest[-1]

    def set_config(self, key: str, value: ConfigValue, *, path: bool = False) -> None:
        self._backend()
        if not path:
            self.config[key] = value.value
            return
        node, leaf = self._walk(key)
        node[leaf] = _cli_value(value.value)

    def remove_config(self, key: str, *, path: bool = False) -> None:
        self._backend()
        node, leaf = self._walk(key)
        node.pop(leaf, None)

    # -- updates --------------------------------------------------------------------------
    def outputs(self) -> dict[str, OutputValue]:
        self._backend()
        return {k: OutputValue(v, k == "kubeconfig") for k, v in self._outputs.items()}

    def up(self, message: str | None = None, on_output=None, color: str | None = None, **_: Any) -> UpResult:
        self._backend()
        if self.locked_by is not None:
            # The lock is checked before the update starts: nothing runs, nothing is recorded.
            if self.refusals_until_unlocked is not None:
                self.refusals_until_unlocked -= 1
                if self.refusals_until_unlocked <= 0:
                    self.locked_by, self.refusals_until_unlocked = None, None
            raise create_command_error(CommandResult(stdout="", stderr=LOCKED_STDERR.format(stack=self.name),
                                                     code=255))
        outcome = self.script.pop(0) if self.script else "ok"
        self.up_messages.append(message or "")
        if on_output:
            on_output(f"Updating ({self.name})")
        config = copy.deepcopy(self.config)
        if outcome == "fail-early":
            # Fails before any resource changes (a provider that cannot authenticate, say).
            self.record(message or "", "failed", config=config)
            raise create_command_error(CommandResult(stdout=f"Updating ({self.name})\n error: getting credentials: "
                                                            "exec: executable aws not found", stderr="", code=255))
        # Runs of one config are shared (tests/program_runs.py). One program run at a time in this process:
        # each real `pulumi up` is a process of its own, while the mocked SDK's first imports and the
        # run store are not safe from two threads at once (a wave's stacks update in parallel).
        with PROGRAM_RUN_LOCK:
            run = shared_run(self.name, config)
        if run.error is not None:
            self.record(message or "", "failed", config=config)
            if isinstance(run.error, StackConfigRejected):
                # The program logged its report and exited 32: the language host bails, the engine adds nothing.
                raise create_command_error(CommandResult(stdout=CONFIG_REJECTED_STDOUT.format(
                    stack=self.name, report=run.error.report.replace("\n", "\n    ")), stderr="", code=255))
            raise create_command_error(CommandResult(
                stdout=f"Updating ({self.name})\n error: an unhandled error occurred: {run.error}", stderr="", code=255))
        # The update moved resources towards this config, whatever happens next (worst case).
        self._move_live(message or "", config, run, "succeeded" if outcome == "ok" else "failed")
        if outcome == "fail":
            self.record(message or "", "failed", config=config)
            raise create_command_error(CommandResult(stdout=UPDATE_FAILED_STDOUT.format(stack=self.name),
                                                     stderr="", code=255))
        if outcome == "interrupt":
            self.record(message or "", "failed", config=config)
            # Ctrl-C mid-update reaches the caller and the CLI alike (one process group).
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                # The caller let it out of up(): Popen.__exit__ closes the CLI's pipes within 0.25 s,
                # and the CLI, still cancelling, dies of SIGPIPE on its next line: it never releases
                # the lock (until `pulumi cancel`).
                self.locked_by, self.refusals_until_unlocked = "a cancelled update whose CLI died", None
                raise
            # The caller's handler returned: the CLI finishes cancelling and releases the lock.
            raise create_command_error(CommandResult(stdout=CANCELLED_STDOUT.format(stack=self.name), stderr="",
                                                     code=255))
        self.record(message or "", "succeeded", config=config)
        self._outputs = run.outputs
        return UpResult(stdout="", stderr="", summary=self.summaries[-1],
                        outputs={k: OutputValue(v, k == "kubeconfig") for k, v in self._outputs.items()})

    def tracked(self, run: Any) -> list[tuple[Any, str, dict[str, Any]]]:
        """(resource, "Kind/name", inputs) of what `changes` follows: the Kubernetes objects."""
        return [(r, f"{r.inputs['kind']}/{r.inputs['metadata']['name']}", r.inputs) for r in run.kubernetes_objects()]

    def _move_live(self, message: str, config: dict[str, Any], run: Any, result: str) -> None:
        objects: dict[str, dict[str, Any]] = {}
        dependencies: dict[str, list[str]] = {}
        by_urn = {}
        for resource, key, inputs in self.tracked(run):
            objects[key] = inputs
            by_urn[resource.urn] = key
            dependencies[key] = resource.dependencies
        changed = []
        for key, inputs in objects.items():
            before = self._live_objects.get(key)
            fields = tuple(sorted(_differences(before or {}, inputs)))
            if before is None or fields:
                depends = tuple(by_urn[u] for u in dependencies[key] if u in by_urn)
                changed.append(ObjectChange(key, "create" if before is None else "update", fields, depends))
        changed += [ObjectChange(key, "delete", (), ()) for key in self._live_objects if key not in objects]
        self._live_objects = objects
        self.live = config
        self.applied.append((message, config, result))
        self.changes.append(changed)


def _differences(before: dict[str, Any], after: dict[str, Any], prefix: str = "", depth: int = 2) -> list[str]:
    """Paths (to `depth` levels) whose values differ: ("spec.replicas", "metadata.annotations")."""
    out = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        path = f"{prefix}{key}"
        if depth > 1 and isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{path}.", depth - 1)
        else:
            out.append(path)
    return out


def deployed(name: str, config: dict[str, Any], message: str = "initial deploy",
             backend: str = SELF_MANAGED) -> FakeStack:
    stack = FakeStack(name, config, backend=backend)
    stack.up(message=message)
    return stack


def answers_at_weight(prober: Any, duration: float, on_tick: Any) -> None:
    """A stand-in for Prober.run where probing is not the point: 200 good answers, the canary's
    share exactly its weight, fed to the step's judge as the probes would."""
    judge = prober.judge
    for i in range(200):
        judge.observe(judge.canary_version if i % 100 < judge.weight else "stable", True, 0.01, at=1000.0)
    return None


class OutputsLiveReader:
    """Stands in for operations.live_weight's readers over a FakeStack: the stand-in applies an update at
    once, so what its outputs carry is what is live (the real readers ask the load balancer, Route53 or
    the API server, and are tested against moto, a loopback API and a real control plane)."""

    def __init__(self, stack: Any, release: str):
        self.stack, self.release = stack, release

    def read(self, weight: int, share: float) -> Any:
        from operations.live_weight import LiveWeight

        info = (self.stack.outputs()["releases"].value or {}).get(self.release) or {}
        live, effective = info.get("requestedWeight"), info.get("effectiveWeight")
        return LiveWeight(live == weight, effective, f"stand-in outputs: weight {live}%, share {effective}%")


def outputs_live_reader(stack: Any, config: Any, release: Any) -> OutputsLiveReader:
    """operations.step_checks.live_reader's stand-in (same arguments)."""
    return OutputsLiveReader(stack, release.name)

