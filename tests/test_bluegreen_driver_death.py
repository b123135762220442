"""A blue-green run that outlives its driver: a real `python -m rollout bluegreen` process (tests/stand_in_rollout.py:
the real command line over a stand-in stack in a file:// backend) killed with SIGKILL, then `rollout watchdog` over
what it left behind: before the switch it scales the preview color down; in the window it finishes the scale-down
once the window is over. No test waits on the wall clock: each waits for a line the process prints, and a lease's
expiry is reached by moving the leases' clock."""

from __future__ import annotations

import shutil

import pytest
import yaml

from operations import lease as leases
from rollout.cli import main
from tests.conftest import ROOT
from tests.stand_in_driver import (
    URL,
    Driver,
    file_backend,
    lease_record,
    new_backend,
    shift_clock,
    use_backend,
)
from tests.stand_in_rollout import FileStack

RELEASES = "app-update:releases"
CONFIG = {"app-update:cluster": {"mode": "kubeconfig"},
          RELEASES: {"app": {"strategy": "BlueGreen", "replicas": 4, "active": "blue", "blue": {"tag": "v1"}}}}


def new_project(directory):
    """A project directory whose Pulumi.staging.yaml holds the BlueGreen release (the input is checked there)."""
    root = directory / "project"
    root.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    (root / "Pulumi.staging.yaml").write_text(yaml.safe_dump({"config": CONFIG}))
    return root


@pytest.fixture
def project(tmp_path):
    return new_project(tmp_path)


@pytest.fixture
def backend(tmp_path, monkeypatch):
    return file_backend(tmp_path, monkeypatch, CONFIG)


@pytest.fixture(scope="module")
def left_in_its_window(tmp_path_factory):
    """What a run killed with SIGKILL in its window leaves: green switched live, blue still at full size, the lease
    at its window phase (the scale-down due in 60 m), not renewed since. One driver makes it for the tests that
    start from there; each gets a copy of its own (killed_in_window)."""
    directory = tmp_path_factory.mktemp("killed-in-its-window")
    state = new_backend(directory, CONFIG)
    driver = bluegreen(state, new_project(directory), directory, "--interval", "1s", "--scale-down-delay", "60m",
                       probes="at-weight")
    try:
        driver.wait_for("switched: app serves v2 from green")
    finally:
        driver.kill()
    return state


@pytest.fixture
def killed_in_window(left_in_its_window, tmp_path, monkeypatch):
    """A copy of left_in_its_window's backend, which this process's `rollout` uses."""
    state = tmp_path / "state"
    shutil.copytree(left_in_its_window, state)
    return use_backend(state, monkeypatch)


def live(backend):
    return FileStack("staging", backend).live[RELEASES]["app"]


def bluegreen(backend, project, tmp_path, *extra, **kwargs):
    return Driver(backend, "-C", str(project), "bluegreen", "staging", "--release", "app", "--tag", "v2",
                  "--url", URL, "--yes", "--log", str(tmp_path / "bg.log"), *extra, **kwargs)


