"""The tests' stack files are the ones the repository tracks, never whatever lies in the checkout (issue #26:
a user's `cp Pulumi.dev.yaml Pulumi.mine.yaml`, which the README invites, failed three tests)."""

import shutil
import subprocess

from tests.conftest import ROOT, SHIPPED_STACKS, STACKS, tracked_stack_files


def git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
                   check=True, capture_output=True)


def test_an_untracked_stack_file_in_the_checkout_is_not_the_tests_input(tmp_path):
    git(tmp_path, "init", "-q")
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.dev.yaml")
    shutil.copy(ROOT / "Pulumi.local.yaml", tmp_path / "Pulumi.local.yaml")
    git(tmp_path, "add", "Pulumi.dev.yaml", "Pulumi.local.yaml")
    git(tmp_path, "commit", "-q", "-m", "stack files")
    shutil.copy(ROOT / "Pulumi.dev.yaml", tmp_path / "Pulumi.mine.yaml")  # the user's copy
    (tmp_path / "Pulumi.broken.yaml").write_text("config: [")  # and one half-written
    assert [p.name for p in tracked_stack_files(tmp_path)] == ["Pulumi.dev.yaml", "Pulumi.local.yaml"]


def test_outside_a_git_checkout_the_shipped_stack_files_are_used(tmp_path):
    (tmp_path / "Pulumi.mine.yaml").write_text("config: {}")
    assert [p.name for p in tracked_stack_files(tmp_path)] == [f"Pulumi.{s}.yaml" for s in SHIPPED_STACKS]


def test_the_repository_tracks_the_stack_files_the_tests_run():
    assert set(SHIPPED_STACKS) <= set(STACKS)
