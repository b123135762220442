"""`python -m rollout preflight STACK`: AWS checks before `pulumi up`, with boto3.

Checks that the credentials work and belong to an account the stack allows, that the stack
names a region, that every image hosted in ECR exists with the tag the stack deploys, and that
the Route53 hosted zone of every `traffic: dns` canary exists.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from model.config import StackConfig
from model.stack_file import stack_name

# Values from AWS's and the IETF's documentation (RFC 5737): a stack file holding them was
# never filled in. Pulumi.prod.yaml ships with them, so prod cannot be deployed as written.
DOCUMENTATION_ACCOUNT = "123456789012"
DOCUMENTATION_NETWORKS = tuple(ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"))

ECR_IMAGE = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<repo>.+)$")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def ecr_images(config: StackConfig) -> list[tuple[str, str, str, str, str]]:
    """(release, account, region, repository, tag) for every ECR-hosted image the stack deploys."""
    found = []
    for release in config.releases:
        match = ECR_IMAGE.match(release.image)
        if not match:
            continue
        for tag in sorted(set(release.tags().values())):
            found.append((release.name, match["account"], match["region"], match["repo"], tag))
    return found


def placeholders(config: StackConfig) -> list[str]:
    """Settings that still hold documentation examples instead of the user's own values."""
    found = [f"aws:allowedAccountIds {a}" for a in config.allowed_account_ids if a == DOCUMENTATION_ACCOUNT]
    found += [f"app-update:cluster.endpointPublicAccessCidrs {c}" for c in config.cluster.endpoint_public_access_cidrs
              if any(ipaddress.IPv4Network(c).subnet_of(n) for n in DOCUMENTATION_NETWORKS)]
    found += [f"app-update:cluster.admins {a}" for a in config.cluster.admins if f":{DOCUMENTATION_ACCOUNT}:" in a]
    return found


