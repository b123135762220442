"""BlueGreen: two complete colors of one app, an active Service and a preview Service.

Deployments `<release>-blue` and `<release>-green` (a color absent from config has none) run the pod template of
every strategy, with the label `version: blue|green`, which each Deployment's selector includes, so neither adopts
the other's pods (no image tag in a selector: a new tag rolls a color in place). The active Service (`serviceName`)
selects the release's pods of the active color, the preview Service (`previewServiceName`, default
`<serviceName>-preview`) those of the idle color; both are LoadBalancers and both always exist, so the switch
(`active: green`) is one update that changes the two Services' selectors and nothing else: no Deployment changes
and no pod starts, which is what makes `rollout undo` inside the scale-down window instant.

Order within an update: the idle color's Deployment comes after the preview Service in front of its pods (as every
strategy's: the AWS Load Balancer Controller's readiness gates go into pods created after their Service); the active
Service comes after the active color's Deployment, so a release that becomes BlueGreen (from RollingUpdate, whose
Service it keeps) or a first `pulumi up` never points the active Service at a color whose pods are not ready.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from components.pod_template import COLOR_LABEL, deployment, rolling_strategy, selector_labels
from components.release import ReleaseArgs
from components.service import service, service_address
from model.config import Release
from model.config_models import COLORS

__all__ = ["COLOR_LABEL", "BlueGreenPair", "color_selector"]

# Which Service of a blue-green release this is (`active` or `preview`): the policy pack reads it. Neither changes
# on a switch (the active Service stays the active one; only the selectors change).
ROLE_ANNOTATION = "app-update/blue-green"
# On the active Service: the release's previewCheck as JSON (what `rollout bluegreen` judges before the switch);
# the policy pack requires it on protected stacks.
PREVIEW_CHECK_ANNOTATION = "app-update/preview-check"


def color_selector(release: Release, color: str) -> dict[str, str]:
    """What a color's Deployment and the Service in front of it select: the release's pods of that color."""
    return selector_labels(release, color=color)


def active_annotations(release: Release) -> dict[str, str]:
    annotations = {ROLE_ANNOTATION: "active"}
    if release.preview_check is not None:
        check = release.preview_check
        annotations[PREVIEW_CHECK_ANNOTATION] = json.dumps({"interval": check.interval, "path": check.path},
                                                           separators=(",", ":"))
    return annotations


class BlueGreenPair(pulumi.ComponentResource):
    """Blue and green Deployments of one release behind an active and a preview Service."""

    TYPE = "app-update:index:BlueGreenPair"
    address: pulumi.Output[str]
    preview_address: pulumi.Output[str]

    def __init__(self, name: str, args: ReleaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, None, opts)
        release, context = args.release, args.context
        assert release.active is not None and release.idle is not None and release.preview_service_name is not None
        active, idle = release.active, release.idle
        strategy = rolling_strategy(release)
        self.deployments: dict[str, k8s.apps.v1.Deployment] = {}

        def color_deployment(color: str, after: list[pulumi.Resource]) -> None:
            track = release.colors[color]
            if track is None:  # never deployed: no Deployment (the preview Service selects no pod)
                return
            self.deployments[color] = deployment(
                f"{name}-{color}", object_name=f"{release.name}-{color}", release=release, context=context,
                tag=track.tag, replicas=track.replicas, strategy=strategy, parent=self, depends_on=after, color=color)

        self.preview_service = service(
            f"{name}-preview-service", object_name=release.preview_service_name, release=release, context=context,
            selector=color_selector(release, idle), parent=self, annotations={ROLE_ANNOTATION: "preview"},
        )
        color_deployment(idle, [self.preview_service])
        color_deployment(active, [])
        self.active_service = service(
            f"{name}-service", object_name=release.service_name, release=release, context=context,
            selector=color_selector(release, active), parent=self, annotations=active_annotations(release),
            depends_on=[self.deployments[active]] if active in self.deployments else None,
        )
        self.address = service_address(self.active_service)
        self.preview_address = service_address(self.preview_service)
        self.images = release.images()
        self.register_outputs({
            "address": self.address, "previewAddress": self.preview_address, "activeColor": active,
            "images": self.images, "colors": [c for c in COLORS if c in self.deployments],
        })
