"""The layout holds: the pure model imports no Pulumi, nobody imports another module's private
names, and the private Pulumi APIs the mocks need stay in their one documented place each."""

import ast

import pytest

from tests.conftest import ROOT

PACKAGES = ("model", "components", "preview", "operations", "rollout", "policy", "report")
SOURCES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py")) + [ROOT / "__main__.py"]
PRIVATE_PULUMI = {"_sync_await", "run_pulumi_func", "_special_sig_key", "_special_secret_sig", "CONFIG",
                  "_get_stack_trace"}
# Where the SDK lacks a public way (each with the upstream issue in a comment there).
PRIVATE_PULUMI_ALLOWED = {"preview/mocks.py", "components/stack_config.py"}


def imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_another_modules_private_names(path):
    private = [(module, name) for module, names in imports(path) if module.split(".")[0] in PACKAGES
               for name in names if name.startswith("_") and not name.startswith("__")]
    assert private == []


@pytest.mark.parametrize("path", sorted((ROOT / "model").rglob("*.py")), ids=lambda p: p.name)
def test_the_model_is_pure(path):
    assert [m for m, _ in imports(path) if m.split(".")[0] in ("pulumi", "pulumi_kubernetes", "pulumi_aws",
                                                              "components", "preview", "operations", "rollout")] == []


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_private_pulumi_apis_stay_in_their_documented_place(path):
    text = path.read_text()
    used = {name for name in PRIVATE_PULUMI if name in text and ("pulumi" in text)}
    used = {n for n in used if n != "CONFIG" or "runtime_config.CONFIG" in text}
    if str(path.relative_to(ROOT)) not in PRIVATE_PULUMI_ALLOWED:
        assert used == set()



def test_nothing_imports_the_command_line():
    importers = [p for p in SOURCES if p.parent.name != "rollout"
                 for m, _ in imports(p) if m == "rollout" or m.startswith("rollout.")]
    assert importers == []

