"""`python -m rollout pipeline-plan`: what the deploy pipeline's job for a stack must do, from any state.

The staging job of .github/workflows/deploy.yml canaries what the stack before it (dev) runs. It must
work whatever state the last run left: a stack never deployed, a canary left carrying traffic (a
cancelled job, a runner that died, a committed `canary.weight`), an update that failed half-way.
This verb reads both stacks (their outputs, the target's config and last update: live state, not the
checkout's file alone) and decides, deploying nothing:

- `adopted`: the checkout's stack file names another stable tag than the target's stable track runs
  (a pipeline run promoted it and its record pull request is not merged yet): the file is set to
  what runs, before anything reads it, so no update of this job rolls the stable track back to an
  older tag (the record job's pull request then carries it). The only write, and to the file only;

- `first-up`: the target has no `releases` output (never deployed, or destroyed): a first `pulumi up`
  of its committed config comes before anything that reads its address;
- `abort`: the release's canary carries traffic or may (config `canary.weight` above 0, a weight step
  left half-way in `canary.podsForWeight`, a live requested or effective weight above 0, a last
  update that did not succeed, or a "dark" canary: weight 0 with a `canary.match` route and another
  tag than the stable track's, which carries the matched requests): `rollout abort` sends it back
  first, so `rollout canary` never refuses to start nor canaries over it. After a first up this is
  read from the config the up applies;
- `tag`: the source's stable tag of the release (its outputs: what really runs there);
- `canary`: whether that tag is new to the target (its live stable tag, or the config's when it was
  never deployed) and the target's release is a Canary; otherwise the promotion alone carries it.

The decisions go to stdout, one line each, and to $GITHUB_OUTPUT as `key=value` lines when it is set.
Exit 0 decided, 1 a stack cannot be read or the source reports no usable tag, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from model.release_record import split_tag
from model.stack_file import stack_name
from operations import stacks
from operations.stacks import OperationError, StackLike

# An image tag as the registry accepts it (the OCI distribution spec's tag grammar), optionally pinned to its
# digest as promote writes it (`v2@sha256:<64 hex>`).
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(?:@sha256:[a-f0-9]{64})?$")


@dataclass(frozen=True)
class PipelinePlan:
    first_up: bool
    abort: bool
    canary: bool
    tag: str
    reasons: tuple[str, ...]
    adopt: stacks.Change | None = None  # the stack file's stable tag set to what runs

    def outputs(self) -> dict[str, str]:
        return {"first-up": str(self.first_up).lower(), "abort": str(self.abort).lower(),
                "canary": str(self.canary).lower(), "tag": self.tag, "adopted": str(self.adopt is not None).lower()}



def same_image(tag: str | None, other: str | None) -> bool:
    """Two tags name the same image: the same tag (one of them pinned to a digest by a promotion, or
    both), and when both are pinned, the same digest (a tag pushed again is a new image)."""
    if not tag or not other:
        return tag == other
    (name, digest), (other_name, other_digest) = split_tag(tag), split_tag(other)
    return name == other_name and (digest is None or other_digest is None or digest == other_digest)

def _releases_output(stack: StackLike) -> dict[str, Any] | None:
    value = stack.outputs().get("releases")
    value = getattr(value, "value", value)
    return value if isinstance(value, dict) else None


def source_tag(source: StackLike, release: str) -> str:
    """The tag the source's release runs on its stable track (or its only track)."""
    running = _releases_output(source)
    if running is None:
        raise OperationError(f"stack {source.name} has no `releases` output: deploy it first")
    if release not in running:
        raise OperationError(f"release {release} does not run in stack {source.name}")
    tags = running[release].get("tags") or {}
    tag = tags.get("stable") or tags.get("app") or ""
    if not TAG.match(str(tag)):
        raise OperationError(f"stack {source.name} reports no usable tag for release {release} (got {tag!r})")
    return str(tag)


def _dark_canary(cfg: dict[str, Any], live: dict[str, Any]) -> str | None:
    """The canary tag a `canary.match` route sends matched requests to at any weight, when it is not the
    stable track's (in the config, or live in the outputs): what `rollout abort` takes back too."""
    if stacks.get_path(cfg, "canary.match") is None:
        return None
    for tags in ({"stable": stacks.get_path(cfg, "stable.tag"), "canary": stacks.get_path(cfg, "canary.tag")},
                 live.get("tags") or {}):
        if tags.get("canary") and not same_image(str(tags["canary"]), str(tags.get("stable") or "")):
            return str(tags["canary"])
    return None


