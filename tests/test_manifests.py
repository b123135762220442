"""Every Kubernetes object the program registers, as YAML, against the strict 1.33 schema."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from preview import manifests
from tests.conftest import STACKS

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.fixture(scope="module")
def validate_cli(stack_runs, tmp_path_factory) -> dict[str, tuple[list[Path], list[str]]]:
    """Every stack file's manifests, written and checked by one `kubernetes-validate --strict` run
    (the command starts slowly): per stack, the files and the lines the command printed of them."""
    root = tmp_path_factory.mktemp("manifests")
    written = {stack: manifests.write(manifests.collect(stack_runs[stack]), root / stack) for stack in STACKS}
    everything = [str(path) for paths in written.values() for path in paths]
    result = subprocess.run([str(KUBERNETES_VALIDATE), "--strict", "-k", "1.33", *everything],
                            capture_output=True, text=True, timeout=120)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 0 or any(line.startswith("ERROR") for line in lines), lines  # fails say why
    return {stack: (paths, [line for line in lines if f"{root / stack}/" in line]) for stack, paths in written.items()}


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_passes_kubernetes_validate_strict(stack_runs, stack, validate_cli):
    objects = manifests.collect(stack_runs[stack])
    assert objects
    assert manifests.validate_all(objects, "1.33") == []
    # The project's own check above and the kubernetes-validate command line must agree.
    paths, said = validate_cli[stack]
    assert len(paths) == len(objects)
    assert not [line for line in said if not line.startswith(("INFO ", "WARN"))], said
    passed = {line.split()[1] for line in said if line.startswith("INFO ") and " passed for resource " in line}
    assert passed == {str(path) for path in paths}, said


def test_yaml_has_integers_and_no_pulumi_internals(stack_runs, tmp_path):
    paths = manifests.write(manifests.collect(stack_runs["local"]), tmp_path)
    docs = [yaml.safe_load(p.read_text()) for p in paths]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    assert type(deployment["spec"]["replicas"]) is int
    assert type(deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]) is int
    for doc in docs:
        assert "status" not in doc
        assert not any(k.startswith("pulumi.com/") for k in (doc["metadata"].get("annotations") or {}))
    assert docs[0]["kind"] == "Namespace"


def test_schema_errors_name_the_object_and_the_field(stack_runs):
    objects = manifests.collect(stack_runs["dev"])
    broken = next(m for m in objects if m.kind == "Deployment")
    broken.obj["spec"]["replicas"] = "five"
    broken.obj["spec"]["strategy"]["surprise"] = True
    problems = manifests.validate_all([broken], "1.33")
    assert any(p.startswith(f"{broken.label}: spec.replicas:") for p in problems), problems
    assert any("surprise" in p for p in problems), problems


def test_stale_files_of_an_earlier_preview_are_removed_and_nobody_elses(stack_runs, tmp_path):
    (tmp_path / "99-deployment-gone.yaml").write_text("kind: Deployment\n")  # not written by a preview: stays
    many = manifests.write(manifests.collect(stack_runs["local"]), tmp_path)
    few = manifests.write(manifests.collect(stack_runs["dev"]), tmp_path)
    assert len(many) > len(few)
    assert (tmp_path / "99-deployment-gone.yaml").read_text() == "kind: Deployment\n"
    assert sorted(p.name for p in tmp_path.glob("[0-9][0-9]-*.yaml")) == sorted(
        [p.name for p in few] + ["99-deployment-gone.yaml"])
    listed = (tmp_path / manifests.RECORD).read_text().splitlines()
    assert [line for line in listed if not line.startswith("#")] == [p.name for p in few]


def deployment(replicas):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "app-update"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "example/web:v1"}]}}},
    }


@pytest.mark.parametrize("replicas", [2**31, 2**63, 9223372036854775808, -(2**31) - 1])
def test_integers_outside_their_openapi_format_are_schema_errors(replicas):
    # spec.replicas is format int32: the API server rejects anything outside it
    assert manifests.schema_errors(deployment(replicas), "1.33") == [
        f"spec.replicas: {replicas} is out of range for int32 (-2147483648 to 2147483647)"]


@pytest.mark.parametrize("replicas", [0, 5, 2**31 - 1])
def test_integers_inside_their_format_pass(replicas):
    assert manifests.schema_errors(deployment(replicas), "1.33") == []


def test_int64_fields_are_checked_too():
    obj = deployment(1)
    obj["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 2**63
    [error] = manifests.schema_errors(obj, "1.33")
    assert error.startswith("spec.template.spec.terminationGracePeriodSeconds: 9223372036854775808 is out of range "
                            "for int64")


@pytest.mark.parametrize("version", ["1.38", "1.24", "1.4", "latest"])
def test_a_version_without_schema_is_a_clean_error(version):
    with pytest.raises(manifests.SchemaUnavailable) as caught:
        manifests.schema_errors(deployment(1), version)
    assert caught.value.version == version
    assert "1.25 to 1.37" in str(caught.value) or "not a Kubernetes version" in str(caught.value)


def test_a_generated_name_is_shown_as_generated():
    from preview.mocks import RegisteredResource
    from preview.runner import ProgramRun

    inputs = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "app-update"}, "data": {"a": "b"}}
    outputs = {**inputs, "metadata": {"namespace": "app-update", "name": "settings-x7k2p9qd"}}
    run = ProgramRun("test", [RegisteredResource("kubernetes:core/v1:ConfigMap", "settings", "urn", None, True,
                                                 "provider", "id", inputs, outputs)], {})
    [manifest] = manifests.collect(run)
    assert manifest.generated_name and manifest.name == "settings-x7k2p9qd"
    text = manifests.to_yaml(manifest)
    assert text.startswith("# metadata.name is generated by Pulumi at deploy time (settings-<8 random chars>)")
    assert yaml.safe_load(text)["metadata"]["name"] == "settings-x7k2p9qd"
