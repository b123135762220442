"""history, undo, status and promote against a stand-in stack with real UpdateSummary history."""

import json

import pytest

from operations import promotion, revisions, stacks
from operations.stacks import OperationError
from rollout.cli import main
from tests.fake_stack import BACKENDS, CLI_PAGE_SIZE, PULUMI_CLOUD, SELF_MANAGED, FakeStack, deployed

pytestmark = pytest.mark.usefixtures("shared_botocore_data")  # promote's preflight runs under moto

RELEASES = "app-update:releases"


def workshop(rolling_tag="v1", stable="v1", canary="v2", stable_n=2, canary_n=2):
    return {
        "app-update:cluster": {"mode": "kubeconfig"},
        RELEASES: {
            "app-rolling": {"strategy": "RollingUpdate", "tag": rolling_tag, "replicas": 5, "maxSurge": 1,
                            "maxUnavailable": 1},
            "app": {"strategy": "Canary", "serviceName": "app-service",
                    "stable": {"tag": stable, "replicas": stable_n}, "canary": {"tag": canary, "replicas": canary_n}},
        },
    }


def set_image(stack, release, tag, message):
    """What `kubectl set image` becomes: a config change and an update."""
    stack.config[RELEASES][release]["tag"] = tag
    stack.up(message=message)


def yes(prompt, expected):
    return True


def no(prompt, expected):
    return False


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each test that takes it runs against a self-managed backend (versions 0) and Pulumi Cloud's."""
    return request.param


@pytest.fixture
def dev(backend):
    stack = deployed("dev", workshop(), "create: workshop releases", backend=backend)
    set_image(stack, "app-rolling", "v2", "set image app-rolling v2")
    return stack


def test_history_shows_each_revision_with_images_and_change_cause(dev, capsys):
    assert revisions.do_history(dev, None, False) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["REVISION", "TIME", "RESULT", "RELEASES", "CHANGE-CAUSE"]
    # One release per line; the change cause on the revision's first line.
    assert out[1].split()[:3] == ["1", "2026-11-01", "10:00:00"]
    assert "app: arungupta/app-upgrade stable v1 ×2 + canary v2 ×2" in out[1]
    assert out[1].endswith("create: workshop releases")
    assert out[2].strip() == "app-rolling: arungupta/app-upgrade:v1 ×5"
    assert out[3].split()[:1] == ["2"] and out[3].endswith("set image app-rolling v2")
    assert out[4].strip() == "app-rolling: arungupta/app-upgrade:v2 ×5"
    assert len(out) == 5


# ---------------------------------------------------------------------------------------------
# A long history: numbered 1 = oldest on every backend, read page by page
# ---------------------------------------------------------------------------------------------


def tag_of(update):
    """The app-rolling tag the n-th update (1 = first) of `fourteen_updates` runs: v1 v2 v3 v4 v1 ..."""
    return f"v{(update - 1) % 4 + 1}"


def fourteen_updates(backend):
    stack = deployed("dev", workshop(rolling_tag=tag_of(1)), "update 1", backend=backend)
    for n in range(2, 15):
        set_image(stack, "app-rolling", tag_of(n), f"update {n}")
    return stack


def test_the_stand_in_pages_history_as_the_cli_does(backend):
    stack = FakeStack("dev", workshop(), backend=backend)
    for n in range(1, 15):
        stack.record(f"update {n}")
    default = stack.history()  # no page size: the CLI's default page, the newest 10
    assert [s.message for s in default] == [f"update {n}" for n in range(14, 4, -1)] and CLI_PAGE_SIZE == 10
    assert {s.version for s in default} == ({0} if backend == SELF_MANAGED else set(range(5, 15)))
    assert [s.message for s in stack.history(page_size=4, page=4)] == ["update 2", "update 1"]
    assert stack.history(page_size=4, page=5) == []
    assert [s.message for s in stack.history(page_size=3)] == ["update 14", "update 13", "update 12"]
    assert len(stack.history(page_size=0)) == 14


