"""Real processes of the sample app on loopback ports, for the app and canary tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVER = Path(__file__).resolve().parent.parent / "app" / "server.py"


class AppProcess:
    def __init__(self, version: str, **env: str):
        environ = {**os.environ, "HOST": "127.0.0.1", "PORT": "0", "APP_VERSION": version, **env}
        self.process = subprocess.Popen([sys.executable, "-u", str(SERVER)], env=environ, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        line = self.process.stdout.readline()  # "app <version> listening on :<port>"
        match = re.search(r"listening on :(\d+)", line)
        if not match:
            self.process.kill()
            raise RuntimeError(f"app {version} did not start: {line!r}")
        self.port = int(match.group(1))
        self.url = f"http://127.0.0.1:{self.port}/"
        self.wait_ready()

    def wait_ready(self, deadline_s: float = 10) -> None:
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                with urllib.request.urlopen(self.url + "healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.02)  # poll interval while waiting on a deadline

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.stdout.close()
