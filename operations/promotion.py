"""`rollout promote | verify`: promotion that carries proof, as Kargo promotes verified freight.

promote FROM TO  takes the image each release serves on FROM, pinned to its digest (FROM's release
                 record, or the registry: operations/digests.py), into TO's config, and records
                 the promotion in TO's release record (model/release_record.py) in the same update.
                 When TO asks for proof (its file has `promotion:`, or it is protected) a release
                 goes only if FROM is one of `promotion.from`, FROM verified it (a passed canary,
                 a passed blue-green check or `rollout verify`), it has soaked on FROM for TO's
                 `promotion.soak` since, and FROM has had no abort or undo of it since (its
                 history's update messages: `abort canary R`, `canary R T aborted at ...`,
                 `undo to revision N`). Each refusal is one line, exit 2; `--approve REASON`
                 promotes without the proof and records `how: approved` with the reason.
verify STACK     records that a release was checked by hand on STACK (`--reason`): the proof a
                 manual check gives, in one update that changes no resource.

A passed `rollout canary` records `how: canary` with its verdict and evidence through
`record_canary` (one update after the run, nothing else changed).
"""

from __future__ import annotations

import argparse
import getpass
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from model.config import PROJECT, StackConfig, parse_config_value
from model.release_record import VERIFIED, split_tag
from model.stack_file import stack_name
from operations import digests, live_state, revisions, stacks
from operations.stacks import Change, InputError, OperationError, Revision, StackLike

VERIFICATION_KEY = f"{PROJECT}:verification"
Resolve = Callable[[str, str], str]


def utc_now() -> datetime:
    return datetime.now(UTC)


