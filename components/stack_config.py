"""Reading the stack's config from the Pulumi runtime and validating it.

Runs first in `__main__.py`: invalid config raises before any resource is registered.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from model.config import ConfigError, StackConfig, load


def run_config() -> dict[str, str]:
    """Every config value of this run, keyed `namespace:key`, as the CLI passed it.

    The SDK has no public way to list every key (pulumi/pulumi#6789): `pulumi.Config` reads one
    key at a time, and listing them is what lets validation say "unknown key; did you mean".
    This is the one place the program reads the runtime's config store directly.
    """
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def load_stack_config() -> StackConfig:
    try:
        return load(run_config(), pulumi.get_stack())
    except ConfigError as error:
        # RunError: the engine prints the message alone, without a traceback.
        raise pulumi.RunError(f"invalid stack configuration ({len(error.problems)} problems):\n{error}") from None
