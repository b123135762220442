"""The staging job of .github/workflows/deploy.yml, walked step by step over the stand-in stacks.

GitHub cannot be reached from here and the Pulumi CLI cannot run, so the walk does what the runner
would with what can run: each step's `if:` is evaluated (steps' outputs, success(), failure(),
cancelled(), always()); each `run:` script runs in bash as the runner runs it (`bash -eo pipefail`),
with `venv/bin/python` a shim that hands `-m rollout ...` over loopback to this process, where
rollout's own main() runs over tests/fake_stack.py's stand-ins (the Automation API's interface, its
failures); a `pulumi/actions` step with `command: up` is that stand-in's `up()`. Nothing else may
touch a stack: a `run:` step that does not call rollout must be one of the setup steps named below.

From a never-deployed staging, from one a cancelled run left mid-canary, and from the other states a
run can leave, the job ends with the canary promoted or aborted (weight 0, live and in config, the
last update succeeded), and `rollout canary` never refuses to start.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import io
import os
import re
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.clock import VirtualClock
from tests.conftest import ROOT
from tests.fake_stack import FakeStack, answers_at_weight

RELEASES = "app-update:releases"
REFUSED = "already carries traffic or is mid-step"
# `run:` steps that prepare the runner and decide nothing: the walk skips them.
SETUP_STEPS = {"environments of the program and the policy pack", "pulumi login", "record the stack file"}


@functools.cache
def _deploy_workflow() -> dict:
    data = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())
    data["on"] = data.pop(True, data.get("on"))
    return data


def deploy_workflow() -> dict:
    """The workflow, parsed once per process (a walk reads it; each test gets its own copy)."""
    return copy.deepcopy(_deploy_workflow())


# ---------------------------------------------------------------------------------------------
# The stand-ins: dev and staging
# ---------------------------------------------------------------------------------------------


def config(stable="v1", canary=None, weight=0, hold=None, traffic=None):
    release = {"strategy": "Canary", "replicas": 4, "maxSurge": 1, "maxUnavailable": 1, "stable": {"tag": stable},
               "canary": {"tag": canary or stable, "weight": weight}}
    if traffic is not None:
        release["traffic"] = traffic
    if hold is not None:
        release["canary"]["podsForWeight"] = hold
    return {"app-update:cluster": {"mode": "kubeconfig"}, RELEASES: {"app": release}}


def dev_running(tag):
    dev = FakeStack("dev", config(stable=tag))
    dev.up(message="deploy")
    return dev


class Killed(BaseException):
    """The runner killing a step's process (a cancelled run, a step's time limit): nothing in it runs on."""


def killed_at_step(step):
    """Prober.run that lets the canary through `step - 1` weight steps, then dies in the middle of one."""
    seen = []

    def run(prober, duration, on_tick):
        seen.append(prober)
        if len(seen) == step:
            raise Killed()
        return answers_at_weight(prober, duration, on_tick)

    return run


# ---------------------------------------------------------------------------------------------
# The bridge: the job's scripts call `venv/bin/python -m rollout ...`; it runs here
# ---------------------------------------------------------------------------------------------


# The runner's `venv/bin/python` in the walk: hands its arguments (`-m rollout ...`) and $GITHUB_OUTPUT to this
# process over loopback (NUL-separated, their count first), where rollout's main() runs, then prints what main()
# printed, from the files the answer names, and exits with its status. bash, not Python: a Python start-up per call
# was most of a walk's CPU outside this process.
SHIM = """#!/bin/bash
exec 3<>/dev/tcp/127.0.0.1/{port}
printf '%s\\0' "$#" "${{GITHUB_OUTPUT-}}" "$@" >&3
{{ read -r code; read -r out; read -r err; }} <&3
cat -- "$out"
cat -- "$err" >&2
exit "$code"
"""


class Bridge(socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, answers: Path):
        super().__init__(("127.0.0.1", 0), BridgeHandler)
        self.answers = answers  # where each call's stdout and stderr are left for the shim to print
        self.calls: list[list[str]] = []
        self.killed = False

    def run_rollout(self, argv, output):
        from rollout.cli import main

        self.calls.append(argv)
        if argv[:2] != ["-m", "rollout"]:
            return "", f"the walk runs only `python -m rollout`, not {argv}\n", 127
        out, err = io.StringIO(), io.StringIO()
        previous = os.environ.get("GITHUB_OUTPUT")
        os.environ["GITHUB_OUTPUT"] = output or os.devnull
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv[2:])
        except Killed:
            self.killed = True
            code = 137
        finally:
            if previous is None:
                os.environ.pop("GITHUB_OUTPUT", None)
            else:
                os.environ["GITHUB_OUTPUT"] = previous
        return out.getvalue(), err.getvalue(), code


class BridgeHandler(socketserver.StreamRequestHandler):
    def field(self) -> str:
        data = bytearray()
        while (byte := self.rfile.read(1)) not in (b"\0", b""):
            data += byte
        return data.decode()

    def handle(self):
        count = int(self.field())
        output, *argv = (self.field() for _ in range(count + 1))
        out, err, code = self.server.run_rollout(argv, output)
        call = len(self.server.calls)
        printed = []
        for stream, text in (("out", out), ("err", err)):
            path = self.server.answers / f"call-{call}.{stream}"
            path.write_text(text)
            printed.append(str(path))
        self.wfile.write(f"{code}\n{printed[0]}\n{printed[1]}\n".encode())


@pytest.fixture
def bridge(tmp_path):
    answers = tmp_path / "answers"
    answers.mkdir()
    server = Bridge(answers)
    # shutdown() waits for serve_forever to see the flag: at the default 0.5 s poll, half a second a test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    shim = tmp_path / "venv" / "bin" / "python"
    shim.parent.mkdir(parents=True)
    shim.write_text(SHIM.format(port=server.server_address[1]))
    shim.chmod(0o755)
    yield server
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------------
# The walk
# ---------------------------------------------------------------------------------------------


STEP_OUTPUT = re.compile(r"steps\.([\w-]+)\.(outputs\.([\w-]+)|outcome|conclusion)")


def expand(text, outputs, outcomes):
    """`${{ ... }}` and bare `if:` expressions over the steps' outputs: the forms the job uses."""
    def value(match):
        step = match[1]
        if match[2] in ("outcome", "conclusion"):
            return outcomes.get(step, "")
        return outputs.get(step, {}).get(match[3], "")
    return STEP_OUTPUT.sub(value, text)


