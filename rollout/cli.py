"""`python -m rollout <verb>`: the operator's command line.

Verbs follow `kubectl rollout` where one exists (history, undo, status); preview, forecast,
promote, canary and preflight are this project's own.

Exit statuses: 0 done; 2 the input's fault (stack file, arguments, environment), one line
per problem naming the file or key; 3 a policy said no; 1 anything else, as one `error:` line
(`--debug` or APP_UPDATE_DEBUG=1 adds the traceback); 130 interrupted.

Input is checked before the environment (check_inputs): the arguments and the stack files they
name are read before any verb opens a Pulumi workspace, so a missing Pulumi CLI or backend never
hides a bad argument.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import textwrap
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from model.stack_file import PROJECT_DIR, StackFileError, check_project_dir, stack_name
from operations import (
    bluegreen_run,
    bootstrap,
    canary_run,
    pipeline_plan,
    preflight,
    promotion,
    revisions,
    watchdog,
    waves,
)
from operations.stacks import EXIT_FAILED, EXIT_OK, EXIT_POLICY, EXIT_USAGE, load_stack_file

if TYPE_CHECKING:
    from model.config import StackConfig

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "load_config", "main", "stack_name"]

EXIT_INTERRUPTED = 130
load_config = load_stack_file
DEBUG_ENV = "APP_UPDATE_DEBUG"
INT32_MAX = 2**31 - 1


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def one_line(error: BaseException, limit: int = 400) -> str:
    """An exception as one line: its type and message, whitespace (newlines too) collapsed."""
    text = " ".join(str(error).split())
    if len(text) > limit:
        text = text[:limit] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


EXIT_STATUSES = ("exit status: 0 done; 1 failed (one `error:` line); 2 the input's fault (an argument or the "
                 "stack file, one line per problem); 3 a policy said no; 130 interrupted.")
HELP_WIDTH = 100


class _Formatter(argparse.HelpFormatter):
    """Help that fits a terminal: paragraphs wrapped (at most HELP_WIDTH columns), indented lines (examples) kept
    as written."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 28,
                 width: int | None = None):
        width = width or max(40, min(shutil.get_terminal_size().columns - 2, HELP_WIDTH))
        super().__init__(prog, indent_increment, max_help_position, width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                lines.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent,
                                           subsequent_indent=indent, break_on_hyphens=False))
                paragraph.clear()

        for line in text.splitlines():
            if not line.strip():
                flush()
                lines.append("")
            elif line[0].isspace():
                flush()
                lines.extend(indent + part for part in shell_lines(line, width - len(indent)))
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(lines)


def shell_lines(line: str, width: int) -> list[str]:
    """An indented example command, broken before its options into shell continuation lines to fit `width`."""
    if len(line) <= width:
        return [line]
    lead = line[:len(line) - len(line.lstrip())]
    words, lines, current = line.split(" --"), [], ""
    for i, word in enumerate(words):
        piece = word if i == 0 else "--" + word
        if current and len(current) + 1 + len(piece) + 2 > width:
            lines.append(current + " \\")
            current = lead + "    " + piece
        else:
            current = piece if not current else f"{current} {piece}"
    return [*lines, current]


# Help for options the verbs' modules declare without any, by the option's dest: every option says what it is.
OPTION_HELP = {
    "stack": "the stack: its settings are Pulumi.<stack>.yaml in the project directory",
    "source": "the stack to promote from (what it runs, read from its outputs)",
    "target": "the stack to promote to (its Pulumi.<stack>.yaml is changed, then it is updated)",
    "release": "the release: a key of app-update:releases in the stack file",
    "json": "print JSON instead of text",
    "to_revision": "the revision (from `history`) to go back to (default: the last successful update before the "
                   "current one)",
    "yes": "do not ask for confirmation",
}


# ---------------------------------------------------------------------------------------------
# preview
# ---------------------------------------------------------------------------------------------


