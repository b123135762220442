"""The stack files' JSON Schema: generated from the config models, committed, named by every stack file."""

import copy
import json

import jsonschema
import pytest
import yaml

from model.config_models import SCHEMA_FILE, schema_text
from tests.conftest import ROOT, STACKS

SCHEMA = json.loads((ROOT / SCHEMA_FILE).read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def test_the_committed_schema_is_what_the_models_generate():
    assert (ROOT / SCHEMA_FILE).read_text() == schema_text(), "run `make schema` and commit the result"


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_file_names_the_schema_and_passes_it(stack):
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    assert text.splitlines()[0] == f"# yaml-language-server: $schema=./{SCHEMA_FILE}"
    assert [e.message for e in VALIDATOR.iter_errors(yaml.safe_load(text))] == []


def rolling(**overrides):
    return {"strategy": "RollingUpdate", "tag": "v1", "replicas": 5, **overrides}


SCHEMA_REFUSES = [
    ("an unknown release key", {"app": rolling(maxsurge=1)}),
    ("a Canary key on a rolling release", {"app": rolling(traffic="nlb")}),
    ("a string for a number", {"app": rolling(replicas="5")}),
    ("an int32 overflow", {"app": rolling(replicas=2**31)}),
    ("a release name that is no DNS label", {"App_1": rolling()}),
    ("an unknown strategy", {"app": rolling(strategy="Shadow")}),
    ("a bad fencepost", {"app": rolling(maxSurge="5")}),
    ("an unknown track key", {"app": {"strategy": "Canary", "replicas": 2, "stable": {"tag": "v1"},
                                      "canary": {"tag": "v2", "wieght": 5}}}),
    ("no release at all", {}),
]


@pytest.mark.parametrize("what,releases", SCHEMA_REFUSES, ids=[w for w, _ in SCHEMA_REFUSES])
def test_the_schema_refuses_what_validation_refuses(what, releases):
    document = {"config": {"app-update:releases": releases}}
    assert list(VALIDATOR.iter_errors(document)), what


def test_unknown_project_keys_are_refused_and_other_namespaces_are_free():
    base = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    unknown = copy.deepcopy(base)
    unknown["config"]["app-update:relases"] = {}
    assert list(VALIDATOR.iter_errors(unknown))
    other = copy.deepcopy(base)
    other["config"]["aws:profile"] = "team"
    other["config"]["kubernetes:context"] = "kind-app-update"
    assert not list(VALIDATOR.iter_errors(other))
