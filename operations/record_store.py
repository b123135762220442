"""Small JSON records kept beside the stacks' state: the wave records of `rollout wave`.

The same kind of storage as the canary lease (issue #21's operations/lease.py), with the same
interface (read / create / replace with an ETag, a lost race raising RecordConflict), so the two
can become one module later:

- `file://DIR` backends: `DIR/.app-update/<kind>/<project>/<key>.json`. A write is a
  compare-and-swap under an exclusive `flock` of a sibling `.lock` file, then an atomic rename.
- `s3://BUCKET[/PREFIX]` backends: the object `[PREFIX/].app-update/<kind>/<project>/<key>.json`,
  written with S3 conditional writes: `IfNoneMatch="*"` creates it only if absent, `IfMatch=ETag`
  replaces only the version read (412 PreconditionFailed, or 409 ConditionalRequestConflict for
  concurrent conditional writes: the race is lost either way).
- other backends (Pulumi Cloud, azblob://, gs://): refused in one line.

The backend is the one the Pulumi CLI uses: PULUMI_BACKEND_URL, else Pulumi.yaml's
`backend.url`, else the `current` login in ~/.pulumi/credentials.json.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from model.stack_file import StackFileError, load_yaml_file
from operations.stacks import InputError

RECORD_DIR = ".app-update"


class RecordConflict(Exception):
    """Another writer changed (or created) the record since it was read."""


class RecordStore(Protocol):
    def read(self, key: str) -> tuple[dict[str, Any], str] | None: ...
    def create(self, key: str, record: dict[str, Any]) -> str: ...
    def replace(self, key: str, record: dict[str, Any], etag: str) -> str: ...


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


class FileRecordStore:
    """Records as files under a `file://` backend's directory."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _read(path: Path) -> tuple[dict[str, Any], str] | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        return json.loads(data), hashlib.sha256(data).hexdigest()

    def read(self, key: str) -> tuple[dict[str, Any], str] | None:
        return self._read(self.path(key))

    @staticmethod
    def _write(path: Path, record: dict[str, Any]) -> str:
        data = _encode(record)
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_bytes(data)
        os.replace(temporary, path)
        return hashlib.sha256(data).hexdigest()

    def create(self, key: str, record: dict[str, Any]) -> str:
        with self._locked(key) as path:
            if path.exists():
                raise RecordConflict(key)
            return self._write(path, record)

    def replace(self, key: str, record: dict[str, Any], etag: str) -> str:
        with self._locked(key) as path:
            current = self._read(path)
            if current is None or current[1] != etag:
                raise RecordConflict(key)
            return self._write(path, record)


class S3RecordStore:
    """Records as objects in an `s3://` backend's bucket, written with conditional writes."""

    def __init__(self, bucket: str, prefix: str, client: Any):
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}.json" if self.prefix else f"{key}.json"

    @staticmethod
    def _lost_race(error: Exception) -> bool:
        code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")

    def read(self, key: str) -> tuple[dict[str, Any], str] | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        return json.loads(answer["Body"].read()), answer["ETag"]

    def _put(self, key: str, record: dict[str, Any], **condition: str) -> str:
        try:
            answer = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=_encode(record),
                                            ContentType="application/json", **condition)
        except Exception as error:
            if self._lost_race(error):
                raise RecordConflict(key) from None
            raise
        return answer["ETag"]

    def create(self, key: str, record: dict[str, Any]) -> str:
        return self._put(key, record, IfNoneMatch="*")

    def replace(self, key: str, record: dict[str, Any], etag: str) -> str:
        return self._put(key, record, IfMatch=etag)


def backend_url(project_dir: Path) -> str | None:
    """The state backend the Pulumi CLI would use for this project."""
    if os.environ.get("PULUMI_BACKEND_URL"):
        return os.environ["PULUMI_BACKEND_URL"]
    try:
        project = load_yaml_file(project_dir / "Pulumi.yaml")
    except StackFileError:
        project = None
    url = ((project or {}).get("backend") or {}).get("url") if isinstance(project, dict) else None
    if isinstance(url, str) and url:
        return url
    credentials = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi") / "credentials.json"
    try:
        current = json.loads(credentials.read_text()).get("current")
    except (OSError, ValueError, AttributeError):
        return None
    return current if isinstance(current, str) and current else None


def store_for(url: str | None, kind: str, project: str, *, s3_client: Any = None) -> RecordStore:
    """The store of `kind` records (e.g. "waves") beside the state at `url`."""
    what = f"the {kind} records are kept beside the stacks' state"
    if not url:
        raise InputError(f"{what}, and no backend is known: log in with `pulumi login file://DIR` or "
                         "`pulumi login s3://BUCKET`, or set PULUMI_BACKEND_URL")
    parsed = urllib.parse.urlsplit(url)
    base = f"{RECORD_DIR}/{kind}/{project}"
    if parsed.scheme == "file":
        root = Path(os.path.expanduser(parsed.netloc + parsed.path if parsed.netloc != "" else parsed.path))
        return FileRecordStore(root / base)
    if parsed.scheme == "s3":
        if s3_client is None:
            import boto3

            query = dict(urllib.parse.parse_qsl(parsed.query))
            s3_client = boto3.client("s3", region_name=query.get("region"))
        return S3RecordStore(parsed.netloc, f"{parsed.path.strip('/')}/{base}".strip("/"), s3_client)
    raise InputError(f"{what}: file:// and s3:// backends only; the backend is {parsed.scheme}://{parsed.netloc}")