def test_a_run_killed_while_judging_is_rolled_back_by_the_watchdog(backend, project, tmp_path, monkeypatch, capsys):
    driver = bluegreen(backend, project, tmp_path, "--interval", "60m")
    try:
        driver.wait_for("stand-in: judging the step")
        held = lease_record(backend)
        assert held["state"] == "running" and held["phase"] == "judging" and held["holder"]["pid"] == driver.process.pid
        assert held["colors"] == {"old": "blue", "new": "green"} and held["tags"] == {"blue": "v1", "green": "v2"}
        # A second driver meanwhile is refused with the holder's details, and changes nothing.
        updates = len(FileStack("staging", backend).up_messages)
        assert main(["-C", str(project), "bluegreen", "staging", "--release", "app", "--tag", "v3", "--url", URL,
                     "--yes", "--log", str(tmp_path / "second.log")]) == 1
        err = capsys.readouterr().err
        assert f"pid {driver.process.pid}" in err and "judging, blue v1 → green v2" in err
        assert len(FileStack("staging", backend).up_messages) == updates
    finally:
        driver.kill()  # SIGKILL: no handler runs, the lease stays as it was
    assert live(backend)["green"] == {"tag": "v2"} and live(backend)["active"] == "blue"
    updates = len(FileStack("staging", backend).up_messages)

    assert main(["-C", str(project), "watchdog", "staging"]) == 0  # the lease is live: left alone
    assert "left alone" in capsys.readouterr().out
    assert len(FileStack("staging", backend).up_messages) == updates

    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)
    assert main(["-C", str(project), "watchdog", "staging"]) == 0
    out = capsys.readouterr().out
    assert "staging app: ROLLED BACK by the watchdog: active on blue, green scaled down (its lease expired" in out
    stack = FileStack("staging", backend)
    assert stack.up_messages[updates:] == ["bluegreen app: green scaled down (its driver is gone)"]
    assert live(backend)["active"] == "blue" and live(backend)["green"] == {"tag": "v2", "replicas": 0}
    record = lease_record(backend)
    assert record["state"] == "ended" and record["outcome"] == "aborted" and record["holder"]["command"] == "watchdog"
    assert not stack.lock_files()

    assert main(["-C", str(project), "watchdog", "staging"]) == 0  # again: nothing changes
    assert "ended aborted" in capsys.readouterr().out
    assert len(FileStack("staging", backend).up_messages) == updates + 1


def test_a_run_killed_in_its_window_is_finished_by_the_watchdog_after_the_window(killed_in_window, project,
                                                                                 monkeypatch, capsys):
    backend = killed_in_window
    assert live(backend)["active"] == "green" and live(backend)["blue"] == {"tag": "v1"}
    assert lease_record(backend)["phase"] == "window"
    updates = len(FileStack("staging", backend).up_messages)

    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)  # expired, but the window (60 m) is not over
    assert main(["-C", str(project), "watchdog", "staging"]) == 0
    assert "left alone until then" in capsys.readouterr().out
    assert len(FileStack("staging", backend).up_messages) == updates

    shift_clock(monkeypatch, 3600)
    assert main(["-C", str(project), "watchdog", "staging"]) == 0
    assert "staging app: FINISHED by the watchdog: green active, blue scaled down" in capsys.readouterr().out
    assert live(backend)["active"] == "green" and live(backend)["blue"] == {"tag": "v1", "replicas": 0}
    assert FileStack("staging", backend).up_messages[updates:] == [
        "bluegreen app: blue scaled down after the window (watchdog)"]
    assert lease_record(backend)["outcome"] == "promoted"


