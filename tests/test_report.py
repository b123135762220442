"""The pictures (issue #26): a canary run's HTML report beside its log, `rollout report LOG`, `rollout forecast
--svg`. The numbers each SVG claims are read back and compared with the log or the forecast; the page is opened
in a real browser by tests/test_report_browser.py."""

import json
import re
from html.parser import HTMLParser

import pytest

from model.forecast import forecast
from model.judge import share_band
from operations.canary_run import run_canary
from report.canary_report import read_log, render_html
from report.svg import number
from rollout.cli import main
from tests.clock import VirtualClock
from tests.test_canary import LoadBalancedStack, apps, declared_latency, latency_the_test_controls, options  # noqa: F401


class Elements(HTMLParser):
    """Every element's tag, attributes and text."""

    def __init__(self):
        super().__init__()
        self.found, self._open = [], []

    def handle_starttag(self, tag, attributes):
        element = {"tag": tag, **dict(attributes), "text": ""}
        self.found.append(element)
        self._open.append(element)

    def handle_startendtag(self, tag, attributes):
        self.found.append({"tag": tag, **dict(attributes), "text": ""})

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._open:
            self._open[-1]["text"] += data


def elements(html):
    parser = Elements()
    parser.feed(html)
    return parser.found


def values(found, kind):
    """{step: text} of the numbers a chart prints for `kind`."""
    return {e["data-step"]: e["text"] for e in found if e.get("class") == "value" and e.get("data-kind") == kind}


def steps_of(log):
    return [json.loads(line) for line in log.read_text().splitlines() if json.loads(line)["event"] == "step"]


@pytest.fixture(scope="module")
def good_run(apps, tmp_path_factory):  # noqa: F811 (the apps fixture of test_canary)
    from tests.weighted_proxy import WeightedProxy

    log = tmp_path_factory.mktemp("good") / "staging-app.log"
    with WeightedProxy() as server, declared_latency():  # module-scoped: before the autouse fixture
        stack = LoadBalancedStack(server, apps)
        run = run_canary(stack, options("v2", url=server.url), log_path=log, clock=VirtualClock())
    assert run.exit_code == 0, run.aborted
    return log


def test_a_canary_run_writes_its_report_beside_its_log_and_says_where(apps, proxy, tmp_path, capsys):  # noqa: F811
    log = tmp_path / "canary.log"
    run = run_canary(LoadBalancedStack(proxy, apps), options("v2", url=proxy.url, steps=[50]), log_path=log,
                     clock=VirtualClock())
    assert run.exit_code == 0
    assert (tmp_path / "canary.html").is_file()
    assert f"report: {tmp_path / 'canary.html'}" in capsys.readouterr().out


def test_the_report_claims_the_logs_numbers(good_run):
    html = good_run.with_suffix(".html").read_text()
    found = elements(html)
    steps = steps_of(good_run)
    assert [s["weight"] for s in steps] == [5, 25, 50, 100]
    shares = values(found, "share")
    bands = {e["data-step"]: (e["data-low"], e["data-high"]) for e in found if e.get("class") == "band"}
    weights = {e["data-step"]: e["data-weight"] for e in found if e.get("class") == "weight"}
    p99s = values(found, "p99")
    canary_errors, all_errors = values(found, "canary-errors"), values(found, "all-errors")
    for step in steps:
        key = str(step["step"])
        assert shares[key] == f"{number(step['canary_share'], 2)}%"
        low, high = share_band(step["weight"])
        assert bands[key] == (number(low, 2), number(high, 2))
        assert weights[key] == number(step["weight"])
        assert p99s[key] == f"{number(step['p99_ms'], 1)} ms"
        assert canary_errors[key] == f"{number(step['canary_error_rate'], 2)}%"
        assert all_errors[key] == f"{number(step['error_rate'], 2)}%"
    budget = [e for e in found if e.get("class") == "budget"]
    limit = [e for e in found if e.get("class") == "limit"]
    assert budget[0]["data-budget"] == "1" and limit[0]["data-limit"] == "500"
    assert "Promoted: app runs v2" in next(e for e in found if e.get("id") == "verdict")["text"]
    evidence = [e for e in found if e.get("data-kind") == "evidence"]
    assert evidence and all(float(e["data-fraction"]) < 1 for e in evidence)  # nothing came near an abort
    strongest = values(found, "strongest-evidence")
    for step in steps:
        mine = [float(e["data-fraction"]) for e in evidence if e["data-step"] == str(step["step"])]
        assert float(strongest[str(step["step"])].removeprefix("max ")) == pytest.approx(max(mine), abs=0.006)


