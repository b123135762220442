"""Small JSON records kept beside the stacks' state: the canary leases (operations/lease.py) and the
wave records (operations/waves.py), one store for both.

A record of `<kind>` (e.g. "leases", "waves") lives at `.app-update/<kind>/<project>/<key>.json`
beside the state; a store reads it with an ETag, creates it only if absent and replaces it only if
unchanged, and a lost race raises RecordConflict, so that of several writers exactly one wins:

- `file://DIR` backends: `DIR/.app-update/<kind>/<project>/<key>.json`. A write is a
  compare-and-swap (the ETag is the SHA-256 of the bytes) under an exclusive `flock` of a sibling
  `<key>.json.lock` file, then an atomic rename: readers see the old or the new record, never half.
- `s3://BUCKET[/PREFIX]` backends: the object `[PREFIX/].app-update/<kind>/<project>/<key>.json`,
  written with S3 conditional writes: `IfNoneMatch="*"` creates it only if absent, `IfMatch=ETag`
  replaces only the version read (412 PreconditionFailed, or 409 ConditionalRequestConflict for
  concurrent conditional writes, or NoSuchKey when it is gone: the race is lost either way).
- other backends (Pulumi Cloud, azblob://, gs://): refused in one line (InputError).

The backend is the one the Pulumi CLI uses (backend_url): PULUMI_BACKEND_URL, else Pulumi.yaml's
`backend.url`, else the stack's workspace login (`pulumi whoami`) when a stack is given, or the
`current` login in ~/.pulumi/credentials.json when not.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from model.stack_file import StackFileError, load_yaml_file
from operations.stacks import InputError

RECORD_DIR = ".app-update"


class RecordConflict(Exception):
    """A conditional write lost: another writer changed (or created) the record since it was read."""


class RecordStore(Protocol):
    def location(self, key: str) -> str: ...
    def read(self, key: str) -> tuple[dict[str, Any], str] | None: ...
    def create(self, key: str, record: dict[str, Any]) -> str: ...
    def replace(self, key: str, record: dict[str, Any], etag: str) -> str: ...


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


class FileRecordStore:
    """Records as files under a `file://` backend's directory (`root` is the kind's and project's)."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def location(self, key: str) -> str:
        return f"file://{self.path(key)}"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[Path]:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

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
        # One temporary per process and thread: a lease's heartbeat thread writes too.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.write_bytes(data)
        os.replace(temporary, path)  # readers see the old or the new record, never half of one
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
    """Records as objects in an `s3://` backend's bucket under `prefix`, written with conditional writes."""

    def __init__(self, bucket: str, prefix: str, client: Any):
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}.json" if self.prefix else f"{key}.json"

    def location(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    @staticmethod
    def _lost_race(error: Exception) -> bool:
        response = getattr(error, "response", {})
        code = response.get("Error", {}).get("Code", "")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409") or status in (409, 412)

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
        except self.client.exceptions.NoSuchKey:
            raise RecordConflict(key) from None  # replaced, but it was gone
        except Exception as error:
            if self._lost_race(error):
                raise RecordConflict(key) from None
            raise
        return answer["ETag"]

    def create(self, key: str, record: dict[str, Any]) -> str:
        return self._put(key, record, IfNoneMatch="*")

    def replace(self, key: str, record: dict[str, Any], etag: str) -> str:
        return self._put(key, record, IfMatch=etag)


def backend_url(project_dir: Path, stack: Any = None) -> str | None:
    """The state backend the Pulumi CLI would use for this project: PULUMI_BACKEND_URL, Pulumi.yaml's
    `backend.url`, then the login: the `stack`'s workspace (`pulumi whoami`) when one is given, else
    the `current` entry of ~/.pulumi/credentials.json; None when nothing says."""
    if os.environ.get("PULUMI_BACKEND_URL"):
        return os.environ["PULUMI_BACKEND_URL"]
    try:
        project = load_yaml_file(project_dir / "Pulumi.yaml")
    except StackFileError:
        project = None
    url = (project.get("backend") or {}).get("url") if isinstance(project, dict) else None
    if isinstance(url, str) and url:
        return url
    if stack is not None:
        workspace = getattr(stack, "workspace", None)
        if workspace is not None:
            with contextlib.suppress(Exception):  # an old CLI, no login: nothing to say
                return workspace.who_am_i().url
        return None
    credentials = Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi") / "credentials.json"
    try:
        current = json.loads(credentials.read_text()).get("current")
    except (OSError, ValueError, AttributeError):
        return None
    return current if isinstance(current, str) and current else None


def store_for(url: str | None, kind: str, project: str, *, project_dir: Path | None = None, s3_client: Any = None,
              what: str | None = None, refused: str = "") -> RecordStore:
    """The store of `kind` records (e.g. "waves") of `project` beside the state at `url`.

    A relative `file://` path is taken from `project_dir` when given (else from the working directory);
    `file://` alone is the home directory. `what` names the records in refusals (InputError, one line),
    and `refused` is added to the refusal of a backend that is neither file:// nor s3://."""
    what = what or f"the {kind} records are kept beside the stacks' state"
    if not url:
        raise InputError(f"{what}, and no backend is known: log in with `pulumi login file://DIR` or "
                         "`pulumi login s3://BUCKET`, or set PULUMI_BACKEND_URL")
    parsed = urllib.parse.urlsplit(url)
    base = f"{RECORD_DIR}/{kind}/{project}"
    if parsed.scheme == "file":
        text = url[len("file://"):].split("?", 1)[0]
        root = Path(os.path.expanduser(text)) if text else Path.home()
        if not root.is_absolute() and project_dir is not None:
            root = project_dir / root
        return FileRecordStore(root / base)
    if parsed.scheme == "s3":
        if s3_client is None:
            import boto3

            query = urllib.parse.parse_qs(parsed.query)
            session = boto3.Session(profile_name=query.get("profile", [None])[0],
                                    region_name=query.get("region", [None])[0])
            s3_client = session.client("s3")
        return S3RecordStore(parsed.netloc, f"{parsed.path.strip('/')}/{base}", s3_client)
    raise InputError(f"{what}: file:// and s3:// backends only; the backend is {parsed.scheme}://{parsed.netloc}"
                     + refused)
