"""A canary that survives its driver: real `rollout` processes (tests/stand_in_rollout.py: the real
command line over a stand-in stack kept in a file:// backend) killed with SIGKILL or SIGTERM, then
the watchdog, a second driver and `--resume` over what they left behind.

No test waits on the wall clock: each waits for a line the process prints, and a lease's expiry is
reached by moving the leases' clock (operations.lease.wall_clock), not by sleeping.
"""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from operations import lease as leases
from operations import stacks
from operations.record_store import FileRecordStore
from rollout.cli import main
from tests.stand_in_driver import HANG, URL, Driver, file_backend, lease_record, shift_clock
from tests.stand_in_rollout import FileStack

RELEASES = "app-update:releases"
CONFIG = {"app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
          RELEASES: {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4,
                             "stable": {"tag": "v1"}, "canary": {"tag": "v1", "weight": 0}}}}
LEASE_KEY = "staging/app"  # at .app-update/leases/app-update/staging/app.json


@pytest.fixture
def backend(tmp_path, monkeypatch):
    return file_backend(tmp_path, monkeypatch, CONFIG)


def live(backend):
    return FileStack("staging", backend).outputs()["releases"].value["app"]


def canary(backend, tmp_path, *extra, **kwargs):
    return Driver(backend, "canary", "staging", "--release", "app", "--url", URL, "--yes",
                  "--steps", "50", "--interval", "60m", "--log", str(tmp_path / "canary.log"), *extra, **kwargs)


def test_of_two_canaries_started_together_exactly_one_runs(backend, tmp_path):
    heard = threading.Condition()
    drivers = [canary(backend, tmp_path, "--tag", "v2", "--log", str(tmp_path / f"{i}.log"), heard=heard)
               for i in range(2)]
    try:
        with heard:  # one is judging its step and the other has ended, whichever is which
            assert heard.wait_for(lambda: sum(bool(d.said("stand-in: judging the step")) for d in drivers) == 1
                                  and any(d.ended for d in drivers), HANG), [d.output for d in drivers]
        runner = next(d for d in drivers if d.said("stand-in: judging the step"))
        refused = next(d for d in drivers if d is not runner)
        assert refused.finish() == 1
        error = refused.said("error: ")
        assert f"pid {runner.process.pid}" in error and "canary by" in error, refused.output
        assert ("looked after by another run" in error or "another process took the lease first" in error)
        assert lease_record(backend)["holder"]["pid"] == runner.process.pid
        assert FileStack("staging", backend).up_messages.count("canary app v2: weight 50%") == 1
    finally:
        for driver in drivers:
            driver.kill()


def test_a_killed_canary_is_aborted_by_the_watchdog_once_its_lease_expires(backend, tmp_path, monkeypatch, capsys):
    driver = canary(backend, tmp_path, "--tag", "v2")
    try:
        driver.wait_for("stand-in: judging the step")
        held = lease_record(backend)
        assert held["state"] == "running" and held["holder"]["pid"] == driver.process.pid
        assert held["weight"] == 50 and held["tags"] == {"stable": "v1", "canary": "v2"} and held["step"] == 1
        # A second driver meanwhile is refused with the holder's details, and changes nothing.
        updates = len(FileStack("staging", backend).up_messages)
        assert main(["canary", "staging", "--release", "app", "--tag", "v3", "--url", URL, "--yes",
                     "--log", str(tmp_path / "second.log")]) == 1
        err = capsys.readouterr().err
        assert f"pid {driver.process.pid}" in err and "step 1/1, weight 50%" in err and "expires" in err
        assert len(FileStack("staging", backend).up_messages) == updates
    finally:
        driver.kill()  # SIGKILL mid-step: no handler runs, the lease stays as it was
    assert live(backend)["effectiveWeight"] == 50 and lease_record(backend)["state"] == "running"
    updates = len(FileStack("staging", backend).up_messages)

    # Before the expiry: the lease is live, the watchdog leaves it alone.
    assert main(["watchdog", "staging"]) == 0
    assert "left alone" in capsys.readouterr().out
    assert len(FileStack("staging", backend).up_messages) == updates and live(backend)["effectiveWeight"] == 50

    # After it: the canary's weight goes to 0 through the stack, and the lease says so.
    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)
    assert main(["watchdog", "staging"]) == 0
    out = capsys.readouterr().out
    assert "staging app: ABORTED by the watchdog (its lease expired" in out
    assert live(backend)["effectiveWeight"] == 0 and live(backend)["requestedWeight"] == 0
    record = lease_record(backend)
    assert record["state"] == "ended" and record["outcome"] == "aborted"
    assert record["holder"]["command"] == "watchdog" and record["expiredLease"]["pid"] == driver.process.pid
    stack = FileStack("staging", backend)
    assert stack.up_messages[updates:] == ["abort canary app: weight first, canary pods kept", "abort canary app"]
    assert not stack.lock_files()

    # Again: nothing changes.
    assert main(["watchdog", "staging"]) == 0
    assert "ended aborted" in capsys.readouterr().out
    assert len(FileStack("staging", backend).up_messages) == updates + 2 and lease_record(backend) == record


