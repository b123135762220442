"""A small SVG plotting kit for the reports: axes, step lines, bands, bars and labels, as plain SVG text.

Self-contained on purpose: the reports open from a file, offline, in any browser, with no script and nothing
fetched. Every number a chart claims is also a text element (class `value`, with `data-*` attributes naming what it
is), so that a test can read the numbers back and compare them with their source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = {
    "canary": "#d9480f",
    "stable": "#1c7ed6",
    "band": "#ffd8a8",
    "budget": "#c92a2a",
    "ok": "#2b8a3e",
    "grid": "#dee2e6",
    "ink": "#212529",
    "muted": "#868e96",
    "total": "#5f3dc4",
    "ready": "#2b8a3e",
}


def attrs(**values: object) -> str:
    """SVG attributes from keywords (`class_` → class, `data_step` → data-step); None values are left out."""
    parts = []
    for key, value in values.items():
        if value is None:
            continue
        name = key.rstrip("_").replace("_", "-")
        parts.append(f'{name}="{escape(str(value), quote=True)}"')
    return " ".join(parts)


def element(name: str, content: str | None = None, **attributes: object) -> str:
    """One SVG element: `<name .../>`, or with `content` (escaped) `<name ...>content</name>`."""
    opening = f"<{name} {attrs(**attributes)}".rstrip()
    return f"{opening}/>" if content is None else f"{opening}>{escape(content)}</{name}>"


def number(value: float, digits: int = 1) -> str:
    """A number as the charts print it: no trailing zeros ("5", "2.5")."""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass
class Chart:
    """A chart with a y axis from y_min to y_max and n_slots x positions (steps, or syncs of an update)."""

    title: str
    y_label: str
    y_max: float
    n_slots: int
    y_min: float = 0.0
    width: int = 720
    height: int = 300
    left: int = 64
    right: int = 150
    top: int = 40
    bottom: int = 48
    elements: list[str] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (color, label, dash)

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom

    def x(self, slot: float) -> float:
        """The centre of slot `slot` (0-based; fractions allowed)."""
        return self.left + (slot + 0.5) * self.plot_width / max(self.n_slots, 1)

    def slot_width(self) -> float:
        return self.plot_width / max(self.n_slots, 1)

    def bar_room(self) -> float:
        """The width a slot's bars share: the slot's, at most 160 px (one step should not be one wide block)."""
        return min(self.slot_width(), 160.0)

    def y(self, value: float) -> float:
        span = (self.y_max - self.y_min) or 1.0
        clipped = min(max(value, self.y_min), self.y_max)
        return self.top + self.plot_height * (1 - (clipped - self.y_min) / span)

    def add(self, markup: str) -> None:
        self.elements.append(markup)

    def text(self, x: float, y: float, content: str, *, anchor: str = "middle", size: int = 12,
             color: str = PALETTE["ink"], **data: object) -> None:
        self.add(element("text", content, x=f"{x:.1f}", y=f"{y:.1f}", text_anchor=anchor, font_size=size, fill=color,
                         **data))

    def value(self, x: float, y: float, content: str, *, color: str = PALETTE["ink"], **data: object) -> None:
        """A number the chart claims, readable back (class value, data-* attributes)."""
        self.text(x, y, content, color=color, class_="value", **data)

    def hline(self, value: float, color: str, label: str, *, dash: str = "6 4", **data: object) -> None:
        y = f"{self.y(value):.1f}"
        self.add(element("line", x1=self.left, x2=self.left + self.plot_width, y1=y, y2=y, stroke=color, stroke_width=2,
                         stroke_dasharray=dash, **data))
        # Inside the plot, right-aligned above the line: the legend has the margin to itself.
        self.text(self.left + self.plot_width - 4, self.y(value) - 5, label, anchor="end", size=11, color=color)

    def rect(self, x: float, y: float, width: float, height: float, color: str, *, opacity: float = 1.0,
             **data: object) -> None:
        self.add(element("rect", x=f"{x:.1f}", y=f"{y:.1f}", width=f"{max(width, 0):.1f}",
                         height=f"{max(height, 0):.1f}", fill=color, fill_opacity=opacity, **data))

    def polyline(self, points: Sequence[tuple[float, float]], color: str, *, width: int = 2, dash: str | None = None,
                 **data: object) -> None:
        shown = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        self.add(element("polyline", points=shown, fill="none", stroke=color, stroke_width=width,
                         stroke_dasharray=dash, **data))

    def dot(self, x: float, y: float, color: str, radius: float = 5, **data: object) -> None:
        self.add(element("circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r=radius, fill=color, **data))

    def key(self, color: str, label: str, dash: str = "") -> None:
        self.legend.append((color, label, dash))

    def render(self, x_labels: Sequence[str], x_title: str, *, y_ticks: int = 5, chart_id: str = "") -> str:
        """The chart as one <svg> element."""
        muted, ink = PALETTE["muted"], PALETTE["ink"]
        right, bottom = self.left + self.plot_width, self.top + self.plot_height
        middle = f"{self.top + self.plot_height / 2:.1f}"
        opening = attrs(xmlns="http://www.w3.org/2000/svg", width=self.width, height=self.height,
                        viewBox=f"0 0 {self.width} {self.height}", role="img", id=chart_id or None, class_="chart")
        parts = [f"<svg {opening}>", element("title", self.title),
                 element("rect", x=0, y=0, width=self.width, height=self.height, fill="#ffffff"),
                 element("text", self.title, x=self.left, y=22, font_size=15, font_weight="bold", fill=ink)]
        for i in range(y_ticks + 1):
            value = self.y_min + (self.y_max - self.y_min) * i / y_ticks
            y = self.y(value)
            parts.append(element("line", x1=self.left, x2=right, y1=f"{y:.1f}", y2=f"{y:.1f}", stroke=PALETTE["grid"]))
            parts.append(element("text", number(value, 2), x=self.left - 6, y=f"{y + 4:.1f}", text_anchor="end",
                                 font_size=11, fill=muted))
        parts.append(element("text", self.y_label, x=14, y=middle, font_size=12, fill=muted,
                             transform=f"rotate(-90 14 {middle})", text_anchor="middle"))
        step = max(1, len(x_labels) // 12)  # at most about 12 labels on the x axis
        for i, label in enumerate(x_labels):
            if i % step == 0 or i == len(x_labels) - 1:
                parts.append(element("text", label, x=f"{self.x(i):.1f}", y=bottom + 18, text_anchor="middle",
                                     font_size=11, fill=muted))
        parts.append(element("text", x_title, x=f"{self.left + self.plot_width / 2:.1f}", y=self.height - 8,
                             text_anchor="middle", font_size=12, fill=muted))
        parts.append(element("line", x1=self.left, x2=self.left, y1=self.top, y2=bottom, stroke=ink))
        parts.append(element("line", x1=self.left, x2=right, y1=bottom, y2=bottom, stroke=ink))
        parts.extend(self.elements)
        for i, (color, label, dash) in enumerate(self.legend):
            y, x = self.top + 10 + 18 * i, right + 10
            parts.append(element("line", x1=x, x2=x + 18, y1=y, y2=y, stroke=color, stroke_width=4,
                                 stroke_dasharray=dash or None))
            parts.append(element("text", label, x=x + 24, y=y + 4, font_size=11, fill=ink))
        parts.append("</svg>")
        return "\n".join(parts)
