"""A Deployment update's forecast as a picture: ready (available) and total pods, sync by sync, against the limits
the controller keeps (spec.replicas − maxUnavailable available, spec.replicas + maxSurge pods). `rollout forecast
--svg FILE` writes it; the numbers are model/forecast.py's, the Deployment controller's own arithmetic."""

from __future__ import annotations

import math

from model.forecast import Forecast
from report.svg import PALETTE, Chart, number


def forecast_svg(fc: Forecast) -> str:
    """One <svg> document: a step line for the pods and one for the available pods, per listed step."""
    steps = fc.steps
    highest = max([fc.max_total, fc.max_pods_seen, fc.replicas, 1])
    top = 5 * math.ceil(highest * 1.15 / 5)  # room above the limit line; ticks of whole pods (5 ticks)
    title = f"{fc.strategy}, {fc.replicas} replicas" + (
        f": maxSurge {fc.surge_pods}, maxUnavailable {fc.unavailable_pods} (pods)" if fc.strategy != "Recreate" else ""
    )
    chart = Chart(title, "pods", top, len(steps), width=max(640, min(1400, 60 * len(steps) + 260)))
    labels = []
    for i in range(len(steps)):
        index = i + (fc.omitted_steps if fc.omitted_steps and i >= (fc.omitted_after or 0) else 0)
        labels.append(str(index))
    for kind, color, values in (
        ("pods", PALETTE["total"], [s.pods for s in steps]),
        ("available", PALETTE["ready"], [s.available for s in steps]),
    ):
        points = []
        width = chart.slot_width()
        for i, value in enumerate(values):
            points += [(chart.x(i) - width / 2, chart.y(value)), (chart.x(i) + width / 2, chart.y(value))]
            chart.value(
                chart.x(i),
                chart.y(value) + (-6 if kind == "pods" else 14),
                str(value),
                color=color,
                data_kind=kind,
                data_step=labels[i],
            )
        chart.polyline(points, color, width=3, class_=kind)
    if fc.strategy != "Recreate":
        chart.hline(
            fc.max_total,
            PALETTE["budget"],
            f"at most {fc.max_total}",
            class_="limit",
            data_kind="max-total",
            data_value=fc.max_total,
        )
        chart.hline(
            fc.min_available,
            PALETTE["canary"],
            f"at least {fc.min_available}",
            class_="limit",
            data_kind="min-available",
            data_value=fc.min_available,
        )
    chart.key(PALETTE["total"], "pods (old + new)")
    chart.key(PALETTE["ready"], "available")
    if fc.omitted_steps:
        chart.text(
            chart.left + chart.plot_width / 2,
            chart.top + 14,
            f"{fc.omitted_steps:,} steps not drawn after step {fc.omitted_after}: the same cycle repeats",
            size=11,
            color=PALETTE["muted"],
        )
    svg = chart.render(
        labels,
        f"controller step (fewest available {fc.min_available_seen}, most pods "
        f"{fc.max_pods_seen}, {number(fc.syncs)} syncs)",
        chart_id="forecast",
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + svg + "\n"
