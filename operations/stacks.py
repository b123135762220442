"""Stacks through the Pulumi Automation API, and what their config and history say about releases.

Everything here works on any object with the interface of `pulumi.automation.Stack`
(history, get_all_config, set_config, remove_config, outputs, up), so the decisions are
tested against a stand-in with real `UpdateSummary` objects.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from model.config import DEFAULT_IMAGE, PROJECT, StackConfig, parse_config_value

RELEASES_KEY = f"{PROJECT}:releases"
PROTECTED_KEY = f"{PROJECT}:protected"
INSTALL_HINT = ("the Pulumi CLI is not installed or not on PATH: install it with "
                "`curl -fsSL https://get.pulumi.com | sh` (https://www.pulumi.com/docs/install/), then `pulumi login`")

# The settings a revision records per release that undo restores.
RESTORABLE = ("tag", "replicas", "stable.tag", "stable.replicas", "canary.tag", "canary.weight", "canary.replicas",
              "canary.podsForWeight")


# (question, word to type or None for yes/no) -> confirmed?
Confirm = Callable[[str, "str | None"], bool]


class OperationError(Exception):
    """A refused or impossible operation, with the reason for the operator."""


class InputError(OperationError):
    """A refusal that is the input's fault (an argument the stack's config cannot take): exit 2."""


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


# Summaries per `Stack.history` call when reading a whole history: one call for most stacks.
HISTORY_PAGE_SIZE = 100
# Whole reads tried when updates keep landing while the pages are read.
HISTORY_READS = 3


def _same_update(a: Any, b: Any) -> bool:
    return (a.kind, a.start_time, a.message, a.result, a.version) == (b.kind, b.start_time, b.message, b.result,
                                                                      b.version)


def whole_history(stack: StackLike, page_size: int = HISTORY_PAGE_SIZE) -> list[Any]:
    """Every UpdateSummary of the stack, newest first, secrets hidden.

    `Stack.history()` without a page size returns only the CLI's default page (`pulumi stack
    history --page-size` defaults to 10), so this pages with `page_size`/`page` until a page comes
    back empty: both backends answer a page past the end with an empty list, and a short page is
    not proof of the end (Pulumi Cloud's answer carries its own `itemsPerPage`). Pages are counted
    from the newest update: one that finishes while they are read shifts the later pages by one,
    so when more than one page held updates, the newest is read again at the end and the whole
    read repeated if it changed.
    """
    for _ in range(HISTORY_READS):
        summaries: list[Any] = []
        page = 1
        while batch := list(stack.history(page_size=page_size, page=page, show_secrets=False)):
            summaries += batch
            page += 1
        if page <= 2:
            return summaries  # one page of updates at most: nothing could shift between pages
        head = list(stack.history(page_size=1, page=1, show_secrets=False))
        if head and _same_update(head[0], summaries[0]):
            return summaries
    raise OperationError(f"stack {stack.name}'s history kept changing while it was read (updates running "
                         "right now?): try again when they are done")


def revisions(stack: StackLike) -> list[Revision]:
    """The stack's whole history (updates, refreshes, destroys), newest first, numbered 1 = oldest
    as `kubectl rollout history` numbers revisions. Secrets stay hidden ("[secret]").

    Self-managed backends (`file://`, `s3://`) never set an update's version (the CLI's JSON says
    0 for each), so the number is the position in the whole history. Pulumi Cloud numbers every
    update, refreshes and destroys included, 1 = the first: the same numbers, so its versions are
    used as they are.
    """
    summaries = whole_history(stack)
    numbered = bool(summaries) and all((s.version or 0) > 0 for s in summaries)
    out = []
    for position, summary in enumerate(summaries):
        out.append(Revision(number=summary.version if numbered else len(summaries) - position, kind=summary.kind,
                            result=summary.result, message=summary.message or "", start_time=summary.start_time,
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
    from model.config import ConfigError, load

    try:
        return load({**config, RELEASES_KEY: releases}, stack)
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


# ---------------------------------------------------------------------------------------------
# Updates that fail the way the Automation API fails
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How hard an update is tried. A failed `up()` raises CommandError; a lock held by another
    update raises ConcurrentUpdateError before anything runs."""

    attempts: int = 3  # tries of an update that failed for a reason other than a lock
    lock_wait: float = 300.0  # seconds to wait, in all, for another update to release the lock
    pause: float = 5.0  # first pause between tries (it doubles) and between looks at the lock


# One try, no wait for a lock: undo and promote report a locked stack at once.
ONCE = RetryPolicy(attempts=1, lock_wait=0)
LOCKED = ("the stack is locked by another update: wait for it to finish, or clear a lock left by a process "
          "that died with `pulumi cancel`")


class UpdateFailed(Exception):
    """An update that did not succeed within its RetryPolicy.

    `ran` says whether an update ran at all (and so may have changed resources before it
    failed); a stack that stayed locked ran nothing.
    """

    def __init__(self, cause: str, ran: bool):
        super().__init__(cause)
        self.cause = cause
        self.ran = ran


