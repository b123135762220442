"""`python -m rollout preview` and `forecast` as an operator runs them."""

import json
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from preview import manifests
from rollout.cli import main
from tests.conftest import ROOT


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path):
    """A scratch project directory with this project's Pulumi.yaml, for stack files of a test's own."""
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    shutil.copy(ROOT / "__main__.py", tmp_path / "__main__.py")
    return tmp_path


def write_stack(project, name, releases, cluster=None):
    config = {"app-update:cluster": cluster or {"mode": "kubeconfig"}, "app-update:releases": releases}
    (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}))


def test_preview_dev_prints_the_plan_and_writes_manifests(capsys, tmp_path):
    code, out, err = run_cli(capsys, "preview", "dev", "--out", str(tmp_path))
    assert code == 0, err
    assert "app-rolling  RollingUpdate" in out
    assert "maxSurge 1 → 1 pod(s), maxUnavailable 1 → 1 pod(s)" in out
    assert "fewest ready 4, most pods 6" in out
    assert "an update drops to 0 ready pods" in out  # the Recreate release
    assert "0% of traffic to canary (requested 0%), 0 canary + 4 stable pods" in out  # at rest
    assert "address assigned at deploy" in out
    names = sorted(p.name for p in tmp_path.glob("*.yaml"))
    assert names[0] == "01-namespace-app-update.yaml"
    assert len(names) >= 8
    assert f"Manifests: {len(names)} objects in " in out


def test_preview_json_is_one_document_with_the_forecast(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "preview", "dev", "--json", "--out", str(tmp_path))
    assert code == 0
    plan = json.loads(out)
    rolling = next(r for r in plan["releases"] if r["name"] == "app-rolling")
    assert (rolling["maxSurgePods"], rolling["maxUnavailablePods"]) == (1, 1)
    assert (rolling["fewestReadyDuringUpdate"], rolling["mostPodsDuringUpdate"]) == (4, 6)
    assert set(rolling["forecast"]) == {"strategy", "replicas", "maxSurge", "maxUnavailable", "minAvailable",
                                        "maxTotal", "steps", "minAvailableSeen", "maxPodsSeen", "syncs"}
    canary = next(r for r in plan["releases"] if r["name"] == "app")
    assert canary["effectiveWeight"] == 0.0
    assert canary["service"]["name"] == "app-service"
    dev_version = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"]["app-update:cluster"].get(
        "kubernetesVersion")
    assert plan["manifests"]["kubernetesVersion"] == plan["cluster"]["kubernetesVersion"] == dev_version
    assert {"type": "kubernetes:apps/v1:Deployment", "name": "app-stable", "parent": "app"} in plan["resources"]


def test_preview_shows_canary_approximation_and_exact_total(capsys, project):
    write_stack(project, "five", {"app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"},
                                          "canary": {"tag": "v2", "weight": 5}}})
    code, out, _ = run_cli(capsys, "--cwd", str(project), "preview", "five", "--out", str(project))
    assert code == 0
    assert (project / "Pulumi.five.yaml").exists() and (project / "Pulumi.yaml").exists()
    assert "needs a multiple of 20 pods" in out
    assert "nearest shares at 4 pods: 0% and 25%" in out


def test_preview_warns_about_single_pods_and_full_unavailability(capsys, project):
    write_stack(project, "thin", {
        "solo": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 1},
        "all": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 4, "maxSurge": 0, "maxUnavailable": "100%"},
        "surged": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 4, "maxSurge": 1, "maxUnavailable": "100%"},
    })
    code, out, _ = run_cli(capsys, "--cwd", str(project), "preview", "thin", "--json", "--out", str(project / "out"))
    assert code == 0
    warnings = json.loads(out)["warnings"]
    assert any(w.startswith("release solo: runs a single pod") for w in warnings)
    assert any(w.startswith("release all: an update drops to 0 ready pods (maxUnavailable 100% covers all 4 pods)")
               for w in warnings)
    # a surge pod does not help: the sync that creates it scales the old ReplicaSet down to 0 before it is Ready
    # (the real controller does: tests/cluster "RollingUpdate 4 surge 1 unavailable 100%")
    assert any(w.startswith("release surged: an update drops to 0 ready pods (maxUnavailable 100% covers all 4")
               for w in warnings)


