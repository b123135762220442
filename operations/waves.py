"""`rollout wave NAME --release R`: one release through several stacks, stage by stage.

The wave file (`waves/NAME.yaml`, model/wave_file.py) names the stack the release comes from and
the stages. At the start the wave pins what that stack serves for R (its release record's image,
by digest); every stack of every stage then gets exactly that image, by `rollout promote` (with
its proof, soak and promotion.from checks) or by a judged `rollout canary` of it. A stage's stacks
run `parallel` at a time; a stage that succeeded is followed by its `soak` before the next starts.
The first failure stops the wave (`stop: first-failure`: no stack of the stage starts after it;
`end-of-stage`: the stage's other stacks still run): no later stage is touched, and the report
lists every stack already on the new release with the one command that rolls it back
(`rollout undo STACK --to-revision N --release R`, N its last update before the wave).

Every stack's start and result is written to the wave record, kept beside the stacks' state in
the canary lease's store (operations/record_store.py, key `waves/NAME/R`), before and after it runs:
`--resume` continues a stopped or interrupted wave from it without repeating a finished stack (a
stack that was running when the driver died runs again: promote and canary find what is live),
waits what is left of a soak, and `--until-stage N` stops (paused, exit 0) after stage N, so a CI
job per stage can hand over to the next through the record. Two drivers of one wave cannot both
write its record (conditional writes): the second stops with one line.

Stacks run on worker threads, where Python cannot handle signals: the main thread owns SIGINT and
SIGTERM and forwards them to every running stack (operations/interrupts.py), which ends safely as
`rollout canary` or `promote` would (a canary aborted, its weight back to 0; an update finished,
its lock released). No stack starts after the signal; the stage is recorded as stopped and the
wave ends interrupted (exit 130), to be continued with `--resume`.
"""

from __future__ import annotations

import argparse
import functools
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from model.stack_file import PROJECT_DIR, project_name
from operations import interrupts, promotion, record_store, revisions, stacks
from operations.record_store import RecordConflict, RecordStore
from operations.stacks import InputError, OperationError, StackLike

if TYPE_CHECKING:  # the wave file's pydantic models are built when a wave runs, not for `rollout --help`
    from model.wave_file import Stage, WaveFile

PENDING, RUNNING, SUCCEEDED, FAILED, SKIPPED = "pending", "running", "succeeded", "failed", "skipped"
DONE, PAUSED, STOPPED = "done", "paused", "stopped"
SOAK_REPORT = 300.0  # seconds between progress lines while a soak is waited out


class Clock(Protocol):
    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...


class WallClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class StackAction(Protocol):
    """What a stage does on one stack: returns a one-line result, raises on failure."""

    def __call__(self, stack: StackLike, stage: Stage, image: str) -> str: ...