def plan(source: StackLike, target: StackLike, release: str) -> PipelinePlan:
    """What the target's job must do so that it ends with the source's tag promoted, or its canary aborted."""
    tag = source_tag(source, release)
    config = target.get_all_config()
    releases = stacks.releases_of(config)
    if releases is None or release not in releases:
        raise OperationError(f"release {release} is not in stack {target.name}'s config")
    cfg = releases[release]
    live_releases = _releases_output(target)
    first_up = live_releases is None
    live = (live_releases or {}).get(release) or {}
    reasons = []
    if first_up:
        reasons.append(f"stack {target.name} has no outputs yet: a first `pulumi up` of its config")
    canary_release = cfg.get("strategy") == "Canary"
    abort = False
    if canary_release:
        weight = stacks.get_path(cfg, "canary.weight") or 0
        hold = stacks.get_path(cfg, "canary.podsForWeight")
        requested, effective = float(live.get("requestedWeight") or 0), float(live.get("effectiveWeight") or 0)
        last = [] if first_up else stacks.revisions(target)[:1]
        dark = _dark_canary(cfg, live)
        causes = [text for cond, text in (
            (weight, f"config canary.weight {weight}"),
            (hold is not None, f"a weight step left half-way (canary.podsForWeight {hold})"),
            (requested or effective, f"live weight {requested:g}% requested, {effective:g}% effective"),
            (bool(last) and not last[0].succeeded, f"the last update (revision {last[0].number if last else 0}) "
                                                   f"{last[0].result if last else ''}"),
            (dark, f"a dark canary: canary.match sends matched requests to {dark} at weight 0"),
        ) if cond]
        if causes:
            abort = True
            reasons.append(f"canary of {release} may carry traffic ({'; '.join(causes)}): abort it first")
    stable = (live.get("tags") or {}).get("stable") if not first_up else stacks.get_path(cfg, "stable.tag")
    adopt = None
    in_file = stacks.get_path(cfg, "stable.tag")
    if canary_release and not first_up and stable and stable != in_file:
        adopt = stacks.Change(release, "stable.tag", in_file, stable)
        reasons.append(f"Pulumi.{target.name}.yaml names stable tag {in_file} but {target.name} runs {stable} (a "
                       f"record pull request not merged?): the file takes {stable}, so nothing rolls it back")
    canary = canary_release and not same_image(tag, stable)
    if canary:
        reasons.append(f"{source.name} runs {release} {tag}, {target.name}'s stable track {stable}: canary {tag}")
    elif not canary_release:
        reasons.append(f"release {release} is {cfg.get('strategy')} on {target.name}: no canary, the promotion "
                       "carries it")
    else:
        reasons.append(f"{target.name}'s stable track already runs {release} {tag}: nothing to canary")
    return PipelinePlan(first_up, abort, canary, tag, tuple(reasons), adopt)


def cmd_pipeline_plan(args: argparse.Namespace) -> int:
    def action() -> int:
        source = stacks.open_stack(args.source, args.cwd)
        target = stacks.open_stack(args.stack, args.cwd)
        decided = plan(source, target, args.release)
        for line in decided.reasons:
            print(line)
        if decided.adopt is not None:
            stacks.write_changes(target, [decided.adopt])  # the stack file only: nothing is deployed
        outputs = decided.outputs()
        print(" ".join(f"{k}={v}" for k, v in outputs.items()))
        path = os.environ.get("GITHUB_OUTPUT")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.writelines(f"{k}={v}\n" for k, v in outputs.items())
        return stacks.EXIT_OK

    if args.stack == args.source:
        print(f"error: --from {args.source}: the source must be another stack than {args.stack}", file=sys.stderr)
        return stacks.EXIT_USAGE
    return stacks.guarded(action)


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "pipeline-plan", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="decide what a pipeline job must do to a stack (first up, abort, canary); deploys nothing",
        description="Read the target stack (outputs, config, last update) and the stack it takes releases from, "
                    "and say what the deploy job must do so that it ends promoted or aborted from any state: "
                    "first-up (no outputs yet), abort (the canary may carry traffic), canary (the source runs a "
                    "tag the target's stable track does not) and the tag. A stack file naming another stable tag "
                    "than the stack runs takes the running one (adopted). Prints one line per decision and "
                    "key=value lines; appends them to $GITHUB_OUTPUT when set. Needs the Pulumi CLI and a login.",
        epilog="example:\n  python -m rollout pipeline-plan staging --from dev --release app",
    )
    parser.add_argument("stack", type=stack_name, help="the stack the job deploys")
    parser.add_argument("--from", dest="source", required=True, type=stack_name, metavar="STACK",
                        help="the stack whose stable tag is canaried (the one before it in the pipeline)")
    parser.add_argument("--release", required=True, metavar="NAME", help="the release the job canaries")
    parser.set_defaults(func=cmd_pipeline_plan)