def actor() -> str:
    """Who is doing it: the GitHub actor and run in CI, user@host elsewhere."""
    if os.environ.get("GITHUB_ACTOR"):
        run = (f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/{os.environ.get('GITHUB_REPOSITORY', '')}"
               f"/actions/runs/{os.environ.get('GITHUB_RUN_ID', '')}")
        return f"{os.environ['GITHUB_ACTOR']} ({run})"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def release_records(outputs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A stack's `releaseRecords` output ({} for a stack last updated before it existed)."""
    value = outputs.get("releaseRecords")
    value = getattr(value, "value", value)
    return value if isinstance(value, dict) else {}


def next_revision(revs: list[Revision]) -> int:
    return max((r.number for r in revs), default=0) + 1


def parse_time(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def undone_after(revs: list[Revision], release: str, revision: int) -> Revision | None:
    """The first update after `revision` that aborted or undid the release on the stack."""
    for rev in sorted(revs, key=lambda r: r.number):
        if rev.number <= revision or rev.kind != "update":
            continue
        text = rev.message
        if (text.startswith("undo to revision") or text.startswith(f"abort canary {release}")
                or (text.startswith(f"canary {release} ") and " aborted at " in text)):
            return rev
    return None


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def source_problems(source: str, target: str, target_config: StackConfig) -> list[str]:
    """Whether `target` takes releases from `source` at all (--approve does not change it)."""
    if target_config.promotion_from and source not in target_config.promotion_from:
        return [f"stack {target} takes releases only from {', '.join(target_config.promotion_from)} "
                f"({PROJECT}:promotion.from), not from {source}"]
    if not target_config.promotion_from:
        return [f"stack {target} is protected but its file does not say which stacks it takes releases from: set "
                f"{PROJECT}:promotion.from (and promotion.soak)"]
    return []


def proof_problems(source: str, target: str, target_config: StackConfig, release: str, record: dict[str, Any] | None,
                   source_revisions: list[Revision], now: datetime) -> list[str]:
    """Why `release` may not go from `source` to `target` without --approve (empty: it may)."""
    problems = source_problems(source, target, target_config)
    if problems:
        return problems
    verification = (record or {}).get("verification") or {"how": "manual"}
    how = verification.get("how")
    if how not in VERIFIED or (how in ("canary", "bluegreen") and verification.get("verdict") != "passed"):
        got = f"{how} from {verification.get('from')}" if how in ("promotion", "approved") else how
        return [f"release {release} has no proof of verification on {source} (its record says: {got}): verify it "
                f"there (a canary, or `python -m rollout verify {source} --release {release} --reason TEXT`), or "
                f"pass --approve REASON"]
    problems = []
    at = parse_time(verification.get("at"))
    soak = target_config.promotion_soak
    if at is None:
        problems.append(f"release {release}'s verification on {source} has no readable time ({verification.get('at')!r})")
    elif now - at < timedelta(seconds=soak):
        problems.append(f"release {release} has soaked on {source} for {_duration((now - at).total_seconds())} of the "
                        f"{_duration(soak)} {target} requires ({PROJECT}:promotion.soak): promote it after "
                        f"{(at + timedelta(seconds=soak)).isoformat(timespec='seconds')}")
    undone = undone_after(source_revisions, release, int(verification.get("revision") or 0))
    if undone is not None:
        problems.append(f"release {release} was verified on {source} in revision {verification.get('revision')} but "
                        f"revision {undone.number} came after it ({undone.message!r}): verify it again")
    return problems


@dataclass(frozen=True)
class Promotion:
    changes: list[Change]
    records: dict[str, dict[str, Any]]  # release -> the verification record TO gets


def plan_promotion(source: StackLike, target: StackLike, release: str | None, *, approve: str | None,
                   allow_tag: bool, resolve: Resolve, now: datetime, by: str) -> tuple[Promotion, StackConfig]:
    """What promote would write into TO, every refusal checked first (InputError: all of them)."""
    config = target.get_all_config()
    current = stacks.releases_of(config)
    if current is None:
        raise OperationError(f"stack {target.name}'s config has no readable {PROJECT}:releases")
    current, stale = live_state.prefer_live(target, current, release, "promote")  # never a silent rollback
    target_config = stacks.check_config(target.name, config, current)
    outputs = source.outputs()
    running = revisions.running_tags(outputs)
    records = release_records(outputs)
    names = [release] if release else sorted(set(running) & set(current))
    # The digest each release serves on FROM: its record's, else the registry's answer now.
    pinned: dict[str, dict[str, str]] = {}
    for name in names:
        if name not in running or name not in current:
            continue
        tags = dict(running[name])
        track = "app" if "app" in tags else "stable"
        tag = tags.get(track) or ""
        if tag and "@" not in tag:
            digest = (records.get(name) or {}).get("digest")
            image = ((records.get(name) or {}).get("image") or "").rsplit("@", 1)[0]
            if not digest:
                base = _image_of(current[name], outputs, name)
                if allow_tag:
                    print(f"  {name}: promoting tag {tag} unpinned (--allow-tag)")
                else:
                    digest = resolve(base, tag)
            elif image and not image.endswith(f":{tag}"):
                digest = None  # a record of another tag: never pin a digest to the wrong tag
            if digest:
                tags[track] = f"{split_tag(tag)[0]}@{digest}"
        pinned[name] = tags
    changes = revisions.promote_changes({**running, **pinned}, current, release, source.name, target.name)
    source_revs = stacks.revisions(source)
    needs_proof = bool(target_config.promotion_from) or target_config.protected
    problems = []
    if needs_proof and approve is not None:
        problems = source_problems(source.name, target.name, target_config)
    for name in sorted({c.release for c in changes}):
        if needs_proof and approve is None:
            problems += proof_problems(source.name, target.name, target_config, name, records.get(name), source_revs,
                                       now)
    if problems:
        raise InputError("\n".join(problems) if len(problems) == 1 else
                         f"{len(problems)} problems, nothing was changed:\n" + "\n".join(problems))
    promoted = stacks.apply_changes(current, changes)
    promoted_config = stacks.check_config(target.name, config, promoted)
    revision = next_revision(stacks.revisions(target))
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({c.release for c in changes}):
        release_cfg = promoted_config.release(name)
        image = release_cfg.images().get("app") or release_cfg.images().get("stable") or ""
        source_record = (records.get(name) or {}).get("verification") or {}
        out[name] = {"how": "approved" if approve is not None else "promotion", "image": image, "revision": revision,
                     "from": source.name, "fromRevision": next_revision(source_revs) - 1, "at": _iso(now), "by": by}
        if approve is not None:
            out[name]["reason"] = approve
        elif source_record.get("how") in VERIFIED:
            out[name]["evidence"] = (f"{source_record.get('how')} on {source.name} in revision "
                                     f"{source_record.get('revision')} at {source_record.get('at')}")
    return Promotion(stale + changes, out), promoted_config


def _image_of(release_cfg: dict[str, Any], outputs: dict[str, Any], name: str) -> str:
    value = outputs.get("releases")
    info = (getattr(value, "value", value) or {}).get(name) or {}
    images = info.get("images") or {}
    ref = images.get("app") or images.get("stable") or ""
    if ref:
        return ref.split("@", 1)[0].rsplit(":", 1)[0]
    from model.config import DEFAULT_IMAGE

    return str(release_cfg.get("image") or DEFAULT_IMAGE)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def write_records(stack: StackLike, records: dict[str, dict[str, Any]]) -> None:
    """Each release's verification record into the stack's config, replacing the one before."""
    from pulumi.automation import ConfigValue

    present = parse_config_value(stack.get_all_config().get(VERIFICATION_KEY)) or {}
    for name, record in records.items():
        if name in present:
            stack.remove_config(f"{VERIFICATION_KEY}.{name}", path=True)
        for key, value in record.items():
            stack.set_config(f"{VERIFICATION_KEY}.{name}.{key}", ConfigValue(value=str(value)), path=True)


def apply(stack: StackLike, changes: list[Change], records: dict[str, dict[str, Any]], message: str, *, yes: bool,
          confirm: stacks.Confirm, protected: bool) -> int:
    """Show, ask, write the changes and the records, update: one update records what it did."""
    print(f"Changes to stack {stack.name}{' (protected)' if protected else ''}:")
    for change in changes:
        print(change.line())
    for name, record in records.items():
        print(f"  {name}: recorded as {record['how']}" + (f" from {record['from']}" if record.get("from") else "")
              + (f" ({record['reason']})" if record.get("reason") else ""))
    if not yes and not confirm(f"Update stack {stack.name} with message {message!r}?",
                               stack.name if protected else None):
        print("not confirmed: nothing was changed (pass --yes to skip the question)")
        return 1
    stacks.write_changes(stack, changes)
    write_records(stack, records)
    print(f"Updating {stack.name}: {message}")
    stacks.update(stack, message, on_output=stacks.stream)
    print(f"{stack.name}: update succeeded")
    return 0


def do_promote(source: StackLike, target: StackLike, release: str | None, yes: bool, confirm: stacks.Confirm,
               preflight: Callable[[StackConfig], bool] | None = None, *, approve: str | None = None,
               allow_tag: bool = False, resolve: Resolve | None = None, now: Callable[[], datetime] | None = None,
               by: Callable[[], str] | None = None) -> int:
    plan, promoted_config = plan_promotion(source, target, release, approve=approve, allow_tag=allow_tag,
                                           resolve=resolve or digests.resolve, now=(now or utc_now)(), by=(by or actor)())
    # Preflight the config as it will be: the promoted images must exist where TO pulls from.
    if preflight is not None and not preflight(promoted_config):
        raise OperationError(f"preflight checks for {target.name} failed: nothing was changed")
    promoted = ", ".join(f"{c.release} {c.new}" for c in plan.changes)
    how = f" (approved: {approve})" if approve is not None else ""
    return apply(target, plan.changes, plan.records, f"promote {promoted} from {source.name}{how}", yes=yes,
                 confirm=confirm, protected=promoted_config.protected)


def do_verify(stack: StackLike, release: str, reason: str, yes: bool, confirm: stacks.Confirm, *,
              now: Callable[[], datetime] | None = None, by: Callable[[], str] | None = None) -> int:
    config = stack.get_all_config()
    current = stacks.releases_of(config)
    if current is None or release not in current:
        raise InputError(f"release {release} is not in stack {stack.name}'s config")
    outputs = stack.outputs()
    record = release_records(outputs).get(release)
    stack_config = stacks.check_config(stack.name, config, current)
    image = stack_config.release(release).images()
    served = image.get("app") or image.get("stable") or ""
    if record is None or record.get("image") != served:
        raise OperationError(f"stack {stack.name} does not run what its config says for {release} (config: {served}, "
                             f"running: {(record or {}).get('image', 'unknown')}): run `pulumi up` first")
    revs = stacks.revisions(stack)
    entry = {"how": "verify", "image": served, "revision": next_revision(revs), "reason": reason,
             "at": _iso((now or utc_now)()), "by": (by or actor)()}
    return apply(stack, [], {release: entry}, f"verify {release} {served.split('@')[0].rsplit(':', 1)[-1]}: {reason}", yes=yes,
                 confirm=confirm, protected=stack_config.protected)


def record_canary(stack: StackLike, release: str, tag: str, run: Any, *, now: Callable[[], datetime] | None = None,
                  by: Callable[[], str] | None = None) -> None:
    """After a passed canary run: its verdict and evidence into the release record, in one update that
    changes no resource. A failed run is recorded by its abort (the history's message) already."""
    if getattr(run, "exit_code", 1) != 0:
        return
    config = stack.get_all_config()
    current = stacks.releases_of(config) or {}
    if release not in current:
        return
    served = stacks.check_config(stack.name, config, current).release(release).images()
    image = served.get("stable") or served.get("app") or ""
    steps = list(run.steps)
    requests = sum(int(getattr(s, "requests", 0) or 0) for s in steps)
    worst = max((float(getattr(s, "canary_error_rate", 0) or 0) for s in steps), default=0.0)
    evidence = (f"{len(steps)} steps to {getattr(steps[-1], 'weight', '?') if steps else '?'}%, {requests} requests, "
                f"canary error rate at most {worst:g}%")
    entry = {"how": "canary", "image": image, "revision": next_revision(stacks.revisions(stack)), "verdict": "passed",
             "evidence": evidence, "at": _iso((now or utc_now)()), "by": (by or actor)()}
    try:
        write_records(stack, {release: entry})
        stacks.update(stack, f"record canary {release} {tag}: passed", on_output=stacks.stream)
    except (OperationError, stacks.UpdateFailed) as error:
        # The canary passed and is promoted: only its record is missing, which a verify can write.
        cause = error.cause if isinstance(error, stacks.UpdateFailed) else str(error)
        print(f"warning: the canary passed but its verdict was not recorded ({cause}); record the check with: "
              f"python -m rollout verify {stack.name} --release {release} --reason \"canary {tag} passed\"",
              file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def cmd_promote(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: do_promote(
        stacks.open_stack(args.source, args.cwd), stacks.open_stack(args.target, args.cwd), args.release, args.yes,
        stacks.confirm_tty, revisions.preflight_ok, approve=args.approve, allow_tag=args.allow_tag))


def cmd_verify(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: do_verify(stacks.open_stack(args.stack, args.cwd), args.release, args.reason,
                                            args.yes, stacks.confirm_tty))


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must say why (a non-empty reason)")
    return " ".join(text.split())


def register(verbs: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    needs = ("Needs the Pulumi CLI and a login to the stack's backend (for the local file backend: "
             "PULUMI_BACKEND_URL=file://<dir> and PULUMI_CONFIG_PASSPHRASE).")
    promote = verbs.add_parser(
        "promote", formatter_class=fmt, help="take what one stack runs into the next, by digest, with proof",
        description="Read what FROM really runs (its stack outputs, not its config), pin each image to its digest "
                    "(FROM's release record, else the registry: ECR or the OCI distribution API), write it into TO's "
                    "config (a canary release promotes its stable track) with TO's release record, run TO's preflight "
                    "checks when it uses AWS, show the change, ask, and update TO. When TO's file has "
                    "`promotion:` or TO is protected, a release goes only from a stack in promotion.from, verified "
                    "there (a passed canary or `rollout verify`), soaked for promotion.soak and not aborted or "
                    "undone since; each refusal is one line and exit 2. " + needs,
        epilog="example:\n  python -m rollout promote dev staging\n"
               "  python -m rollout promote staging prod --release app\n"
               "  python -m rollout promote staging prod --approve \"hotfix for INC-42, checked by hand\"")
    promote.add_argument("source", metavar="FROM", type=stack_name)
    promote.add_argument("target", metavar="TO", type=stack_name)
    promote.add_argument("--release", metavar="NAME", help="only this release")
    promote.add_argument("--approve", metavar="REASON", type=_reason,
                         help="promote without FROM's proof or soak; the reason is recorded in TO's release record")
    promote.add_argument("--allow-tag", action="store_true",
                         help="promote by tag when the registry cannot resolve the digest")
    promote.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    promote.set_defaults(func=cmd_promote)

    verify = verbs.add_parser(
        "verify", formatter_class=fmt, help="record that a release was checked by hand on a stack",
        description="Record in STACK's release record that RELEASE, as it runs now, was verified (how: verify, "
                    "with the reason, when and by whom): the proof `rollout promote` asks for, after a manual check. "
                    "One update that changes no resource. " + needs,
        epilog="example:\n  python -m rollout verify staging --release app --reason \"smoke tests passed\"")
    verify.add_argument("stack", type=stack_name)
    verify.add_argument("--release", metavar="NAME", required=True)
    verify.add_argument("--reason", metavar="TEXT", required=True, type=_reason, help="what was checked")
    verify.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    verify.set_defaults(func=cmd_verify)