@dataclass
class WaveRun:
    wave: WaveFile
    name: str
    release: str
    store: RecordStore
    open_stack: Callable[[str], StackLike]
    action: StackAction
    clock: Clock = field(default_factory=WallClock)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    by: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    record: dict[str, Any] = field(default_factory=dict)
    etag: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.release}"

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    # -- the record -----------------------------------------------------------------------
    def _save(self) -> None:
        """Write the record (under the lock); a record changed by someone else stops the run."""
        self.record["updatedAt"] = iso(self.clock.now())
        try:
            self.etag = self.store.replace(self.key, self.record, self.etag)
        except RecordConflict:
            raise OperationError(f"wave {self.name}'s record for {self.release} was changed by another run of it: "
                                 "only one driver may run a wave") from None

    def _stack_entry(self, stage: int, stack: str) -> dict[str, Any]:
        return self.record["stages"][stage]["stacks"][stack]

    def start(self, resume: bool, restart: bool) -> None:
        found = self.store.read(self.key)
        source = self.open_stack(self.wave.from_)
        image = _served_image(source, self.release)
        if found is not None and not restart:
            record, etag = found
            if record.get("status") != DONE and not resume:
                raise InputError(f"wave {self.name} for {self.release} is {record.get('status')} (record of "
                                 f"{record.get('startedAt')}): continue it with --resume, or start again with --restart")
            if record.get("status") != DONE:
                if [[s["name"], sorted(s["stacks"])] for s in record["stages"]] != [
                        [s.name, sorted(s.stacks)] for s in self.wave.stages]:
                    raise InputError(f"waves/{self.name}.yaml changed since its record was written: start again "
                                     "with --restart")
                if record.get("image") != image:
                    raise InputError(f"{self.wave.from_} serves {image} for {self.release} now, the wave started with "
                                     f"{record.get('image')}: start again with --restart")
                self.record, self.etag = record, etag
                self.record["status"] = RUNNING
                self.say(f"wave {self.name}: resuming {self.release} {image} from its record")
                with self._lock:
                    self._save()
                return
        elif resume and found is None:
            self.say(f"wave {self.name}: no record for {self.release} yet: starting")
        self.record = {
            "wave": self.name, "release": self.release, "from": self.wave.from_, "image": image,
            "status": RUNNING, "startedAt": iso(self.clock.now()), "by": self.by,
            "stages": [{"name": s.name, "status": PENDING, "soakUntil": None,
                        "stacks": {name: {"status": PENDING} for name in s.stacks}} for s in self.wave.stages],
        }
        with self._lock:
            if found is None:
                try:
                    self.etag = self.store.create(self.key, self.record)
                except RecordConflict:
                    raise OperationError(f"another run of wave {self.name} for {self.release} has just started") from None
            else:
                self.etag = found[1]
                self._save()
        self.say(f"wave {self.name}: {self.release} {image} from {self.wave.from_}, "
                 f"{len(self.wave.stages)} stage(s): " + "; ".join(f"{s.name} ({', '.join(s.stacks)})"
                                                                   for s in self.wave.stages))

    # -- running --------------------------------------------------------------------------
    def run(self, until_stage: int | None = None) -> int:
        from model.wave_file import soak_seconds

        last = len(self.wave.stages) if until_stage is None else min(until_stage, len(self.wave.stages))
        for index, stage in enumerate(self.wave.stages[:last]):
            entry = self.record["stages"][index]
            if entry["status"] == SUCCEEDED:
                if index + 1 < last:  # its soak is before the next stage, not before a pause
                    self._wait_soak(index)
                continue
            entry["status"] = RUNNING
            with self._lock:
                self._save()
            self.say(f"stage {index + 1}/{len(self.wave.stages)} {stage.name}: {', '.join(stage.stacks)} "
                     f"({stage.run or 'promote'}, {stage.parallel or 1} at a time)")
            succeeded = self._run_stage(index, stage)
            if interrupts.interrupted():
                # Every stack that ran has ended safely; the rest did not start.
                entry["status"] = FAILED
                self.record["status"] = STOPPED
                with self._lock:
                    self._save()
                self._report_stop(index)
                raise KeyboardInterrupt
            if not succeeded:
                entry["status"] = FAILED
                self.record["status"] = STOPPED
                with self._lock:
                    self._save()
                self._report_stop(index)
                return stacks.EXIT_FAILED
            entry["status"] = SUCCEEDED
            soak = soak_seconds(stage)
            if soak and index + 1 < len(self.wave.stages):
                entry["soakUntil"] = iso(self.clock.now() + soak)
            with self._lock:
                self._save()
            if index + 1 < last:
                self._wait_soak(index)
        if last < len(self.wave.stages):
            self.record["status"] = PAUSED
            with self._lock:
                self._save()
            soak_until = self.record["stages"][last - 1].get("soakUntil")
            self.say(f"wave {self.name}: paused after stage {last} ({self.wave.stages[last - 1].name})"
                     + (f", its soak until {soak_until}" if soak_until else "")
                     + f"; continue with: {self._resume_command()}")
            return stacks.EXIT_OK
        self.record["status"] = DONE
        with self._lock:
            self._save()
        self.say(f"wave {self.name}: done, {self.release} {self.record['image']} on "
                 f"{', '.join(s for stage in self.wave.stages for s in stage.stacks)}")
        return stacks.EXIT_OK

    def _wait_soak(self, index: int) -> None:
        until = self.record["stages"][index].get("soakUntil")
        if not until or index + 1 >= len(self.wave.stages):
            return
        end = datetime.fromisoformat(until.replace("Z", "+00:00")).timestamp()
        while (left := end - self.clock.now()) > 0:
            self.say(f"soak after stage {self.wave.stages[index].name}: {left / 60:.0f} min left (until {until})")
            self.clock.sleep(min(left, SOAK_REPORT))

    def _run_stage(self, index: int, stage: Stage) -> bool:
        failed = threading.Event()
        stop_at_first = (self.wave.stop or "first-failure") == "first-failure"

        def one(name: str) -> None:
            entry = self._stack_entry(index, name)
            if entry["status"] == SUCCEEDED:
                self.say(f"  {name}: already on the release (from the record)")
                return
            if failed.is_set() and stop_at_first:
                entry.update(status=SKIPPED, detail="not started: another stack of the stage failed")
                return
            if interrupts.interrupted():
                entry.update(status=SKIPPED, detail="not started: the wave was interrupted")
                with self._lock:
                    self._save()
                return
            try:
                stack = self.open_stack(name)
                entry.update(status=RUNNING, startedAt=iso(self.clock.now()),
                             revisionBefore=entry.get("revisionBefore") or _last_good_revision(stack))
                with self._lock:
                    self._save()
                self.say(f"  {name}: {stage.run or 'promote'} {self.release}")
                # Signals reach this thread through the main thread's guard (a canary's own guard too).
                with interrupts.guard(self._resume_command(), self.say):
                    detail = self.action(stack, stage, self.record["image"])
                entry.update(status=SUCCEEDED, detail=detail, at=iso(self.clock.now()))
                self.say(f"  {name}: succeeded ({detail})")
            except PromotedThenInterrupted as landed:
                entry.update(status=SUCCEEDED, detail=f"{landed.detail}, then interrupted", at=iso(self.clock.now()))
                self.say(f"  {name}: succeeded ({entry['detail']})")
                if not interrupts.interrupted():
                    with self._lock:
                        self._save()
                    raise
            except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 (every failure stops the wave)
                failed.set()
                line = (error.cause if isinstance(error, stacks.UpdateFailed) else
                        "interrupted" if isinstance(error, KeyboardInterrupt) else
                        str(error) if isinstance(error, OperationError) else stacks.error_line(error))
                if interrupts.interrupted() and not isinstance(error, KeyboardInterrupt):
                    line = f"interrupted: {line}"
                entry.update(status=FAILED, detail=" ".join(line.split()), at=iso(self.clock.now()))
                self.say(f"  {name}: FAILED: {entry['detail']}")
                if isinstance(error, KeyboardInterrupt) and not interrupts.interrupted():
                    with self._lock:
                        self._save()
                    raise
            with self._lock:
                self._save()

        with interrupts.workers_running(), \
                ThreadPoolExecutor(max_workers=stage.parallel or 1, thread_name_prefix="wave") as pool:
            futures = [pool.submit(one, name) for name in stage.stacks]
            interrupts.wait_for_workers(futures)  # the signals' handlers run meanwhile
            for future in futures:
                future.result()
        return not failed.is_set()

    def _resume_command(self) -> str:
        return f"python -m rollout wave {self.name} --release {self.release} --resume"

    def _report_stop(self, index: int) -> None:
        stage = self.wave.stages[index]
        failures = {n: e for n, e in self.record["stages"][index]["stacks"].items() if e["status"] == FAILED}
        self.say(f"wave {self.name} STOPPED at stage {index + 1}/{len(self.wave.stages)} ({stage.name}): "
                 + "; ".join(f"{n} failed: {e.get('detail')}" for n, e in failures.items()))
        on_release = [(n, e) for s in self.record["stages"] for n, e in s["stacks"].items()
                      if e["status"] == SUCCEEDED]
        if on_release:
            self.say(f"on {self.release} {self.record['image']} now (roll each back with the command beside it):")
            for name, entry in on_release:
                before = entry.get("revisionBefore")
                command = (f"python -m rollout undo {name} --to-revision {before} --release {self.release}" if before
                           else f"(no update before the wave to go back to on {name})")
                self.say(f"  {name}: {command}")
        else:
            self.say(f"no stack is on {self.release} {self.record['image']} from this wave")
        untouched = [s.name for s in self.wave.stages[index + 1:]]
        if untouched:
            self.say(f"not started: stage(s) {', '.join(untouched)}")
        self.say(f"after a fix, continue with: python -m rollout wave {self.name} --release {self.release} --resume")


