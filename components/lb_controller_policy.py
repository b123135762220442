"""The AWS Load Balancer Controller's IAM policy: upstream's own document, vendored, not hand-written.

Source: the `docs/install/iam_policy.json` of kubernetes-sigs/aws-load-balancer-controller for
v2.16.0, the controller version the pinned chart (1.16.0, components/eks.py) installs:
https://raw.githubusercontent.com/kubernetes-sigs/aws-load-balancer-controller/v2.16.0/docs/install/iam_policy.json
The vendored file (aws_load_balancer_controller_iam_policy.json beside this module) was rebuilt
offline from upstream's stored copies of that file and of its GovCloud twin (the tag itself was
not reachable here); its sha256 is pinned in tests/test_eks.py. Before a production rollout,
compare it with the URL above (`sha256sum`), and replace it whenever the chart pin moves.

Its mutations are scoped to load balancers, target groups and security groups that carry the
controller's `elbv2.k8s.aws/cluster` tag, so the role cannot take over load balancers it did
not create.
"""

from __future__ import annotations

import json
from pathlib import Path

POLICY_FILE = Path(__file__).with_name("aws_load_balancer_controller_iam_policy.json")
SOURCE = ("https://raw.githubusercontent.com/kubernetes-sigs/aws-load-balancer-controller/v2.16.0/"
          "docs/install/iam_policy.json")


def policy_document(partition: str = "aws") -> str:
    """The policy as upstream ships it, with its ARNs in `partition` (aws, aws-cn, aws-us-gov)."""
    text = POLICY_FILE.read_text()
    if partition != "aws":
        text = text.replace("arn:aws:", f"arn:{partition}:")
    json.loads(text)  # a broken vendored file fails here, not at `pulumi up`
    return text
