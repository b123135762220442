"""`python -m rollout bootstrap`: the team's Pulumi state backend, created with boto3, idempotently.

An S3 bucket for the state (versioning on, a lifecycle rule expiring old versions after
--noncurrent-days while keeping the newest --keep-versions and aborting incomplete multipart
uploads after 7 days, default encryption with the bucket's KMS key `alias/NAME`, every public
access blocked, a bucket policy refusing requests without TLS); one KMS key per stack for its
secrets (`--secrets-provider awskms://alias/NAME-<stack>`); every key with yearly rotation and an
explicit key policy (no grant to the account root, so IAM alone never opens a key). With
--github-repo, also GitHub's OIDC provider and each stack's deploy and preview roles. What each
policy says, and why, is operations/state_access.py.

`plan` looks at the account and returns the actions still needed, each with one line saying
what it changes; `apply` carries them out in order. A second run plans nothing.

On what exists already, bootstrap changes only what makes it weaker than the above, and says so:
versioning off or suspended is turned on; a public access block that is missing or partly off
is set in full; default encryption that is none or SSE-S3 becomes SSE-KMS with the team's key;
the TLS-only statement is added to an existing bucket policy, every other statement kept as is;
the lifecycle rule is added to or changed in the bucket's lifecycle, every other rule kept;
rotation of a key is turned on; a key policy, a role's trust or its inline policy that says
anything else than state_access.py's is replaced (the plan line names whom the new one names).

It refuses, changing nothing, when a change would take something away from someone:
- a bucket owned by another account, or one these credentials may not read;
- a bucket in another region than --region (it names the bucket's region);
- a bucket encrypted by default with another KMS key (including the AWS managed aws/s3 key):
  bootstrap never re-keys a bucket, as objects already written stay under the old key;
- a bucket policy with a statement under bootstrap's Sid that says something else, or one that
  allows access to everyone ("Principal": "*" without a condition): a state bucket must not;
- an alias on a KMS key that is disabled, pending deletion, AWS managed, not symmetric, or not
  for encryption;
- an IAM role of bootstrap's names that bootstrap did not make (no app-update tag).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from model.config import PROJECT
from operations import state_access
from operations.state_access import Access, canonical

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TLS_SID = "DenyInsecureTransport"
KEY_DESCRIPTION = "app-update: Pulumi state bucket encryption and stack secrets (python -m rollout bootstrap)"
STACK_KEY_DESCRIPTION = "app-update: the secrets of stack {stack} (python -m rollout bootstrap)"
KEY_TAG = {"TagKey": "app-update", "TagValue": "pulumi-state"}
DEFAULT_STACKS = ("dev", "staging", "prod")
LIFECYCLE_ID = "app-update-state-old-versions"
DEFAULT_NONCURRENT_DAYS = 90
DEFAULT_KEEP_VERSIONS = 10
MULTIPART_DAYS = 7
PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_ALIAS = re.compile(r"^[a-zA-Z0-9/_-]+$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class BootstrapError(Exception):
    """A refusal or an AWS failure, as one line for the operator."""


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


def bucket_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 general purpose bucket name, or None."""
    if not 3 <= len(name) <= 63:
        return f"must be 3 to 63 characters long (got {len(name)})"
    if not _BUCKET.match(name):
        return ("may hold only lowercase letters, digits, dots and hyphens, and must begin and end with a letter "
                "or digit")
    if ".." in name or ".-" in name or "-." in name:
        return "must not have two dots in a row, or a dot next to a hyphen"
    if _IP.match(name):
        return "must not look like an IP address"
    for prefix in _BUCKET_PREFIXES:
        if name.startswith(prefix):
            return f"must not begin with {prefix!r} (reserved by S3)"
    for suffix in _BUCKET_SUFFIXES:
        if name.endswith(suffix):
            return f"must not end with {suffix!r} (reserved by S3)"
    return None


def alias_name(given: str) -> str:
    """The alias's name without the `alias/` prefix (which --kms-alias may carry or not)."""
    return given[len("alias/"):] if given.startswith("alias/") else given


def alias_problem(given: str) -> str | None:
    """Why `given` is not a valid KMS alias name for a customer managed key, or None."""
    name = alias_name(given)
    if not name:
        return "must name the alias (alias/NAME)"
    if len("alias/" + name) > 256:
        return "must be at most 256 characters with its alias/ prefix"
    if not _ALIAS.match(name):
        return "may hold only letters, digits, '/', '_' and '-'"
    if name.startswith("aws/"):
        return "must not begin with aws/ (reserved for AWS managed keys)"
    return None


def region_problem(region: str) -> str | None:
    return None if _REGION.match(region) else f"{region!r} is not an AWS region name (like us-west-2)"


# ---------------------------------------------------------------------------------------------
# Plan
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    # create-key, key-policy, enable-rotation, create-oidc-provider, add-oidc-audience, create-role, role-trust,
    # role-policy, create-bucket, block-public-access, versioning, encryption, policy, lifecycle
    kind: str
    description: str
    detail: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Plan:
    bucket: str
    alias: str  # without "alias/"
    region: str
    account: str
    partition: str
    key_arn: str | None  # the key behind the alias, when it exists
    actions: list[Action]
    found: list[str]  # what is already right, one line each
    access: Access | None = None  # the stacks, administrators and roles the policies name

    @property
    def alias_ref(self) -> str:
        return f"alias/{self.alias}"


@dataclass
class Clients:
    sts: Any
    s3: Any
    kms: Any
    iam: Any = None

    @classmethod
    def from_session(cls, session: Any, region: str) -> Clients:
        return cls(sts=session.client("sts", region_name=region), s3=session.client("s3", region_name=region),
                   kms=session.client("kms", region_name=region), iam=session.client("iam", region_name=region))