def cmd_preview(args: argparse.Namespace) -> int:
    from policy import rules as policy_rules
    from preview import manifests, plan
    from preview.runner import run_program

    stack = args.stack
    settings, config = load_config(stack, args.cwd)
    if config is None:
        return EXIT_USAGE
    run = run_program(stack, args.cwd, settings=settings)
    if run.error is not None:
        if getattr(args, "debug", False):
            traceback.print_exception(run.error)
        _err(f"error: the program failed under the offline runner: {one_line(run.error)}")
        return EXIT_FAILED
    objects = manifests.collect(run)
    version = config.cluster.kubernetes_version
    try:
        problems = manifests.validate_all(objects, version)
    except manifests.SchemaUnavailable as error:
        _err(f"app-update:cluster.kubernetesVersion: {error}; nothing was written")
        return EXIT_USAGE
    if problems:
        for problem in problems:
            _err(f"schema error (Kubernetes {version}, strict): {problem}")
        _err("nothing was written")
        return EXIT_FAILED
    # The same rules `pulumi preview --policy-pack policy` runs, over what the program registered.
    violations = policy_rules.check_run(run.resources, config.protected)
    if policy_rules.mandatory(violations):
        for line in policy_rules.report(policy_rules.mandatory(violations)):
            _err(line)
        _err("a mandatory policy said no: nothing was written")
        return EXIT_POLICY
    # Everything that can fail runs before anything is written: the plan (and its forecasts) too.
    result = plan.build(config, run)
    result["policy"] = [dataclasses.asdict(v) for v in violations]
    result["beforeUp"] = before_up(stack, config)
    out_dir = Path(args.out) if args.out else args.cwd / "build" / "manifests" / stack
    try:
        paths = manifests.write(objects, out_dir, default_dir=not args.out)
    except manifests.WriteError as error:
        _err(f"error: {error}")
        return EXIT_USAGE if error.usage else EXIT_FAILED
    shown_dir = _shown(out_dir)
    result["manifests"] = {
        "directory": shown_dir,
        "files": [p.name for p in paths],
        "kubernetesVersion": version,
        "generatedNames": [m.label for m in objects if m.generated_name],
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        custom = [m for m in objects if (m.obj.get("apiVersion"), m.kind) in manifests.CUSTOM_RESOURCES]
        before = "".join(f"  - {line}\n" for line in result["beforeUp"])
        note = ((f"Before `pulumi up` on {stack}\n{before}\n" if before else "")
                + f"Manifests: {len(paths)} objects in {shown_dir}/, valid for Kubernetes {version} (strict schema"
                + (f"; the {len(custom)} custom resources need their CRDs installed, and are checked against them "
                   "only in the tests" if custom else "") + "); "
                f"apply with: kubectl apply -f {shown_dir}/\n"
                "Offline preview: load balancer addresses and generated names are only known after `pulumi up`.")
        print(plan.render_text(result, note))
    return EXIT_OK


def before_up(stack: str, config: StackConfig) -> list[str]:
    """What preview cannot check and `pulumi up` on this stack needs: the AWS checks of `rollout preflight`, the
    documentation examples it refuses, and what a protected stack holds everyone to."""
    notes = []
    found = preflight.placeholders(config)
    if found:
        notes.append(f"`rollout preflight {stack}` refuses this stack file until you replace its documentation "
                     f"examples (placeholders) with your own values: {', '.join(found)}")
    if preflight.uses_aws(config):
        notes.append(f"run `rollout preflight {stack}` first: it checks what an offline preview cannot (AWS "
                     "credentials of an allowed account, the region, the ECR images and Route53 zones the stack uses)")
    if config.protected:
        notes.append(f"stack {stack} is protected (app-update:protected): the policies for protected stacks are "
                     "mandatory (no Recreate, 2+ stable replicas, a PodDisruptionBudget per Deployment), and every "
                     "rollout command that changes it asks you to type its name")
    return notes


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------
# forecast
# ---------------------------------------------------------------------------------------------


_DIGITS = re.compile(r"[0-9]+")


def _shown_arg(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _count(text: str) -> int:
    """A non-negative int32, as a Deployment's counts are."""
    if not _DIGITS.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be a non-negative integer (got {_shown_arg(text)})")
    if len(text.lstrip("0")) > 10 or int(text) > INT32_MAX:
        raise argparse.ArgumentTypeError(f"must be at most {INT32_MAX} (an int32, as in the Deployment spec) "
                                         f"(got {_shown_arg(text)})")
    return int(text)


def _int_or_percent(text: str) -> int | str:
    """maxSurge: a non-negative int32 or a percentage like "25%"."""
    from model.fenceposts import parse_percent

    if _DIGITS.fullmatch(text):
        return _count(text)
    if parse_percent(text) is not None:
        return text
    raise argparse.ArgumentTypeError(f'must be a non-negative integer or a percentage like "25%" '
                                     f"(got {_shown_arg(text)})")


def _unavailable(text: str) -> int | str:
    """maxUnavailable: as maxSurge, and a percentage at most 100% (the API rejects more)."""
    from model.fenceposts import parse_percent

    value = _int_or_percent(text)
    if isinstance(value, str) and (parse_percent(value) or 0) > 100:
        raise argparse.ArgumentTypeError(f"must not be more than 100% (got {_shown_arg(text)})")
    return value


def _forecast_blue_green(args: argparse.Namespace) -> int:
    """The pods of each phase of `rollout bluegreen` (model/forecast.py's BlueGreen section)."""
    from model.forecast import blue_green_forecast

    if args.max_surge is not None or args.max_unavailable is not None or args.svg:
        _err("error: --max-surge, --max-unavailable and --svg are RollingUpdate settings; a BlueGreen color never "
             "rolls (it starts complete beside the other)")
        return EXIT_USAGE
    fc = blue_green_forecast(args.replicas)
    if args.json:
        print(json.dumps(fc.to_json(), indent=2))
        return EXIT_OK
    print(f"BlueGreen, {fc.replicas} replicas per color: the new color starts complete beside the old one")
    for phase in fc.phases:
        print(f"  {phase.name:<50} {phase.active} + {phase.idle} = {phase.pods} pods, serving the {phase.serving} "
              "color")
    print(f"Capacity: {fc.peak_pods} pods ({fc.extra_pods} more than at rest) from the new color's start until the "
          f"old one is scaled down; never fewer than {fc.fewest_ready} ready behind the active Service.")
    return EXIT_OK


# A forecast's text table shows this many rows at each end (--all-steps: all of them).
TERMINAL_ROWS = 20


def cmd_forecast(args: argparse.Namespace) -> int:
    from model.fenceposts import is_zero
    from model.forecast import forecast

    if args.strategy == "BlueGreen":
        return _forecast_blue_green(args)
    if args.strategy == "Recreate" and (args.max_surge is not None or args.max_unavailable is not None):
        _err("error: --max-surge and --max-unavailable are RollingUpdate settings; "
             "the Kubernetes API rejects them with Recreate")
        return EXIT_USAGE
    surge = "25%" if args.max_surge is None else args.max_surge
    unavailable = "25%" if args.max_unavailable is None else args.max_unavailable
    if args.strategy == "RollingUpdate" and is_zero(surge) and is_zero(unavailable):
        _err("error: --max-unavailable must not be 0 when --max-surge is 0: the Kubernetes API rejects it")
        return EXIT_USAGE
    fc = forecast(args.replicas, args.strategy, surge, unavailable)
    if args.svg:
        from report.forecast_svg import forecast_svg

        _write_whole(Path(args.svg), forecast_svg(fc))
    data = fc.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    if args.strategy == "Recreate":
        print(f"Recreate, {fc.replicas} replicas: every old pod stops before new ones start")
    else:
        print(f"RollingUpdate, {fc.replicas} replicas, maxSurge {surge} → {fc.surge_pods}, "
              f"maxUnavailable {unavailable} → {fc.unavailable_pods}")
        print(f"The controller's limits: at least {fc.min_available} pods available (replicas − maxUnavailable), "
              f"at most {fc.max_total} pods (replicas + maxSurge).")
        if fc.max_pods_seen < fc.max_total:
            print(f"This update reaches at most {fc.max_pods_seen} pods"
                  + (f": neither ReplicaSet grows past {fc.replicas} replicas"
                     if fc.max_pods_seen == 2 * fc.replicas else "") + ".")
    print(f"{'step':>4}  {'old':>5}  {'new':>5}  {'ready new':>9}  {'available':>9}  {'pods':>5}")
    rows: list[str] = []
    for i, step in enumerate(fc.steps):
        index = i
        if fc.omitted_steps and i >= (fc.omitted_after or 0):
            index = i + fc.omitted_steps
            if i == fc.omitted_after:
                rows.append(f"{'…':>4}  ({fc.omitted_steps:,} steps not listed: the same cycle repeats)")
        rows.append(f"{index:>4}  {step.old:>5}  {step.new:>5}  {step.new_ready:>9}  {step.available:>9}  "
                    f"{step.pods:>5}")
    if len(rows) > 2 * TERMINAL_ROWS + 1 and not args.all_steps:
        # One pod at a time makes about three rows a pod: the terminal gets both ends, and one line for what is
        # between them (the steps the forecast counted without listing included).
        hidden = rows[TERMINAL_ROWS:-TERMINAL_ROWS]
        steps_hidden = sum(not row.lstrip().startswith("…") for row in hidden) + (
            fc.omitted_steps if any(row.lstrip().startswith("…") for row in hidden) else 0)
        rows[TERMINAL_ROWS:-TERMINAL_ROWS] = [f"{'…':>4}  ({steps_hidden:,} steps not listed: the same cycle "
                                              "repeats; --all-steps lists more)"]
    print("\n".join(rows))
    print(f"this update: fewest available {fc.min_available_seen}, most pods {fc.max_pods_seen}, "
          f"{fc.syncs} controller syncs")
    return EXIT_OK


def _write_whole(path: Path, text: str) -> None:
    """Write a file whole or not at all (a partial file next to it, renamed over it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def cmd_report(args: argparse.Namespace) -> int:
    from report.canary_report import holds_a_canary_run, write_report

    log: Path = args.log
    if not log.is_file():
        _err(f"error: LOG {log}: no such file (canary logs are in build/canary/ by default)")
        return EXIT_USAGE
    if not holds_a_canary_run(log):
        _err(f"error: LOG {log}: holds no canary run (no JSON lines written by `rollout canary`)")
        return EXIT_USAGE
    path = write_report(log, args.out)
    print(f"report: {path}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


def program_name() -> str:
    """How the user ran us: the `rollout` command (venv/bin/rollout) or `python -m rollout`."""
    return "rollout" if Path(sys.argv[0] or "").name == "rollout" else "python -m rollout"


def build_parser() -> argparse.ArgumentParser:
    prog = program_name()
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Release operations for the app-update Pulumi program (one stack per environment).",
        formatter_class=_Formatter,
        epilog=f"Run `{prog} <verb> --help` for a verb's options and an example.\n\n" + EXIT_STATUSES,
    )
    parser.add_argument("-C", "--cwd", type=Path, default=PROJECT_DIR, metavar="DIR",
                        help="the Pulumi project directory (default: this checkout)")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the traceback of an unexpected failure (or set {DEBUG_ENV}=1)")
    verbs = parser.add_subparsers(dest="verb", metavar="<verb>")
    verbs.required = True

    preview = verbs.add_parser(
        "preview", formatter_class=_Formatter,
        help="show and render a stack offline (no Pulumi CLI, no cloud)",
        description="Run the Pulumi program offline under mocks with a stack's config: print the plan "
                    "(resources, per-release numbers, rollout forecast, warnings) and write every Kubernetes "
                    "object as YAML, checked against the Kubernetes schema.",
        epilog="example:\n  python -m rollout preview dev\n  python -m rollout preview local --json > plan.json",
    )
    preview.add_argument("stack", nargs="?", default="dev", type=stack_name,
                         help="stack name (Pulumi.<stack>.yaml); default dev")
    preview.add_argument("--out", metavar="DIR", help="where to write manifests (default build/manifests/<stack>)")
    preview.add_argument("--json", action="store_true", help="print the plan as one JSON document")
    preview.set_defaults(func=cmd_preview)

    fc = verbs.add_parser(
        "forecast", formatter_class=_Formatter,
        help="step through a Deployment update as the Kubernetes controller does it",
        description="Forecast the pods of a Deployment update, sync by sync, with the Deployment controller's "
                    "own arithmetic (defaults as Kubernetes: RollingUpdate, maxSurge 25%, maxUnavailable 25%).",
        epilog="example:\n  python -m rollout forecast --replicas 5 --max-surge 1 --max-unavailable 1",
    )
    fc.add_argument("--replicas", type=_count, required=True, help="spec.replicas (0 to 2147483647)")
    fc.add_argument("--strategy", choices=("RollingUpdate", "Recreate", "BlueGreen"), default="RollingUpdate",
                    metavar="STRATEGY",
                    help="RollingUpdate (default) or Recreate, the Deployment's spec.strategy.type; or BlueGreen: the "
                         "pods of each phase of `rollout bluegreen`")
    fc.add_argument("--max-surge", type=_int_or_percent,
                    help='pods above spec.replicas during the update: int or "N%%" (default 25%%)')
    fc.add_argument("--max-unavailable", type=_unavailable,
                    help='pods below spec.replicas during the update: int or "N%%", at most 100%% (default 25%%)')
    fc.add_argument("--json", action="store_true", help="print the forecast as JSON")
    fc.add_argument("--all-steps", action="store_true",
                    help=f"list every step in the text table (default: the first and last {TERMINAL_ROWS} rows of a "
                         "longer one)")
    fc.add_argument("--svg", metavar="FILE", help="also draw ready and total pods over the update as an SVG picture")
    fc.set_defaults(func=cmd_forecast)

    rep = verbs.add_parser(
        "report", formatter_class=_Formatter,
        help="draw a canary run's log as an HTML page (share, errors, latency, evidence, verdict)",
        description="Render the last canary run of a `rollout canary` log (JSON lines) as one self-contained HTML "
                    "page: per step the canary's observed share against the weight and its band, errors and the p99 "
                    "against the budget and the limit, each test's sequential evidence against its abort threshold, "
                    "and the verdict. Inline SVG, no script, nothing fetched: it opens from a file, offline. "
                    "`rollout canary` writes the same page beside its log at the end of every run.",
        epilog="example:\n  python -m rollout report build/canary/staging-app-20261204-101500.log",
    )
    rep.add_argument("log", type=Path, metavar="LOG", help="the canary run's log (build/canary/*.log)")
    rep.add_argument("--out", type=Path, metavar="FILE", help="where to write the page (default: LOG with .html)")
    rep.set_defaults(func=cmd_report)

    revisions.register(verbs)
    # `undo` on a BlueGreen release is a selector switch (operations/bluegreen_run.py); on others, revisions'.
    verbs.choices["undo"].set_defaults(func=bluegreen_run.cmd_undo)
    promotion.register(verbs)
    waves.register(verbs)
    canary_run.register(verbs)
    bluegreen_run.register(verbs)
    watchdog.register(verbs)
    preflight.register(verbs)
    bootstrap.register(verbs)
    pipeline_plan.register(verbs)
    for verb in verbs.choices.values():
        _finish_help(verb)
    return parser


def _finish_help(parser: argparse.ArgumentParser) -> None:
    """What every verb's help has, whichever module declares the verb: wrapped paragraphs, a line for every
    option, and the exit statuses."""
    parser.formatter_class = _Formatter
    for action in parser._actions:
        if action.help is None and action.dest in OPTION_HELP:
            action.help = OPTION_HELP[action.dest]
    if EXIT_STATUSES not in (parser.epilog or ""):
        parser.epilog = ((parser.epilog or "").rstrip() + "\n\n" + EXIT_STATUSES).lstrip()


# ---------------------------------------------------------------------------------------------
# Input before environment
# ---------------------------------------------------------------------------------------------

STACK_ARGUMENTS = ("stack", "source", "target", "stacks")  # the dests of arguments that name a stack (or a list)
# Verbs whose --release must be a release of the stack file (of TO for promote), and those that need a Canary one.
# `history --release` may name a release that is gone from the config: it lists what earlier revisions ran.
RELEASE_IN_STACK = {"undo", "promote", "canary", "abort", "verify", "pipeline-plan", "bluegreen"}
CANARY_ONLY = {"canary", "abort"}


def check_inputs(args: argparse.Namespace) -> bool:
    """Check what the user typed, and the stack files it names, before a verb touches the environment (the
    Pulumi CLI, a backend, AWS): every problem printed, one line each; False when there is one (exit 2)."""
    problems: list[str] = []
    configs, files = {}, {}
    for dest in STACK_ARGUMENTS:
        value = getattr(args, dest, None)
        for name in value if isinstance(value, list) else [value]:
            if name is None or name in configs:
                continue
            settings, config = load_stack_file(name, args.cwd)
            if config is None:
                return False  # load_stack_file printed every problem of the file
            configs[name], files[name] = config, settings
    if getattr(args, "source", None) is not None and args.source == getattr(args, "target", None):
        problems.append(f"FROM and TO are the same stack ({args.source}): promote takes what one stack runs into "
                        "the next one")
    release = getattr(args, "release", None)
    stack = getattr(args, "target", None) or getattr(args, "stack", None)
    if release is not None and args.verb in RELEASE_IN_STACK and stack in configs:
        names = [r.name for r in configs[stack].releases]
        if release not in names:
            problems.append(f"--release {release}: stack {stack} has no release {release} in Pulumi.{stack}.yaml "
                            f"(its releases: {', '.join(names) or 'none'})")
        elif (args.verb == "undo" and args.to_revision is not None
              and configs[stack].release(release).strategy == "BlueGreen"):
            problems.append(f"--to-revision: {release} is a BlueGreen release in Pulumi.{stack}.yaml, whose undo "
                            "switches the active Service back to the other color (drop --to-revision)")
        elif args.verb in CANARY_ONLY and configs[stack].release(release).strategy != "Canary":
            strategy = configs[stack].release(release).strategy
            way_back = (f" (a BlueGreen release goes back with: python -m rollout undo {stack} --release {release}; "
                        "a run's own Ctrl-C, or the watchdog once its driver is gone, ends a run)"
                        if args.verb == "abort" and strategy == "BlueGreen" else "")
            problems.append(f"--release {release}: it is a {strategy} release in Pulumi.{stack}.yaml; {args.verb} needs "
                            f"a Canary one{way_back}")
    if args.verb == "canary" and args.tag is not None and not problems and stack in files:  # --resume: the lease's
        problems += _canary_fits(stack, files[stack], args)
    if args.verb == "bluegreen" and not problems and stack in files:  # a BlueGreen release that takes the tag
        problems += bluegreen_run.fits(stack, files[stack], args)
    for problem in problems:
        _err(f"error: {problem}")
    return not problems


def _canary_fits(stack: str, settings: dict, args: argparse.Namespace) -> list[str]:
    """The canary's first write (its tag at the first step's weight) must make a valid stack file."""
    from model.config import ConfigError, load, parse_config_value
    from operations.canary_run import DEFAULT_STEPS
    from operations.stacks import RELEASES_KEY, Change, apply_changes

    releases = parse_config_value(settings.get(RELEASES_KEY))
    steps = DEFAULT_STEPS if args.steps is None else args.steps  # None: the default steps
    if not steps and not args.match_only:
        return ["--steps is empty: give weights, or --match-only for a run judged on matched requests alone"]
    first_weight = 0 if args.match_only or not steps else steps[0]
    first = apply_changes(releases, [Change(args.release, "canary.tag", None, args.tag),
                                     Change(args.release, "canary.weight", None, first_weight)])
    try:
        load({**settings, RELEASES_KEY: first}, stack)
    except ConfigError as error:
        return [f"--tag {args.tag!r} or --steps cannot go into {stack}'s config: {problem}"
                for problem in error.problems]
    if args.match_only:
        from operations.match_phase import refusal

        release = load({**settings, RELEASES_KEY: first}, stack).release(args.release)
        found = refusal(release, args.match_value, 50.0 if args.rate is None else args.rate)
        return [found] if found else []
    return []


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the exit status. No traceback unless --debug or APP_UPDATE_DEBUG=1."""
    _tolerant_output()
    words = sys.argv[1:] if argv is None else argv
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0") or "--debug" in words
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.debug = debug = debug or args.debug
        if args.verb not in ("forecast", "report"):
            check_project_dir(args.cwd)
        if not check_inputs(args):
            return EXIT_USAGE
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except StackFileError as error:
        for problem in error.problems:
            _err(f"error: {problem}")
        return EXIT_USAGE
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_FAILED
    except Exception as error:  # the last line of defence: one line, the traceback only on request
        if debug:
            traceback.print_exc()
        _err(f"error: {one_line(error)}" + ("" if debug else f" (--debug or {DEBUG_ENV}=1 shows the traceback)"))
        return EXIT_FAILED


def _tolerant_output() -> None:
    """Print what cannot be encoded (a stray surrogate in a key) escaped rather than failing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            pass


def _quiet_stdout() -> None:
    """After a closed pipe (`| head`): send what is left to /dev/null, so exit says nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
