"""`.github/workflows/watchdog.yml`: `rollout watchdog` every 5 minutes over every stack the pipeline
deploys (deploy.yml and wave.yml), with the deploy workflow's environments and OIDC roles. Checked offline (tests/test_workflows.py
runs the workflow schema and zizmor over every workflow, this one included); not run here."""

import shlex

from tests.conftest import STACKS
from tests.test_workflows import ROOT, load, steps, uses, workflow


def job():
    return workflow("watchdog.yml")["jobs"]["watchdog"]


def test_it_runs_every_5_minutes_and_by_hand():
    on = workflow("watchdog.yml")["on"]
    assert on["schedule"] == [{"cron": "*/5 * * * *"}] and "workflow_dispatch" in on


def test_every_deployed_stack_is_watched_with_its_deploy_environment_and_role():
    # deploy.yml's stacks, and the prod stacks wave.yml takes a release through
    jobs = [*workflow("deploy.yml")["jobs"].values(), *workflow("wave.yml")["jobs"].values()]
    deployed = {j["environment"] for j in jobs if "environment" in j}
    assert set(job()["strategy"]["matrix"]["stack"]) == deployed == set(STACKS) - {"local"}
    assert job()["environment"] == "${{ matrix.stack }}" and job()["strategy"]["fail-fast"] is False
    aws = next(s for s in steps(job()) if uses(s, "aws-actions/configure-aws-credentials"))
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"
    assert job()["permissions"] == {"contents": "read", "id-token": "write"}
    assert "${{ secrets" not in (ROOT / ".github" / "workflows" / "watchdog.yml").read_text()


def test_it_never_queues_in_a_deploy_jobs_concurrency_group():
    # A newer pending job cancels the pending one of the same group: never a deploy's.
    assert job()["concurrency"] == {"group": "watchdog-${{ matrix.stack }}", "cancel-in-progress": False}
    deploy_groups = {j.get("concurrency", {}).get("group") for j in workflow("deploy.yml")["jobs"].values()}
    assert job()["concurrency"]["group"] not in deploy_groups


def test_the_watchdog_command_parses_and_reads_the_s3_backend():
    from rollout.cli import build_parser

    commands = [line.split("venv/bin/python -m rollout ", 1)[1] for s in steps(job())
                for line in s.get("run", "").splitlines() if "-m rollout " in line]
    assert commands == ['watchdog "$STACK"']
    args = build_parser().parse_args(shlex.split(commands[0].replace('"$STACK"', "staging")))
    assert args.stacks == ["staging"] and args.func.__name__ == "cmd_watchdog"
    step = next(s for s in steps(job()) if "rollout watchdog" in s.get("run", ""))
    assert step["env"] == {"STACK": "${{ matrix.stack }}", "PULUMI_BACKEND_URL": "s3://${{ vars.PULUMI_STATE_BUCKET }}"}


def test_the_pulumi_cli_is_the_pinned_release():
    deploy_version = workflow("deploy.yml")["env"]["PULUMI_VERSION"]
    assert load(ROOT / ".github" / "workflows" / "watchdog.yml")["env"]["PULUMI_VERSION"] == deploy_version
    install = next(s for s in steps(job()) if "get.pulumi.com" in s.get("run", ""))
    assert '--version "$PULUMI_VERSION"' in install["run"]
