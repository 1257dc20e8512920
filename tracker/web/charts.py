"""Small server-side SVG charts: stacked columns and grouped horizontal bars, no JavaScript.

Pure functions from numbers and words to an ``<svg>`` element. Every piece of text is escaped;
every chart has a visible title, axes with ticks and titles, a legend, a ``<title>`` per bar
(shown on hover), and ``<title>``/``<desc>`` for screen readers. Only presentation attributes
are used (no ``style``), so the page's Content-Security-Policy needs no exception.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 880
FONT = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
INK = "#1f2328"
MUTED = "#59636e"
GRID = "#d8dee4"
CHAR_WIDTH = 6.6  # average width of a 12 px character, for laying out labels
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_ID = re.compile(r"[a-z][a-z0-9-]{0,40}")


@dataclass(frozen=True, slots=True)
class Series:
    """One coloured set of values, one per label; ``texts`` (optional) label each bar."""

    name: str
    color: str
    values: tuple[float | None, ...]
    texts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _COLOR.fullmatch(self.color):
            raise ValueError(f"colour {self.color!r} is not #rrggbb")

    def text(self, index: int, fmt: Callable[[float], str]) -> str:
        if self.texts:
            return self.texts[index]
        value = self.values[index]
        return "no data" if value is None else fmt(value)


def number(value: float) -> str:
    """``12``, ``3.5``, ``1,200``: whole numbers without decimals, others with one."""
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):,}"
    return f"{value:,.1f}"


def nice_ticks(top: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round tick values from 0 to at least ``top``: ``nice_ticks(37)`` -> 0, 10, 20, 30, 40.

    ``whole``: the values are counts, so every step is a whole number.
    """
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = max(top / count, 1.0) if whole else top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    steps = [m * magnitude for m in (1, 2, 2.5, 5, 10)]
    if whole:
        steps = [step for step in steps if float(step).is_integer()]
    step = next(step for step in steps if step >= raw)
    ticks = [0.0]
    while ticks[-1] < top - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tag(name: str, text: str | None = None, /, **attrs: object) -> str:
    """``<name attr="...">text</name>`` with every attribute and the text escaped."""
    parts = [name]
    for key, value in attrs.items():
        shown = _fmt(value) if isinstance(value, float) else str(value)
        parts.append(f'{key.rstrip("_").replace("_", "-")}="{escape(shown)}"')
    opening = " ".join(parts)
    if text is None:
        return f"<{opening}/>"
    return f"<{opening}>{escape(text)}</{name}>"


def _open(chart_id: str, title: str, desc: str, height: float) -> list[str]:
    if not _ID.fullmatch(chart_id):
        raise ValueError(f"chart id {chart_id!r} is not a simple lower-case name")
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {_fmt(height)}" '
        f'width="100%" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
        f'font-family="{escape(FONT)}" font-size="12" fill="{INK}" class="chart" '
        f'id="{chart_id}">',
        _tag("title", title, id=f"{chart_id}-title"),
        _tag("desc", desc, id=f"{chart_id}-desc"),
        _tag("text", title, x=0, y=18, font_size=15, font_weight=600),
    ]


def _legend(series: Sequence[Series], top: float) -> tuple[list[str], float]:
    """Coloured squares and names, wrapped to the width; returns the parts and the next y."""
    parts: list[str] = []
    x, y = 0.0, top
    for item in series:
        width = 18 + len(item.name) * CHAR_WIDTH + 18
        if x > 0 and x + width > WIDTH:
            x, y = 0.0, y + 20
        parts.append(_tag("rect", x=x, y=y, width=12, height=12, rx=2, fill=item.color))
        parts.append(_tag("text", item.name, x=x + 18, y=y + 10.5))
        x += width
    return parts, y + 26


def _finish(parts: list[str]) -> Markup:
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text and attribute escaped by _tag


