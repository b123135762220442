"""A canary run as one self-contained HTML page: what happened at each weight step, in pictures.

Read from the run's JSON-lines log (operations/canary_run.py writes it; `rollout canary` writes this report beside it
at the end of the run, `rollout report LOG` writes it again from a log). Per step: the canary's observed share of
the answers against the weight and the band the judge accepts (model/judge.share_band); the canary's and all
answers' error rates against the error budget, and the canary's p99 against its limit; the sequential evidence of
each of the judge's tests against its abort threshold; and the verdict. No script, nothing fetched: inline SVG and
CSS only, so the page opens from a file, offline, in any browser (and the numbers are in a table too).

Read defensively: a log is a file users keep, move and truncate. Unknown events and fields are ignored; a field a
step event lacks is shown as unknown. The judge's evidence is the step event's own when it records it (`evidence`:
each test's always-valid p-value, as model.judge.Judge.evidence() gives it); otherwise it is recomputed from the
step's totals with the judge's own tests (SequentialTest.log_lr is a function of the counts alone): exact for the
error tests, approximate for the share tests (the totals include the settle phase's answers, which the judge does
not count there), unknown for the latency test (the log has the p99, not the count of slow answers).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from model.judge import ALPHA, SHARE_ALPHA, Judge, share_band
from report.svg import PALETTE, Chart, number

# The judge's tests, in the order a verdict reports them, with the level each rejects at.
TESTS = (
    ("canary errors", ALPHA),
    ("all errors", ALPHA),
    ("canary slow", ALPHA),
    ("share too low", SHARE_ALPHA),
    ("share too high", SHARE_ALPHA),
)
_START = re.compile(
    r"^canary (?P<release>\S+) (?P<tag>\S+) on (?P<stack>\S+): steps (?P<steps>[0-9%, ]+), "
    r"(?P<interval>[0-9.]+)s each, error budget (?P<budget>[0-9.]+)%, p99 limit (?P<p99>[0-9.]+)ms"
)
OPTIONS_EVENT = "report-options"
CONTENT_SECURITY_POLICY = ("""<meta http-equiv="Content-Security-Policy" """
                           """content="default-src 'none'; style-src 'unsafe-inline'">""")
# Names a step event may give the effective share under (read if present; older logs have none).
EFFECTIVE_FIELDS = ("effective_share", "effective_weight", "effectiveWeight", "effectiveShare")


@dataclass
class StepView:
    step: int
    weight: float
    requests: int | None = None
    canary_requests: int | None = None
    canary_share: float | None = None
    error_rate: float | None = None  # percent
    canary_error_rate: float | None = None  # percent
    p99_ms: float | None = None
    elapsed: float | None = None
    verdict: str | None = None
    evidence: dict[str, float | None] = field(default_factory=dict)  # test → always-valid p-value (None: unknown)
    evidence_logged: bool = False
    # The share the load balancer can give at this weight (whole pods, a mode's rounding), when the log records it.
    effective: float | None = None

    @property
    def band(self) -> tuple[float, float]:
        return share_band(self.weight)


@dataclass
class RunView:
    release: str = "?"
    tag: str = "?"
    stack: str = "?"
    planned_steps: list[float] = field(default_factory=list)
    interval_s: float | None = None
    max_error_rate: float | None = None  # percent
    max_p99_ms: float | None = None
    started: str | None = None
    steps: list[StepView] = field(default_factory=list)
    outcome: str = "unfinished"  # promoted, aborted, not restored, unfinished
    reason: str | None = None
    last_lines: list[str] = field(default_factory=list)
    source: str = ""


# ---------------------------------------------------------------------------------------------
# Reading the log
# ---------------------------------------------------------------------------------------------


def _events(path: Path) -> list[dict[str, Any]]:
    events = []
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a torn last line (a killed run) or something else: not ours
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                events.append(event)
    return events


def holds_a_canary_run(path: Path) -> bool:
    """Whether the file has the start line or a step of a canary run."""
    return any(_is_start(e) or e["event"] == "step" for e in _events(path))


def _is_start(event: dict[str, Any]) -> bool:
    return event.get("event") == "message" and bool(_START.match(str(event.get("text", ""))))


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number_ = _float(value)
    return None if number_ is None else int(number_)


def read_log(path: Path) -> RunView:
    """The last canary run of a log (a log given again with --log holds several, one after the other)."""
    events = _events(path)
    starts = [i for i, e in enumerate(events) if _is_start(e)]
    if starts:
        events = events[starts[-1] :]
    view = RunView(source=str(path))
    for event in events:
        kind = event["event"]
        if kind == "message":
            _read_message(view, event)
        elif kind == "step":
            view.steps.append(_step(event))
        elif kind == OPTIONS_EVENT:
            _read_options(view, event)
    for step in view.steps:
        if not step.evidence:
            step.evidence = _recomputed_evidence(step, view)
    return view


def _read_message(view: RunView, event: dict[str, Any]) -> None:
    text = str(event.get("text", ""))
    start = _START.match(text)
    if start:
        view.release, view.tag, view.stack = start["release"], start["tag"], start["stack"]
        view.planned_steps = [float(w) for w in re.findall(r"[0-9]+", start["steps"])]
        view.interval_s, view.max_error_rate = float(start["interval"]), float(start["budget"])
        view.max_p99_ms = float(start["p99"])
        view.started = str(event.get("time") or "") or None
        return
    if text.startswith("promoted:"):
        view.outcome, view.reason = "promoted", None
    elif text.startswith("ABORT at "):
        view.outcome = "aborted"
        view.reason = text.split(": ", 1)[1] if ": " in text else text
    elif text.startswith("NOT RESTORED"):
        view.outcome = "not restored"
    view.last_lines = (view.last_lines + [text])[-12:]


def _read_options(view: RunView, event: dict[str, Any]) -> None:
    """What `rollout canary` appends for its report: the options, exactly (the start line rounds them)."""
    view.release = str(event.get("release", view.release))
    view.tag = str(event.get("tag", view.tag))
    steps = event.get("steps")
    if isinstance(steps, list) and all(_float(s) is not None for s in steps):
        view.planned_steps = [float(s) for s in steps]
    if _float(event.get("max_error_rate")) is not None:
        view.max_error_rate = 100 * float(event["max_error_rate"])
    if _float(event.get("max_p99")) is not None:
        view.max_p99_ms = 1000 * float(event["max_p99"])
    if _float(event.get("interval")) is not None:
        view.interval_s = float(event["interval"])


def _step(event: dict[str, Any]) -> StepView:
    step = StepView(
        step=_int(event.get("step")) or 0,
        weight=_float(event.get("weight")) or 0.0,
        requests=_int(event.get("requests")),
        canary_requests=_int(event.get("canary_requests")),
        canary_share=_float(event.get("canary_share")),
        error_rate=_float(event.get("error_rate")),
        canary_error_rate=_float(event.get("canary_error_rate")),
        p99_ms=_float(event.get("p99_ms")),
        elapsed=_float(event.get("elapsed")),
        verdict=event.get("verdict") if isinstance(event.get("verdict"), str) else None,
    )
    step.effective = next((v for k in EFFECTIVE_FIELDS if (v := _float(event.get(k))) is not None), None)
    logged = event.get("evidence")
    if isinstance(logged, dict):
        step.evidence = {name: _float(logged.get(name)) for name, _ in TESTS}
        step.evidence_logged = True
    return step


def _recomputed_evidence(step: StepView, view: RunView) -> dict[str, float | None]:
    """Each test's p-value from the step's totals, with the judge's own tests (see the module's docstring)."""
    if step.requests is None or step.canary_requests is None or step.requests <= 0:
        return {name: None for name, _ in TESTS}
    budget = (view.max_error_rate if view.max_error_rate is not None else 1.0) / 100
    judge = Judge(
        "canary", min(max(step.weight, 0.0), 100.0), min(max(budget, 0.0), 1.0), (view.max_p99_ms or 500.0) / 1000
    )
    canary_errors = round((step.canary_error_rate or 0.0) / 100 * step.canary_requests)
    all_errors = round((step.error_rate or 0.0) / 100 * step.requests)
    others = max(step.requests - step.canary_requests, 0)
    judge.observe_counts("canary", step.canary_requests, min(canary_errors, step.canary_requests), 0)
    judge.observe_counts("stable", others, min(max(all_errors - canary_errors, 0), others), 0)
    judge.verdict()  # the tests record their evidence when checked
    evidence: dict[str, float | None] = dict(judge.evidence())
    evidence["canary slow"] = None  # the log has the p99, not how many answers were slow
    return evidence


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------


def _labels(view: RunView) -> list[str]:
    return [f"step {s.step}: {number(s.weight)}%" for s in view.steps]


def share_chart(view: RunView) -> str:
    chart = Chart("Canary share of the answers, per step", "canary share (%)", 100, len(view.steps))
    width = chart.bar_room()
    for i, step in enumerate(view.steps):
        low, high = step.band
        chart.rect(
            chart.x(i) - width * 0.3,
            chart.y(high),
            width * 0.6,
            chart.y(low) - chart.y(high),
            PALETTE["band"],
            class_="band",
            data_step=step.step,
            data_low=number(low, 2),
            data_high=number(high, 2),
        )
        chart.polyline(
            [(chart.x(i) - width * 0.3, chart.y(step.weight)), (chart.x(i) + width * 0.3, chart.y(step.weight))],
            PALETTE["stable"],
            width=3,
            class_="weight",
            data_step=step.step,
            data_weight=number(step.weight),
        )
        if step.effective is not None and step.effective != step.weight:
            chart.polyline(
                [
                    (chart.x(i) - width * 0.3, chart.y(step.effective)),
                    (chart.x(i) + width * 0.3, chart.y(step.effective)),
                ],
                PALETTE["ready"],
                width=2,
                dash="4 3",
                class_="effective",
                data_step=step.step,
                data_effective=number(step.effective, 2),
            )
        if step.canary_share is not None:
            color = PALETTE["budget"] if not low <= step.canary_share <= high else PALETTE["canary"]
            chart.dot(
                chart.x(i),
                chart.y(step.canary_share),
                color,
                class_="share",
                data_step=step.step,
                data_share=number(step.canary_share, 2),
            )
            chart.value(
                chart.x(i) + 10,
                chart.y(step.canary_share) - 8,
                f"{number(step.canary_share, 2)}%",
                data_kind="share",
                data_step=step.step,
            )
    chart.key(PALETTE["stable"], "weight set")
    chart.key(PALETTE["band"], "accepted band")
    chart.key(PALETTE["canary"], "observed share")
    if any(s.effective is not None and s.effective != s.weight for s in view.steps):
        chart.key(PALETTE["ready"], "effective share", "4 3")
    return chart.render(_labels(view), "weight step", chart_id="share")


def errors_chart(view: RunView) -> str:
    rates = [r for s in view.steps for r in (s.error_rate, s.canary_error_rate) if r is not None]
    budget = view.max_error_rate
    top = max([*rates, (budget or 0) * 2, 1.0])
    chart = Chart("Errors against the budget, per step", "error rate (%)", _nice(top * 1.1), len(view.steps))
    width = chart.bar_room()
    for i, step in enumerate(view.steps):
        for offset, rate, color, kind in (
            (-0.16, step.canary_error_rate, PALETTE["canary"], "canary-errors"),
            (0.16, step.error_rate, PALETTE["total"], "all-errors"),
        ):
            if rate is None:
                continue
            x = chart.x(i) + offset * width
            chart.rect(
                x - width * 0.13,
                chart.y(rate),
                width * 0.26,
                chart.y(0) - chart.y(rate),
                color,
                class_="bar",
                data_kind=kind,
                data_step=step.step,
                data_rate=number(rate, 2),
            )
            chart.value(x, chart.y(rate) - 6, f"{number(rate, 2)}%", data_kind=kind, data_step=step.step)
    if budget is not None:
        chart.hline(
            budget, PALETTE["budget"], f"budget {number(budget, 2)}%", class_="budget", data_budget=number(budget, 2)
        )
    chart.key(PALETTE["canary"], "canary errors")
    chart.key(PALETTE["total"], "all answers' errors")
    return chart.render(_labels(view), "weight step", chart_id="errors")


def latency_chart(view: RunView) -> str:
    values = [s.p99_ms for s in view.steps if s.p99_ms is not None]
    limit = view.max_p99_ms
    top = max([*values, (limit or 0) * 1.5, 1.0])
    chart = Chart("Slow answers: canary p99 against its limit", "canary p99 (ms)", _nice(top * 1.1), len(view.steps))
    width = chart.bar_room()
    for i, step in enumerate(view.steps):
        if step.p99_ms is None:
            chart.text(chart.x(i), chart.y(0) - 6, "no answers", color=PALETTE["muted"], size=11)
            continue
        color = PALETTE["budget"] if limit is not None and step.p99_ms > limit else PALETTE["canary"]
        chart.rect(
            chart.x(i) - width * 0.2,
            chart.y(step.p99_ms),
            width * 0.4,
            chart.y(0) - chart.y(step.p99_ms),
            color,
            class_="bar",
            data_kind="p99",
            data_step=step.step,
            data_ms=number(step.p99_ms, 1),
        )
        chart.value(
            chart.x(i), chart.y(step.p99_ms) - 6, f"{number(step.p99_ms, 1)} ms", data_kind="p99", data_step=step.step
        )
    if limit is not None:
        chart.hline(limit, PALETTE["budget"], f"limit {number(limit)} ms", class_="limit", data_limit=number(limit))
    chart.key(PALETTE["canary"], "canary p99")
    return chart.render(_labels(view), "weight step", chart_id="latency")


def evidence_chart(view: RunView) -> str:
    """Each test's evidence as a share of its abort threshold: log(1/p) / log(1/alpha); 1 is the abort line."""
    colors = (PALETTE["canary"], PALETTE["total"], "#e67700", PALETTE["stable"], "#0b7285")
    fractions = [
        _fraction(p, alpha) for s in view.steps for (name, alpha) in TESTS if (p := s.evidence.get(name)) is not None
    ]
    top = max([*(f for f in fractions if f is not None), 1.25])
    chart = Chart(
        "Sequential evidence against the abort threshold",
        "evidence / threshold",
        _nice(min(top, 4.0)),
        len(view.steps),
        right=170,
    )
    width = chart.bar_room()
    bar = width * 0.8 / len(TESTS)
    for i, step in enumerate(view.steps):
        for j, (name, alpha) in enumerate(TESTS):
            x = chart.x(i) - width * 0.4 + j * bar
            p = step.evidence.get(name)
            fraction = _fraction(p, alpha)
            if fraction is None:
                chart.text(x + bar / 2, chart.y(0) - 4, "?", size=10, color=PALETTE["muted"])
                continue
            chart.rect(
                x + 1,
                chart.y(fraction),
                bar - 2,
                chart.y(0) - chart.y(fraction),
                colors[j],
                class_="bar",
                data_kind="evidence",
                data_test=name,
                data_step=step.step,
                data_p=f"{p:.3g}",
                data_fraction=number(fraction, 3),
            )
        known = [f for name, alpha in TESTS if (f := _fraction(step.evidence.get(name), alpha)) is not None]
        if known:
            chart.value(
                chart.x(i),
                chart.y(min(max(known), chart.y_max)) - 16,
                f"max {number(max(known), 2)}",
                data_kind="strongest-evidence",
                data_step=step.step,
            )
    chart.hline(1.0, PALETTE["budget"], "abort threshold", class_="threshold", data_threshold="1")
    for j, (name, _) in enumerate(TESTS):
        chart.key(colors[j], name)
    return chart.render(_labels(view), "weight step", chart_id="evidence")


