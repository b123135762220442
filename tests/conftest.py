"""Shared helpers: run the real program offline with a given config."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.stack_file import stack_settings  # noqa: E402
from preview.runner import ProgramRun, run_program  # noqa: E402

STACKS = sorted(p.name[len("Pulumi."):-len(".yaml")] for p in ROOT.glob("Pulumi.*.yaml"))


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


def shared_run(stack: str, settings: dict[str, Any]) -> ProgramRun:
    """The program's run for these settings. Runs are deterministic and the tests only read them,
    so tests that render the same config share one run (the suite stays fast)."""
    from tests.fake_stack import RUNS

    key = json.dumps([stack, settings], sort_keys=True, default=str)
    if key not in RUNS:
        RUNS[key] = run_program(stack, settings=copy.deepcopy(settings))
    return RUNS[key]


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
    runs = {}
    for stack in STACKS:
        runs[stack] = run_program(stack, settings=stack_settings(stack, ROOT))
    return runs
