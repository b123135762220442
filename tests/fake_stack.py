"""A stand-in for `pulumi.automation.Stack`: same methods, real UpdateSummary history.

Its `up` runs the real program offline under the provider-like mocks with the stack's config
and records an UpdateSummary, so history, outputs and config move together as on a backend.
Setting config with path=True parses "true"/"false" and integers as the Pulumi CLI does.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta
from typing import Any

from pulumi.automation import ConfigValue, OutputValue, UpdateSummary, UpResult

from rollout.offline import cli_string, run_program

START = datetime(2026, 11, 1, 9, 0, 0)


def _cli_value(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text.lstrip("-").isdigit():
        return int(text)
    return text


class FakeStack:
    def __init__(self, name: str, config: dict[str, Any], secret_keys: tuple[str, ...] = ()):
        self.name = name
        self.config = copy.deepcopy(config)
        self.secret_keys = set(secret_keys)
        self.summaries: list[UpdateSummary] = []
        self._outputs: dict[str, Any] = {}
        self.up_messages: list[str] = []
        self.fail_next_up = False

    # -- history --------------------------------------------------------------------------
    def record(self, message: str, result: str = "succeeded", kind: str = "update") -> None:
        version = len(self.summaries) + 1
        config = {}
        for key, value in self.config.items():
            config[key] = {"value": cli_string(value), "secret": key in self.secret_keys}
        self.summaries.append(UpdateSummary(
            kind=kind, start_time=START + timedelta(hours=version), message=message, environment={},
            config=config, result=result, end_time=START + timedelta(hours=version, minutes=3), version=version))

    def history(self, page_size: int | None = None, page: int | None = None, show_secrets: bool = True):
        newest_first = list(reversed(self.summaries))
        if show_secrets:
            return newest_first
        hidden = []
        for s in newest_first:
            config = {k: ({"secret": True} if v.secret else {"value": v.value, "secret": False})
                      for k, v in s.config.items()}
            hidden.append(UpdateSummary(kind=s.kind, start_time=s.start_time, message=s.message, environment={},
                                        config=config, result=s.result, end_time=s.end_time, version=s.version))
        return hidden[:page_size] if page_size else hidden

    # -- config ---------------------------------------------------------------------------
    def get_all_config(self) -> dict[str, ConfigValue]:
        return {k: ConfigValue(value=cli_string(v), secret=k in self.secret_keys) for k, v in self.config.items()}

    def _walk(self, key: str):
        namespace, _, path = key.partition(":")
        top, *rest = path.split(".")
        node = self.config.setdefault(f"{namespace}:{top}", {})
        for part in rest[:-1]:
            node = node.setdefault(part, {})
        return node, rest[-1]

    def set_config(self, key: str, value: ConfigValue, *, path: bool = False) -> None:
        if not path:
            self.config[key] = value.value
            return
        node, leaf = self._walk(key)
        node[leaf] = _cli_value(value.value)

    def remove_config(self, key: str, *, path: bool = False) -> None:
        node, leaf = self._walk(key)
        node.pop(leaf, None)

    # -- updates --------------------------------------------------------------------------
    def outputs(self) -> dict[str, OutputValue]:
        return {k: OutputValue(v, k == "kubeconfig") for k, v in self._outputs.items()}

    def up(self, message: str | None = None, on_output=None, color: str | None = None, **_: Any) -> UpResult:
        self.up_messages.append(message or "")
        if on_output:
            on_output(f"Updating ({self.name})")
        run = run_program(self.name, settings=self.config)
        failed = self.fail_next_up or run.error is not None
        self.fail_next_up = False
        self.record(message or "", "failed" if failed else "succeeded")
        if not failed:
            self._outputs = run.outputs
        return UpResult(stdout="", stderr="", summary=self.summaries[-1],
                        outputs={k: OutputValue(v, False) for k, v in self._outputs.items()})


def deployed(name: str, config: dict[str, Any], message: str = "initial deploy") -> FakeStack:
    stack = FakeStack(name, config)
    stack.up(message=message)
    return stack
