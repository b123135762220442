"""`rollout bootstrap` against moto's AWS: first run, second run, a weaker bucket, every refusal."""

import argparse
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.kms import models as kms_models

from operations import bootstrap

ACCOUNT = "123456789012"  # moto's account
OTHER_ACCOUNT = "111111111111"
REGION = "us-west-2"
BUCKET = "acme-app-update-state"
ALIAS = "app-update-state"
OTHERS_STATEMENT = {"Sid": "ReadForAuditors", "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:role/auditor"},
                    "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{BUCKET}/*"}


NOWHERE = "/nonexistent/app-update-tests"  # no AWS config or credentials file is read


pytestmark = pytest.mark.usefixtures("shared_botocore_data")


@pytest.fixture
def aws_env(monkeypatch):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION",
                "MOTO_ACCOUNT_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{NOWHERE}/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{NOWHERE}/credentials")


_CACHE: dict = {}


def shared_session():
    """One boto3 session and one client per service and region for the module: creating them is
    most of the time these tests take otherwise (moto answers whichever mock is active). The
    credentials are fake; the tests of missing credentials build fresh sessions."""
    if "session" not in _CACHE:
        _CACHE["session"] = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                          region_name=REGION)
    return _CACHE["session"]


def client(service, region=REGION):
    if (service, region) not in _CACHE:
        _CACHE[service, region] = shared_session().client(service, region_name=region)
    return _CACHE[service, region]


def shared_clients(region, session=None):
    return bootstrap.Clients(sts=client("sts", region), s3=client("s3", region), kms=client("kms", region),
                             iam=client("iam", region))


_PRIVATE_KEYS: dict = {}
_GENERATE_PRIVATE_KEY = kms_models.generate_private_key


def reused_private_key(key_spec):
    """moto gives every KMS key it creates a private key for signing, a symmetric one an RSA-2048 key
    too (~80 ms of CPU each, at random). Bootstrap never signs or verifies: one key per kind serves
    the module. (The key's spec and usage, which bootstrap does check, are kept apart from it.)"""
    kind = "RSA_2048" if key_spec == "SYMMETRIC_DEFAULT" else key_spec
    if kind not in _PRIVATE_KEYS:
        _PRIVATE_KEYS[kind] = _GENERATE_PRIVATE_KEY(kind)
    return _PRIVATE_KEYS[kind]


def s3_keeps_newer_noncurrent_versions(monkeypatch):
    """moto 5.2.5 drops NoncurrentVersionExpiration.NewerNoncurrentVersions from a lifecycle rule, which
    S3 keeps and returns: keep it too, so what bootstrap wrote is what the tests read back."""
    from moto.s3 import models, responses

    real_set, real_get = models.FakeBucket.set_lifecycle, responses.S3Response.get_bucket_lifecycle

    def set_lifecycle(bucket, rules):
        real_set(bucket, rules)
        for model, given in zip(bucket.rules, rules, strict=True):
            newer = (given.get("NoncurrentVersionExpiration") or {}).get("NewerNoncurrentVersions")
            model.newer_noncurrent_versions = None if newer is None else int(newer)

    def get_bucket_lifecycle(response):
        bucket = response.backend.get_bucket(response.bucket_name)
        real_result = responses.ActionResult

        def result(data):
            for rule, model in zip(data.get("Rules", []), bucket.rules, strict=True):
                newer = getattr(model, "newer_noncurrent_versions", None)
                if newer is not None and "NoncurrentVersionExpiration" in rule:
                    rule["NoncurrentVersionExpiration"]["NewerNoncurrentVersions"] = newer
            return real_result(data)

        responses.ActionResult = result
        try:
            return real_get(response)
        finally:
            responses.ActionResult = real_result

    monkeypatch.setattr(models.FakeBucket, "set_lifecycle", set_lifecycle)
    monkeypatch.setattr(responses.S3Response, "get_bucket_lifecycle", get_bucket_lifecycle)


@pytest.fixture
def aws(aws_env, monkeypatch):
    with mock_aws():
        monkeypatch.setattr(bootstrap, "make_clients", shared_clients)
        monkeypatch.setattr(kms_models, "generate_private_key", reused_private_key)
        s3_keeps_newer_noncurrent_versions(monkeypatch)
        yield


def s3():
    return client("s3")


