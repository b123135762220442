"""The canary's lease (operations/lease.py): stores with conditional writes (a file backend's directory,
an S3 bucket under moto), who may take a lease, the heartbeat, and what `rollout canary`, `abort` and
`status` do with it."""

from __future__ import annotations

import threading
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from operations import lease as leases
from operations import record_store, stacks
from operations.canary_run import CanaryOptions, do_abort, run_canary
from operations.record_store import FileRecordStore, RecordConflict, S3RecordStore
from rollout.cli import main
from tests.clock import VirtualClock
from tests.fake_stack import FakeStack, answers_at_weight

pytestmark = pytest.mark.usefixtures("shared_botocore_data")

RELEASES = "app-update:releases"
KEY = "staging/app"  # lease_key: the store adds .json under .app-update/leases/app-update/


def lease_dir(backend: Path) -> FileRecordStore:
    """The lease store of project app-update in a file:// backend's directory."""
    return FileRecordStore(backend / ".app-update" / "leases" / "app-update")


def record(**fields):
    return {"state": "running", "stack": "staging", "release": "app", "holder": leases.holder("canary"),
            "steps": [50], "step": 1, "weight": 50, "tags": {"stable": "v1", "canary": "v2"}, **fields}


# ---------------------------------------------------------------------------------------------
# Stores
# ---------------------------------------------------------------------------------------------


class AtomicConditionalWrites:
    """moto checks a put's IfNoneMatch/IfMatch and then writes, with no lock between: two racing conditional
    writes can both succeed (seen about 1 run in 15 under load), which S3 never allows (the loser gets 412, or
    409 ConditionalRequestConflict). This client serializes put_object as S3 does; everything else is moto's."""

    def __init__(self, client):
        self._client, self._lock = client, threading.Lock()

    def put_object(self, **kwargs):
        with self._lock:
            return self._client.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="state")
        yield AtomicConditionalWrites(client)


def stores(tmp_path, s3):
    return {"file": lease_dir(tmp_path / "state"), "s3": S3RecordStore("state", "team/.app-update/leases/app-update", s3)}


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_a_lease_is_created_only_if_absent_and_replaced_only_if_unchanged(kind, tmp_path, s3):
    store = stores(tmp_path, s3)[kind]
    assert store.read(KEY) is None
    first = store.create(KEY, {"n": 1})
    with pytest.raises(RecordConflict):
        store.create(KEY, {"n": 2})  # IfNoneMatch="*": someone holds it
    assert store.read(KEY) == ({"n": 1}, first)
    second = store.replace(KEY, {"n": 2}, first)
    with pytest.raises(RecordConflict):
        store.replace(KEY, {"n": 3}, first)  # IfMatch on a version that is gone
    assert store.read(KEY) == ({"n": 2}, second)


def test_the_s3_lease_lives_beside_the_state_under_its_prefix(s3):
    store = leases.lease_store("s3://state/team?region=us-east-1", Path("."), "app-update", s3_client=s3)
    store.create(KEY, {"n": 1})
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="state")["Contents"]]
    assert keys == ["team/.app-update/leases/app-update/staging/app.json"]


def test_an_s3_conditional_write_conflict_409_loses_the_race_too(s3):
    # Real S3 may answer concurrent conditional writes with 409 ConditionalRequestConflict, which moto
    # 5.2.5 does not model (it checks the condition, then writes, with no lock between): a client that
    # answers 409 as S3 does stands in for it.
    class Conflicting:
        exceptions = s3.exceptions

        def put_object(self, **kwargs):
            raise ClientError({"Error": {"Code": "ConditionalRequestConflict", "Message": "conflict"},
                               "ResponseMetadata": {"HTTPStatusCode": 409}}, "PutObject")

    store = S3RecordStore("state", ".app-update/leases/app-update", Conflicting())
    with pytest.raises(RecordConflict):
        store.create(KEY, {"n": 1})
    with pytest.raises(RecordConflict):
        store.replace(KEY, {"n": 1}, '"etag"')


def test_an_s3_error_that_is_not_a_lost_race_is_not_taken_for_one(s3):
    store = S3RecordStore("no-such-bucket", "", s3)
    with pytest.raises(ClientError, match="NoSuchBucket"):
        store.create(KEY, {"n": 1})


