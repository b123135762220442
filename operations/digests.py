"""An image tag resolved to the digest its registry serves now: what `rollout promote` pins.

- ECR (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>`): `ecr.describe_images` with the tag
  (boto3, the caller's AWS credentials), which answers with the image's `imageDigest`.
- Any other registry: the OCI distribution API, `HEAD /v2/<name>/manifests/<tag>` with the
  `Accept` header of the OCI index and manifest and Docker's manifest list and v2 manifest, which
  answers with `Docker-Content-Digest` (a registry that leaves it out of a HEAD answer gets a GET,
  whose body's sha256 is the digest). A `401` with a `Bearer` challenge is answered as docker does
  for anonymous pulls: a token from the challenge's realm, then the request again. Names are
  normalised as docker does (`app` → `docker.io/library/app`); `localhost` and loopback
  registries are spoken to over plain HTTP (docker's insecure-registry default), others over HTTPS.

A tag that already carries its digest (`v2@sha256:...`) is taken as it is, without a request.
A registry that cannot be reached, or that has no such tag, raises DigestError: one line, and
`--allow-tag` promotes by tag anyway.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from model.release_record import DIGEST
from operations.stacks import OperationError

MANIFEST_TYPES = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
ECR_HOST = re.compile(r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?")
DOCKER_HUB = "registry-1.docker.io"
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")
TIMEOUT = 10.0
ALLOW_TAG = "pass --allow-tag to promote by tag anyway"


class DigestError(OperationError):
    """A tag that could not be resolved to a digest (unreachable registry, unknown tag)."""


def split_reference(image: str) -> tuple[str, str]:
    """`repo` of a release's image → (registry host, repository path), as docker normalises it."""
    first, _, rest = image.partition("/")
    if first in ("docker.io", "index.docker.io") and rest:
        image = rest
    elif rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return DOCKER_HUB, image if "/" in image else f"library/{image}"


def resolve(image: str, tag: str, *, ecr_client: Callable[[str], Any] | None = None,
            timeout: float = TIMEOUT) -> str:
    """The digest (`sha256:...`) the registry serves for `image:tag` now."""
    if "@" in tag:
        return tag.split("@", 1)[1]
    host, repository = split_reference(image)
    ecr = ECR_HOST.fullmatch(host)
    if ecr:
        return _ecr_digest(ecr["account"], ecr["region"], repository, tag, ecr_client)
    return _oci_digest(host, repository, tag, timeout)


def _ecr_digest(account: str, region: str, repository: str, tag: str,
                ecr_client: Callable[[str], Any] | None) -> str:
    import botocore.exceptions

    where = f"{account}.dkr.ecr.{region}.amazonaws.com/{repository}:{tag}"
    try:
        if ecr_client is None:
            import boto3

            client = boto3.client("ecr", region_name=region)
        else:
            client = ecr_client(region)
        answer = client.describe_images(registryId=account, repositoryName=repository, imageIds=[{"imageTag": tag}])
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("ImageNotFoundException", "RepositoryNotFoundException"):
            raise DigestError(f"{where}: no such image in ECR ({code}); push it first, or {ALLOW_TAG}") from None
        raise DigestError(f"{where}: ECR refused describe_images ({code}: "
                          f"{error.response.get('Error', {}).get('Message', '')}); {ALLOW_TAG}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise DigestError(f"{where}: cannot reach ECR ({error}); {ALLOW_TAG}") from None
    details = answer.get("imageDetails") or []
    digest = details[0].get("imageDigest") if details else None
    if not digest or not DIGEST.fullmatch(digest):
        raise DigestError(f"{where}: ECR answered without a sha256 digest; {ALLOW_TAG}")
    return digest


def _oci_digest(host: str, repository: str, tag: str, timeout: float) -> str:
    import urllib.error  # here, not at the top: urllib.request brings http.client, ssl and email
    import urllib.parse
    import urllib.request

    scheme = "http" if host.split(":")[0] in LOOPBACK or host.startswith("[::1]") else "https"
    url = f"{scheme}://{host}/v2/{repository}/manifests/{urllib.parse.quote(tag, safe='')}"
    where = f"{host}/{repository}:{tag}"
    token: str | None = None
    for method in ("HEAD", "GET"):
        for _ in range(2):  # the second time with the token a 401 asked for
            headers = {"Accept": MANIFEST_TYPES, **({"Authorization": f"Bearer {token}"} if token else {})}
            try:
                with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers),
                                            timeout=timeout) as answer:
                    digest = answer.headers.get("Docker-Content-Digest")
                    body = answer.read() if method == "GET" else b""
            except urllib.error.HTTPError as error:
                if error.code == 401 and token is None:
                    token = _anonymous_token(error.headers.get("WWW-Authenticate", ""), where, timeout)
                    continue
                if error.code == 404:
                    raise DigestError(f"{where}: the registry has no such tag (404); push it first, or "
                                      f"{ALLOW_TAG}") from None
                raise DigestError(f"{where}: the registry answered {error.code} {error.reason}; {ALLOW_TAG}") from None
            except (urllib.error.URLError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise DigestError(f"{where}: cannot reach the registry at {scheme}://{host} ({reason}); "
                                  f"{ALLOW_TAG}") from None
            if digest and DIGEST.fullmatch(digest):
                return digest
            if method == "GET" and body:
                return "sha256:" + hashlib.sha256(body).hexdigest()
            break  # a HEAD without the header: ask with GET
    raise DigestError(f"{where}: the registry answered without a digest; {ALLOW_TAG}")


def _anonymous_token(challenge: str, where: str, timeout: float) -> str:
    """The token a `Bearer realm=...,service=...,scope=...` challenge hands out to anonymous pulls."""
    import urllib.error
    import urllib.parse
    import urllib.request

    if not challenge.lower().startswith("bearer "):
        raise DigestError(f"{where}: the registry wants credentials ({challenge or 'no challenge'}); {ALLOW_TAG}")
    fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    if "realm" not in fields:
        raise DigestError(f"{where}: the registry's challenge names no realm; {ALLOW_TAG}")
    query = urllib.parse.urlencode({k: v for k, v in fields.items() if k in ("service", "scope")})
    try:
        with urllib.request.urlopen(f"{fields['realm']}?{query}", timeout=timeout) as answer:
            data = json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise DigestError(f"{where}: no anonymous token from {fields['realm']} ({error}); {ALLOW_TAG}") from None
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not token:
        raise DigestError(f"{where}: the token service gave no token; {ALLOW_TAG}")
    return str(token)
