"""`rollout preflight` against moto's AWS: every pass and failure path."""

import json

import boto3
import pytest
import yaml
from moto import mock_aws

from model.config import validate
from operations import preflight
from rollout.cli import main

ACCOUNT = "210987654321"  # moto's account (MOTO_ACCOUNT_ID); 123456789012 is a documentation placeholder
MOTO_ARN = f"arn:aws:sts::{ACCOUNT}:user/moto"
REGION = "us-west-2"
REPO = "app-update/app"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPO}"


pytestmark = pytest.mark.usefixtures("shared_botocore_data")


_CLIENTS: dict = {}


def client(service, region=REGION):
    """The tests' own clients (to push images, make zones), one per service and region for the
    module: moto answers whichever mock is active, in the account MOTO_ACCOUNT_ID names."""
    if (service, region) not in _CLIENTS:
        _CLIENTS[service, region] = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing").client(service, region_name=region)
    return _CLIENTS[service, region]


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("MOTO_ACCOUNT_ID", ACCOUNT)
    # A stand-in for the aws CLI the kubeconfig calls: says who it is, as `aws sts get-caller-identity` does.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "aws"
    stub.write_text('#!/bin/sh\n[ "$1 $2" = "sts get-caller-identity" ] || exit 252\n'
                    'if [ -n "$STUB_AWS_FAIL" ]; then echo "Unable to locate credentials" >&2; exit 253; fi\n'
                    'printf \'{"UserId": "AIDA", "Account": "%s", "Arn": "%s"}\\n\' "${STUB_AWS_ACCOUNT}" "${STUB_AWS_ARN}"\n')
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("STUB_AWS_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("STUB_AWS_ARN", MOTO_ARN)


def push(tag):
    ecr = client("ecr")
    try:
        ecr.create_repository(repositoryName=REPO)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"digest": f"sha256:{tag:0<64}"[:71], "size": 1, "mediaType": "application/vnd.docker.container.image.v1+json"},
                "layers": []}
    ecr.put_image(repositoryName=REPO, imageManifest=json.dumps(manifest), imageTag=tag)


def stack(allowed=None, region=REGION, image=IMAGE, stable="v1", canary="v2"):
    raw = {"cluster": {"mode": "eks"}, "releases": {
        "app": {"strategy": "Canary", "image": image, "replicas": 4,
                "stable": {"tag": stable}, "canary": {"tag": canary, "weight": 25}}}}
    extra = {"aws:region": region}
    if allowed is not None:
        extra["aws:allowedAccountIds"] = allowed
    if region is None:
        raw["cluster"] = {"mode": "kubeconfig"}
        extra = {k: v for k, v in extra.items() if v is not None}
    return validate(raw, "test", extra)


def failures(checks):
    return {c.name: c.detail for c in checks if not c.ok}


@mock_aws
def test_everything_in_place_passes(aws_env):
    push("v1")
    push("v2")
    checks = preflight.run_checks(stack(allowed=[ACCOUNT]))
    assert failures(checks) == {}
    assert {c.name for c in checks} == {"region", "credentials", "aws CLI", "account", "image app"}


@mock_aws
def test_wrong_account_fails(aws_env):
    push("v1")
    push("v2")
    found = failures(preflight.run_checks(stack(allowed=["444455556666"])))
    assert list(found) == ["account"] and "not in aws:allowedAccountIds" in found["account"]


@mock_aws
def test_missing_region_fails(aws_env):
    push("v1")
    push("v2")
    found = failures(preflight.run_checks(stack(region=None)))
    assert list(found) == ["region"] and "aws:region is not set" in found["region"]


@mock_aws
def test_missing_repository_fails(aws_env):
    found = failures(preflight.run_checks(stack()))
    assert "does not exist" in found["image app"]


@mock_aws
def test_missing_tag_fails_naming_the_image(aws_env):
    push("v1")
    checks = preflight.run_checks(stack(canary="v3"))
    found = failures(checks)
    assert found == {"image app": f"{IMAGE}:v3: tag v3 is not in repository {REPO}"}
    assert any(c.ok and c.detail == f"{IMAGE}:v1 exists" for c in checks)


