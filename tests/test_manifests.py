"""Every Kubernetes object the program registers, as YAML, against the strict 1.33 schema."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rollout import manifests
from tests.conftest import STACKS

KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_passes_kubernetes_validate_strict(stack_runs, stack, tmp_path):
    objects = manifests.collect(stack_runs[stack])
    assert objects
    assert manifests.validate_all(objects, "1.33") == []
    paths = manifests.write(objects, tmp_path)
    # The project's own check above and the kubernetes-validate command line must agree.
    result = subprocess.run([str(KUBERNETES_VALIDATE), "--strict", "-k", "1.33", *map(str, paths)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(paths)


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


def test_stale_files_are_removed_on_rewrite(stack_runs, tmp_path):
    (tmp_path / "99-deployment-gone.yaml").write_text("kind: Deployment\n")
    manifests.write(manifests.collect(stack_runs["dev"]), tmp_path)
    assert not (tmp_path / "99-deployment-gone.yaml").exists()
