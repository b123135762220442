"""A wave file (`waves/<name>.yaml`): a release's way through several stacks, stage by stage.

```yaml
from: staging             # the stack the release is promoted from (its proof is checked per stack)
stop: first-failure       # or end-of-stage: let the failing stage's other stacks finish first
stages:
  - name: first-region
    stacks: [prod-use1]
    run: canary           # promote (default) or canary
    canary: {steps: [10, 50, 100], interval: 5m}
    soak: 1h              # wait after the stage, before the next one starts
  - name: the-rest
    stacks: [prod-euw1, prod-apse2]
    parallel: 2           # stacks of the stage updated at once (default 1)
```

Checked like the stack files: pydantic models, one line per problem naming the key path
(`waves/prod.yaml: stages[1].parallel: ...`), and a JSON Schema generated from the same models
(`schema/wave.schema.json`, `make schema`). `operations/waves.py` runs a wave. No Pulumi import.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, ValidationError, field_validator

from model import config_models as cm
from model.config import seconds
from model.stack_file import StackFileError, load_yaml_file

RUNS = ("promote", "canary")
# What a stage cannot run yet, and why (said as the key's one line, exit 2, before any stack is opened).
NOT_YET = {"bluegreen": "a wave does not run blue-green releases yet (a stage promotes or canaries the image it "
                        "pinned): use run: promote or canary, or `python -m rollout bluegreen STACK --release NAME "
                        "--tag TAG` per stack"}
STOP_RULES = ("first-failure", "end-of-stage")
WAVE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
SCHEMA_FILE = "schema/wave.schema.json"
WAVES_DIR = "waves"

Duration = cm.Duration
StackName = cm.Text(cm.STACK_NAME, "must be a stack name")


def _non_empty(what: str) -> Any:
    def check(value: Any) -> Any:
        if not isinstance(value, list) or not value:
            raise cm.rule(f"must be a non-empty list of {what} (got {cm.show(value)})")
        return value

    return BeforeValidator(check)


class CanaryRun(cm.Section):
    """The options of `rollout canary` a canary stage runs with (its defaults where absent)."""

    steps: Annotated[list[cm.Integer(1, 100)], _non_empty("weights")] | None = None
    interval: Duration | None = None
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(None, alias="maxErrorRate")
    max_p99_ms: cm.Integer(1) | None = Field(None, alias="maxP99Ms")
    metrics: cm.Text() | None = None


class Stage(cm.Section):
    name: cm.Text(WAVE_NAME, "must be a lowercase name (letters, digits, '-')", 63)
    stacks: Annotated[list[StackName], _non_empty("stack names")]
    run: cm.Choice(RUNS) | None = None
    canary: CanaryRun | None = None
    parallel: cm.Integer(1, 50) | None = None
    soak: Duration | None = None

    @field_validator("run", mode="before")
    @classmethod
    def _run_available(cls, run: Any) -> Any:
        if isinstance(run, str) and run in NOT_YET:
            raise cm.rule(f"{run}: {NOT_YET[run]}")
        return run

    @field_validator("canary")
    @classmethod
    def _canary_used(cls, canary: CanaryRun | None, info: Any) -> CanaryRun | None:
        if canary is not None and info.data.get("run") != "canary":
            raise cm.rule("is for stages with run: canary")
        return canary


class WaveFile(cm.Section):
    from_: StackName = Field(alias="from")
    stop: cm.Choice(STOP_RULES) | None = None
    stages: Annotated[list[Stage], _non_empty("stages")]

    @field_validator("stages")
    @classmethod
    def _each_stack_once(cls, stages: list[Stage], info: Any) -> list[Stage]:
        seen: dict[str, str] = {}
        for stage in stages:
            for stack in stage.stacks:
                if stack in seen:
                    raise cm.rule(f"stack {stack} is in stage {seen[stack]} and in stage {stage.name}: a wave updates "
                                  "each stack once")
                seen[stack] = stage.name
            if info.data.get("from_") in stage.stacks:
                raise cm.rule(f"stage {stage.name} names {info.data['from_']}, the stack the wave promotes from")
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise cm.rule("stage names must be unique")
        return stages


class WaveError(Exception):
    """A wave file that cannot be used: one line per problem (exit 2)."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def check(data: Any, label: str) -> WaveFile:
    if not isinstance(data, dict):
        raise WaveError([f"{label}: must be a mapping with `from` and `stages`"])
    try:
        return WaveFile.model_validate(data)
    except ValidationError as error:
        problems = []
        for e in error.errors(include_url=False):
            loc = [p for p in e["loc"] if p != "[key]"]
            context = e.get("ctx") or {}
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top)"
            if e["type"] == "app_update":
                problems.append(f"{label}: {path}: {context['rule']}")
            elif e["type"] == "missing":
                problems.append(f"{label}: {path}: is required")
            elif e["type"] == "extra_forbidden":
                problems.append(f"{label}: {path}: unknown key")
            else:
                problems.append(f"{label}: {path}: {e['msg']}")
        raise WaveError(problems) from None


def load(name: str, project_dir: Path) -> WaveFile:
    """`waves/<name>.yaml` of the project, checked."""
    if not WAVE_NAME.fullmatch(name):
        raise WaveError([f"wave name {name!r}: must be a lowercase name (letters, digits, '-')"])
    path = project_dir / WAVES_DIR / f"{name}.yaml"
    label = f"{WAVES_DIR}/{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (project_dir / WAVES_DIR).glob("*.yaml"))
        raise WaveError([f"{label}: no such wave file (waves: {', '.join(known) or 'none'})"])
    try:
        data = load_yaml_file(path, label)
    except StackFileError as error:
        raise WaveError([str(error)]) from None
    return check(data, label)


def soak_seconds(stage: Stage) -> int:
    return seconds(stage.soak) if stage.soak else 0


def wave_schema() -> dict[str, Any]:
    schema = WaveFile.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://app-update.example/wave-file.schema.json",
            "title": "Wave file of the app-update project (waves/<name>.yaml)",
            "description": "Generated from model/wave_file.py by `make schema`; do not edit by hand.", **schema}


def schema_text() -> str:
    return json.dumps(wave_schema(), indent=2) + "\n"
