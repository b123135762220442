"""Whether a cluster holds a stack's pods at their peak, above all both colors of a blue-green switch.

Checked offline, from what config knows: each release's pod requests (`resources.requests`) and pod counts, and for
an `eks` cluster its node group's largest size (`cluster.nodes.max`) and instance types. A node's room is the EKS
optimized AMI's (amazon-eks-ami, bootstrap / nodeadm): pods up to the VPC CNI's limit for the instance type
(`eni-max-pods.txt`, without prefix delegation), CPU and memory less kube-reserved (CPU: 6% of the first core, 1%
of the second, 0.5% of the next two, 0.25% of the rest; memory: 11 MiB per pod + 255 MiB) and the 100 MiB hard
eviction threshold; less the system pods every node group runs (aws-node and kube-proxy on each node, two CoreDNS
replicas). The sum is a best case: it ignores how pods pack onto nodes, so a "fits" can still leave a pod pending;
a "does not fit" cannot fit. A kubeconfig cluster's nodes are not in config: nothing is checked offline.

A namespace's ResourceQuota is not in config either: it is read live (operations/live_capacity.py, before
`rollout bluegreen` writes) and checked here with `quota_shortfalls`, against the same per-pod requests (and
limits). No Pulumi import.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from model.quantity import parse_quantity

MIB = Decimal(1024 * 1024)
GIB = 1024 * MIB

# vCPUs, memory (GiB), max pods (the VPC CNI's eni-max-pods.txt) of the instance types node groups commonly use.
INSTANCE_TYPES: dict[str, tuple[int, int, int]] = {
    "t3.small": (2, 2, 11), "t3.medium": (2, 4, 17), "t3.large": (2, 8, 35), "t3.xlarge": (4, 16, 58),
    "t3.2xlarge": (8, 32, 58), "t3a.medium": (2, 4, 17), "t3a.large": (2, 8, 35),
    "m5.large": (2, 8, 29), "m5.xlarge": (4, 16, 58), "m5.2xlarge": (8, 32, 58), "m5.4xlarge": (16, 64, 234),
    "m6i.large": (2, 8, 29), "m6i.xlarge": (4, 16, 58), "m6i.2xlarge": (8, 32, 58),
    "m7i.large": (2, 8, 29), "m7i.xlarge": (4, 16, 58),
    "c5.large": (2, 4, 29), "c5.xlarge": (4, 8, 58), "c6i.large": (2, 4, 29), "c6i.xlarge": (4, 8, 58),
    "r5.large": (2, 16, 29), "r5.xlarge": (4, 32, 58), "r6i.large": (2, 16, 29),
}
# The system pods of an EKS node group and their requests: per node aws-node (25m) and kube-proxy (100m); for the
# cluster two CoreDNS replicas (100m and 70Mi each).
SYSTEM_PODS_PER_NODE, SYSTEM_CPU_PER_NODE = 2, Decimal("0.125")
CLUSTER_SYSTEM_PODS, CLUSTER_SYSTEM_CPU, CLUSTER_SYSTEM_MEMORY = 2, Decimal("0.2"), 140 * MIB


@dataclass(frozen=True)
class Room:
    """Pods and requests: what some pods need, or what nodes hold."""

    pods: int
    cpu: Decimal  # cores
    memory: Decimal  # bytes

    def __add__(self, other: Room) -> Room:
        return Room(self.pods + other.pods, self.cpu + other.cpu, self.memory + other.memory)

    def short_of(self, need: Room) -> list[str]:
        """What `need` lacks here, in words (empty: it fits)."""
        out = []
        if need.pods > self.pods:
            out.append(f"{need.pods} pods > {self.pods}")
        if need.cpu > self.cpu:
            out.append(f"CPU requests {_cores(need.cpu)} > {_cores(self.cpu)}")
        if need.memory > self.memory:
            out.append(f"memory requests {_mib(need.memory)} > {_mib(self.memory)}")
        return out


def _cores(value: Decimal) -> str:
    if value < 1:
        return f"{int(value * 1000)}m"
    return f"{value.normalize():f} core{'' if value == 1 else 's'}"


def _mib(value: Decimal) -> str:
    return f"{int(value / MIB)}Mi"


def defaulted_requests(requests: Mapping[str, str] | None, limits: Mapping[str, str] | None,
                       resources: Collection[str] | None = ("cpu", "memory")) -> dict[str, str]:
    """A container's requests as the API server creates its pods: a request not given takes its limit
    (pkg/apis/core/v1/defaults.go, SetDefaults_Pod), for `resources` (None: every resource). The scheduler and a
    ResourceQuota count CPU and memory, the default; a LimitRange bounds every resource."""
    given = {k: str(v) for k, v in (limits or {}).items() if resources is None or k in resources}
    given.update({k: str(v) for k, v in (requests or {}).items() if resources is None or k in resources})
    return given


def pod_room(requests: Mapping[str, str], pods: int) -> Room:
    """What `pods` pods of these requests need (a request not given counts as 0, as the scheduler counts it)."""
    cpu = parse_quantity(requests["cpu"]) if "cpu" in requests else Decimal(0)
    memory = parse_quantity(requests["memory"]) if "memory" in requests else Decimal(0)
    return Room(pods, (cpu or Decimal(0)) * pods, (memory or Decimal(0)) * pods)


def _reserved_cpu(cores: int) -> Decimal:
    """kube-reserved CPU of the EKS AMI, in cores."""
    steps = ((1, Decimal("0.06")), (1, Decimal("0.01")), (2, Decimal("0.005")))
    reserved, left = Decimal(0), cores
    for count, share in steps:
        taken = min(left, count)
        reserved += taken * share
        left -= taken
    return reserved + left * Decimal("0.0025")


def node_room(instance_type: str) -> Room | None:
    """What one node of this type holds for workloads (None: a type this table does not know)."""
    if instance_type not in INSTANCE_TYPES:
        return None
    cores, memory_gib, max_pods = INSTANCE_TYPES[instance_type]
    memory = memory_gib * GIB - (11 * max_pods + 255) * MIB - 100 * MIB
    return Room(max_pods - SYSTEM_PODS_PER_NODE, cores - _reserved_cpu(cores) - SYSTEM_CPU_PER_NODE, memory)


def node_group_room(instance_types: Iterable[str], nodes: int) -> tuple[Room | None, str]:
    """What `nodes` nodes hold at best, sized by the smallest listed type (a node group may launch any of them), and
    the words for it; None when no listed type is known."""
    known = [(t, room) for t in instance_types if (room := node_room(t)) is not None]
    if not known:
        return None, ""
    smallest, room = min(known, key=lambda item: (item[1].pods, item[1].cpu, item[1].memory))
    total = Room(room.pods * nodes - CLUSTER_SYSTEM_PODS, room.cpu * nodes - CLUSTER_SYSTEM_CPU,
                 room.memory * nodes - CLUSTER_SYSTEM_MEMORY)
    return total, f"{nodes} × {smallest} (cluster.nodes.max)"


# The quota keys that bound what pods request, and how to read a pod's share of each; and those that bound limits.
# `count/pods` is the object-count name of `pods`: the API server's pod evaluator counts both the same way.
QUOTA_KEYS = {"pods": "pods", "count/pods": "pods", "requests.cpu": "cpu", "cpu": "cpu", "requests.memory": "memory",
              "memory": "memory"}
LIMIT_QUOTA_KEYS = {"limits.cpu": "cpu", "limits.memory": "memory"}


# The quota keys for which the API server refuses a pod whose containers do not each set the resource
# (pkg/quota/v1/evaluator/core/pods.go, `validationSet`: "must specify ..."), and where each is set.
REQUIRED_QUOTA_KEYS = {"cpu": ("requests", "cpu"), "requests.cpu": ("requests", "cpu"),
                       "memory": ("requests", "memory"), "requests.memory": ("requests", "memory"),
                       "limits.cpu": ("limits", "cpu"), "limits.memory": ("limits", "memory")}


def quota_unset_keys(hard: Mapping[str, str], requests: Mapping[str, str], limits: Mapping[str, str]) -> list[str]:
    """The keys of a quota's `hard` that a pod with these requests and limits (as admitted: after the API server's
    defaulting and a LimitRange's defaults) does not set: the quota's admission refuses such a pod outright."""
    given = {"requests": requests, "limits": limits}
    return [key for key, (where, name) in REQUIRED_QUOTA_KEYS.items() if key in hard and name not in given[where]]


def quota_shortfalls(hard: Mapping[str, str], used: Mapping[str, str], extra: Room,
                     limits: Room | None = None) -> list[str]:
    """A ResourceQuota's `status.hard`/`status.used` against `extra` more pods (a new color): one line per key that
    would be exceeded (the API server would refuse the new color's pods, and its Deployment would never be ready).
    `limits`: the same pods' limits, checked against `limits.cpu`/`limits.memory` (None: those keys are not)."""
    out = []
    keys = [(key, what, extra) for key, what in QUOTA_KEYS.items()]
    if limits is not None:
        keys += [(key, what, limits) for key, what in LIMIT_QUOTA_KEYS.items()]
    for key, what, need in keys:
        if key not in hard:
            continue
        limit = parse_quantity(str(hard[key]))
        now = parse_quantity(str(used.get(key, "0"))) or Decimal(0)
        if limit is None:
            continue
        more = Decimal(need.pods) if what == "pods" else need.cpu if what == "cpu" else need.memory
        if now + more > limit:
            shown = (lambda v: f"{int(v)}") if what == "pods" else _cores if what == "cpu" else _mib
            out.append(f"{key}: {shown(now)} used + {shown(more)} for the new color > {shown(limit)} hard")
    return out