def kms():
    return client("kms")


def kinds(plan):
    return [a.kind for a in plan.actions]


STACKS = ("dev", "staging", "prod")
CALLER = f"arn:aws:sts::{ACCOUNT}:user/moto"  # moto's caller identity
KEYS = ["create-key"] * 4  # the bucket's, then dev's, staging's and prod's


def key_policy(alias):
    key_id = kms().describe_key(KeyId=f"alias/{alias}")["KeyMetadata"]["KeyId"]
    return json.loads(kms().get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])


def lifecycle_rules(bucket=BUCKET):
    return s3().get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]


def expected_rule(days=bootstrap.DEFAULT_NONCURRENT_DAYS, keep=bootstrap.DEFAULT_KEEP_VERSIONS):
    return {"ID": bootstrap.LIFECYCLE_ID, "Filter": {"Prefix": ""}, "Status": "Enabled",
            "Expiration": {"ExpiredObjectDeleteMarker": True},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days, "NewerNoncurrentVersions": keep},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}


def assert_backend_is_complete(bucket=BUCKET, alias=ALIAS):
    key = kms().describe_key(KeyId=f"alias/{alias}")["KeyMetadata"]
    assert kms().get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True
    assert s3().get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3().get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key["Arn"]}
    block = s3().get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert block == bootstrap.PUBLIC_ACCESS_BLOCK
    assert expected_rule() in lifecycle_rules(bucket)
    for name in (alias, *(f"{alias}-{stack}" for stack in STACKS)):
        statements = key_policy(name)["Statement"]
        assert statements[0] == {"Sid": "KeyAdministrators", "Effect": "Allow", "Principal": {"AWS": [CALLER]},
                                 "Action": "kms:*", "Resource": "*"}
        assert not any(f":{ACCOUNT}:root" in json.dumps(s) for s in statements)  # IAM alone never opens it
    statements = json.loads(s3().get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
    assert bootstrap.tls_statement(bucket) in statements
    return statements


def weaker_bucket(encryption="AES256", policy=True, versioning=None):
    """A bucket made by hand: no versioning, SSE-S3, public access not blocked, someone's statement."""
    s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3().put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration={
        "BlockPublicAcls": False, "IgnorePublicAcls": False, "BlockPublicPolicy": False, "RestrictPublicBuckets": False})
    if versioning:
        s3().put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": versioning})
    if encryption:
        default = {"SSEAlgorithm": encryption} if encryption == "AES256" else {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": encryption}
        s3().put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": default}]})
    if policy:
        s3().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17",
                                                                 "Statement": [OTHERS_STATEMENT]}))


# ---------------------------------------------------------------------------------------------
# Plan and apply
# ---------------------------------------------------------------------------------------------


def test_first_run_creates_everything(aws):
    plan = bootstrap.plan(BUCKET, ALIAS, REGION)
    assert kinds(plan) == [*KEYS, "create-bucket", "block-public-access", "versioning", "encryption", "policy",
                           "lifecycle"]
    assert all(a.description and "\n" not in a.description for a in plan.actions)
    assert plan.account == ACCOUNT and plan.key_arn is None
    with pytest.raises(ClientError):
        s3().head_bucket(Bucket=BUCKET)  # planning changed nothing
    done = []
    key_arn = bootstrap.apply(plan, say=done.append)
    assert len(done) == 10 and done[0].startswith("  done: create a KMS key for the state bucket's encryption")
    assert assert_backend_is_complete() == [bootstrap.tls_statement(BUCKET)]
    assert key_arn == kms().describe_key(KeyId=f"alias/{ALIAS}")["KeyMetadata"]["Arn"]
    assert s3().get_bucket_location(Bucket=BUCKET)["LocationConstraint"] == REGION
    assert lifecycle_rules() == [expected_rule()]
    # the second run
    again = bootstrap.plan(BUCKET, f"alias/{ALIAS}", REGION)  # alias/ prefix or not: the same alias
    assert again.actions == []
    assert len(again.found) == 14 and again.key_arn == key_arn
    assert len(kms().list_keys()["Keys"]) == 4