def test_preview_compares_weighted_cost_with_the_replicas_mode(capsys, project):
    staging = yaml.safe_load((ROOT / "Pulumi.staging.yaml").read_text())
    staging["config"]["app-update:releases"]["app"]["canary"]["weight"] = 5  # committed at rest (0)
    (project / "Pulumi.staging.yaml").write_text(yaml.safe_dump(staging))
    code, out, _ = run_cli(capsys, "--cwd", str(project), "preview", "staging", "--json", "--out", str(project / "m"))
    canary = next(r for r in json.loads(out)["releases"] if r["name"] == "app")
    assert canary["traffic"] == {"mode": "nlb", "requestedWeight": 5, "canaryShare": 5.0, "stablePods": 4,
                                 "canaryPods": 1, "replicasModeExactTotal": 20, "replicasModeExactCanaryPods": 1}


@pytest.mark.parametrize("releases,key", [
    ({"app": {"strategy": "RollingUpdate", "tag": "v1", "maxSurge": 0, "maxUnavailable": 0}},
     "app-update:releases.app.maxUnavailable"),
    ({"app": {"strategy": "Recreate", "tag": "v1", "maxSurge": 1}}, "app-update:releases.app.maxSurge"),
    ({"App": {"strategy": "Recreate", "tag": "v1"}}, "app-update:releases.App"),
    ({"app": {"strategy": "Recreate", "tag": "v1", "image": "not a/ref"}}, "app-update:releases.app.image"),
    ({"app": {"strategy": "Canary", "replicas": 4, "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 120}}},
     "app-update:releases.app.canary.weight"),
    ({"app": {"strategy": "Recreate", "tag": "v1", "replicas": -1}}, "app-update:releases.app.replicas"),
    ({"app": {"strategy": "Recreate", "tag": "v1", "port": 99999}}, "app-update:releases.app.port"),
    ({"app": {"strategy": "Recreate", "tag": "v1", "replicas": "five"}}, "app-update:releases.app.replicas"),
    ({"app": {"strategy": "Recreate", "tag": "v1", "replcas": 2}}, "app-update:releases.app.replcas"),
])
def test_bad_config_exits_2_naming_the_key_and_writes_nothing(capsys, project, releases, key):
    write_stack(project, "bad", releases)
    code, out, err = run_cli(capsys, "--cwd", str(project), "preview", "bad")
    assert code == 2
    assert out == ""
    assert err.splitlines()[0] == "1 problem in Pulumi.bad.yaml; nothing was deployed or written"
    assert err.splitlines()[1].startswith(key + ": ")
    assert "Traceback" not in err
    assert not (project / "build").exists()


def test_missing_stack_exits_2_and_lists_stacks(capsys):
    code, _, err = run_cli(capsys, "preview", "nosuchstack")
    assert code == 2
    assert "Pulumi.nosuchstack.yaml" in err and "dev" in err


def test_schema_failure_exits_1_naming_the_object_and_writes_nothing(capsys, monkeypatch, tmp_path):
    real_collect = manifests.collect

    def broken_collect(run):
        objects = real_collect(run)
        next(m for m in objects if m.kind == "Service").obj["spec"]["type"] = 42
        return objects

    monkeypatch.setattr(manifests, "collect", broken_collect)
    code, _, err = run_cli(capsys, "preview", "dev", "--out", str(tmp_path / "out"))
    assert code == 1
    assert "Service/app-update/" in err and "spec.type" in err
    assert not (tmp_path / "out").exists()


def test_forecast_json_follows_the_documented_shape(capsys):
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "5", "--max-surge", "1", "--max-unavailable", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["minAvailable"], data["maxTotal"], data["minAvailableSeen"], data["maxPodsSeen"]) == (4, 6, 4, 6)
    assert data["steps"][-1] == {"old": 0, "new": 5, "newReady": 5, "available": 5}


def test_forecast_defaults_are_kubernetes_defaults(capsys):
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "10", "--json")
    data = json.loads(out)
    assert (data["strategy"], data["maxSurge"], data["maxUnavailable"]) == ("RollingUpdate", 3, 2)


