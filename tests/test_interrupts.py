"""SIGINT and SIGTERM around updates (operations/interrupts.py), against a stand-in that keeps the
stack's lock when its caller lets Ctrl-C out of `up()`, as the real CLI can."""

from __future__ import annotations

import os
import signal

import pytest
from pulumi.automation.errors import ConcurrentUpdateError

from operations import interrupts
from operations.canary_run import CanaryOptions, do_abort, run_canary
from operations.stacks import RetryPolicy
from tests.clock import VirtualClock
from tests.fake_stack import FakeStack, answers_at_weight

RELEASES = "app-update:releases"


@pytest.fixture(autouse=True)
def python_sigint():
    """SIGINT as a Python process has it when started from a terminal (default_int_handler: KeyboardInterrupt),
    whatever this process started with: one started in the background by a shell without job control has SIGINT
    ignored, and Python then leaves it ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def canary_stack(weight=0):
    stack = FakeStack("staging", {
        "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
        RELEASES: {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4, "stable": {"tag": "v1"},
                           "canary": {"tag": "v2" if weight else "v1", "weight": weight}}}})
    stack.up(message="initial")
    return stack


def test_the_stand_in_keeps_the_lock_when_its_caller_lets_ctrl_c_out_of_up():
    stack = canary_stack()
    stack.script = ["interrupt"]
    with pytest.raises(KeyboardInterrupt):
        stack.up(message="interrupted")  # no handler: KeyboardInterrupt, the CLI dies holding the lock
    for _ in range(3):
        with pytest.raises(ConcurrentUpdateError):
            stack.up(message="next")
    assert stack.summaries[-1].result == "failed"


def test_without_the_guard_the_abort_that_follows_waits_out_the_lock(capsys):
    # What the issue saw: an update interrupted the old way leaves the lock; the abort ends NOT RESTORED.
    stack = canary_stack(weight=50)
    stack.script = ["interrupt"]
    with pytest.raises(KeyboardInterrupt):
        stack.up(message="canary app v2: weight 50%")
    assert do_abort(stack, "app", True, None, clock=VirtualClock(), policy=RetryPolicy(lock_wait=20)) == 1
    assert "NOT RESTORED (the stack stayed locked by another update for 20s)" in capsys.readouterr().out


def test_ctrl_c_mid_update_lets_the_cli_finish_then_the_abort_completes_with_the_lock_released(capsys, monkeypatch):
    from operations import canary_run

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    stack = canary_stack()
    real_up = stack.up

    def up(**kwargs):  # Ctrl-C in the middle of the second step's first update
        if kwargs.get("message", "").startswith("canary app v2: weight 50%: canary pods"):
            stack.script = ["interrupt"]
        return real_up(**kwargs)

    stack.up = up
    run = run_canary(stack, CanaryOptions(release="app", tag="v2", steps=[25, 50], url="http://127.0.0.1:9/"),
                     clock=VirtualClock())
    assert run.exit_code == 1 and run.aborted == "interrupted by the operator"
    out = capsys.readouterr().out
    assert "SIGINT: letting the running update finish so the stack's lock is released" in out
    assert "traffic to the canary is back at 0%" in out and "NOT RESTORED" not in out
    assert stack.locked_by is None and stack.applied[-1][2] == "succeeded"
    assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0


def test_a_signal_outside_an_update_interrupts_at_once():
    with interrupts.guard("FINISH", lambda text: None):
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)


def test_signals_during_an_update_set_a_flag_and_a_second_one_says_what_runs():
    said = []
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # default_int_handler unless the
    # process started with SIGINT ignored (as under a profiler or `nohup`)
    with interrupts.guard("python -m rollout abort staging --release app --yes", said.append):
        with interrupts.updating("canary app v2: weight 25%"):
            signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)
            assert interrupts.pending()
        with pytest.raises(KeyboardInterrupt):
            interrupts.checkpoint()
        assert not interrupts.pending()
    assert said[0].startswith("SIGTERM: letting the running update finish")
    assert said[1].startswith("SIGINT again: still running: `pulumi up` (canary app v2: weight 25%)")
    assert f"kill -9 {os.getpid()}" in said[1] and said[1].endswith("python -m rollout abort staging --release app --yes")
    # The previous handlers are back.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_the_abort_path_is_shielded_it_says_what_runs_instead():
    said = []
    with interrupts.guard("FINISH", said.append), interrupts.shielded("the abort of the canary of app"):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        interrupts.checkpoint()  # no KeyboardInterrupt: the abort goes on
    assert "the abort goes on" in said[0] and "still running: the abort of the canary of app" in said[1]


def test_a_line_said_while_the_log_writes_another_on_the_same_thread_waits_and_follows_it(tmp_path):
    """A second Ctrl-C right after the first one's line: its handler runs in the main thread inside the log's own
    write of that line. Writing to the same buffered file there raised RuntimeError ('reentrant call') and
    aborted the run mid-update in CI; the handler's line now waits for the write it interrupted, and follows it."""
    import io
    import json

    from operations.canary_run import RunLog

    out = io.StringIO()
    log = RunLog(tmp_path / "run.log", out)
    real_file, interrupted = log.file, []

    class WriteInterruptedByAHandler:
        def write(self, text):
            if not interrupted:  # the signal arrives in the middle of the first line's write
                interrupted.append(True)
                log.say("SIGINT again: still running")
            return real_file.write(text)

        def flush(self):
            real_file.flush()

        def close(self):
            real_file.close()

    log.file = WriteInterruptedByAHandler()
    log.say("SIGTERM: letting the running update finish")
    log.event("step", weight=50)
    log.close()
    records = [json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines()]
    assert [r.get("text", r["event"]) for r in records] == [
        "SIGTERM: letting the running update finish", "SIGINT again: still running", "step"]
    assert out.getvalue().splitlines() == ["SIGTERM: letting the running update finish",
                                           "SIGINT again: still running"]


