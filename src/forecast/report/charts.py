"""Inline SVG charts for the leaders' report.

Every function takes plain numbers and returns an SVG string that needs nothing from the network
and carries its own text alternative (`role="img"`, `<title>`, `<desc>`, `aria-label`). Colours
are the Okabe-Ito palette, which stays distinguishable under the common colour-vision
deficiencies; meaning is never carried by colour alone (signs, labels and text say it too).

Pure functions: nothing here reads files, and nothing here knows about employees.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

# Okabe-Ito (Okabe & Ito 2008): safe for protanopia, deuteranopia and tritanopia.
BLACK = "#000000"
ORANGE = "#E69F00"
SKY = "#56B4E9"
GREEN = "#009E73"
YELLOW = "#F0E442"
BLUE = "#0072B2"
VERMILLION = "#D55E00"
PURPLE = "#CC79A7"
GREY = "#767676"  # 4.5:1 on white: the lightest grey that still passes WCAG AA for text
UP_COLOUR, DOWN_COLOUR = VERMILLION, BLUE  # "raises risk" vs "lowers risk"
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\""


def _f(x: float) -> str:
    """Coordinates with two decimals: plenty for a screen, and keeps the file small."""
    return f"{x:.2f}".rstrip("0").rstrip(".") if math.isfinite(x) else "0"


def _svg_open(width: float, height: float, title: str, desc: str, cls: str) -> str:
    t, d = escape(title), escape(desc)
    return (
        f'<svg class="{cls}" viewBox="0 0 {_f(width)} '
        f'{_f(height)}" width="{_f(width)}" height="{_f(height)}" role="img" aria-label="{t}" '
        f"{FONT}><title>{t}</title><desc>{d}</desc>"
    )


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def sparkline(
    values: Sequence[float | None],
    *,
    title: str,
    desc: str,
    width: float = 96,
    height: float = 24,
    colour: str = BLUE,
    as_bars: bool = False,
) -> str:
    """A word-sized chart of a short series (missing months leave gaps).

    Bars for counts (leavers: a zero month should look like nothing happened), a line for
    levels (CSAT). The last point is marked so the eye finds "now".
    """
    vals = [None if v is None or not math.isfinite(float(v)) else float(v) for v in values]
    ok = _finite(vals)
    svg = _svg_open(width, height, title, desc, "spark")
    if not ok:
        return svg + (
            f'<text x="2" y="{_f(height - 6)}" font-size="9" fill="{GREY}">no data</text></svg>'
        )
    lo, hi = (0.0 if as_bars else min(ok)), max(ok)
    span = hi - lo or 1.0
    n = len(vals)
    step = (width - 4) / max(n - (0 if as_bars else 1), 1)

    def y(v: float) -> float:
        return height - 2 - (v - lo) / span * (height - 4)

    parts = [svg]
    if as_bars:
        bar_w = max(step * 0.7, 1.0)
        for i, v in enumerate(vals):
            if v is None or v <= 0:
                continue
            top = y(v)
            parts.append(
                f'<rect x="{_f(2 + i * step)}" y="{_f(top)}" width="{_f(bar_w)}" '
                f'height="{_f(height - 2 - top)}" fill="{colour}"/>'
            )
        parts.append(
            f'<line x1="2" x2="{_f(width - 2)}" y1="{_f(height - 1.5)}" y2="{_f(height - 1.5)}" '
            f'stroke="{GREY}" stroke-width="0.5"/>'
        )
    else:
        path, pen = [], "M"
        for i, v in enumerate(vals):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{_f(2 + i * step)},{_f(y(v))}")
            pen = "L"
        parts.append(
            f'<path d="{" ".join(path)}" fill="none" stroke="{colour}" stroke-width="1.5" '
            f'stroke-linejoin="round"/>'
        )
        last = max(i for i, v in enumerate(vals) if v is not None)
        parts.append(
            f'<circle cx="{_f(2 + last * step)}" cy="{_f(y(vals[last]))}" r="2" fill="{colour}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def waterfall(
    base: float,
    steps: Sequence[tuple[str, float]],
    *,
    title: str,
    desc: str,
    start_label: str,
    end_label: str,
    tick_format: Callable[[float], str],
    step_format: Callable[[float], str],
    up_is_bad: bool = True,
    highlight: str | None = None,
    width: float = 600,
) -> str:
    """A horizontal SHAP waterfall: from the organisation's baseline, one bar per driver, to this
    team's forecast. `steps` are additive in the model's own scale; `tick_format` turns a
    position on that scale into words the reader knows (e.g. log-rate -> expected leavers), so
    the bars stay exactly additive while the labels stay readable. `step_format` words one
    bar (signed, in the reader's unit).
    """
    row_h, label_w, value_w, pad = 22.0, 236.0, 92.0, 8.0
    height = row_h * (len(steps) + 2) + 30
    cum = [base]
    for _, v in steps:
        cum.append(cum[-1] + v)
    lo, hi = min(cum), max(cum)
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    plot_w = width - label_w - value_w - pad

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    parts = [_svg_open(width, height, title, desc, "waterfall")]
    rows = [(start_label, None, base)] + [(lab, v, None) for lab, v in steps]
    rows.append((end_label, None, cum[-1]))
    for i, (label, delta, level) in enumerate(rows):
        top = 6 + i * row_h
        mid = top + row_h / 2
        parts.append(
            f'<text x="{_f(label_w - 6)}" y="{_f(mid + 4)}" font-size="11" text-anchor="end" '
            f'fill="{BLACK}">{escape(_clip(label, 36))}</text>'
        )
        if delta is None:
            assert level is not None
            parts.append(
                f'<line x1="{_f(x(level))}" x2="{_f(x(level))}" y1="{_f(top + 3)}" '
                f'y2="{_f(top + row_h - 3)}" stroke="{BLACK}" stroke-width="2.5"/>'
            )
            parts.append(
                f'<text x="{_f(width - value_w + 4)}" y="{_f(mid + 4)}" font-size="11" '
                f'font-weight="bold">{escape(tick_format(level))}</text>'
            )
            continue
        a, b = cum[i - 1], cum[i]
        bad = (delta > 0) == up_is_bad
        colour = UP_COLOUR if bad else DOWN_COLOUR
        left, right = min(x(a), x(b)), max(x(a), x(b))
        stroke = f' stroke="{BLACK}" stroke-width="1.5"' if highlight and label == highlight else ""
        parts.append(
            f'<rect x="{_f(left)}" y="{_f(top + 4)}" width="{_f(max(right - left, 1))}" '
            f'height="{_f(row_h - 8)}" fill="{colour}"{stroke}/>'
        )
        parts.append(
            f'<text x="{_f(width - value_w + 4)}" y="{_f(mid + 4)}" font-size="10" '
            f'fill="{BLACK}">{escape(step_format(delta))}</text>'
        )
    axis_y = 6 + len(rows) * row_h + 4
    parts.append(
        f'<line x1="{_f(label_w)}" x2="{_f(label_w + plot_w)}" y1="{_f(axis_y)}" '
        f'y2="{_f(axis_y)}" stroke="{GREY}"/>'
    )
    for v in (lo + 0.05 * span, (lo + hi) / 2, hi - 0.05 * span):
        parts.append(
            f'<text x="{_f(x(v))}" y="{_f(axis_y + 14)}" font-size="10" text-anchor="middle" '
            f'fill="{GREY}">{escape(tick_format(v))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def hbar(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    desc: str,
    colour: str = BLUE,
    value_format: Callable[[float], str] = lambda v: f"{v:.2f}",
    width: float = 560,
) -> str:
    """Horizontal bars of non-negative values (e.g. mean |SHAP|), largest first as given."""
    row_h, label_w, value_w = 20.0, 262.0, 60.0
    height = row_h * max(len(items), 1) + 10
    top_v = max((v for _, v in items), default=0.0) or 1.0
    plot_w = width - label_w - value_w
    parts = [_svg_open(width, height, title, desc, "hbar")]
    for i, (label, v) in enumerate(items):
        y = 5 + i * row_h
        w = max(v / top_v * plot_w, 0.5)
        parts.append(
            f'<text x="{_f(label_w - 6)}" y="{_f(y + 14)}" font-size="11" text-anchor="end">'
            f"{escape(_clip(label, 40))}</text>"
            f'<rect x="{_f(label_w)}" y="{_f(y + 3)}" width="{_f(w)}" height="{_f(row_h - 6)}" '
            f'fill="{colour}"/>'
            f'<text x="{_f(label_w + w + 4)}" y="{_f(y + 14)}" font-size="10">'
            f"{escape(value_format(v))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def calibration(
    predicted: Sequence[float],
    realised: Sequence[float],
    *,
    labels: Sequence[str],
    title: str,
    desc: str,
    width: float = 420,
    height: float = 300,
) -> str:
    """Predicted against realised (mean leavers per team) by risk decile, with the diagonal a
    perfect forecast would sit on. Points are numbered by decile so the chart reads without
    colour."""
    pad_l, pad_b, pad_t, pad_r = 48.0, 40.0, 12.0, 12.0
    vals = _finite(list(predicted) + list(realised))
    step = nice_step(max(vals, default=1.0) / 4)
    hi = step * math.ceil(max(vals, default=1.0) * 1.02 / step) or 1.0
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b

    def sx(v: float) -> float:
        return pad_l + v / hi * pw

    def sy(v: float) -> float:
        return pad_t + ph - v / hi * ph

    parts = [_svg_open(width, height, title, desc, "calibration")]
    parts.append(
        f'<rect x="{_f(pad_l)}" y="{_f(pad_t)}" width="{_f(pw)}" height="{_f(ph)}" fill="none" '
        f'stroke="{GREY}" stroke-width="0.5"/>'
        f'<line x1="{_f(sx(0))}" y1="{_f(sy(0))}" x2="{_f(sx(hi))}" y2="{_f(sy(hi))}" '
        f'stroke="{GREY}" stroke-dasharray="4 3"/>'
    )
    for k in range(round(hi / step) + 1):
        v = k * step
        parts.append(
            f'<text x="{_f(pad_l - 4)}" y="{_f(sy(v) + 3)}" font-size="9" text-anchor="end" '
            f'fill="{GREY}">{v:g}</text>'
            f'<text x="{_f(sx(v))}" y="{_f(pad_t + ph + 12)}" font-size="9" text-anchor="middle" '
            f'fill="{GREY}">{v:g}</text>'
        )
    parts.append(
        f'<text x="{_f(pad_l + pw / 2)}" y="{_f(height - 8)}" font-size="10" '
        f'text-anchor="middle">predicted leavers per team</text>'
        f'<text x="12" y="{_f(pad_t + ph / 2)}" font-size="10" text-anchor="middle" '
        f'transform="rotate(-90 12 {_f(pad_t + ph / 2)})">realised leavers per team</text>'
    )
    for p, r, lab in zip(predicted, realised, labels, strict=True):
        if not (math.isfinite(p) and math.isfinite(r)):
            continue
        parts.append(
            f'<circle cx="{_f(sx(p))}" cy="{_f(sy(r))}" r="7" fill="{BLUE}" fill-opacity="0.85"/>'
            f'<text x="{_f(sx(p))}" y="{_f(sy(r) + 3)}" font-size="8" text-anchor="middle" '
            f'fill="#ffffff">{escape(lab)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def nice_step(raw: float) -> float:
    """A round axis step (1, 2 or 5 times a power of ten) at least `raw`."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def interval_bar(
    expected: float,
    low: float,
    high: float,
    *,
    scale_max: float,
    title: str,
    width: float = 70,
    height: float = 14,
) -> str:
    """A tiny range bar (80% interval) with the expected value as a tick, for table cells."""
    hi = scale_max or 1.0

    def x(v: float) -> float:
        return 2 + max(min(v / hi, 1.0), 0.0) * (width - 4)

    t = escape(title)
    return (
        f'<svg class="ibar" width="{_f(width)}" '
        f'height="{_f(height)}" viewBox="0 0 {_f(width)} {_f(height)}" role="img" '
        f'aria-label="{t}"><title>{t}</title>'
        f'<rect x="{_f(x(low))}" y="4" width="{_f(max(x(high) - x(low), 1))}" height="6" '
        f'fill="{SKY}"/>'
        f'<rect x="{_f(x(expected) - 1)}" y="1" width="2" height="12" fill="{BLACK}"/></svg>'
    )