def error_line(error: BaseException) -> str:
    """One line for the operator: the CLI's own `error:` line of a CommandError, or the exception."""
    from pulumi.automation import errors as auto_errors

    if isinstance(error, auto_errors.ConcurrentUpdateError):
        return "the stack is locked by another update"
    if isinstance(error, auto_errors.CommandError):
        # str(CommandError) is "code: N / stdout: ... / stderr: ...": take the CLI's first real `error:`
        # line, with the detail line under a generic "N error(s) occurred:".
        lines = [line.strip().removeprefix("stdout:").removeprefix("stderr:").strip() for line in str(error).splitlines()]
        for i, line in enumerate(lines):
            if not line.startswith("error:") or line == "error: update failed":
                continue
            text = line.removeprefix("error:").strip()
            if text.endswith("occurred:") and i + 1 < len(lines) and lines[i + 1].startswith("*"):
                text = lines[i + 1].lstrip("* ").strip()
            if text:
                return "pulumi: " + text
        body = [line for line in lines if line and not line.startswith("code:")]
        return "pulumi: " + (body[-1] if body else "the command failed")
    if isinstance(error, KeyboardInterrupt):
        return "interrupted by the operator"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def update(stack: StackLike, message: str, *, policy: RetryPolicy = ONCE,
           on_output: Callable[[str], None] | None = None, note: Callable[[str], None] | None = None,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """`stack.up()` within `policy`: waits out another update's lock, retries other failures.

    Raises UpdateFailed when the policy is used up; KeyboardInterrupt goes through untouched
    (the caller decides what a Ctrl-C means).
    """
    from pulumi.automation import errors as auto_errors

    from operations import interrupts

    say = note or (lambda text: None)
    waited, tries, ran = 0.0, 0, False
    while True:
        try:
            # A signal meanwhile only sets a flag (operations/interrupts.py): the CLI finishes or
            # cancels and releases the lock; then the caller's abort path runs.
            with interrupts.updating(message):
                stack.up(message=message, on_output=on_output or stream, color="never")
            interrupts.checkpoint()
            return
        except auto_errors.ConcurrentUpdateError:
            interrupts.checkpoint()
            if waited >= policy.lock_wait:
                cause = LOCKED if policy.lock_wait == 0 else (
                    f"the stack stayed locked by another update for {policy.lock_wait:g}s")
                raise UpdateFailed(cause, ran) from None
            pause = max(0.5, min(policy.pause, policy.lock_wait - waited))  # (always moves on)
            say(f"stack {stack.name} is locked by another update; waiting ({waited:g}s of {policy.lock_wait:g}s)")
            sleep(pause)
            waited += pause
        except auto_errors.CommandError as error:
            ran, tries = True, tries + 1
            interrupts.checkpoint()  # an update cancelled by the signal: no retry, the abort path
            if tries >= policy.attempts:
                raise UpdateFailed(error_line(error), ran) from None
            pause = policy.pause * 2 ** (tries - 1)
            say(f"update failed ({error_line(error)}); trying again in {pause:g}s ({tries + 1} of {policy.attempts})")
            sleep(pause)


# What every verb exits with: done, failed (one `error:` line), the input's fault, a policy said no.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_POLICY = 0, 1, 2, 3


def load_stack_file(stack: str, project_dir: Path, overrides: dict[str, Any] | None = None,
                    ) -> tuple[dict[str, Any] | None, StackConfig | None]:
    """A stack file's settings and validated config, or (None, None) after printing, one line
    each on stderr, every problem with it (the input's fault: exit EXIT_USAGE)."""
    from model.config import ConfigError, load
    from model.stack_file import StackFileError, stack_settings

    try:
        settings = stack_settings(stack, project_dir, overrides)
    except StackFileError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return None, None
    try:
        return settings, load(settings, stack)
    except ConfigError as error:
        print(error.report(stack), file=sys.stderr)  # the same text the program gives the engine
        return None, None


def confirm_tty(prompt: str, expected: str | None) -> bool:
    """Ask on the terminal; without one (CI), nothing is confirmed: pass --yes there."""
    if not sys.stdin.isatty():
        return False
    if expected is not None:
        return input(f"{prompt} Type the stack name ({expected}) to go on: ").strip() == expected
    return input(f"{prompt} [y/N] ").strip().lower() in ("y", "yes")


def guarded(action: Callable[[], int]) -> int:
    """Run a stack operation; a refusal or a failed Pulumi command is one `error:` line and exit 1."""
    try:
        return action()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OperationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except UpdateFailed as error:
        print(f"error: the update failed: {error.cause}", file=sys.stderr)
        return 1
    except Exception as error:
        # A CommandError comes from the Automation API, loaded by then: an action refused on its input never
        # pays for importing the Pulumi SDK (about 0.3 s).
        auto_errors = sys.modules.get("pulumi.automation.errors")
        if auto_errors is None or not isinstance(error, auto_errors.CommandError):
            raise
        print(f"error: {error_line(error)}", file=sys.stderr)
        return 1


def stream(line: str) -> None:
    sys.stdout.write(line if line.endswith("\n") else line + "\n")
    sys.stdout.flush()