def cli_identity(profile: str | None) -> tuple[dict | None, str]:
    """Who the `aws` CLI is (the kubeconfig's `aws eks get-token` runs as it), or why it cannot say."""
    aws = shutil.which("aws")
    if aws is None:
        return None, ("the aws CLI is not installed: the kubeconfig runs `aws eks get-token` "
                      "(https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)")
    env = dict(os.environ)
    if profile:
        env["AWS_PROFILE"] = profile
    try:
        done = subprocess.run([aws, "sts", "get-caller-identity", "--output", "json"], capture_output=True, text=True,
                              env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return None, f"`aws sts get-caller-identity` did not run: {error}"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"`aws sts get-caller-identity` failed: {last}"
    try:
        return json.loads(done.stdout), ""
    except json.JSONDecodeError:
        return None, "`aws sts get-caller-identity` printed no JSON"


def dns_zones(config: StackConfig) -> list[tuple[str, str]]:
    """(release, hosted zone) for every release whose canary splits traffic by Route53 weights."""
    return [(r.name, r.dns.zone) for r in config.releases if r.dns is not None]


def uses_aws(config: StackConfig) -> bool:
    return (config.cluster.mode == "eks" or bool(ecr_images(config)) or bool(config.allowed_account_ids)
            or bool(dns_zones(config)))


def _hosted_zone_check(route53: Any, release: str, zone: str) -> Check:
    """The public hosted zone the release's weighted records go into exists in the account (by name,
    as the program's aws.route53.get_zone looks it up)."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = f"dns zone {zone}"
    try:
        found = route53.list_hosted_zones_by_name(DNSName=zone, MaxItems="10").get("HostedZones", [])
    except (BotoCoreError, ClientError) as error:
        return Check(name, False, f"cannot list the Route53 hosted zones (release {release}): {error}")
    public = [z for z in found if z.get("Name", "").rstrip(".").lower() == zone.lower()
              and not (z.get("Config") or {}).get("PrivateZone", False)]
    if not public:
        private = [z for z in found if z.get("Name", "").rstrip(".").lower() == zone.lower()]
        why = " (only a private zone of that name, which the internet does not resolve)" if private else ""
        return Check(name, False, f"no public Route53 hosted zone {zone} in this account{why}: release {release}'s "
                                  f"weighted records go there; create it (aws route53 create-hosted-zone --name {zone} "
                                  "--caller-reference <unique>) and delegate the domain to its name servers")
    zone_id = public[0].get("Id", "").rsplit("/", 1)[-1]
    more = f" ({len(public)} public zones of that name: records go to the one the provider finds)" if len(public) > 1 else ""
    return Check(name, True, f"hosted zone {zone} is {zone_id} (release {release}){more}")


def run_checks(config: StackConfig, session: object | None = None) -> list[Check]:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    # Never wait on the instance metadata endpoint from a laptop or CI runner.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    session = session or boto3.Session(profile_name=config.aws_profile)
    made: dict[tuple[str, str], Any] = {}

    def client(service: str, region_name: str) -> Any:
        """One client per service and region for the whole run: creating one is the slow part."""
        if (service, region_name) not in made:
            made[service, region_name] = session.client(service, region_name=region_name)  # type: ignore[attr-defined]
        return made[service, region_name]

    checks: list[Check] = []
    found = placeholders(config)
    if found:
        checks.append(Check("placeholders", False, f"replace the documentation examples in Pulumi.{config.stack}.yaml "
                                                   f"with your own values: {'; '.join(found)}"))
    region = config.region
    if region:
        checks.append(Check("region", True, f"aws:region is {region}"))
    else:
        checks.append(Check("region", False, f"aws:region is not set: pulumi config set aws:region <region> "
                                             f"--stack {config.stack}"))
    try:
        identity = client("sts", region or "us-east-1").get_caller_identity()
    except (BotoCoreError, ClientError) as error:
        checks.append(Check("credentials", False, f"no usable AWS credentials: {error}"))
        return checks
    account = identity["Account"]
    checks.append(Check("credentials", True, f"{identity['Arn']} in account {account}"))
    if config.cluster.mode == "eks":
        checks.append(_same_principal(config, identity))
    if config.allowed_account_ids:
        allowed = ", ".join(config.allowed_account_ids)
        if account in config.allowed_account_ids:
            checks.append(Check("account", True, f"account {account} is allowed (aws:allowedAccountIds: {allowed})"))
        else:
            checks.append(Check("account", False, f"account {account} is not in aws:allowedAccountIds ({allowed}): "
                                                  "these credentials belong to another account"))
    for release, zone in dns_zones(config):
        checks.append(_hosted_zone_check(client("route53", "us-east-1"), release, zone))
    for release, registry, image_region, repo, tag in ecr_images(config):
        image = f"{registry}.dkr.ecr.{image_region}.amazonaws.com/{repo}:{tag}"
        ecr = client("ecr", image_region)
        try:
            # A tag pinned by `rollout promote` (`v2@sha256:...`) is pulled by its digest.
            ids = {"imageDigest": tag.split("@", 1)[1]} if "@" in tag else {"imageTag": tag}
            ecr.describe_images(registryId=registry, repositoryName=repo, imageIds=[ids])
            checks.append(Check(f"image {release}", True, f"{image} exists"))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            why = {"RepositoryNotFoundException": f"repository {repo} does not exist in {registry}/{image_region}",
                   "ImageNotFoundException": f"tag {tag} is not in repository {repo}"}.get(code, str(error))
            checks.append(Check(f"image {release}", False, f"{image}: {why}"))
        except BotoCoreError as error:
            checks.append(Check(f"image {release}", False, f"{image}: {error}"))
    return checks


def _same_principal(config: StackConfig, sdk: dict) -> Check:
    """The kubeconfig's `aws eks get-token` must run as the identity that deployed (and administers) the cluster."""
    cli, why = cli_identity(config.aws_profile)
    if cli is None:
        return Check("aws CLI", False, why)
    if config.aws_role_arn:
        # get-token assumes the same role as the provider: the base identities only need the same account.
        same = cli.get("Account") == sdk["Account"]
    else:
        same = cli.get("Arn") == sdk["Arn"]
    if same:
        return Check("aws CLI", True, f"`aws eks get-token` runs as {cli.get('Arn')}, as the deployment does")
    return Check("aws CLI", False, f"the aws CLI runs as {cli.get('Arn')} but the deployment as {sdk['Arn']}: the "
                                   "kubeconfig would get a token the cluster does not know (401); use the same profile "
                                   "(aws:profile) or credentials for both")


def print_checks(checks: list[Check]) -> bool:
    """One line per check; True when all passed."""
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<22} {check.detail}")
    return all(check.ok for check in checks)


def cmd_preflight(args: argparse.Namespace) -> int:
    from operations.stacks import EXIT_FAILED, EXIT_OK, EXIT_USAGE, load_stack_file

    _, config = load_stack_file(args.stack, args.cwd)
    if config is None:
        return EXIT_USAGE
    if not uses_aws(config):
        print(f"stack {args.stack} uses no AWS resources or ECR images: nothing to check")
        return EXIT_OK
    checks = run_checks(config)
    print_checks(checks)
    failed = [c for c in checks if not c.ok]
    print(f"preflight {args.stack}: {len(checks) - len(failed)} passed, {len(failed)} failed")
    return EXIT_FAILED if failed else EXIT_OK


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "preflight", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="check AWS credentials, account, region and ECR images before pulumi up",
        description="Check, with your current AWS credentials, that a stack can be deployed: no documentation "
                    "placeholder is left in the stack file, the caller's account is one the stack allows "
                    "(aws:allowedAccountIds), the stack sets aws:region, the aws CLI the kubeconfig calls is installed "
                    "and runs as the same principal as the deployment, every image hosted in ECR exists with the "
                    "tag the stack deploys, and the public Route53 hosted zone of every `traffic: dns` canary exists. "
                    "Exit 1 when any check fails.",
        epilog="example:\n  AWS_PROFILE=prod python -m rollout preflight prod",
    )
    parser.add_argument("stack", type=stack_name, help="stack name (Pulumi.<stack>.yaml)")
    parser.set_defaults(func=cmd_preflight)
