"""What the AWS provider would hand back for the resources the program creates, for offline runs."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

ACCOUNT = "123456789012"

# The canonical hosted zone ids of each region's load balancers, for Route53 alias records, as the
# AWS provider's data sources answer them (aws.elb.getHostedZoneId: classic ELB; aws.lb.getHostedZoneId:
# application and network). Source: the ELB endpoints table of the AWS General Reference
# (https://docs.aws.amazon.com/general/latest/gr/elb.html), as the Terraform AWS provider carries it
# (internal/service/elb/hosted_zone_id_data_source.go, internal/service/elbv2/hosted_zone_id_data_source.go).
ELB_HOSTED_ZONE_IDS = {
    "af-south-1": "Z268VQBMOI5EKX", "ap-east-1": "Z3DQVH9N71FHZ0", "ap-northeast-1": "Z14GRHDCWA56QT",
    "ap-northeast-2": "ZWKZPGTI48KDX", "ap-northeast-3": "Z5LXEXXYW11ES", "ap-south-1": "ZP97RAFLXTNZK",
    "ap-southeast-1": "Z1LMS91P8CMLE5", "ap-southeast-2": "Z1GM3OXH4ZPM65", "ca-central-1": "ZQSVJUPU6J1EY",
    "cn-north-1": "Z1GDH35T77C1KE", "cn-northwest-1": "ZM7IZAIOVVDZF", "eu-central-1": "Z215JYRZR1TBD5",
    "eu-north-1": "Z23TAZ6LKFMNIO", "eu-south-1": "Z3ULH7SSC9OV64", "eu-west-1": "Z32O12XQLNTSW2",
    "eu-west-2": "ZHURV8PSTC4K8", "eu-west-3": "Z3Q77PNBQS71R4", "me-south-1": "ZS929ML54UICD",
    "sa-east-1": "Z2P70J7HTTTPLU", "us-east-1": "Z35SXDOTRQ7X7K", "us-east-2": "Z3AADJGX6KTTL2",
    "us-gov-east-1": "Z166TLBEWOO7G0", "us-gov-west-1": "Z33AYJ8TM3BH4J", "us-west-1": "Z368ELLRRE2KJ0",
    "us-west-2": "Z1H1FL5HABSF5",
}
ALB_HOSTED_ZONE_IDS = {
    **ELB_HOSTED_ZONE_IDS, "ap-south-2": "Z0173938T07WNTVAEPZN", "ap-southeast-3": "Z08888821HLRG5A9ZRTER",
    "eu-central-2": "Z06391101F2ZOEP8P5EB3", "eu-south-2": "Z0956581394HF5D5LXGAP", "me-central-1": "Z08230872XQRWHG2XF6I",
}
NLB_HOSTED_ZONE_IDS = {
    "af-south-1": "Z203XCE67M25HM", "ap-east-1": "Z12Y7K3UBGUAD1", "ap-northeast-1": "Z31USIVHYNEOWT",
    "ap-northeast-2": "ZIBE1TIR4HY56", "ap-northeast-3": "Z1GWIQ4HH19I5X", "ap-south-1": "ZVDDRBQ08TROA",
    "ap-south-2": "Z0711778386UTO08407HT", "ap-southeast-1": "ZKVM4W9LS7TM", "ap-southeast-2": "ZCT6FZBF4DROD",
    "ap-southeast-3": "Z01971771FYVNCOVWJU1G", "ca-central-1": "Z2EPGBW3API2WT", "cn-north-1": "Z3QFB96KMJ7ED6",
    "cn-northwest-1": "ZQEIKTCZ8352D", "eu-central-1": "Z3F0SRJ5LGBH90", "eu-central-2": "Z02239872DOALSIDCX66S",
    "eu-north-1": "Z1UDT6IFJ4EJM", "eu-south-1": "Z23146JA1KNAFP", "eu-south-2": "Z1011216NVTVYADP1SSV",
    "eu-west-1": "Z2IFOLAFXWLO4F", "eu-west-2": "ZD4D7Y8KGAS4G", "eu-west-3": "Z1CMS0P5QUZ6D5",
    "me-central-1": "Z00282643NTTLPANJJG2P", "me-south-1": "Z3QSRYVP46NYYV", "sa-east-1": "ZTK26PT1VY4CU",
    "us-east-1": "Z26RNL4JYFTOTI", "us-east-2": "ZLMOA37VPKANP", "us-gov-east-1": "Z1ZSMQQ6Q24QQ8",
    "us-gov-west-1": "ZMG1MZ2THAWF1", "us-west-1": "Z24FKFUX50B4VW", "us-west-2": "Z18D5FSROUN65G",
}
_ZONE_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def hosted_zone(name: str) -> dict[str, object]:
    """aws.route53.getZone for a public zone of this name, as the provider answers it: an id like
    Z0123456789ABCDEFGHIJ (the same for the same name), the name with its trailing dot."""
    fqdn = name if name.endswith(".") else f"{name}."
    digest = hashlib.sha256(fqdn.lower().encode()).digest()
    zone_id = "Z0" + "".join(_ZONE_ID_ALPHABET[b % len(_ZONE_ID_ALPHABET)] for b in digest[:19])
    return {"id": zone_id, "zoneId": zone_id, "name": fqdn, "arn": f"arn:aws:route53:::hostedzone/{zone_id}",
            "callerReference": _hex(fqdn, 12), "comment": "", "privateZone": False, "resourceRecordSetCount": 2,
            "nameServers": [f"ns-{100 + i}.awsdns-{10 + i}.{tld}" for i, tld in enumerate(("com", "net", "org", "co.uk"))],
            "primaryNameServer": "ns-100.awsdns-10.com", "tags": {}, "linkedServiceDescription": "",
            "linkedServicePrincipal": ""}


def load_balancer_zone_id(kind: str, region: str) -> str:
    """The canonical hosted zone id of a region's load balancers of a kind (classic, application, network);
    LookupError for a region the provider does not know, as the provider fails."""
    table = {"classic": ELB_HOSTED_ZONE_IDS, "application": ALB_HOSTED_ZONE_IDS, "network": NLB_HOSTED_ZONE_IDS}[kind]
    if region not in table:
        raise LookupError(f"unsupported AWS Region: {region}")
    return table[region]


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
    if typ == "aws:route53/record:Record":
        # The provider's id: ZONEID_NAME_TYPE[_SETIDENTIFIER]; fqdn is the name without a trailing dot.
        record = str(inputs.get("name", "")).rstrip(".")
        parts = [str(inputs.get("zoneId", "")), record, str(inputs.get("type", ""))]
        if inputs.get("setIdentifier"):
            parts.append(str(inputs["setIdentifier"]))
        state["fqdn"] = record
        return "_".join(parts), state
    if typ in ("aws:eks/accessEntry:AccessEntry", "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"):
        return f"{inputs.get('clusterName')}#{inputs.get('principalArn')}", state
    return f"{name}-{_hex(seed, 8)}", state
