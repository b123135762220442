"""Run the real `__main__.py` offline under the provider-like mocks (preview/mocks.py).

No Pulumi CLI, engine, cloud or cluster: the program runs in this process against a mock
resource monitor. What comes back is every registered resource with its parent, inputs and
outputs, the stack's exports and the warnings the program logged.
"""

from __future__ import annotations

import logging
import runpy
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.stack_file import PROJECT_DIR, cli_string, project_name, stack_settings
from preview.mocks import FAKE_REGION, RegisteredResource, as_ints, mock_classes


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
    mocks_class, monitor_class = mock_classes()
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
    added_path = str(project_dir) not in sys.path
    if added_path:
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
        outputs = as_ints(_sync_await(pulumi.Output.from_input(exported).future())) or {}
        secret_outputs = {key for key, value in exported.items()
                          if isinstance(value, pulumi.Output) and _sync_await(value.is_secret())}
    except Exception as exc:  # the program's own failure is the caller's to report
        error = exc
    finally:
        pulumi_settings.reset_options()
        if added_path and str(project_dir) in sys.path:
            sys.path.remove(str(project_dir))
    return ProgramRun(stack=stack, resources=list(monitor.registrations), outputs=outputs,
                      warnings=collector.messages, error=error, secret_outputs=secret_outputs)
