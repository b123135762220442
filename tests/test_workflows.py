"""The GitHub Actions workflows, checked offline: the workflow JSON Schema, zizmor, and what the
pipeline promises (least permissions, OIDC only, one update per stack at a time, the policy pack
on every preview and up, commands the rollout CLI accepts). They are not run here."""

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, STACKS

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = sorted((ROOT / ".github" / "actions").glob("*/action.yml"))
TEST_DEPS_ACTION = "./.github/actions/test-deps"
MAIN = "github.ref == 'refs/heads/main'"
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
    assert {"deploy.yml", "pull-request.yml", "watchdog.yml", "wave.yml"} <= {p.name for p in WORKFLOWS}
    assert [p.parent.name for p in ACTIONS] == ["test-deps"]


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


def test_every_composite_action_validates_against_the_github_action_schema():
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.github-actions",
                             *map(str, ACTIONS)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing_at_medium_or_above():
    result = subprocess.run([tool("zizmor"), "--offline", "--min-severity", "medium", "--format", "plain",
                             "--color", "never", ".github/workflows", ".github/actions"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


def test_the_zizmor_config_allows_tag_pins_for_exactly_the_publishers_used():
    config = yaml.safe_load((ROOT / ".github" / "zizmor.yml").read_text())
    policies = config["rules"]["unpinned-uses"]["config"]["policies"]
    assert policies.pop("*") == "hash-pin"
    assert policies == {f"{p}/*": "ref-pin" for p in TAG_PINNED_PUBLISHERS}
    used = {step["uses"] for _, _, job in all_jobs() for step in steps(job) if "uses" in step}
    used |= {step["uses"] for path in ACTIONS for step in yaml.safe_load(path.read_text())["runs"]["steps"]
             if "uses" in step}
    used = {u for u in used if not u.startswith("./")}  # this repository's own actions, at the run's commit
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
        if job.get("uses", "").startswith("./.github/workflows/"):
            # A job calling a workflow of this repository grants what that workflow's jobs need, no more.
            called = load(ROOT / job["uses"])["jobs"].values()
            assert granted == {k: v for j in called for k, v in j["permissions"].items()}, f"{file} {name}"
            continue
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
    for stack in ("dev", "staging", "prod"):
        job = deploy["jobs"][stack]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-stack-{stack}", "cancel-in-progress": False}


def test_no_workflow_wide_concurrency_spans_the_prod_approval():
    """A prod job waiting for its reviewers (up to 30 days) holds only prod's group: dev and staging of a later
    push go on. Any group above the jobs would be held for the whole run, approval included."""
    deploy = workflow("deploy.yml")
    assert "concurrency" not in deploy
    groups = {name: job.get("concurrency", {}).get("group") for name, job in deploy["jobs"].items()}
    assert groups["prod"] == "pulumi-stack-prod"
    assert all(group != groups["prod"] for name, group in groups.items() if name != "prod")
    # every job that holds AWS credentials holds its own stack's group
    for name, job in deploy["jobs"].items():
        if any(uses(s, "aws-actions/configure-aws-credentials") for s in steps(job)):
            assert groups[name] == f"pulumi-stack-{job['environment']}", name


def test_prod_waits_for_staging_and_its_environment():
    jobs = workflow("deploy.yml")["jobs"]
    assert jobs["dev"]["needs"] == "test" and jobs["staging"]["needs"] == "dev" and jobs["prod"]["needs"] == "staging"
    assert jobs["prod"]["environment"] == "prod"


def test_deploy_jobs_and_dispatch_run_only_on_main():
    """workflow_dispatch may be started on any branch: the jobs themselves check the ref, so a branch's code
    never runs with a deploy role (the environments' branch rules and the roles' trust say so too)."""
    deploy = workflow("deploy.yml")
    assert deploy["on"]["push"] == {"branches": ["main"]}
    assert set(deploy["on"]) == {"push", "workflow_dispatch"}
    for name, job in deploy["jobs"].items():
        changes_something = "environment" in job or "write" in job["permissions"].values()
        if name == "test":
            assert not changes_something and "id-token" not in job["permissions"]
            continue
        assert changes_something, name
        condition = job["if"].removeprefix("${{").removesuffix("}}").strip()
        assert condition == MAIN or f"&& {MAIN} &&" in condition, f"{name}: {job['if']}"
        assert "||" not in condition, name


def test_every_job_running_make_test_installs_its_prerequisites_first():
    """The same install as .ci/run: `make test-deps` (Prometheus, the CRD validators' node modules, and what
    the Makefile adds there later), through one composite action."""
    found = 0
    for file, name, job in all_jobs():
        names = [s.get("uses", "") or s.get("run", "") for s in steps(job)]
        runs_tests = [i for i, s in enumerate(steps(job)) if re.search(r"\bmake test\b(?!-)", s.get("run", ""))]
        if not runs_tests:
            continue
        found += 1
        setup = [i for i, s in enumerate(steps(job)) if s.get("uses") == TEST_DEPS_ACTION]
        assert setup and setup[0] < runs_tests[0], f"{file} {name}: {names}"
        assert uses(steps(job)[0], "actions/checkout"), f"{file} {name}: a local action needs the checkout"
    assert found == 2
    action = yaml.safe_load((ROOT / TEST_DEPS_ACTION / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    scripts = [s["run"] for s in action["runs"]["steps"] if "run" in s]
    assert scripts == ["make test-deps"]
    assert any(s.get("uses", "").startswith("actions/setup-node@") for s in action["runs"]["steps"])
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert ci.index("make test-deps") < ci.index("make test")


def test_the_control_plane_build_is_cached_between_runs_before_test_deps_builds_it():
    """`make test-deps` builds the test control plane (15-50 min) only when ~/.cache/app-update lacks it: the
    action restores that directory first, keyed on everything controlplane/build.sh keys its directories on, the
    script itself and the Go toolchain (a new Go builds afresh)."""
    action = yaml.safe_load((ROOT / TEST_DEPS_ACTION / "action.yml").read_text())
    action_steps = action["runs"]["steps"]
    build = next(i for i, s in enumerate(action_steps) if s.get("run") == "make test-deps")
    cache = [i for i, s in enumerate(action_steps) if uses(s, "actions/cache")]
    assert cache and cache[0] < build
    cached = action_steps[cache[0]]["with"]
    assert cached["path"] == "~/.cache/app-update"
    build_sh = (ROOT / "controlplane" / "build.sh").read_text()
    assert "${XDG_CACHE_HOME:-$HOME/.cache}/app-update/" in build_sh
    keyed = set(re.findall(r"'(controlplane/[^']+)'", cached["key"]))
    assert {"controlplane/go.mod", "controlplane/go.sum", "controlplane/main.go", "controlplane/build.sh",
            "controlplane/crds/go.mod", "controlplane/crds/go.sum"} <= keyed
    assert all((ROOT / path).is_file() for path in keyed)
    go = next(i for i, s in enumerate(action_steps) if uses(s, "actions/setup-go"))
    assert go < cache[0] and f"steps.{action_steps[go]['id']}.outputs.go-version" in cached["key"]
    assert action_steps[go]["with"]["go-version-file"] == "controlplane/go.mod"


def test_make_test_deps_installs_prometheus_and_the_node_modules():
    result = subprocess.run(["make", "-n", "-B", "test-deps", "PYTHON=true"], cwd=ROOT, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "apt-get install" in result.stdout and "prometheus" in result.stdout
    assert "npm ci --prefix tests/crd" in result.stdout
    assert "pip install" in result.stdout and "requirements-dev.txt" in result.stdout


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
    for file, name, job, given in pulumi_steps():
        commands.add(given["command"])
        assert given["policyPacks"] == "policy", f"{file} {name}"
        assert given["cloud-url"] == "s3://${{ vars.PULUMI_STATE_BUCKET }}"
        stacks = stack_of(job, given)
        suffix = "${{ matrix.stack }}" if len(stacks) > 1 else stacks[0]
        # each stack's secrets under its own key (rollout bootstrap names them alias/<alias>-<stack>)
        assert given["secrets-provider"] == f"awskms://alias/${{{{ vars.PULUMI_KMS_ALIAS }}}}-{suffix}"
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
    """The rollout commands of the two pipeline workflows (other workflows have tests of their own)."""
    found = []
    for file, name, job in all_jobs():
        if file not in ("deploy.yml", "pull-request.yml"):
            continue
        for step in steps(job):
            for line in step.get("run", "").splitlines():
                match = re.search(r"venv/bin/python -m rollout ([^|&;]+)", line)
                if match:
                    found.append((name, re.sub(r"\s*2>$", "", match[1].strip())))
    return found


def test_the_pipeline_plans_aborts_canaries_then_promotes_on_staging_and_promotes_on_prod():
    abort = 'abort staging --release "$CANARY_RELEASE" --yes'
    assert rollout_commands() == [
        ("staging", 'pipeline-plan staging --from dev --release "$CANARY_RELEASE"'),
        ("staging", abort),
        ("staging", 'canary staging --release "$CANARY_RELEASE" --tag "$TAG" --yes --log "$RUNNER_TEMP/canary-staging.log"'),
        ("staging", "promote dev staging --yes"),
        ("staging", abort),
        ("prod", "promote staging prod --yes"),
    ]


def test_the_rollout_commands_parse():
    from rollout.cli import build_parser

    parser = build_parser()
    for _, command in rollout_commands():
        words = shlex.split(command.replace('"$CANARY_RELEASE"', "app").replace('"$TAG"', "v2")
                            .replace('"$RUNNER_TEMP', '"/tmp'))
        args = parser.parse_args(words)
        assert args.verb == "pipeline-plan" or args.yes is True  # nothing waits for a question in CI


def test_the_staging_job_keeps_time_for_its_abort_step():
    """A step that hits its limit fails and the job goes on to the abort step; the job's own limit (which
    cancels everything) is never reached first: every long step has a limit and they sum to no more than it."""
    job = workflow("deploy.yml")["jobs"]["staging"]
    cleanup = [s for s in steps(job) if s.get("if") == "cancelled() || failure()"]
    assert len(cleanup) == 1 and "-m rollout abort staging" in cleanup[0]["run"] and "--yes" in cleanup[0]["run"]
    assert steps(job).index(cleanup[0]) > max(i for i, s in enumerate(steps(job)) if "rollout canary" in
                                               s.get("run", "") or "-m rollout canary" in s.get("run", ""))
    limited = [s for s in steps(job) if "run" in s or uses(s, "pulumi/actions")]
    assert all("timeout-minutes" in s for s in limited), [s.get("name") for s in limited if "timeout-minutes" not in s]
    setup_allowance = 10  # checkout, setup-python, credentials
    assert sum(s["timeout-minutes"] for s in limited) + setup_allowance <= job["timeout-minutes"]
    assert cleanup[0]["timeout-minutes"] >= 10  # two updates, and the lock of a cancelled one to wait for


# ---------------------------------------------------------------------------------------------
# The pipeline's shell, run against a stand-in for the rollout CLI (the staging job's decisions are
# walked over the stand-in stacks in tests/test_pipeline_staging.py)
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
