"""The HTML report's plots: matplotlib (Agg) to inline SVG, from the plain numbers a ``Figure`` carries.

Text stays text (``svg.fonttype: none``: the reader's own sans-serif, no embedded or fetched font), and
the output is byte-for-byte reproducible (no date, no creator, ids salted by figure), so a committed
example report regenerates exactly.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ladder.memo import Store

PlotData = dict[str, Any]  # a figure's data as the report's Document holds it (JSON-able)

DEV, TEST, TARGET, CHOSEN, MUTED = "#1f5fa8", "#d9822b", "#b3261e", "#2e7d32", "#8a8a8a"


def _inline(svg: str) -> str:
    """Drop the XML prolog and DOCTYPE (an inline <svg> in HTML has none); keep the drawing."""
    return svg[svg.index("<svg") :].strip() + "\n"


def _errorbars(
    ax: Axes,
    xs: Sequence[float],
    intervals: Sequence[Sequence[float]],
    color: str,
    label: str | None,
    marker: str = "o",
) -> None:
    means = [m for m, _, _ in intervals]
    # never negative, whatever a record holds (an old record's Wilson bound 1.7e-18 above a mean of 0)
    below = [max(0.0, m - lo) for m, lo, _ in intervals]
    above = [max(0.0, hi - m) for m, _, hi in intervals]
    ax.errorbar(xs, means, yerr=[below, above], fmt=marker, color=color, capsize=4, label=label)


def scores(ax: Axes, data: PlotData) -> None:
    rungs = data["rungs"]
    xs = list(range(len(rungs)))
    _errorbars(ax, [x - 0.1 for x in xs], data["dev"], DEV, "dev")
    _errorbars(ax, [x + 0.1 for x in xs], data["test"], TEST, "test", marker="s")
    ax.axhline(data["threshold"], color=TARGET, linestyle="--", linewidth=1, label=f"target {data['threshold']:.3f}")
    ax.set_xticks(xs, rungs)
    ax.set_ylabel(data["metric"])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(-0.5, len(rungs) - 0.5)
    ax.legend(loc="best", frameon=False)


def quality_cost(ax: Axes, data: PlotData) -> None:
    for name, cost, interval in zip(data["rungs"], data["cost"], data["dev"]):
        chosen = name == data["chosen"]
        color = CHOSEN if chosen else DEV
        _errorbars(ax, [cost], [interval], color, None, marker="D" if chosen else "o")
        ax.annotate(
            name + (" (chosen)" if chosen else ""),
            (cost, interval[0]),
            textcoords="offset points",
            xytext=(6, 4),
            color=color,
            fontweight="bold" if chosen else "normal",
        )
    ax.axhline(data["threshold"], color=TARGET, linestyle="--", linewidth=1)
    ax.set_xlabel(f"cost per 1k calls ({data['unit']})")
    ax.set_ylabel(f"dev {data['metric']}")
    ax.set_ylim(-0.02, 1.02)
    ax.margins(x=0.25)


def confusion(ax: Axes, data: PlotData) -> None:
    import numpy as np

    labels, columns, counts = data["labels"], data["columns"], data["counts"]
    matrix = np.array(counts, dtype=float)
    ax.pcolormesh(
        np.arange(len(columns) + 1) - 0.5,
        np.arange(len(labels) + 1) - 0.5,
        matrix,
        cmap="Blues",
        edgecolors="white",
        linewidth=1,
    )  # vector cells (imshow would embed a PNG)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_aspect("equal")
    top = matrix.max() if matrix.size else 0
    for i, row in enumerate(counts):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center", color="white" if top and value > top / 2 else "black")
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("answer")
    ax.set_ylabel("target")
    ax.spines[:].set_visible(False)


def training(ax: Axes, data: PlotData) -> None:
    ax.plot(data["steps"], data["loss"], color=MUTED, linewidth=1, label="train loss")
    if data["dev_steps"]:
        ax.plot(data["dev_steps"], data["dev_loss"], "o-", color=DEV, label="dev loss")
    ax.axvline(data["best_step"], color=CHOSEN, linestyle=":", linewidth=1, label=f"kept: step {data['best_step']}")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    handles, names = ax.get_legend_handles_labels()
    metric = [(s, v) for s, v in zip(data["dev_steps"], data["dev_metric"]) if v is not None]
    if metric:
        right = ax.twinx()
        right.plot([s for s, _ in metric], [v for _, v in metric], "s--", color=TEST, label=f"dev {data['metric']}")
        right.set_ylabel(f"dev {data['metric']}")
        right.set_ylim(-0.02, 1.02)
        more, more_names = right.get_legend_handles_labels()
        handles, names = handles + more, names + more_names
    ax.legend(handles, names, loc="upper right", frameon=False)


def over_time(ax: Axes, data: PlotData) -> None:
    runs = data["runs"]
    xs = list(range(len(runs)))
    palette = [DEV, TEST, CHOSEN, "#6a3d9a", "#b15928", MUTED]
    for k, (rung, intervals) in enumerate(data["series"].items()):
        points = [(x, iv) for x, iv in zip(xs, intervals) if iv is not None]
        if not points:
            continue
        offset = (k - (len(data["series"]) - 1) / 2) * 0.06
        color = palette[k % len(palette)]
        _errorbars(ax, [x + offset for x, _ in points], [iv for _, iv in points], color, rung)
        ax.plot([x + offset for x, _ in points], [iv[0] for _, iv in points], color=color, linewidth=0.8)
    ax.axhline(data["threshold"], color=TARGET, linestyle="--", linewidth=1, label=f"target {data['threshold']:.3f}")
    ax.set_xticks(xs, runs)
    ax.set_ylabel(f"test {data['metric']}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(-0.5, len(runs) - 0.5)
    ax.legend(loc="best", frameon=False)


def _wide(data: PlotData) -> tuple[float, float]:
    return (6.4, 3.2)


def _square(data: PlotData) -> tuple[float, float]:
    side = max(3.2, 0.45 * len(data["columns"]) + 1.6)
    return (side + 1.0, side)


# kind -> (draw on the axes, figure size in inches)
PLOTS: dict[str, tuple[Callable[[Axes, PlotData], None], Callable[[PlotData], tuple[float, float]]]] = {
    "scores": (scores, _wide),
    "quality_cost": (quality_cost, _wide),
    "confusion": (confusion, _square),
    "training": (training, _wide),
    "over_time": (over_time, _wide),
}


def render(kind: str, data: PlotData, salt: str) -> str:
    """One figure of ``kind`` as an inline <svg>; ``salt`` keeps its element ids apart from other figures'."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    draw, size = PLOTS[kind]
    with plt.rc_context(
        {
            "svg.fonttype": "none",
            "svg.hashsalt": f"ladder-{salt}",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.family": "sans-serif",
            "path.simplify": False,
        }
    ):
        fig, ax = plt.subplots(figsize=size(data), layout="constrained")
        draw(ax, data)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
        plt.close(fig)
    return _inline(buffer.getvalue())


def drawn(kind: str, data: PlotData, salt: str, store: Store | None = None) -> str | None:
    """``render``, kept in ``store`` under the numbers, the salt, this module's source and matplotlib's version (an
    unchanged re-run's report imports no matplotlib); None where matplotlib is not installed (``ladder[report]``)."""
    from ladder.extras import installed
    from ladder.memo import remembered

    if not installed("report"):
        return None

    parts = {"figure": kind, "data": data, "salt": salt}
    kept = remembered(store, parts, ("matplotlib",), (__file__,), lambda: {"svg": render(kind, data, salt)})
    return str(kept["svg"])
