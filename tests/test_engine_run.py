"""The program as `pulumi preview`/`up` run it: the language host's executor in its own process, the
stack's config in PULUMI_CONFIG, the engine's services on loopback (tests/language_host.py)."""

import shutil

import pytest
import yaml

from model.stack_file import stack_settings
from rollout.cli import main
from tests.conftest import ROOT
from tests.language_host import ALREADY_REPORTED, run_like_the_engine

BAD_RELEASES = {
    "app-rolling": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 3, "maxSurge": 0, "maxUnavailable": 0},
    "app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 5},
            "maxsurge": 1},
}


@pytest.fixture
def bad_project(tmp_path):
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    config = {"app-update:cluster": {"mode": "kubeconfig"}, "app-update:releases": BAD_RELEASES}
    (tmp_path / "Pulumi.bad.yaml").write_text(yaml.safe_dump({"config": config}))
    return tmp_path


def test_bad_config_reads_the_same_under_the_engine_as_offline(bad_project, capsys):
    assert main(["--cwd", str(bad_project), "preview", "bad"]) == 2
    offline = capsys.readouterr().err
    assert offline.splitlines()[0] == "2 problems in Pulumi.bad.yaml; nothing was deployed or written"
    assert sorted(line.split(": ")[0] for line in offline.splitlines()[1:]) == [
        "app-update:releases.app-rolling.maxUnavailable", "app-update:releases.app.maxsurge"]

    run = run_like_the_engine(ROOT, "app-update", "bad", stack_settings("bad", bad_project))
    # One error diagnostic, the offline text; then exit 32, so the host adds no "unhandled error".
    assert run.errors() == [offline.rstrip("\n")], run.stderr
    assert (run.exit_status, run.bail, run.host_error) == (ALREADY_REPORTED, True, "")
    assert run.engine.registered == [("pulumi:pulumi:Stack", "app-update-bad")]  # nothing of the program's
    assert "Traceback" not in run.stdout + run.stderr


def test_the_executor_turns_a_run_error_into_the_unhandled_error_the_issue_saw(tmp_path):
    """What the program did before: raise pulumi.RunError. The executor logs it and exits 1, and the
    host reports "program exited with non-zero exit code: 1", which the engine prints as "an
    unhandled error occurred: ..." after the message (what a real `pulumi up` showed)."""
    (tmp_path / "__main__.py").write_text("import pulumi\nraise pulumi.RunError('invalid stack configuration')\n")
    run = run_like_the_engine(tmp_path, "app-update", "bad", {})
    assert run.errors() == ["invalid stack configuration"]
    assert (run.exit_status, run.bail, run.host_error) == (1, False, "program exited with non-zero exit code: 1")


# ---------------------------------------------------------------------------------------------
# The kubeconfig provider: what the engine records does not depend on the operator's machine
# ---------------------------------------------------------------------------------------------

KUBECONFIG_STACK = {
    "app-update:namespace": "app-update",
    "app-update:cluster": {"mode": "kubeconfig", "context": "kind-app-update"},
    "app-update:releases": {"web": {"strategy": "Recreate", "tag": "v1", "replicas": 1}},
}


def provider_inputs(run):
    [(key, inputs)] = [(k, v) for k, v in run.engine.inputs.items() if k[0] == "pulumi:providers:kubernetes"]
    return inputs


def test_the_sdk_alone_would_record_the_operators_kubeconfig_path(tmp_path, monkeypatch):
    """The upstream behaviour the program works around: a Provider constructed without `kubeconfig`
    takes $KUBECONFIG as an input, so the state holds one operator's path."""
    (tmp_path / "__main__.py").write_text("import pulumi_kubernetes as k8s\nk8s.Provider('k8s', context='kind')\n")
    monkeypatch.setenv("KUBECONFIG", "/home/alice/.kube/config")
    run = run_like_the_engine(tmp_path, "app-update", "local", {})
    assert run.exit_status == 0, run.stderr
    assert provider_inputs(run) == {"kubeconfig": "/home/alice/.kube/config", "context": "kind"}


def test_the_kubeconfig_provider_receives_only_the_stacks_context(monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/home/alice/clusters/kind.yaml:/home/alice/.kube/config")
    run = run_like_the_engine(ROOT, "app-update", "local", KUBECONFIG_STACK)
    assert run.exit_status == 0, run.stderr
    # What the engine records (and diffs): the context; the provider finds the file itself.
    assert provider_inputs(run) == {"context": "kind-app-update"}
    assert ("kubernetes:apps/v1:Deployment", "web-deployment") in run.engine.registered
