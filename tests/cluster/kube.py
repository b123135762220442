"""What the cluster tests do to a real API server: render the project's objects, server-side apply them through the
official client (field manager `app-update`, dry run first), and watch what the controllers make of them.

Waiting is always a watch stream on the API (from the resourceVersion of a list, so nothing is missed), bounded by
a generous timeout that only a broken control plane reaches: never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "app-update"
WATCH_TIMEOUT = 60  # seconds; a watch that reaches it fails the test (the control plane is broken or stuck)


class WatchTimeout(AssertionError):
    pass


def preview_manifests(stack: str, out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`python -m rollout preview <stack> --json --out DIR` in this process: the objects it wrote, in the order of
    its numbered files (its apply order), and its plan."""
    import json

    from rollout.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["preview", stack, "--json", "--out", str(out_dir)])
    assert code == 0, f"rollout preview {stack} exited {code}"
    objects = [yaml.safe_load(path.read_text()) for path in sorted(out_dir.glob("[0-9]*-*.yaml"))]
    return objects, json.loads(stdout.getvalue())


def render(settings: dict[str, Any], stack: str = "test") -> list[dict[str, Any]]:
    """The Kubernetes objects the program registers for these settings, as `preview` writes them (apply order)."""
    from preview import manifests
    from tests.conftest import shared_run

    run = shared_run(stack, settings)
    assert run.error is None, run.error
    return [copy.deepcopy(m.obj) for m in manifests.collect(run)]


def into_namespace(objects: Iterable[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """The objects moved into `namespace` (a fresh one per test); the stack's Namespace objects are dropped."""
    moved = []
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        obj = copy.deepcopy(obj)
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
        moved.append(obj)
    return moved


class Applier:
    """Server-side apply through the official client's DynamicClient, as `kubectl apply --server-side` does."""

    def __init__(self, api_client, cache_file: Path):
        from kubernetes.dynamic import DynamicClient

        self.dynamic = DynamicClient(api_client, cache_file=str(cache_file))

    def resource(self, api_version: str, kind: str):
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False, force: bool = False) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"field_manager": FIELD_MANAGER}
        if dry_run:
            kwargs["dry_run"] = "All"
        if force:
            kwargs["force_conflicts"] = True
        resource = self.resource(obj["apiVersion"], obj["kind"])
        return resource.server_side_apply(body=obj, **kwargs).to_dict()

    def apply_all(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every object with dryRun=All first (nothing persisted), then for real; returns what the server kept."""
        for obj in objects:
            self.apply(obj, dry_run=True)
        return [self.apply(obj) for obj in objects]

    def get(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        return resource.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace")).to_dict()

    def delete(self, obj: dict[str, Any]) -> None:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        resource.delete(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"))


def missing_fields(sent: Any, kept: Any, path: str = "") -> list[str]:
    """Where the object the server kept lacks or changed a value that was sent (its defaults may add more). A zero
    value sent and absent from what was kept is the same value (the API's `omitempty`)."""
    if kept is None and sent in (0, False, "", [], {}):
        return []
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [f"{path}: sent an object, kept {kept!r}"]
        return [problem for key, value in sent.items()
                for problem in missing_fields(value, kept.get(key), f"{path}.{key}")]
    if isinstance(sent, list):
        if not isinstance(kept, list) or len(kept) != len(sent):
            return [f"{path}: sent {sent!r}, kept {kept!r}"]
        return [problem for i, (a, b) in enumerate(zip(sent, kept, strict=True)) for problem in missing_fields(a, b, f"{path}[{i}]")]
    return [] if sent == kept else [f"{path}: sent {sent!r}, kept {kept!r}"]


def watch_until(list_call: Callable[..., Any], done: Callable[[dict[str, Any]], bool], what: str,
                timeout: int = WATCH_TIMEOUT, **list_kwargs: Any) -> dict[str, Any]:
    """List, then watch from that list's resourceVersion, until `done(objects by name)` holds; returns that map.

    `list_call` is a typed client's list method (e.g. `CoreV1Api.list_namespaced_pod` with namespace=...);
    objects are the client's models (deleted ones are removed)."""
    from kubernetes import watch

    listing = list_call(**list_kwargs)
    objects = {item.metadata.name: item for item in listing.items}
    if done(objects):
        return objects
    stream = watch.Watch()
    for event in stream.stream(list_call, resource_version=listing.metadata.resource_version,
                               timeout_seconds=timeout, **list_kwargs):
        item = event["object"]
        if event["type"] == "DELETED":
            objects.pop(item.metadata.name, None)
        else:
            objects[item.metadata.name] = item
        if done(objects):
            stream.stop()
            return objects
    raise WatchTimeout(f"timed out ({timeout} s) watching for {what}: last seen {sorted(objects)}")


def pod_ready(pod) -> bool:
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
