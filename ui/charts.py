"""Plotly figures: accuracy against cost, ours measured next to the paper's published numbers.

Points are plain `(label, x, y)` tuples so the figures do not depend on where the numbers come
from; the published series is always drawn with its own marker and the legend name
"published (paper)" so nobody mistakes it for something this app measured.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import plotly.graph_objects as go

PUBLISHED_NAME = "published (paper)"
MEASURED_NAME = "measured (this input)"

Point = tuple[str, float, float]


def _usable(points: Iterable[Point], log_x: bool) -> list[Point]:
    # Drop points that cannot be drawn (missing score, non-positive x on a log axis).
    out = []
    for label, x, y in points:
        if x is None or y is None or not math.isfinite(x) or not math.isfinite(y):
            continue
        if log_x and x <= 0:
            continue
        out.append((label, float(x), float(y)))
    return out


def _scatter(points: list[Point], name: str, symbol: str, color: str, x_fmt: str) -> go.Scatter:
    return go.Scatter(
        x=[p[1] for p in points],
        y=[p[2] for p in points],
        text=[p[0] for p in points],
        mode="markers+text",
        textposition="top center",
        name=name,
        marker={"symbol": symbol, "size": 11, "color": color, "line": {"width": 1, "color": "#222"}},
        hovertemplate=f"%{{text}}<br>x=%{{x:{x_fmt}}}<br>PSNR=%{{y:.2f}} dB<extra>{name}</extra>",
    )


def _layout(fig: go.Figure, title: str, x_title: str, log_x: bool, empty: bool, ys: list[float] = (),
            xs: list[float] = ()) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01},
        xaxis={"title": x_title, "type": "log" if log_x else "linear"},
        yaxis={"title": "PSNR (dB)"},
        legend={"orientation": "h", "y": -0.22},
        margin={"l": 60, "r": 20, "t": 50, "b": 70},
        height=380,
        template="plotly_white",
    )
    if ys:  # room above and below for the text labels
        fig.update_yaxes(range=[min(ys) - 3.0, max(ys) + 4.0])
    if xs and log_x:  # half a decade either side so labels at the ends stay readable
        lo, hi = math.log10(min(xs)), math.log10(max(xs))
        fig.update_xaxes(range=[lo - 0.5, hi + 0.5])
    if empty:
        fig.add_annotation(text="no points to show yet", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    return fig


def psnr_vs_ops(
    measured: Iterable[Point],
    published: Iterable[Point],
    x_title: str = "BOPs per measurement (log scale)",
    lines: Iterable[tuple[str, float]] = (),
) -> go.Figure:
    """PSNR against compute (log x): our measured methods and the paper's published table.

    `lines` are methods without a compute figure (GAP-TV), drawn as labelled horizontal lines.
    """
    ours = _usable(measured, log_x=True)
    paper = _usable(published, log_x=True)
    fig = go.Figure()
    lines = list(lines)
    for label, y in lines:
        if y is not None and math.isfinite(y):
            fig.add_hline(y=float(y), line_dash="dot", line_color="#d62728",
                          annotation_text=f"{label} (measured) {y:.2f} dB", annotation_position="bottom right")
    if paper:
        fig.add_trace(_scatter(paper, PUBLISHED_NAME, "diamond-open", "#7f7f7f", ".4g"))
    if ours:
        fig.add_trace(_scatter(ours, MEASURED_NAME, "circle", "#1f77b4", ".4g"))
    ys = [p[2] for p in ours + paper] + [float(y) for _, y in lines if y is not None and math.isfinite(y)]
    return _layout(fig, "PSNR vs compute", x_title, True, not (ours or paper), ys, [p[1] for p in ours + paper])


def psnr_vs_latency(measured: Iterable[Point]) -> go.Figure:
    """PSNR against wall-clock seconds measured here (CPU unless a GPU backend ran)."""
    ours = _usable(measured, log_x=True)
    fig = go.Figure()
    if ours:
        fig.add_trace(_scatter(ours, MEASURED_NAME, "circle", "#d62728", ".3g"))
    return _layout(fig, "PSNR vs measured latency", "seconds per measurement (this machine, log scale)", True, not ours,
                   [p[2] for p in ours], [p[1] for p in ours])
