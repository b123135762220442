"""What the cluster tests do to a real API server: render the project's objects, server-side apply them through the
official client (field manager `app-update`, dry run first), and watch what the controllers make of them.

Waiting is always a watch stream on the API (from the resourceVersion of a list, so nothing is missed), bounded by
a generous timeout that only a broken control plane reaches: never a fixed sleep. What the server answers is read
as plain JSON (dicts, as the API spells its fields): the client's model objects would cost the test process more
CPU than the control plane spends answering.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

FIELD_MANAGER = "app-update"
NO_PODS = "app-update-test-no-pods"
WATCH_TIMEOUT = 60  # seconds; a watch that reaches it fails the test (the control plane is broken or stuck)


class WatchTimeout(AssertionError):
    pass


def preview_manifests(stack: str, out_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`python -m rollout preview <stack> --json --out DIR` in this process: the objects it wrote, in the order of
    its numbered files (its apply order), and its plan."""
    from rollout.cli import main

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["preview", stack, "--json", "--out", str(out_dir)])
    assert code == 0, f"rollout preview {stack} exited {code}"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the safe loader's rules, parsed by libyaml
    objects = [yaml.load(path.read_text(), Loader=loader)  # noqa: S506 (a safe loader)
               for path in sorted(out_dir.glob("[0-9]*-*.yaml"))]
    return objects, json.loads(stdout.getvalue())


# The objects rendered so far, by stack and settings: one config, one program run in a process (shared_run).
_RENDERED: dict[str, list[dict[str, Any]]] = {}


def render(settings: dict[str, Any], stack: str = "test") -> list[dict[str, Any]]:
    """The Kubernetes objects the program registers for these settings, as `preview` writes them (apply order).
    Shared, as the program's run is (tests/conftest.py shared_run): read them, or change copies (into_namespace)."""
    from preview import manifests
    from tests.conftest import shared_run

    key = json.dumps([stack, settings], sort_keys=True)
    if key not in _RENDERED:
        run = shared_run(stack, settings)
        assert run.error is None, run.error
        _RENDERED[key] = [m.obj for m in manifests.collect(run)]
    return _RENDERED[key]


def fresh_namespace(api_client, *, pods: bool = True) -> str:
    """A new namespace, named as no other test's is; left in place (tests/cluster/conftest.py says why).

    `pods=False`: a ResourceQuota of zero pods in it (NO_PODS), for tests that read what the API server accepts and
    keeps of the objects they apply, never what runs. Their Deployments and ReplicaSets are still made, updated and
    given status by the real controllers, but the ReplicaSets' pods are refused at admission: no pod to schedule,
    make Ready, count in EndpointSlices and disruption budgets, and delete at the next update (most of the control
    plane's work, for nothing those tests read). The ReplicaSet controller retries a refused pod with exponential
    back-off (about a dozen tries in a minute): cheaper requests (nothing stored, nothing watched) than pods' lives."""
    import uuid

    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": name}})
    if not pods:
        core.create_namespaced_resource_quota(name, {"metadata": {"name": NO_PODS}, "spec": {"hard": {"pods": "0"}}})
    return name


def into_namespace(objects: Iterable[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Copies of the objects, moved into `namespace` (a fresh one per test); the stack's Namespace objects are
    dropped."""
    moved = []
    for obj in objects:
        if obj["kind"] == "Namespace":
            continue
        obj = copy.deepcopy(obj)
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
        moved.append(obj)
    return moved


def _as_json(_client, data: dict[str, Any]) -> dict[str, Any]:
    """The DynamicClient's serializer for answers read as they came (not wrapped in its ResourceInstance)."""
    return data


class Applier:
    """Server-side apply through the official client's DynamicClient, as `kubectl apply --server-side` does."""

    def __init__(self, api_client, cache_file: Path):
        from kubernetes.dynamic import DynamicClient

        self.dynamic = DynamicClient(api_client, cache_file=str(cache_file))
        self._resources: dict[tuple[str, str], Any] = {}

    def resource(self, api_version: str, kind: str):
        if (api_version, kind) not in self._resources:
            self._resources[api_version, kind] = self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[api_version, kind]

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False, force: bool = False) -> dict[str, Any]:
        metadata = obj["metadata"]
        return self._apply(self.resource(obj["apiVersion"], obj["kind"]), metadata["name"], metadata.get("namespace"),
                           json.dumps(obj).encode(), dry_run=dry_run, force=force)

    def apply_yaml(self, text: str, api_version: str, kind: str, name: str) -> dict[str, Any]:
        """A cluster-scoped object's YAML document applied as it is: the API server parses it, which for a large
        one (an upstream CRD) costs far less CPU than parsing it here."""
        return self._apply(self.resource(api_version, kind), name, None, text.encode())

    def _apply(self, resource, name: str, namespace: str | None, body: bytes, *, dry_run: bool = False,
               force: bool = False) -> dict[str, Any]:
        """The apply PATCH (`application/apply-patch+yaml`, which JSON is too) with the body as given: the
        client's own serialization would walk every value of the object again in Python. Its charset parameter
        keeps the client from sending the body as one JSON string; the server ignores it."""
        return self.dynamic.request("patch", resource.path(name=name, namespace=namespace), body=body,
                                    content_type="application/apply-patch+yaml; charset=utf-8",
                                    field_manager=FIELD_MANAGER, dry_run="All" if dry_run else None,
                                    force_conflicts=True if force else None, serializer=_as_json)

    def apply_all(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every object with dryRun=All first (nothing persisted), then for real; returns what the server kept."""
        for obj in objects:
            self.apply(obj, dry_run=True)
        return [self.apply(obj) for obj in objects]

    def get(self, obj: dict[str, Any]) -> dict[str, Any]:
        resource = self.resource(obj["apiVersion"], obj["kind"])
        return resource.get(name=obj["metadata"]["name"], namespace=obj["metadata"].get("namespace"),
                            serializer=_as_json)

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


def watch_until(list_call: Callable[..., Any], done: Callable[[dict[str, dict[str, Any]]], bool], what: str,
                timeout: int = WATCH_TIMEOUT, **list_kwargs: Any) -> dict[str, dict[str, Any]]:
    """List, then watch from that list's resourceVersion, until `done(objects by name)` holds; returns that map.

    `list_call` is a typed client's list method (e.g. `CoreV1Api.list_namespaced_pod` with namespace=...);
    objects are the API's JSON as dicts (deleted ones are removed)."""
    from kubernetes import watch

    listing = json.loads(list_call(_preload_content=False, **list_kwargs).data)
    objects = {item["metadata"]["name"]: item for item in listing["items"]}
    if done(objects):
        return objects
    stream = watch.Watch()
    for event in stream.stream(list_call, resource_version=listing["metadata"]["resourceVersion"],
                               timeout_seconds=timeout, deserialize=False, **list_kwargs):
        item = event["object"]
        if event["type"] == "DELETED":
            objects.pop(item["metadata"]["name"], None)
        else:
            objects[item["metadata"]["name"]] = item
        if done(objects):
            stream.stop()
            return objects
    raise WatchTimeout(f"timed out ({timeout} s) watching for {what}: last seen {sorted(objects)}")


def condition_true(obj: dict[str, Any], kind: str) -> bool:
    """The object's status has a condition of this type with status True (an API object as JSON)."""
    return any(c["type"] == kind and c["status"] == "True" for c in (obj.get("status") or {}).get("conditions") or [])


def pod_ready(pod: dict[str, Any]) -> bool:
    """Ready and not being deleted (a pod as JSON)."""
    return not pod["metadata"].get("deletionTimestamp") and condition_true(pod, "Ready")
