"""VPC subnet layout as plain arithmetic. No Pulumi import."""

from __future__ import annotations

import ipaddress


def subnet_plan(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(public, private) subnet CIDRs, one of each per availability zone.

    The VPC is cut into eight equal blocks: public subnets take the first blocks, private
    ones (where the nodes and pods live, so they get the same room) start at the fifth.
    Nothing overlaps and everything stays inside the VPC.
    """
    if not 1 <= zones <= 4:
        raise ValueError(f"zones must be 1..4, got {zones}")
    vpc = ipaddress.IPv4Network(vpc_cidr)
    blocks = list(vpc.subnets(prefixlen_diff=3))
    return [str(b) for b in blocks[:zones]], [str(b) for b in blocks[4:4 + zones]]
