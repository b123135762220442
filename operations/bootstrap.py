"""`python -m rollout bootstrap`: the team's Pulumi state backend, created with boto3, idempotently.

An S3 bucket for the state (versioning on, default encryption with the team's KMS key, every
public access blocked, a bucket policy refusing requests without TLS) and a KMS key with yearly
rotation under `alias/NAME`, which also encrypts the stacks' secrets
(`--secrets-provider awskms://alias/NAME`).

`plan` looks at the account and returns the actions still needed, each with one line saying
what it changes; `apply` carries them out in order. A second run plans nothing.

On what exists already, bootstrap changes only what makes it weaker than the above, and says so:
versioning off or suspended is turned on; a public access block that is missing or partly off
is set in full; default encryption that is none or SSE-S3 becomes SSE-KMS with the team's key;
the TLS-only statement is added to an existing bucket policy, every other statement kept as is;
rotation of the team's key is turned on.

It refuses, changing nothing, when a change would take something away from someone:
- a bucket owned by another account, or one these credentials may not read;
- a bucket in another region than --region (it names the bucket's region);
- a bucket encrypted by default with another KMS key (including the AWS managed aws/s3 key):
  bootstrap never re-keys a bucket, as objects already written stay under the old key;
- a bucket policy with a statement under bootstrap's Sid that says something else, or one that
  allows access to everyone ("Principal": "*" without a condition): a state bucket must not;
- an alias on a KMS key that is disabled, pending deletion, AWS managed, not symmetric, or not
  for encryption.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
TLS_SID = "DenyInsecureTransport"
KEY_DESCRIPTION = "app-update: Pulumi state bucket encryption and stack secrets (python -m rollout bootstrap)"
KEY_TAG = {"TagKey": "app-update", "TagValue": "pulumi-state"}
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
    kind: str  # create-key, enable-rotation, create-bucket, block-public-access, versioning, encryption, policy
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

    @property
    def alias_ref(self) -> str:
        return f"alias/{self.alias}"


@dataclass
class Clients:
    sts: Any
    s3: Any
    kms: Any

    @classmethod
    def from_session(cls, session: Any, region: str) -> Clients:
        return cls(sts=session.client("sts", region_name=region), s3=session.client("s3", region_name=region),
                   kms=session.client("kms", region_name=region))


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


def plan(bucket: str, alias: str, region: str, *, session: Any | None = None,
         clients: Clients | None = None) -> Plan:
    """What the account needs for the backend: inspects, changes nothing. Raises BootstrapError."""
    alias = alias_name(alias)
    clients = clients or make_clients(region, session)
    identity = _call("checking the AWS credentials (sts get-caller-identity)", clients.sts.get_caller_identity)
    account = identity["Account"]
    partition = identity["Arn"].split(":")[1] if identity.get("Arn", "").count(":") >= 2 else "aws"
    actions: list[Action] = []
    found: list[str] = []

    # The KMS key first: the bucket's encryption depends on it.
    key = _inspect_key(clients, alias)
    key_arn = None
    if key is None:
        actions.append(Action("create-key", f"create a KMS key (symmetric, yearly automatic rotation) named "
                                            f"alias/{alias}"))
    else:
        refusal = _key_refusal(alias, key)
        if refusal:
            raise BootstrapError(refusal)
        key_arn = key["Arn"]
        rotation = _call(f"reading the rotation of KMS key {key['KeyId']}", clients.kms.get_key_rotation_status,
                         KeyId=key["KeyId"])
        if rotation.get("KeyRotationEnabled"):
            found.append(f"KMS key {key['KeyId']} (alias/{alias}) rotates yearly")
        else:
            actions.append(Action("enable-rotation", f"turn on yearly automatic rotation of KMS key {key['KeyId']} "
                                                     f"(alias/{alias})", {"key_id": key["KeyId"]}))

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
        return Plan(bucket, alias, region, account, partition, key_arn, actions, found)

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
    # Last on an existing bucket: with BlockPublicPolicy on, S3 refuses to write a policy it deems
    # public, and the policy kept from before is not ours to judge beyond the check above.
    if off:
        actions.append(Action("block-public-access", f"block all public access to bucket {bucket} (off now: "
                                                     f"{', '.join(off)})"))
    return Plan(bucket, alias, region, account, partition, key_arn, actions, found)


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
# Apply
# ---------------------------------------------------------------------------------------------


def apply(plan: Plan, clients: Clients | None = None, *, say: Callable[[str], None] = print,
          session: Any | None = None) -> str:
    """Carry out the plan's actions in order; returns the KMS key's ARN. Raises BootstrapError
    naming the action that failed (what ran before it stays done: run bootstrap again to finish)."""
    clients = clients or make_clients(plan.region, session)
    key_arn = plan.key_arn
    bucket, account = plan.bucket, plan.account
    for action in plan.actions:
        doing = action.description
        if action.kind == "create-key":
            key = _call(doing, clients.kms.create_key, Description=KEY_DESCRIPTION, KeyUsage="ENCRYPT_DECRYPT",
                        KeySpec="SYMMETRIC_DEFAULT", Tags=[KEY_TAG])["KeyMetadata"]
            key_arn = key["Arn"]
            _call(f"turning on rotation of new KMS key {key['KeyId']}", clients.kms.enable_key_rotation,
                  KeyId=key["KeyId"])
            _call(f"naming new KMS key {key['KeyId']} alias/{plan.alias} (the key exists: schedule its deletion, "
                  "or name it yourself)", clients.kms.create_alias, AliasName=plan.alias_ref, TargetKeyId=key["KeyId"])
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


def next_steps(bucket: str, alias: str) -> list[str]:
    """The two commands a user runs next."""
    return [f"pulumi login s3://{bucket}",
            f"pulumi stack init <stack> --secrets-provider awskms://alias/{alias_name(alias)}"]


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
    """Plan, show, ask (unless --yes), apply, print the next two commands."""
    for flag, value, problem in (("--bucket", args.bucket, bucket_problem(args.bucket)),
                                 ("--kms-alias", args.kms_alias, alias_problem(args.kms_alias))):
        if problem:
            print(f"error: {flag} {value!r}: {problem}", file=sys.stderr)
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
    try:
        clients = clients or make_clients(region)  # one session and set of clients for the plan and its apply
        found = plan(args.bucket, alias, region, clients=clients)
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
                    from operations import stacks

                    confirm = stacks.confirm_tty
                if not confirm(f"Make these {len(found.actions)} change(s)?", None):
                    print("not confirmed: nothing was changed (pass --yes to skip the question)")
                    return EXIT_FAILED
            apply(found, clients)
            print(f"State backend ready: {len(found.actions)} change(s) made")
    except BootstrapError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    print("Next:")
    for line in next_steps(args.bucket, alias):
        print(f"  {line}")
    return EXIT_OK


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser(
        "bootstrap", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="create the team's Pulumi state backend (S3 bucket + KMS key) with boto3, idempotently",
        description="Create, with your current AWS credentials, the team's Pulumi state backend: an S3 bucket "
                    "(versioning, default encryption with the KMS key, all public access blocked, a policy refusing "
                    "requests without TLS) and a KMS key with yearly rotation under alias/NAME, also used for the "
                    "stacks' secrets. Shows what it will change and asks first; a second run changes nothing. On "
                    "an existing bucket it strengthens what is weaker and refuses what would take something away "
                    "(another account's bucket, another region, another KMS key, a policy statement of its own "
                    "name that says otherwise, a public policy). Exit 1 on a refusal or an AWS error, 2 on a bad "
                    "name.",
        epilog="example:\n  AWS_PROFILE=shared python -m rollout bootstrap --bucket acme-app-update-state "
               "--kms-alias app-update-state --region us-west-2\n"
               "then:\n  pulumi login s3://acme-app-update-state\n"
               "  pulumi stack init dev --secrets-provider awskms://alias/app-update-state",
    )
    parser.add_argument("--bucket", required=True, metavar="NAME", help="S3 bucket for the state (global name)")
    parser.add_argument("--kms-alias", required=True, metavar="NAME", help="KMS alias, with or without alias/")
    parser.add_argument("--region", metavar="REGION", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.set_defaults(func=cmd_bootstrap)