@pytest.mark.parametrize("url", ["https://api.pulumi.com", "azblob://state", "gs://state"])
def test_other_backends_are_refused_in_one_line(url):
    with pytest.raises(stacks.InputError) as refused:
        leases.lease_store(url, Path("."), "app-update")
    assert "\n" not in str(refused.value) and "file:// and s3:// backends only" in str(refused.value)


def test_no_known_backend_is_refused_in_one_line():
    with pytest.raises(stacks.InputError, match="no backend is known"):
        leases.lease_store(None, Path("."), "app-update")


def test_the_backend_comes_from_the_environment_then_the_project_then_the_login(tmp_path, monkeypatch):
    monkeypatch.delenv("PULUMI_BACKEND_URL", raising=False)
    (tmp_path / "Pulumi.yaml").write_text("name: app-update\nruntime: python\nbackend:\n  url: s3://from-project\n")

    class Workspace:
        def who_am_i(self):
            class Who:
                url = "file:///from-login"
            return Who()

    class Stack:
        workspace = Workspace()

    assert record_store.backend_url(tmp_path, Stack()) == "s3://from-project"
    (tmp_path / "Pulumi.yaml").write_text("name: app-update\nruntime: python\n")
    assert record_store.backend_url(tmp_path, Stack()) == "file:///from-login"
    monkeypatch.setenv("PULUMI_BACKEND_URL", "file://~/state")
    assert record_store.backend_url(tmp_path, Stack()) == "file://~/state"
    assert leases.lease_store("file://~/state", tmp_path, "p").root == Path.home() / "state/.app-update/leases/p"
    assert leases.lease_store("file://relative", tmp_path, "p").root == tmp_path / "relative/.app-update/leases/p"


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_of_two_takers_racing_for_one_lease_exactly_one_wins(kind, tmp_path, s3):
    store = stores(tmp_path, s3)[kind]
    both_read = threading.Barrier(2)
    real_read = store.read

    def read(key):  # both read "absent" before either writes
        found = real_read(key)
        if threading.current_thread().name.startswith("taker") and not getattr(local, "read", False):
            local.read = True
            both_read.wait(timeout=60)
        return found

    local = threading.local()
    store.read = read
    results = {}

    def take(name):
        try:
            results[name] = leases.acquire(store, KEY, record(), 300, may_take=leases.canary_may_take("a", "r"))
        except leases.LeaseHeld as held:
            results[name] = held

    threads = [threading.Thread(target=take, args=(f"taker-{i}",), name=f"taker-{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    won = [r for r in results.values() if isinstance(r, leases.Lease)]
    lost = [r for r in results.values() if isinstance(r, leases.LeaseHeld)]
    assert len(won) == 1 and len(lost) == 1
    assert "another process took the lease first" in str(lost[0])


# ---------------------------------------------------------------------------------------------
# Who may take a lease
# ---------------------------------------------------------------------------------------------


def test_who_may_take_a_lease(tmp_path):
    store = lease_dir(tmp_path)
    now = [1000.0]
    held = leases.acquire(store, KEY, record(), 300, may_take=lambda r, t: None, clock=lambda: now[0])
    live = held.record
    new_canary = leases.canary_may_take("ABORT", "RESUME")
    assert "looked after by another run" in new_canary(live, 1100)
    assert leases.resume_may_take(live, 1100).startswith("the run is still looked after")
    assert leases.watchdog_may_take(live, 1100) == "not expired"
    assert leases.abort_may_take(live, 1100) is None  # the operator's word
    # Expired: a new canary is told to resume or abort; resume and the watchdog may take it.
    refusal = new_canary(live, 1300)
    assert "did not end" in refusal and "RESUME" in refusal and "ABORT" in refusal and "EXPIRED" in refusal
    assert leases.resume_may_take(live, 1300) is None and leases.watchdog_may_take(live, 1300) is None
    # Ended well: anyone may start again; nothing to resume or abort.
    held.end(leases.PROMOTED)
    assert new_canary(held.record, 1100) is None and leases.watchdog_may_take(held.record, 99999) == "not expired"
    assert "has ended" in leases.resume_may_take(held.record, 99999)
    # An abort that failed: the watchdog tries again, a new canary is refused.
    failed = {**held.record, "outcome": leases.ABORT_FAILED}
    assert leases.watchdog_may_take(failed, 1100) is None and new_canary(failed, 1100) is not None


def test_the_holder_names_the_ci_run(monkeypatch):
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/app-update")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    who = leases.holder("canary")
    assert who["ciRun"] == "https://github.com/team/app-update/actions/runs/42" and "@" in who["user"]
    assert "CI run https://github.com/team/app-update/actions/runs/42" in leases.holder_text({"holder": who})


def test_a_write_after_a_take_over_raises_lease_lost_and_says_who(tmp_path):
    store = lease_dir(tmp_path)
    mine = leases.acquire(store, KEY, record(), 300, may_take=lambda r, t: None)
    leases.acquire(store, KEY, record(holder=leases.holder("abort")), 300, may_take=leases.abort_may_take)
    with pytest.raises(leases.LeaseLost, match="taken over by abort by"):
        mine.write(step=2)
    with pytest.raises(leases.LeaseLost):
        mine.renew()


# ---------------------------------------------------------------------------------------------
# The heartbeat
# ---------------------------------------------------------------------------------------------


def test_the_heartbeat_renews_while_the_run_is_blocked_and_says_what_it_does(tmp_path):
    store = lease_dir(tmp_path)
    lease = leases.acquire(store, KEY, record(), 300, may_take=lambda r, t: None)
    said, renewed = [], threading.Event()
    real_renew = lease.renew

    def renew():
        real_renew()
        if heartbeat.renewals >= 1:
            renewed.set()

    lease.renew = renew
    # Ticks of 10 ms, and a lease renewed every tick: the main thread is "in a long update" meanwhile.
    lease.seconds = 0.03
    heartbeat = leases.Heartbeat(lease, said.append, tick=0.01, silent_for=lambda: 60.0)
    heartbeat.doing("updating staging: canary app v2: weight 50%")
    before = lease.record["renewedAt"]
    with heartbeat:
        assert renewed.wait(60)
    assert heartbeat.renewals >= 2 and lease.record["renewedAt"] >= before
    assert store.read(KEY)[0]["renewedAt"] == lease.record["renewedAt"]
    assert said and said[0].startswith("  … updating staging: canary app v2: weight 50% (")


def test_a_hung_run_stops_renewing_after_its_progress_bound_so_the_watchdog_takes_over(tmp_path):
    store = lease_dir(tmp_path)
    clock = VirtualClock()  # the heartbeat's clock and, from an epoch, the leases' wall clock

    def wall():
        return 1_800_000_000.0 + clock.now()

    lease = leases.acquire(store, KEY, record(), 60, may_take=lambda r, t: None, clock=wall)
    said, last_said = [], [0.0]
    heartbeat = leases.Heartbeat(lease, said.append, tick=0.001, monotonic=clock.now,
                                 silent_for=lambda: clock.now() - last_said[0], progress_bound=100)

    def passes(seconds, progress=False):
        """Virtual time passes (with a line said at its end: progress), then the heartbeat looks a few times."""
        clock.sleep(seconds)
        if progress:
            last_said[0] = clock.now()
        target = heartbeat.looks + 3
        waited = threading.Event()
        for _ in range(60_000):  # a bound on a thread that hangs, not a threshold
            if heartbeat.looks >= target:
                return
            waited.wait(0.001)
        raise AssertionError("the heartbeat thread does not look at the clock")

    with heartbeat:
        heartbeat.doing("judging step 1")
        for _ in range(6):  # a run that makes progress is renewed (every 20 s) as long as it runs
            passes(30, progress=True)
        assert heartbeat.renewals >= 5 and not heartbeat.stalled
        passes(90)  # silent, but within its bound: still renewed
        renewals = heartbeat.renewals
        assert renewals >= 6 and not heartbeat.stalled
        passes(20)  # 110 s without progress: hung
        assert heartbeat.stalled and heartbeat.renewals == renewals
        assert any(line.startswith("  no progress for 110s (bound 100s): the lease is no longer renewed")
                   for line in said), said
        passes(100)
        assert heartbeat.renewals == renewals
        held = store.read(KEY)[0]
        assert held["expiresAt"] < wall()  # expired: the watchdog may take it
        assert leases.watchdog_may_take(held, wall()) is None
        leases.acquire(store, KEY, record(holder=leases.holder("watchdog")), 60, may_take=leases.watchdog_may_take,
                       clock=wall)
        last_said[0] = clock.now()  # the hung run comes back: before its next write it finds the lease lost
        with pytest.raises(leases.LeaseLost, match="watchdog"):
            heartbeat.check()


def test_the_progress_bound_comes_from_the_runs_settings():
    common = {"probe_timeout": 5, "settle": 0, "verify_timeout": 120, "metrics_wait": None, "attempts": 3,
              "pause": 5, "lock_wait": 300, "lease_seconds": 300}
    # An update's tries (3 x the provider's 600 s await + pauses of 5 and 10 s) and the lock wait, then the lease.
    assert leases.progress_bound(interval=60, **common) == 3 * leases.UPDATE_AWAIT + 15 + 300 + 300
    # A step longer than that: the step (settle + verify + interval + probe timeout), then the lease.
    assert leases.progress_bound(interval=7200, **common) == 120 + 7200 + 5 + 300


def test_the_heartbeat_says_nothing_while_the_run_speaks():
    said = []
    stop = threading.Event()
    heartbeat = leases.Heartbeat(None, said.append, tick=0.01, silent_for=lambda: 0.0)
    heartbeat.doing("judging step 1")
    ticks = []
    real_wait = heartbeat.stop.wait

    def wait(seconds):
        ticks.append(seconds)
        if len(ticks) > 5:
            stop.set()
            return True
        return real_wait(seconds)

    heartbeat.stop.wait = wait
    with heartbeat:
        assert stop.wait(60)
    assert said == []


def test_lease_seconds_shorter_than_the_heartbeat_allows_are_the_inputs_fault(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["canary", "staging", "--release", "app", "--tag", "v2", "--lease-seconds", "10s"])
    assert caught.value.code == 2 and "at least 30s" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The canary, abort and status with a lease
# ---------------------------------------------------------------------------------------------


def canary_stack():
    stack = FakeStack("staging", {
        "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
        RELEASES: {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4, "stable": {"tag": "v1"},
                           "canary": {"tag": "v1", "weight": 0}}}})
    stack.up(message="initial")
    return stack


def options(**overrides):
    values = {"release": "app", "tag": "v2", "steps": [25, 50], "interval": 0.1, "url": "http://127.0.0.1:9/"}
    values.update(overrides)
    return CanaryOptions(**values)


def test_a_run_holds_the_lease_from_before_its_first_write_and_ends_it_promoted(tmp_path, monkeypatch):
    from operations import canary_run

    spec = leases.LeaseSpec(lease_dir(tmp_path), KEY)
    stack = canary_stack()
    seen = []

    def judged(prober, duration, on_tick):
        seen.append(spec.read())
        return answers_at_weight(prober, duration, on_tick)

    monkeypatch.setattr(canary_run.Prober, "run", judged)
    run = run_canary(stack, options(), clock=VirtualClock(), lease=spec)
    assert run.exit_code == 0, run.aborted
    assert [(r["state"], r["step"], r["weight"], r["tags"]["canary"]) for r in seen] == [
        ("running", 1, 25, "v2"), ("running", 2, 50, "v2")]
    assert seen[0]["holder"]["command"] == "canary" and seen[0]["run"]["steps"] == [25, 50]
    final = spec.read()
    assert final["state"] == "ended" and final["outcome"] == "promoted" and final["weight"] == 0
    assert final["tags"] == {"stable": "v2", "canary": "v2"}


def test_an_aborted_run_ends_its_lease_aborted_and_a_failed_abort_says_so(tmp_path, monkeypatch):
    from operations import canary_run

    monkeypatch.setattr(canary_run.Prober, "run", lambda self, duration, on_tick: "a verdict")
    spec = leases.LeaseSpec(lease_dir(tmp_path), KEY)
    assert run_canary(canary_stack(), options(), clock=VirtualClock(), lease=spec).exit_code == 1
    assert (spec.read()["outcome"], spec.read()["weight"]) == ("aborted", 0)
    stack = canary_stack()
    real_up = stack.up
    calls = []

    def up(**kwargs):  # the step's two updates pass; every update of the abort fails
        calls.append(kwargs)
        if len(calls) > 2:
            stack.script = ["fail"]
        return real_up(**kwargs)

    stack.up = up
    assert run_canary(stack, options(steps=[25]), clock=VirtualClock(), lease=spec).exit_code == 1
    final = spec.read()
    assert final["outcome"] == "abort-failed" and "the abort failed" in final["note"]
    assert leases.needs_abort(final, leases.wall_clock())  # the watchdog tries again


def test_an_abort_takes_the_lease_over_and_the_run_stops_without_another_write(tmp_path, monkeypatch, capsys):
    from operations import canary_run

    spec = leases.LeaseSpec(lease_dir(tmp_path), KEY)
    stack = canary_stack()

    def abort_meanwhile(prober, duration, on_tick):  # someone runs `rollout abort` during step 1
        leases.acquire(spec.store, spec.key, record(holder=leases.holder("abort"), state="aborting"), 300,
                       may_take=leases.abort_may_take)
        return answers_at_weight(prober, duration, on_tick)

    monkeypatch.setattr(canary_run.Prober, "run", abort_meanwhile)
    run = run_canary(stack, options(), clock=VirtualClock(), lease=spec)
    assert run.exit_code == 1 and "taken over by abort by" in run.aborted
    assert stack.up_messages[1:] == ["canary app v2: weight 25%: canary pods for 25% first",
                                     "canary app v2: weight 25%"]  # nothing after step 1
    assert "STOPPED: the lease was taken over" in capsys.readouterr().out
    assert spec.read()["state"] == "aborting"  # the abort's, untouched


def test_status_shows_each_releases_lease(tmp_path, monkeypatch, capsys):
    stack = canary_stack()
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    leases.acquire(lease_dir(tmp_path), KEY, record(), 300, may_take=lambda r, t: None)
    assert main(["status", "staging"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("lease"))
    assert "running canary by" in line and "step 1/1, weight 50%" in line and "expires" in line
    monkeypatch.setattr(leases, "wall_clock", lambda: 10**10)
    assert main(["status", "staging", "--json"]) == 0
    import json

    shown = json.loads(capsys.readouterr().out)["releases"]["app"]["lease"]
    assert shown["expired"] is True and "EXPIRED" in shown["line"] and shown["holder"]["command"] == "canary"


def test_abort_through_the_command_line_records_its_outcome_in_the_lease(tmp_path, monkeypatch, capsys):
    stack = canary_stack()
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="canary app v2: weight 50%")
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{tmp_path}")
    leases.acquire(lease_dir(tmp_path), KEY, record(), 300, may_take=lambda r, t: None)
    assert main(["abort", "staging", "--release", "app", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "taking over the lease: running canary by" in out and "back at 0%" in out
    final = lease_dir(tmp_path).read(KEY)[0]
    assert final["outcome"] == "aborted" and final["holder"]["command"] == "abort"


def test_abort_on_a_backend_without_leases_still_aborts(monkeypatch, capsys):
    stack = canary_stack()
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="by hand")
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    assert main(["abort", "staging", "--release", "app", "--yes"]) == 0
    assert "note: no lease is kept" in capsys.readouterr().err
    assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0


def test_canary_on_a_backend_without_leases_is_refused_after_its_input_is_checked(tmp_path, monkeypatch, capsys):
    stack = canary_stack()
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "https://api.pulumi.com")
    assert main(["canary", "staging", "--release", "app", "--tag", "v2", "--yes", "--url", "http://127.0.0.1:9/",
                 "--log", str(tmp_path / "canary.log")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file:// and s3:// backends only" in err[0]
    assert stack.up_messages == ["initial"]


def test_watchdog_on_an_s3_backend_aborts_an_expired_lease(s3, monkeypatch, capsys):
    stack = canary_stack()
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 25}
    stack.up(message="canary app v2: weight 25%")
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: stack)
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://state?region=us-east-1")
    store = S3RecordStore("state", ".app-update/leases/app-update", s3)
    leases.acquire(store, KEY, record(weight=25), 300, may_take=lambda r, t: None, clock=lambda: 0.0)
    assert main(["watchdog", "staging"]) == 0
    assert "staging app: ABORTED by the watchdog" in capsys.readouterr().out
    assert store.read(KEY)[0]["outcome"] == "aborted"
    assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0
    assert main(["watchdog", "staging"]) == 0  # again: nothing
    assert stack.up_messages[-1] == "abort canary app"


def test_a_run_renews_its_lease_and_says_what_it_does_during_a_long_update(tmp_path, monkeypatch, capsys):
    from operations import canary_run

    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    monkeypatch.setattr(leases, "TICK", 0.01)  # the heartbeat looks every 10 ms; the run is silent for longer
    store = lease_dir(tmp_path)
    renewed = threading.Event()
    real_replace = store.replace
    renewals = []

    def replace(key, record, etag):
        answer = real_replace(key, record, etag)
        if threading.current_thread().name == "lease-heartbeat":
            renewals.append(record["renewedAt"])
            if len(renewals) >= 2:
                renewed.set()
        return answer

    store.replace = replace
    stack = canary_stack()
    real_up = stack.up

    def long_update(**kwargs):  # the step's weight update runs until the heartbeat renewed twice
        if kwargs.get("message") == "canary app v2: weight 25%":
            assert renewed.wait(60), "the lease was not renewed during the update"
        return real_up(**kwargs)

    stack.up = long_update
    spec = leases.LeaseSpec(store, KEY, seconds=0.03)
    run = run_canary(stack, options(steps=[25]), clock=VirtualClock(), lease=spec)
    assert run.exit_code == 0, run.aborted
    assert len(renewals) >= 2 and renewals == sorted(renewals)
    assert "  … updating staging: canary app v2: weight 25% (" in capsys.readouterr().out


def test_a_failed_watchdog_abort_fails_the_run_and_the_next_run_tries_again(tmp_path):
    import io

    from operations.watchdog import watch_release

    stack = canary_stack()
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="canary app v2: weight 50%")
    spec = leases.LeaseSpec(lease_dir(tmp_path), KEY)
    leases.acquire(spec.store, KEY, record(), 300, may_take=lambda r, t: None, clock=lambda: 0.0)  # long expired
    stack.script = ["fail"]
    once = stacks.RetryPolicy(attempts=1, lock_wait=0)
    line, failed = watch_release(stack, "app", spec, out=io.StringIO(), policy=once, clock=VirtualClock())
    assert failed and "ABORT FAILED" in line and spec.read()["outcome"] == "abort-failed"
    line, failed = watch_release(stack, "app", spec, out=io.StringIO(), policy=once, clock=VirtualClock())
    assert not failed and "ABORTED by the watchdog (its abort had failed)" in line
    assert spec.read()["outcome"] == "aborted" and stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0