def condition(expression, outputs, outcomes, state):
    """A step's `if:` as GitHub evaluates it; a condition without a status function means success() &&."""
    text = str(expression or "success()").strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2].strip()
    statuses = {"success()": state == "success", "failure()": state == "failure",
                "cancelled()": state == "cancelled", "always()": True}
    if not any(f in text for f in statuses):
        text = f"success() && ({text})"
    python = STEP_OUTPUT.sub(lambda m: repr(expand(m[0], outputs, outcomes)), text)
    for function, result in statuses.items():
        python = python.replace(function, str(result))
    python = python.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\w\s'()=!.-]*", python), f"an expression the walk cannot evaluate: {expression}"
    return bool(eval(python, {"__builtins__": {}}, {}))  # noqa: S307 - only the literals checked above


def walk(workdir, bridge, stacks, cancel_after_kill=True):
    """Run the staging job's steps; returns (job result, [(step name, outcome, output)])."""
    workflow = deploy_workflow()
    job = workflow["jobs"]["staging"]
    env = {"PATH": "/usr/bin:/bin", "RUNNER_TEMP": str(workdir), "HOME": str(workdir),
           **{k: str(v) for k, v in workflow.get("env", {}).items()}, **job.get("env", {})}
    outputs: dict[str, dict[str, str]] = {}
    outcomes: dict[str, str] = {}
    state, log = "success", []
    for index, step in enumerate(job["steps"]):
        name = step.get("name", step.get("uses", ""))
        sid = step.get("id", f"step{index}")
        if not condition(step.get("if"), outputs, outcomes, state):
            outcomes[sid] = "skipped"
            log.append((name, "skipped", ""))
            continue
        outcome, text = "success", ""
        if "uses" in step:
            action = step["uses"].split("@")[0]
            given = step.get("with", {})
            if action == "pulumi/actions" and given["command"] == "up":
                stack = stacks[given["stack-name"]]
                try:
                    stack.up(message=expand(given.get("message", ""), outputs, outcomes))
                except Exception as error:  # noqa: BLE001 - the action fails the step
                    outcome, text = "failure", str(error)
            else:  # checkout, setup, credentials, a preview: no stack changes
                assert action in ("actions/checkout", "actions/setup-python", "aws-actions/configure-aws-credentials",
                                  "pulumi/actions"), action
        elif name in SETUP_STEPS:
            text = "(setup: not walked)"
        else:
            assert "-m rollout" in step["run"], f"{name}: a step that is neither setup nor rollout"
            assert not re.search(r"(^|[\s;|&(])pulumi\s", step["run"]), f"{name}: decisions belong to rollout"
            output_file = workdir / f"output-{index}"
            output_file.write_text("")
            step_env = {**env, "GITHUB_OUTPUT": str(output_file),
                        **{k: expand(str(v).replace("${{", "").replace("}}", "").strip(), outputs, outcomes)
                           for k, v in step.get("env", {}).items()}}
            bridge.killed = False
            result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                    cwd=workdir, env=step_env, capture_output=True, text=True, timeout=300)
            text = result.stdout + result.stderr
            outputs[sid] = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
            if bridge.killed:
                outcome = "cancelled"
            elif result.returncode != 0:
                outcome = "failure"
        outcomes[sid] = outcome
        log.append((name, outcome, text))
        if outcome == "cancelled":
            state = "cancelled"
        elif outcome == "failure" and state == "success":
            state = "failure"
    return state, log