def test_a_long_forecast_shows_both_ends_of_its_table_and_all_steps_on_request(capsys):
    """100 replicas at 25%/25% move one pod at a time (about three steps a pod): the terminal gets the first and
    last rows, which are the JSON's first and last steps; --all-steps lists every one."""
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "100", "--json")
    steps = json.loads(out)["steps"]
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "100")
    assert code == 0
    lines = out.splitlines()
    rows = [line.split() for line in lines if re.match(r"^ *\d+ ", line)]
    assert len(rows) == 40 < len(steps)
    as_numbers = [[int(n) for n in row[1:4]] for row in rows]
    want = [[s["old"], s["new"], s["newReady"]] for s in steps]
    assert as_numbers[:20] == want[:20] and as_numbers[20:] == want[-20:]
    assert int(rows[-1][0]) == len(steps) - 1
    marker = [line for line in lines if "not listed" in line]
    assert len(marker) == 1 and f"{len(steps) - 40:,} steps not listed" in marker[0]
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "100", "--all-steps")
    assert len([line for line in out.splitlines() if re.match(r"^ *\d+ ", line)]) == len(steps)
    assert "not listed" not in out


def test_forecast_text_table(capsys):
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "5", "--strategy", "Recreate")
    assert code == 0
    assert "every old pod stops before new ones start" in out
    assert "fewest available 0, most pods 5" in out


@pytest.mark.parametrize("argv", [
    ["forecast", "--replicas", "5", "--max-surge", "0", "--max-unavailable", "0"],
    ["forecast", "--replicas", "5", "--strategy", "Recreate", "--max-surge", "1"],
])
def test_forecast_rejects_what_the_api_rejects(capsys, argv):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and "rejects" in err


@pytest.mark.parametrize("argv", [["forecast", "--replicas", "-1"], ["forecast", "--replicas", "5", "--max-surge", "5x"]])
def test_forecast_bad_arguments_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_module_entry_point_runs_a_verb():
    # `python -m rollout` in a process of its own: its stdout is the verb's JSON and nothing else. A whole
    # `preview --json` in a fresh process is tests/test_makefile.py's (venv/bin/rollout), and so is the exit status
    # of `python -m rollout` (make preview).
    result = subprocess.run([sys.executable, "-m", "rollout", "forecast", "--replicas", "4", "--max-surge", "1",
                             "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    forecast = json.loads(result.stdout)
    assert (forecast["replicas"], forecast["maxTotal"]) == (4, 5)
    assert (forecast["steps"][-1]["old"], forecast["steps"][-1]["newReady"]) == (0, 4)


def test_every_verb_has_help_with_an_example(capsys):
    for verb in ("preview", "forecast"):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        assert "example:" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# Issue #14: forecast arguments get the config's rules; any replica count finishes at once
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    (["--max-unavailable", "1000%"], "must not be more than 100%"),
    (["--max-unavailable", "101%"], "must not be more than 100%"),
    (["--replicas", "2147483648"], "must be at most 2147483647"),
    (["--replicas", "9" * 5000], "must be at most 2147483647"),
    (["--max-surge", "2147483648"], "must be at most 2147483647"),
    (["--max-unavailable", "99999999999"], "must be at most 2147483647"),
    (["--max-surge", "25%\n"], "must be a non-negative integer or a percentage"),
    (["--replicas", "\u0661\u0662"], "must be a non-negative integer"),  # Arabic-Indic digits: not for the API
    (["--max-surge", "9" * 5000 + "%"], "must be a non-negative integer or a percentage"),
])
def test_forecast_arguments_outside_the_api_rules_exit_2(capsys, argv, message):
    full = ["forecast", "--replicas", "5", *argv]
    with pytest.raises(SystemExit) as caught:
        main(full)
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert message in err and "Traceback" not in err