def _served_image(stack: StackLike, release: str) -> str:
    record = promotion.release_records(stack.outputs()).get(release)
    if not record or not record.get("image"):
        raise OperationError(f"stack {stack.name} has no release record for {release} (its `releaseRecords` "
                             "output): update it with this version of the program first")
    return str(record["image"])


def _last_good_revision(stack: StackLike) -> int | None:
    good = [r.number for r in stacks.revisions(stack) if r.kind == "update" and r.succeeded]
    return max(good) if good else None


# ---------------------------------------------------------------------------------------------
# What a stage does on a stack
# ---------------------------------------------------------------------------------------------


class PromotedThenInterrupted(KeyboardInterrupt):
    """The stack's update landed, then the signal that came during it stopped the wave."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


@dataclass
class Actions:
    """promote (with proof) or canary; the source and the checks as `rollout promote` has them."""

    release: str
    source: Callable[[], StackLike]
    preflight: Callable[[Any], bool] | None = None
    canary: Callable[[StackLike, str, str, Stage], int] | None = None

    def __call__(self, stack: StackLike, stage: Stage, image: str) -> str:
        source = self.source()
        served = _served_image(source, self.release)
        if served != image:
            raise OperationError(f"{source.name} serves {served} for {self.release} now, not {image}, the image "
                                 "this wave promotes")
        if self._already(stack, image):
            return f"already runs {image}"
        try:
            plan, promoted = promotion.plan_promotion(
                source, stack, self.release, approve=None, allow_tag=False, resolve=_pinned(image),
                now=promotion.utc_now(), by=promotion.actor())
        except OperationError as error:
            if not str(error).startswith("nothing to promote") or stage.run == "canary":
                raise
            # A promotion whose update failed: the config holds the image and its record, the stack does not
            # run them yet. The update again, nothing else.
            stacks.update(stack, f"promote {self.release} from {source.name} (wave, again)", on_output=stacks.stream)
            return f"promoted {image} (the update again)"
        if self.preflight is not None and not self.preflight(promoted):
            raise OperationError(f"preflight checks for {stack.name} failed: nothing was changed")
        if stage.run == "canary":
            if self.canary is None:
                raise OperationError("no canary runner")
            tag = plan.changes[0].new
            code = self.canary(stack, self.release, str(tag), stage)
            if code != 0:
                raise OperationError(f"the canary of {self.release} {tag} failed on {stack.name} (traffic back on "
                                     "its stable track)")
            return f"canary of {tag} passed and promoted"
        try:
            promotion.apply(stack, plan.changes, plan.records, f"promote {self.release} {plan.changes[0].new} from "
                            f"{source.name} (wave)", yes=True, confirm=lambda q, w: True, protected=False)
        except KeyboardInterrupt:
            # A signal during the update lets it finish, then stops the wave (operations/interrupts.py): an
            # update that landed is a promotion done, and the record says so (the stack's outputs are the truth).
            if self._already(stack, image):
                raise PromotedThenInterrupted(f"promoted {plan.changes[0].new}") from None
            raise
        return f"promoted {plan.changes[0].new}"

    def _already(self, stack: StackLike, image: str) -> bool:
        try:
            return _served_image(stack, self.release) == image
        except OperationError:
            return False


def _pinned(image: str) -> promotion.Resolve:
    """The digest the wave pinned at its start, for the image it promotes; a tag without one is refused."""
    def resolve(base: str, tag: str) -> str:
        if "@" in image:
            return image.split("@", 1)[1]
        raise OperationError(f"the wave promotes {image}, which is not pinned by digest: promote it to "
                             "the wave's source stack with `rollout promote` (which pins it) first")
    return resolve


def run_canary_stage(stack: StackLike, release: str, tag: str, stage: Stage, *, log_dir: Any = None,
                     project_dir: Path = PROJECT_DIR) -> int:
    """`rollout canary` with the stage's options; a passed run is recorded as proof on the stack."""
    from model.config import seconds
    from operations.canary_run import CanaryOptions, run_canary

    options = stage.canary
    kwargs: dict[str, Any] = {}
    if options is not None:
        if options.steps:
            kwargs["steps"] = list(options.steps)
        if options.interval:
            kwargs["interval"] = float(seconds(options.interval))
        if options.max_error_rate is not None:
            kwargs["max_error_rate"] = options.max_error_rate
        if options.max_p99_ms is not None:
            kwargs["max_p99"] = options.max_p99_ms / 1000
        if options.metrics:
            kwargs["metrics"] = options.metrics
    # The lease `rollout canary` takes: a wave's canary killed mid-step is found by the watchdog and aborted.
    from operations import lease as leases

    run = run_canary(stack, CanaryOptions(release=release, tag=tag, **kwargs),
                     lease=lambda: leases.spec_for(stack, release, project_dir))
    promotion.record_canary(stack, release, tag, run)
    return run.exit_code


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def do_wave(name: str, release: str, *, project_dir: Any, resume: bool, restart: bool, until_stage: int | None,
            yes: bool, confirm: stacks.Confirm, open_stack: Callable[[str], StackLike] | None = None,
            store: RecordStore | None = None, action: StackAction | None = None, clock: Clock | None = None,
            out: TextIO | None = None) -> int:
    from model.wave_file import WaveError, load

    try:
        wave = load(name, project_dir)
    except WaveError as error:
        for line in error.problems:
            print(f"error: {line}", file=sys.stderr)
        return stacks.EXIT_USAGE
    if until_stage is not None and until_stage > len(wave.stages):
        raise InputError(f"--until-stage {until_stage}: wave {name} has {len(wave.stages)} stage(s)")
    opener = open_stack or (lambda stack: stacks.open_stack(stack, project_dir))
    if store is None:
        store = record_store.store_for(record_store.backend_url(project_dir), "waves", project_name(project_dir))
    every = [s for stage in wave.stages for s in stage.stacks]
    if not yes and not confirm(f"Run wave {name} of {release} from {wave.from_} over {', '.join(every)}?", name):
        print("not confirmed: nothing was changed (pass --yes to skip the question)")
        return stacks.EXIT_FAILED
    run = WaveRun(wave, name, release, store, opener,
                  action or Actions(release, lambda: opener(wave.from_), revisions.preflight_ok,
                                    functools.partial(run_canary_stage, project_dir=project_dir)),
                  clock or WallClock(), out or sys.stdout, by=promotion.actor())
    # The main thread owns SIGINT/SIGTERM and forwards them to the stacks running on workers.
    with interrupts.guard(f"python -m rollout wave {name} --release {release} --resume"):
        run.start(resume, restart)
        return run.run(until_stage)


