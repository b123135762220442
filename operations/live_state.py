"""Live state wins over a stale stack file: compare a release's tags and weight in the stack's
config (the local `Pulumi.<stack>.yaml`) with what the stack's outputs say is live.

The config a verb writes lives in the checkout's stack file; the outputs are what the last
successful update applied. They differ when a CI run promoted a canary and its stack-file change
is not merged yet, or a colleague updated the stack from another checkout. A verb that writes the
file's values back would silently roll a track back. So before their first write, `rollout
canary`, `abort`, `undo` and `promote` take the live values for every field they do not mean to
change, write them, and say so in one line (`Drift.line`), or refuse where that is not safe.

Every release of the stack is compared (an update applies the whole file, so a stale line about
another release would roll that one back too), per release (the outputs' `tags` and `requestedWeight`): `tag` (Recreate, RollingUpdate),
`stable.tag`, `canary.tag` and `canary.weight` (Canary), `active`, `<color>.tag` and a color scaled to
0 (BlueGreen). Other replica counts and settings are not in the outputs: the file stays the truth for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operations import stacks
from operations.stacks import Change, StackLike


@dataclass(frozen=True)
class Drift:
    release: str
    field: str
    file: Any
    live: Any

    def change(self) -> Change:
        return Change(self.release, self.field, self.file, self.live)

    def text(self) -> str:
        return f"{self.field} {self.file} in the file, {self.live} live"


def live_releases(stack: StackLike) -> dict[str, Any]:
    """The `releases` output (per release: tags, requestedWeight, effectiveWeight, ...); {} if none."""
    value = stack.outputs().get("releases")
    value = getattr(value, "value", value)
    return value if isinstance(value, dict) else {}


def live_values(info: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """Field → live value, for the fields the outputs say something about."""
    tags = info.get("tags") or {}
    if info.get("strategy") == "BlueGreen" or "active" in cfg:
        # The active color, each deployed color's tag, and a color scaled down live (a file that says
        # "full size" there would start its pods again); a color live at full size is left to the file.
        values = {"active": info.get("activeColor")}
        replicas = info.get("replicas") or {}
        for color, tag in tags.items():
            values[f"{color}.tag"] = tag
            if replicas.get(color) == 0:
                values[f"{color}.replicas"] = 0
        return {k: v for k, v in values.items() if v is not None}
    if "stable" in cfg or "canary" in cfg or info.get("strategy") == "Canary":
        values = {"stable.tag": tags.get("stable"), "canary.tag": tags.get("canary")}
        per_track = "replicas" in (cfg.get("canary") or {}) or "replicas" in (cfg.get("stable") or {})
        if not per_track:  # the weight form in the file (the workshop's per-track form has no weight)
            values["canary.weight"] = info.get("requestedWeight")
        return {k: v for k, v in values.items() if v is not None}
    return {"tag": tags["app"]} if tags.get("app") is not None else {}


def drift(stack: StackLike, releases: dict[str, Any], names: list[str] | None = None,
          live: dict[str, Any] | None = None) -> list[Drift]:
    """Where the config of `names` (default: every release in both) differs from what is live."""
    live = live_releases(stack) if live is None else live
    out = []
    for name in names if names is not None else sorted(set(releases) & set(live)):
        cfg, info = releases.get(name), live.get(name)
        if cfg is None or info is None:
            continue
        for field, value in live_values(info, cfg).items():
            current = stacks.get_path(cfg, field)
            if field == "canary.weight":
                current = int(current or 0)
            if current != value:
                out.append(Drift(name, field, current, value))
    return out


def line(drifts: list[Drift], verb: str) -> str:
    """The one line a verb says when it takes the live values."""
    by_release: dict[str, list[str]] = {}
    for d in drifts:
        by_release.setdefault(d.release, []).append(d.text())
    parts = "; ".join(f"{name}: {', '.join(texts)}" for name, texts in by_release.items())
    return (f"the stack file is stale ({parts}): {verb} keeps what is live for what it does not change "
            "(the stack's outputs are the truth about what runs)")


def prefer_live(stack: StackLike, releases: dict[str, Any], release: str | None, verb: str,
                say: Any = print) -> tuple[dict[str, Any], list[Change]]:
    """For undo and promote: the releases with the live values in place, and the changes that write
    them (to go first in the verb's own changes); says one line when there are any. Every release is
    compared, not only `release`: an update applies the whole stack file."""
    found = drift(stack, releases)
    if not found:
        return releases, []
    say(line(found, verb))
    changes = [d.change() for d in found]
    return stacks.apply_changes(releases, changes), changes