def stacked_columns(
    *,
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    y_title: str,
    x_title: str,
    empty: str = "No data in this range.",
) -> Markup:
    """One column per label, its series stacked bottom to top in the order given."""
    plot_height, left, bottom = 220.0, 56.0, 50.0
    legend, top = _legend(series, 32)
    parts = _open(chart_id, title, desc, top + plot_height + bottom) + legend
    totals = [sum(s.values[i] or 0 for s in series) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0), whole=True)
    scale = plot_height / ticks[-1]
    base = top + plot_height
    width = WIDTH - left - 8
    for tick in ticks:
        y = base - tick * scale
        parts.append(_tag("line", x1=left, x2=left + width, y1=y, y2=y, stroke=GRID))
        parts.append(_tag("text", number(tick), x=left - 6, y=y + 4, text_anchor="end"))
    parts.append(
        _tag(
            "text",
            y_title,
            x=-(top + plot_height / 2),
            y=14,
            transform="rotate(-90)",
            text_anchor="middle",
            fill=MUTED,
        )
    )
    slot = width / max(len(labels), 1)
    every = max(1, math.ceil(len(labels) / 12))
    for i, label in enumerate(labels):
        x = left + i * slot + slot * 0.15
        y = base
        for item in series:
            value = item.values[i] or 0
            if value <= 0:
                continue
            size = value * scale
            y -= size
            tip = f"{label} · {item.name}: {number(value)}"
            parts.append(
                f"<rect {_attrs(x=x, y=y, width=max(slot * 0.7, 1), height=size)} "
                f'fill="{item.color}">{_tag("title", tip)}</rect>'
            )
        if len(labels) <= 31 and totals[i] > 0:
            parts.append(
                _tag(
                    "text",
                    number(totals[i]),
                    x=x + slot * 0.35,
                    y=y - 4,
                    text_anchor="middle",
                    font_size=10,
                    fill=MUTED,
                )
            )
        if i % every == 0:
            parts.append(
                _tag("text", label, x=left + (i + 0.5) * slot, y=base + 16, text_anchor="middle")
            )
    parts.append(_tag("line", x1=left, x2=left + width, y1=base, y2=base, stroke=MUTED))
    parts.append(_tag("line", x1=left, x2=left, y1=top, y2=base, stroke=MUTED))
    parts.append(
        _tag("text", x_title, x=left + width / 2, y=base + 38, text_anchor="middle", fill=MUTED)
    )
    if not any(totals):
        parts.append(
            _tag(
                "text",
                empty,
                x=left + width / 2,
                y=top + plot_height / 2,
                text_anchor="middle",
                fill=MUTED,
                font_size=14,
            )
        )
    return _finish(parts)


def grouped_bars(
    *,
    chart_id: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    x_title: str,
    value_text: Callable[[float], str] = number,
    top: float | None = None,
    whole: bool = False,
    empty: str = "No data in this range.",
) -> Markup:
    """Per label a group of horizontal bars, one per series, each with its value at its end.

    ``top``: the axis's end (default: a round number past the largest value); ``whole``: the
    values are counts.
    """
    bar, gap = 16.0, 14.0
    longest = max((len(label) for label in labels), default=4)
    left = min(220.0, 12 + longest * CHAR_WIDTH)
    right = 150.0  # room for the value texts
    legend, first = _legend(series, 32)
    group = bar * max(len(series), 1) + gap
    plot_height = max(group * len(labels), 40)
    parts = _open(chart_id, title, desc, first + plot_height + 46) + legend
    values = [v for s in series for v in s.values if v is not None]
    ticks = nice_ticks(top if top is not None else max(values, default=0), whole=whole)
    width = WIDTH - left - right
    scale = width / ticks[-1]
    base = first + plot_height
    for tick in ticks:
        x = left + tick * scale
        parts.append(_tag("line", x1=x, x2=x, y1=first, y2=base, stroke=GRID))
        parts.append(_tag("text", value_text(tick), x=x, y=base + 16, text_anchor="middle"))
    for i, label in enumerate(labels):
        y0 = first + i * group + gap / 2
        parts.append(
            _tag("text", label, x=left - 8, y=y0 + group / 2 - gap / 2 + 4, text_anchor="end")
        )
        for j, item in enumerate(series):
            y = y0 + j * bar
            value = item.values[i]
            shown = item.text(i, value_text)
            size = 0.0 if value is None else max(value * scale, 0.0)
            tip = f"{label} · {item.name}: {shown}"
            parts.append(
                f"<rect {_attrs(x=left, y=y + 1, width=size, height=bar - 2)} "
                f'fill="{item.color}">{_tag("title", tip)}</rect>'
            )
            parts.append(_tag("text", shown, x=left + size + 4, y=y + bar - 4, font_size=11))
    parts.append(_tag("line", x1=left, x2=left, y1=first, y2=base, stroke=MUTED))
    parts.append(_tag("line", x1=left, x2=left + width, y1=base, y2=base, stroke=MUTED))
    parts.append(
        _tag("text", x_title, x=left + width / 2, y=base + 36, text_anchor="middle", fill=MUTED)
    )
    if not labels:
        parts.append(
            _tag(
                "text",
                empty,
                x=left + width / 2,
                y=first + 24,
                text_anchor="middle",
                fill=MUTED,
                font_size=14,
            )
        )
    return _finish(parts)


def _attrs(**attrs: float) -> str:
    return " ".join(f'{key}="{_fmt(value)}"' for key, value in attrs.items())
