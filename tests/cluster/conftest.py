"""Fixtures of the tests that talk to a real control plane (tests/cluster/controlplane.py).

`control_plane` (package): etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok with three fake
nodes in three zones, started once per test process for this directory's tests and stopped when they end, whatever
happens. Not built here
(`make controlplane` builds it): outside CI the tests skip with one line saying so; under CI=true they fail.
`kube` (package): what a test of the project's live reads needs, a kubeconfig path and an `ApiClient` on it.
`namespace`: a fresh namespace per test (one that refuses pods for a test marked `no_pods`), left in place: the
control plane's end removes it with everything else.
Deleting it during the run would cost the namespace controller a sweep over every resource type (the CRDs' too)
and the controllers a deletion per pod, for nothing a test reads.

The tests of this directory live in one file (test_cluster.py): the suite runs `--dist loadfile`, so one file is
one xdist worker and one control plane. A test of another file here would start a second one in the other worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.cluster import controlplane
from tests.cluster.kube import fresh_namespace


class Kube(NamedTuple):
    kubeconfig: Path
    api_client: object  # kubernetes.client.ApiClient (imported lazily: the rest of the suite does not need it)


@pytest.hookimpl(trylast=True)  # after tests/conftest.py's order: this directory's file goes first
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The cluster file is the longest (the control plane's start-up, then watched updates): first, it runs while
    the other worker takes the rest of the suite file by file."""
    here = Path(__file__).parent
    items.sort(key=lambda item: item.path.parent != here)  # stable: everything else keeps its order


# Package-scoped, not session-scoped: the control plane stops once this directory's tests end, not when the
# worker's whole share of the suite does (idle, its kept namespaces cost ~0.1 CPU-s a second, taken from the tests
# that run after these on the same two cores).
@pytest.fixture(scope="package")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    reason = controlplane.unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    plane = controlplane.ControlPlane(tmp_path_factory.mktemp("controlplane"))
    try:
        try:
            plane.start()
        except controlplane.ControlPlaneFailed as error:
            pytest.fail(f"the test control plane did not start: {error}", pytrace=False)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="package")
def kube(control_plane: controlplane.ControlPlane) -> Iterator[Kube]:
    """A kubeconfig (a token with cluster-admin rights, the fixture's own CA) and an ApiClient on it."""
    api_client = control_plane.api_client()
    try:
        yield Kube(control_plane.kubeconfig, api_client)
    finally:
        api_client.close()


@pytest.fixture
def namespace(kube: Kube, request: pytest.FixtureRequest) -> str:
    """A test marked `no_pods` gets a namespace where the controllers' pods are refused (kube.fresh_namespace)."""
    return fresh_namespace(kube.api_client, pods=request.node.get_closest_marker("no_pods") is None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "no_pods: the test's namespace refuses pods (it reads what the API server "
                                       "keeps of the objects applied, never what runs)")
