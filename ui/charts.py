"""Plotly figures: accuracy against cost, ours measured next to the paper's published numbers.

Points are plain `(label, x, y)` tuples so the figures do not depend on where the numbers come
from. Nothing is written next to the points (labels collided): every measured method is its own
legend entry with its own colour, the published series is one grey legend entry named
"published (paper)", a method without a compute figure (GAP-TV) is a dotted line in the legend,
and hovering shows each point's name and values. A caption on the chart itself says what each
series is. The compute axis uses one tick style (powers of ten).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import plotly.graph_objects as go

PUBLISHED_NAME = "published (paper)"
MEASURED_NAME = "measured (this input)"
BENCHED_NAME = "qsci bench (not run here)"
PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
LINE_COLOR = "#d62728"
NO_GT_NOTE = "No ground truth for this input: PSNR is unknown, so only the latency is plotted."

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


def color_for(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _point(p: Point, color: str, x_fmt: str, x_name: str, group: str) -> go.Scatter:
    return go.Scatter(
        x=[p[1]], y=[p[2]], mode="markers", name=p[0], legendgroup=group,
        marker={"symbol": "circle", "size": 12, "color": color, "line": {"width": 1, "color": "#222"}},
        hovertemplate=f"<b>{p[0]}</b><br>{x_name} %{{x:{x_fmt}}}<br>PSNR %{{y:.2f}} dB<extra>measured here</extra>",
    )


def _caption(fig: go.Figure, lines: list[str]) -> None:
    # The chart's own caption, between the title and the plot (never over the data or legend).
    fig.add_annotation(text="<br>".join(lines), xref="paper", yref="paper", x=0, y=1.02, xanchor="left",
                       yanchor="bottom", align="left", showarrow=False, font={"size": 11, "color": "#444"})


def _layout(fig: go.Figure, title: str, x_title: str, caption_lines: int, log_x: bool, power_ticks: bool) -> None:
    fig.update_layout(
        title={"text": title, "x": 0.01, "y": 0.985, "yanchor": "top"},
        yaxis={"title": "PSNR (dB)"},
        legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1.0, "yanchor": "top",
                "font": {"size": 12}, "title": {"text": "hover a point for its values"}},
        margin={"l": 64, "r": 20, "t": 58 + 15 * caption_lines, "b": 56},
        height=420 + 15 * caption_lines,
        template="plotly_white",
        hovermode="closest",
    )
    xaxis = {"title": x_title, "type": "log" if log_x else "linear"}
    if power_ticks:
        xaxis.update(dtick=1, exponentformat="power", showexponent="all")
    else:
        xaxis.update(exponentformat="none")
    fig.update_xaxes(**xaxis)


def psnr_vs_ops(
    measured: Iterable[Point],
    published: Iterable[Point],
    x_title: str = "BOPs per measurement (log scale)",
    lines: Iterable[tuple[str, float]] = (),
    measured_note: str = "our models",
    colors: dict[str, str] | None = None,
) -> go.Figure:
    """PSNR against compute (log x): our measured methods and the paper's published table.

    `lines` are methods without a compute figure (GAP-TV), drawn as dotted horizontal lines.
    """
    ours = _usable(measured, log_x=True)
    paper = _usable(published, log_x=True)
    lines = [(label, float(y)) for label, y in lines if y is not None and math.isfinite(y)]
    fig = go.Figure()
    colors = colors or {}
    for k, p in enumerate(ours):
        fig.add_trace(_point(p, colors.get(p[0], color_for(k)), ".3~e", "BOPs", MEASURED_NAME))
    if paper:
        fig.add_trace(go.Scatter(
            x=[p[1] for p in paper], y=[p[2] for p in paper], text=[p[0] for p in paper],
            mode="lines+markers", name=PUBLISHED_NAME, line={"dash": "dash", "color": "#7f7f7f", "width": 1},
            marker={"symbol": "diamond-open", "size": 11, "color": "#7f7f7f"},
            hovertemplate="<b>%{text}</b><br>BOPs %{x:.3~e}<br>PSNR %{y:.2f} dB<extra>published (paper)</extra>"))
    xs = [p[1] for p in ours + paper]
    if xs:
        lo, hi = math.log10(min(xs)) - 0.4, math.log10(max(xs)) + 0.4
    else:
        lo, hi = 11.0, 15.0
    for label, y in lines:
        fig.add_trace(go.Scatter(
            x=[10 ** lo, 10 ** hi], y=[y, y], mode="lines", name=f"{label} {y:.2f} dB (no network)",
            line={"dash": "dot", "color": (colors or {}).get(label, LINE_COLOR), "width": 2},
            hovertemplate=f"<b>{label}</b><br>PSNR {y:.2f} dB (measured here; no BOPs: not a network)<extra></extra>"))
    caption = [f"Dots: {measured_note}, measured here on this input.",
               "Grey diamonds: the paper's published means over six scenes (S-preset models),",
               "drawn at the BOPs our counter gives those models; not measured on this input."]
    if lines:
        caption.append("Dotted line: a method without a BOPs figure, measured here on this input.")
    if not (ours or paper or lines):
        caption = ["No points to show yet: run a method on an input with ground truth."]
    _caption(fig, caption)
    _layout(fig, "PSNR vs compute", x_title, len(caption), True, True)
    fig.update_xaxes(range=[lo, hi])
    ys = [p[2] for p in ours + paper] + [y for _, y in lines]
    if ys:
        fig.update_yaxes(range=[min(ys) - 2.0, max(ys) + 2.0])
    return fig


def psnr_vs_latency(measured: Iterable[tuple[str, float, float | None]],
                    colors: dict[str, str] | None = None,
                    benched: Iterable[tuple[str, float, float]] = ()) -> go.Figure:
    """PSNR against wall-clock seconds per measurement, measured here; `benched` methods (not run
    on the page) as hollow markers at their `qsci bench` seconds and benchmark mean PSNR.

    Without scores (no ground truth) the seconds are still plotted, as bars, and the caption
    says why there is no PSNR axis.
    """
    measured = list(measured)
    ours = _usable(measured, log_x=True)
    others = _usable(list(benched), log_x=True)
    timed = [(label, float(s)) for label, s, _ in measured if s is not None and math.isfinite(s) and s > 0]
    colors = colors or {}
    fig = go.Figure()
    if ours:
        for k, p in enumerate(ours):
            fig.add_trace(_point(p, colors.get(p[0], color_for(k)), ".3g", "seconds", MEASURED_NAME))
        if others:
            fig.add_trace(go.Scatter(
                x=[p[1] for p in others], y=[p[2] for p in others], mode="markers", name=BENCHED_NAME,
                text=[p[0] for p in others], marker={"symbol": "circle-open", "size": 10, "color": "#7f7f7f"},
                hovertemplate="<b>%{text}</b><br>%{x:.3g} s (qsci bench, 256×256×8)<br>"
                              "PSNR %{y:.2f} dB (benchmark mean)<extra>not run here</extra>"))
        caption = ["Each dot: one method measured here on this input, wall-clock seconds per",
                   "measurement on this machine (CPU unless a GPU backend ran)."]
        if others:
            caption.append("Hollow: not run here; qsci bench seconds (2 threads) and mean PSNR on Drop8/Runner8/Traffic.")
        _caption(fig, caption)
        _layout(fig, "PSNR vs measured latency", "seconds per measurement (log scale)", len(caption), True, False)
        xs = [p[1] for p in ours + others]
        fig.update_xaxes(range=[math.log10(min(xs)) - 0.3, math.log10(max(xs)) + 0.3])
        ys = [p[2] for p in ours + others]
        fig.update_yaxes(range=[min(ys) - 2.0, max(ys) + 2.0])
        return fig
    if timed:
        for k, (label, s) in enumerate(timed):
            fig.add_trace(go.Bar(x=[s], y=[label], orientation="h", name=label, marker={"color": colors.get(label, color_for(k))},
                                 hovertemplate=f"<b>{label}</b><br>%{{x:.3g}} s per measurement<extra></extra>"))
        caption = [NO_GT_NOTE, "Bars: wall-clock seconds per measurement on this machine."]
        _caption(fig, caption)
        _layout(fig, "Measured latency", "seconds per measurement", len(caption), False, False)
        fig.update_yaxes(title=None, autorange="reversed")
        fig.update_layout(showlegend=False)
        return fig
    caption = ["No points to show yet: run a method first."]
    _caption(fig, caption)
    _layout(fig, "PSNR vs measured latency", "seconds per measurement (log scale)", 1, True, False)
    return fig
