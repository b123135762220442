"""Live state wins over a stale stack file (operations/live_state.py): `rollout canary`, `abort`, `undo`
and `promote` from a checkout whose stack file lags what is live never roll a track back silently.

A stale file is made as it happens: the stack is updated from "another checkout" (config changed,
`up()`), then the local config goes back to what this checkout's file says, without an update."""

from __future__ import annotations

import copy

import pytest

from operations import canary_run, live_state, promotion, revisions
from operations.canary_run import CanaryOptions, do_abort, run_canary
from operations.stacks import InputError
from tests.clock import VirtualClock
from tests.fake_stack import FakeStack, answers_at_weight

pytestmark = pytest.mark.usefixtures("shared_botocore_data")  # promote's preflight runs under moto

RELEASES = "app-update:releases"


def config(stable="v1", canary="v1", weight=0, rolling="v1"):
    return {"app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
            RELEASES: {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4, "stable": {"tag": stable},
                               "canary": {"tag": canary, "weight": weight}},
                       "app-rolling": {"strategy": "RollingUpdate", "tag": rolling, "replicas": 2}}}


def stale_stack(file, live, name="staging"):
    """A stack whose last update applied `live` while the local stack file says `file`."""
    stack = FakeStack(name, file)
    stack.up(message="from this checkout")
    stack.config = copy.deepcopy(live)
    stack.up(message="from another checkout (its stack-file change is not merged yet)")
    stack.config = copy.deepcopy(file)
    return stack


def applied_tags(stack, since, release="app"):
    return [(cfg[RELEASES][release].get("stable") or {}).get("tag") if release == "app" else cfg[RELEASES][release]["tag"]
            for _, cfg, _ in stack.applied[since:]]


def test_drift_names_each_field_that_differs():
    stack = stale_stack(config(), config(stable="v2", canary="v3", weight=25, rolling="v2"))
    found = live_state.drift(stack, stack.config[RELEASES])
    assert {(d.release, d.field, d.file, d.live) for d in found} == {
        ("app", "stable.tag", "v1", "v2"), ("app", "canary.tag", "v1", "v3"), ("app", "canary.weight", 0, 25),
        ("app-rolling", "tag", "v1", "v2")}
    line = live_state.line(found, "rollout abort")
    assert "\n" not in line and "stable.tag v1 in the file, v2 live" in line and "app-rolling: tag v1" in line


def test_abort_from_a_stale_checkout_keeps_the_live_stable_track(capsys):
    # CI promoted v2 and runs a canary of v3 at 25%; this checkout's file still says v1/v1 at 0%.
    stack = stale_stack(config(), config(stable="v2", canary="v3", weight=25))
    asked = []
    before = len(stack.applied)
    assert do_abort(stack, "app", False, lambda prompt, expected: asked.append(prompt) or True,
                    clock=VirtualClock()) == 0
    out = capsys.readouterr().out
    assert "the stack file is stale (app: stable.tag v1 in the file, v2 live" in out
    assert "(v2)?" in asked[0]  # the question names the track traffic goes back to
    assert applied_tags(stack, before) == ["v2", "v2"]  # never v1
    assert all(cfg[RELEASES]["app"]["canary"]["tag"] == "v3" for _, cfg, _ in stack.applied[before:])
    assert "back at 0%: app runs v2 on its stable track" in out
    assert stack.config[RELEASES]["app"]["stable"]["tag"] == "v2"  # the file now says what is live


def test_canary_from_a_stale_checkout_keeps_the_live_stable_track(monkeypatch, capsys):
    monkeypatch.setattr(canary_run.Prober, "run", answers_at_weight)
    stack = stale_stack(config(), config(stable="v2", canary="v2", rolling="v2"))
    before = len(stack.applied)
    run = run_canary(stack, CanaryOptions(release="app", tag="v3", steps=[50], url="http://127.0.0.1:9/"),
                     clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    tags = applied_tags(stack, before)
    assert tags[0] == "v2" and tags[-1] == "v3" and "v1" not in tags  # the first update applied stable v2
    assert set(applied_tags(stack, before, "app-rolling")) == {"v2"}  # another release is not rolled back either
    assert "the stack file is stale" in capsys.readouterr().out


def test_canary_of_what_the_stable_track_already_runs_is_refused_naming_both():
    stack = stale_stack(config(), config(stable="v2", canary="v2"))
    with pytest.raises(InputError, match="already runs v2 on the stable track of app .its outputs; the stack "
                                         "file says v1.: nothing to canary"):
        run_canary(stack, CanaryOptions(release="app", tag="v2", steps=[50], url="http://127.0.0.1:9/"))
    assert stack.up_messages[-1].startswith("from another checkout")


def test_undo_from_a_stale_checkout_does_not_roll_another_release_back(capsys):
    file = config(weight=0)
    stack = FakeStack("staging", file)
    stack.up(message="revision 1")
    stack.config[RELEASES]["app"]["canary"]["weight"] = 50
    stack.config[RELEASES]["app"]["canary"]["tag"] = "v2"
    stack.up(message="revision 2")
    mine = copy.deepcopy(stack.config)
    stack.config[RELEASES]["app-rolling"]["tag"] = "v3"
    stack.up(message="revision 3, from another checkout")
    stack.config = mine  # this checkout: app-rolling v1
    before = len(stack.applied)
    assert revisions.do_undo(stack, 1, "app", True, None) == 0
    out = capsys.readouterr().out
    assert "the stack file is stale (app-rolling: tag v1 in the file, v3 live)" in out
    assert applied_tags(stack, before, "app-rolling") == ["v3"]
    assert stack.applied[-1][1][RELEASES]["app"]["canary"]["weight"] == 0  # what undo was asked for


def test_promote_into_a_stale_checkout_keeps_the_targets_live_tracks(capsys):
    source = FakeStack("dev", config(rolling="v4"))
    source.up(message="dev")
    target = stale_stack(config(), config(stable="v2", canary="v2"), name="staging")
    before = len(target.applied)
    assert promotion.do_promote(source, target, "app-rolling", True, None, allow_tag=True) == 0
    out = capsys.readouterr().out
    assert "the stack file is stale (app: stable.tag v1 in the file, v2 live" in out
    assert applied_tags(target, before) == ["v2"] and applied_tags(target, before, "app-rolling") == ["v4"]