def cmd_wave(args: argparse.Namespace) -> int:
    return stacks.guarded(lambda: do_wave(args.wave, args.release, project_dir=args.cwd, resume=args.resume,
                                          restart=args.restart, until_stage=args.until_stage, yes=args.yes,
                                          confirm=stacks.confirm_tty))


def _stage_number(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a stage number, 1 or more (got {text!r})")
    return int(text)


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "wave", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="take a release through several stacks, stage by stage",
        description="Run waves/NAME.yaml for RELEASE: pin what the wave's `from` stack serves (by digest), then per "
                    "stage promote it (with proof) or run a judged canary of it on each stack, `parallel` at a time, "
                    "soak between stages, and stop at the first failure with every stack already on the release "
                    "and the command that rolls each back. The record, beside the stacks' state, lets --resume "
                    "continue a stopped or interrupted wave. Needs the Pulumi CLI and a file:// or s3:// backend.",
        epilog="example:\n  python -m rollout wave prod --release app\n"
               "  python -m rollout wave prod --release app --resume --until-stage 2")
    parser.add_argument("wave", metavar="NAME", help="the wave file waves/NAME.yaml")
    parser.add_argument("--release", metavar="NAME", required=True)
    parser.add_argument("--resume", action="store_true", help="continue the wave from its record")
    parser.add_argument("--restart", action="store_true", help="start again, replacing an unfinished record")
    parser.add_argument("--until-stage", type=_stage_number, metavar="N",
                        help="stop after stage N (paused; --resume continues): a CI job per stage")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=cmd_wave)
