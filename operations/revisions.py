"""`rollout history | undo | status | promote`: kubectl rollout's verbs over Pulumi stacks.

history  each past update of a stack: revision, time, result, what every release ran, and
         the update message as the change cause (what `kubectl rollout history` shows).
         Revisions are numbered 1 = oldest over the stack's whole history (stacks.revisions),
         on self-managed backends too, where Pulumi leaves every update's version at 0.
undo     restore the tags, weights and replicas a revision recorded and update the stack.
status   what a stack runs now: addresses, images per track, canary weight, last update.
promote  lives in operations/promotion.py; these are the pieces it shares (running_tags,
         promote_changes, preflight_ok).
"""

from __future__ import annotations

import argparse
from typing import Any

from model.config import StackConfig
from model.stack_file import stack_name
from operations import live_state, stacks
from operations.stacks import Change, OperationError, Revision, StackLike

Confirm = stacks.Confirm


# ---------------------------------------------------------------------------------------------
# Decisions (pure: tested against a stand-in stack)
# ---------------------------------------------------------------------------------------------


def history_rows(revs: list[Revision], release: str | None = None) -> list[dict[str, Any]]:
    rows = []
    for rev in sorted(revs, key=lambda r: r.number):
        if rev.releases is None:
            runs = {"*": "[secret]"} if rev.kind == "update" else {}
        else:
            runs = {name: stacks.describe(cfg) for name, cfg in sorted(rev.releases.items())
                    if release is None or name == release}
        rows.append({
            "revision": rev.number, "time": rev.start_time.isoformat(sep=" ", timespec="seconds") if rev.start_time else "",
            "kind": rev.kind, "result": rev.result, "releases": runs, "changeCause": rev.message,
        })
    return rows


def number_ranges(numbers: list[int]) -> str:
    """`1-3, 5, 7-14`: a list of revision numbers that stays short on a long history."""
    spans: list[list[int]] = []
    for n in sorted(set(numbers)):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}, {b}" if b == a + 1 else f"{a}-{b}" for a, b in spans)


def undo_target(revs: list[Revision], to_revision: int | None) -> Revision:
    updates = sorted((r for r in revs if r.kind == "update"), key=lambda r: r.number, reverse=True)
    if not updates:
        raise OperationError("the stack has no updates to go back to")
    if to_revision is None:
        earlier = [r for r in updates[1:] if r.succeeded]
        if not earlier:
            raise OperationError(f"no successful update before revision {updates[0].number} to go back to")
        return earlier[0]
    other = [r for r in revs if r.number == to_revision and r.kind != "update"]
    if other:
        raise OperationError(f"revision {to_revision} is a {other[0].kind}, not an update: undo goes back to what "
                             "an update applied")
    match = [r for r in updates if r.number == to_revision]
    if not match:
        raise OperationError(f"revision {to_revision} does not exist (update revisions: "
                             f"{number_ranges([r.number for r in updates])})")
    target = match[0]
    if not target.succeeded:
        raise OperationError(f"revision {to_revision} {target.result}: undo only goes back to a successful update")
    return target


def undo_changes(target: Revision, current: dict[str, Any], release: str | None = None) -> list[Change]:
    """The settings to restore so each release runs what it ran in `target`."""
    if target.releases is None:
        raise OperationError(f"revision {target.number} recorded no readable releases (secret or missing)")
    names = [release] if release else sorted(set(target.releases) & set(current))
    if release and release not in target.releases:
        raise OperationError(f"release {release} did not exist in revision {target.number}")
    if release and release not in current:
        raise OperationError(f"release {release} is not in the stack's current config")
    changes = []
    for name in names:
        then, now = target.releases[name], current[name]
        if then.get("strategy") != now.get("strategy"):
            raise OperationError(f"release {name} was {then.get('strategy')} in revision {target.number} and is "
                                 f"{now.get('strategy')} now: undo restores tags, weights and replicas, not strategies")
        for field in stacks.RESTORABLE:
            old, new = stacks.get_path(now, field), stacks.get_path(then, field)
            if old != new:
                changes.append(Change(name, field, old, new))
    if not changes:
        scope = f"release {release}" if release else "every release"
        raise OperationError(f"nothing to restore: {scope} already runs what revision {target.number} ran")
    return changes


