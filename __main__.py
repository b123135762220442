"""app-update: Recreate, RollingUpdate, Canary and BlueGreen releases behind LoadBalancer Services.

Only wiring here: validated config in, components out.
"""

import pulumi
import pulumi_kubernetes as k8s

from components.blue_green import BlueGreenPair
from components.canary_pair import CanaryPair
from components.cluster import KubeconfigCluster, KubeconfigClusterArgs
from components.pod_template import ReleaseContext
from components.recreate import RecreateDeployment
from components.release import ReleaseArgs
from components.rolling import RollingDeployment
from components.service import READINESS_GATE_LABEL
from components.stack_config import load_stack_config
from model.release_record import release_records

config = load_stack_config()

if config.cluster.mode == "eks":
    from components.eks import EksCluster, EksClusterArgs

    cluster = EksCluster("cluster", EksClusterArgs(cluster=config.cluster, stack=config.stack, region=config.region,
                                                   profile=config.aws_profile, role_arn=config.aws_role_arn))
    pulumi.export("kubeconfig", cluster.kubeconfig)
else:
    cluster = KubeconfigCluster("cluster", KubeconfigClusterArgs(cluster=config.cluster))

namespace = k8s.core.v1.Namespace(
    "namespace",
    metadata=k8s.meta.v1.ObjectMetaArgs(
        name=config.namespace,
        labels={"app.kubernetes.io/part-of": "app-update", "app.kubernetes.io/managed-by": "pulumi",
                # With the AWS Load Balancer Controller serving IP targets, pods get a readiness gate that
                # holds a rolling update until the load balancer sees each new pod healthy.
                **({READINESS_GATE_LABEL: "enabled"} if config.cluster.load_balancer_controller else {})},
    ),
    # On EKS, workloads wait for nodes (and the load balancer controller) to exist.
    opts=pulumi.ResourceOptions(provider=cluster.provider, depends_on=cluster.ready),
)
context = ReleaseContext(
    stack=config.stack,
    namespace=namespace.metadata.name,
    provider=cluster.provider,
    await_load_balancer=config.await_load_balancer,
    service_annotations=cluster.service_annotations,
    kubernetes_version=config.cluster.kubernetes_version,
)

COMPONENTS = {"Recreate": RecreateDeployment, "RollingUpdate": RollingDeployment, "Canary": CanaryPair,
              "BlueGreen": BlueGreenPair}
releases = {}
for release in config.releases:
    component_class = COMPONENTS[release.strategy]
    # A strategy change renames the component's type: the aliases keep its objects (and their
    # children, which share names across strategies) the same resources, updated in place.
    aliases = [pulumi.Alias(type_=other.TYPE) for other in COMPONENTS.values() if other is not component_class]
    component = component_class(release.name, ReleaseArgs(release=release, context=context),
                                opts=pulumi.ResourceOptions(depends_on=[namespace], aliases=aliases))
    releases[release.name] = {
        "strategy": release.strategy,
        "address": component.address,
        "images": release.images(),
        "tags": release.tags(),
        "replicas": release.replica_counts(),
        "service": release.service_name,
        "traffic": release.traffic if release.strategy == "Canary" else None,
        "addressSource": release.address_source(),
        "requestedWeight": release.requested_weight,
        "effectiveWeight": release.effective_weight,
    }
    if isinstance(component, BlueGreenPair):
        releases[release.name].update({
            "previewAddress": component.preview_address,
            "previewService": release.preview_service_name,
            "activeColor": release.active,
            "previewCheck": release.preview_check.to_json() if release.preview_check else None,
        })

pulumi.export("namespace", namespace.metadata.name)
pulumi.export("clusterMode", config.cluster.mode)
pulumi.export("releases", releases)
# Per release: the image by digest, its config and how it got here (model/release_record.py).
pulumi.export("releaseRecords", release_records(config))
