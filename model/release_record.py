"""The release record: what a stack runs, per release, pinned by digest, and how it got there.

The program exports it as the stack output `releaseRecords` (one entry per release):

- `image`: the reference the release serves (a canary's stable track, a blue-green release's active color),
  `repo:tag@sha256:...`
  once `rollout promote` has pinned it; `digest`: the `sha256:...` part, or None for a bare tag.
- `config`: the release's strategy, tags and replicas per track (per color), as this update applied them; a
  blue-green release's also names its `activeColor`.
- `verification`: how the release got here, from `app-update:verification.<release>` (written by
  `rollout promote`, `rollout verify` and a passed `rollout canary`, each as part of the update it
  records): `how` (promotion, approved, canary, bluegreen, verify), `revision` (the update that
  recorded it), `from`/`fromRevision` for a promotion, `verdict`/`evidence` for a canary,
  `reason` for `--approve` and `verify`, `at` (UTC, ISO 8601) and `by`. A record whose image is not
  what the release serves any more (someone changed the tag and ran `pulumi up`) reads
  `{"how": "manual"}`: the update's time and author are in `pulumi stack history`.

Pure: no Pulumi import; `operations/promotion.py` reads the records back and decides on proof.
"""

from __future__ import annotations

import re
from typing import Any

from model.config import Release, StackConfig

DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
MANUAL = {"how": "manual"}
# What counts as proof that a release was verified on a stack.
VERIFIED = ("canary", "bluegreen", "verify")


def split_tag(tag: str) -> tuple[str, str | None]:
    """`v2@sha256:ab..` → (`v2`, `sha256:ab..`); `v2` → (`v2`, None)."""
    name, _, digest = tag.partition("@")
    return name, digest or None


def served_image(release: Release) -> str:
    """The image the release serves its users: the app's, a canary's stable track, or a blue-green release's active
    color (its images()' "app")."""
    images = release.images()
    return images.get("app") or images.get("stable") or ""


def record(release: Release, verification: dict[str, Any] | None) -> dict[str, Any]:
    image = served_image(release)
    digest = image.split("@", 1)[1] if "@" in image else None
    verified = verification if verification and verification.get("image") == image else MANUAL
    config: dict[str, Any] = {"strategy": release.strategy, "tags": release.tags(), "replicas": release.replica_counts()}
    if release.strategy == "BlueGreen":
        config["activeColor"] = release.active
    return {
        "image": image,
        "digest": digest,
        "config": config,
        "verification": dict(verified),
    }


def release_records(config: StackConfig) -> dict[str, dict[str, Any]]:
    """The `releaseRecords` output of a stack: one record per release."""
    return {release.name: record(release, config.verification.get(release.name)) for release in config.releases}
