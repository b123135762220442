"""Where the releases run: the Kubernetes provider for a kubeconfig context.

The EKS cluster mode lives in components/eks.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from model.config import Cluster


@dataclass(frozen=True)
class KubeconfigClusterArgs:
    cluster: Cluster


class KubeconfigCluster(pulumi.ComponentResource):
    """An existing cluster reached through the local kubeconfig (kind, minikube, Docker Desktop).

    The provider is explicit so no resource falls back to the ambient default provider.
    """

    provider: k8s.Provider
    service_annotations: dict[str, str]

    def __init__(self, name: str, args: KubeconfigClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("app-update:index:KubeconfigCluster", name, None, opts)
        self.provider = k8s.Provider(
            f"{name}-k8s",
            context=args.cluster.context,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # A kubeconfig cluster gives whatever LoadBalancer it has (kind: none, cloud: in-tree).
        self.service_annotations = {}
        self.ready: list[pulumi.Resource] = []
        self.register_outputs({})