def test_resume_finishes_the_run_a_fresh_expired_lease_describes(backend, tmp_path, monkeypatch, capsys):
    driver = canary(backend, tmp_path, "--tag", "v2", "--steps", "25,50")
    driver.wait_for("stand-in: judging the step")
    driver.kill()
    from operations import canary_run
    from tests.fake_stack import answers_at_weight

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    resume = ["canary", "staging", "--release", "app", "--resume", "--yes", "--log", str(tmp_path / "resumed.log")]
    # Before the expiry: refused, the run is still looked after.
    assert main(resume) == 1
    assert "the run is still looked after" in capsys.readouterr().err
    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)
    assert main(resume) == 0
    out = capsys.readouterr().out
    assert "from the lease: steps, interval, " in out
    assert "resuming the run of canary by" in out and "at step 1/2, live weight 25%" in out
    assert "step 1/2: weight 25% is live already: judging it again" in out
    assert "step 2/2: weight 50%, updating staging" in out and "promoted: app runs v2" in out
    assert live(backend)["tags"] == {"stable": "v2", "canary": "v2"} and live(backend)["effectiveWeight"] == 0
    record = lease_record(backend)
    assert record["outcome"] == "promoted" and record["resumedFrom"]["pid"] == driver.process.pid


def left_by_a_dead_driver(backend, weight=50):
    """What a driver killed mid-step leaves: the canary at `weight` and its lease, not renewed since."""
    stack = FileStack("staging", backend)
    stack.set_config(f"{RELEASES}.app.canary.tag", config_value("v2"), path=True)
    stack.set_config(f"{RELEASES}.app.canary.weight", config_value(weight), path=True)
    stack.up(message=f"canary app v2: weight {weight}%")
    leases.acquire(FileRecordStore(backend / ".app-update/leases/app-update"), LEASE_KEY, {
        "state": "running", "stack": "staging", "release": "app",
        "holder": {"user": "ci@runner", "pid": 4242, "command": "canary", "ciRun": None},
        "steps": [weight], "step": 1, "weight": weight, "tags": {"stable": "v1", "canary": "v2"},
        "run": {"tag": "v2", "steps": [weight], "url": URL}}, leases.DEFAULT_SECONDS, may_take=lambda r, now: None)


