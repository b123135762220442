"""Reading the stack's config from the Pulumi runtime and validating it.

Runs first in `__main__.py`: invalid config raises before any resource is registered.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from components.config import ConfigError, StackConfig, parse_config_value, split_namespaces, validate


def raw_config() -> dict[str, Any]:
    """Every config value of this run, keyed `namespace:key`, structured values parsed."""
    flat = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {key: parse_config_value(value) for key, value in flat.items()}


def load_stack_config() -> StackConfig:
    own, other = split_namespaces(raw_config())
    try:
        return validate(own, pulumi.get_stack(), other)
    except ConfigError as error:
        # RunError: the engine prints the message alone, without a traceback.
        raise pulumi.RunError(f"invalid stack configuration ({len(error.problems)} problems):\n{error}") from None