def test_a_weaker_bucket_is_strengthened_and_others_statements_kept(aws):
    weaker_bucket()
    plan = bootstrap.plan(BUCKET, ALIAS, REGION)
    assert kinds(plan) == [*KEYS, "versioning", "encryption", "policy", "lifecycle", "block-public-access"]
    described = {a.kind: a.description for a in plan.actions}
    assert "now: off" in described["versioning"]
    assert "now: SSE-S3 (AES256)" in described["encryption"]
    assert "keeping its 1 other statement(s)" in described["policy"]
    assert "BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets" in described[
        "block-public-access"]
    bootstrap.apply(plan, say=lambda line: None)
    statements = assert_backend_is_complete()
    assert statements == [OTHERS_STATEMENT, bootstrap.tls_statement(BUCKET)]
    assert bootstrap.plan(BUCKET, ALIAS, REGION).actions == []


def test_suspended_versioning_and_no_encryption_are_fixed(aws):
    weaker_bucket(encryption=None, policy=False, versioning="Suspended")
    plan = bootstrap.plan(BUCKET, ALIAS, REGION)
    described = {a.kind: a.description for a in plan.actions}
    assert "now: suspended" in described["versioning"] and "now: none" in described["encryption"]
    assert "keeping" not in described["policy"]


def test_an_existing_key_without_rotation_gets_rotation(aws):
    key = kms().create_key(Description="made by hand")["KeyMetadata"]
    kms().create_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=key["KeyId"])
    plan = bootstrap.plan(BUCKET, ALIAS, REGION)
    assert kinds(plan)[:2] == ["enable-rotation", "key-policy"] and kinds(plan)[2:5] == KEYS[1:]
    bootstrap.apply(plan, say=lambda line: None)
    assert_backend_is_complete()
    assert len(kms().list_keys()["Keys"]) == 4


def test_an_existing_tls_only_statement_under_another_sid_counts(aws):
    statement = {**bootstrap.tls_statement(BUCKET), "Sid": "TheirOwnTlsRule"}
    weaker_bucket(policy=False)
    s3().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
    assert "policy" not in kinds(bootstrap.plan(BUCKET, ALIAS, REGION))


# ---------------------------------------------------------------------------------------------
# Refusals: nothing changes
# ---------------------------------------------------------------------------------------------


def refused(match):
    with pytest.raises(bootstrap.BootstrapError, match=match) as caught:
        bootstrap.plan(BUCKET, ALIAS, REGION)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def test_refuses_a_bucket_of_another_account(aws, monkeypatch):
    monkeypatch.setenv("MOTO_ACCOUNT_ID", OTHER_ACCOUNT)
    s3().create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.delenv("MOTO_ACCOUNT_ID")
    refused("belongs to another AWS account")


def test_refuses_a_bucket_it_may_not_read():
    """S3's answer for another account's bucket (ExpectedBucketOwner) or one we may not see: 403."""
    clients = stubbed_clients()
    for _ in range(4):  # the bucket's key and the three stacks' keys: none yet
        clients.stubbers["kms"].add_client_error("describe_key", "NotFoundException", http_status_code=400)
    clients.stubbers["s3"].add_client_error("head_bucket", "403", "Forbidden", http_status_code=403)
    with pytest.raises(bootstrap.BootstrapError, match="belongs to another AWS account, or these credentials may not"):
        bootstrap.plan(BUCKET, ALIAS, REGION, clients=clients)


def test_refuses_a_bucket_in_another_region(aws):
    client("s3", "eu-west-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert refused("is in region eu-west-1, not us-west-2").endswith("pass --region eu-west-1")


def test_refuses_to_rekey_a_bucket_encrypted_with_another_key(aws):
    other = kms().create_key(Description="someone else's")["KeyMetadata"]
    weaker_bucket(encryption=other["Arn"])
    refused("encrypted by default with another KMS key")
    key = kms().create_key(Description="ours")["KeyMetadata"]  # the alias exists, on another key
    kms().create_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=key["KeyId"])
    refused("never re-keys a bucket")
    assert s3().get_bucket_versioning(Bucket=BUCKET).get("Status") is None  # nothing changed


def test_accepts_a_bucket_already_encrypted_with_the_alias_key_by_id(aws):
    key = kms().create_key(Description="ours")["KeyMetadata"]
    kms().create_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=key["KeyId"])
    weaker_bucket(encryption=key["KeyId"])  # the key id, not its ARN: the same key
    assert "encryption" not in kinds(bootstrap.plan(BUCKET, ALIAS, REGION))