@pytest.fixture
def stand_ins(monkeypatch, tmp_path):
    from operations import canary_run, digests, stacks

    made: dict[str, FakeStack] = {}
    # The job's `pulumi login s3://...` step (not walked): a file backend stands in for the bucket, where
    # `rollout canary` keeps its lease.
    backend = tmp_path / "backend"
    backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", backend.as_uri())

    def open_stack(name, project_dir):
        if name not in made:
            raise stacks.OperationError(f"stack {name} does not exist in the backend you are logged into")
        return made[name]

    def registry_digest(image, tag):  # the registry the promote step asks (Docker Hub, ECR): not reachable here
        return "sha256:" + hashlib.sha256(f"{image}:{tag}".encode()).hexdigest()

    monkeypatch.setattr(stacks, "open_stack", open_stack)
    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    monkeypatch.setattr(canary_run, "Clock", VirtualClock)
    monkeypatch.setattr(digests, "resolve", registry_digest)
    return made


def live_release(stack):
    return stack.outputs()["releases"].value["app"]


def stable_tag(stack):
    """The tag the stable track runs (the promote step pins it to its digest: `v2@sha256:...`)."""
    return live_release(stack)["tags"]["stable"].split("@", 1)[0]


def assert_settled(stack):
    """No canary carries traffic, in config or live, and what runs is what the last update applied."""
    cfg = stack.config[RELEASES]["app"]
    assert cfg["canary"]["weight"] == 0 and "podsForWeight" not in cfg["canary"], cfg
    live = live_release(stack)
    assert live["requestedWeight"] == 0 and live["effectiveWeight"] == 0, live
    assert stack.summaries[-1].result == "succeeded"


def said(log):
    return "\n".join(text for _, _, text in log)


def ran(log):
    return [name for name, outcome, _ in log if outcome != "skipped"]


# ---------------------------------------------------------------------------------------------
# From each state a run can leave staging in
# ---------------------------------------------------------------------------------------------