def make_clients(region: str, session: Any | None = None) -> Clients:
    import boto3

    # Never wait on the instance metadata endpoint from a laptop or CI runner.
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    return Clients.from_session(session or boto3.Session(), region)


def _code(error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _status(error: Exception) -> int:
    response = getattr(error, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _aws_line(error: Exception, doing: str) -> str:
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return f"no usable AWS credentials ({error}); set AWS_PROFILE or run `aws configure` / `aws sso login`"
    if isinstance(error, ClientError):
        code = _code(error)
        message = error.response.get("Error", {}).get("Message") or code
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"):
            return f"access denied while {doing}: {message}"
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch"):
            return f"the AWS credentials were refused while {doing} ({code}): {message}"
        return f"AWS said {code} while {doing}: {message}"
    return f"AWS request failed while {doing}: {' '.join(str(error).split())}"


def _call(doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(*args, **kwargs)
    except (BotoCoreError, ClientError) as error:
        raise BootstrapError(_aws_line(error, doing)) from None


def _missing(codes: tuple[str, ...], doing: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
    """fn(**kwargs), or None when AWS answers with one of `codes` (the thing does not exist)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except ClientError as error:
        if _code(error) in codes:
            return None
        raise BootstrapError(_aws_line(error, doing)) from None
    except BotoCoreError as error:
        raise BootstrapError(_aws_line(error, doing)) from None


def _inspect_key(clients: Clients, alias: str) -> dict[str, Any] | None:
    found = _missing(("NotFoundException",), f"looking up KMS alias alias/{alias}", clients.kms.describe_key,
                     KeyId=f"alias/{alias}")
    return None if found is None else found["KeyMetadata"]


def _key_refusal(alias: str, key: dict[str, Any]) -> str | None:
    key_id = key.get("KeyId")
    if key.get("KeyManager") == "AWS":
        return f"alias/{alias} names an AWS managed key ({key_id}); bootstrap needs a customer managed key"
    state = key.get("KeyState", "Enabled")
    if state != "Enabled" or key.get("Enabled") is False:
        return (f"alias/{alias} names KMS key {key_id}, which is {state}: re-enable it (or cancel its deletion), "
                "or choose another alias; bootstrap does not touch it")
    spec = key.get("KeySpec") or key.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if spec != "SYMMETRIC_DEFAULT" or key.get("KeyUsage", "ENCRYPT_DECRYPT") != "ENCRYPT_DECRYPT":
        return (f"alias/{alias} names KMS key {key_id} of spec {spec} for {key.get('KeyUsage')}; S3 and Pulumi need "
                "a symmetric ENCRYPT_DECRYPT key")
    return None


def _resolve_key_arn(clients: Clients, key_ref: str) -> str | None:
    """The ARN of the key a bucket's encryption names (key id, key ARN, alias name or alias ARN)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return clients.kms.describe_key(KeyId=key_ref)["KeyMetadata"]["Arn"]
    except (BotoCoreError, ClientError):
        return None  # another account's key, or one we may not describe: not ours either way


def tls_statement(bucket: str, partition: str = "aws") -> dict[str, Any]:
    arn = f"arn:{partition}:s3:::{bucket}"
    return {"Sid": TLS_SID, "Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": [arn, f"{arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        return "*" in _as_list(principal.get("AWS", []))
    return False


def _denies_plain_http(statement: dict[str, Any], bucket: str, partition: str) -> bool:
    """Whether a statement already refuses every request without TLS to the bucket and its objects."""
    if statement.get("Effect") != "Deny" or not _everyone(statement.get("Principal")):
        return False
    if not {"s3:*", "*"} & set(_as_list(statement.get("Action", []))):
        return False
    arn = f"arn:{partition}:s3:::{bucket}"
    resources = set(_as_list(statement.get("Resource", [])))
    if not ("*" in resources or {arn, f"{arn}/*"} <= resources):
        return False
    condition = statement.get("Condition", {})
    value = (condition.get("Bool") or {}).get("aws:SecureTransport")
    return str(value).lower() == "false" and set(condition) == {"Bool"}


def _policy_action(clients: Clients, bucket: str, account: str, partition: str, found: list[str]) -> Action | None:
    doing = f"reading the policy of bucket {bucket}"
    answer = _missing(("NoSuchBucketPolicy",), doing, clients.s3.get_bucket_policy, Bucket=bucket,
                      ExpectedBucketOwner=account)
    policy: dict[str, Any] = {"Version": "2012-10-17", "Statement": []}
    if answer is not None:
        try:
            policy = json.loads(answer["Policy"])
        except (TypeError, ValueError):
            raise BootstrapError(f"bucket {bucket}'s policy is not JSON; bootstrap does not touch it") from None
    statements = _as_list(policy.get("Statement", []))
    for statement in statements:
        if not isinstance(statement, dict):
            raise BootstrapError(f"bucket {bucket}'s policy has a statement that is not an object; "
                                 "bootstrap does not touch it")
        if statement.get("Effect") == "Allow" and _everyone(statement.get("Principal")) and not statement.get("Condition"):
            sid = statement.get("Sid") or "without a Sid"
            raise BootstrapError(f"bucket {bucket}'s policy allows access to everyone (statement {sid}); a state "
                                 "bucket must not: remove that statement yourself, or choose another bucket")
    if any(_denies_plain_http(s, bucket, partition) for s in statements):
        found.append(f"bucket {bucket}'s policy refuses requests without TLS")
        return None
    if any(s.get("Sid") == TLS_SID for s in statements):
        raise BootstrapError(f"bucket {bucket}'s policy has a statement {TLS_SID} that is not bootstrap's TLS-only "
                             "rule; bootstrap does not change others' statements: rename or fix it yourself")
    others = len(statements)
    merged = {**policy, "Version": policy.get("Version", "2012-10-17"),
              "Statement": [*statements, tls_statement(bucket, partition)]}
    kept = f", keeping its {others} other statement(s)" if others else ""
    return Action("policy", f"add statement {TLS_SID} to bucket {bucket}'s policy: refuse requests without TLS{kept}",
                  {"policy": merged})


def plan(bucket: str, alias: str, region: str, *, stacks: tuple[str, ...] = DEFAULT_STACKS,
         admins: tuple[str, ...] = (), repo: str | None = None, noncurrent_days: int = DEFAULT_NONCURRENT_DAYS,
         keep_versions: int = DEFAULT_KEEP_VERSIONS, session: Any | None = None,
         clients: Clients | None = None) -> Plan:
    """What the account needs for the backend: inspects, changes nothing. Raises BootstrapError.

    `stacks` in pipeline order (each promotes from the one before it); `admins` the IAM principals
    the key policies name as administrators (the caller is always one: KMS refuses a policy that
    would lock its writer out); `repo` OWNER/REPO to create GitHub's OIDC provider and each stack's
    deploy and preview roles (state_access.py says what each may do)."""
    alias = alias_name(alias)
    clients = clients or make_clients(region, session)
    identity = _call("checking the AWS credentials (sts get-caller-identity)", clients.sts.get_caller_identity)
    account = identity["Account"]
    partition = identity["Arn"].split(":")[1] if identity.get("Arn", "").count(":") >= 2 else "aws"
    caller = state_access.principal_arn(identity["Arn"], lambda name: _role_arn(clients, name))
    access = Access(account, partition, region, bucket, alias, PROJECT, tuple(stacks),
                    tuple(dict.fromkeys([*admins, caller])), repo)
    actions: list[Action] = []
    found: list[str] = []

    # The roles first: the key policies name them, and KMS refuses a principal that does not exist.
    if repo:
        actions.extend(_oidc_actions(clients, access, found))
        for stack in access.stacks:
            for kind in state_access.KINDS:
                actions.extend(_role_actions(clients, access, kind, stack, found))

    # The KMS keys next: the bucket's encryption depends on its key.
    key_arn, key_actions = _key_actions(clients, alias, access.bucket_key_policy(), KEY_DESCRIPTION,
                                        "the state bucket's encryption", found)
    actions.extend(key_actions)
    for stack in access.stacks:
        _, key_actions = _key_actions(clients, access.stack_alias(stack), access.stack_key_policy(stack),
                                      STACK_KEY_DESCRIPTION.format(stack=stack), f"stack {stack}'s secrets", found)
        actions.extend(key_actions)
    lifecycle = lifecycle_rule(noncurrent_days, keep_versions)

    exists = _bucket_exists(clients, bucket, account, region)
    if not exists:
        actions.append(Action("create-bucket", f"create S3 bucket {bucket} in {region}"))
        actions.append(Action("block-public-access", f"block all public access to bucket {bucket}"))
        actions.append(Action("versioning", f"turn on versioning of bucket {bucket} (every state file keeps its "
                                            "history)"))
        actions.append(Action("encryption", f"encrypt new objects in bucket {bucket} with KMS key alias/{alias} by "
                                            "default (S3 Bucket Key on)"))
        actions.append(Action("policy", f"set bucket {bucket}'s policy: refuse requests without TLS",
                              {"policy": {"Version": "2012-10-17", "Statement": [tls_statement(bucket, partition)]}}))
        actions.append(Action("lifecycle", f"set bucket {bucket}'s lifecycle: {describe_lifecycle(lifecycle)}",
                              {"rules": [lifecycle]}))
        return Plan(bucket, alias, region, account, partition, key_arn, actions, found, access)

    found.append(f"bucket {bucket} exists in {region}, owned by this account")
    blocked = _missing(("NoSuchPublicAccessBlockConfiguration",), f"reading bucket {bucket}'s public access block",
                       clients.s3.get_public_access_block, Bucket=bucket, ExpectedBucketOwner=account)
    settings = (blocked or {}).get("PublicAccessBlockConfiguration", {})
    off = [k for k in PUBLIC_ACCESS_BLOCK if not settings.get(k)]
    if not off:
        found.append(f"bucket {bucket} blocks all public access")

    versioning = _call(f"reading bucket {bucket}'s versioning", clients.s3.get_bucket_versioning, Bucket=bucket,
                       ExpectedBucketOwner=account).get("Status")
    if versioning == "Enabled":
        found.append(f"bucket {bucket} is versioned")
    else:
        actions.append(Action("versioning", f"turn on versioning of bucket {bucket} (now: "
                                            f"{'suspended' if versioning == 'Suspended' else 'off'})"))

    actions.extend(_encryption_action(clients, bucket, account, alias, key_arn, found))
    policy_action = _policy_action(clients, bucket, account, partition, found)
    if policy_action is not None:
        actions.append(policy_action)
    lifecycle_action = _lifecycle_action(clients, bucket, account, lifecycle, found)
    if lifecycle_action is not None:
        actions.append(lifecycle_action)
    # Last on an existing bucket: with BlockPublicPolicy on, S3 refuses to write a policy it deems
    # public, and the policy kept from before is not ours to judge beyond the check above.
    if off:
        actions.append(Action("block-public-access", f"block all public access to bucket {bucket} (off now: "
                                                     f"{', '.join(off)})"))
    return Plan(bucket, alias, region, account, partition, key_arn, actions, found, access)


def _bucket_exists(clients: Clients, bucket: str, account: str, region: str) -> bool:
    """False when there is no such bucket; True when this account owns it in `region`; refuses otherwise."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = clients.s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=account)
    except ClientError as error:
        status = _status(error)
        if status == 404 or _code(error) in ("404", "NoSuchBucket", "NotFound"):
            return False
        if status == 403 or _code(error) in ("403", "AccessDenied"):
            raise BootstrapError(f"bucket {bucket} exists but belongs to another AWS account, or these credentials "
                                 "may not read it: choose another --bucket") from None
        if status == 301 or _code(error) in ("301", "PermanentRedirect"):
            where = error.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("x-amz-bucket-region", "?")
            raise BootstrapError(f"bucket {bucket} is in region {where}, not {region}: pass --region {where}") from None
        raise BootstrapError(_aws_line(error, f"looking for bucket {bucket}")) from None
    except BotoCoreError as error:
        raise BootstrapError(_aws_line(error, f"looking for bucket {bucket}")) from None
    # ExpectedBucketOwner makes S3 itself answer 403 for another account's bucket; listing our own
    # buckets says the same where that header is not enforced.
    listed = _missing(("AccessDenied",), "listing this account's buckets", clients.s3.list_buckets)
    if listed is not None and bucket not in {b["Name"] for b in listed.get("Buckets", [])}:
        raise BootstrapError(f"bucket {bucket} exists but belongs to another AWS account: choose another --bucket")
    where = head.get("BucketRegion")
    if not where:
        location = _call(f"reading bucket {bucket}'s region", clients.s3.get_bucket_location, Bucket=bucket,
                         ExpectedBucketOwner=account).get("LocationConstraint")
        where = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
    if where != region:
        raise BootstrapError(f"bucket {bucket} is in region {where}, not {region}: pass --region {where}")
    return True


def _encryption_action(clients: Clients, bucket: str, account: str, alias: str, key_arn: str | None,
                       found: list[str]) -> list[Action]:
    answer = _missing(("ServerSideEncryptionConfigurationNotFoundError",), f"reading bucket {bucket}'s encryption",
                      clients.s3.get_bucket_encryption, Bucket=bucket, ExpectedBucketOwner=account)
    rules = (answer or {}).get("ServerSideEncryptionConfiguration", {}).get("Rules", [])
    default = (rules[0] if rules else {}).get("ApplyServerSideEncryptionByDefault", {})
    algorithm = default.get("SSEAlgorithm")
    if algorithm in ("aws:kms", "aws:kms:dsse"):
        named = default.get("KMSMasterKeyID") or "aws/s3"
        arn = _resolve_key_arn(clients, named if named != "aws/s3" else "alias/aws/s3")
        if key_arn is not None and arn == key_arn:
            found.append(f"bucket {bucket} is encrypted by default with KMS key alias/{alias}")
            return []
        raise BootstrapError(f"bucket {bucket} is encrypted by default with another KMS key ({named}); bootstrap "
                             f"never re-keys a bucket (objects written so far stay under that key): pass that key's "
                             "alias as --kms-alias, or choose another --bucket")
    now = "SSE-S3 (AES256)" if algorithm == "AES256" else "none"
    return [Action("encryption", f"encrypt new objects in bucket {bucket} with KMS key alias/{alias} by default "
                                 f"(now: {now}; objects already there keep their encryption)")]


# ---------------------------------------------------------------------------------------------
# KMS keys and their policies, IAM roles, lifecycle
# ---------------------------------------------------------------------------------------------


def _role_arn(clients: Clients, name: str) -> str | None:
    """A role's ARN with its path (an SSO role's lives under /aws-reserved/...), or None."""
    from botocore.exceptions import BotoCoreError, ClientError

    if clients.iam is None:
        return None
    try:
        return clients.iam.get_role(RoleName=name)["Role"]["Arn"]
    except (BotoCoreError, ClientError):
        return None


def _short(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def _named(policy: dict[str, Any]) -> str:
    """The principals a key policy names, short (`role/PlatformAdmin`), in order."""
    names: list[str] = []
    for statement in policy["Statement"]:
        principals = statement.get("Principal", {}).get("AWS", [])
        for arn in principals if isinstance(principals, list) else [principals]:
            if _short(arn) not in names:
                names.append(_short(arn))
    return ", ".join(names)


def _key_actions(clients: Clients, alias: str, policy: dict[str, Any], description: str, purpose: str,
                 found: list[str]) -> tuple[str | None, list[Action]]:
    """The key behind alias/NAME: made, or its rotation and key policy brought to what they should be."""
    key = _inspect_key(clients, alias)
    if key is None:
        return None, [Action("create-key", f"create a KMS key for {purpose} (symmetric, yearly automatic rotation) "
                                           f"named alias/{alias}, its key policy naming only: {_named(policy)}",
                             {"alias": alias, "policy": policy, "description": description})]
    refusal = _key_refusal(alias, key)
    if refusal:
        raise BootstrapError(refusal)
    actions = []
    key_id = key["KeyId"]
    rotation = _call(f"reading the rotation of KMS key {key_id}", clients.kms.get_key_rotation_status, KeyId=key_id)
    if rotation.get("KeyRotationEnabled"):
        found.append(f"KMS key {key_id} (alias/{alias}) rotates yearly")
    else:
        actions.append(Action("enable-rotation", f"turn on yearly automatic rotation of KMS key {key_id} "
                                                 f"(alias/{alias})", {"key_id": key_id}))
    now = _call(f"reading the key policy of KMS key {key_id} (alias/{alias})", clients.kms.get_key_policy,
                KeyId=key_id, PolicyName="default")["Policy"]
    if canonical(now) == canonical(policy):
        found.append(f"KMS key {key_id} (alias/{alias})'s key policy names only: {_named(policy)}")
    else:
        actions.append(Action("key-policy", f"replace the key policy of KMS key {key_id} (alias/{alias}) with one "
                                            f"naming only: {_named(policy)} (no IAM-wide grant to the account)",
                              {"key_id": key_id, "policy": policy}))
    return key["Arn"], actions


def _oidc_actions(clients: Clients, access: Access, found: list[str]) -> list[Action]:
    arn = access.provider_arn
    listed = _call("listing IAM OIDC providers", clients.iam.list_open_id_connect_providers)
    if arn not in {p["Arn"] for p in listed.get("OpenIDConnectProviderList", [])}:
        return [Action("create-oidc-provider", f"create the IAM OIDC provider {state_access.GITHUB_OIDC_URL} "
                                               f"(audience {state_access.AUDIENCE}) for GitHub Actions")]
    provider = _call(f"reading IAM OIDC provider {arn}", clients.iam.get_open_id_connect_provider,
                     OpenIDConnectProviderArn=arn)
    if state_access.AUDIENCE not in provider.get("ClientIDList", []):
        return [Action("add-oidc-audience", f"add audience {state_access.AUDIENCE} to IAM OIDC provider {arn}")]
    found.append(f"IAM OIDC provider {state_access.GITHUB_OIDC_HOST} accepts audience {state_access.AUDIENCE}")
    return []


def _role_actions(clients: Clients, access: Access, kind: str, stack: str, found: list[str]) -> list[Action]:
    name = access.role_name(kind, stack)
    trust, policy = access.trust_policy(kind, stack), access.state_policy(kind, stack)
    subject = access.subject(kind, stack)
    role = _missing(("NoSuchEntity",), f"reading IAM role {name}", clients.iam.get_role, RoleName=name)
    detail = {"name": name, "trust": trust, "policy": policy}
    if role is None:
        return [Action("create-role", f"create IAM role {name} ({kind} of stack {stack}: its state only), trusted "
                                      f"for GitHub OIDC subject {subject}", detail)]
    role = role["Role"]
    if state_access.ROLE_TAG not in role.get("Tags", []):
        raise BootstrapError(f"IAM role {name} exists and was not made by bootstrap (no tag "
                             f"{state_access.ROLE_TAG['Key']}={state_access.ROLE_TAG['Value']}); bootstrap does not "
                             "take it over: delete or rename it, or choose another --kms-alias")
    actions = []
    if canonical(role.get("AssumeRolePolicyDocument")) == canonical(trust):
        found.append(f"IAM role {name} trusts only GitHub OIDC subject {subject}")
    else:
        actions.append(Action("role-trust", f"set IAM role {name}'s trust to GitHub OIDC subject {subject} only",
                              detail))
    inline = _missing(("NoSuchEntity",), f"reading IAM role {name}'s policy {state_access.STATE_POLICY_NAME}",
                      clients.iam.get_role_policy, RoleName=name, PolicyName=state_access.STATE_POLICY_NAME)
    if inline is not None and canonical(inline.get("PolicyDocument")) == canonical(policy):
        found.append(f"IAM role {name}'s policy {state_access.STATE_POLICY_NAME} reaches stack {stack}'s state only")
    else:
        actions.append(Action("role-policy", f"set IAM role {name}'s policy {state_access.STATE_POLICY_NAME}: "
                                             f"stack {stack}'s state only", detail))
    return actions


def lifecycle_rule(noncurrent_days: int, keep_versions: int) -> dict[str, Any]:
    """The state bucket's rule: an old version of a state file expires `noncurrent_days` after a newer
    one replaced it, the newest `keep_versions` old versions always kept; a delete marker with nothing
    behind it goes; an upload never completed is aborted after 7 days."""
    return {"ID": LIFECYCLE_ID, "Filter": {"Prefix": ""}, "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": noncurrent_days, "NewerNoncurrentVersions": keep_versions},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": MULTIPART_DAYS}}


def describe_lifecycle(rule: dict[str, Any]) -> str:
    old = rule["NoncurrentVersionExpiration"]
    return (f"old versions expire {old['NoncurrentDays']} days after they are replaced, the newest "
            f"{old['NewerNoncurrentVersions']} kept; incomplete multipart uploads aborted after "
            f"{rule['AbortIncompleteMultipartUpload']['DaysAfterInitiation']} days")


def _rule_says(rule: dict[str, Any]) -> dict[str, Any]:
    """What a lifecycle rule does, in one form (S3 may return the whole-bucket filter as {} or a Prefix)."""
    prefix = rule.get("Prefix", (rule.get("Filter") or {}).get("Prefix", ""))
    other_filters = set(rule.get("Filter") or {}) - {"Prefix"}
    return {"prefix": prefix or "", "filters": sorted(other_filters), "status": rule.get("Status"),
            **{k: rule.get(k) for k in ("Expiration", "NoncurrentVersionExpiration", "AbortIncompleteMultipartUpload",
                                        "Transitions", "NoncurrentVersionTransitions")}}


def _lifecycle_action(clients: Clients, bucket: str, account: str, rule: dict[str, Any],
                      found: list[str]) -> Action | None:
    answer = _missing(("NoSuchLifecycleConfiguration",), f"reading bucket {bucket}'s lifecycle",
                      clients.s3.get_bucket_lifecycle_configuration, Bucket=bucket, ExpectedBucketOwner=account)
    rules = (answer or {}).get("Rules", [])
    ours = [r for r in rules if r.get("ID") == LIFECYCLE_ID]
    if ours and _rule_says(ours[0]) == _rule_says(rule):
        found.append(f"bucket {bucket}'s lifecycle: {describe_lifecycle(rule)}")
        return None
    others = [r for r in rules if r.get("ID") != LIFECYCLE_ID]
    kept = f", keeping its {len(others)} other rule(s)" if others else ""
    return Action("lifecycle", f"{'change' if ours else 'add'} rule {LIFECYCLE_ID} in bucket {bucket}'s lifecycle: "
                               f"{describe_lifecycle(rule)}{kept}", {"rules": [*others, rule]})


# Seconds between tries of a key policy naming a role IAM made moments ago (IAM is eventually consistent:
# KMS may not see the role yet and calls the principal invalid).
PRINCIPAL_WAITS = (2.0, 4.0, 8.0, 16.0, 30.0)


def _with_new_principals(doing: str, fn: Callable[..., Any], *, sleep: Callable[[float], None] = time.sleep,
                         **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    for wait in (*PRINCIPAL_WAITS, None):
        try:
            return _call_raw(fn, **kwargs)
        except ClientError as error:
            if _code(error) != "MalformedPolicyDocumentException" or "principal" not in str(error).lower() \
                    or wait is None:
                raise BootstrapError(_aws_line(error, doing)) from None
            sleep(wait)
    return None  # pragma: no cover - the loop returns or raises


def _call_raw(fn: Callable[..., Any], **kwargs: Any) -> Any:
    from botocore.exceptions import BotoCoreError

    try:
        return fn(**kwargs)
    except BotoCoreError as error:
        raise BootstrapError(_aws_line(error, "calling AWS")) from None


# ---------------------------------------------------------------------------------------------
# Apply
# ---------------------------------------------------------------------------------------------


def apply(plan: Plan, clients: Clients | None = None, *, say: Callable[[str], None] = print,
          session: Any | None = None, sleep: Callable[[float], None] = time.sleep) -> str:
    """Carry out the plan's actions in order; returns the KMS key's ARN. Raises BootstrapError
    naming the action that failed (what ran before it stays done: run bootstrap again to finish)."""
    clients = clients or make_clients(plan.region, session)
    key_arn = plan.key_arn
    bucket, account = plan.bucket, plan.account
    for action in plan.actions:
        doing = action.description
        if action.kind == "create-key":
            detail = action.detail
            key = _with_new_principals(doing, clients.kms.create_key, sleep=sleep,
                                       Description=detail["description"], KeyUsage="ENCRYPT_DECRYPT",
                                       KeySpec="SYMMETRIC_DEFAULT", Tags=[KEY_TAG],
                                       Policy=json.dumps(detail["policy"]))["KeyMetadata"]
            if detail["alias"] == plan.alias:
                key_arn = key["Arn"]
            _call(f"turning on rotation of new KMS key {key['KeyId']}", clients.kms.enable_key_rotation,
                  KeyId=key["KeyId"])
            _call(f"naming new KMS key {key['KeyId']} alias/{detail['alias']} (the key exists: schedule its deletion, "
                  "or name it yourself)", clients.kms.create_alias, AliasName=f"alias/{detail['alias']}",
                  TargetKeyId=key["KeyId"])
        elif action.kind == "key-policy":
            _with_new_principals(doing, clients.kms.put_key_policy, sleep=sleep, KeyId=action.detail["key_id"],
                                 PolicyName="default", Policy=json.dumps(action.detail["policy"]))
        elif action.kind == "create-oidc-provider":
            _call(doing, clients.iam.create_open_id_connect_provider, Url=state_access.GITHUB_OIDC_URL,
                  ClientIDList=[state_access.AUDIENCE], ThumbprintList=list(state_access.GITHUB_THUMBPRINTS),
                  Tags=[state_access.ROLE_TAG])
        elif action.kind == "add-oidc-audience":
            _call(doing, clients.iam.add_client_id_to_open_id_connect_provider,
                  OpenIDConnectProviderArn=plan.access.provider_arn if plan.access else "", ClientID=state_access.AUDIENCE)
        elif action.kind == "create-role":
            detail = action.detail
            _call(doing, clients.iam.create_role, RoleName=detail["name"], Tags=[state_access.ROLE_TAG],
                  AssumeRolePolicyDocument=json.dumps(detail["trust"]), MaxSessionDuration=3600,
                  Description="app-update: GitHub Actions role of one stack (python -m rollout bootstrap)")
            _call(doing, clients.iam.put_role_policy, RoleName=detail["name"],
                  PolicyName=state_access.STATE_POLICY_NAME, PolicyDocument=json.dumps(detail["policy"]))
        elif action.kind == "role-trust":
            _call(doing, clients.iam.update_assume_role_policy, RoleName=action.detail["name"],
                  PolicyDocument=json.dumps(action.detail["trust"]))
        elif action.kind == "role-policy":
            _call(doing, clients.iam.put_role_policy, RoleName=action.detail["name"],
                  PolicyName=state_access.STATE_POLICY_NAME, PolicyDocument=json.dumps(action.detail["policy"]))
        elif action.kind == "lifecycle":
            _call(doing, clients.s3.put_bucket_lifecycle_configuration, Bucket=bucket, ExpectedBucketOwner=account,
                  LifecycleConfiguration={"Rules": action.detail["rules"]})
        elif action.kind == "enable-rotation":
            _call(doing, clients.kms.enable_key_rotation, KeyId=action.detail["key_id"])
        elif action.kind == "create-bucket":
            kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectOwnership": "BucketOwnerEnforced"}
            if plan.region != "us-east-1":
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": plan.region}
            _create_bucket(clients, kwargs, bucket)
        elif action.kind == "block-public-access":
            _call(doing, clients.s3.put_public_access_block, Bucket=bucket, ExpectedBucketOwner=account,
                  PublicAccessBlockConfiguration=dict(PUBLIC_ACCESS_BLOCK))
        elif action.kind == "versioning":
            _call(doing, clients.s3.put_bucket_versioning, Bucket=bucket, ExpectedBucketOwner=account,
                  VersioningConfiguration={"Status": "Enabled"})
        elif action.kind == "encryption":
            if key_arn is None:
                key_arn = _call(f"looking up alias/{plan.alias}", clients.kms.describe_key,
                                KeyId=plan.alias_ref)["KeyMetadata"]["Arn"]
            _call(doing, clients.s3.put_bucket_encryption, Bucket=bucket, ExpectedBucketOwner=account,
                  ServerSideEncryptionConfiguration={"Rules": [{
                      "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn},
                      "BucketKeyEnabled": True}]})
        elif action.kind == "policy":
            _call(doing, clients.s3.put_bucket_policy, Bucket=bucket, ExpectedBucketOwner=account,
                  Policy=json.dumps(action.detail["policy"]))
        else:  # pragma: no cover - the plan only makes the kinds above
            raise BootstrapError(f"unknown action {action.kind}")
        say(f"  done: {action.description}")
    if key_arn is None:
        key_arn = _call(f"looking up alias/{plan.alias}", clients.kms.describe_key,
                        KeyId=plan.alias_ref)["KeyMetadata"]["Arn"]
    return key_arn


def _create_bucket(clients: Clients, kwargs: dict[str, Any], bucket: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        clients.s3.create_bucket(**kwargs)
    except ClientError as error:
        if _code(error) == "BucketAlreadyExists":
            raise BootstrapError(f"bucket {bucket} was just taken by another AWS account: choose another --bucket") \
                from None
        if _code(error) == "BucketAlreadyOwnedByYou":
            return
        raise BootstrapError(_aws_line(error, f"creating bucket {bucket}")) from None
    except BotoCoreError as error:
        raise BootstrapError(_aws_line(error, f"creating bucket {bucket}")) from None


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def next_steps(bucket: str, alias: str, stacks: tuple[str, ...] = DEFAULT_STACKS) -> list[str]:
    """The commands a user runs next: log in, and create each stack with its own secrets key."""
    return [f"pulumi login s3://{bucket}",
            *(f"pulumi stack init {stack} --secrets-provider awskms://alias/{alias_name(alias)}-{stack}"
              for stack in stacks)]


def github_steps(access: Access) -> list[str]:
    """What the GitHub repository needs for the roles to be assumable (bootstrap cannot reach GitHub)."""
    keys = " ".join(f"-f 'include_claim_keys[]={k}'" for k in state_access.SUBJECT_CLAIM_KEYS)
    lines = [f"gh api -X PUT repos/{access.repo}/actions/oidc/customization/sub -F use_default=false {keys}"]
    for stack in access.stacks:
        lines.append(f"environment {stack} (deployment branches: main only): AWS_ROLE_ARN="
                     f"{access.role_arn('deploy', stack)}")
        lines.append(f"environment preview-{stack}: AWS_ROLE_ARN={access.role_arn('preview', stack)}")
    lines.append(f"repository variables: PULUMI_STATE_BUCKET={access.bucket} PULUMI_KMS_ALIAS={access.alias} "
                 f"AWS_REGION={access.region}")
    return lines


_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
_PRINCIPAL = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(root|(user|role)/[\w+=,.@/-]+)$")
_STACK = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def options_problems(args: argparse.Namespace) -> list[str]:
    """One line per flag that cannot be used, naming it (before any AWS call)."""
    problems = []
    for flag, value, problem in (("--bucket", args.bucket, bucket_problem(args.bucket)),
                                 ("--kms-alias", args.kms_alias, alias_problem(args.kms_alias))):
        if problem:
            problems.append(f"{flag} {value!r}: {problem}")
    stacks = [s.strip() for s in args.stacks.split(",")]
    if not all(stacks) or not all(_STACK.match(s) for s in stacks):
        problems.append(f"--stacks {args.stacks!r}: stack names separated by commas (letters, digits, _ . -)")
    elif len(set(stacks)) != len(stacks):
        problems.append(f"--stacks {args.stacks!r}: a stack is named twice")
    for arn in args.admin or []:
        if not _PRINCIPAL.match(arn):
            problems.append(f"--admin {arn!r}: must be an IAM user or role ARN, or an account's root "
                            "(arn:aws:iam::123456789012:role/Admin)")
    if args.github_repo is not None and not _REPO.match(args.github_repo):
        problems.append(f"--github-repo {args.github_repo!r}: must be OWNER/REPO")
    if not 1 <= args.noncurrent_days <= 36500:
        problems.append(f"--noncurrent-days {args.noncurrent_days}: must be from 1 to 36500")
    if not 1 <= args.keep_versions <= 100:
        problems.append(f"--keep-versions {args.keep_versions}: must be from 1 to 100 (S3's limit)")
    if not problems and args.github_repo:
        longest = max((f"{alias_name(args.kms_alias).replace('/', '-')}-preview-{s}" for s in stacks), key=len)
        if len(longest) > 64:
            problems.append(f"--kms-alias {args.kms_alias!r}: the role name {longest} would be longer than IAM's 64 "
                            "characters: choose a shorter alias or shorter stack names")
    return problems


def _default_region(session: Any | None = None) -> str | None:
    """AWS_REGION (as the AWS CLI v2 and configure-aws-credentials set it), else boto3's own choice:
    AWS_DEFAULT_REGION, then the profile's region."""
    import boto3
    from botocore.exceptions import BotoCoreError

    if os.environ.get("AWS_REGION"):
        return os.environ["AWS_REGION"]
    try:
        return (session or boto3.Session()).region_name
    except BotoCoreError:  # a profile that does not exist: no region; the AWS calls will say what is wrong
        return None


def cmd_bootstrap(args: argparse.Namespace, *, confirm: Callable[[str, str | None], bool] | None = None,
                  clients: Clients | None = None) -> int:
    """Plan, show, ask (unless --yes), apply, print the next commands."""
    problems = options_problems(args)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    region = args.region or _default_region()
    if not region:
        print("error: --region: no region given and none configured (AWS_REGION, AWS_DEFAULT_REGION or the profile)",
              file=sys.stderr)
        return EXIT_USAGE
    problem = region_problem(region)
    if problem:
        print(f"error: --region: {problem}", file=sys.stderr)
        return EXIT_USAGE
    alias = alias_name(args.kms_alias)
    stacks = tuple(s.strip() for s in args.stacks.split(","))
    try:
        clients = clients or make_clients(region)  # one session and set of clients for the plan and its apply
        found = plan(args.bucket, alias, region, stacks=stacks, admins=tuple(args.admin or ()),
                     repo=args.github_repo, noncurrent_days=args.noncurrent_days, keep_versions=args.keep_versions,
                     clients=clients)
        print(f"State backend s3://{found.bucket} with KMS key alias/{alias} in account {found.account}, {region}:")
        for line in found.found:
            print(f"  ok    {line}")
        if not found.actions:
            print("already set up: nothing to change")
        else:
            for action in found.actions:
                print(f"  + {action.description}")
            if not args.yes:
                if confirm is None:
                    from operations import stacks as stack_ops

                    confirm = stack_ops.confirm_tty
                if not confirm(f"Make these {len(found.actions)} change(s)?", None):
                    print("not confirmed: nothing was changed (pass --yes to skip the question)")
                    return EXIT_FAILED
            apply(found, clients)
            print(f"State backend ready: {len(found.actions)} change(s) made")
    except BootstrapError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print("Next:")
    for line in next_steps(args.bucket, alias, stacks):
        print(f"  {line}")
    if found.access is not None and found.access.repo:
        print("GitHub (the deploy roles trust only deploy.yml on main in these environments):")
        for line in github_steps(found.access):
            print(f"  {line}")
    else:
        print("No --github-repo: no roles were made, and only the administrators may use the keys.")
    return EXIT_OK


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "bootstrap", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="create the team's Pulumi state backend (S3 bucket + KMS key) with boto3, idempotently",
        description="Create, with your current AWS credentials, the team's Pulumi state backend: an S3 bucket "
                    "(versioning, a lifecycle expiring old versions and aborting incomplete uploads, default "
                    "encryption with the KMS key alias/NAME, all public access blocked, a policy refusing requests "
                    "without TLS), one KMS key per stack for its secrets (alias/NAME-STACK), every key with yearly "
                    "rotation and an explicit key policy naming the administrators and, with --github-repo, the "
                    "roles that may use it; with --github-repo also GitHub's OIDC provider and each stack's deploy "
                    "and preview roles (NAME-deploy-STACK, NAME-preview-STACK), each reaching its own stack's state "
                    "only. Shows what it will change and asks first; a second run changes nothing. On an existing "
                    "bucket it strengthens what is weaker and refuses what would take something away (another "
                    "account's bucket, another region, another KMS key, a policy statement of its own name that "
                    "says otherwise, a public policy, a role of its names that it did not make). Exit 1 on a "
                    "refusal or an AWS error, 2 on a bad name.",
        epilog="example:\n  AWS_PROFILE=shared python -m rollout bootstrap --bucket acme-app-update-state "
               "--kms-alias app-update-state --region us-west-2 --github-repo acme/app-update "
               "--admin arn:aws:iam::123456789012:role/PlatformAdmin\n"
               "then:\n  pulumi login s3://acme-app-update-state\n"
               "  pulumi stack init dev --secrets-provider awskms://alias/app-update-state-dev",
    )
    parser.add_argument("--bucket", required=True, metavar="NAME", help="S3 bucket for the state (global name)")
    parser.add_argument("--kms-alias", required=True, metavar="NAME", help="KMS alias, with or without alias/")
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    parser.add_argument("--stacks", default=",".join(DEFAULT_STACKS), metavar="A,B,C",
                        help="the stacks in pipeline order, each with its own secrets key alias/NAME-STACK "
                             f"(default {','.join(DEFAULT_STACKS)})")
    parser.add_argument("--admin", action="append", metavar="ARN",
                        help="an IAM principal the key policies name as administrator (repeat; you are always one)")
    parser.add_argument("--github-repo", metavar="OWNER/REPO",
                        help="make GitHub's OIDC provider and each stack's deploy and preview roles for this repository")
    parser.add_argument("--noncurrent-days", type=int, default=DEFAULT_NONCURRENT_DAYS, metavar="DAYS",
                        help=f"days an old version of a state file is kept (default {DEFAULT_NONCURRENT_DAYS})")
    parser.add_argument("--keep-versions", type=int, default=DEFAULT_KEEP_VERSIONS, metavar="N",
                        help=f"old versions of each state file always kept (default {DEFAULT_KEEP_VERSIONS}, at most 100)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=cmd_bootstrap)