def test_refuses_a_policy_statement_under_its_sid_that_says_otherwise(aws):
    weaker_bucket(policy=False)
    mine = {**bootstrap.tls_statement(BUCKET), "Condition": {"Bool": {"aws:SecureTransport": "true"}}}
    s3().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [mine]}))
    refused(f"has a statement {bootstrap.TLS_SID} that is not bootstrap's")


def test_refuses_a_public_bucket_policy(aws):
    weaker_bucket(policy=False)
    public = {"Sid": "Website", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
              "Resource": f"arn:aws:s3:::{BUCKET}/*"}
    s3().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps({"Version": "2012-10-17", "Statement": [public]}))
    refused("allows access to everyone \\(statement Website\\)")


@pytest.mark.parametrize("setup, match", [
    (lambda k: kms().disable_key(KeyId=k), "which is Disabled"),
    (lambda k: kms().schedule_key_deletion(KeyId=k, PendingWindowInDays=7), "which is PendingDeletion"),
])
def test_refuses_an_alias_on_an_unusable_key(aws, setup, match):
    key = kms().create_key(Description="ours")["KeyMetadata"]
    kms().create_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=key["KeyId"])
    setup(key["KeyId"])
    refused(match)


def test_refuses_an_asymmetric_key(aws):
    key = kms().create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    kms().create_alias(AliasName=f"alias/{ALIAS}", TargetKeyId=key["KeyId"])
    refused("symmetric ENCRYPT_DECRYPT key")


# ---------------------------------------------------------------------------------------------
# AWS failures: one line
# ---------------------------------------------------------------------------------------------


class StubbedClients(bootstrap.Clients):
    stubbers: dict


def stubbed_clients():
    clients = StubbedClients.from_session(shared_session(), REGION)
    clients.stubbers = {}
    for name in ("sts", "s3", "kms", "iam"):  # no call reaches AWS: one not stubbed fails
        stubber = Stubber(getattr(clients, name))
        stubber.activate()
        clients.stubbers[name] = stubber
    clients.stubbers["sts"].add_response("get_caller_identity", {
        "Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "AIDA"})
    return clients


def test_access_denied_is_one_line():
    clients = stubbed_clients()
    clients.stubbers["kms"].add_client_error("describe_key", "AccessDeniedException", "not allowed: kms:DescribeKey",
                                             http_status_code=400)
    with pytest.raises(bootstrap.BootstrapError) as caught:
        bootstrap.plan(BUCKET, ALIAS, REGION, clients=clients)
    assert str(caught.value) == f"access denied while looking up KMS alias alias/{ALIAS}: not allowed: kms:DescribeKey"


def test_no_credentials_is_one_line(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(bootstrap.BootstrapError, match="^no usable AWS credentials"):
        bootstrap.plan(BUCKET, ALIAS, REGION)


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "a" * 64, "Upper-Case", "under_score", "-leading", "trailing-", "two..dots",
                                  "dot.-hyphen", "192.168.1.1", "xn--punycode", "sthree-x", "name-s3alias",
                                  "name--ol-s3", "name.mrap", "name--x-s3"])
def test_bad_bucket_names(name):
    assert bootstrap.bucket_problem(name)


@pytest.mark.parametrize("name", ["abc", "acme-app-update-state", "a.b.c", "a" * 63, "0-state"])
def test_good_bucket_names(name):
    assert bootstrap.bucket_problem(name) is None


@pytest.mark.parametrize("name", ["", "alias/", "aws/s3", "alias/aws/ebs", "has space", "dollar$", "x" * 251])
def test_bad_alias_names(name):
    assert bootstrap.alias_problem(name)


@pytest.mark.parametrize("name", ["app-update-state", "alias/app-update-state", "team/app_update-1"])
def test_good_alias_names(name):
    assert bootstrap.alias_problem(name) is None


# ---------------------------------------------------------------------------------------------
# The command line, through a parser built with register()
# ---------------------------------------------------------------------------------------------


def cli(*words):
    parser = argparse.ArgumentParser(prog="python -m rollout")
    verbs = parser.add_subparsers(dest="verb")
    bootstrap.register(verbs)
    args = parser.parse_args(["bootstrap", *words])
    return args.func(args)


NEXT = [f"  pulumi login s3://{BUCKET}",
        *(f"  pulumi stack init {stack} --secrets-provider awskms://alias/{ALIAS}-{stack}" for stack in STACKS),
        "No --github-repo: no roles were made, and only the administrators may use the keys."]


def test_cli_yes_then_again(aws, capsys):
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS, "--yes") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"State backend s3://{BUCKET} with KMS key alias/{ALIAS} in account {ACCOUNT}, {REGION}:"
    assert "State backend ready: 10 change(s) made" in out
    assert out[-6:] == ["Next:", *NEXT]
    assert cli("--bucket", BUCKET, "--kms-alias", f"alias/{ALIAS}", "--region", REGION) == 0  # no --yes needed
    out = capsys.readouterr().out.splitlines()
    assert "already set up: nothing to change" in out
    assert not [line for line in out if line.startswith("  + ")]
    assert out[-6:] == ["Next:", *NEXT]