# A wave's main thread owns the signals and forwards them to its worker threads: each scenario in a process of its
# own (with the handler that once took a worker's lock, the main thread waited forever on a lock it held). SCENARIO is
# what both start with: the lines said, and the worker's moments.
SCENARIO = """
import os, signal, threading
from concurrent.futures import ThreadPoolExecutor
from operations import interrupts

said, in_update, answered = [], threading.Event(), threading.Event()
"""
SECOND_SIGNAL_WHILE_THE_FIRST_IS_SAID = SCENARIO + """
def say(text):
    said.append(text)
    if "letting the running update finish" in text:
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C while the first one's line is being written
    if "again: still running" in text:
        answered.set()

def worker():
    with interrupts.guard("python -m rollout wave w --release app --resume", say):
        with interrupts.updating("canary app v2: weight 50%"):
            in_update.set()
            answered.wait(60)
        said.append(f"pending: {interrupts.pending()}")  # the update ends, then the canary is aborted

signal.signal(signal.SIGINT, signal.default_int_handler)
with interrupts.guard("python -m rollout wave w --release app --resume", say):
    with ThreadPoolExecutor(1) as pool:  # as operations/waves.py runs a stage's stacks
        futures = [pool.submit(worker)]
        in_update.wait(60)
        os.kill(os.getpid(), signal.SIGINT)
        interrupts.wait_for_workers(futures)
        futures[0].result()
    assert interrupts.interrupted()
print("\\n".join(said))
"""


# The kernel may give a process's signal to a thread other than the main one (here: given to the worker by
# pthread_kill); Python runs the handler in the main thread, which must wake to run it while its workers go on.
A_SIGNAL_TAKEN_BY_A_WORKER_THREAD = SCENARIO + """
def say(text):
    said.append(text)
    if "letting the running update finish" in text:
        answered.set()

def worker():
    with interrupts.guard("python -m rollout wave w --release app --resume", say):
        with interrupts.updating("canary app v2: weight 50%"):
            in_update.set()
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            said.append(f"answered while the update ran: {answered.wait(30)}")

signal.signal(signal.SIGINT, signal.default_int_handler)
with interrupts.guard("python -m rollout wave w --release app --resume", say):
    with ThreadPoolExecutor(1) as pool:
        futures = [pool.submit(worker)]
        interrupts.wait_for_workers(futures)
        futures[0].result()
print("\\n".join(said))
"""


@pytest.mark.parametrize("script", [SECOND_SIGNAL_WHILE_THE_FIRST_IS_SAID, A_SIGNAL_TAKEN_BY_A_WORKER_THREAD],
                         ids=["a second signal while the first is said", "a signal taken by a worker thread"])
def test_a_signal_during_a_workers_update_is_forwarded_to_it_at_once(script):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("SIGINT: stopping after what runs now ends safely")
    assert lines[1].startswith("SIGINT: letting the running update finish")
    if script is SECOND_SIGNAL_WHILE_THE_FIRST_IS_SAID:
        assert lines[2].startswith("SIGINT again: still running: `pulumi up` (canary app v2: weight 50%)")
        assert lines[3:] == ["pending: True"]
    else:
        assert lines[2:] == ["answered while the update ran: True"]


def test_a_line_that_cannot_be_written_does_not_keep_the_signal_from_the_workers():
    """`rollout wave ... | tee log` and Ctrl-C: the same signal ends `tee`, and the wave's first line about it meets
    a closed pipe. The forwarding goes on: the worker's update still learns of the signal, and so does the next."""
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from tests.prometheus_server import wait_for

    def closed_pipe(text):
        raise BrokenPipeError(32, "Broken pipe")

    seen: list[int] = []

    def worker():
        said = []
        with interrupts.guard("python -m rollout wave w --release app --resume", said.append):
            with interrupts.updating("canary app v2: weight 50%"):
                for signals in (1, 2):
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                    with contextlib.suppress(TimeoutError):  # (then `seen` says how far it got)
                        wait_for(lambda n=signals: len(said) >= n, 10, f"signal {signals} to reach the worker")
                    seen.append(len(said))
        return said

    with interrupts.guard("python -m rollout wave w --release app --resume", closed_pipe):
        with interrupts.workers_running(), ThreadPoolExecutor(1) as pool:
            futures = [pool.submit(worker)]
            interrupts.wait_for_workers(futures)
            said = futures[0].result()
    assert seen == [1, 2]
    assert said[0].startswith("SIGINT: letting the running update finish") and "again" in said[1]