def test_resume_refuses_when_the_live_state_moved_since_the_lease(backend, tmp_path, monkeypatch, capsys):
    left_by_a_dead_driver(backend)
    stack = FileStack("staging", backend)
    stack.set_config(f"{RELEASES}.app.canary.weight", config_value(25), path=True)
    stack.up(message="by hand from another checkout")
    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)
    assert main(["canary", "staging", "--release", "app", "--resume", "--yes", "--log", str(tmp_path / "r.log")]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "weight 50 in the lease, 25 live" in err
    assert lease_record(backend)["holder"]["pid"] == 4242  # untouched


def config_value(value):
    from pulumi.automation import ConfigValue

    return ConfigValue(value=str(value))


def test_sigterm_mid_update_lets_the_update_finish_then_the_process_aborts_and_releases_the_lock(backend, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    driver = canary(backend, tmp_path, "--tag", "v2",
                    env={"STAND_IN_GATE": str(gate), "STAND_IN_GATE_MESSAGE": "weight 50%: canary pods"})
    driver.wait_for("stand-in: update held")
    assert len(FileStack("staging", backend).lock_files()) == 1  # the update runs and holds the lock
    driver.process.send_signal(signal.SIGTERM)
    driver.wait_for("SIGTERM: letting the running update finish")
    driver.process.send_signal(signal.SIGINT)
    line = driver.wait_for("SIGINT again: still running:")
    assert "`pulumi up` (canary app v2: weight 50%: canary pods for 50% first)" in line
    assert f"kill -9 {driver.process.pid}" in line
    assert line.endswith("finish with: python -m rollout abort staging --release app --yes")
    driver.release_gate(gate)  # the update ends
    assert driver.finish() == 1, driver.output
    assert "ABORT at step 1/1 (weight 50%): interrupted by the operator" in driver.output
    assert "traffic to the canary is back at 0%" in driver.output
    stack = FileStack("staging", backend)
    assert not stack.lock_files()
    assert stack.applied[-1][2] == "succeeded" and live(backend)["effectiveWeight"] == 0
    record = lease_record(backend)
    assert record["state"] == "ended" and record["outcome"] == "aborted"


def test_two_watchdogs_at_once_abort_once(backend, tmp_path, monkeypatch, capsys):
    left_by_a_dead_driver(backend)
    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)
    # Both read the expired lease before either writes: the conditional write decides.
    both_read = threading.Barrier(2)
    real_read = FileRecordStore.read
    reads = threading.local()

    def read(self, key):
        found = real_read(self, key)
        reads.count = getattr(reads, "count", 0) + 1
        if threading.current_thread().name.startswith("watchdog") and reads.count == 2:  # the read acquire() makes
            both_read.wait(timeout=HANG)
        return found

    monkeypatch.setattr(FileRecordStore, "read", read)
    from operations.watchdog import watch_release

    spec = leases.LeaseSpec(FileRecordStore(backend / ".app-update/leases/app-update"), LEASE_KEY)
    results = {}

    def run(name):
        results[name] = watch_release(FileStack("staging", backend), "app", spec, out=open(os.devnull, "w"),
                                      policy=stacks.RetryPolicy())

    threads = [threading.Thread(target=run, args=(f"watchdog-{i}",), name=f"watchdog-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG)
    lines = sorted(line for line, failed in results.values())
    assert len(lines) == 2 and not any(failed for _, failed in results.values())
    assert sum("ABORTED by the watchdog" in line for line in lines) == 1
    assert sum("another process took the lease first" in line for line in lines) == 1
    stack = FileStack("staging", backend)
    assert stack.up_messages.count("abort canary app") == 1 and live(backend)["effectiveWeight"] == 0


# -- a wave's canaries run on worker threads: the main thread owns the signals and forwards them ----------

DIGEST = "sha256:" + "7" * 64
WAVE = """\
from: staging
stages:
  - name: first
    stacks: [{first}]
    parallel: 2
    run: canary
    canary: {{steps: [50], interval: 60m}}
  - name: second
    stacks: [later]
    run: promote
"""


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    """A project directory with a wave, and its stacks in a file:// backend: staging serves v2 by digest,
    verified long ago; the prod stacks run v1 and take releases from staging."""
    from datetime import UTC, datetime

    from operations import promotion

    state = tmp_path / "state"
    project = tmp_path / "project"
    (project / "waves").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: app-update\nruntime: python\n")
    source = FileStack("staging", state, {**CONFIG, RELEASES: {"app": {
        **CONFIG[RELEASES]["app"], "stable": {"tag": f"v2@{DIGEST}"}, "canary": {"tag": f"v2@{DIGEST}", "weight": 0}}}})
    source.up(message="initial")
    promotion.do_verify(source, "app", "smoke", True, lambda prompt, expected: True,
                        now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    for name in ("prod-a", "prod-b", "later"):
        FileStack(name, state, {**CONFIG, "app-update:promotion": {"from": ["staging"]}}).up(message="initial")
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{state}")
    return state, project


def wave_driver(fleet, tmp_path, first, **kwargs):
    state, project = fleet
    (project / "waves" / "w.yaml").write_text(WAVE.format(first=first))
    return Driver(state, "-C", str(project), "wave", "w", "--release", "app", "--yes", **kwargs)


def wave_record(state):
    return json.loads((state / ".app-update/waves/app-update/w/app.json").read_text())


def test_sigterm_reaches_every_running_canary_of_a_wave_stage(fleet, tmp_path):
    state, _ = fleet
    driver = wave_driver(fleet, tmp_path, "prod-a, prod-b")
    try:
        with driver.heard:  # both canaries are judging their step, each on a worker thread
            assert driver.heard.wait_for(lambda: driver.lines.count("stand-in: judging the step") == 2
                                         or driver.ended, HANG), driver.output
        assert not driver.ended, driver.output
        driver.process.send_signal(signal.SIGTERM)
        assert driver.finish() == 130, driver.output
    finally:
        driver.kill()
    assert "SIGTERM: stopping after what runs now ends safely" in driver.output
    assert driver.output.count("ABORT at step 1/1 (weight 50%): interrupted by the operator") == 2, driver.output
    for name in ("prod-a", "prod-b"):  # nobody promoted them: their weight is back at 0, their leases ended
        stack = FileStack(name, state)
        assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0 and not stack.lock_files()
        assert stack.up_messages[-1].startswith("canary app v2@") and "aborted" in stack.up_messages[-1]
        assert lease_record(state, name)["outcome"] == "aborted"
    record = wave_record(state)
    assert record["status"] == "stopped" and record["stages"][0]["status"] == "failed"
    assert all(entry["detail"].startswith("interrupted")
               for entry in record["stages"][0]["stacks"].values()), record
    assert record["stages"][1]["status"] == "pending" and FileStack("later", state).up_messages == ["initial"]
    assert "continue with: python -m rollout wave w --release app --resume" in driver.output


def test_sigint_mid_update_of_a_wave_canary_lets_it_finish_then_aborts(fleet, tmp_path):
    state, _ = fleet
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    driver = wave_driver(fleet, tmp_path, "prod-a",
                         env={"STAND_IN_GATE": str(gate), "STAND_IN_GATE_MESSAGE": "weight 50%: canary pods"})
    try:
        driver.wait_for("stand-in: update held")
        assert len(FileStack("prod-a", state).lock_files()) == 1
        driver.process.send_signal(signal.SIGINT)
        driver.wait_for("SIGINT: letting the running update finish")
        driver.process.send_signal(signal.SIGINT)
        line = driver.wait_for("SIGINT again: still running:")
        assert line.endswith("finish with: python -m rollout abort prod-a --release app --yes"), line
        driver.release_gate(gate)  # the update ends
        assert driver.finish() == 130, driver.output
    finally:
        driver.kill()
    assert "ABORT at step 1/1 (weight 50%): interrupted by the operator" in driver.output
    assert "traffic to the canary is back at 0%" in driver.output
    stack = FileStack("prod-a", state)
    assert not stack.lock_files() and stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0
    assert lease_record(state, "prod-a")["outcome"] == "aborted"
    assert wave_record(state)["status"] == "stopped" and FileStack("later", state).up_messages == ["initial"]
