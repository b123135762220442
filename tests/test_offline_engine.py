"""The offline engine's own behaviour (preview/runner.py), on a probe program of a few lines: what it leaves out
for speed (the SDK's source positions, garbage collection during a run) stays inside the run, and the stack's
exports come back with their secrecy."""

from __future__ import annotations

import gc
import textwrap
from pathlib import Path

import pytest
from pulumi.runtime import resource as sdk_resource

from preview.mocks import skip_source_positions
from preview.runner import run_program

PROBE = textwrap.dedent('''
    import gc

    import pulumi
    from pulumi.runtime import resource as sdk_resource


    # The SDK's stack capture looks for the third __init__ up the stack: a resource's, its base's, Resource's.
    class Base:
        def __init__(self):
            self.frames = len(sdk_resource._get_stack_trace().frames)


    class Middle(Base):
        def __init__(self):
            super().__init__()


    class Leaf(Middle):
        def __init__(self):
            super().__init__()


    pulumi.export("frames", Leaf().frames)
    pulumi.export("collecting", gc.isenabled())
    pulumi.export("token", pulumi.Output.secret("s3cr3t"))
    pulumi.export("nested", {"list": [1, {"deep": pulumi.Output.from_input("value")}], "flag": True})
''')


class Base:
    def __init__(self) -> None:
        self.frames = len(sdk_resource._get_stack_trace().frames)


class Middle(Base):
    def __init__(self) -> None:
        super().__init__()


class Leaf(Middle):
    def __init__(self) -> None:
        super().__init__()


@pytest.fixture
def probe(tmp_path: Path) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (tmp_path / "__main__.py").write_text(PROBE)
    return tmp_path


def test_source_positions_are_left_out_in_the_run_only(probe):
    run = run_program("probe", probe, settings={})
    assert run.error is None, run.error
    assert run.outputs["frames"] == 0  # in the program's thread: the empty stack trace
    assert Leaf().frames > 0  # any other thread: the SDK's own capture, frames and all


def test_exports_come_back_with_their_secrecy(probe):
    run = run_program("probe", probe, settings={})
    assert run.error is None, run.error
    assert run.outputs["token"] == "s3cr3t" and run.outputs["nested"] == {"list": [1, {"deep": "value"}], "flag": True}
    assert run.secret_outputs == {"token"}


def test_collection_waits_for_the_run_and_comes_back_as_it_was(probe):
    assert gc.isenabled()
    run = run_program("probe", probe, settings={})
    assert run.outputs["collecting"] is False and gc.isenabled()
    gc.disable()
    try:
        run = run_program("probe", probe, settings={})
        assert run.error is None and not gc.isenabled()  # the caller's choice is kept
    finally:
        gc.enable()


def test_collection_comes_back_when_the_program_fails(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: probe\nruntime: python\n")
    (tmp_path / "__main__.py").write_text("raise RuntimeError('the program failed')\n")
    run = run_program("probe", tmp_path, settings={})
    assert isinstance(run.error, RuntimeError) and gc.isenabled()


@pytest.mark.parametrize("missing", ["_get_stack_trace", "source_pb2"])
def test_an_sdk_without_the_private_names_keeps_its_capture(monkeypatch, missing):
    def capture():  # stands for the SDK's function, before any hook
        return "the SDK's capture"

    monkeypatch.setattr(sdk_resource, "_get_stack_trace", capture)
    monkeypatch.delattr(sdk_resource, missing)
    skip_source_positions()  # silently nothing to do
    assert getattr(sdk_resource, "_get_stack_trace", None) is (None if missing == "_get_stack_trace" else capture)