def test_forecast_accepts_the_edges_of_the_rules(capsys):
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "2147483647", "--max-surge", "2147483647",
                           "--max-unavailable", "100%", "--json")
    assert code == 0
    assert json.loads(out)["maxUnavailable"] == 2147483647


def test_forecast_of_50000_pods_one_at_a_time_finishes_at_once(capsys):
    code, out, err = run_cli(capsys, "forecast", "--replicas", "50000", "--max-surge", "1", "--max-unavailable", "0")
    assert code == 0, err
    # 150,001 steps, 40 shown: those the forecast counted without listing, and the listed ones between both ends.
    assert "149,961 steps not listed: the same cycle repeats" in out
    assert "fewest available 50000, most pods 50001, 100000 controller syncs" in out
    last = out.splitlines()[-2].split()
    assert last == ["150000", "0", "50000", "50000", "50000", "50000"]


def test_forecast_json_of_int32_max_pods(capsys):
    # (how little work it takes is bounded in test_forecast.py, by the syncs it simulates, not by a clock)
    code, out, _ = run_cli(capsys, "forecast", "--replicas", "2147483647", "--max-surge", "1",
                           "--max-unavailable", "0", "--json")
    data = json.loads(out)
    assert (data["syncs"], data["totalSteps"], len(data["steps"])) == (2 * 2147483647, 3 * 2147483647 + 1, 2000)


def test_preview_of_50000_and_int32_max_replicas_gives_exact_numbers(capsys, project):
    write_stack(project, "huge", {
        "one-by-one": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 50000, "maxSurge": 1, "maxUnavailable": 0},
        "biggest": {"strategy": "RollingUpdate", "tag": "v1", "replicas": 2147483647},
    })
    code, out, err = run_cli(capsys, "--cwd", str(project), "preview", "huge", "--json", "--out", str(project / "out"))
    assert code == 0, err
    releases = {r["name"]: r for r in json.loads(out)["releases"]}
    slow = releases["one-by-one"]["forecast"]
    assert (slow["syncs"], slow["minAvailableSeen"], slow["maxPodsSeen"], slow["totalSteps"]) == (
        100000, 50000, 50001, 150001)
    assert releases["biggest"]["forecast"]["maxPodsSeen"] == 2684354559


@pytest.mark.parametrize("top,releases,policy", [
    ({"app-update:protected": True}, {"app": {"strategy": "Recreate", "tag": "v1", "replicas": 2}},
     "no-recreate-on-protected"),
    ({}, {"app": {"strategy": "RollingUpdate", "tag": "latest", "replicas": 2}}, "no-latest-image-tag"),
], ids=["protected-recreate", "latest-tag"])
def test_a_mandatory_policy_violation_exits_3_and_writes_nothing(capsys, project, top, releases, policy):
    config = {"app-update:cluster": {"mode": "kubeconfig"}, "app-update:releases": releases, **top}
    (project / "Pulumi.policy.yaml").write_text(yaml.safe_dump({"config": config}))
    out_dir = project / "out"
    code, out, err = run_cli(capsys, "--cwd", str(project), "preview", "policy", "--out", str(out_dir))
    assert code == 3, err
    assert f"mandatory  {policy}: app" in err and "a mandatory policy said no: nothing was written" in err
    assert out == "" and not out_dir.exists()


def test_advisory_violations_are_shown_in_the_plan(capsys, tmp_path):
    code, out, err = run_cli(capsys, "preview", "local", "--json", "--out", str(tmp_path))
    assert code == 0, err
    assert {v["level"] for v in json.loads(out)["policy"]} == {"advisory"}
    code, out, err = run_cli(capsys, "preview", "local", "--out", str(tmp_path))
    assert code == 0 and err == ""
    assert "Policies (advisory: `pulumi up` goes ahead)" in out and "  - image-pinned-by-digest: " in out