def test_cli_without_a_terminal_changes_nothing(aws, capsys):
    # pytest's stdin is no terminal: operations.stacks.confirm_tty confirms nothing
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS) == 1
    out = capsys.readouterr().out
    assert "  + create S3 bucket" in out
    assert "not confirmed: nothing was changed (pass --yes to skip the question)" in out
    assert "Next:" not in out
    assert s3().list_buckets()["Buckets"] == [] and kms().list_aliases()["Aliases"] == [a for a in kms().list_aliases()[
        "Aliases"] if a["AliasName"].startswith("alias/aws/")]


def test_cli_asks_through_confirm_tty(aws, capsys, monkeypatch):
    from operations import stacks

    asked = []
    monkeypatch.setattr(stacks, "confirm_tty", lambda prompt, expected: asked.append((prompt, expected)) or True)
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS) == 0
    assert asked == [("Make these 10 change(s)?", None)]
    assert_backend_is_complete()


def test_cli_refusal_is_one_error_line(aws, capsys):
    client("s3", "eu-west-1").create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS, "--yes") == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"error: bucket {BUCKET} is in region eu-west-1, not {REGION}: "
                                         "pass --region eu-west-1"]
    assert "Traceback" not in captured.out + captured.err
    assert kms().list_aliases()["Aliases"] == [a for a in kms().list_aliases()["Aliases"]
                                               if a["AliasName"].startswith("alias/aws/")]  # no key made either


def test_cli_no_credentials(aws_env, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS, "--yes") == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: no usable AWS credentials")


@pytest.mark.parametrize("words, flag", [
    (["--bucket", "Bad_Bucket", "--kms-alias", ALIAS], "--bucket 'Bad_Bucket'"),
    (["--bucket", BUCKET, "--kms-alias", "aws/s3"], "--kms-alias 'aws/s3'"),
    (["--bucket", BUCKET, "--kms-alias", ALIAS, "--region", "mars-1"], "--region"),
])
def test_cli_bad_input_exits_2_naming_the_flag(aws_env, capsys, words, flag):
    assert cli(*words) == 2  # before any AWS call: no moto here, and nothing was attempted
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag}")


def test_cli_without_a_region(aws_env, capsys, monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS) == 2
    assert capsys.readouterr().err.startswith("error: --region: no region given")


def test_cli_takes_the_region_from_aws_region(aws, capsys, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # what configure-aws-credentials sets, over the default
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS) == 1  # no terminal: not confirmed
    assert capsys.readouterr().out.startswith(f"State backend s3://{BUCKET} with KMS key alias/{ALIAS} in account "
                                              f"{ACCOUNT}, eu-central-1:")


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit):
        cli("--help")
    out = capsys.readouterr().out
    assert "example:" in out and "--bucket" in out and "--kms-alias" in out and "--yes" in out


# ---------------------------------------------------------------------------------------------
# Roles for GitHub Actions, key policies per stack, lifecycle: read back from moto
# ---------------------------------------------------------------------------------------------

REPO = "acme/app-update"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/PlatformAdmin"
OIDC = "token.actions.githubusercontent.com"


def iam():
    return client("iam")


def role_arn(kind, stack):
    return f"arn:aws:iam::{ACCOUNT}:role/{ALIAS}-{kind}-{stack}"


