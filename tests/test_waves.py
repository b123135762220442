"""`rollout wave`: a three-stage wave over stand-in stacks (all succeed; a failure in stage 2 leaves
stage 3 untouched, with the report and roll-back commands; an interrupted wave resumes from its
record without repeating finished stacks), the wave file and its schema, the record store
(file:// and s3:// under moto, conditional writes)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import yaml

from model import wave_file
from model.wave_file import WaveError
from operations import interrupts, promotion, waves
from operations.record_store import FileRecordStore, RecordConflict, S3RecordStore, store_for
from operations.stacks import InputError, OperationError
from tests.clock import VirtualClock
from tests.fake_stack import deployed
from tests.prometheus_server import wait_for

ROOT = Path(__file__).resolve().parent.parent
RELEASES = "app-update:releases"
DIGEST = "sha256:" + "7" * 64
PINNED = f"v2@{DIGEST}"
IMAGE = f"arungupta/app-upgrade:{PINNED}"

WAVE = """\
from: staging
stop: first-failure
stages:
  - name: one
    stacks: [use1]
    soak: 1h
  - name: two
    stacks: [euw1, apse2]
    parallel: 2
  - name: three
    stacks: [usw2, sae1]
"""


def yes(prompt, expected):
    return True


def stack_config(tag="v1", **top):
    config = {"app-update:cluster": {"mode": "kubeconfig"},
              RELEASES: {"app": {"strategy": "RollingUpdate", "tag": tag, "replicas": 3}}}
    config.update({f"app-update:{k}": v for k, v in top.items()})
    return config


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    # The promotions' records are stamped at one fixed time (a virtual wall clock; a wave's own time is its `clock`):
    # the same promotion in two tests is then the same config, whose program run the stand-ins share.
    monkeypatch.setattr(promotion, "utc_now", lambda: datetime(2026, 11, 2, 9, 0, tzinfo=UTC))
    (tmp_path / "waves").mkdir()
    (tmp_path / "waves" / "rel.yaml").write_text(WAVE)
    staging = deployed("staging", stack_config(PINNED))
    # verified long ago (the soak is measured on the wall clock, as in production)
    promotion.do_verify(staging, "app", "smoke", True, yes, now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    fleet = {"staging": staging}
    for name in ("use1", "euw1", "apse2", "usw2", "sae1"):
        fleet[name] = deployed(name, stack_config(promotion={"from": ["staging"], "soak": "1h"}, protected=True))
    return fleet


def wave(fleet, tmp_path, *, action=None, clock=None, opener=None, out=None, **kwargs):
    out = out or io.StringIO()
    store = FileRecordStore(tmp_path / "records")
    opener = opener or fleet.__getitem__
    code = waves.do_wave("rel", "app", project_dir=tmp_path, yes=True, confirm=yes, open_stack=opener,
                         store=store, clock=clock or VirtualClock(),
                         action=action or waves.Actions("app", lambda: opener("staging")), out=out,
                         **{"resume": False, "restart": False, "until_stage": None, **kwargs})
    return code, out.getvalue(), store


def served(stack):
    return promotion.release_records(stack.outputs())["app"]["image"]


def test_a_three_stage_wave_takes_every_stack_to_the_digest(fleet, tmp_path):
    clock = VirtualClock()
    code, out, store = wave(fleet, tmp_path, clock=clock)
    assert code == 0, out
    for name in ("use1", "euw1", "apse2", "usw2", "sae1"):
        assert served(fleet[name]) == IMAGE
        assert promotion.release_records(fleet[name].outputs())["app"]["verification"]["from"] == "staging"
    assert sum(clock.slept) == 3600  # the soak after stage one, and only there
    record, _ = store.read("rel/app")
    assert record["status"] == "done" and record["image"] == IMAGE
    assert [s["status"] for s in record["stages"]] == ["succeeded"] * 3
    assert "wave rel: done" in out


def test_a_failure_in_stage_two_stops_the_wave_before_stage_three(fleet, tmp_path):
    fleet["apse2"].script = ["fail"]
    code, out, store = wave(fleet, tmp_path)
    assert code == 1
    for name in ("usw2", "sae1"):  # stage three: nothing changed, no update ran
        assert len(fleet[name].applied) == 1 and fleet[name].config[RELEASES]["app"]["tag"] == "v1"
    lines = out.splitlines()
    stop = next(line for line in lines if "STOPPED" in line)
    assert stop.startswith("wave rel STOPPED at stage 2/3 (two): apse2 failed: pulumi: the Kubernetes API server")
    assert "  use1: python -m rollout undo use1 --to-revision 1 --release app" in lines
    assert "  euw1: python -m rollout undo euw1 --to-revision 1 --release app" in lines
    assert "not started: stage(s) three" in lines
    assert lines[-1] == "after a fix, continue with: python -m rollout wave rel --release app --resume"
    record, _ = store.read("rel/app")
    assert record["status"] == "stopped"
    assert record["stages"][1]["stacks"]["apse2"]["status"] == "failed"
    assert record["stages"][2]["status"] == "pending"
    # after a fix: --resume runs what is left (apse2, stage three) and nothing else again
    before = {name: len(stack.applied) for name, stack in fleet.items()}
    code, out, _ = wave(fleet, tmp_path, resume=True)
    assert code == 0, out
    assert {name: len(stack.applied) - before[name] for name, stack in fleet.items()} == {
        "staging": 0, "use1": 0, "euw1": 0, "apse2": 1, "usw2": 1, "sae1": 1}


def test_an_interrupted_wave_resumes_without_repeating_finished_stacks(fleet, tmp_path):
    actions = waves.Actions("app", lambda: fleet["staging"])
    interrupted = []

    def action(stack, stage, image):
        if stack.name == "usw2" and not interrupted:
            interrupted.append(stack.name)
            raise KeyboardInterrupt
        return actions(stack, stage, image)

    with pytest.raises(KeyboardInterrupt):
        wave(fleet, tmp_path, action=action)
    record, _ = FileRecordStore(tmp_path / "records").read("rel/app")
    assert record["status"] == "running" and record["stages"][2]["stacks"]["usw2"]["status"] == "failed"
    # without --resume the unfinished record is not overwritten
    with pytest.raises(InputError, match="continue it with --resume"):
        wave(fleet, tmp_path)
    before = {name: len(stack.applied) for name, stack in fleet.items()}
    clock = VirtualClock()
    code, out, _ = wave(fleet, tmp_path, resume=True, action=action, clock=clock)
    assert code == 0, out
    changed = {name for name, stack in fleet.items() if len(stack.applied) != before[name]}
    assert changed == {"usw2", "sae1"}
    assert "wave rel: resuming app" in out


def test_a_promotion_whose_update_landed_before_the_signal_is_recorded_as_succeeded(fleet, tmp_path, monkeypatch):
    signalled: list[str] = []

    def checkpoint() -> None:  # as after a SIGTERM during usw2's update: the update finished, then the wave stops
        if not signalled and served(fleet["usw2"]) == IMAGE:
            signalled.append("SIGTERM")
            raise KeyboardInterrupt

    monkeypatch.setattr(interrupts, "checkpoint", checkpoint)
    monkeypatch.setattr(interrupts, "interrupted", lambda: signalled[0] if signalled else None)
    with pytest.raises(KeyboardInterrupt):
        wave(fleet, tmp_path)
    record, _ = FileRecordStore(tmp_path / "records").read("rel/app")
    third = record["stages"][2]["stacks"]
    assert third["usw2"]["status"] == "succeeded", third  # what runs there now, not "failed: interrupted"
    assert third["usw2"]["detail"] == f"promoted {PINNED}, then interrupted"
    assert third["sae1"] == {"status": "skipped", "detail": "not started: the wave was interrupted"}
    assert record["status"] == "stopped"
    monkeypatch.undo()
    before = {name: len(stack.applied) for name, stack in fleet.items()}
    code, out, _ = wave(fleet, tmp_path, resume=True)
    assert code == 0, out
    assert {name for name, stack in fleet.items() if len(stack.applied) != before[name]} == {"sae1"}
    assert "  usw2: already on the release (from the record)" in out.splitlines()


def test_until_stage_pauses_and_a_later_job_continues(fleet, tmp_path):
    code, out, store = wave(fleet, tmp_path, until_stage=1)
    assert code == 0 and "paused after stage 1 (one)" in out
    assert len(fleet["euw1"].applied) == 1
    clock = VirtualClock()
    code, out, _ = wave(fleet, tmp_path, resume=True, until_stage=2, clock=clock)
    assert code == 0 and served(fleet["euw1"]) == IMAGE and len(fleet["usw2"].applied) == 1
    assert sum(clock.slept) > 0  # the soak recorded by the first job, waited by the second


def test_a_stage_that_already_succeeded_is_not_soaked_again_when_it_ends_this_run(fleet, tmp_path):
    code, out, store = wave(fleet, tmp_path, until_stage=1)
    assert code == 0 and "paused after stage 1 (one), its soak until 1970-01-01T01:00:00Z" in out
    soak_until = store.read("rel/app")[0]["stages"][0]["soakUntil"]
    # The same job again (a CI re-run): stage one is done and no stage follows it in this run: no wait.
    clock = VirtualClock()
    code, out, _ = wave(fleet, tmp_path, resume=True, until_stage=1, clock=clock)
    assert code == 0 and clock.slept == [] and "paused after stage 1 (one)" in out and "soak after" not in out
    assert len(fleet["use1"].applied) == 2 and len(fleet["euw1"].applied) == 1  # nothing ran again
    # The next job, half-way through the soak: it waits what is left, once.
    clock = VirtualClock()
    clock.time = datetime.fromisoformat(soak_until).timestamp() - 1800
    code, out, _ = wave(fleet, tmp_path, resume=True, until_stage=2, clock=clock)
    assert code == 0 and sum(clock.slept) == 1800 and served(fleet["euw1"]) == IMAGE
    # And a re-run of that job, its soak long past: stage one is neither soaked nor run again.
    clock = VirtualClock()
    clock.time = datetime.fromisoformat(soak_until).timestamp() + 86400
    before = {name: len(stack.applied) for name, stack in fleet.items()}
    code, out, _ = wave(fleet, tmp_path, resume=True, until_stage=2, clock=clock)
    assert code == 0 and clock.slept == [] and {n: len(s.applied) for n, s in fleet.items()} == before


def test_a_stack_refusing_the_proof_stops_the_wave(fleet, tmp_path):
    fleet["euw1"] = deployed("euw1", stack_config(promotion={"from": ["dev"]}, protected=True))
    code, out, _ = wave(fleet, tmp_path)
    assert code == 1
    assert "euw1: FAILED: stack euw1 takes releases only from dev (app-update:promotion.from), not from staging" in out


def test_an_unpinned_source_is_refused(fleet, tmp_path):
    fleet["staging"] = deployed("staging", stack_config("v2"))
    promotion.do_verify(fleet["staging"], "app", "smoke", True, yes)
    code, out, _ = wave(fleet, tmp_path)
    assert code == 1 and "which is not pinned by digest" in out


@pytest.mark.parametrize("text, problems", [
    ("from: staging\nstop: never\nstages:\n  - name: A\n    stacks: []\n    parallel: 0\n    canary: {steps: [5]}\n",
     ["waves/bad.yaml: stop: must be one of first-failure, end-of-stage (got 'never')",
      "waves/bad.yaml: stages[0].name: must be a lowercase name (letters, digits, '-') (got 'A')",
      "waves/bad.yaml: stages[0].stacks: must be a non-empty list of stack names (got a list)",
      "waves/bad.yaml: stages[0].canary: is for stages with run: canary",
      "waves/bad.yaml: stages[0].parallel: must be between 1 and 50 (got 0)"]),
    ("from: staging\nstages:\n  - name: a\n    stacks: [x]\n  - name: b\n    stacks: [x]\n",
     ["waves/bad.yaml: stages: stack x is in stage a and in stage b: a wave updates each stack once"]),
    ("from: staging\nstages:\n  - name: a\n    stacks: [staging]\n    soak: an hour\n  - name: b\n    stacks: [y]\n",
     ["waves/bad.yaml: stages[0].soak: must be a duration like 1h, 30m, 1h30m or 2d (got 'an hour')"]),
    ("from: staging\nstages:\n  - name: a\n    stacks: [staging]\n",
     ["waves/bad.yaml: stages: stage a names staging, the stack the wave promotes from"]),
    ("- a list\n", ["waves/bad.yaml: must be a mapping with `from` and `stages`"]),
    ("from: staging\nstages:\n  - name: a\n    stacks: [x]\n    run: bluegreen\n",
     ["waves/bad.yaml: stages[0].run: bluegreen: a wave does not run blue-green releases yet (a stage promotes or "
      "canaries the image it pinned): use run: promote or canary, or `python -m rollout bluegreen STACK --release "
      "NAME --tag TAG` per stack"]),
])
def test_bad_wave_files_are_one_line_each(tmp_path, capsys, text, problems):
    (tmp_path / "waves").mkdir()
    (tmp_path / "waves" / "bad.yaml").write_text(text)
    code = waves.do_wave("bad", "app", project_dir=tmp_path, resume=False, restart=False, until_stage=None, yes=True,
                         confirm=yes, open_stack=lambda n: None, store=FileRecordStore(tmp_path))
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {p}" for p in problems]
    with pytest.raises(WaveError, match="no such wave file"):
        wave_file.load("nope", tmp_path)


def test_the_example_waves_pass_their_schema_and_name_committed_stacks():
    schema = json.loads((ROOT / wave_file.SCHEMA_FILE).read_text())
    assert (ROOT / wave_file.SCHEMA_FILE).read_text() == wave_file.schema_text()  # `make schema` is up to date
    files = sorted((ROOT / "waves").glob("*.yaml"))
    assert files
    for path in files:
        data = yaml.safe_load(path.read_text())
        jsonschema.validate(data, schema)
        checked = wave_file.load(path.stem, ROOT)
        for stack in [checked.from_] + [s for stage in checked.stages for s in stage.stacks]:
            assert (ROOT / f"Pulumi.{stack}.yaml").is_file(), stack


def test_the_schema_refuses_what_the_models_refuse():
    schema = json.loads(wave_file.schema_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"from": "staging", "stages": [{"name": "a", "stacks": ["x"], "run": "deploy"}]}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"from": "staging", "stages": [{"name": "a", "stacks": ["x"], "soak": "an hour"}]}, schema)


# ---------------------------------------------------------------------------------------------
# The record store
# ---------------------------------------------------------------------------------------------


def test_file_store_compare_and_swap(tmp_path):
    store = store_for(f"file://{tmp_path}", "waves", "app-update")
    etag = store.create("w/app", {"n": 1})
    with pytest.raises(RecordConflict):
        store.create("w/app", {"n": 2})
    newer = store.replace("w/app", {"n": 2}, etag)
    with pytest.raises(RecordConflict):
        store.replace("w/app", {"n": 3}, etag)  # a stale etag: someone else wrote since
    assert store.read("w/app") == ({"n": 2}, newer)
    assert (tmp_path / ".app-update" / "waves" / "app-update" / "w" / "app.json").is_file()


def test_s3_store_conditional_writes(monkeypatch):
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="team-state")
        store = store_for("s3://team-state/pulumi", "waves", "app-update", s3_client=s3)
        assert isinstance(store, S3RecordStore)
        assert store.read("w/app") is None
        etag = store.create("w/app", {"n": 1})
        with pytest.raises(RecordConflict):
            store.create("w/app", {"n": 2})
        store.replace("w/app", {"n": 2}, etag)
        with pytest.raises(RecordConflict):
            store.replace("w/app", {"n": 3}, etag)
        body = s3.get_object(Bucket="team-state", Key="pulumi/.app-update/waves/app-update/w/app.json")["Body"].read()
        assert json.loads(body) == {"n": 2}


def test_other_backends_are_refused_in_one_line():
    with pytest.raises(InputError, match="file:// and s3:// backends only; the backend is https://api.pulumi.com"):
        store_for("https://api.pulumi.com", "waves", "app-update")
    with pytest.raises(OperationError, match="no backend is known"):
        store_for(None, "waves", "app-update")


def test_a_wave_canary_holds_the_lease_rollout_canary_takes(monkeypatch, tmp_path):
    # So the watchdog finds a wave's canary whose driver died, and a second driver is refused.
    from operations import canary_run, waves
    from operations.canary_run import CanaryRun
    from tests.fake_stack import FakeStack

    backend = tmp_path / "state"
    backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", backend.as_uri())
    seen = {}

    def run_canary(stack, options, **kwargs):
        seen.update(kwargs, options=options)
        return CanaryRun(1, [], "stopped by the test", None)

    monkeypatch.setattr(canary_run, "run_canary", run_canary)
    stage = wave_file.Stage(name="use1", stacks=["prod-use1"], run="canary")
    stack = FakeStack("prod-use1", {})
    assert waves.run_canary_stage(stack, "app", "v2", stage, project_dir=ROOT) == 1
    spec = seen["lease"]()
    assert spec.key == "prod-use1/app" and str(backend) in spec.store.location(spec.key)


def test_a_signal_before_a_stacks_guard_stops_the_stage_and_the_stack_never_starts(fleet, tmp_path, capsys):
    """Ctrl-C while a stage's stack is being opened, before its worker's guard (no worker is registered yet): the
    main thread's handler stops the stage, and the stack's action never starts. (It used to raise
    KeyboardInterrupt in the main thread, set no `interrupted()`, and the pool then ran the stack to its end.)"""
    import os
    import signal
    import threading

    started: list[str] = []

    def opener(name):
        if name == "use1" and threading.current_thread() is not threading.main_thread():
            os.kill(os.getpid(), signal.SIGINT)  # to the process: the main thread's handler takes it
            wait_for(interrupts.interrupted, 10, "the main thread's handler to take the signal")
        return fleet[name]

    def action(stack, stage, image):
        started.append(stack.name)
        return "done"

    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        wave(fleet, tmp_path, action=action, opener=opener, out=out)
    assert started == [], out.getvalue()
    record, _ = FileRecordStore(tmp_path / "records").read("rel/app")
    assert record["status"] == "stopped"
    assert record["stages"][0]["stacks"]["use1"]["status"] == "failed"
    assert "SIGINT: stopping after what runs now ends safely" in capsys.readouterr().err  # the driver's own line
    assert "wave rel STOPPED at stage 1/3 (one)" in out.getvalue()


def test_a_signal_the_kernel_gives_a_worker_thread_reaches_the_stacks_update_while_it_runs(fleet, tmp_path, capsys):
    """A process's signal may go to any of its threads; Python runs the handler in the main thread, which waits for
    the stage's workers in short slices so that it runs it while the update goes on (a main thread blocked on its
    workers' futures ran it only once the stack had ended)."""
    import signal
    import threading

    while_updating: list[bool] = []

    def action(stack, stage, image):
        with interrupts.updating(f"promote {stack.name}"):
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # this worker thread takes it
            wait_for(interrupts.pending, 10, "the signal to reach the update")
            while_updating.append(interrupts.pending())
        interrupts.checkpoint()  # the update has ended: the signal stops this stack
        return "done"

    out = io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        wave(fleet, tmp_path, action=action, out=out)
    assert while_updating == [True], out.getvalue()
    assert "SIGINT: stopping after what runs now ends safely" in capsys.readouterr().err
    assert "SIGINT: letting the running update finish" in out.getvalue()
    record, _ = FileRecordStore(tmp_path / "records").read("rel/app")
    assert record["status"] == "stopped" and record["stages"][0]["stacks"]["use1"]["status"] == "failed"
