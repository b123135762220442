"""The GitHub Actions workflows, checked offline: the workflow JSON Schema, zizmor, and what the
pipeline promises (least permissions, OIDC only, one update per stack at a time, the policy pack
on every preview and up, commands the rollout CLI accepts). They are not run here."""

import functools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, STACKS

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
BIN = Path(sys.executable).parent
TAG_PINNED_PUBLISHERS = {"actions", "aws-actions", "pulumi"}


@functools.cache
def load(path):
    """A workflow, parsed once (the tests only read it)."""
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def workflow(name):
    return load(ROOT / ".github" / "workflows" / name)


def steps(job):
    return job.get("steps", [])


def uses(step, action):
    return step.get("uses", "").split("@")[0] == action


def all_jobs():
    for path in WORKFLOWS:
        for name, job in load(path)["jobs"].items():
            yield path.name, name, job


def protected_stacks():
    from model.stack_file import stack_settings

    return {s for s in STACKS if str(stack_settings(s, ROOT).get("app-update:protected", "false")).lower() == "true"}


def test_the_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["deploy.yml", "pull-request.yml", "wave.yml"]


# ---------------------------------------------------------------------------------------------
# The two tools, from this venv, offline
# ---------------------------------------------------------------------------------------------


def tool(name):
    path = BIN / name
    assert path.exists(), f"{name} is not installed next to {sys.executable}: pip install -r requirements-dev.txt"
    return str(path)