def running_tags(outputs: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per release, the tags a stack really runs, from its `releases` output."""
    value = outputs.get("releases")
    value = getattr(value, "value", value)
    if not isinstance(value, dict):
        raise OperationError("the stack has no `releases` output: has it been deployed with `pulumi up`?")
    return {name: dict(info.get("tags") or {}) for name, info in value.items()}


def promote_changes(source: dict[str, dict[str, str]], target: dict[str, Any], release: str | None,
                    source_name: str, target_name: str) -> list[Change]:
    """Write what the source runs into the target's tags; a canary promotes its stable track."""
    names = [release] if release else sorted(set(source) & set(target))
    if release and release not in source:
        raise OperationError(f"release {release} does not run in stack {source_name}")
    if release and release not in target:
        raise OperationError(f"release {release} is not in stack {target_name}'s config")
    if not names:
        raise OperationError(f"stacks {source_name} and {target_name} have no release in common")
    changes = []
    for name in names:
        tags = source[name]
        tag = tags.get("app") or tags.get("stable")
        if not tag:
            raise OperationError(f"stack {source_name} reports no tag for release {name}")
        field = "stable.tag" if "stable" in target[name] or "canary" in target[name] else "tag"
        current = stacks.get_path(target[name], field)
        if current != tag:
            changes.append(Change(name, field, current, tag))
    if not changes:
        raise OperationError(f"nothing to promote: {target_name} already runs what {source_name} runs")
    return changes


# ---------------------------------------------------------------------------------------------
# Verbs
# ---------------------------------------------------------------------------------------------


def _apply(stack: StackLike, name: str, changes: list[Change], message: str, *, yes: bool,
           confirm: Confirm, protected: bool) -> int:
    print(f"Changes to stack {name}{' (protected)' if protected else ''}:")
    for change in changes:
        print(change.line())
    if not yes:
        # A protected stack (prod) wants its name typed, not just a "y".
        if not confirm(f"Update stack {name} with message {message!r}?", name if protected else None):
            print("not confirmed: nothing was changed (pass --yes to skip the question)")
            return 1
    stacks.write_changes(stack, changes)
    print(f"Updating {name}: {message}")
    # A failed update raises (CommandError); `guarded` turns it into one `error:` line.
    stacks.update(stack, message, on_output=stacks.stream)
    print(f"{name}: update succeeded")
    return 0


HISTORY_COLUMNS = ("REVISION", "TIME", "RESULT", "RELEASES", "CHANGE-CAUSE")
COLUMN_GAP = "  "


def history_table(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as a table whose columns never run together: each column as wide as its widest
    cell, two spaces between columns, one release per line (a row with several releases takes
    several lines, the change cause on the first)."""
    cells = []
    for row in rows:
        runs = [f"{name}: {text}" for name, text in row["releases"].items()] or [f"({row['kind']})"]
        cause = " ".join(str(row["changeCause"]).split())  # a multi-line message stays on its row
        cells.append(([str(row["revision"]), row["time"], row["result"], runs[0], cause], runs[1:]))
    widths = [len(title) for title in HISTORY_COLUMNS[:-1]]
    for first, more in cells:
        for i, cell in enumerate(first[:-1]):
            widths[i] = max(widths[i], len(cell))
        for run in more:
            widths[3] = max(widths[3], len(run))

    def line(values: list[str]) -> str:
        cells = [v.ljust(w) for v, w in zip(values[:-1], widths, strict=True)]
        return COLUMN_GAP.join([*cells, values[-1]]).rstrip()

    lines = [line(list(HISTORY_COLUMNS))]
    for first, more in cells:
        lines.append(line(first))
        lines += [line(["", "", "", run, ""]) for run in more]
    return lines


def do_history(stack: StackLike, release: str | None, as_json: bool, last: int | None = None) -> int:
    import json

    rows = history_rows(stacks.revisions(stack), release)
    left_out = max(len(rows) - last, 0) if last else 0
    omitted, rows = [row["revision"] for row in rows[:left_out]], rows[left_out:]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"stack {stack.name} has no updates yet")
        return 0
    print("\n".join(history_table(rows)))
    if left_out:
        print(f"({left_out} older update{'s' if left_out != 1 else ''} not shown: revisions "
              f"{number_ranges(omitted)}; run without --last to see every update)")
    return 0


def do_undo(stack: StackLike, to_revision: int | None, release: str | None, yes: bool, confirm: Confirm) -> int:
    config = stack.get_all_config()
    current = stacks.releases_of(config)
    if current is None:
        raise OperationError("the stack's config has no readable app-update:releases")
    target = undo_target(stacks.revisions(stack), to_revision)
    current, stale = live_state.prefer_live(stack, current, release, "undo")  # never a silent rollback
    changes = undo_changes(target, current, release)
    stacks.check_config(stack.name, config, stacks.apply_changes(current, changes))
    return _apply(stack, stack.name, stale + changes, f"undo to revision {target.number}", yes=yes, confirm=confirm,
                  protected=stacks.is_protected(config))


def weight_set_by(revs: list[Revision], release: str, weight: Any) -> Revision | None:
    """The successful update that put the canary at `weight`: the oldest of the newest run of
    successful updates that all had that weight."""
    found = None
    for rev in sorted(revs, key=lambda r: r.number, reverse=True):
        if rev.kind != "update" or not rev.succeeded:
            continue
        cfg = (rev.releases or {}).get(release)
        if cfg is None or stacks.get_path(cfg, "canary.weight") != weight:
            break
        found = rev
    return found


def canary_flags(stack_name: str, releases: dict[str, Any], config: dict[str, Any] | None,
                 revs: list[Revision]) -> dict[str, list[str]]:
    """Per canary release, what an operator must know: traffic on a canary nobody promoted,
    config that no successful update applied, a weight step left half-way."""
    flags: dict[str, list[str]] = {}
    for name, info in sorted(releases.items()):
        if info.get("strategy") != "Canary":
            continue
        lines = []
        share = float(info.get("effectiveWeight") or 0)
        requested = info.get("requestedWeight")
        finish = f"send it back with: python -m rollout abort {stack_name} --release {name}"
        if share > 0:
            tags = info.get("tags") or {}
            text = f"canary {tags.get('canary')} carries {share:g}% of traffic"
            setter = weight_set_by(revs, name, requested) if requested is not None else None
            if setter is not None:
                when = setter.start_time.isoformat(sep=" ", timespec="seconds") if setter.start_time else "?"
                text += f" since revision {setter.number} ({when}, {setter.message!r})"
            lines.append(f"{text}; {finish}" if requested is not None else text)
        cfg = (config or {}).get(name)
        if cfg is not None:
            weight = stacks.get_path(cfg, "canary.weight")
            if requested is not None and weight is not None and weight != requested:
                lines.append(f"config holds canary.weight {weight}, which no successful update applied "
                             f"(live: {requested}); {finish}")
            if stacks.get_path(cfg, "canary.podsForWeight") is not None:
                lines.append(f"a weight step was left half-way (canary.podsForWeight "
                             f"{stacks.get_path(cfg, 'canary.podsForWeight')}); {finish}")
        if lines:
            flags[name] = lines
    return flags


def do_status(stack: StackLike, as_json: bool, leases: dict[str, dict[str, Any]] | None = None) -> int:
    import json

    outputs = stack.outputs()
    value = outputs.get("releases")
    releases = getattr(value, "value", value) or {}
    revs = stacks.revisions(stack)
    last = revs[:1]
    flags = canary_flags(stack.name, releases, stacks.releases_of(stack.get_all_config()), revs)
    status = {
        "stack": stack.name,
        "lastUpdate": history_rows(last)[0] if last else None,
        "releases": {
            name: {
                "strategy": info.get("strategy"), "address": info.get("address") or None,
                "images": info.get("images"), "replicas": info.get("replicas"),
                "traffic": info.get("traffic"), "effectiveWeight": info.get("effectiveWeight"),
                "flags": flags.get(name, []), "lease": (leases or {}).get(name),
            }
            for name, info in sorted(releases.items())
        },
    }
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    if last:
        row = status["lastUpdate"]
        print(f"stack {stack.name}: revision {row['revision']} {row['result']} at {row['time']} ({row['changeCause']})")
    else:
        print(f"stack {stack.name}: never updated")
    for name, info in status["releases"].items():
        print(f"  {name}  {info['strategy']}  {info['address'] or '(no address yet)'}")
        for track, image in (info["images"] or {}).items():
            count = (info["replicas"] or {}).get(track)
            print(f"    {track:<8}{image}" + (f" × {count}" if count is not None else ""))
        if info["effectiveWeight"] is not None:
            print(f"    weight  {info['effectiveWeight']:g}% to canary (traffic: {info['traffic']})")
        if info["lease"]:
            print(f"    lease   {info['lease']['line']}")
        for flag in info["flags"]:
            print(f"    ! {flag}")
    return 0


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def cmd_history(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: do_history(stacks.open_stack(args.stack, args.cwd), args.release, args.json,
                                             args.last))


def cmd_status(args: argparse.Namespace) -> int:
    def action() -> int:
        from operations import lease

        stack = stacks.open_stack(args.stack, args.cwd)
        value = stack.outputs().get("releases")
        return do_status(stack, args.json, lease.status_of(stack, args.cwd, sorted(getattr(value, "value", value) or {})))

    return stacks.guarded(action)


def cmd_undo(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: do_undo(stacks.open_stack(args.stack, args.cwd), args.to_revision, args.release,
                                args.yes, stacks.confirm_tty))


def preflight_ok(config: StackConfig) -> bool:
    """TO's preflight checks, printed; True when it uses no AWS."""
    from operations import preflight

    if not preflight.uses_aws(config):
        return True
    return preflight.print_checks(preflight.run_checks(config))


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a revision number (got {text!r})")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a number of updates, 1 or more (got {text!r})")
    return int(text)


def register(verbs: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    needs = ("Needs the Pulumi CLI and a login to the stack's backend (for the local file backend: "
             "PULUMI_BACKEND_URL=file://<dir> and PULUMI_CONFIG_PASSPHRASE).")

    history = verbs.add_parser("history", formatter_class=fmt, help="list a stack's updates with what each release ran",
                               description="One row per update of the stack, from the Pulumi stack history: revision, "
                                           "time, result, each release's tags (both tracks and the weight for a canary) "
                                           "and the update message as the change cause. Every update is shown, the "
                                           "whole history read page by page; revisions are numbered 1 = the oldest "
                                           "(on self-managed backends too, where Pulumi leaves versions at 0), the "
                                           "numbers `undo --to-revision` takes. " + needs,
                               epilog="example:\n  python -m rollout history dev --release app-rolling\n"
                                      "  python -m rollout history prod --last 20")
    history.add_argument("stack", type=stack_name)
    history.add_argument("--release", metavar="NAME", help="only this release")
    history.add_argument("--last", type=_count, metavar="N",
                         help="only the newest N updates (and how many older ones were left out)")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)

    undo = verbs.add_parser("undo", formatter_class=fmt, help="go back to what an earlier revision ran",
                            description="Restore the tags, weights and replicas a revision recorded (default: the last "
                                        "successful update before the current one), show the change, ask, and update "
                                        "the stack with the message `undo to revision N`. On a BlueGreen release (--release, no "
                                        "--to-revision) it switches the active Service back to the other color: in "
                                        "one update that starts no pod while that color is at full size, else after "
                                        "scaling it up; only to a color that served its tag. " + needs,
                            epilog="example:\n  python -m rollout undo dev --to-revision 1 --release app-rolling")
    undo.add_argument("stack", type=stack_name)
    undo.add_argument("--to-revision", type=_positive, metavar="N")
    undo.add_argument("--release", metavar="NAME", help="only this release")
    undo.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    undo.set_defaults(func=cmd_undo)

    status = verbs.add_parser("status", formatter_class=fmt, help="what a stack runs now",
                              description="Service addresses, images per track, effective canary weight, and the last "
                                          "update's time and result, from the stack's outputs and history. " + needs,
                              epilog="example:\n  python -m rollout status staging")
    status.add_argument("stack", type=stack_name)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
