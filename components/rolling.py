"""RollingUpdate: pods are replaced a few at a time within maxSurge and maxUnavailable."""

from __future__ import annotations

import pulumi

from components.pod_template import rolling_strategy
from components.release import ReleaseArgs, SingleTrackRelease


class RollingDeployment(SingleTrackRelease):
    TYPE = "app-update:index:RollingDeployment"

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, args, rolling_strategy(args.release), opts)