def test_an_aborted_run_shows_the_evidence_that_stopped_it(apps, proxy, tmp_path):  # noqa: F811
    log = tmp_path / "bad.log"
    run = run_canary(LoadBalancedStack(proxy, apps), options("v3", url=proxy.url, interval=30.0, rate=300.0),
                     log_path=log, clock=VirtualClock())
    assert run.exit_code == 1
    found = elements(log.with_suffix(".html").read_text())
    verdict = next(e for e in found if e.get("id") == "verdict")["text"]
    assert verdict.startswith("Aborted:") and "canary error rate" in verdict
    crossed = [e for e in found if e.get("data-kind") == "evidence" and float(e["data-fraction"]) >= 1]
    assert {e["data-test"] for e in crossed} >= {"canary errors"}
    assert {e["data-step"] for e in crossed} == {"1"}


def test_rollout_report_renders_a_log_again(good_run, tmp_path, capsys):
    out = tmp_path / "again.html"
    assert main(["report", str(good_run), "--out", str(out)]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    again, first = elements(out.read_text()), elements(good_run.with_suffix(".html").read_text())
    assert [e for e in again if e.get("class") == "value"] == [e for e in first if e.get("class") == "value"]


def test_rollout_report_refuses_what_is_not_a_canary_log(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nosuch.log")]) == 2
    assert "nosuch.log: no such file" in capsys.readouterr().err
    other = tmp_path / "other.log"
    other.write_text("hello\n{\"event\": \"pulumi\", \"line\": \"x\"}\n")
    assert main(["report", str(other)]) == 2
    assert "holds no canary run" in capsys.readouterr().err


def test_a_torn_or_foreign_log_still_renders_what_it_has(good_run, tmp_path):
    log = tmp_path / "torn.log"
    lines = good_run.read_text().splitlines()
    cut = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "step" and json.loads(line)["step"] == 2)
    step = json.loads(lines[cut])
    step.pop("p99_ms")
    step["canary_share"] = "lots"  # a field of the wrong type: shown as unknown
    log.write_text("\n".join([*lines[:cut], json.dumps(step), '{"event": "step", "step": 3, "wei']) + "\n")
    view = read_log(log)
    assert [s.step for s in view.steps] == [1, 2] and view.outcome == "unfinished"
    html = render_html(view)
    assert "Unfinished" in html and "unknown" in html
    assert values(elements(html), "share").keys() == {"1"}


def test_the_report_is_self_contained(good_run):
    html = good_run.with_suffix(".html").read_text()
    assert "<script" not in html.lower()
    urls = set(re.findall(r"(?:https?:)?//[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace names, it fetches nothing
    assert not re.search(r"\b(src|href)=", html) and "@import" not in html and "url(" not in html


@pytest.mark.parametrize("replicas, surge, unavailable", [(5, 1, 1), (10, "25%", "25%"), (3, 0, 1), (4, "100%", 0)])
def test_forecast_svg_draws_the_forecasts_numbers(replicas, surge, unavailable, tmp_path, capsys):
    path = tmp_path / "forecast.svg"
    assert main(["forecast", "--replicas", str(replicas), "--max-surge", str(surge), "--max-unavailable",
                 str(unavailable), "--svg", str(path)]) == 0
    fc = forecast(replicas, "RollingUpdate", surge, unavailable)
    found = elements(path.read_text())
    assert [int(e["text"]) for e in found if e.get("data-kind") == "pods"] == [s.pods for s in fc.steps]
    assert [int(e["text"]) for e in found if e.get("data-kind") == "available"] == [s.available for s in fc.steps]
    limits = {e["data-kind"]: int(e["data-value"]) for e in found if e.get("class") == "limit"}
    assert limits == {"max-total": fc.max_total, "min-available": fc.min_available}
    assert found[0]["tag"] == "svg" and "<script" not in path.read_text()


def test_forecast_svg_of_a_recreate(tmp_path, capsys):
    path = tmp_path / "recreate.svg"
    assert main(["forecast", "--replicas", "3", "--strategy", "Recreate", "--svg", str(path)]) == 0
    found = elements(path.read_text())
    assert [int(e["text"]) for e in found if e.get("data-kind") == "available"][0] == 3
    assert not [e for e in found if e.get("class") == "limit"]


def test_an_effective_share_in_the_log_is_drawn_when_there(good_run, tmp_path):
    """The step event may say what share the load balancer can give at the weight (whole pods): drawn if so."""
    log = tmp_path / "effective.log"
    lines = []
    for line in good_run.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "step":
            event["effective_share"] = 20.0 if event["weight"] == 25 else event["weight"]
        lines.append(json.dumps(event))
    log.write_text("\n".join(lines) + "\n")
    found = elements(render_html(read_log(log)))
    assert [(e["data-step"], e["data-effective"]) for e in found if e.get("class") == "effective"] == [("2", "20")]
