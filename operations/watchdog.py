"""`python -m rollout watchdog [STACK ...]`: abort the canaries whose driver is gone.

A canary run holds a lease beside the stack's state and renews it while it runs
(operations/lease.py). When the lease expires without ending (the laptop closed, the CI runner
was killed), or a run ended with its abort failed, nobody looks after the canary's traffic. The
watchdog finds those and aborts each through the stack exactly as `rollout abort` does
(canary_run.do_abort: traffic off the canary first, lock waits and retries), recording the abort
in the lease and printing one line per canary.

A blue-green run (operations/bluegreen_run.py) holds the same lease; for one whose driver is gone
the watchdog does what `bluegreen_run.finish` says: before or during the switch, the active Service
back on the old color and the new color scaled to 0; in the window, the old color's scale-down
finished once the window has passed.

Safe from several places at once and on a schedule:
- it takes a lease with a conditional write on the version it read, so of two watchdogs (or a
  watchdog and a resumed run) exactly one wins; the other reports that and changes nothing;
- it never touches a live lease (its holder renews it), nor an ended one whose run ended well;
- after a successful abort the lease says `aborted`: running it again changes nothing.

Exit 0 when nothing was expired or every abort applied, 1 when one failed (the lease then says
`abort-failed`, and the next run of the watchdog tries again), 2 for an argument or a backend
that keeps no lease.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from model.stack_file import available_stacks, stack_name
from operations import canary_lease, live_state, stacks
from operations import lease as leases
from operations.canary_run import Clock, do_abort

LEASED = ("Canary", "BlueGreen")  # the strategies whose runs hold a lease


def _canary_releases(stack: stacks.StackLike) -> list[str]:
    """The canary and blue-green releases of the stack file and of what is live (a checkout can lag either way)."""
    releases = stacks.releases_of(stack.get_all_config()) or {}
    names = {name for name, cfg in releases.items() if isinstance(cfg, dict) and cfg.get("strategy") in LEASED}
    names |= {name for name, info in live_state.live_releases(stack).items()
              if isinstance(info, dict) and info.get("strategy") in LEASED}
    return sorted(names)


def watch_release(stack: stacks.StackLike, release: str, spec: leases.LeaseSpec, *, out: TextIO,
                  policy: stacks.RetryPolicy, clock: Clock | None = None) -> tuple[str, bool]:
    """(one line, failed?) for one release: left alone, or aborted through the stack."""
    name = f"{stack.name} {release}"
    record = spec.read()
    now = leases.wall_clock()
    if record is None:
        return f"{name}: no lease (no canary run recorded): nothing to do", False
    if not leases.needs_abort(record, now):
        return f"{name}: {leases.describe(record, now)}: left alone", False
    if record.get("strategy") == "BlueGreen":  # the run's phase decides: operations/bluegreen_run.py
        from operations import bluegreen_run

        return bluegreen_run.watch_release(stack, release, spec, record, out=out, policy=policy, clock=clock)
    try:
        lease = leases.watchdog_takeover(spec, record, canary_lease.abort_fields(record, stack.name, release,
                                                                                 "watchdog"))
    except leases.LeaseHeld as held:
        return f"{name}: {held}: left to it", False
    why = leases.takeover_reason(record, "abort")
    print(f"{name}: aborting the canary: {why}", file=out, flush=True)
    code = do_abort(stack, release, True, lambda prompt, expected: True, out=out, policy=policy, clock=clock,
                    take_lease=lambda: lease)
    if code == 0:
        return f"{name}: ABORTED by the watchdog ({why}); the lease says so", False
    return f"{name}: ABORT FAILED ({why}); the lease says so, the next watchdog run tries again", True


def watch(names: list[str], project_dir: Path, *, out: TextIO | None = None,
          policy: stacks.RetryPolicy | None = None, lease_seconds: float = leases.DEFAULT_SECONDS,
          log_path: Path | None = None, clock: Clock | None = None) -> int:
    out = out or sys.stdout
    policy = policy or stacks.RetryPolicy()
    failed = False
    lines: list[dict[str, Any]] = []
    for name in names or available_stacks(project_dir):
        try:
            stack = stacks.open_stack(name, project_dir)
            releases = _canary_releases(stack)
            if not releases:
                lines.append({"stack": name, "line": f"{name}: no canary release"})
            for release in releases:
                spec = leases.spec_for(stack, release, project_dir, lease_seconds)
                line, bad = watch_release(stack, release, spec, out=out, policy=policy, clock=clock)
                failed = failed or bad
                lines.append({"stack": name, "release": release, "line": line, "failed": bad})
        except stacks.InputError:
            raise
        except Exception as error:  # noqa: BLE001 (one stack's failure does not stop the others)
            failed = True
            text = str(error) if isinstance(error, stacks.OperationError) else stacks.error_line(error)
            lines.append({"stack": name, "line": f"{name}: error: {text}", "failed": True})
    for entry in lines:
        print(entry["line"], file=out, flush=True)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a") as handle:
            for entry in lines:
                handle.write(json.dumps({"time": datetime.now().isoformat(timespec="seconds"), **entry}) + "\n")
    return stacks.EXIT_FAILED if failed else stacks.EXIT_OK


def cmd_watchdog(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: watch(args.stacks, args.cwd, policy=stacks.RetryPolicy(lock_wait=args.lock_wait),
                                        lease_seconds=args.lease_seconds, log_path=args.log))


def register(verbs: argparse._SubParsersAction) -> None:
    from operations.canary_run import duration_argument

    parser = verbs.add_parser(
        "watchdog", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="abort canaries whose driver is gone (an expired lease)",
        description="For each canary release of each stack (default: every Pulumi.<stack>.yaml), read its lease "
                    "beside the stack's state; when it expired without ending (the run's process died) or the run's "
                    "abort failed, abort the canary as `rollout abort` does and record it in the lease. A live lease "
                    "is never touched, and of several watchdogs at once exactly one aborts. A blue-green run whose "
                    "driver died is ended safely: before or during its switch, the active Service back on the old "
                    "color and the new one scaled to 0; in its window, the old color scaled down once the window "
                    "has passed. One line per canary; "
                    "exit 0 when nothing was expired or every abort applied, 1 when one failed. Meant to run on a "
                    "schedule (.github/workflows/watchdog.yml). Needs the Pulumi CLI and a file:// or s3:// backend.",
        epilog="example:\n  python -m rollout watchdog staging prod",
    )
    parser.add_argument("stacks", nargs="*", type=stack_name, metavar="STACK",
                        help="the stacks to watch (default: every Pulumi.<stack>.yaml of the project)")
    parser.add_argument("--lock-wait", type=duration_argument, default=300.0,
                        help="how long an abort waits for another update's lock on the stack (default 5m)")
    parser.add_argument("--lease-seconds", type=leases.lease_seconds_argument, default=leases.DEFAULT_SECONDS, metavar="DURATION",
                        help="the watchdog's hold on a lease while it aborts (default 5m)")
    parser.add_argument("--log", type=Path, help="append one JSON line per canary to this file")
    parser.set_defaults(func=cmd_watchdog)