def _fraction(p: float | None, alpha: float) -> float | None:
    if p is None:
        return None
    if p <= 0:
        return math.inf
    return max(0.0, math.log(1 / p) / math.log(1 / alpha))


def _nice(value: float) -> float:
    """A round axis maximum at or above value."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


# ---------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; color: #212529; margin: 24px; max-width: 960px; }
h1 { font-size: 22px; margin-bottom: 4px; }
.verdict { padding: 12px 16px; border-radius: 6px; font-size: 16px; margin: 12px 0 20px; }
.promoted { background: #d3f9d8; border: 1px solid #2b8a3e; }
.aborted, .not-restored { background: #ffe3e3; border: 1px solid #c92a2a; }
.unfinished { background: #fff3bf; border: 1px solid #e67700; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #dee2e6; padding: 4px 8px; text-align: right; }
td.text { text-align: left; max-width: 420px; }
.note { color: #868e96; font-size: 13px; }
svg.chart { display: block; margin: 16px 0; border: 1px solid #dee2e6; }
"""


def render_html(view: RunView) -> str:
    outcome_text = {
        "promoted": f"Promoted: {view.release} runs {view.tag}",
        "aborted": f"Aborted: {view.reason or 'see the log'}",
        "not restored": "Aborted, and traffic could NOT be sent back: finish with `rollout abort`",
        "unfinished": "Unfinished: the log ends before a verdict (a killed run, or still running)",
    }
    rows = []
    for s in view.steps:
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{escape(c)}</td>"
                for c in (
                    str(s.step),
                    f"{number(s.weight)}%",
                    _shown(s.requests),
                    _shown(s.canary_share, "%"),
                    f"{number(s.band[0], 2)}–{number(s.band[1], 2)}%",
                    _shown(s.canary_error_rate, "%"),
                    _shown(s.error_rate, "%"),
                    _shown(s.p99_ms, " ms"),
                    _shown(s.elapsed, " s"),
                )
            )
            + f'<td class="text">{escape(s.verdict or "passed")}</td></tr>'
        )
    budget = "unknown" if view.max_error_rate is None else f"{number(view.max_error_rate, 2)}%"
    limit = "unknown" if view.max_p99_ms is None else f"{number(view.max_p99_ms)} ms"
    evidence_note = (
        "each test's always-valid p-value as the judge recorded it"
        if view.steps and all(s.evidence_logged for s in view.steps)
        else "recomputed from each step's totals with the judge's tests: exact for the error tests; the share "
        "tests' include the settle phase's answers, which the judge leaves out; the latency test's is "
        "unknown (?) as the log has the p99 only"
    )
    charts = [share_chart(view), errors_chart(view), latency_chart(view), evidence_chart(view)] if view.steps else []
    steps_text = ", ".join(number(w) + "%" for w in view.planned_steps) or "unknown"
    started = f", started {view.started}" if view.started else ""
    settings = (f"steps {steps_text}, {_shown(view.interval_s, ' s')} each, error budget {budget}, p99 limit {limit}"
                f"{started}. From {view.source}.")
    verdict_class = view.outcome.replace(" ", "-")
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        CONTENT_SECURITY_POLICY,  # nothing to run, nothing to fetch: the page shows what it holds
        f"<title>canary {escape(view.release)} {escape(view.tag)} on {escape(view.stack)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Canary of {escape(view.release)} {escape(view.tag)} on stack {escape(view.stack)}</h1>",
        f'<p class="note">{escape(settings)}</p>',
        f'<div class="verdict {verdict_class}" id="verdict">{escape(outcome_text[view.outcome])}</div>',
        *(charts or ['<p id="no-steps">No step was judged in this run.</p>']),
        f'<p class="note">Evidence: {escape(evidence_note)}. A bar reaching the threshold line is a test that '
        "rejected: the judge stops the canary there (model/judge.py).</p>",
        "<table><tr><th>step</th><th>weight</th><th>answers</th><th>canary share</th><th>band</th>"
        "<th>canary errors</th><th>all errors</th><th>canary p99</th><th>time</th><th>verdict</th></tr>",
        *rows,
        "</table>",
        "<h2>Last lines of the run</h2><pre>" + escape("\n".join(view.last_lines)) + "</pre>",
        f'<p class="note">Written {datetime.now().isoformat(timespec="seconds")} by rollout report.</p>',
        "</body></html>",
    ]
    return "\n".join(page) + "\n"


