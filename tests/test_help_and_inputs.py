"""The command line as a newcomer meets it (issue #26): bad input is named before the environment is touched,
every option has help, help fits a terminal and says the exit statuses, and what it prints is consistent."""

import argparse
import re

import pytest

from operations import stacks
from rollout import cli
from rollout.cli import HELP_WIDTH, build_parser, main, shell_lines


@pytest.fixture
def no_environment(monkeypatch, tmp_path):
    """No Pulumi CLI on PATH, and a workspace that must not be opened: input comes first."""
    monkeypatch.setenv("PATH", str(tmp_path))

    def opened(*args, **kwargs):
        raise AssertionError("the workspace was opened before the input was checked")

    monkeypatch.setattr(stacks, "open_stack", opened)


@pytest.mark.parametrize("argv, names", [
    (["promote", "dev", "dev"], ["FROM and TO are the same stack (dev)"]),
    (["canary", "staging", "--release", "nosuch", "--tag", "v2"], ["--release nosuch", "its releases: app-rolling, app"]),
    (["canary", "staging", "--release", "app-rolling", "--tag", "v2"], ["--release app-rolling", "needs a Canary"]),
    (["abort", "staging", "--release", "nosuch", "--yes"], ["--release nosuch"]),
    (["abort", "dev", "--release", "app-bg", "--yes"],
     ["it is a BlueGreen release", "goes back with: python -m rollout undo dev --release app-bg"]),
    (["undo", "dev", "--release", "nosuch", "--yes"], ["--release nosuch"]),
    (["promote", "dev", "staging", "--release", "nosuch"], ["--release nosuch", "stack staging"]),
    (["canary", "staging", "--release", "app", "--tag", "v 2"], ["--tag 'v 2'", "releases.app.canary.tag"]),
    (["history", "nosuch"], ["Pulumi.nosuch.yaml"]),
    (["status", "nosuch"], ["Pulumi.nosuch.yaml"]),
    (["undo", "nosuch"], ["Pulumi.nosuch.yaml"]),
    (["promote", "dev", "nosuch"], ["Pulumi.nosuch.yaml"]),
    (["canary", "nosuch", "--release", "app", "--tag", "v2"], ["Pulumi.nosuch.yaml"]),
    (["abort", "nosuch", "--release", "app"], ["Pulumi.nosuch.yaml"]),
    (["watchdog", "staging", "nosuch"], ["Pulumi.nosuch.yaml"]),
    (["verify", "staging", "--release", "nosuch", "--reason", "checked"], ["--release nosuch"]),
    (["pipeline-plan", "staging", "--from", "dev", "--release", "nosuch"], ["--release nosuch"]),
])
def test_bad_input_is_named_before_the_environment_is_needed(argv, names, no_environment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for name in names:
        assert name in err
    assert "Pulumi CLI" not in err and "Traceback" not in err


def test_a_broken_stack_file_is_the_inputs_fault_before_the_environment(no_environment, capsys, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((cli.PROJECT_DIR / "Pulumi.yaml").read_text())
    (project / "Pulumi.dev.yaml").write_text("config:\n  app-update:releases:\n    app:\n      strategy: Rolling\n")
    assert main(["-C", str(project), "status", "dev"]) == 2
    assert "app-update:releases.app.strategy" in capsys.readouterr().err


def test_good_input_reaches_the_environment(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["history", "dev"]) == 1
    assert "Pulumi CLI is not installed" in capsys.readouterr().err


def _parsers():
    parser = build_parser()
    yield "rollout", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


@pytest.mark.parametrize("verb, parser", list(_parsers()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_option_of_every_verb_has_help(verb, parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help and action.help.strip(), f"{verb}: {action.option_strings or action.dest} has no help"


@pytest.mark.parametrize("columns, width", [("400", HELP_WIDTH), ("80", 80)])
@pytest.mark.parametrize("verb", [v for v, _ in _parsers()])
def test_help_is_wrapped_says_the_exit_statuses_and_has_no_doubled_percent(verb, columns, width, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("COLUMNS", columns)  # a wide terminal: paragraphs still wrap at HELP_WIDTH
    with pytest.raises(SystemExit) as exit_:
        main(["--help"] if verb == "rollout" else [verb, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    too_long = [line for line in out.splitlines() if len(line) > width]
    assert not too_long
    assert "%%" not in out
    assert "exit status: 0 done; 1 failed" in " ".join(out.split()) and "3 a policy said no" in " ".join(out.split())


def test_forecast_help_shows_single_percent_signs(capsys):
    with pytest.raises(SystemExit):
        main(["forecast", "--help"])
    out = capsys.readouterr().out
    assert "maxSurge 25%, maxUnavailable 25%" in " ".join(out.split()) and "%%" not in out


@pytest.mark.parametrize("replicas, surge, unavailable", [
    ("5", "150%", "25%"), ("5", "1", "1"), ("10", "0", "3"), ("3", "300%", "0"), ("7", "25%", "100%"),
])
def test_forecast_never_claims_a_pod_count_the_update_does_not_reach(replicas, surge, unavailable, capsys):
    assert main(["forecast", "--replicas", replicas, "--max-surge", surge, "--max-unavailable", unavailable]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.fullmatch(r"\s*\d+(\s+\d+){5}", line)]
    most = max(int(row[5]) for row in rows)
    fewest = min(int(row[4]) for row in rows)
    assert f"this update: fewest available {fewest}, most pods {most}," in out
    for claim in re.findall(r"reaches at most (\d+) pods", out):
        assert int(claim) == most
    limits = re.search(r"limits: at least (\d+) pods available .*, at most (\d+) pods", out)
    assert int(limits.group(2)) >= most and int(limits.group(1)) <= fewest
    if int(limits.group(2)) > most:
        assert f"This update reaches at most {most} pods" in out


def test_preview_of_prod_says_what_preflight_refuses_and_that_it_is_protected(capsys, tmp_path):
    assert main(["preview", "prod", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    before = out[out.index("Before `pulumi up` on prod"):]
    flat = " ".join(before.split())
    for placeholder in ("aws:allowedAccountIds 123456789012", "endpointPublicAccessCidrs 203.0.113.0/24",
                        "app-update:cluster.admins arn:aws:iam::123456789012:role/platform-admin"):
        assert placeholder in flat
    assert "`rollout preflight prod` refuses" in flat and "stack prod is protected" in flat


def test_preview_of_a_local_stack_has_nothing_to_say_before_up(capsys, tmp_path):
    assert main(["preview", "local", "--out", str(tmp_path)]) == 0
    assert "Before `pulumi up`" not in capsys.readouterr().out


def test_a_long_example_is_broken_into_shell_continuation_lines():
    line = "  python -m rollout canary staging --release app --tag v2 --steps 5,25,50,100 --interval 60s --max-p99 1s"
    lines = shell_lines(line, 60)
    assert all(len(part) <= 60 for part in lines) and all(part.endswith(" \\") for part in lines[:-1])
    assert " ".join(part.removesuffix(" \\").strip() for part in lines) == line.strip()


@pytest.mark.parametrize("url", ["notaurl", "ftp://host/", "http://"])
def test_a_probe_url_that_is_not_one_is_refused_by_the_parser(url, no_environment, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["canary", "staging", "--release", "app", "--tag", "v2", "--url", url])
    assert exit_.value.code == 2
    assert f"argument --url: must be an http:// or https:// URL with a host (got {url!r})" in capsys.readouterr().err
