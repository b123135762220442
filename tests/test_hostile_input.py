"""Issue #14, broken and hostile input: every case ends in a clean exit status, one line per
problem, no traceback, and nothing written (or lost) on failure."""

from __future__ import annotations

import errno
import os
import shutil
import threading
from pathlib import Path

import pytest
import yaml

from model import stack_file
from model.stack_file import StackFileError, stack_settings
from preview import manifests, plan
from rollout.cli import main
from tests.conftest import ROOT, STACK_FILES

GOOD_CONFIG = """\
config:
  aws:region: us-west-2
  app-update:cluster:
    mode: kubeconfig
  app-update:releases:
    web:
      strategy: RollingUpdate
      tag: v1
      replicas: 3
"""


@pytest.fixture
def project(tmp_path):
    """A copy of the project's files (Pulumi.yaml, __main__.py, stack files) to break. Not of its packages: the
    program runs in this process, which imports components/ and model/ once, from this checkout."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(ROOT / name, root / name)
    for stack_path in STACK_FILES:
        shutil.copy(stack_path, root / stack_path.name)
    return root


def preview(capsys, project, stack, *extra):
    out = project.parent / "out"
    code = main(["-C", str(project), *extra, "preview", stack, "--out", str(out)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, out


def assert_input_fault(code, out, err, out_dir, *needles):
    assert code == 2, err
    assert "Traceback" not in err
    assert out == ""
    assert err.strip(), "says why"
    for needle in needles:
        assert needle in err, err
    assert not out_dir.exists(), "nothing written"


# ---------------------------------------------------------------------------------------------
# Stack files read safely
# ---------------------------------------------------------------------------------------------


def test_non_utf8_bytes_in_a_comment_exit_2_naming_file_and_line(capsys, project):
    (project / "Pulumi.bad.yaml").write_bytes(b"# caf\xe9 au lait\n" + GOOD_CONFIG.encode())
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: line 1: not UTF-8")
    assert len(err.splitlines()) == 1


def test_non_string_config_keys_exit_2_one_line_each(capsys, project):
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG + "  1: one\n  ~: nothing\n  true: yes\n")
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "the key 1 is not a string", "the key ~ is not a string",
                       "the key true is not a string")
    assert len(err.splitlines()) == 3
    assert all(line.startswith("error: Pulumi.bad.yaml: config: ") for line in err.splitlines())


@pytest.mark.parametrize("text,path,rule", [
    ("  app-update:releases:\n    web:\n      strategy: RollingUpdate\n      tag: 2024-05-01\n",
     "config.app-update:releases.web.tag", "a date is not a plain value; quote it"),
    ("  other:when: 2024-05-01 10:00:00\n", "config.other:when", "a date is not a plain value"),
    ("  other:things: !!set {a, b}\n", "config.other:things", "a set (!!set) is not a plain value"),
    ("  other:blob: !!binary aGVsbG8=\n", "config.other:blob", "binary data (!!binary) is not a plain value"),
    ("  other:pairs: !!omap [a: 1]\n", "config.other:pairs", "an ordered map (!!omap) is not a plain value"),
    ("  other:thing: !custom x\n", "config.other:thing", "the tag !custom is not allowed"),
    ("  other:ratio: .inf\n", "config.other:ratio", ".inf is not a finite number"),
    ("  other:ratio: .nan\n", "config.other:ratio", ".nan is not a finite number"),
])
def test_a_value_that_is_not_plain_json_anywhere_in_the_file_exits_2_naming_its_path(capsys, project, text, path,
                                                                                       rule):
    base = GOOD_CONFIG if "releases" not in text else GOOD_CONFIG.split("  app-update:releases:")[0]
    (project / "Pulumi.bad.yaml").write_text(base + text)
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, f"Pulumi.bad.yaml: {path}: {rule}")


def test_a_date_outside_config_is_refused_too(capsys, project):
    (project / "Pulumi.bad.yaml").write_text("created: 2024-05-01\n" + GOOD_CONFIG)
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: created: a date is not a plain value")


def test_a_5000_digit_number_exits_2(capsys, project):
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG.replace("replicas: 3", "replicas: " + "9" * 5000))
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "config.app-update:releases.web.replicas: a number of 5,000 digits")


def test_a_stack_file_that_is_a_directory_exits_2(capsys, project):
    (project / "Pulumi.bad.yaml").mkdir()
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: is a directory, not a regular file")


def test_dev_zero_as_a_stack_file_exits_2(capsys, project):
    (project / "Pulumi.bad.yaml").symlink_to("/dev/zero")
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: is a device, not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_a_stack_file_exits_2_without_hanging(capsys, project):
    os.mkfifo(project / "Pulumi.bad.yaml")
    result = {}
    worker = threading.Thread(target=lambda: result.update(code=main(["-C", str(project), "preview", "bad"])),
                              daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "preview hangs on a FIFO"
    assert result["code"] == 2
    assert "Pulumi.bad.yaml: is a FIFO, not a regular file" in capsys.readouterr().err


def test_a_stack_file_over_the_size_limit_exits_2(capsys, project):
    padding = "# " + "x" * 1000 + "\n"
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG + padding * (stack_file.MAX_FILE_BYTES // len(padding) + 1))
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: is ", "bytes; a stack file may be at most 1,048,576")


def test_the_size_limit_holds_when_the_file_grows_after_the_check(tmp_path, monkeypatch):
    # stat said 1 byte, the file has 100: at most limit + 1 bytes are read, then it is refused.
    path = tmp_path / "Pulumi.grow.yaml"
    path.write_bytes(b"x" * 100)
    real_stat = os.stat
    small = os.stat_result((*real_stat(path)[:6], 1, *real_stat(path)[7:]))
    monkeypatch.setattr(stack_file.os, "stat", lambda p, *a, **k: small if Path(p) == path else real_stat(p, *a, **k))
    try:
        with pytest.raises(StackFileError, match="is more than 10 bytes"):
            stack_file.read_limited(path, limit=10)
    finally:
        monkeypatch.undo()


def _alias_bomb(width: int, depth: int) -> str:
    leaves = ", ".join(["lol"] * width)
    lines = [f"a0: &a0 [{leaves}]"]
    for level in range(1, depth):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("width,depth", [(10, 7), (9, 9)])  # 10^7 leaves (was 27 s, 3.9 GB); 9^9 (never ended)
def test_an_alias_bomb_exits_2_at_once(capsys, project, width, depth):
    (project / "Pulumi.bad.yaml").write_text(_alias_bomb(width, depth) + GOOD_CONFIG)
    # (before the limit these took 27 s and 3.9 GB, or never ended: the limit stops the expansion itself)
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "expands to more than 100,000 values through aliases")


def test_aliases_within_the_limit_still_work(project):
    (project / "Pulumi.ok.yaml").write_text(
        "config:\n  app-update:cluster: &cluster {mode: kubeconfig}\n  other:copy: *cluster\n"
        "  app-update:releases:\n    web: &web {strategy: RollingUpdate, tag: v1}\n"
        "    api:\n      <<: *web\n      tag: v2\n")
    settings = stack_settings("ok", project)
    assert settings["other:copy"] == {"mode": "kubeconfig"}
    assert settings["app-update:releases"]["api"] == {"strategy": "RollingUpdate", "tag": "v2"}


def test_an_alias_that_contains_itself_exits_2(capsys, project):
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG + "  other:loop: &loop [1, *loop]\n")
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "config.other:loop[1]: an alias refers to a value that contains it")


def test_deep_nesting_exits_2_without_crashing(capsys, project):
    # libyaml's composer recursed until the process crashed; JSON encoding hit RecursionError before.
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG + "  other:deep: " + "[" * 3000 + "]" * 3000 + "\n")
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: line 10: nested more than 64 levels deep")


def test_very_deep_nesting_is_refused():
    with pytest.raises(StackFileError, match="nested more than 64 levels deep"):
        stack_file.parse_yaml(b"a: " + b"[" * 200_000 + b"]" * 200_000, "Pulumi.deep.yaml")


def test_a_key_given_twice_exits_2(capsys, project):
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG + "  aws:region: eu-west-1\n")
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: config.aws:region: appears twice")


def test_invalid_yaml_is_one_line_with_line_and_column(capsys, project):
    (project / "Pulumi.bad.yaml").write_text(GOOD_CONFIG + "  other:list: [a, b\n")
    code, out, err, out_dir = preview(capsys, project, "bad")
    assert_input_fault(code, out, err, out_dir, "Pulumi.bad.yaml: line ", "not valid YAML")
    assert len(err.splitlines()) == 1


def test_a_broken_pulumi_yaml_exits_2(capsys, project):
    (project / "Pulumi.yaml").write_bytes(b"name: [\xff\n")
    code, out, err, out_dir = preview(capsys, project, "dev")
    assert_input_fault(code, out, err, out_dir, "Pulumi.yaml: line 1: not UTF-8")


# ---------------------------------------------------------------------------------------------
# Stack names and project directories
# ---------------------------------------------------------------------------------------------


def test_a_stack_name_with_path_parts_reads_and_writes_nothing_outside(capsys, tmp_path, project):
    (project / "Pulumi.x").mkdir()
    (tmp_path / "evil.yaml").write_text(GOOD_CONFIG)  # project/Pulumi.x/../../evil.yaml
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as caught:
        main(["-C", str(project), "preview", "x/../../evil"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "must be a plain name" in err and "Traceback" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("name", ["dev", "prod-eu", "my_stack.v2", "A1", "x" * 100])
def test_plain_stack_names_are_accepted(name):
    from rollout.cli import stack_name

    assert stack_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "x/../../../tmp/evil", "a\\b", "/abs", "a b",
                                  "dev\n", "é", "x" * 101])
def test_stack_names_with_path_parts_or_odd_characters_are_refused(name):
    import argparse

    from rollout.cli import stack_name

    with pytest.raises(argparse.ArgumentTypeError, match="must be a plain name"):
        stack_name(name)
    with pytest.raises(StackFileError):  # also where no argparse is involved (preflight, tests)
        stack_settings(name, ROOT)


def test_a_project_directory_that_does_not_exist_exits_2(capsys, tmp_path):
    code = main(["-C", str(tmp_path / "nowhere"), "preview", "dev"])
    err = capsys.readouterr().err
    assert code == 2 and err.splitlines() == [f"error: project directory {tmp_path / 'nowhere'}: no such directory"]


def test_a_project_directory_without_pulumi_yaml_exits_2(capsys, tmp_path):
    code = main(["-C", str(tmp_path), "preview", "dev"])
    err = capsys.readouterr().err
    assert code == 2 and "no Pulumi.yaml here" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Exit statuses: no traceback, one line, --debug
# ---------------------------------------------------------------------------------------------


def _boom(*args, **kwargs):
    raise RuntimeError("something\nunexpected")


def test_an_unexpected_failure_is_one_error_line_and_exit_1(capsys, project, monkeypatch):
    monkeypatch.setattr(plan, "build", _boom)
    monkeypatch.delenv("APP_UPDATE_DEBUG", raising=False)
    code, out, err, out_dir = preview(capsys, project, "local")
    assert code == 1
    assert err.splitlines() == ["error: RuntimeError: something unexpected "
                                "(--debug or APP_UPDATE_DEBUG=1 shows the traceback)"]
    assert not out_dir.exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(capsys, project, monkeypatch, how):
    monkeypatch.setattr(plan, "build", _boom)
    if how == "env":
        monkeypatch.setenv("APP_UPDATE_DEBUG", "1")
        code, _, err, _ = preview(capsys, project, "local")
    else:
        monkeypatch.delenv("APP_UPDATE_DEBUG", raising=False)
        code, _, err, _ = preview(capsys, project, "local", "--debug")
    assert code == 1
    assert "Traceback (most recent call last)" in err and "RuntimeError: something" in err


def test_keyboard_interrupt_keeps_exit_130(capsys, project, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plan, "build", interrupted)
    code, _, err, out_dir = preview(capsys, project, "local")
    assert code == 130 and "Traceback" not in err and not out_dir.exists()


def test_a_kubernetes_version_without_schema_exits_2_naming_the_key(capsys, project, monkeypatch):
    # Config accepts the versions kubernetes-validate ships; an older kubernetes-validate
    # (here: one that stops at 1.30) has no schema for the default version.
    import kubernetes_validate.utils as kv

    real_versions = kv.all_versions
    monkeypatch.setattr(kv, "all_versions", lambda: [v for v in real_versions() if v.startswith(("1.2", "1.30"))])
    manifests._validator.cache_clear()
    try:
        code, out, err, out_dir = preview(capsys, project, "local")
    finally:
        manifests._validator.cache_clear()
    assert_input_fault(code, out, err, out_dir, "app-update:cluster.kubernetesVersion: no Kubernetes 1.3",
                       "1.25 to 1.30")
    assert len(err.splitlines()) == 1


def test_replicas_beyond_int32_in_a_manifest_are_a_schema_error_and_nothing_is_written(capsys, project, monkeypatch):
    # Config validation normally stops this first; the schema check is the backstop.
    real_collect = manifests.collect

    def huge(run):
        objects = real_collect(run)
        next(m for m in objects if m.kind == "Deployment").obj["spec"]["replicas"] = 9223372036854775808
        return objects

    monkeypatch.setattr(manifests, "collect", huge)
    code, out, err, out_dir = preview(capsys, project, "local")
    assert code == 1 and out == "" and "Traceback" not in err
    assert "spec.replicas: 9223372036854775808 is out of range for int32" in err
    assert not out_dir.exists()


# ---------------------------------------------------------------------------------------------
# Writing without loss
# ---------------------------------------------------------------------------------------------


def listing(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_out_keeps_the_users_own_numbered_files(capsys, project):
    out_dir = project.parent / "out"
    out_dir.mkdir()
    (out_dir / "01-my-values.yaml").write_text("mine: true\n")
    (out_dir / "99-notes.yaml").write_text("notes: keep\n")
    code, _, err, _ = preview(capsys, project, "local")
    assert code == 0, err
    assert (out_dir / "01-my-values.yaml").read_text() == "mine: true\n"
    assert (out_dir / "99-notes.yaml").read_text() == "notes: keep\n"
    # a second preview with fewer objects removes only what the first one wrote
    first = set(listing(out_dir))
    (project / "Pulumi.small.yaml").write_text(GOOD_CONFIG)
    code, _, err, _ = preview(capsys, project, "small")
    assert code == 0, err
    now = set(listing(out_dir))
    assert {"01-my-values.yaml", "99-notes.yaml", manifests.RECORD} <= now
    assert len(now) < len(first)
    written = [line for line in (out_dir / manifests.RECORD).read_text().splitlines() if not line.startswith("#")]
    assert sorted(now - {"01-my-values.yaml", "99-notes.yaml", manifests.RECORD}) == sorted(written)


def test_out_never_overwrites_a_file_it_did_not_write(capsys, project):
    out_dir = project.parent / "out"
    out_dir.mkdir()
    (out_dir / "01-namespace-app-update.yaml").write_text("# my own namespace\n")
    code, out, err, _ = preview(capsys, project, "local")
    assert code == 2 and out == "" and "01-namespace-app-update.yaml is there and was not written by a preview" in err
    assert listing(out_dir) == {"01-namespace-app-update.yaml": b"# my own namespace\n"}


def test_a_hostile_record_removes_nothing_outside_the_output_directory(capsys, project):
    out_dir = project.parent / "out"
    out_dir.mkdir()
    victim = project.parent / "victim.yaml"
    victim.write_text("keep\n")
    (out_dir / "sub").mkdir()
    (out_dir / "sub" / "01-x.yaml").write_text("keep\n")
    (out_dir / manifests.RECORD).write_text(f"../victim.yaml\n{victim}\nsub/01-x.yaml\n..\n.\n")
    code, _, err, _ = preview(capsys, project, "local")
    assert code == 0, err
    assert victim.read_text() == "keep\n" and (out_dir / "sub" / "01-x.yaml").read_text() == "keep\n"


def test_the_record_is_invisible_to_kubectl_apply():
    # `kubectl apply -f DIR` reads only .json, .yaml and .yml files of DIR
    assert not manifests.RECORD.endswith((".json", ".yaml", ".yml"))


@pytest.mark.parametrize("kind", ["file", "under a file"])
def test_out_pointing_at_or_under_a_file_exits_2_writing_nothing(capsys, project, kind):
    target = project.parent / "a-file"
    target.write_text("not a directory\n")
    out = target if kind == "file" else target / "manifests"
    code = main(["-C", str(project), "preview", "local", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "Traceback" not in captured.err
    assert len(captured.err.splitlines()) == 1 and "is a file, not a directory" in captured.err
    assert target.read_text() == "not a directory\n"


def _failing_writes(monkeypatch, failing_errno: int, at: int, under: Path, exception: type = OSError):
    """Make the at-th write to a file under `under` fail like the file system would."""
    real_write = os.write
    count = {"n": 0}

    def write(fd, data):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            target = ""
        if target.startswith(str(under)):
            count["n"] += 1
            if count["n"] == at:
                if exception is OSError:
                    raise OSError(failing_errno, os.strerror(failing_errno))
                raise exception()
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


pytestmark_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc")


@pytestmark_proc
@pytest.mark.parametrize("failing,status,at", [(errno.ENOSPC, 1, 3), (errno.EROFS, 2, 1), (errno.EIO, 1, 2)],
                         ids=["disk full at the 3rd file", "read-only at the 1st", "I/O error at the 2nd"])
def test_a_failing_file_system_leaves_the_previous_output_untouched(capsys, project, monkeypatch, failing, status,
                                                                   at):
    out_dir = project.parent / "out"
    code, _, err, _ = preview(capsys, project, "local")
    assert code == 0, err
    (out_dir / "01-my-values.yaml").write_text("mine\n")
    before = listing(out_dir)
    _failing_writes(monkeypatch, failing, at, project.parent)
    code, out, err, _ = preview(capsys, project, "dev")
    monkeypatch.undo()
    assert code == status and out == "" and "Traceback" not in err
    assert len(err.splitlines()) == 1 and os.strerror(failing) in err and "nothing was changed" in err
    assert listing(out_dir) == before
    assert sorted(p.name for p in project.parent.iterdir()) == ["out", "project"]  # no temporary left over
    assert not [p for p in out_dir.iterdir() if p.is_dir()]


@pytestmark_proc
def test_a_full_disk_on_a_new_directory_leaves_nothing(capsys, project, monkeypatch):
    out = project.parent / "new" / "deeper" / "out"
    _failing_writes(monkeypatch, errno.ENOSPC, 2, project.parent)
    code = main(["-C", str(project), "preview", "local", "--out", str(out)])
    monkeypatch.undo()
    assert code == 1 and "No space left on device" in capsys.readouterr().err
    assert not (project.parent / "new").exists()


@pytestmark_proc
def test_an_interrupted_write_leaves_the_previous_output_untouched(capsys, project, monkeypatch):
    out_dir = project.parent / "out"
    code, _, err, _ = preview(capsys, project, "local")
    assert code == 0, err
    before = listing(out_dir)
    _failing_writes(monkeypatch, 0, 4, project.parent, exception=KeyboardInterrupt)
    code, _, err, _ = preview(capsys, project, "dev")
    monkeypatch.undo()
    assert code == 130
    assert listing(out_dir) == before
    assert not [p for p in out_dir.iterdir() if p.is_dir()]


def test_a_failing_move_into_place_is_rolled_back(capsys, project, monkeypatch):
    out_dir = project.parent / "out"
    code, _, err, _ = preview(capsys, project, "local")
    assert code == 0, err
    before = listing(out_dir)
    real_rename = os.rename
    moves = {"n": 0}

    def rename(src, dst):
        if Path(dst).parent == out_dir:
            moves["n"] += 1
            if moves["n"] == 5:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    code, _, err, _ = preview(capsys, project, "dev")
    monkeypatch.undo()
    assert code == 1 and "Input/output error" in err
    assert listing(out_dir) == before


def test_a_failing_forecast_writes_nothing(capsys, project, monkeypatch):
    import model.forecast

    def failing(*args, **kwargs):
        raise RuntimeError("rollout forecast did not converge")

    monkeypatch.setattr(plan, "forecast", failing)
    monkeypatch.setattr(model.forecast, "forecast", failing)
    code, _, err, out_dir = preview(capsys, project, "local")
    assert code == 1 and "did not converge" in err
    assert not out_dir.exists()


def test_the_default_directory_stays_build_manifests_stack(capsys, project):
    code = main(["-C", str(project), "preview", "local"])
    assert code == 0, capsys.readouterr().err
    out_dir = project / "build" / "manifests" / "local"
    names = sorted(p.name for p in out_dir.iterdir())
    assert names[0] == manifests.RECORD and names[1].startswith("01-namespace-")
    # files an older version wrote there without a record are taken over, not refused
    (out_dir / manifests.RECORD).unlink()
    (out_dir / "99-deployment-gone.yaml").write_text("kind: Deployment\n")
    assert main(["-C", str(project), "preview", "local"]) == 0
    assert not (out_dir / "99-deployment-gone.yaml").exists()
    assert (out_dir / manifests.RECORD).exists()


def test_loaded_values_are_plain_json(project):
    settings = stack_settings("dev", project)
    import json

    assert json.loads(json.dumps(settings)) == settings
    assert yaml.safe_load((project / "Pulumi.dev.yaml").read_text())["config"]["app-update:releases"] == \
        settings["app-update:releases"]