def forecast_vs_actual(
    labels: Sequence[str],
    expected: Sequence[float],
    low: Sequence[float],
    high: Sequence[float],
    realised: Sequence[float | None],
    *,
    title: str,
    desc: str,
    width: float = 640,
    height: float = 260,
) -> str:
    """Expected values per period as a line with its interval as a band, and what happened as
    squares (missing where not known yet); a legend in words, so colour carries nothing alone."""
    pad_l, pad_b, pad_t, pad_r = 48.0, 52.0, 12.0, 12.0
    vals = _finite([*expected, *high, *(v for v in realised if v is not None)])
    step = nice_step(max(vals, default=1.0) / 4)
    top = step * math.ceil(max(vals, default=1.0) * 1.05 / step) or 1.0
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b
    n = len(labels)

    def sx(i: int) -> float:
        return pad_l + (pw * (i + 0.5) / n if n else 0.0)

    def sy(v: float) -> float:
        return pad_t + ph - max(v, 0.0) / top * ph

    parts = [_svg_open(width, height, title, desc, "trend")]
    for k in range(round(top / step) + 1):
        v = k * step
        parts.append(
            f'<line x1="{_f(pad_l)}" y1="{_f(sy(v))}" x2="{_f(pad_l + pw)}" y2="{_f(sy(v))}" '
            f'stroke="#e3e3e3"/>'
            f'<text x="{_f(pad_l - 4)}" y="{_f(sy(v) + 3)}" font-size="9" text-anchor="end" '
            f'fill="{GREY}">{v:g}</text>'
        )
    if n:
        band = [f"{_f(sx(i))},{_f(sy(v))}" for i, v in enumerate(high)]
        band += [f"{_f(sx(i))},{_f(sy(v))}" for i, v in reversed(list(enumerate(low)))]
        parts.append(f'<polygon points="{" ".join(band)}" fill="{SKY}" fill-opacity="0.35"/>')
        line = " ".join(f"{_f(sx(i))},{_f(sy(v))}" for i, v in enumerate(expected))
        parts.append(f'<polyline points="{line}" fill="none" stroke="{BLUE}" stroke-width="2"/>')
    for i, (lab, e, r) in enumerate(zip(labels, expected, realised, strict=True)):
        parts.append(
            f'<circle cx="{_f(sx(i))}" cy="{_f(sy(e))}" r="3.5" fill="{BLUE}"/>'
            f'<text x="{_f(sx(i))}" y="{_f(pad_t + ph + 14)}" font-size="9" '
            f'text-anchor="middle" fill="{GREY}">{escape(lab)}</text>'
        )
        if r is not None and math.isfinite(r):
            parts.append(
                f'<rect x="{_f(sx(i) - 4)}" y="{_f(sy(r) - 4)}" width="8" height="8" '
                f'fill="{VERMILLION}"/>'
            )
    legend_y = height - 12
    parts.append(
        f'<circle cx="{_f(pad_l + 6)}" cy="{_f(legend_y - 3)}" r="3.5" fill="{BLUE}"/>'
        f'<text x="{_f(pad_l + 14)}" y="{_f(legend_y)}" font-size="10">expected (band: 80% '
        f"interval, approximate)</text>"
        f'<rect x="{_f(pad_l + 300)}" y="{_f(legend_y - 7)}" width="8" height="8" '
        f'fill="{VERMILLION}"/>'
        f'<text x="{_f(pad_l + 312)}" y="{_f(legend_y)}" font-size="10">what happened '
        f"(once the horizon has passed)</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
