"""Shared helpers: run the real program offline with a given config."""

from __future__ import annotations

import copy
import gc
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import preview.runner  # noqa: E402
from model.stack_file import stack_settings  # noqa: E402, F401 (tests import it from here)
from preview.runner import ProgramRun  # noqa: E402
from tests.program_runs import PROGRAM_RUNS, _run_key, cached_run, shared_run  # noqa: E402, F401 (one store)

# The stack files git tracks when the repository is there, else the ones this repository ships: never whatever else
# lies in the checkout (a user's own Pulumi.mine.yaml, which the README invites, is not the tests' input).
SHIPPED_STACKS = ("dev", "local", "prod", "prod-euw1", "prod-use1", "staging")


def tracked_stack_files(root: Path) -> list[Path]:
    """The `Pulumi.<stack>.yaml` files of `root` that git tracks (SHIPPED_STACKS outside a git checkout)."""
    try:
        listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--", "Pulumi.*.yaml"], check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [root / f"Pulumi.{name}.yaml" for name in SHIPPED_STACKS]
    return sorted(root / name for name in listed.split("\0") if name and "/" not in name)


STACK_FILES = tracked_stack_files(ROOT)
STACKS = [p.name[len("Pulumi."):-len(".yaml")] for p in STACK_FILES]


# The files that take longest, longest first (wall seconds on a worker of `make test`, measured per file on
# 2026-12-05): the two workers take whole files in collection order (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml), so starting with the long ones keeps one worker from ending alone on a long file. tests/cluster's
# file leads (the longest: the control plane starts for it), then the Prometheus files, whose time is mostly waiting
# on the server's scrapes, which the control plane's CPU fills. Files not listed follow in their usual order; the
# order changes no test's outcome (no test depends on another).
LONGEST_FIRST = ("test_cluster.py", "test_prometheus.py", "test_prometheus_release.py", "test_traffic_modes.py",
                 "test_bluegreen.py", "test_driver_death.py", "test_canary.py", "test_pipeline_staging.py",
                 "test_report_browser.py", "test_live_weight.py", "test_promotion.py", "test_schema_editors.py",
                 "test_bluegreen_driver_death.py", "test_engine_run.py", "test_step_checks.py", "test_bootstrap.py",
                 "test_forecast.py", "test_makefile.py", "test_match_phase.py", "test_fuzz.py", "test_traffic.py",
                 "test_judge.py", "test_app.py", "test_match_proxy.py", "test_report.py", "test_apiserver_rules.py",
                 "test_operations.py", "test_cli.py", "test_hostile_input.py")