def never_deployed(**committed):
    return FakeStack("staging", config(**committed))


def left_mid_canary():
    """A run cancelled at the 25% step: config and live at 25%."""
    stack = FakeStack("staging", config(stable="v1"))
    stack.up(message="deploy")
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 25}
    stack.up(message="canary app v2: step 2 (25%)")
    return stack


def left_half_a_step():
    """Killed between a step's two updates: the canary's pods sized for 50%, the weight still at 25%."""
    stack = left_mid_canary()
    stack.config[RELEASES]["app"]["canary"]["podsForWeight"] = 50
    stack.up(message="canary app v2: step 3, pods for 50%")
    return stack


def left_after_a_failed_update():
    """The last update failed part-way: its weight may be live whatever the outputs said before."""
    stack = FakeStack("staging", config(stable="v1"))
    stack.up(message="deploy")
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 25}
    stack.script = ["fail"]
    with pytest.raises(Exception, match="failed to fully initialize"):
        stack.up(message="canary app v2: step 2 (25%)")
    stack.config[RELEASES]["app"]["canary"]["weight"] = 0  # the checkout's file, as committed
    return stack


def file_behind_what_runs():
    """An earlier run promoted v2 and its record pull request is not merged: the checkout's file says v1."""
    stack = FakeStack("staging", config(stable="v2"))
    stack.up(message="promote app v2 from dev")
    stack.config[RELEASES]["app"]["stable"]["tag"] = "v1"
    stack.config[RELEASES]["app"]["canary"]["tag"] = "v1"
    return stack


def left_as_a_dark_canary():
    """A canary for testers at weight 0: the `canary.match` route sends their requests to v2, nobody else's."""
    stack = FakeStack("staging", config(stable="v1", traffic="nginx"))
    stack.up(message="deploy")
    stack.config[RELEASES]["app"]["canary"] = {"tag": "v2", "weight": 0, "match": {"header": {
        "name": "X-Canary", "value": "always"}}}
    stack.up(message="canary app v2: match-only")
    return stack


STATES = {  # state: (how to make it, whether the job must abort a canary first)
    "never deployed": (lambda: never_deployed(), False),
    "never deployed, committed at weight 5": (lambda: never_deployed(weight=5, canary="v0"), True),
    "left mid-canary": (left_mid_canary, True),
    "left half a step": (left_half_a_step, True),
    "left after a failed update": (left_after_a_failed_update, True),
    "stack file behind what runs": (file_behind_what_runs, False),
    "left as a dark canary": (left_as_a_dark_canary, True),
}


@pytest.mark.parametrize("state", sorted(STATES))
def test_the_staging_job_ends_promoted_from_any_state(state, tmp_path, bridge, stand_ins):
    make, aborts = STATES[state]
    stand_ins["dev"] = dev_running("v3")
    stand_ins["staging"] = staging = make()
    before = len(staging.applied)
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "success", said(log)
    assert REFUSED not in said(log)
    assert_settled(staging)
    assert stable_tag(staging) == "v3"  # dev's tag, canaried and promoted
    assert staging.config[RELEASES]["app"]["stable"]["tag"].split("@", 1)[0] == "v3"
    steps = ran(log)
    assert "canary on staging" in steps
    assert ("first pulumi up of a never-deployed staging" in steps) == state.startswith("never deployed")
    assert ("send back a canary an earlier run left carrying traffic" in steps) == aborts
    assert "send the canary's traffic back if the job failed or was cancelled" not in steps
    if state == "stack file behind what runs":  # no update of the job rolled the stable track back to v1
        stable = [c[RELEASES]["app"]["stable"]["tag"].split("@", 1)[0] for _, c, _ in staging.applied[before:]]
        assert stable == sorted(stable) and set(stable) == {"v2", "v3"}, stable  # v2 until the promotion
        assert "the file takes v2" in said(log)