def test_a_run_killed_in_its_window_then_undone_is_not_scaled_down(killed_in_window, project, monkeypatch, capsys):
    backend = killed_in_window
    assert main(["-C", str(project), "undo", "staging", "--release", "app", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "one update: the active and preview Services' selectors swap" in out
    stack = FileStack("staging", backend)
    assert stack.up_messages[-1] == "undo app: switch back to blue (v1)"
    assert all(c.name.startswith("Service/") for c in stack.changes[-1])
    assert lease_record(backend)["outcome"] == "undone"
    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 3600)
    assert main(["-C", str(project), "watchdog", "staging"]) == 0
    assert "ended undone" in capsys.readouterr().out
    assert live(backend)["active"] == "blue" and live(backend)["green"] == {"tag": "v2"}


def test_sigterm_during_the_switch_lets_it_finish_then_goes_back_to_the_old_color(backend, project, tmp_path):
    import os
    import signal

    gate = tmp_path / "gate"
    os.mkfifo(gate)
    driver = bluegreen(backend, project, tmp_path, "--interval", "1s", probes="at-weight",
                       env={"STAND_IN_GATE": str(gate), "STAND_IN_GATE_MESSAGE": "switch to green"})
    try:
        driver.wait_for("stand-in: update held")
        assert len(FileStack("staging", backend).lock_files()) == 1  # the switch runs and holds the stack's lock
        driver.process.send_signal(signal.SIGTERM)
        driver.wait_for("SIGTERM: letting the running update finish")
        driver.release_gate(gate)  # the switch update ends (it succeeds: green went live)
        assert driver.finish() == 1, driver.output
    finally:
        driver.kill()
    assert "ROLL BACK at the switch to green: interrupted by the operator" in driver.output
    stack = FileStack("staging", backend)
    assert stack.up_messages[-3:] == ["bluegreen app v2: switch to green",
                                      "bluegreen app: active back to blue (v2 rolled back: interrupted by the operator)",
                                      "bluegreen app: green scaled down (v2 rolled back: interrupted by the operator)"]
    assert live(backend)["active"] == "blue" and live(backend)["green"] == {"tag": "v2", "replicas": 0}
    assert not stack.lock_files()
    record = lease_record(backend)
    assert record["state"] == "ended" and record["outcome"] == "aborted"


def test_resume_goes_on_from_the_judging_phase_of_a_killed_run(backend, project, tmp_path, monkeypatch, capsys):
    driver = bluegreen(backend, project, tmp_path, "--interval", "60m", "--scale-down-delay", "0s")
    try:
        driver.wait_for("stand-in: judging the step")
    finally:
        driver.kill()
    from operations import canary_run
    from tests.fake_stack import answers_at_weight

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    resume = ["-C", str(project), "bluegreen", "staging", "--release", "app", "--resume", "--yes",
              "--log", str(tmp_path / "resumed.log")]
    assert main(resume) == 1  # before the expiry: the run is still looked after
    assert "the run is still looked after" in capsys.readouterr().err
    shift_clock(monkeypatch, leases.DEFAULT_SECONDS + 1)
    assert main([*resume, "--tag", "v3"]) == 2
    assert "--tag v3 differs from the run the lease describes (v2)" in capsys.readouterr().err
    assert main(resume) == 0
    out = capsys.readouterr().out
    assert "from the lease: interval, " in out and "at its judging phase" in out
    assert "promoted: app runs v2 on green; blue is scaled down" in out
    assert live(backend)["active"] == "green" and live(backend)["blue"] == {"tag": "v1", "replicas": 0}
    record = lease_record(backend)
    assert record["outcome"] == "promoted" and record["resumedFrom"]["pid"] == driver.process.pid


def test_resume_finishes_the_window_of_a_killed_run_and_refuses_a_stack_that_moved(killed_in_window, project,
                                                                                    tmp_path, monkeypatch, capsys):
    backend = killed_in_window
    shift_clock(monkeypatch, 3700)  # the lease expired and the window is over
    resume = ["-C", str(project), "bluegreen", "staging", "--release", "app", "--resume", "--yes",
              "--log", str(tmp_path / "resumed.log")]
    from pulumi.automation import ConfigValue

    stack = FileStack("staging", backend)  # someone switched back by hand meanwhile, then forward again
    for color in ("blue", "green"):
        stack.set_config(f"{RELEASES}.app.active", ConfigValue(color), path=True)
        stack.up(message=f"by hand: {color}")
        if color == "blue":
            assert main(resume) == 2
            assert "cannot resume the blue-green run of app on staging: the stack changed since the lease was " \
                   "written (active blue live at the window phase)" in capsys.readouterr().err
    updates = len(FileStack("staging", backend).up_messages)
    assert main(resume) == 0
    out = capsys.readouterr().out
    assert "at its window phase" in out and "4) scaling blue (v1) to 0" in out
    assert FileStack("staging", backend).up_messages[updates:] == [
        "bluegreen app v2: blue scaled down after the window"]
    assert main(resume) == 1  # ended: nothing to resume
    assert "nothing to resume" in capsys.readouterr().err

