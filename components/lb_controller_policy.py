"""The IAM permissions the AWS Load Balancer Controller needs, grouped by what it does.

Mutations are limited to load balancers, target groups and security groups that carry the
controller's own cluster tags (`elbv2.k8s.aws/cluster`, `ingress.k8s.aws/cluster`,
`service.k8s.aws/cluster`), so the role cannot touch load balancers it did not create.
"""

from __future__ import annotations

import json

_OWNED_TAG_KEYS = ("elbv2.k8s.aws/cluster", "ingress.k8s.aws/cluster", "service.k8s.aws/cluster")


def _owned(condition_key: str) -> dict:
    """A condition matching resources tagged by the controller."""
    return {"Null": {f"aws:ResourceTag/{condition_key}": "false"}}


def policy_document() -> str:
    reads = {
        "Sid": "Discover",
        "Effect": "Allow",
        "Action": [
            "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
            "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
            "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
            "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags", "ec2:DescribeRouteTables",
            "ec2:DescribeCoipPools", "ec2:DescribeIpamPools", "ec2:GetCoipPoolUsage", "ec2:GetSecurityGroupsForVpc",
            "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeListenerAttributes",
            "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeSSLPolicies",
            "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
            "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTrustStores",
            "elasticloadbalancing:DescribeCapacityReservation",
            "acm:ListCertificates", "acm:DescribeCertificate", "iam:ListServerCertificates",
            "iam:GetServerCertificate", "cognito-idp:DescribeUserPoolClient", "waf-regional:GetWebACL",
            "waf-regional:GetWebACLForResource", "wafv2:GetWebACL", "wafv2:GetWebACLForResource",
            "shield:GetSubscriptionState", "shield:DescribeProtection",
        ],
        "Resource": "*",
    }
    service_linked_role = {
        "Sid": "ElbServiceLinkedRole",
        "Effect": "Allow",
        "Action": "iam:CreateServiceLinkedRole",
        "Resource": "*",
        "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
    }
    security_groups = [
        {"Sid": "CreateSecurityGroups", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup", "Resource": "*"},
        {
            "Sid": "TagNewSecurityGroups", "Effect": "Allow", "Action": "ec2:CreateTags",
            "Resource": "arn:aws:ec2:*:*:security-group/*",
            "Condition": {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"},
                          "Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}},
        },
        {
            "Sid": "ManageOwnSecurityGroups", "Effect": "Allow",
            "Action": ["ec2:CreateTags", "ec2:DeleteTags", "ec2:AuthorizeSecurityGroupIngress",
                       "ec2:RevokeSecurityGroupIngress", "ec2:DeleteSecurityGroup"],
            "Resource": "*", "Condition": _owned("elbv2.k8s.aws/cluster"),
        },
        {
            # Node and pod security groups get ingress rules from the load balancer's group.
            "Sid": "OpenTargetsToOwnLoadBalancers", "Effect": "Allow",
            "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"], "Resource": "*",
        },
    ]
    create = {
        "Sid": "CreateTaggedLoadBalancers", "Effect": "Allow",
        "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
        "Resource": "*", "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "false"}},
    }
    listeners = {
        "Sid": "ManageListenersAndRules", "Effect": "Allow",
        "Action": ["elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
                   "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule",
                   "elasticloadbalancing:ModifyListener", "elasticloadbalancing:ModifyListenerAttributes",
                   "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
                   "elasticloadbalancing:ModifyRule", "elasticloadbalancing:SetRulePriorities"],
        "Resource": "*",
    }
    tags = {
        "Sid": "TagOwnLoadBalancers", "Effect": "Allow",
        "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
        "Resource": ["arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
                     "arn:aws:elasticloadbalancing:*:*:loadbalancer/net/*/*",
                     "arn:aws:elasticloadbalancing:*:*:loadbalancer/app/*/*",
                     "arn:aws:elasticloadbalancing:*:*:listener/net/*/*/*",
                     "arn:aws:elasticloadbalancing:*:*:listener/app/*/*/*",
                     "arn:aws:elasticloadbalancing:*:*:listener-rule/net/*/*/*",
                     "arn:aws:elasticloadbalancing:*:*:listener-rule/app/*/*/*"],
    }
    modify = [
        {
            "Sid": f"ManageOwn{key.split('.')[0].capitalize()}LoadBalancers", "Effect": "Allow",
            "Action": ["elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
                       "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
                       "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
                       "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
                       "elasticloadbalancing:ModifyCapacityReservation", "elasticloadbalancing:ModifyIpPools"],
            "Resource": "*", "Condition": _owned(key),
        }
        for key in _OWNED_TAG_KEYS
    ]
    targets = {
        "Sid": "RegisterPodTargets", "Effect": "Allow",
        "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"],
        "Resource": "arn:aws:elasticloadbalancing:*:*:targetgroup/*/*",
    }
    web_acls = {
        "Sid": "AttachWebAcls", "Effect": "Allow",
        "Action": ["elasticloadbalancing:SetWebAcl", "waf-regional:AssociateWebACL", "waf-regional:DisassociateWebACL",
                   "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL", "shield:CreateProtection",
                   "shield:DeleteProtection"],
        "Resource": "*",
    }
    statements = [reads, service_linked_role, *security_groups, create, listeners, tags, *modify, targets, web_acls]
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, indent=2)