def test_a_job_cancelled_mid_canary_ends_aborted_and_the_next_run_promotes(tmp_path, bridge, stand_ins,
                                                                            monkeypatch):
    from operations import canary_run

    stand_ins["dev"] = dev_running("v2")
    stand_ins["staging"] = staging = FakeStack("staging", config(stable="v1"))
    staging.up(message="deploy")
    monkeypatch.setattr(canary_run.Prober, "run", killed_at_step(2))  # dies at 25%, its own abort never runs
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "cancelled"
    outcome = dict((name, o) for name, o, _ in log)
    assert outcome["canary on staging"] == "cancelled"
    assert outcome["promote dev -> staging"] == "skipped"
    assert outcome["send the canary's traffic back if the job failed or was cancelled"] == "success"
    assert_settled(staging)
    assert stable_tag(staging) == "v1"  # aborted: the stable track never moved
    # The next push's run starts from there and promotes.
    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "success" and REFUSED not in said(log)
    assert_settled(staging)
    assert stable_tag(staging) == "v2"


def test_a_failing_canary_ends_aborted_and_the_job_fails(tmp_path, bridge, stand_ins, monkeypatch):
    from operations import canary_run

    def failing(prober, duration, on_tick):
        judge = prober.judge
        for i in range(200):
            canary = i % 100 < max(judge.weight, 20)
            judge.observe(judge.canary_version if canary else "stable", not canary, 0.01, at=1000.0)
        return judge.verdict()  # the canary's answers all fail: the judge says so

    stand_ins["dev"] = dev_running("v2")
    stand_ins["staging"] = staging = FakeStack("staging", config(stable="v1"))
    staging.up(message="deploy")
    monkeypatch.setattr(canary_run.Prober, "run", failing)
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "failure"
    outcome = dict((name, o) for name, o, _ in log)
    assert outcome["canary on staging"] == "failure"
    assert outcome["send the canary's traffic back if the job failed or was cancelled"] == "success"
    assert "nothing to abort" in said(log)  # the canary's own abort path had already sent it back
    assert_settled(staging)
    assert stable_tag(staging) == "v1"


def test_nothing_new_on_dev_changes_nothing_on_staging(tmp_path, bridge, stand_ins):
    stand_ins["dev"] = dev_running("v1")
    stand_ins["staging"] = staging = FakeStack("staging", config(stable="v1"))
    staging.up(message="deploy")
    # The first run pins what staging runs to the digest dev's tag has (promote promotes digests), no canary.
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "success", said(log)
    assert "nothing to canary" in said(log)
    assert len(staging.summaries) == 2 and live_release(staging)["tags"]["stable"].startswith("v1@sha256:")
    # Then nothing new on dev changes nothing.
    bridge.calls.clear()
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "success", said(log)
    assert "staging already runs what dev runs" in said(log)
    assert len(staging.summaries) == 2  # no update at all
    assert [c[2:4] for c in bridge.calls] == [["pipeline-plan", "staging"], ["promote", "dev"]]


def test_a_dev_without_a_usable_tag_stops_the_job_before_anything_changes(tmp_path, bridge, stand_ins):
    stand_ins["dev"] = FakeStack("dev", config(stable="v1"))  # never deployed: no outputs
    stand_ins["staging"] = staging = left_mid_canary()
    before = len(staging.summaries)
    result, log = walk(tmp_path, bridge, stand_ins)
    assert result == "failure"
    assert "error: stack dev has no `releases` output: deploy it first" in said(log)
    # The cleanup abort still runs: a canary left by an earlier run is sent back even so.
    assert_settled(staging)
    assert len(staging.summaries) > before


# ---------------------------------------------------------------------------------------------
# The verb alone
# ---------------------------------------------------------------------------------------------


def test_pipeline_plan_writes_its_decisions_to_github_output(tmp_path, stand_ins, monkeypatch, capsys):
    from rollout.cli import main

    stand_ins["dev"] = dev_running("v2")
    stand_ins["staging"] = left_mid_canary()
    output = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert main(["pipeline-plan", "staging", "--from", "dev", "--release", "app"]) == 0
    assert output.read_text().splitlines() == ["first-up=false", "abort=true", "canary=true", "tag=v2",
                                                  "adopted=false"]
    out = capsys.readouterr().out
    assert "config canary.weight 25" in out and "live weight 25% requested" in out