def team_plan(**overrides):
    given = {"admins": (ADMIN,), "repo": REPO, **overrides}
    return bootstrap.plan(BUCKET, ALIAS, REGION, **given)


def bootstrapped(**overrides):
    bootstrap.apply(team_plan(**overrides), say=lambda line: None, sleep=pytest.fail)
    return team_plan(**overrides)


def allowed(policy, action):
    """The principals a key policy lets do `action` (kms:* included), and any statement's conditions."""
    found = {}
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement["Effect"] == "Allow" and (action in actions or "kms:*" in actions):
            principals = statement["Principal"]["AWS"]
            for arn in principals if isinstance(principals, list) else [principals]:
                found[arn] = statement.get("Condition")
    return found


def test_the_team_setup_reads_back_as_documented_and_a_second_run_changes_nothing(aws):
    plan = team_plan()
    roles = [(k, s) for s in STACKS for k in ("deploy", "preview")]
    assert kinds(plan) == ["create-oidc-provider", *["create-role"] * 6, *KEYS, "create-bucket",
                           "block-public-access", "versioning", "encryption", "policy", "lifecycle"]
    bootstrap.apply(plan, say=lambda line: None, sleep=pytest.fail)
    again = team_plan()
    assert again.actions == [] and len(again.found) == 1 + 2 * 6 + 4 * 2 + 6

    provider = iam().get_open_id_connect_provider(
        OpenIDConnectProviderArn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}")
    assert provider["ClientIDList"] == ["sts.amazonaws.com"]
    for kind, stack in roles:
        role = iam().get_role(RoleName=f"{ALIAS}-{kind}-{stack}")["Role"]
        [statement] = role["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"}
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
        if kind == "deploy":  # this workflow, on main, in the stack's environment: nothing else
            assert statement["Condition"] == {"StringEquals": {
                f"{OIDC}:aud": "sts.amazonaws.com",
                f"{OIDC}:sub": f"repo:{REPO}:environment:{stack}:job_workflow_ref:{REPO}/.github/workflows/"
                               "deploy.yml@refs/heads/main"}}
        else:
            assert statement["Condition"] == {
                "StringEquals": {f"{OIDC}:aud": "sts.amazonaws.com"},
                "StringLike": {f"{OIDC}:sub": f"repo:{REPO}:environment:preview-{stack}:job_workflow_ref:{REPO}/"
                                              ".github/workflows/pull-request.yml@*"}}
        inline = iam().get_role_policy(RoleName=f"{ALIAS}-{kind}-{stack}", PolicyName="app-update-state")
        resources = json.dumps(inline["PolicyDocument"])
        for other in set(STACKS) - {stack}:
            reaches = f"app-update/{other}" in resources
            assert reaches == (kind == "deploy" and STACKS.index(other) == STACKS.index(stack) - 1), (kind, stack)
        assert f"arn:aws:s3:::{BUCKET}/.pulumi/stacks/app-update/{stack}.json*" in resources


def test_one_stacks_preview_role_cannot_decrypt_another_stacks_secrets(aws):
    bootstrapped()
    for stack in STACKS:
        policy = key_policy(f"{ALIAS}-{stack}")
        decrypt = set(allowed(policy, "kms:Decrypt"))
        after = STACKS[STACKS.index(stack) + 1] if stack != STACKS[-1] else None
        expected = {ADMIN, CALLER, role_arn("deploy", stack), role_arn("preview", stack)}
        if after:
            expected.add(role_arn("deploy", after))  # it promotes from this stack: it reads its outputs
        assert decrypt == expected, stack
        assert set(allowed(policy, "kms:Encrypt")) == {ADMIN, CALLER, role_arn("deploy", stack)}
        for other in set(STACKS) - {stack}:
            assert role_arn("preview", other) not in decrypt
    # The state bucket's key: every role, but only through S3 in this region (S3's policy picks the objects).
    bucket_key = key_policy(ALIAS)
    through = allowed(bucket_key, "kms:Decrypt")
    assert set(through) == {ADMIN, CALLER, *(role_arn(k, s) for s in STACKS for k in ("deploy", "preview"))}
    for arn, condition in through.items():
        if arn not in (ADMIN, CALLER):
            assert condition == {"StringEquals": {"kms:ViaService": f"s3.{REGION}.amazonaws.com",
                                                  "kms:CallerAccount": ACCOUNT}}
    assert set(allowed(bucket_key, "kms:GenerateDataKey")) == {ADMIN, CALLER, *(role_arn("deploy", s) for s in STACKS)}


