"""A real OCI distribution registry on loopback: Debian's `docker-registry` package (the CNCF
distribution registry), started per test session with its storage in a temporary directory and no
auth; `push` uploads a small image through the registry API as `docker push` would (blobs, then the
manifest) and returns the manifest's digest. Tests are skipped when the binary is missing
(`make docker-registry` installs it; `.ci/run` does)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from tests.prometheus_server import free_port, wait_for

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def registry_binary() -> str | None:
    return shutil.which("docker-registry")


class RegistryServer:
    def __init__(self, binary: str):
        self.binary = binary
        self.directory = Path(tempfile.mkdtemp(prefix="registry-test-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, deadline_s: float = 20.0) -> RegistryServer:
        for attempt in range(3):  # the free port may be taken between asking and binding: try another
            self.port = free_port()
            config = self.directory / "config.yml"
            config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: "
                              f"{self.directory / 'data'}\nhttp:\n  addr: 127.0.0.1:{self.port}\n")
            log = (self.directory / f"registry-{attempt}.log").open("w")
            self.process = subprocess.Popen([self.binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
            log.close()
            try:
                wait_for(self._ready, deadline_s, f"registry ready on {self.host}")
                return self
            except TimeoutError:
                self.stop()
                if attempt == 2:
                    raise
        return self

    def _ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise TimeoutError(f"docker-registry exited with status {self.process.returncode}")
        with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as answer:
            return answer.status == 200

    def _blob(self, name: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = urllib.request.Request(f"http://{self.host}/v2/{name}/blobs/uploads/", method="POST", data=b"")
        with urllib.request.urlopen(start, timeout=5) as answer:
            location = answer.headers["Location"]
        if location.startswith("/"):
            location = f"http://{self.host}{location}"
        put = urllib.request.Request(f"{location}{'&' if '?' in location else '?'}digest={digest}", method="PUT",
                                     data=data, headers={"Content-Type": "application/octet-stream"})
        with urllib.request.urlopen(put, timeout=5):
            pass
        return digest

    def push(self, name: str, tag: str, content: str) -> str:
        """An image of one layer holding `content` as `name:tag`; the manifest's digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
                             "config": {"Env": [f"CONTENT={content}"]}}).encode()
        layer = content.encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self._blob(name, config),
                       "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self._blob(name, layer),
                        "size": len(layer)}],
        }).encode()
        put = urllib.request.Request(f"http://{self.host}/v2/{name}/manifests/{tag}", method="PUT", data=manifest,
                                     headers={"Content-Type": OCI_MANIFEST})
        with urllib.request.urlopen(put, timeout=5) as answer:
            return answer.headers["Docker-Content-Digest"]

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
