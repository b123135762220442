"""The app-update CrossGuard policy pack: `pulumi preview --policy-pack policy`.

The rules live in rules.py as plain functions (the offline preview runs the same ones); this
file only wraps each in a ResourceValidationPolicy, or a StackValidationPolicy for the rules
that look at several resources at once, with the level and description from the rule table.

Constructing PolicyPack starts the analyzer's gRPC server and blocks: that is what the Pulumi
CLI runs this file for, and why nothing imports it.
"""

import sys
from pathlib import Path

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

# The CLI runs the pack from its own directory (rules.py is a sibling); tests and tools run it
# from the project root, where it is the package `policy`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import rules  # noqa: E402

LEVELS = {rules.MANDATORY: EnforcementLevel.MANDATORY, rules.ADVISORY: EnforcementLevel.ADVISORY,
          rules.DISABLED: EnforcementLevel.DISABLED}


def policy_for(rule: rules.Rule) -> ResourceValidationPolicy | StackValidationPolicy:
    schema = PolicyConfigSchema(properties=dict(rules.CONFIG_SCHEMA)) if rule.protected_only else None
    if rule.scope == "stack":
        return StackValidationPolicy(name=rule.name, description=rule.description,
                                     validate=rules.stack_validator(rule),
                                     enforcement_level=LEVELS[rule.level], config_schema=schema)
    return ResourceValidationPolicy(name=rule.name, description=rule.description,
                                    validate=rules.resource_validator(rule),
                                    enforcement_level=LEVELS[rule.level], config_schema=schema)


PolicyPack(
    name="app-update",
    description="app-update release rules: pinned images, requests, probes, non-root pods, no stray load "
                "balancers; on protected stacks no Recreate, 2+ stable replicas, a PodDisruptionBudget each.",
    policies=[policy_for(rule) for rule in rules.RULES],
)
