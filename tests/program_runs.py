"""The store of program runs the tests share, without pytest: the stand-in `rollout` processes import it too
(tests/fake_stack.py), and a process that imports pytest spends ~0.25 s of CPU on it before doing anything."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from model.stack_file import StackFileError, project_name, read_limited, stack_settings  # noqa: E402
from preview.runner import ProgramRun, run_program  # noqa: E402


def shared_run(stack: str, settings: dict[str, Any]) -> ProgramRun:
    """The program's run for these settings. The same config registers the same resources (not
    always in the same order) and the tests only read them, so tests that render one config share
    one run (the suite stays fast)."""
    return cached_run(stack, ROOT, None, settings)


def _run_key(stack: str, project_dir: Path, overrides: dict[str, Any] | None,
             settings: dict[str, Any] | None) -> str:
    """What a run depends on that tests vary: the stack name, its config (Pulumi.yaml defaults, the
    stack file, overrides), the project's name, its `__main__.py`, and the PULUMI_CONFIG variables
    the SDK also reads config from. (Not the components/ and model/ code, which is imported once,
    from the checkout, whatever the project directory.)"""
    values = settings if settings is not None else stack_settings(stack, project_dir, overrides)
    program = hashlib.sha256((Path(project_dir) / "__main__.py").read_bytes()).hexdigest()
    environment = {k: v for k, v in os.environ.items() if k.startswith("PULUMI_CONFIG")}
    return json.dumps([stack, values, _project_name(Path(project_dir)), program, environment], sort_keys=True,
                      default=str)


# Pulumi.yaml's bytes → the project's name, for every Pulumi.yaml that named one. Parsing it (with the
# stack file loader's checks) was most of a key's cost, and every stand-in update asks for a key.
_PROJECT_NAMES: dict[bytes, str] = {}


def _project_name(project_dir: Path) -> str:
    """model.stack_file.project_name, parsed once per content of Pulumi.yaml: a Pulumi.yaml that cannot be
    read, or that no earlier call parsed, goes to project_name, which raises what it raises."""
    try:
        text = read_limited(project_dir / "Pulumi.yaml", "Pulumi.yaml")
    except StackFileError:
        return project_name(project_dir)
    name = _PROJECT_NAMES.get(text)
    if name is None:
        name = _PROJECT_NAMES[text] = project_name(project_dir)
    return name


# Every program run of this process, by _run_key: the tests' own runs (shared_run, stack_runs, the
# stand-in stack's updates) and the commands' (tests/conftest.py, _share_cli_program_runs) come from one store.
PROGRAM_RUNS: dict[str, ProgramRun] = {}


def cached_run(stack: str, project_dir: Path, overrides: dict[str, Any] | None,
               settings: dict[str, Any] | None) -> ProgramRun:
    """The program's run for this input, run once per process; failed runs are kept too (tests read
    their errors). The run is shared: only read it."""
    key = _run_key(stack, project_dir, overrides, settings)
    if key not in PROGRAM_RUNS:
        PROGRAM_RUNS[key] = run_program(stack, project_dir, overrides, copy.deepcopy(settings))
    return PROGRAM_RUNS[key]
