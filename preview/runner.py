"""Run the real `__main__.py` offline under the provider-like mocks (preview/mocks.py).

No Pulumi CLI, engine, cloud or cluster: the program runs in this process against a mock
resource monitor. What comes back is every registered resource with its parent, inputs and
outputs, the stack's exports and the warnings the program logged.

One thing the SDK does for the real engine is left out: source positions. For every resource
the SDK walks the Python stack (traceback.extract_stack) to tell the engine which line of the
program created it; the engine shows it in diagnostics, the mocks drop it, and nothing here
reads it, yet it cost about a tenth of a run's CPU. In a program run's thread (only there:
another thread's registrations, an Automation API program's say, keep theirs) the SDK's
private stack-trace function in `pulumi.runtime.resource` answers with the empty stack trace the SDK
itself sends when it finds no user frame (preview/mocks.py's skip_source_positions, with the
other private names the mocks need). Should a new SDK drop or rename that function, or its
`source_pb2` module, the capture simply stays on (slower, same registrations).

The cyclic garbage collector waits while a program runs. A run allocates hundreds of thousands
of short-lived objects in reference cycles (the SDK's Outputs, futures and tasks), and under
`pulumi up` the collector finds them in the program's own small process; here, every full
collection the run triggers also walks the caller's whole heap (a test session holds its
modules and many finished runs), about a sixth of a run's CPU. So automatic collection is off
from the start of the run to its end (nested and concurrent runs count: the last one out turns
it back on, and only if it was on), then one collection of the youngest generation, which holds
exactly what the run allocated, frees the run's garbage before any of it is promoted. Memory is
the price: a run's garbage stays until the run ends (a few MB for the stacks here).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import runpy
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model.stack_file import PROJECT_DIR, cli_string, project_name, stack_settings
from preview.mocks import (
    FAKE_REGION,
    PROGRAM_THREAD,
    RegisteredResource,
    as_ints,
    mock_classes,
    skip_source_positions,
)


@dataclass
class ProgramRun:
    stack: str
    resources: list[RegisteredResource]
    outputs: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    error: BaseException | None = None
    secret_outputs: set[str] = field(default_factory=set)
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def of_type(self, typ: str) -> list[RegisteredResource]:
        return [r for r in self.resources if r.type == typ]

    def kubernetes_objects(self) -> list[RegisteredResource]:
        return [r for r in self.resources if r.custom and r.type.startswith("kubernetes:")
                and not r.type.startswith("kubernetes:helm.sh/")]

    def named(self, name: str) -> RegisteredResource:
        for r in self.resources:
            if r.name == name:
                return r
        raise KeyError(name)


_collector_lock = threading.Lock()
_runs_holding_collector = 0
_collector_was_enabled = False


@contextmanager
def _collection_after_run() -> Iterator[None]:
    """No automatic garbage collection during the run; the youngest generation collected after it (module docstring)."""
    global _runs_holding_collector, _collector_was_enabled
    with _collector_lock:
        if _runs_holding_collector == 0:
            _collector_was_enabled = gc.isenabled()
            gc.disable()
        _runs_holding_collector += 1
    try:
        yield
    finally:
        with _collector_lock:
            _runs_holding_collector -= 1
            resume = _runs_holding_collector == 0 and _collector_was_enabled
            if resume:
                gc.enable()
        if resume:
            gc.collect(0)


class _InlineExecutor(ThreadPoolExecutor):
    """An executor that runs each call in the submitting thread and hands back its finished future.
    (asyncio takes only a ThreadPoolExecutor as a loop's default; this one never starts a thread.)"""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the RPC's error is the awaiting coroutine's to raise
            future.set_exception(exc)
        return future


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_program(stack: str, project_dir: Path = PROJECT_DIR, overrides: dict[str, Any] | None = None,
                settings: dict[str, Any] | None = None) -> ProgramRun:
    """Run `__main__.py` for `stack` under provider-like mocks and return what it registered.

    `settings` replaces the stack file entirely (tests pass config directly); `overrides`
    patches individual keys on top of the stack file. An exception from the program is
    returned in `error`, with whatever registered before it.

    The run has a thread and an event loop of its own, as `pulumi up` gives a program a process
    of its own: nothing of one run (config, root stack, pending outputs) reaches the next. The
    SDK's source positions are not captured in that thread (module docstring).
    """
    box: dict[str, Any] = {}
    skip_source_positions()

    def in_thread() -> None:
        PROGRAM_THREAD.active = True
        loop = asyncio.new_event_loop()
        # The SDK hands every RPC (register, invoke) to the loop's executor. The mocks answer at once,
        # in plain Python, so the call runs right there (_InlineExecutor): a thread would add only the
        # hand-offs (about a sixth of a run's CPU). (Outputs still resolve in varying order, so a program
        # whose resources wait on others, the EKS stacks, registers them in an order that can vary.)
        loop.set_default_executor(_InlineExecutor())
        asyncio.set_event_loop(loop)
        try:
            box["run"] = _run_in_this_thread(stack, project_dir, overrides, settings)
        except BaseException as exc:  # handed to the caller's thread below
            box["raised"] = exc
        finally:
            loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()

    # A daemon: Ctrl-C in the caller ends the command at once (nothing is written before the run returns).
    worker = threading.Thread(target=in_thread, name=f"pulumi-program-{stack}", daemon=True)
    with _collection_after_run():
        worker.start()
        worker.join()
    raised, run = box.get("raised"), box.get("run")
    box.clear()  # the exception's traceback holds this frame: no cycle through the box
    if raised is not None:
        raise raised
    return run


async def _output_state(output: Any) -> tuple[Any, bool, bool]:
    """An Output's value, whether it is known and whether it is secret."""
    return await output.future(with_unknowns=True), await output.is_known(), await output.is_secret()


def _run_in_this_thread(stack: str, project_dir: Path, overrides: dict[str, Any] | None,
                        settings: dict[str, Any] | None) -> ProgramRun:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings as pulumi_settings

    values = settings if settings is not None else stack_settings(stack, project_dir, overrides)
    region = values.get("aws:region") or FAKE_REGION
    mocks_class, monitor_class = mock_classes()
    mocks = mocks_class(stack, str(region))
    monitor = monitor_class(mocks)
    collector = _Collect()
    logger = logging.getLogger(f"app-update.offline.{stack}")
    logger.propagate = False
    logger.handlers = [collector]

    pulumi_settings.reset_options()
    pulumi.runtime.set_all_config({k: cli_string(v) for k, v in values.items()}, [])
    pulumi_mocks.set_mocks(mocks, project=project_name(project_dir), stack=stack, preview=False,
                           logger=logger, monitor=monitor)
    added_path = str(project_dir) not in sys.path
    if added_path:
        sys.path.insert(0, str(project_dir))

    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    error: BaseException | None = None

    captured: dict[str, Any] = {}

    # pulumi.runtime.test is the SDK's public way to run code under the mocks and wait for what it
    # returns; the stack's exports are the root Stack's public `outputs` (pulumi/pulumi#6113).
    @pulumi.runtime.test
    def program() -> Any:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")
        exported = dict(pulumi.runtime.get_root_resource().outputs or {})
        names = sorted(exported)
        # Output.from_input walks a whole value, making an Output of every list, dict and leaf in it: each
        # export is lifted once, and its value, secrecy and knownness are read from that one Output.
        lifted = [pulumi.Output.from_input(exported[n]) for n in names]

        async def capture() -> None:
            states = await asyncio.gather(*[_output_state(output) for output in lifted])
            if all(known for _, known, _ in states):  # (as an apply over them all, skipped if one is unknown)
                captured.update(outputs={n: value for n, (value, _, _) in zip(names, states, strict=True)},
                                secrets={n for n, (_, _, secret) in zip(names, states, strict=True) if secret})

        return capture()

    try:
        program()
        outputs = as_ints(captured.get("outputs") or {})
        secret_outputs = set(captured.get("secrets") or ())
    except (Exception, SystemExit) as exc:  # the program's own failure is the caller's to report (a program
        # that exits, as on invalid config, would end the executor's process: here it ends only the run)
        error = exc
    finally:
        pulumi_settings.reset_options()
        if added_path and str(project_dir) in sys.path:
            sys.path.remove(str(project_dir))
    return ProgramRun(stack=stack, resources=list(monitor.registrations), outputs=outputs,
                      warnings=collector.messages, error=error, secret_outputs=secret_outputs, invokes=mocks.invokes)
