"""Recreate: every old pod stops before the new ones start (downtime, never two versions)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.release import ReleaseArgs, SingleTrackRelease


class RecreateDeployment(SingleTrackRelease):
    TYPE = "app-update:index:RecreateDeployment"

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None):
        # No rollingUpdate block: the API rejects one with strategy Recreate.
        super().__init__(self.TYPE, name, args,
                         k8s.apps.v1.DeploymentStrategyArgs(type="Recreate"), opts)