def test_every_workflow_validates_against_the_github_workflow_schema():
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows",
                             *map(str, WORKFLOWS)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_zizmor_finds_nothing_at_medium_or_above():
    result = subprocess.run([tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "plain",
                             "--color", "never", ".github/workflows"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_the_zizmor_config_allows_tag_pins_for_exactly_the_publishers_used():
    config = yaml.safe_load((ROOT / ".github" / "zizmor.yml").read_text())
    policies = config["rules"]["unpinned-uses"]["config"]["policies"]
    assert policies.pop("*") == "hash-pin"
    assert policies == {f"{p}/*": "ref-pin" for p in TAG_PINNED_PUBLISHERS}
    used = {step["uses"] for _, _, job in all_jobs() for step in steps(job) if "uses" in step}
    assert {u.split("/")[0] for u in used} == TAG_PINNED_PUBLISHERS
    assert all(re.fullmatch(r"[\w-]+/[\w-]+@v\d+", u) for u in used), used  # major tags, nothing floating


# ---------------------------------------------------------------------------------------------
# Permissions, OIDC, concurrency
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_nothing_is_granted_at_the_top(path):
    assert load(path)["permissions"] == {}


def test_every_job_asks_for_least_permissions():
    for file, name, job in all_jobs():
        granted = job["permissions"]
        aws = any(uses(s, "aws-actions/configure-aws-credentials") for s in steps(job))
        comments = any(uses(s, "pulumi/actions") and s.get("with", {}).get("comment-on-pr") for s in steps(job))
        expected = {"contents": "write" if name == "record" else "read"}
        if aws:
            expected["id-token"] = "write"
        if comments or name == "record":
            expected["pull-requests"] = "write"
        assert granted == expected, f"{file} {name}"


def test_aws_access_is_oidc_only():
    for path in WORKFLOWS:
        text = path.read_text()
        assert "aws-access-key-id" not in text and "aws-secret-access-key" not in text
        assert not re.search(r"secrets\.AWS_", text)
    for file, name, job in all_jobs():
        for step in steps(job):
            if uses(step, "aws-actions/configure-aws-credentials"):
                assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}", f"{file} {name}"
                assert "environment" in job, f"{file} {name}: the role's OIDC trust names the environment"


def test_every_stack_changing_job_holds_its_stacks_lock():
    deploy = workflow("deploy.yml")
    assert deploy["concurrency"] == {"group": "deploy-main", "cancel-in-progress": False}
    for stack in ("dev", "staging", "prod"):
        job = deploy["jobs"][stack]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-stack-{stack}", "cancel-in-progress": False}


def test_prod_waits_for_staging_and_its_environment():
    jobs = workflow("deploy.yml")["jobs"]
    assert jobs["dev"]["needs"] == "test" and jobs["staging"]["needs"] == "dev" and jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["environment"] == "prod"


def test_no_expression_is_expanded_inside_a_script():
    for file, name, job in all_jobs():
        for step in steps(job):
            assert "${{" not in step.get("run", ""), f"{file} {name} {step.get('name')}: pass it through env"


# ---------------------------------------------------------------------------------------------
# Pulumi: backend, secrets, policy pack, CLI version
# ---------------------------------------------------------------------------------------------


def pulumi_steps():
    for file, name, job in all_jobs():
        for step in steps(job):
            if uses(step, "pulumi/actions"):
                yield file, name, job, step["with"]


def stack_of(job, given):
    stack = given["stack-name"]
    return [i["stack"] for i in job["strategy"]["matrix"]["include"]] if "matrix" in stack else [stack]


def test_every_preview_and_up_runs_the_policy_pack_on_the_s3_backend():
    from pathlib import PurePosixPath

    requirements = (ROOT / "requirements.txt").read_text()
    pinned = re.search(r"^pulumi==(\S+)$", requirements, re.M)[1]
    commands = set()
    for file, name, _job, given in pulumi_steps():
        commands.add(given["command"])
        assert given["policyPacks"] == "policy", f"{file} {name}"
        assert given["cloud-url"] == "s3://${{ vars.PULUMI_STATE_BUCKET }}"
        assert given["secrets-provider"] == "awskms://alias/${{ vars.PULUMI_KMS_ALIAS }}"
        assert given["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
        assert load(ROOT / ".github" / "workflows" / file)["env"]["PULUMI_VERSION"] == pinned
        assert (ROOT / PurePosixPath(given["policyPacks"]) / "PulumiPolicy.yaml").exists()
    assert commands == {"preview", "up"}


def test_protected_stacks_get_the_protected_policy_config():
    protected = protected_stacks()
    assert protected == {"prod", "prod-use1", "prod-euw1"}
    seen = set()
    for file, name, job, given in pulumi_steps():
        for stack in stack_of(job, given):
            seen.add(stack)
            config = given.get("policyPackConfigs", "")
            if "matrix" in config:
                config = next(i["policy-config"] for i in job["strategy"]["matrix"]["include"] if i["stack"] == stack)
            assert config == ("policy/protected.json" if stack in protected else ""), f"{file} {name} {stack}"
    assert seen == set(STACKS) - {"local"}


def test_pull_requests_preview_every_stack_but_local_and_comment():
    jobs = workflow("pull-request.yml")["jobs"]
    preview = jobs["preview"]
    assert [i["stack"] for i in preview["strategy"]["matrix"]["include"]] == ["dev", "staging", "prod"]
    assert preview["environment"] == "preview-${{ matrix.stack }}"
    step = next(s for s in steps(preview) if uses(s, "pulumi/actions"))
    assert step["with"]["command"] == "preview" and step["with"]["comment-on-pr"] is True
    scripts = " ".join(s.get("run", "") for s in steps(jobs["test"]))
    assert "make test" in scripts and "for stack in local dev staging prod" in scripts


# ---------------------------------------------------------------------------------------------
# The rollout commands the pipeline runs are ones the CLI accepts
# ---------------------------------------------------------------------------------------------


def rollout_commands():
    found = []
    for _file, name, job in all_jobs():
        for step in steps(job):
            for line in step.get("run", "").splitlines():
                match = re.search(r"venv/bin/python -m rollout ([^|&;]+)", line)
                if match:
                    found.append((name, re.sub(r"\s*2>$", "", match[1].strip())))
    return found


def test_the_pipeline_runs_canary_then_promote_on_staging_and_promote_on_prod():
    assert rollout_commands() == [
        ("staging", 'canary staging --release "$CANARY_RELEASE" --tag "$TAG" --yes'),
        ("staging", "promote dev staging --yes"),
        ("prod", "promote staging prod --yes"),
        ("stage-1", 'wave prod --release "$RELEASE" --resume --until-stage 1 --yes'),
        ("stage-2", 'wave prod --release "$RELEASE" --resume --until-stage 2 --yes'),
    ]


def test_the_rollout_commands_parse():
    from rollout.cli import build_parser

    parser = build_parser()
    for _, command in rollout_commands():
        words = shlex.split(command.replace('"$CANARY_RELEASE"', "app").replace('"$TAG"', "v2"))
        args = parser.parse_args(words)
        assert args.yes is True


# ---------------------------------------------------------------------------------------------
# The pipeline's shell, run against stand-ins for pulumi and the rollout CLI
# ---------------------------------------------------------------------------------------------


def scripts():
    for file, name, job in all_jobs():
        for step in steps(job):
            if "run" in step:
                yield f"{file} {name} {step.get('name', step['run'][:30])}", step["run"]


def test_every_script_is_valid_bash():
    for label, script in scripts():
        result = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=10)
        assert result.returncode == 0, f"{label}: {result.stderr}"


def step_named(job, prefix):
    return next(s for s in steps(workflow("deploy.yml")["jobs"][job]) if s.get("name", "").startswith(prefix))


def run_step(step, cwd, env):
    """The step's script as GitHub runs it (bash -e), in `cwd` with stand-ins first on PATH."""
    outputs = cwd / "github-output"
    outputs.write_text("")
    full = {"PATH": f"{cwd / 'bin'}:/usr/bin:/bin", "GITHUB_OUTPUT": str(outputs), **env}
    result = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=cwd, env=full, capture_output=True, text=True,
                            timeout=30)
    return result, dict(line.split("=", 1) for line in outputs.read_text().splitlines() if "=" in line)


