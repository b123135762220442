"""`python -m rollout <verb>`: the operator's command line.

Verbs follow `kubectl rollout` where one exists (history, undo, status); preview, forecast,
promote, canary and preflight are this project's own.

Exit statuses: 0 done; 2 the input's fault (stack file, arguments, environment), one line
per problem naming the file or key; 1 anything else, as one `error:` line (`--debug` or
APP_UPDATE_DEBUG=1 adds the traceback); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import traceback
from pathlib import Path

from model.stack_file import PROJECT_DIR, StackFileError, check_project_dir, stack_name
from operations import bootstrap, canary_run, preflight, promotion, revisions, waves
from operations.stacks import EXIT_FAILED, EXIT_OK, EXIT_POLICY, EXIT_USAGE, load_stack_file
from policy import rules as policy_rules

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


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


# ---------------------------------------------------------------------------------------------
# preview
# ---------------------------------------------------------------------------------------------


def cmd_preview(args: argparse.Namespace) -> int:
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
        note = (f"Manifests: {len(paths)} objects in {shown_dir}/, valid for Kubernetes {version} (strict schema"
                + (f"; the {len(custom)} custom resources need their CRDs installed, and are checked against them "
                   "only in the tests" if custom else "") + "); "
                f"apply with: kubectl apply -f {shown_dir}/\n"
                "Offline preview: load balancer addresses and generated names are only known after `pulumi up`.")
        print(plan.render_text(result, note))
    return EXIT_OK


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


def cmd_forecast(args: argparse.Namespace) -> int:
    from model.fenceposts import is_zero
    from model.forecast import forecast

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
    data = fc.to_json()
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    if args.strategy == "Recreate":
        print(f"Recreate, {fc.replicas} replicas: every old pod stops before new ones start")
    else:
        print(f"RollingUpdate, {fc.replicas} replicas, maxSurge {surge} → {fc.surge_pods}, "
              f"maxUnavailable {unavailable} → {fc.unavailable_pods}")
        print(f"The controller keeps at least {fc.min_available} ready and at most {fc.max_total} pods.")
    print(f"{'step':>4}  {'old':>5}  {'new':>5}  {'ready new':>9}  {'available':>9}  {'pods':>5}")
    for i, step in enumerate(fc.steps):
        index = i
        if fc.omitted_steps and i >= (fc.omitted_after or 0):
            index = i + fc.omitted_steps
            if i == fc.omitted_after:
                print(f"{'…':>4}  ({fc.omitted_steps:,} steps not listed: the same cycle repeats)")
        print(f"{index:>4}  {step.old:>5}  {step.new:>5}  {step.new_ready:>9}  {step.available:>9}  {step.pods:>5}")
    print(f"fewest available {fc.min_available_seen}, most pods {fc.max_pods_seen}, {fc.syncs} controller syncs")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m rollout",
        description="Release operations for the app-update Pulumi program (one stack per environment).",
        formatter_class=_Formatter,
        epilog="Run `python -m rollout <verb> --help` for a verb's options and an example.",
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
                    "own arithmetic (defaults as Kubernetes: RollingUpdate, 25%%, 25%%).",
        epilog="example:\n  python -m rollout forecast --replicas 5 --max-surge 1 --max-unavailable 1",
    )
    fc.add_argument("--replicas", type=_count, required=True, help="spec.replicas (0 to 2147483647)")
    fc.add_argument("--strategy", choices=("RollingUpdate", "Recreate"), default="RollingUpdate")
    fc.add_argument("--max-surge", type=_int_or_percent, help='int or "N%%" (default 25%%)')
    fc.add_argument("--max-unavailable", type=_unavailable, help='int or "N%%", at most 100%% (default 25%%)')
    fc.add_argument("--json", action="store_true", help="print the forecast as JSON")
    fc.set_defaults(func=cmd_forecast)

    revisions.register(verbs)
    promotion.register(verbs)
    waves.register(verbs)
    canary_run.register(verbs)
    preflight.register(verbs)
    bootstrap.register(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb; returns the exit status. No traceback unless --debug or APP_UPDATE_DEBUG=1."""
    _tolerant_output()
    words = sys.argv[1:] if argv is None else argv
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0") or "--debug" in words
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        args.debug = debug = debug or args.debug
        if args.verb != "forecast":
            check_project_dir(args.cwd)
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
