"""The sample app as a real process on loopback."""

import http.client
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from tests.apps import SERVER, AppProcess


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode(), response.headers.get("X-App-Version")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), error.headers.get("X-App-Version")


@pytest.mark.parametrize("version,text", [("v1", "Hello World!"), ("v2", "Howdy World!"), ("v7", "v7 World!")])
def test_greeting_and_version_header(version, text):
    app = AppProcess(version)
    try:
        assert get(app.url) == (200, text + "\n", version)
        assert get(app.url + "healthz")[0] == 200
        assert get(app.url + "nope")[0] == 404
    finally:
        app.stop()


def test_failure_injection_answers_500_with_the_version():
    app = AppProcess("v3", FAIL_RATE="1")
    try:
        assert get(app.url) == (500, "injected failure\n", "v3")
        assert get(app.url + "healthz")[0] == 200  # probes still pass: only traffic fails
    finally:
        app.stop()


def test_sigterm_lets_the_request_in_flight_finish_then_exits():
    app = AppProcess("v2", LATENCY_MS="1500", ACCESS_LOG="1")
    result = {}

    def slow_request():
        connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        result["answer"] = (response.status, response.read().decode())

    client = threading.Thread(target=slow_request)
    client.start()
    # Wait until the server has the request (it logs its start), then stop it.
    lines = iter(app.process.stdout.readline, "")
    assert any(line == "start GET /\n" for line in lines)
    app.process.send_signal(signal.SIGTERM)
    client.join(10)
    assert result["answer"] == (200, "Howdy World!\n")
    assert app.process.wait(timeout=10) == 0
    with pytest.raises(OSError):
        urllib.request.urlopen(app.url + "healthz", timeout=2)
    app.stop()


def test_bad_settings_exit_2_with_one_line():
    result = subprocess.run([sys.executable, str(SERVER)], env={"FAIL_RATE": "2", "PORT": "0"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: FAIL_RATE must be between 0 and 1, got 2.0"
