"""Stacks through the Pulumi Automation API, and what their config and history say about releases.

Everything here works on any object with the interface of `pulumi.automation.Stack`
(history, get_all_config, set_config, remove_config, outputs, up), so the decisions are
tested against a stand-in with real `UpdateSummary` objects.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from components.config import DEFAULT_IMAGE, StackConfig, parse_config_value

PROJECT = "app-update"
RELEASES_KEY = f"{PROJECT}:releases"
PROTECTED_KEY = f"{PROJECT}:protected"
INSTALL_HINT = ("the Pulumi CLI is not installed or not on PATH: install it with "
                "`curl -fsSL https://get.pulumi.com | sh` (https://www.pulumi.com/docs/install/), then `pulumi login`")

# The settings a revision records per release that undo restores.
RESTORABLE = ("tag", "replicas", "stable.tag", "stable.replicas", "canary.tag", "canary.weight", "canary.replicas")


class OperationError(Exception):
    """A refused or impossible operation, with the reason for the operator."""


class StackLike(Protocol):
    name: str

    def history(self, page_size: int | None = None, page: int | None = None,
                show_secrets: bool = True) -> list[Any]: ...
    def get_all_config(self) -> dict[str, Any]: ...
    def set_config(self, key: str, value: Any, *, path: bool = False) -> None: ...
    def remove_config(self, key: str, *, path: bool = False) -> None: ...
    def outputs(self) -> dict[str, Any]: ...
    def up(self, **kwargs: Any) -> Any: ...


def open_stack(name: str, project_dir: Path) -> StackLike:
    """Select an existing stack of the project through the Automation API (needs the Pulumi CLI)."""
    import pulumi.automation as auto

    try:
        return auto.select_stack(stack_name=name, work_dir=str(project_dir))
    except FileNotFoundError:
        raise OperationError(INSTALL_HINT) from None
    except auto.StackNotFoundError:
        raise OperationError(f"stack {name} does not exist in the backend you are logged into "
                             f"(`pulumi stack ls`; create it with `pulumi stack init {name}`)") from None


# ---------------------------------------------------------------------------------------------
# Reading config and history
# ---------------------------------------------------------------------------------------------


def releases_of(config: dict[str, Any]) -> dict[str, Any] | None:
    """The `app-update:releases` mapping of a config map; None when absent or secret."""
    if RELEASES_KEY not in config:
        return None
    if getattr(config[RELEASES_KEY], "secret", False):
        return None
    value = parse_config_value(config[RELEASES_KEY])
    return value if isinstance(value, dict) else None


def is_protected(config: dict[str, Any]) -> bool:
    return str(parse_config_value(config.get(PROTECTED_KEY, "false"))).lower() == "true"


@dataclass(frozen=True)
class Revision:
    number: int
    kind: str
    result: str
    message: str
    start_time: datetime | None
    releases: dict[str, Any] | None

    @property
    def succeeded(self) -> bool:
        return self.result == "succeeded"


def revisions(stack: StackLike) -> list[Revision]:
    """The stack's updates, newest first. Secrets stay hidden ("[secret]")."""
    out = []
    for summary in stack.history(show_secrets=False):
        out.append(Revision(number=summary.version or 0, kind=summary.kind, result=summary.result,
                            message=summary.message or "", start_time=summary.start_time,
                            releases=releases_of(summary.config)))
    return sorted(out, key=lambda r: r.number, reverse=True)


def get_path(mapping: dict[str, Any], path: str) -> Any:
    node: Any = mapping
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def describe(release: dict[str, Any]) -> str:
    """One line of what a release runs: `repo:v1 ×5`, `repo stable v1 ×2 + canary v2 ×2`,
    `repo stable v1 + canary v2 @5% (4 pods)`."""
    image = release.get("image", DEFAULT_IMAGE)
    if "stable" in release or "canary" in release:
        stable, canary = release.get("stable") or {}, release.get("canary") or {}
        if "weight" in canary or "replicas" in release:
            text = f"{image} stable {stable.get('tag')} + canary {canary.get('tag')} @{canary.get('weight', 0)}%"
            return f"{text} ({release.get('replicas')} pods)" if release.get("replicas") is not None else text
        return (f"{image} stable {stable.get('tag')} ×{stable.get('replicas')} "
                f"+ canary {canary.get('tag')} ×{canary.get('replicas')}")
    return f"{image}:{release.get('tag')} ×{release.get('replicas', 1)}"


# ---------------------------------------------------------------------------------------------
# Changes to config
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    release: str
    field: str
    old: Any
    new: Any  # None: remove the setting

    @property
    def key(self) -> str:
        return f"{RELEASES_KEY}.{self.release}.{self.field}"

    def line(self) -> str:
        old = "(unset)" if self.old is None else self.old
        new = "(unset)" if self.new is None else self.new
        return f"  {self.release}.{self.field}: {old} → {new}"


def apply_changes(releases: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    """A copy of the releases mapping with the changes made (to validate before writing)."""
    result = json.loads(json.dumps(releases))
    for change in changes:
        node = result.setdefault(change.release, {})
        *parents, leaf = change.field.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if change.new is None:
            node.pop(leaf, None)
        else:
            node[leaf] = change.new
    return result


def check_config(stack: str, config: dict[str, Any], releases: dict[str, Any]) -> StackConfig:
    """The stack's config with `releases` in place, validated; refuses changes that would make it invalid."""
    from components.config import ConfigError, split_namespaces, validate

    flat = {key: parse_config_value(value) for key, value in config.items()}
    flat[RELEASES_KEY] = releases
    own, other = split_namespaces(flat)
    try:
        return validate(own, stack, other)
    except ConfigError as error:
        raise OperationError("the change would make the stack's config invalid:\n" + str(error)) from None


def write_changes(stack: StackLike, changes: list[Change]) -> None:
    from pulumi.automation import ConfigValue

    for change in changes:
        if change.new is None:
            stack.remove_config(change.key, path=True)
        else:
            # With path=True the CLI stores integers as numbers and true/false as booleans.
            stack.set_config(change.key, ConfigValue(value=str(change.new)), path=True)


def stream(line: str) -> None:
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()
