"""What the AWS provider would hand back for the resources the program creates, for offline runs."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

ACCOUNT = "123456789012"


def _hex(seed: str, length: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:length]


# type token → (id prefix, ARN service, ARN resource prefix)
_IDS = {
    "aws:ec2/vpc:Vpc": ("vpc-", "ec2", "vpc/"),
    "aws:ec2/subnet:Subnet": ("subnet-", "ec2", "subnet/"),
    "aws:ec2/internetGateway:InternetGateway": ("igw-", "ec2", "internet-gateway/"),
    "aws:ec2/routeTable:RouteTable": ("rtb-", "ec2", "route-table/"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("rtbassoc-", None, None),
    "aws:ec2/eip:Eip": ("eipalloc-", "ec2", "elastic-ip/"),
    "aws:ec2/natGateway:NatGateway": ("nat-", "ec2", "natgateway/"),
    "aws:kms/key:Key": ("", "kms", "key/"),
}


def new_resource(typ: str, name: str, inputs: dict[str, Any], stack: str, region: str) -> tuple[str, dict[str, Any]]:
    state = dict(inputs)
    seed = f"{stack}/{typ}/{name}"
    if typ in _IDS:
        prefix, service, arn_prefix = _IDS[typ]
        rid = prefix + _hex(seed, 17) if prefix else f"{_hex(seed, 8)}-{_hex(seed + 'k', 4)}-4{_hex(seed + 'l', 3)}-8{_hex(seed + 'm', 3)}-{_hex(seed + 'n', 12)}"
        if service:
            state["arn"] = f"arn:aws:{service}:{region}:{ACCOUNT}:{arn_prefix}{rid}"
        if typ == "aws:kms/key:Key":
            state["keyId"] = rid
        if typ == "aws:ec2/eip:Eip":
            state["publicIp"] = f"203.0.113.{int(_hex(seed, 2), 16) % 254 + 1}"
        return rid, state
    if typ == "aws:iam/role:Role" or typ == "aws:iam/policy:Policy":
        kind = "role" if typ.endswith("Role") else "policy"
        role_name = inputs.get("name") or f"{name}-{_hex(seed, 7)}"
        state.update(name=role_name, arn=f"arn:aws:iam::{ACCOUNT}:{kind}/{role_name}", uniqueId=f"AROA{_hex(seed, 17).upper()}")
        return role_name, state
    if typ == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        return f"{inputs.get('role')}-{_hex(seed, 8)}", state
    if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
        host = str(inputs.get("url", "")).removeprefix("https://")
        state["arn"] = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host}"
        return state["arn"], state
    if typ == "aws:eks/cluster:Cluster":
        cluster = inputs.get("name") or f"{name}-{_hex(seed, 7)}"
        ident = _hex(seed, 32).upper()
        ca = base64.b64encode(f"-----BEGIN CERTIFICATE-----\n{ident}\n-----END CERTIFICATE-----\n".encode()).decode()
        state.update(
            name=cluster,
            arn=f"arn:aws:eks:{region}:{ACCOUNT}:cluster/{cluster}",
            endpoint=f"https://{ident}.gr7.{region}.eks.amazonaws.com",
            certificateAuthority={"data": ca},
            identities=[{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{ident}"}]}],
            status="ACTIVE",
            platformVersion="eks.1",
        )
        return cluster, state
    if typ == "aws:eks/nodeGroup:NodeGroup":
        cluster = inputs.get("clusterName", "cluster")
        group = inputs.get("nodeGroupName") or f"{name}-{_hex(seed, 7)}"
        state.update(nodeGroupName=group, status="ACTIVE",
                     arn=f"arn:aws:eks:{region}:{ACCOUNT}:nodegroup/{cluster}/{group}/{_hex(seed, 8)}")
        return f"{cluster}:{group}", state
    if typ in ("aws:eks/accessEntry:AccessEntry", "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        return f"{inputs.get('clusterName')}#{inputs.get('principalArn')}", state
    return f"{name}-{_hex(seed, 8)}", state