def test_an_existing_key_with_the_default_policy_gets_an_explicit_one(aws):
    key = kms().create_key(Description="made by hand")["KeyMetadata"]  # moto's default: the account root
    kms().create_alias(AliasName=f"alias/{ALIAS}-prod", TargetKeyId=key["KeyId"])
    assert f":{ACCOUNT}:root" in json.dumps(key_policy(f"{ALIAS}-prod"))
    plan = team_plan()
    [action] = [a for a in plan.actions if a.kind == "key-policy"]
    assert f"alias/{ALIAS}-prod" in action.description and "PlatformAdmin" in action.description
    bootstrap.apply(plan, say=lambda line: None, sleep=pytest.fail)
    policy = key_policy(f"{ALIAS}-prod")
    assert f":{ACCOUNT}:root" not in json.dumps(policy)
    assert policy == bootstrap.Access(ACCOUNT, "aws", REGION, BUCKET, ALIAS, "app-update", STACKS,
                                      (ADMIN, CALLER), REPO).stack_key_policy("prod")
    assert team_plan().actions == []


def test_a_changed_role_trust_or_policy_is_put_back_and_nothing_else(aws):
    bootstrapped()
    name = f"{ALIAS}-deploy-staging"
    loose = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{OIDC}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringLike": {f"{OIDC}:sub": f"repo:{REPO}:*"}}}]}  # any branch: what the issue found
    iam().update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(loose))
    iam().delete_role_policy(RoleName=name, PolicyName="app-update-state")
    plan = team_plan()
    assert [(a.kind, a.detail["name"]) for a in plan.actions] == [("role-trust", name), ("role-policy", name)]
    bootstrap.apply(plan, say=lambda line: None, sleep=pytest.fail)
    assert team_plan().actions == []
    sub = iam().get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert sub["StringEquals"][f"{OIDC}:sub"].endswith("deploy.yml@refs/heads/main")


def test_refuses_a_role_of_its_name_it_did_not_make(aws):
    iam().create_role(RoleName=f"{ALIAS}-preview-dev", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": []}))
    with pytest.raises(bootstrap.BootstrapError, match=f"IAM role {ALIAS}-preview-dev exists and was not made by"):
        team_plan()
    assert kms().list_aliases()["Aliases"] == [a for a in kms().list_aliases()["Aliases"]
                                               if a["AliasName"].startswith("alias/aws/")]


def test_lifecycle_is_configurable_and_keeps_others_rules(aws):
    weaker_bucket(policy=False)
    theirs = {"ID": "logs-to-glacier", "Filter": {"Prefix": "logs/"}, "Status": "Enabled",
              "Transitions": [{"Days": 30, "StorageClass": "GLACIER"}]}
    s3().put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [theirs]})
    plan = bootstrap.plan(BUCKET, ALIAS, REGION, noncurrent_days=30, keep_versions=5)
    [action] = [a for a in plan.actions if a.kind == "lifecycle"]
    assert action.description == (
        f"add rule {bootstrap.LIFECYCLE_ID} in bucket {BUCKET}'s lifecycle: old versions expire 30 days after they "
        "are replaced, the newest 5 kept; incomplete multipart uploads aborted after 7 days, keeping its 1 other "
        "rule(s)")
    bootstrap.apply(plan, say=lambda line: None)
    assert lifecycle_rules() == [theirs, expected_rule(30, 5)]
    assert "lifecycle" not in kinds(bootstrap.plan(BUCKET, ALIAS, REGION, noncurrent_days=30, keep_versions=5))
    # Other numbers change our rule, and only ours.
    changed = bootstrap.plan(BUCKET, ALIAS, REGION, noncurrent_days=60, keep_versions=5)
    assert [a.description.split(":")[0] for a in changed.actions if a.kind == "lifecycle"] == [
        f"change rule {bootstrap.LIFECYCLE_ID} in bucket {BUCKET}'s lifecycle"]
    bootstrap.apply(changed, say=lambda line: None)
    assert lifecycle_rules() == [theirs, expected_rule(60, 5)]


