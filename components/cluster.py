"""Where the releases run: the Kubernetes provider for a kubeconfig context.

The EKS cluster mode lives in components/eks.py.

What the provider is given, and so what the state records as its inputs, is the stack's
`cluster.context` (when set) and nothing of the operator's machine. pulumi-kubernetes' Python SDK
fills an unset `kubeconfig` from $KUBECONFIG while the Provider is constructed
(pulumi_kubernetes/provider.py: `kubeconfig = _utilities.get_env('KUBECONFIG')`), and the engine
records it: one operator's path in everyone's state, a provider diff for the next operator, and
on their machine a path that does not exist, which the provider then tries to parse as kubeconfig
text (the cluster becomes "unreachable"). So the program constructs the Provider without it. The
provider plugin, a process the `pulumi` CLI starts with its own environment, then finds the
kubeconfig itself as kubectl does (client-go's default loading rules: the files in $KUBECONFIG,
else ~/.kube/config), and `context` picks the context in it. Credentials never pass through the
program or the state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from model.config import Cluster

# The variable the SDK would copy into the provider's inputs (and that the provider plugin reads itself).
KUBECONFIG_VARIABLE = "KUBECONFIG"


@contextmanager
def kubeconfig_left_to_the_provider() -> Iterator[None]:
    """While a Provider is constructed, $KUBECONFIG is not there for the SDK to copy into its inputs.
    Only this program's process is touched: the provider plugin keeps the CLI's environment."""
    saved = os.environ.pop(KUBECONFIG_VARIABLE, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[KUBECONFIG_VARIABLE] = saved


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
        with kubeconfig_left_to_the_provider():
            self.provider = k8s.Provider(
                f"{name}-k8s",
                context=args.cluster.context,
                opts=pulumi.ResourceOptions(parent=self),
            )
        # A kubeconfig cluster gives whatever LoadBalancer it has (kind: none, cloud: in-tree).
        self.service_annotations = {}
        self.ready: list[pulumi.Resource] = []
        self.register_outputs({})
