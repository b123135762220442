"""The wave workflow (.github/workflows/wave.yml) against the wave file it runs (waves/prod.yaml):
a job per stage, in order, each behind the environment of the stack it changes (its reviewers are
the gate), holding that stack's lock, continuing the wave's record up to its own stage. The
schema, zizmor and shell checks of every workflow are in tests/test_workflows.py."""

from __future__ import annotations

import re
import shlex

from model import wave_file
from tests.conftest import ROOT
from tests.test_workflows import steps, uses, workflow


def stage_jobs():
    jobs = workflow("wave.yml")["jobs"]
    return [(name, jobs[name]) for name in sorted(jobs, key=lambda n: int(n.split("-")[1]))]


def test_a_job_per_stage_in_order_behind_each_stacks_environment():
    wave = wave_file.load("prod", ROOT)
    jobs = stage_jobs()
    assert [name for name, _ in jobs] == [f"stage-{i}" for i in range(1, len(wave.stages) + 1)]
    for index, ((_, job), stage) in enumerate(zip(jobs, wave.stages, strict=True), start=1):
        assert len(stage.stacks) == 1, "a stage of several stacks needs a matrix job"
        stack = stage.stacks[0]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-stack-{stack}", "cancel-in-progress": False}
        assert job.get("needs") == (None if index == 1 else f"stage-{index - 1}")
        preview = next(s for s in steps(job) if uses(s, "pulumi/actions"))
        assert preview["with"]["command"] == "preview" and preview["with"]["stack-name"] == stack
        command = next(s["run"] for s in steps(job) if "rollout wave" in s.get("run", ""))
        assert command == (f'venv/bin/python -m rollout wave prod --release "$RELEASE" --resume --until-stage {index} '
                           "--yes")


def test_the_wave_commands_parse_and_the_release_comes_through_env():
    from rollout.cli import build_parser

    parser = build_parser()
    for _, job in stage_jobs():
        step = next(s for s in steps(job) if "rollout wave" in s.get("run", ""))
        assert step["env"] == {"RELEASE": "${{ inputs.release }}"}
        words = shlex.split(re.sub(r"^venv/bin/python -m rollout ", "", step["run"]).replace('"$RELEASE"', "app"))
        args = parser.parse_args(words)
        assert (args.wave, args.release, args.resume, args.yes) == ("prod", "app", True, True)


def test_one_wave_at_a_time_and_callable_from_deploy():
    data = workflow("wave.yml")
    assert data["concurrency"] == {"group": "wave-prod", "cancel-in-progress": False}
    assert data["on"]["workflow_call"]["inputs"]["release"]["required"] is True
    assert "workflow_dispatch" in data["on"]
    soak = wave_file.soak_seconds(wave_file.load("prod", ROOT).stages[0])
    assert stage_jobs()[1][1]["timeout-minutes"] * 60 > soak  # the second job waits the soak out


def test_the_deploy_workflow_runs_the_wave_after_staging_on_main():
    deploy = workflow("deploy.yml")
    calls = {name: job for name, job in deploy["jobs"].items() if job.get("uses") == "./.github/workflows/wave.yml"}
    assert list(calls) == ["prod-wave"]
    job = calls["prod-wave"]
    assert job["needs"] == "staging" and job["if"] == "github.ref == 'refs/heads/main'"
    assert job["with"] == {"release": deploy["env"]["CANARY_RELEASE"]}  # the release staging canaried
    assert "workflow_call" in workflow("wave.yml")["on"]
