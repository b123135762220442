"""Who may read and write each stack's state and secrets: the documents `rollout bootstrap` writes.

Pure: every document is built from names (account, bucket, stacks, the GitHub repository), so
bootstrap can compare what AWS holds with what it should hold, and a second run changes nothing.

The shape (README "Working as a team"):
- one KMS key per stack, `alias/<alias>-<stack>`, for that stack's secrets
  (`pulumi stack init <stack> --secrets-provider awskms://alias/<alias>-<stack>`); its key policy
  names the administrators (everything), the stack's deploy role (Encrypt, Decrypt,
  GenerateDataKey), and as readers (Decrypt only) the stack's preview role and the deploy role of
  the next stack, which promotes from it and so reads its outputs. No statement names the account
  root, so IAM policies alone never grant use of the key: a preview role of dev cannot decrypt
  prod's secrets whatever IAM says;
- the state bucket's own key, `alias/<alias>` (S3 default encryption): administrators, and the
  deploy and preview roles only through S3 in this region (`kms:ViaService`); which objects each
  role reaches is the S3 policy's business, below;
- per stack, a deploy role `<alias>-deploy-<stack>` and a preview role `<alias>-preview-<stack>`,
  both trusted only for GitHub's OIDC tokens whose subject names this repository, the GitHub
  environment and the workflow file at its ref: deploy roles `deploy.yml@refs/heads/main` in the
  environment `<stack>`, preview roles `pull-request.yml` in `preview-<stack>`. AWS matches only
  the `sub` claim (with `aud`), so the repository's OIDC subject template must include
  `job_workflow_ref`: see SUBJECT_CLAIM_KEYS. Their inline policy reaches their own stack's state
  objects in the bucket (the deploy role reads and writes, the preview role reads and takes the
  stack's lock) and, for a deploy role, reads the stack it promotes from.

The object layout is the Pulumi DIY backend's (project-scoped stacks):
`.pulumi/meta.yaml`, `.pulumi/stacks/<project>/<stack>.json[.bak|.gz]`,
`.pulumi/history/<project>/<stack>/`, `.pulumi/backups/<project>/<stack>/`,
`.pulumi/locks/<org>/<project>/<stack>/`. Verified offline only (moto); see the README.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

GITHUB_OIDC_HOST = "token.actions.githubusercontent.com"
GITHUB_OIDC_URL = f"https://{GITHUB_OIDC_HOST}"
AUDIENCE = "sts.amazonaws.com"  # aws-actions/configure-aws-credentials asks for this audience
# The certificate thumbprints AWS documented for GitHub's OIDC endpoint (IAM no longer checks them
# for this provider, but older API versions require a list).
GITHUB_THUMBPRINTS = ("6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd")
# The repository's OIDC subject template (PUT /repos/OWNER/REPO/actions/oidc/customization/sub):
# the subject then reads repo:OWNER/REPO:environment:ENV:job_workflow_ref:OWNER/REPO/PATH@REF.
SUBJECT_CLAIM_KEYS = ("repo", "context", "job_workflow_ref")
DEPLOY_WORKFLOW = ".github/workflows/deploy.yml"
PREVIEW_WORKFLOW = ".github/workflows/pull-request.yml"
MAIN = "refs/heads/main"
STATE_POLICY_NAME = "app-update-state"
ROLE_TAG = {"Key": "app-update", "Value": "pulumi-state"}
KINDS = ("deploy", "preview")


@dataclass(frozen=True)
class Access:
    """The names everything is built from."""

    account: str
    partition: str
    region: str
    bucket: str
    alias: str  # the state bucket key's alias name, without alias/
    project: str
    stacks: tuple[str, ...]  # in pipeline order: each deploys what the one before it runs
    admins: tuple[str, ...]  # IAM principal ARNs
    repo: str | None = None  # OWNER/REPO: roles for GitHub Actions; None: administrators only

    # -- names ----------------------------------------------------------------------------------
    def stack_alias(self, stack: str) -> str:
        return f"{self.alias}-{stack}"

    def role_name(self, kind: str, stack: str) -> str:
        return f"{self.alias.replace('/', '-')}-{kind}-{stack}"

    def role_arn(self, kind: str, stack: str) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{self.role_name(kind, stack)}"

    @property
    def provider_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account}:oidc-provider/{GITHUB_OIDC_HOST}"

    @property
    def bucket_arn(self) -> str:
        return f"arn:{self.partition}:s3:::{self.bucket}"

    def upstream(self, stack: str) -> str | None:
        """The stack `stack` promotes from (the one before it), if any."""
        index = self.stacks.index(stack)
        return self.stacks[index - 1] if index else None

    def downstream(self, stack: str) -> str | None:
        index = self.stacks.index(stack)
        return self.stacks[index + 1] if index + 1 < len(self.stacks) else None

    def subject(self, kind: str, stack: str) -> str:
        """The OIDC `sub` a role trusts (a pattern for preview roles: any pull request's ref)."""
        assert self.repo is not None
        if kind == "deploy":
            return f"repo:{self.repo}:environment:{stack}:job_workflow_ref:{self.repo}/{DEPLOY_WORKFLOW}@{MAIN}"
        return f"repo:{self.repo}:environment:preview-{stack}:job_workflow_ref:{self.repo}/{PREVIEW_WORKFLOW}@*"

    # -- documents ------------------------------------------------------------------------------
    def trust_policy(self, kind: str, stack: str) -> dict[str, Any]:
        test = "StringEquals" if kind == "deploy" else "StringLike"
        condition: dict[str, Any] = {"StringEquals": {f"{GITHUB_OIDC_HOST}:aud": AUDIENCE}}
        condition.setdefault(test, {})[f"{GITHUB_OIDC_HOST}:sub"] = self.subject(kind, stack)
        return _policy({"Sid": "GitHubActionsDeployOnMain" if kind == "deploy" else "GitHubActionsPreview",
                        "Effect": "Allow", "Principal": {"Federated": self.provider_arn},
                        "Action": "sts:AssumeRoleWithWebIdentity", "Condition": condition})

    def _objects(self, stack: str) -> list[str]:
        root, project = f"{self.bucket_arn}/.pulumi", self.project
        return [f"{root}/stacks/{project}/{stack}.json*", f"{root}/history/{project}/{stack}/*",
                f"{root}/backups/{project}/{stack}/*", f"{root}/locks/*/{project}/{stack}/*"]

    def state_policy(self, kind: str, stack: str) -> dict[str, Any]:
        """The role's inline policy: its own stack's state objects, and nothing of another stack's but
        the outputs of the stack a deploy role promotes from."""
        root = f"{self.bucket_arn}/.pulumi"
        statements: list[dict[str, Any]] = [
            {"Sid": "ListState", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": self.bucket_arn,
             "Condition": {"StringLike": {"s3:prefix": [".pulumi/*"]}}},
            {"Sid": "ReadBackendVersion", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{root}/meta.yaml"},
        ]
        if kind == "deploy":
            statements.append({"Sid": "ReadWriteItsStack", "Effect": "Allow",
                               "Action": ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"],
                               "Resource": self._objects(stack)})
            source = self.upstream(stack)
            if source:
                statements.append({"Sid": "ReadTheStackItPromotesFrom", "Effect": "Allow", "Action": "s3:GetObject",
                                   "Resource": f"{root}/stacks/{self.project}/{source}.json*"})
        else:
            statements.append({"Sid": "ReadItsStack", "Effect": "Allow", "Action": "s3:GetObject",
                               "Resource": self._objects(stack)})
            statements.append({"Sid": "TakeItsStacksLock", "Effect": "Allow",
                               "Action": ["s3:DeleteObject", "s3:PutObject"],
                               "Resource": f"{root}/locks/*/{self.project}/{stack}/*"})
        return _policy(*statements)

    def _administrators(self) -> dict[str, Any]:
        return {"Sid": "KeyAdministrators", "Effect": "Allow", "Principal": {"AWS": sorted(set(self.admins))},
                "Action": "kms:*", "Resource": "*"}

    def stack_key_policy(self, stack: str) -> dict[str, Any]:
        statements = [self._administrators()]
        if self.repo:
            statements.append({"Sid": "ItsDeployRoleEncryptsAndDecrypts", "Effect": "Allow",
                               "Principal": {"AWS": [self.role_arn("deploy", stack)]},
                               "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"], "Resource": "*"})
            readers = [self.role_arn("preview", stack)]
            after = self.downstream(stack)
            if after:
                readers.append(self.role_arn("deploy", after))
            statements.append({"Sid": "ReadersDecrypt", "Effect": "Allow", "Principal": {"AWS": sorted(readers)},
                               "Action": "kms:Decrypt", "Resource": "*"})
        return _policy(*statements)

    def bucket_key_policy(self) -> dict[str, Any]:
        statements = [self._administrators()]
        if self.repo:
            through_s3 = {"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com",
                                           "kms:CallerAccount": self.account}}
            statements.append({"Sid": "DeployRolesThroughS3", "Effect": "Allow",
                               "Principal": {"AWS": sorted(self.role_arn("deploy", s) for s in self.stacks)},
                               "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
                               "Condition": through_s3})
            statements.append({"Sid": "PreviewRolesReadThroughS3", "Effect": "Allow",
                               "Principal": {"AWS": sorted(self.role_arn("preview", s) for s in self.stacks)},
                               "Action": "kms:Decrypt", "Resource": "*", "Condition": through_s3})
        return _policy(*statements)


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def canonical(document: Any) -> Any:
    """A policy document in one form, to compare what AWS returns with what bootstrap writes: a
    JSON string parsed, a single string where a list of one may stand, lists of strings sorted."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return document
    return _canonical(document)


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_canonical(v) for v in value]
        if all(isinstance(v, str) for v in items):
            return items[0] if len(items) == 1 else sorted(items)
        return items
    return value


def principal_arn(caller_arn: str, role_arn_of: Any = None) -> str:
    """The IAM principal behind an STS caller ARN: an assumed role's session becomes the role
    (`role_arn_of(name)` gives its ARN with its path, when it can); a user or root stays as is."""
    parts = caller_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        name = parts[5].split("/")[1]
        if role_arn_of is not None:
            found = role_arn_of(name)
            if found:
                return str(found)
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{name}"
    return caller_arn
