"""What Recreate and RollingUpdate releases share: one Deployment behind one LoadBalancer."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.pod_template import ReleaseContext, deployment, selector_labels
from components.service import service, service_address
from model.config import Release


@dataclass(frozen=True)
class ReleaseArgs:
    """Typed arguments of a release component."""

    release: Release
    context: ReleaseContext


class SingleTrackRelease(pulumi.ComponentResource):
    """A Deployment of one image tag and the LoadBalancer Service in front of it."""

    deployment: k8s.apps.v1.Deployment
    service: k8s.core.v1.Service
    address: pulumi.Output[str]

    def __init__(self, type_token: str, name: str, args: ReleaseArgs,
                 strategy: k8s.apps.v1.DeploymentStrategyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(type_token, name, None, opts)
        release, context = args.release, args.context
        # The Service first: pods created after it get the load balancer controller's readiness gates.
        self.service = service(
            f"{name}-service", object_name=release.service_name, release=release, context=context,
            selector=selector_labels(release), parent=self,
        )
        self.deployment = deployment(
            f"{name}-deployment", object_name=release.name, release=release, context=context,
            tag=release.tag, replicas=release.replicas, strategy=strategy, parent=self, depends_on=[self.service],
        )
        self.address = service_address(self.service)
        self.image = pulumi.Output.from_input(release.images()["app"])
        self.deployment_name = self.deployment.metadata.name
        self.register_outputs({
            "address": self.address, "image": self.image, "deploymentName": self.deployment_name,
        })
