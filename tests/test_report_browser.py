"""A canary report in a real browser: Debian's Chromium, headless (`make chromium` installs it; .ci/run does),
loads the report of a test run from a file, offline, and takes a screenshot (the page's own Content-Security-Policy
forbids every script and every fetch, so what shows needs neither). The screenshot must
show the plot: the colours of the charts (the band, the share, the budget line), not a blank or an error page."""

import os
import shutil
import subprocess

import pytest

from report.svg import PALETTE
from tests.png import colours, count_colours, read_png

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed: run `make chromium`")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--force-device-scale-factor=0.5"]  # half size: a quarter of the pixels to read
WINDOW = (900, 1500)
SIZE = (450, 750)


def rgb(hex_colour):
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def near(seen, colour, tolerance=40):
    """Pixels within `tolerance` of a colour (per channel): thin lines are drawn anti-aliased."""
    return sum(n for c, n in seen.items() if all(abs(a - b) <= tolerance for a, b in zip(c, colour, strict=True)))


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    """The log (and report) of a canary run promoted through steps 5, 25, 50 and 100%: the real run_canary, its
    judge and its report, over a stand-in stack whose probes answer at the weight (tests/fake_stack.py). What a
    real run's report claims, against real apps behind a proxy, is tests/test_report.py's to check; this file
    checks that a browser shows such a page."""
    from operations import canary_run
    from tests.clock import VirtualClock
    from tests.fake_stack import FakeStack, answers_at_weight
    from tests.test_canary import options

    log = tmp_path_factory.mktemp("good") / "staging-app.log"
    stack = FakeStack("staging", {
        "app-update:cluster": {"mode": "kubeconfig", "loadBalancerController": True},
        "app-update:releases": {"app": {"strategy": "Canary", "traffic": "nlb", "replicas": 4,
                                        "stable": {"tag": "v1"}, "canary": {"tag": "v1", "weight": 0}}}})
    stack.up(message="initial")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canary_run.Prober, "run", answers_at_weight)
        run = canary_run.run_canary(stack, options("v2", url="http://127.0.0.1:9/"), log_path=log,
                                    clock=VirtualClock())
    assert run.exit_code == 0 and [s.weight for s in run.steps] == [5, 25, 50, 100], run.aborted
    return log


def screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"  # a fresh profile: nothing from another run
    run = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                          f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HOME": str(tmp_path)})
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    return shot.read_bytes()


def test_the_report_of_a_test_run_shows_its_plot_in_chromium(good_run, tmp_path):
    data = screenshot(good_run.with_suffix(".html"), tmp_path)
    width, height, rows = read_png(data)
    assert (width, height) == SIZE
    seen = count_colours(width, rows)
    white = seen.get((255, 255, 255), 0)
    assert white < 0.97 * width * height, "a blank page"
    # The charts' own colours, drawn: the band the judge accepts, the observed share, the budget line.
    for name in ("band", "canary", "budget", "stable"):
        assert near(seen, rgb(PALETTE[name])) > 20, f"no {name} colour ({PALETTE[name]}) on the screenshot"
    if os.environ.get("REPORT_SCREENSHOT"):  # to look at it: REPORT_SCREENSHOT=/tmp/report.png
        shutil.copy(tmp_path / "report.png", os.environ["REPORT_SCREENSHOT"])


def test_an_error_page_would_not_pass(tmp_path):
    """The check above is no formality: a page without the charts fails it."""
    page = tmp_path / "empty.html"
    page.write_text("<!DOCTYPE html><html><body><p>No step was judged in this run.</p></body></html>")
    seen = colours(screenshot(page, tmp_path))
    assert near(seen, rgb(PALETTE["band"])) == 0 and near(seen, rgb(PALETTE["canary"])) == 0
