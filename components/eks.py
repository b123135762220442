"""EksCluster: a production-grade EKS cluster from pulumi-aws resources.

Built from plain pulumi-aws resources rather than the pulumi-eks package, so every piece is
visible to `pulumi preview`, to policy checks and to the offline tests. What it makes:
a VPC across 2-3 zones (public subnets for load balancers, private ones for nodes), NAT,
least-privilege IAM roles, the control plane (API authentication, audit logging, Secrets
encrypted with a rotating KMS key, a public endpoint limited to given CIDRs), a managed node
group that upgrades one node at a time, an OIDC provider for IAM roles for service accounts,
a kubeconfig that gets tokens from `aws eks get-token`, and optionally the AWS Load Balancer
Controller.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.lb_controller_policy import policy_document
from components.service import NLB_ANNOTATIONS
from model.config import Cluster
from model.subnets import subnet_plan

LB_CONTROLLER_CHART = "aws-load-balancer-controller"
LB_CONTROLLER_CHART_VERSION = "1.16.0"  # controller v2.16.0: the first with weighted NLB target groups
LB_CONTROLLER_REPO = "https://aws.github.io/eks-charts"
LB_CONTROLLER_SERVICE_ACCOUNT = "aws-load-balancer-controller"
CLUSTER_ADMIN_POLICY = "cluster-access-policy/AmazonEKSClusterAdminPolicy"
CONTROL_PLANE_LOGS = ["api", "audit", "authenticator"]


def _assume_role_policy(service: str) -> str:
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    })


def kubeconfig_document(cluster_name: str, endpoint: str, ca_data: str, region: str, profile: str | None = None,
                        role_arn: str | None = None) -> str:
    """A kubeconfig that fetches short-lived tokens from `aws eks get-token`: no static credentials.

    The token carries the identity the AWS provider deploys with (its profile, the role it
    assumes), the one the access entries make cluster admin; not whatever the CLI defaults to.
    """
    args = ["--region", region, "eks", "get-token", "--cluster-name", cluster_name, "--output", "json"]
    if role_arn:
        args += ["--role-arn", role_arn]
    user: dict = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws", "args": args,
                  "interactiveMode": "Never"}
    if profile:
        user["env"] = [{"name": "AWS_PROFILE", "value": profile}]
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": user}}],
    })


@dataclass(frozen=True)
class EksClusterArgs:
    cluster: Cluster
    stack: str
    region: str
    profile: str | None = None  # aws:profile: the kubeconfig's get-token uses it too
    role_arn: str | None = None  # the role the AWS provider assumes (aws:assumeRoles), likewise


class EksCluster(pulumi.ComponentResource):
    provider: k8s.Provider
    kubeconfig: pulumi.Output[str]
    service_annotations: dict[str, str]
    ready: list[pulumi.Resource]

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("app-update:index:EksCluster", name, None, opts)
        spec = args.cluster
        child = pulumi.ResourceOptions(parent=self)
        tags = {"app-update:stack": args.stack, "managed-by": "pulumi", **spec.tags}
        cluster_name = f"app-update-{args.stack}"
        partition = aws.get_partition_output().partition
        if spec.availability_zone_names:
            zone_names: pulumi.Input[list[str]] = list(spec.availability_zone_names)
        else:
            # Local and Wavelength Zones are opt-in (and sort first); EKS refuses them.
            zone_names = aws.get_availability_zones_output(
                state="available",
                filters=[aws.GetAvailabilityZonesFilterArgs(name="opt-in-status", values=["opt-in-not-required"])],
            ).names

        # ---- network ------------------------------------------------------------------------
        self.vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=spec.vpc_cidr, enable_dns_hostnames=True,
                               enable_dns_support=True, tags={**tags, "Name": cluster_name}, opts=child)
        public_cidrs, private_cidrs = subnet_plan(spec.vpc_cidr, spec.availability_zones)
        shared_tag = {f"kubernetes.io/cluster/{cluster_name}": "shared"}
        self.public_subnets, self.private_subnets = [], []
        for i, (public_cidr, private_cidr) in enumerate(zip(public_cidrs, private_cidrs, strict=True)):
            zone = pulumi.Output.from_input(zone_names).apply(lambda names, i=i: names[i])
            self.public_subnets.append(aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=public_cidr, availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, **shared_tag, "Name": f"{cluster_name}-public-{i}", "kubernetes.io/role/elb": "1"},
                opts=child))
            self.private_subnets.append(aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=self.vpc.id, cidr_block=private_cidr, availability_zone=zone,
                tags={**tags, **shared_tag, "Name": f"{cluster_name}-private-{i}",
                      "kubernetes.io/role/internal-elb": "1"},
                opts=child))
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=self.vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public-rt", vpc_id=self.vpc.id, tags=tags, opts=child,
                                       routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)])
        egress: list[pulumi.Resource] = []
        for i, subnet in enumerate(self.public_subnets):
            egress.append(aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=subnet.id,
                                                        route_table_id=public_rt.id, opts=child))
        nat_count = spec.availability_zones if spec.nat_gateways == "perAz" else 1
        self.nat_gateways = []
        for i in range(nat_count):
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
            self.nat_gateways.append(aws.ec2.NatGateway(
                f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=self.public_subnets[i].id, tags=tags,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw])))
        for i, subnet in enumerate(self.private_subnets):
            nat = self.nat_gateways[i % nat_count]
            rt = aws.ec2.RouteTable(f"{name}-private-rt-{i}", vpc_id=self.vpc.id, tags=tags, opts=child,
                                    routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)])
            egress.append(aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=subnet.id,
                                                        route_table_id=rt.id, opts=child))

        # ---- IAM: only the AWS managed policies each role needs ---------------------------
        self.cluster_role = aws.iam.Role(f"{name}-control-plane", assume_role_policy=_assume_role_policy("eks.amazonaws.com"),
                                         tags=tags, opts=child)
        def managed(policy: str) -> pulumi.Output[str]:
            return pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", policy)

        cluster_policies = [aws.iam.RolePolicyAttachment(
            f"{name}-control-plane-eks", role=self.cluster_role.name,
            policy_arn=managed("AmazonEKSClusterPolicy"), opts=child)]
        self.node_role = aws.iam.Role(f"{name}-nodes", assume_role_policy=_assume_role_policy("ec2.amazonaws.com"),
                                      tags=tags, opts=child)
        node_policies = [
            aws.iam.RolePolicyAttachment(f"{name}-nodes-{short}", role=self.node_role.name,
                                         policy_arn=managed(policy), opts=child)
            for short, policy in (("worker", "AmazonEKSWorkerNodePolicy"), ("cni", "AmazonEKS_CNI_Policy"),
                                  ("ecr", "AmazonEC2ContainerRegistryReadOnly"))
        ]

        # ---- control plane -----------------------------------------------------------------
        self.secrets_key = aws.kms.Key(f"{name}-secrets", description=f"{cluster_name} Kubernetes Secrets envelope key",
                                       enable_key_rotation=True, deletion_window_in_days=30, tags=tags, opts=child)
        # EKS writes control-plane logs here; created by the stack so it has a retention and goes with it.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane-logs", name=f"/aws/eks/{cluster_name}/cluster",
            retention_in_days=spec.log_retention_days, tags=tags, opts=child)
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=spec.kubernetes_version,
            role_arn=self.cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=[s.id for s in self.private_subnets + self.public_subnets],
                endpoint_private_access=True,
                endpoint_public_access=True,
                public_access_cidrs=list(spec.endpoint_public_access_cidrs),
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False),
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=self.secrets_key.arn),
                resources=["secrets"],
            ),
            tags=tags,
            # The name is fixed, so a replacement must delete the old cluster first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*cluster_policies, log_group],
                                        delete_before_replace=True),
        )
        # Cluster admins: the principals the config names; without any, whoever runs `pulumi up`
        # (the IAM role behind an assumed-role session).
        if spec.admins:
            admins: list[pulumi.Input[str]] = list(spec.admins)
        else:
            caller = aws.get_caller_identity_output()
            admins = [aws.iam.get_session_context_output(arn=caller.arn).issuer_arn]
        admin_policy_arn = pulumi.Output.concat("arn:", partition, ":eks::aws:", CLUSTER_ADMIN_POLICY)
        admin_policies = []
        for i, principal in enumerate(admins):
            suffix = "" if i == 0 and not spec.admins else f"-{i}"
            admin_entry = aws.eks.AccessEntry(f"{name}-{'admin' if spec.admins else 'deployer'}{suffix}",
                                              cluster_name=self.cluster.name, principal_arn=principal, type="STANDARD",
                                              opts=child)
            admin_policies.append(aws.eks.AccessPolicyAssociation(
                f"{name}-{'admin' if spec.admins else 'deployer'}{suffix}-admin", cluster_name=self.cluster.name,
                principal_arn=principal, policy_arn=admin_policy_arn,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[admin_entry])))

        self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=self.cluster.name,
            # The nodes follow the control plane's Kubernetes version (EKS upgrades them a node at a time).
            version=self.cluster.version,
            node_role_arn=self.node_role.arn,
            subnet_ids=[s.id for s in self.private_subnets],
            instance_types=list(spec.nodes.instance_types),
            capacity_type=spec.nodes.capacity_type,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=spec.nodes.min, desired_size=spec.nodes.desired, max_size=spec.nodes.max),
            # Node upgrades replace one node at a time.
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*node_policies, *egress]),
        )

        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], tags=tags, opts=child)

        # ---- kubeconfig and provider ------------------------------------------------------
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data,
        ).apply(lambda a: kubeconfig_document(a[0], a[1], a[2], args.region, args.profile, args.role_arn)))
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Only a new cluster replaces the provider; a refreshed kubeconfig does not.
            cluster_identifier=self.cluster.arn,
            opts=pulumi.ResourceOptions(parent=self, depends_on=admin_policies),
        )
        self.ready = [self.node_group]

        # ---- AWS Load Balancer Controller ----------------------------------------------
        self.service_annotations = {}
        if spec.load_balancer_controller:
            self.lb_controller = self._load_balancer_controller(name, issuer, cluster_name, args.region, tags, partition)
            self.ready.append(self.lb_controller)
            self.service_annotations = dict(NLB_ANNOTATIONS)

        self.register_outputs({
            "clusterName": self.cluster.name,
            "kubeconfig": self.kubeconfig,
            "vpcId": self.vpc.id,
            "oidcProviderArn": self.oidc_provider.arn,
        })

    def _load_balancer_controller(self, name: str, issuer: pulumi.Output[str], cluster_name: str, region: str,
                                  tags: dict[str, str], partition: pulumi.Output[str]) -> k8s.helm.v3.Release:
        child = pulumi.ResourceOptions(parent=self)
        issuer_host = issuer.apply(lambda url: url.removeprefix("https://"))
        trust = pulumi.Output.all(self.oidc_provider.arn, issuer_host).apply(lambda a: json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": a[0]},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    f"{a[1]}:sub": f"system:serviceaccount:kube-system:{LB_CONTROLLER_SERVICE_ACCOUNT}",
                    f"{a[1]}:aud": "sts.amazonaws.com",
                }},
            }],
        }))
        policy = aws.iam.Policy(f"{name}-lb-controller", policy=partition.apply(policy_document),
                                description="AWS Load Balancer Controller", tags=tags, opts=child)
        role = aws.iam.Role(f"{name}-lb-controller", assume_role_policy=trust, tags=tags, opts=child)
        attachment = aws.iam.RolePolicyAttachment(f"{name}-lb-controller", role=role.name, policy_arn=policy.arn,
                                                  opts=child)
        return k8s.helm.v3.Release(
            f"{name}-lb-controller",
            chart=LB_CONTROLLER_CHART,
            version=LB_CONTROLLER_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=LB_CONTROLLER_REPO),
            namespace="kube-system",
            values={
                "clusterName": cluster_name,
                "region": region,
                "vpcId": self.vpc.id,
                "replicaCount": 2,
                "serviceAccount": {
                    "create": True,
                    "name": LB_CONTROLLER_SERVICE_ACCOUNT,
                    "annotations": {"eks.amazonaws.com/role-arn": role.arn},
                },
            },
            atomic=True,
            opts=pulumi.ResourceOptions(parent=self, provider=self.provider,
                                        depends_on=[self.node_group, attachment]),
        )