def test_no_credentials_fails_without_calling_out(aws_env, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    found = failures(preflight.run_checks(stack()))
    assert "no usable AWS credentials" in found["credentials"]


def test_images_outside_ecr_are_not_checked():
    assert preflight.ecr_images(stack(image="arungupta/app-upgrade")) == []


@mock_aws
def test_cli_exit_status_and_report(aws_env, tmp_path, capsys):
    (tmp_path / "Pulumi.yaml").write_text("name: app-update\nruntime: python\n")
    config = {"aws:region": REGION, "aws:allowedAccountIds": [ACCOUNT], "app-update:cluster": {"mode": "eks"},
              "app-update:releases": {"app": {"strategy": "RollingUpdate", "image": IMAGE, "tag": "v1"}}}
    (tmp_path / "Pulumi.ok.yaml").write_text(yaml.safe_dump({"config": config}))
    assert main(["--cwd", str(tmp_path), "preflight", "ok"]) == 1  # nothing pushed yet
    out = capsys.readouterr().out
    assert "FAIL  image app" in out and "1 failed" in out
    push("v1")
    assert main(["--cwd", str(tmp_path), "preflight", "ok"]) == 0
    assert "5 passed, 0 failed" in capsys.readouterr().out


def test_cli_on_a_stack_without_aws_has_nothing_to_check(capsys):
    assert main(["preflight", "local"]) == 0
    assert "nothing to check" in capsys.readouterr().out


@mock_aws
def test_the_aws_cli_must_run_as_the_deployment(aws_env, monkeypatch):
    config = stack(allowed=[ACCOUNT])
    assert "aws CLI" not in failures(preflight.run_checks(config))
    monkeypatch.setenv("STUB_AWS_ARN", f"arn:aws:sts::{ACCOUNT}:assumed-role/other/session")
    assert "would get a token the cluster does not know (401)" in failures(preflight.run_checks(config))["aws CLI"]
    monkeypatch.setenv("STUB_AWS_FAIL", "1")
    assert "Unable to locate credentials" in failures(preflight.run_checks(config))["aws CLI"]


@mock_aws
def test_a_missing_aws_cli_is_a_failed_check(aws_env, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert "the aws CLI is not installed" in failures(preflight.run_checks(stack(allowed=[ACCOUNT])))["aws CLI"]


@mock_aws
def test_documentation_placeholders_are_refused(aws_env):
    raw = {"cluster": {"mode": "eks", "endpointPublicAccessCidrs": ["203.0.113.0/24"],
                       "admins": ["arn:aws:iam::123456789012:role/platform-admin"]},
           "releases": {"app": {"strategy": "RollingUpdate", "tag": "v1"}}}
    config = validate(raw, "prod", {"aws:region": REGION, "aws:allowedAccountIds": ["123456789012"]})
    detail = failures(preflight.run_checks(config))["placeholders"]
    assert "aws:allowedAccountIds 123456789012" in detail
    assert "endpointPublicAccessCidrs 203.0.113.0/24" in detail
    assert "admins arn:aws:iam::123456789012:role/platform-admin" in detail


def test_the_prod_stack_file_still_holds_placeholders_until_replaced():
    from model.stack_file import stack_settings
    from tests.conftest import ROOT

    settings = stack_settings("prod", ROOT)
    own = {k.split(":", 1)[1]: v for k, v in settings.items() if k.startswith("app-update:")}
    other = {k: v for k, v in settings.items() if not k.startswith("app-update:")}
    assert preflight.placeholders(validate(own, "prod", other))


# ---------------------------------------------------------------------------------------------
# traffic: dns — the hosted zone its weighted records go into
# ---------------------------------------------------------------------------------------------


def dns_stack(zone="example.com", name="app.example.com", cluster=None):
    raw = {"cluster": cluster or {"mode": "kubeconfig"}, "releases": {
        "app": {"strategy": "Canary", "traffic": "dns", "replicas": 4, "dns": {"zone": zone, "name": name},
                "stable": {"tag": "v1"}, "canary": {"tag": "v2", "weight": 5}}}}
    return validate(raw, "test", {"aws:region": REGION})


VPC_ID = "vpc-0a1b2c3d4e5f60718"  # a private zone's VPC: preflight never looks at it, nor does moto's Route53


def create_zone(name, private=False):
    kwargs = {"Name": name, "CallerReference": f"test-{name}-{private}"}
    if private:
        # Not made in moto's EC2: its first use costs ~2 s (the whole EC2 model, its AMIs and volumes).
        kwargs.update(VPC={"VPCRegion": REGION, "VPCId": VPC_ID}, HostedZoneConfig={"PrivateZone": True, "Comment": ""})
    return client("route53", "us-east-1").create_hosted_zone(**kwargs)["HostedZone"]["Id"].rsplit("/", 1)[-1]


@mock_aws
def test_the_dns_zone_that_exists_passes(aws_env):
    create_zone("example.org")
    zone_id = create_zone("example.com")
    checks = preflight.run_checks(dns_stack())
    assert failures(checks) == {}
    [check] = [c for c in checks if c.name == "dns zone example.com"]
    assert check.detail == f"hosted zone example.com is {zone_id} (release app)"


@mock_aws
def test_a_missing_dns_zone_fails_with_what_to_do(aws_env):
    create_zone("example.org")
    found = failures(preflight.run_checks(dns_stack()))
    assert list(found) == ["dns zone example.com"]
    assert found["dns zone example.com"].startswith(
        "no public Route53 hosted zone example.com in this account: release app's weighted records go there; "
        "create it (aws route53 create-hosted-zone --name example.com")


@mock_aws
def test_a_private_zone_of_that_name_does_not_count(aws_env):
    create_zone("example.com", private=True)
    found = failures(preflight.run_checks(dns_stack()))
    assert "only a private zone of that name" in found["dns zone example.com"]


def test_a_dns_release_makes_a_kubeconfig_stack_an_aws_one():
    assert preflight.uses_aws(dns_stack())
    assert preflight.dns_zones(dns_stack(zone="example.com.", name="app.example.com.")) == [("app", "example.com")]
