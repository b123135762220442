"""The Makefile as a newcomer meets it (issue #26): the first run says what it installs, `rollout` runs without
activating the venv, and `make preview` says rollout's own exit status."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv of its own that sees this one's packages (a .pth file), with `make rollout` run in it: what the
    first `make` leaves in a fresh clone's venv/, without installing 750 MB again."""
    path = tmp_path_factory.mktemp("make") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(path)], check=True)
    site = Path(subprocess.run([str(path / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "this-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    made = make(path, "rollout")
    assert made.returncode == 0, made.stderr
    assert f"Writing {path}/bin/rollout" in made.stdout
    return path


def make(venv, *targets):
    # -o: the venv counts as installed (it is: it sees this one's packages), so make never rebuilds it.
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}",
                           "-o", f"{venv}/.installed", *targets], capture_output=True, text=True, timeout=120)


def outside_the_venv():
    """An environment where nothing was activated: no VIRTUAL_ENV, the venv not on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = "/usr/bin:/bin"
    return env


def test_rollout_runs_from_any_directory_without_activating_the_venv(venv, tmp_path):
    out = tmp_path / "manifests"
    run = subprocess.run([str(venv / "bin" / "rollout"), "preview", "local", "--json", "--out", str(out)],
                         cwd=tmp_path, env=outside_the_venv(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)  # the whole of stdout: nothing else in a process of its own writes there
    assert plan["stack"] == "local" and plan["awaitLoadBalancer"] is False and any(out.glob("*.yaml"))
    helped = subprocess.run([str(venv / "bin" / "rollout"), "--help"], cwd="/", env=outside_the_venv(),
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: rollout ")


def test_make_preview_says_rollouts_own_exit_status(venv):
    run = make(venv, "preview", "STACK=nosuch")
    assert run.returncode == 2  # GNU make's status for any failed recipe
    assert "no stack file Pulumi.nosuch.yaml" in run.stderr
    assert "rollout preview exited 2 (the input's fault)" in run.stderr


def test_the_first_make_run_says_what_it_installs_and_shows_pips_progress(tmp_path):
    fresh = tmp_path / "venv"  # not there: make plans the whole set-up (-n runs nothing)
    plan = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), f"VENV={fresh}", "preview"],
                          capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    install = [line for line in plan.stdout.splitlines() if "pip install" in line and "requirements-dev.txt" in line]
    assert install and "--quiet" not in install[0] and " -q" not in install[0]
    said = "\n".join(line for line in plan.stdout.splitlines() if line.startswith("echo"))
    assert "requirements.txt and requirements-dev.txt" in said and "750 MB" in said and "pip's progress" in said
    assert f"Writing {fresh}/bin/rollout" in said


def test_a_skipped_test_says_why(tmp_path):
    """`make test` on a machine without a prerequisite (chromium, prometheus) lists what was skipped and why."""
    (tmp_path / "test_needs_something.py").write_text(
        "import pytest\n\n\n@pytest.mark.skip(reason='the thing is not installed: run make thing')\n"
        "def test_it():\n    pass\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir",
                          str(tmp_path), "-n", "0", str(tmp_path / "test_needs_something.py")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SKIPPED" in run.stdout and "the thing is not installed: run make thing" in run.stdout