def stand_in(path, script):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # never write through a symlink (venv/bin/python points at the real one)
    path.write_text("#!/bin/bash\n" + script)
    path.chmod(0o755)


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to(sys.executable)
    return tmp_path


def fake_pulumi(workdir, dev, staging):
    """`pulumi stack output releases --stack S --json`: dev's and staging's outputs (None: no outputs)."""
    cases = "".join(f"  {stack}) {f'echo {shlex.quote(out)}' if out else 'echo error: no outputs >&2; exit 255'};;\n"
                    for stack, out in (("dev", dev), ("staging", staging)))
    stand_in(workdir / "bin" / "pulumi", f'case "$5" in\n{cases}esac\n')


def releases(stable):
    return json.dumps({"app": {"strategy": "Canary", "tags": {"stable": stable, "canary": "v9"}}})


@pytest.mark.parametrize("staging, canary", [(None, "true"), (releases("v3"), "false")])
def test_the_canary_tag_is_what_devs_stable_track_runs(workdir, staging, canary):
    fake_pulumi(workdir, releases("v3"), staging)
    result, outputs = run_step(step_named("staging", "choose the canary tag"), workdir, {"CANARY_RELEASE": "app"})
    assert result.returncode == 0, result.stderr
    assert outputs == {"tag": "v3", "canary": canary}


@pytest.mark.parametrize("dev", [None, releases("v1;rm -rf /")])
def test_no_usable_tag_from_dev_stops_the_job(workdir, dev):
    fake_pulumi(workdir, dev, releases("v2"))
    result, outputs = run_step(step_named("staging", "choose the canary tag"), workdir, {"CANARY_RELEASE": "app"})
    assert result.returncode == 1 and "::error::dev reports no usable stable tag" in result.stdout
    assert outputs == {}


@pytest.mark.parametrize("job, step", [("staging", "promote dev -> staging"), ("prod", "promote staging -> prod")])
@pytest.mark.parametrize("said, status, expected", [
    ("promoted", 0, 0),
    ("error: nothing to promote: it already runs what the source runs", 1, 0),
    ("error: the update failed: pulumi: boom", 1, 1),
])
def test_promote_treats_nothing_to_promote_as_done(workdir, job, step, said, status, expected):
    stand_in(workdir / "venv" / "bin" / "python", f"echo {shlex.quote(said)} >&2\nexit {status}\n")
    result, _ = run_step(step_named(job, step), workdir, {})
    assert result.returncode == expected, result.stdout + result.stderr
    assert said in result.stdout  # the rollout CLI's own lines stay in the log