def _shown(value: float | None, unit: str = "") -> str:
    return "unknown" if value is None else f"{number(value, 2)}{unit}"


def report_path(log_path: Path) -> Path:
    """Where the report of a log goes: beside it, `.html` for its suffix."""
    return log_path.with_suffix(".html")


def write_report(log_path: Path, out: Path | None = None) -> Path:
    """Render the last run of `log_path` to `out` (default: beside the log); written whole or not at all."""
    target = out or report_path(log_path)
    html = render_html(read_log(log_path))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(target)
    return target


def record_options(log_path: Path, options: dict[str, Any]) -> None:
    """Append the run's options to its log, for the report (and for `rollout report LOG` later)."""
    keep = {
        k: options[k]
        for k in ("release", "tag", "steps", "interval", "max_error_rate", "max_p99", "rate")
        if k in options
    }
    with log_path.open("a", encoding="utf-8") as log:
        log.write(
            json.dumps({"time": datetime.now().isoformat(timespec="milliseconds"), "event": OPTIONS_EVENT, **keep})
            + "\n"
        )


def write_beside_log(log_path: Path, options: dict[str, Any]) -> Path | None:
    """At the end of `rollout canary`: the report beside the log. Never raises: a report that cannot be written
    must not hide how the run ended (None then)."""
    try:
        record_options(log_path, options)
        return write_report(log_path)
    except Exception:  # noqa: BLE001 (the run's own outcome matters more than its picture)
        return None