def test_fourteen_updates_are_numbered_1_to_14_and_history_shows_them_all(backend, capsys):
    stack = fourteen_updates(backend)
    assert revisions.do_history(stack, "app-rolling", False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == [str(n) for n in range(1, 15)]
    for n, line in enumerate(lines[1:], start=1):
        assert f"app-rolling: arungupta/app-upgrade:{tag_of(n)} ×5" in line and line.endswith(f"update {n}")
    revisions.do_history(stack, None, True)
    assert [row["revision"] for row in json.loads(capsys.readouterr().out)] == list(range(1, 15))


def test_undo_to_revision_3_of_14_restores_the_third_updates_release_config(backend, capsys):
    stack = fourteen_updates(backend)
    third = stacks.releases_of(stack.summaries[2].config)
    assert third["app-rolling"]["tag"] == "v3" and stack.config[RELEASES]["app-rolling"]["tag"] == "v2"
    assert main_with(stack, ["undo", "dev", "--to-revision", "3", "--yes"]) == 0
    assert "app-rolling.tag: v2 → v3" in capsys.readouterr().out
    assert stack.config[RELEASES] == third
    assert stack.up_messages[-1] == "undo to revision 3"
    assert stack.outputs()["releases"].value["app-rolling"]["images"] == {"app": "arungupta/app-upgrade:v3"}
    # The undo is revision 15; going back to 14 brings back what 14 ran.
    assert revisions.do_undo(stack, None, None, True, no) == 0
    assert stack.up_messages[-1] == "undo to revision 14" and stack.config[RELEASES]["app-rolling"]["tag"] == "v2"


def test_undo_names_the_update_revisions_there_are(backend):
    stack = fourteen_updates(backend)
    stack.record("refresh", kind="refresh")
    with pytest.raises(OperationError, match=r"revision 16 does not exist \(update revisions: 1-14\)"):
        revisions.do_undo(stack, 16, None, True, yes)
    with pytest.raises(OperationError, match="revision 15 is a refresh, not an update"):
        revisions.do_undo(stack, 15, None, True, yes)


def test_status_names_the_real_revision_of_the_last_update(backend, capsys):
    stack = fourteen_updates(backend)
    assert revisions.do_status(stack, False) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("stack dev: revision 14 succeeded at 2026-11-01 23:00:00")
    revisions.do_status(stack, True)
    assert json.loads(capsys.readouterr().out)["lastUpdate"]["revision"] == 14


def test_the_canary_warning_names_the_revision_that_set_the_weight_in_a_long_history(backend, capsys):
    stack = fourteen_updates(backend)
    stack.config[RELEASES]["app"] = {"strategy": "Canary", "serviceName": "app-service", "replicas": 4,
                                     "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 25}}
    stack.up(message="canary app v2: weight 25%")  # revision 15
    stack.up(message="nothing changed")  # 16
    stack.up(message="nothing changed again")  # 17
    assert revisions.do_status(stack, False) == 0
    out = capsys.readouterr().out
    assert "stack dev: revision 17 succeeded" in out
    assert ("! canary v2 carries 25% of traffic since revision 15 (2026-11-02 00:00:00, "
            "'canary app v2: weight 25%'); send it back with: python -m rollout abort dev --release app") in out


def test_revisions_read_a_history_longer_than_a_page_page_by_page(backend):
    stack = FakeStack("dev", workshop(), backend=backend)
    for n in range(1, 251):
        stack.record(f"update {n}", kind="refresh" if n % 50 == 0 else "update")
    revs = stacks.revisions(stack)
    assert [r.number for r in revs] == list(range(250, 0, -1))
    assert [r.message for r in revs] == [f"update {n}" for n in range(250, 0, -1)]
    assert revs[-50].kind == "refresh" and revs[-50].number == 50
    size = stacks.HISTORY_PAGE_SIZE
    # until a page is empty, then the newest again
    assert stack.history_calls == [(size, 1), (size, 2), (size, 3), (size, 4), (1, 1)]


def test_a_backend_that_answers_with_smaller_pages_than_asked_is_still_read_to_the_end():
    class Capped(FakeStack):
        """A service that pages with its own page size (Pulumi Cloud's answer carries `itemsPerPage`)."""

        def history(self, page_size=None, page=None, show_secrets=True):
            return super().history(30, page, show_secrets)

    stack = Capped("dev", workshop(), backend=PULUMI_CLOUD)
    for n in range(1, 76):
        stack.record(f"update {n}")
    assert [r.number for r in stacks.revisions(stack)] == list(range(75, 0, -1))


def test_an_update_that_lands_while_the_pages_are_read_is_not_counted_twice(backend):
    class Busy(FakeStack):
        """Another operator's update finishes between this reader's first and second page."""

        def history(self, page_size=None, page=None, show_secrets=True):
            if page == 2 and not self.landed:
                self.landed = True
                self.record("someone else's update")
            return super().history(page_size, page, show_secrets)

    stack = Busy("dev", workshop(), backend=backend)
    stack.landed = False
    for n in range(1, stacks.HISTORY_PAGE_SIZE + 6):
        stack.record(f"update {n}")
    revs = stacks.revisions(stack)
    total = stacks.HISTORY_PAGE_SIZE + 6
    assert [r.number for r in revs] == list(range(total, 0, -1))
    assert revs[0].message == "someone else's update" and revs[-1].message == "update 1"
    assert len({r.message for r in revs}) == total


def test_a_history_that_never_settles_is_one_clear_error():
    class Storm(FakeStack):
        def history(self, page_size=None, page=None, show_secrets=True):
            if page == 2:
                self.record("yet another update")
            return super().history(page_size, page, show_secrets)

    stack = Storm("dev", workshop())
    for n in range(stacks.HISTORY_PAGE_SIZE + 1):
        stack.record(f"update {n}")
    with pytest.raises(OperationError, match="history kept changing while it was read"):
        stacks.revisions(stack)


def test_history_columns_never_run_together(capsys):
    long_image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/platform-team/very-long-application-name"
    config = workshop()
    config[RELEASES]["app-rolling"]["image"] = long_image
    config[RELEASES]["app"] = {"strategy": "Canary", "image": long_image, "replicas": 40,
                               "stable": {"tag": "2026.11.01-build.1234"}, "canary": {"tag": "v2", "weight": 5}}
    stack = FakeStack("dev", config)
    stack.record("create")
    stack.record("a change cause\nover two lines")
    revisions.do_history(stack, None, False)
    lines = capsys.readouterr().out.splitlines()
    header = lines[0]
    starts = [header.index(title) for title in revisions.HISTORY_COLUMNS]
    for line in lines[1:]:
        for start in starts[1:]:
            # every column starts where its title does, after at least two spaces
            assert len(line) <= start or line[start - 2:start] == "  ", (line, start)
    assert lines[1][starts[4]:] == "create"
    assert lines[3][starts[4]:] == "a change cause over two lines"
    assert lines[2][starts[3]:].startswith(f"app-rolling: {long_image}:v1 ×5")


def test_history_last_says_how_many_updates_it_leaves_out_and_how_to_see_them(capsys):
    stack = FakeStack("dev", workshop())
    for n in range(1, 15):
        stack.record(f"update {n}")
    assert main_with(stack, ["history", "dev", "--release", "app-rolling", "--last", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["12", "13", "14"]
    assert lines[4] == "(11 older updates not shown: revisions 1-11; run without --last to see every update)"
    assert main_with(stack, ["history", "dev", "--last", "3", "--json"]) == 0
    assert [row["revision"] for row in json.loads(capsys.readouterr().out)] == [12, 13, 14]


def main_with(stack, argv):
    """The command line, with `stack` as the stack every verb opens."""
    import unittest.mock

    with unittest.mock.patch.object(stacks, "open_stack", lambda name, cwd: stack):
        return main(argv)


def test_history_filters_a_release_and_speaks_json(dev, capsys):
    revisions.do_history(dev, "app-rolling", True)
    rows = json.loads(capsys.readouterr().out)
    assert [r["revision"] for r in rows] == [1, 2]
    assert [r["releases"] for r in rows] == [{"app-rolling": "arungupta/app-upgrade:v1 ×5"},
                                             {"app-rolling": "arungupta/app-upgrade:v2 ×5"}]
    assert rows[0]["result"] == "succeeded"


def test_history_of_a_weighted_canary_shows_both_tracks_and_the_weight():
    config = workshop()
    config[RELEASES]["app"] = {"strategy": "Canary", "image": "example.com/team/app", "replicas": 4,
                               "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 5}}
    stack = FakeStack("dev", config)
    stack.record("weighted")
    rows = revisions.history_rows(stacks.revisions(stack), "app")
    assert rows[0]["releases"] == {"app": "example.com/team/app stable v1 + canary v2 @5% (4 pods)"}


def test_secret_release_config_reads_secret():
    stack = FakeStack("dev", workshop(), secret_keys=(RELEASES,))
    stack.record("with secrets")
    rows = revisions.history_rows(stacks.revisions(stack))
    assert rows[0]["releases"] == {"*": "[secret]"}


def test_undo_defaults_to_the_last_successful_update_before_the_current(dev, capsys):
    set_image(dev, "app-rolling", "v3", "set image app-rolling v3")
    dev.summaries[-2].result = "failed"  # revision 2 (v2) failed
    assert revisions.do_undo(dev, None, None, False, yes) == 0
    out = capsys.readouterr().out
    assert "app-rolling.tag: v3 → v1" in out
    assert dev.config[RELEASES]["app-rolling"]["tag"] == "v1"
    assert dev.up_messages[-1] == "undo to revision 1"
    assert dev.summaries[-1].result == "succeeded"
    assert dev.outputs()["releases"].value["app-rolling"]["images"] == {"app": "arungupta/app-upgrade:v1"}


def test_undo_to_revision_restores_tags_weights_and_replicas(dev):
    dev.config[RELEASES]["app"]["stable"] = {"tag": "v2", "replicas": 0}
    dev.config[RELEASES]["app"]["canary"] = {"tag": "v2", "replicas": 4}
    dev.up(message="promote canary")
    changes = revisions.undo_changes(revisions.undo_target(stacks.revisions(dev), 1),
                                      stacks.releases_of(dev.get_all_config()))
    assert {(c.release, c.field, c.old, c.new) for c in changes} == {
        ("app-rolling", "tag", "v2", "v1"), ("app", "stable.tag", "v2", "v1"),
        ("app", "stable.replicas", 0, 2), ("app", "canary.replicas", 4, 2)}


def test_undo_switches_a_canary_between_forms_cleanly(backend):
    stack = deployed("dev", workshop(), backend=backend)
    stack.config[RELEASES]["app"] = {"strategy": "Canary", "serviceName": "app-service", "replicas": 4,
                                     "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 25}}
    stack.up(message="weighted canary")
    assert revisions.do_undo(stack, 1, "app", True, no) == 0
    assert stack.config[RELEASES]["app"] == workshop()[RELEASES]["app"]


def test_undo_only_one_release(dev):
    dev.config[RELEASES]["app"]["canary"]["replicas"] = 4
    dev.up(message="scale canary")
    assert revisions.do_undo(dev, 1, "app", True, no) == 0
    assert dev.config[RELEASES]["app"]["canary"]["replicas"] == 2
    assert dev.config[RELEASES]["app-rolling"]["tag"] == "v2"  # untouched


@pytest.mark.parametrize("to_revision,reason", [
    (9, "revision 9 does not exist (update revisions: 1, 2)"),
    (2, "nothing to restore"),
])
def test_undo_refuses_what_it_cannot_do(dev, to_revision, reason):
    with pytest.raises(OperationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        revisions.do_undo(dev, to_revision, None, True, yes)
    assert dev.up_messages == ["create: workshop releases", "set image app-rolling v2"]


def test_undo_refuses_a_failed_revision(dev):
    dev.summaries[0].result = "failed"
    with pytest.raises(OperationError, match="revision 1 failed"):
        revisions.do_undo(dev, 1, None, True, yes)
    with pytest.raises(OperationError, match="no successful update before revision 2"):
        revisions.do_undo(dev, None, None, True, yes)


def test_undo_without_confirmation_changes_nothing(dev, capsys):
    before = json.dumps(dev.config, sort_keys=True)
    assert revisions.do_undo(dev, None, None, False, no) == 1
    assert json.dumps(dev.config, sort_keys=True) == before
    assert len(dev.summaries) == 2
    assert "nothing was changed" in capsys.readouterr().out


def test_protected_stack_asks_for_its_name():
    prod = deployed("prod", {**workshop(), "app-update:protected": True})
    set_image(prod, "app-rolling", "v2", "v2")
    asked = []
    revisions.do_undo(prod, None, None, False, lambda prompt, expected: asked.append(expected) or False)
    assert asked == ["prod"]


def test_undo_never_writes_invalid_config():
    stack = deployed("dev", workshop())
    stack.config[RELEASES]["app-rolling"]["maxSurge"] = 0
    stack.config[RELEASES]["app-rolling"]["maxUnavailable"] = 1
    stack.config[RELEASES]["app-rolling"]["tag"] = "v2"
    stack.up(message="v2")
    stack.config[RELEASES]["app-rolling"]["maxUnavailable"] = 0  # an invalid edit made by hand since
    with pytest.raises(OperationError, match="app-update:releases.app-rolling.maxUnavailable"):
        revisions.do_undo(stack, 1, None, True, yes)
    assert stack.config[RELEASES]["app-rolling"]["tag"] == "v2"


def test_promote_takes_what_the_source_runs_not_its_config(capsys):
    dev = deployed("dev", workshop(rolling_tag="v2", stable="v2", canary="v3"))
    dev.config[RELEASES]["app-rolling"]["tag"] = "v9"  # edited, never deployed
    staging = deployed("staging", workshop())
    assert promotion.do_promote(dev, staging, None, True, no, allow_tag=True) == 0
    assert staging.config[RELEASES]["app-rolling"]["tag"] == "v2"
    assert staging.config[RELEASES]["app"]["stable"]["tag"] == "v2"  # a canary promotes its stable track
    assert staging.up_messages[-1] == "promote app v2, app-rolling v2 from dev"
    assert staging.outputs()["releases"].value["app-rolling"]["tags"] == {"app": "v2"}


def test_promote_one_release_and_nothing_to_promote():
    dev = deployed("dev", workshop(rolling_tag="v2"))
    staging = deployed("staging", workshop())
    promotion.do_promote(dev, staging, "app-rolling", True, no, allow_tag=True)
    assert staging.config[RELEASES]["app"]["stable"]["tag"] == "v1"
    with pytest.raises(OperationError, match="nothing to promote"):
        promotion.do_promote(dev, staging, None, True, no, allow_tag=True)


def test_promote_stops_when_preflight_fails():
    dev = deployed("dev", workshop(rolling_tag="v2"))
    staging = deployed("staging", workshop())
    with pytest.raises(OperationError, match="preflight checks for staging failed"):
        promotion.do_promote(dev, staging, None, True, yes, preflight=lambda config: False, allow_tag=True)
    assert staging.config[RELEASES]["app-rolling"]["tag"] == "v1"


def test_promote_refuses_an_undeployed_source():
    with pytest.raises(OperationError, match="no `releases` output"):
        promotion.do_promote(FakeStack("dev", workshop()), deployed("staging", workshop()), None, True, yes)


def test_status_shows_addresses_images_and_weight(backend, capsys):
    stack = deployed("staging", workshop(), backend=backend)
    assert revisions.do_status(stack, False) == 0
    out = capsys.readouterr().out
    assert "revision 1 succeeded" in out
    assert "app-rolling  RollingUpdate  " in out and ".amazonaws.com" in out
    assert "stable  arungupta/app-upgrade:v1 × 2" in out
    assert "weight  50% to canary" in out


@pytest.mark.parametrize("argv", [["undo", "dev", "--yes"], ["promote", "staging", "dev", "--yes", "--allow-tag"]])
def test_a_failed_update_is_one_error_line_and_exit_1(argv, monkeypatch, capsys):
    # The real Stack.up() raises CommandError on a failed update; it never returns a failed summary.
    dev = deployed("dev", workshop())
    dev.config[RELEASES]["app-rolling"]["tag"] = "v2"
    dev.up(message="v2")
    staging = deployed("staging", workshop(rolling_tag="v3"))
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: {"dev": dev, "staging": staging}[name])
    monkeypatch.setattr(revisions, "preflight_ok", lambda config: True)
    dev.script = ["fail"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: the update failed: pulumi: the Kubernetes API server reported that "app-update/app-canary" '
                   "failed to fully initialize or become live: Timeout occurred"]
    assert dev.summaries[-1].result == "failed"


def test_a_locked_stack_is_one_error_line(monkeypatch, capsys):
    dev = deployed("dev", workshop())
    dev.config[RELEASES]["app-rolling"]["tag"] = "v2"
    dev.up(message="v2")
    dev.locked_by = "someone"
    monkeypatch.setattr(stacks, "open_stack", lambda name, cwd: dev)
    assert main(["undo", "dev", "--yes"]) == 1
    assert capsys.readouterr().err.strip() == ("error: the update failed: the stack is locked by another update: wait "
                                               "for it to finish, or clear a lock left by a process that died with "
                                               "`pulumi cancel`")


@pytest.mark.parametrize("argv", [["history", "dev"], ["status", "dev"], ["undo", "dev", "--yes"],
                                  ["promote", "dev", "staging", "--yes"]])
def test_without_the_pulumi_cli_each_verb_says_how_to_install_it(argv, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Pulumi CLI is not installed" in err and "get.pulumi.com" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("verb", ["history", "undo", "status", "promote", "preflight"])
def test_help_has_an_example(verb, capsys):
    with pytest.raises(SystemExit):
        main([verb, "--help"])
    assert "example:" in capsys.readouterr().out


ECR = "123456789012.dkr.ecr.us-west-2.amazonaws.com/app-update/app"


def ecr_stack(name, tag):
    config = {"aws:region": "us-west-2", "app-update:cluster": {"mode": "kubeconfig"},
              RELEASES: {"web": {"strategy": "RollingUpdate", "image": ECR, "tag": tag, "replicas": 2}}}
    return deployed(name, config)


def test_promote_cli_preflights_the_promoted_tags_in_ecr(monkeypatch, tmp_path, capsys):
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-west-2", "AWS_EC2_METADATA_DISABLED": "true",
                       "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        ecr = boto3.client("ecr", region_name="us-west-2")
        ecr.create_repository(repositoryName="app-update/app")
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                               "layers": [], "config": {"digest": "sha256:" + "a" * 64, "size": 1,
                                                        "mediaType": "application/vnd.docker.container.image.v1+json"}})
        ecr.put_image(repositoryName="app-update/app", imageManifest=manifest, imageTag="v1")
        stacks_by_name = {"dev": ecr_stack("dev", "v2"), "staging": ecr_stack("staging", "v1")}
        monkeypatch.setattr(stacks, "open_stack", lambda name, project_dir: stacks_by_name[name])
        # v2 runs in dev but was never pushed to ECR: it has no digest, nothing changed
        assert main(["promote", "dev", "staging", "--yes"]) == 1
        captured = capsys.readouterr()
        assert captured.err.strip() == (f"error: {ECR}:v2: no such image in ECR (ImageNotFoundException); push it "
                                        "first, or pass --allow-tag to promote by tag anyway")
        assert stacks_by_name["staging"].config[RELEASES]["web"]["tag"] == "v1"
        # --allow-tag promotes the tag: staging's preflight still finds it missing where staging pulls from
        assert main(["promote", "dev", "staging", "--yes", "--allow-tag"]) == 1
        captured = capsys.readouterr()
        assert f"FAIL  image web              {ECR}:v2: tag v2 is not in repository app-update/app" in captured.out
        assert "preflight checks for staging failed" in captured.err
        v2 = manifest.replace("a" * 64, "b" * 64)
        ecr.put_image(repositoryName="app-update/app", imageManifest=v2, imageTag="v2")
        digest = ecr.describe_images(repositoryName="app-update/app",
                                     imageIds=[{"imageTag": "v2"}])["imageDetails"][0]["imageDigest"]
        assert main(["promote", "dev", "staging", "--yes"]) == 0
        assert stacks_by_name["staging"].config[RELEASES]["web"]["tag"] == f"v2@{digest}"  # the digest, not the tag
        assert f"ok    image web              {ECR}:v2@{digest} exists" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["history", "../prod"], ["undo", "x/y", "--yes"], ["status", ".hidden"],
                                  ["promote", "dev", "a/../b"], ["canary", "s/t", "--release", "app", "--tag", "v2"],
                                  ["abort", "../s", "--release", "app"], ["preflight", "x/../../evil"]])
def test_every_verb_takes_only_plain_stack_names(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_update_of_invalid_config_fails_with_the_programs_report_as_the_error_line(backend):
    stack = deployed("dev", workshop(), backend=backend)
    stack.config[RELEASES]["app-rolling"]["maxSurge"] = 0
    stack.config[RELEASES]["app-rolling"]["maxUnavailable"] = 0  # edited by hand, never validated
    with pytest.raises(stacks.UpdateFailed) as failed:
        stacks.update(stack, "bad edit")
    assert failed.value.cause == "pulumi: 1 problem in Pulumi.dev.yaml; nothing was deployed or written"
    assert "unhandled error" not in str(failed.value)
    assert stack.summaries[-1].result == "failed"