def test_pipeline_plan_sees_a_dark_canary_and_plans_its_abort(tmp_path, stand_ins, monkeypatch, capsys):
    from rollout.cli import main

    stand_ins["dev"] = dev_running("v3")
    stand_ins["staging"] = staging = left_as_a_dark_canary()
    assert live_release(staging)["effectiveWeight"] == 0 and live_release(staging)["tags"]["canary"] == "v2"
    output = tmp_path / "out"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    assert main(["pipeline-plan", "staging", "--from", "dev", "--release", "app"]) == 0
    assert output.read_text().splitlines() == ["first-up=false", "abort=true", "canary=true", "tag=v3",
                                                  "adopted=false"]
    assert "a dark canary: canary.match sends matched requests to v2 at weight 0" in capsys.readouterr().out
    # dev runs the dark canary's own tag: still aborted first (its route is taken back), then canaried again.
    stand_ins["dev"] = dev_running("v2")
    assert main(["pipeline-plan", "staging", "--from", "dev", "--release", "app"]) == 0
    assert "abort=true canary=true tag=v2" in capsys.readouterr().out
    # A match route whose canary runs the stable tag carries nothing apart: nothing to abort.
    staging.config[RELEASES]["app"]["canary"]["tag"] = "v1"
    staging.up(message="abort canary app")
    assert main(["pipeline-plan", "staging", "--from", "dev", "--release", "app"]) == 0
    assert "abort=false canary=true tag=v2" in capsys.readouterr().out


@pytest.mark.parametrize("words, message", [
    (["staging", "--from", "staging", "--release", "app"], "error: --from staging: the source must be another"),
    # checked against the local stack file first, before any stack is opened
    (["staging", "--from", "dev", "--release", "nope"], "error: --release nope: stack staging has no release nope"),
])
def test_pipeline_plan_refusals_are_one_line(words, message, stand_ins, capsys):
    from rollout.cli import main

    stand_ins["dev"] = dev_running("v2")
    stand_ins["staging"] = never_deployed()
    assert main(["pipeline-plan", *words]) in (1, 2)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_pipeline_plan_refuses_a_tag_that_is_not_a_tag(stand_ins):
    from operations import pipeline_plan
    from operations.stacks import OperationError

    dev = dev_running("v2")
    dev._outputs = {"releases": {"app": {"tags": {"stable": "v1;rm -rf /"}}}}
    with pytest.raises(OperationError, match="reports no usable tag for release app"):
        pipeline_plan.plan(dev, never_deployed(), "app")


def test_the_walk_knows_every_step_of_the_job():
    job = deploy_workflow()["jobs"]["staging"]
    names = [s.get("name", s.get("uses")) for s in job["steps"]]
    assert SETUP_STEPS <= set(names)
    rollout_steps = [s for s in job["steps"] if "-m rollout" in s.get("run", "")]
    assert len(rollout_steps) == 5
    assert Path(sys.executable).exists()


@pytest.mark.parametrize(("tag", "other", "same"), [
    ("v2", "v2", True),
    ("v2", "v2@sha256:" + "a" * 64, True),  # staging pinned by a promotion, dev by tag
    ("v2@sha256:" + "a" * 64, "v2@sha256:" + "a" * 64, True),
    ("v2@sha256:" + "a" * 64, "v2@sha256:" + "b" * 64, False),  # the tag was pushed again: a new image
    ("v3", "v2@sha256:" + "a" * 64, False),
    (None, "v2", False),
])
def test_a_digest_pinned_stable_track_is_the_same_image_as_its_tag(tag, other, same):
    from operations.pipeline_plan import TAG, same_image

    assert same_image(tag, other) is same and same_image(other, tag) is same
    assert all(TAG.match(t) for t in (tag, other) if t)