# Files that go to one worker together, one after the other (a scope of xdist's loadfile scheduling each): the
# Prometheus files, whose scenarios all begin when the first of them starts, so that the ~5 s waits for Prometheus'
# discovery ticks overlap (tests/test_prometheus.py, `environment`).
ONE_WORKER = {"tests/test_prometheus.py": "prometheus", "tests/test_prometheus_release.py": "prometheus"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadfile` (pyproject.toml) with the files of ONE_WORKER as one scope; other modes as xdist has them."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LoadFileGroups(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = super()._split_scope(nodeid)
            return ONE_WORKER.get(path, path)

    return LoadFileGroups(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tells each worker whether the scheduler above groups ONE_WORKER's files (a worker's own `dist` is "no")."""
    node.workerinput["one_worker_groups"] = node.config.getvalue("dist") == "loadfile"


def runs_one_worker_groups(config: pytest.Config) -> bool:
    """Whether this process runs each ONE_WORKER group's files together: it runs the whole session (no xdist, or
    `-n 0`), or it is a worker of the loadfile scheduling above (not of `--dist load`, which splits files)."""
    workerinput = getattr(config, "workerinput", None)
    return workerinput is None or bool(workerinput.get("one_worker_groups"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order


def pytest_collection_finish(session: pytest.Session) -> None:
    """What is alive once the tests are collected (the SDK, pydantic models, schemas) lives to the end:
    freezing it keeps the collector's full passes from walking it again and again (~8% of the suite)."""
    gc.collect()
    gc.freeze()
    # A young-generation collection once 10,000 new objects are alive, not 700: a program run makes hundreds of
    # thousands of short-lived objects, and most are gone before a collection at this size would look at them (the
    # collector's share of a worker's CPU, measured on the canary, pipeline and promotion files: 6% -> 3.5%).
    gc.set_threshold(10_000, 10, 10)


def workshop_release(**overrides: Any) -> dict[str, Any]:
    release = {"strategy": "RollingUpdate", "tag": "v1", "replicas": 5, "maxSurge": 1, "maxUnavailable": 1}
    release.update(overrides)
    return release


def settings_with(releases: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A minimal kubeconfig stack's settings, as structured values keyed like the stack file."""
    settings: dict[str, Any] = {"app-update:cluster": {"mode": "kubeconfig"}, "app-update:releases": copy.deepcopy(releases)}
    for key, value in top.items():
        settings[f"app-update:{key}"] = value
    return settings


def run_with(releases: dict[str, Any], stack: str = "test", **top: Any) -> ProgramRun:
    return shared_run(stack, settings_with(releases, **top))


def ok_run(releases: dict[str, Any], stack: str = "test", **top: Any) -> ProgramRun:
    run = run_with(releases, stack, **top)
    if run.error is not None:
        raise run.error
    return run


def objects_of(run: ProgramRun, typ: str) -> dict[str, dict[str, Any]]:
    """The inputs of every registered object of a type, by metadata.name."""
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(typ)}


def pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    return deployment["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, ProgramRun]:
    """Each stack file run once through the program (shared: runs are read-only)."""
    return {stack: cached_run(stack, ROOT, None, None) for stack in STACKS}


@pytest.fixture
def proxy():
    """The weighted proxy standing in for the load balancer in front of real app processes (tests/weighted_proxy.py)."""
    from tests.weighted_proxy import WeightedProxy

    with WeightedProxy() as server:
        yield server


@pytest.fixture
def aws(monkeypatch):
    """moto's AWS for the live reads (ELBv2, Route53), as a boto3 session in us-west-2, with no real credentials."""
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    # Without this, moto's EC2 builds its catalogue of ~1,300 public AMIs (each with a volume and a snapshot) for
    # every region backend it starts, most of a test's CPU; the code under test reads no AMI (moto's own setting).
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        import boto3

        yield boto3.session.Session(region_name="us-west-2")


@pytest.fixture(autouse=True)
def _live_weight_from_stand_in_outputs(monkeypatch):
    """Canaries run in-process over stand-in stacks read their live weight from the stand-in's outputs
    (tests/fake_stack.py): there is no load balancer or API server behind them. The real readers have
    tests of their own (test_live_weight.py, test_step_checks.py, tests/cluster/)."""
    from operations import step_checks
    from tests.fake_stack import outputs_live_reader

    monkeypatch.setattr(step_checks, "live_reader", outputs_live_reader)


@pytest.fixture(autouse=True)
def _no_resource_quotas_behind_stand_ins(monkeypatch):
    """Blue-green runs over stand-in stacks find no ResourceQuota or LimitRange in their namespace (there is no API
    server behind them, and a developer's own kubeconfig must not be read). The real reader has tests of its own
    (test_bluegreen.py patches this with quotas, tests/cluster/ reads a real API server's)."""
    from operations import live_capacity

    monkeypatch.setattr(live_capacity, "new_color_shortfalls", lambda *args, **kwargs: live_capacity.NewColorCheck())


@pytest.fixture(autouse=True)
def _share_cli_program_runs(monkeypatch):
    """Commands run in-process (`rollout preview` above all) get the program's run for their config
    from the same store: the many tests that preview the same stack file from a copy of the project
    (to break its files, or its disk) run the program once. Each gets its own deep copy, since a
    command may change what it is given. Inputs that do not resolve go to the real runner, which
    fails as it would without the store; so does every input whose run failed (a fresh run keeps
    its exception's traceback, for --debug)."""
    real = preview.runner.run_program

    def shared(stack: str, project_dir: Path = preview.runner.PROJECT_DIR, overrides: dict[str, Any] | None = None,
               settings: dict[str, Any] | None = None) -> ProgramRun:
        try:
            key = _run_key(stack, project_dir, overrides, settings)
        except Exception:  # noqa: BLE001 - the real runner reports it
            return real(stack, project_dir, overrides, settings)
        cached = PROGRAM_RUNS.get(key)
        if cached is not None and cached.error is None:
            return copy.deepcopy(cached)
        run = real(stack, project_dir, overrides, copy.deepcopy(settings))
        if run.error is None:
            PROGRAM_RUNS[key] = copy.deepcopy(run)
        return run

    monkeypatch.setattr(preview.runner, "run_program", shared)


class _PathsOnce(list):
    """boto3 adds its own data directory to the loader of every session it makes: once is enough."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


_BOTOCORE_LOADERS: dict[str | None, Any] = {}


@pytest.fixture
def shared_botocore_data(monkeypatch):
    """Each boto3 session parses the service models and endpoint rules it needs from botocore's JSON
    files again: most of what a fresh session's clients cost. The files never change, so sessions
    made under this fixture share one loader that keeps what it parsed; the sessions, their
    credentials and their clients stay as fresh as the code under test makes them. (Opt-in, with
    `pytestmark = pytest.mark.usefixtures("shared_botocore_data")`, for the files that use moto.)"""
    import botocore.loaders
    import botocore.session

    real = botocore.session.create_loader

    def create_loader(search_path_string: str | None = None) -> Any:
        if search_path_string not in _BOTOCORE_LOADERS:
            paths = _PathsOnce(real(search_path_string).search_paths)
            _BOTOCORE_LOADERS[search_path_string] = botocore.loaders.Loader(
                extra_search_paths=paths, include_default_search_paths=False)
        return _BOTOCORE_LOADERS[search_path_string]

    monkeypatch.setattr(botocore.session, "create_loader", create_loader)
