"""Reading the stack's config from the Pulumi runtime and validating it.

Runs first in `__main__.py`: invalid config ends the program before any resource is registered.

How a failure reaches the operator under `pulumi preview`/`up` (the Python language host,
sdk/python/cmd/pulumi-language-python: main.go and its executor, pulumi-language-python-exec):
the executor runs `__main__.py` with the config in PULUMI_CONFIG; a `pulumi.RunError` is logged
as an error and the executor exits 1, which the language host turns into a second error, "an
unhandled error occurred: program exited with non-zero exit code: 1". Exit status 32 is the
language hosts' "the program already reported its error" (`...ProcessExitedAfterShowingUser
ActionableMessage`): the host then reports nothing more. So the program logs the same report
the offline preview prints, as one error diagnostic, and exits 32. The `pulumi` CLI itself
exits 255 whatever the program's status (cmdutil.RunFunc's os.Exit(-1)): the program's status
never reaches the shell, so it cannot be the project's exit status 2 for bad input.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime import config as runtime_config

from model.config import ConfigError, StackConfig, load

# The language hosts' exit status for "the error is already reported": no "unhandled error" after it.
ALREADY_REPORTED = 32


class StackConfigRejected(SystemExit):
    """The program's end on invalid config: the report is logged, the process exits 32.

    A SystemExit, as `sys.exit(32)` is: the Pulumi runtime re-raises it after the pending RPCs
    (the log line among them) are done, and the executor lets it end the process. Its `problems`
    and `report` are for whoever runs the program in-process (the offline preview, tests)."""

    def __init__(self, error: ConfigError, stack: str):
        super().__init__(ALREADY_REPORTED)
        self.problems = error.problems
        self.report = error.report(stack)

    def __str__(self) -> str:
        return self.report


def run_config() -> dict[str, str]:
    """Every config value of this run, keyed `namespace:key`, as the CLI passed it.

    The SDK has no public way to list every key (pulumi/pulumi#6789): `pulumi.Config` reads one
    key at a time, and listing them is what lets validation say "unknown key; did you mean".
    This is the one place the program reads the runtime's config store directly.
    """
    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}


def load_stack_config() -> StackConfig:
    stack = pulumi.get_stack()
    try:
        return load(run_config(), stack)
    except ConfigError as error:
        rejected = StackConfigRejected(error, stack)
        pulumi.log.error(rejected.report)  # synchronous (no resource): sent before the exit
        raise rejected from None
