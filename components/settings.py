"""Reading the stack's config from the Pulumi runtime and validating it.

Runs first in `__main__.py`: invalid config raises before any resource is registered.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.config import ConfigError, StackConfig, split_namespaces, validate


def _parse(value: Any) -> Any:
    # The CLI hands structured values (`releases`, `cluster`) over as JSON text.
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def raw_config() -> dict[str, Any]:
    """Every config value of this run, keyed `namespace:key`, structured values parsed."""
    flat = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {key: _parse(value) for key, value in flat.items()}


def load_stack_config() -> StackConfig:
    own, other = split_namespaces(raw_config())
    try:
        return validate(own, pulumi.get_stack(), other)
    except ConfigError as error:
        # RunError: the engine prints the message alone, without a traceback.
        raise pulumi.RunError(f"invalid stack configuration ({len(error.problems)} problems):\n{error}") from None