def test_a_key_policy_naming_a_role_iam_just_made_is_tried_again():
    """IAM is eventually consistent: KMS may call a new role an invalid principal for a few seconds."""
    clients = stubbed_clients()
    invalid = "MalformedPolicyDocumentException"
    for _ in range(2):
        clients.stubbers["kms"].add_client_error("put_key_policy", invalid, "Policy contains a statement with one or "
                                                 "more invalid principals.", http_status_code=400)
    clients.stubbers["kms"].add_response("put_key_policy", {})
    slept = []
    plan = bootstrap.Plan(BUCKET, ALIAS, REGION, ACCOUNT, "aws", "arn:aws:kms:key", [
        bootstrap.Action("key-policy", "replace the key policy", {"key_id": "k", "policy": {"Statement": []}})], [])
    bootstrap.apply(plan, clients, say=lambda line: None, sleep=slept.append)
    assert slept == list(bootstrap.PRINCIPAL_WAITS[:2])


def test_another_malformed_key_policy_is_not_tried_again():
    clients = stubbed_clients()
    clients.stubbers["kms"].add_client_error("put_key_policy", "MalformedPolicyDocumentException",
                                             "The new key policy will not allow you to update the key policy in the "
                                             "future.", http_status_code=400)
    plan = bootstrap.Plan(BUCKET, ALIAS, REGION, ACCOUNT, "aws", "arn:aws:kms:key", [
        bootstrap.Action("key-policy", "replace the key policy", {"key_id": "k", "policy": {"Statement": []}})], [])
    with pytest.raises(bootstrap.BootstrapError, match="^AWS said MalformedPolicyDocumentException while replace"):
        bootstrap.apply(plan, clients, say=lambda line: None, sleep=pytest.fail)


@pytest.mark.parametrize("caller, expected", [
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/Admin/alice", f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso/Admin"),
    (f"arn:aws:sts::{ACCOUNT}:assumed-role/Other/bob", f"arn:aws:iam::{ACCOUNT}:role/Other"),
    (f"arn:aws:iam::{ACCOUNT}:user/carol", f"arn:aws:iam::{ACCOUNT}:user/carol"),
    (f"arn:aws:iam::{ACCOUNT}:root", f"arn:aws:iam::{ACCOUNT}:root"),
])
def test_the_caller_named_administrator_is_its_iam_principal(caller, expected):
    from operations.state_access import principal_arn

    paths = {"Admin": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso/Admin"}
    assert principal_arn(caller, paths.get) == expected


def test_cli_with_a_github_repo_says_what_github_needs(aws, capsys):
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS, "--github-repo", REPO, "--admin", ADMIN, "--yes") == 0
    out = capsys.readouterr().out
    assert "State backend ready: 17 change(s) made" in out
    assert (f"  gh api -X PUT repos/{REPO}/actions/oidc/customization/sub -F use_default=false "
            "-f 'include_claim_keys[]=repo' -f 'include_claim_keys[]=context' "
            "-f 'include_claim_keys[]=job_workflow_ref'") in out
    assert f"  environment prod (deployment branches: main only): AWS_ROLE_ARN={role_arn('deploy', 'prod')}" in out
    assert f"  environment preview-dev: AWS_ROLE_ARN={role_arn('preview', 'dev')}" in out
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS, "--github-repo", REPO, "--admin", ADMIN) == 0
    assert "already set up: nothing to change" in capsys.readouterr().out


@pytest.mark.parametrize("words, flag", [
    (["--github-repo", "not a repo"], "--github-repo 'not a repo'"),
    (["--admin", "alice"], "--admin 'alice'"),
    (["--stacks", "dev,,prod"], "--stacks 'dev,,prod'"),
    (["--stacks", "dev,dev"], "--stacks 'dev,dev': a stack is named twice"),
    (["--keep-versions", "101"], "--keep-versions 101"),
    (["--noncurrent-days", "0"], "--noncurrent-days 0"),
    (["--github-repo", REPO, "--stacks", "a-very-long-stack-name-that-is-too-long-for-iam"], "--kms-alias"),
])
def test_cli_bad_team_options_exit_2_naming_the_flag(aws_env, capsys, words, flag):
    assert cli("--bucket", BUCKET, "--kms-alias", ALIAS, *words) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {flag}")