def test_an_abort_goes_on_when_the_lease_store_fails(monkeypatch, capsys):
    stack = canary_stack()
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 50}
    stack.up(message="by hand")

    def unreachable():
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "down"}}, "PutObject")

    assert do_abort(stack, "app", True, None, clock=VirtualClock(), take_lease=unreachable) == 0
    assert "note: the lease could not be taken (ClientError: " in capsys.readouterr().out
    assert stack.outputs()["releases"].value["app"]["effectiveWeight"] == 0


def test_resume_takes_the_leases_steps_and_refuses_others():
    # The lease's step counts in the lease's steps: `--steps 50` at step 3 of 5,25,50 would skip every step
    # and promote a canary nobody judged (and record it as passed).
    import argparse

    from operations import canary_lease

    record = {"step": 3, "run": {"tag": "v2", "steps": [5, 25, 50], "interval": 60.0}}
    names = [*canary_lease.RUN_DEFAULTS, "tag"]
    given = argparse.Namespace(**{**dict.fromkeys(names), "steps": [50]})
    with pytest.raises(stacks.InputError, match=r"--steps 50 differs from the run the lease describes \(5,25,50\): "
                                                r"drop --steps to resume it"):
        canary_lease.run_options(given, record)
    values, from_lease = canary_lease.run_options(argparse.Namespace(**dict.fromkeys(names)), record)
    assert values["steps"] == [5, 25, 50] and values["tag"] == "v2" and "steps" in from_lease
    same = argparse.Namespace(**{**dict.fromkeys(names), "steps": [5, 25, 50]})
    assert canary_lease.run_options(same, record)[0]["steps"] == [5, 25, 50]
