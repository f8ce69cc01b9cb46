"""The group HTML report for one suffix.

Grade counts, one interactive strip + box plot per metric (plotly, its JavaScript inlined
once, so the file works offline), the runs sorted by confidence (doubtful first) with
their outliers, a sortable/filterable table, and a rating widget whose ratings download as
the TSV that ``mmrqa ... train --labels`` reads (:mod:`mmrqa_bids.ratings`, grade names or
MRIQC's 1/0/-1), and a "rate next" list (:mod:`mmrqa_bids.ratings_queue`) of the unrated runs
whose rating would teach a model fitted on the ratings the most, updated as runs are rated.
"""
from __future__ import annotations

import base64
import json
import math
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from markupsafe import Markup

from mmrqa_bids import __version__
from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.ratings import COLUMNS as RATING_COLUMNS, RATING_SCALES
from mmrqa_bids import ratings_queue
from mmrqa_bids.reports import stats
from mmrqa_bids.resources import data_dir, template_env
from mmrqa_bids.vocabulary import ARTIFACTS, GRADE_COLOURS, LABELS

NON_METRIC_COLUMNS = ("p_good", "p_medium", "p_bad", "confidence", "cohort_size")
PLOT_COLUMNS = 5
PLOTLY_BUNDLE = "plotly-cartesian.min.js"
#: Marker of a run's point in the strip plots: outliers larger and ringed in black.
POINT_STYLE = {"normal": {"size": 7, "line_width": 0.5, "line_colour": "#ffffff"},
               "outlier": {"size": 10, "line_width": 2.5, "line_colour": "#111827"}}
ARTIFACT_CHOICES = ("none", *ARTIFACTS, "other")
#: The rate-next positions' robust z are clipped here (as the dataset grade's, cohorts.relative).
QUEUE_Z_CLIP = 10.0
QUEUE_MISSING = -128  # the signed byte of a missing position (encode_positions)
OUT_CLASS = ' class="out"'  # a flagged cell of the metrics table

Context = Mapping[str, Mapping[str, Mapping[str, Any]]]  # bids_name -> metric -> stats


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def review_order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Failed runs first, then unparsed ones, then by increasing confidence (doubtful first)."""
    def key(r: Mapping[str, Any]) -> tuple[int, float, str]:
        conf = _number(r.get("confidence"))
        status = 0 if r.get("status") == "failed" else 1 if conf is None or r.get("grade") not in LABELS else 2
        return status, conf if conf is not None else -1.0, r["bids_name"]
    return sorted(rows, key=key)


def rating_ids(row: Mapping[str, Any], suffix: str) -> dict[str, str]:
    """The id columns of the ratings TSV for one run (``n/a`` where an entity is absent)."""
    def ent(key: str, prefix: str) -> str:
        value = row.get(key)
        return f"{prefix}-{value}" if value not in (None, "", "n/a") else "n/a"
    return {"participant_id": ent("subject", "sub"), "session_id": ent("session", "ses"),
            "run_id": ent("run", "run"), "suffix": suffix, "bids_name": row["bids_name"]}


def tukey_box(values: Sequence[float]) -> dict[str, list[float]]:
    """Box statistics with Tukey whiskers: quartiles, median, and the most extreme values
    still inside ``[Q1 - 1.5 IQR, Q3 + 1.5 IQR]`` (plotly's precomputed-box fields)."""
    arr = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    low, high = stats.tukey_fences(arr)
    inside = arr[(arr >= low) & (arr <= high)]
    return {"q1": [float(q1)], "median": [float(med)], "q3": [float(q3)],
            "lowerfence": [float(inside.min())], "upperfence": [float(inside.max())]}


def _typed_array(values: np.ndarray) -> dict[str, str] | list:
    """plotly.js's typed-array form of a 1-D array, ``{"dtype": "i1"|"f4", "bdata": base64}``
    (what plotly.py's ``to_dict`` makes of a numpy array; an empty array stays ``[]``)."""
    if values.size == 0:
        return []
    return {"dtype": {"int8": "i1", "float32": "f4"}[str(values.dtype)],
            "bdata": base64.b64encode(values.tobytes()).decode("ascii")}


def strip_jitter(n: int) -> np.ndarray:
    """The strip's horizontal jitter of ``n`` points (int8, hundredths of the box width's
    axis): golden-ratio steps ``round(((j * 0.618...) % 1 - 0.5) * 55)``, evenly spread."""
    j = np.arange(n, dtype=np.float64)
    return np.round(((j * 0.6180339887) % 1 - 0.5) * 55).astype(np.int8)


#: What the figure's layout sets on each x axis, each y axis, each subplot title and itself.
X_AXIS = {"showticklabels": False, "showgrid": False, "zeroline": False, "range": [-60, 60],
          "fixedrange": True}
Y_AXIS = {"tickfont": {"size": 10}, "gridcolor": "#eef2f7", "zeroline": False}
LAYOUT = {"margin": {"l": 45, "r": 15, "t": 40, "b": 15},
          "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, Arial, sans-serif"},
          "hovermode": "closest"}


def subplot_grid(titles: Sequence[str], cols: int, h_spacing: float, v_spacing: float
                 ) -> dict[str, Any]:
    """The layout plotly's ``make_subplots(rows, cols, subplot_titles=titles, ...)`` writes
    (its template left out), in its arithmetic: columns of width ``(1 - h (cols - 1)) / cols``
    from the left, rows of height ``(1 - v (rows - 1)) / rows`` from the top, axis ``k``
    anchored to its partner, a title centred above each subplot. Building it with plotly cost
    most of the report's second for 70 subplots."""
    rows = max(1, math.ceil(len(titles) / cols))
    widths = [(1.0 - h_spacing * (cols - 1)) / cols] * cols
    heights = [(1.0 - v_spacing * (rows - 1)) / rows] * rows
    layout: dict[str, Any] = {}
    titles_at = []
    for r in range(rows):
        bottom = rows - 1 - r  # rows counted from the bottom, the first row on top
        y_s = sum(heights[:bottom]) + bottom * v_spacing
        y_e = y_s + heights[-1 - r]
        y_s, y_e = (0.0 if -0.01 < y < 0.0 else 1.0 if 1.0 < y < 1.01 else y for y in (y_s, y_e))
        for c in range(cols):
            k = r * cols + c + 1
            x_s = sum(widths[:c]) + c * h_spacing
            x_e = x_s + widths[c]
            suffix = "" if k == 1 else str(k)
            layout[f"xaxis{suffix}"] = {"anchor": f"y{suffix}", "domain": [x_s, x_e]}
            layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [y_s, y_e]}
            titles_at.append(((x_s + x_e) / 2.0, y_e))
    layout["annotations"] = [
        {"font": {"size": 16}, "showarrow": False, "text": text, "x": x, "xanchor": "center",
         "xref": "paper", "y": y, "yanchor": "bottom", "yref": "paper"}
        for text, (x, y) in zip(titles, titles_at) if text]
    return layout


@lru_cache(maxsize=1)
def _template() -> str:
    """plotly's ``simple_white`` template as a figure's layout holds it (JSON)."""
    import plotly.graph_objects as go

    return json.dumps(go.Figure(layout={"template": "simple_white"}).to_dict()["layout"][
        "template"])


def _figure_layout(n_metrics: int, titles: tuple[str, ...]) -> dict[str, Any]:
    """The layout: the subplot grid (:func:`subplot_grid`), then :data:`X_AXIS`,
    :data:`Y_AXIS`, the titles' font, the ``simple_white`` template and :data:`LAYOUT`, as
    plotly's ``update_xaxes`` etc. wrote them (the keys land in the same order)."""
    n_rows = max(1, math.ceil(n_metrics / PLOT_COLUMNS))
    layout = {"template": json.loads(_template()),
              **subplot_grid(titles, PLOT_COLUMNS, 0.045, min(0.3 / n_rows + 0.02, 0.12))}
    for key, value in layout.items():
        if key.startswith("xaxis"):
            value.update(X_AXIS)
        elif key.startswith("yaxis"):
            value.update(Y_AXIS)
    for title in layout["annotations"]:
        title["font"] = {"size": 12}
    layout.update(margin=LAYOUT["margin"], font=LAYOUT["font"], height=230 * n_rows + 40,
                  hovermode=LAYOUT["hovermode"])
    return layout


def metric_figure(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str],
                  context: Context) -> dict[str, Any]:
    """One box + strip subplot per metric; one point per run, as a plotly figure dict
    (``{"data": [...], "layout": {...}}``, the traces written directly: exactly what
    plotly.py's ``Figure.to_dict`` gave for the same traces, without its per-value checks).

    Compact: ``x`` (int8 jitter) and ``y`` (float32) travel as typed arrays, and each point's
    ``customdata`` is ``[index of its run in rows, robust z, outlier 0/1]``;
    :func:`figure_html` puts each run's name, report link and grade beside the figure once
    and expands every point to ``[run, report link, grade, robust z]`` (hover and click),
    coloured by grade, outliers ringed (:data:`POINT_STYLE`)."""
    data: list[dict[str, Any]] = []
    names = [row["bids_name"] for row in rows]
    for k, name in enumerate(metrics):
        axes = {"xaxis": "x" if k == 0 else f"x{k + 1}", "yaxis": "y" if k == 0 else f"y{k + 1}"}
        pts = [(i, _number(row.get(name))) for i, row in enumerate(rows)]
        pts = [(i, v) for i, v in pts if v is not None]
        ys = [v for _, v in pts]
        if ys:
            box = {"fillcolor": "rgba(148,163,184,.18)", "hoverinfo": "skip",
                   "line": {"color": "#94a3b8", "width": 1}, **tukey_box(ys), "name": name,
                   "showlegend": False, "width": 70, "x": [0.0]}
            # keys sorted then type and axes, as plotly.py writes them
            data.append({**dict(sorted(box.items())), "type": "box", **axes})
        ctx = [context.get(names[i], {}).get(name, {}) for i, _ in pts]
        data.append({
            "customdata": [[i, round(x.get("robust_z", float("nan")), 2) if x else "n/a",
                            int(bool(x.get("outlier")))] for (i, _), x in zip(pts, ctx)],
            "hovertemplate": ("<b>%{customdata[0]}</b><br>" + name + " = %{y:.4g}<br>grade "
                              "%{customdata[2]}<br>robust z %{customdata[3]}<br><i>click to "
                              "open the report</i><extra></extra>"),
            "marker": {"opacity": 0.9}, "mode": "markers", "name": name, "showlegend": False,
            "x": _typed_array(strip_jitter(len(pts))),
            # float32 holds the 4 significant digits shown; the box statistics use the exact ys
            "y": _typed_array(np.array(ys, dtype=np.float32)), "type": "scatter", **axes})
    return {"data": data, "layout": _figure_layout(len(metrics), tuple(metrics))}


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """plotly.js's cartesian bundle, vendored as package data (``data/plotly/README.md``)."""
    return (data_dir() / "plotly" / PLOTLY_BUNDLE).read_text(encoding="utf-8")


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as unicode escapes."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def figure_html(fig, div_id: str, runs: Sequence[Mapping[str, str]]) -> str:
    """The figure (:func:`metric_figure`) as an HTML fragment: plotly.js inlined once, the
    figure and ``runs`` (``name``, ``href``, ``grade`` of each run it indexes) as JSON, and a
    script that expands the points, plots them, and opens a run's report on a click."""
    import plotly.io as pio

    config = {"displaylogo": False, "responsive": True,
              "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
    return (f'<script>window.PlotlyConfig = {{MathJaxConfig: "local"}};</script>\n'
            f"<script>{plotly_js()}</script>\n"
            f'<div id="{div_id}" class="plotly-graph-div" style="height:100%; width:100%;"></div>\n'
            f'<script type="application/json" id="{div_id}-figure">'
            f"{_script_json(pio.to_json(fig, validate=False))}</script>\n"
            f'<script type="application/json" id="{div_id}-runs">'
            f"{_script_json({'runs': list(runs), 'colours': GRADE_COLOURS, 'style': POINT_STYLE, 'config': config})}"
            f"</script>\n<script>{_EXPAND_JS.replace('DIV_ID', div_id)}</script>")


# Expands each point's [run index, robust z, outlier] to [run, report link, grade, robust z]
# with its grade colour and outlier ring, plots, then wires the click to the run's report.
_EXPAND_JS = """(function () {
  var fig = JSON.parse(document.getElementById('DIV_ID-figure').textContent);
  var meta = JSON.parse(document.getElementById('DIV_ID-runs').textContent);
  var runs = meta.runs, s = meta.style;
  fig.data.forEach(function (t) {
    if (t.type !== 'scatter' || !t.customdata) { return; }
    var pts = t.customdata;
    t.customdata = pts.map(function (p) { var r = runs[p[0]]; return [r.name, r.href, r.grade, p[1]]; });
    t.marker = Object.assign({}, t.marker, {
      size: pts.map(function (p) { return p[2] ? s.outlier.size : s.normal.size; }),
      color: pts.map(function (p) { return meta.colours[runs[p[0]].grade] || meta.colours['n/a']; }),
      line: {width: pts.map(function (p) { return p[2] ? s.outlier.line_width : s.normal.line_width; }),
             color: pts.map(function (p) { return p[2] ? s.outlier.line_colour : s.normal.line_colour; })}
    });
  });
  var gd = document.getElementById('DIV_ID');
  Plotly.newPlot(gd, fig.data, fig.layout, meta.config).then(function () {
    gd.on('plotly_click', function (ev) { var p = ev.points && ev.points[0];
      if (p && p.customdata && p.customdata[1]) { window.open(p.customdata[1], '_blank'); } });
    gd.setAttribute('data-ready', '1');
  });
})();"""


def encode_positions(z: np.ndarray) -> tuple[str, np.ndarray]:
    """(base64 text, decoded z) of the rate-next positions: each z clipped at
    +-:data:`QUEUE_Z_CLIP` and stored as one signed byte in tenths (-100..100; -128 where
    missing), so 100 runs x 73 metrics cost 10 kB of the report instead of 50 kB of JSON.
    The decoded values (byte x 0.1, NaN where missing) are what the report's JavaScript
    ranks (:func:`decode_positions` gives Python the same ones)."""
    tenths = np.round(np.clip(z, -QUEUE_Z_CLIP, QUEUE_Z_CLIP) * 10.0)
    q = np.where(np.isfinite(tenths), tenths, QUEUE_MISSING).astype(np.int8)
    return base64.b64encode(q.tobytes()).decode("ascii"), _decoded(q)


def decode_positions(text: str, n_runs: int, n_metrics: int) -> np.ndarray:
    """The (n_runs, n_metrics) z of :func:`encode_positions`' text."""
    q = np.frombuffer(base64.b64decode(text), dtype=np.int8).reshape(n_runs, n_metrics)
    return _decoded(q)


def _decoded(q: np.ndarray) -> np.ndarray:
    """Tenths of a z as floats, NaN where :data:`QUEUE_MISSING`."""
    return np.where(q == QUEUE_MISSING, np.nan, q.astype(float) * 0.1)


def queue_data(measured: Sequence[Mapping[str, Any]], metrics: Sequence[str],
               context: Context) -> dict[str, Any]:
    """What the report's "rate next" list reads (:mod:`mmrqa_bids.ratings_queue`): each
    measured run's name, grade probabilities (Good, Medium, Bad; None where missing) and
    dataset-relative position (the robust z of each metric against the other runs,
    :func:`~mmrqa_bids.reports.stats.dataset_context`, :func:`encode_positions`). The
    report's JavaScript ranks them (:func:`mmrqa_bids.ratings_queue.rate_next`'s ranking)
    when the page loads and after every rating: the list is written there only."""
    z = np.array([[context.get(r["bids_name"], {}).get(m, {}).get("robust_z", np.nan)
                   for m in metrics] for r in measured], dtype=float).reshape(len(measured),
                                                                                len(metrics))
    text, _ = encode_positions(z)
    probs = [[_number(r.get(k)) for k in ("p_good", "p_medium", "p_bad")] for r in measured]
    return {"names": [r["bids_name"] for r in measured], "p": probs,
            "n_features": len(metrics), "z_b64": text, "missing": QUEUE_MISSING,
            "size": ratings_queue.QUEUE_SIZE, "no_shared": ratings_queue.NO_SHARED_DISTANCE}


def metric_cells(values: Sequence[float | None], flags: Sequence[bool]) -> Markup:
    """One run's cells of the metrics table: ``<td>`` with the value to 4 significant digits
    (``n/a`` where missing), ``class="out"`` where flagged. Nothing to escape: the text is a
    number or ``n/a``."""
    return Markup("".join(
        f'<td{OUT_CLASS if flag else ""}>{"n/a" if v is None else "%.4g" % v}</td>'
        for v, flag in zip(values, flags)))


def render_group(suffix: str, rows: list[dict[str, Any]], context: Context | None = None, *,
                 report_href: Callable[[str], str],
                 cohorts: Sequence[Mapping[str, Any]] = ()) -> str:
    """The group report of one suffix from its group-table rows
    (:func:`mmrqa_bids.derivatives.group_tables`); ``report_href`` links a run name to its
    individual report (:meth:`mmrqa_bids.derivatives.DerivativesLayout.report_href`);
    ``cohorts``: the suffix's cohorts (:func:`mmrqa_bids.cohorts.dataset.cohort_summaries`),
    shown with their basis, members and guard-rail warnings."""
    measured = [r for r in rows if r.get("status") != "failed"]
    metrics = stats.metric_names(measured, exclude=NON_METRIC_COLUMNS)
    if context is None:
        context = stats.dataset_context(measured, metrics)
    counts = Counter(r.get("grade") for r in measured)
    runs = []
    for rank, r in enumerate(review_order(rows), start=1):
        ctx = context.get(r["bids_name"], {})
        outliers = sorted(m for m, s in ctx.items() if s.get("outlier"))
        conf = _number(r.get("confidence"))
        runs.append({
            "rank": rank,
            "bids_name": r["bids_name"],
            "href": report_href(r["bids_name"]) if r.get("status") != "failed" else None,
            "status": r.get("status", "ok"),
            "grade": r.get("grade") if r.get("grade") in LABELS else "n/a",
            "confidence": conf,
            "probs": list(zip(LABELS, [_number(r.get(k)) for k in ("p_good", "p_medium", "p_bad")])),
            "artifact": r.get("artifact", "n/a"),
            "basis": r.get("basis", "n/a"),
            "cohort": r.get("cohort", "n/a"),
            "model_grade": r.get("model_grade", "n/a"),
            "outliers": outliers,
            "error": r.get("error") if r.get("error") not in (None, "n/a") else "",
            "ids": rating_ids(r, suffix),
            "metrics": [_number(r.get(m)) for m in metrics],
            "flags": [bool(ctx.get(m, {}).get("outlier")) for m in metrics],
        })
        runs[-1]["metric_cells"] = metric_cells(runs[-1]["metrics"], runs[-1]["flags"])
    fig = metric_figure(measured, metrics, context) if metrics and measured else None
    queue = queue_data(measured, metrics, context)
    points = [{"name": r["bids_name"], "href": report_href(r["bids_name"]),
               "grade": r.get("grade", "n/a")} for r in measured]
    return template_env(html=True).get_template("report/group.html.j2").render(
        suffix=suffix,
        version=__version__,
        runs=runs,
        n_runs=len(rows),
        counts=[(label, counts.get(label, 0)) for label in LABELS]
        + [("unparsed", sum(r.get("status") == "unparsed" for r in rows)),
           ("failed", sum(r.get("status") == "failed" for r in rows))],
        n_outlier_runs=sum(bool(r["outliers"]) for r in runs),
        metrics=metrics,
        figure=figure_html(fig, "metric-plot", points) if fig is not None else "",
        rating_columns=list(RATING_COLUMNS),
        artifact_choices=list(ARTIFACT_CHOICES),
        labels=list(LABELS),
        cutoff=stats.ROBUST_Z_CUTOFF,
        min_runs=stats.MIN_RUNS_FOR_OUTLIERS,
        enough_runs=len(measured) >= stats.MIN_RUNS_FOR_OUTLIERS,
        cohorts=list(cohorts),
        cohort_warnings=[w for c in cohorts for w in c.get("warnings", ())],
        queue=queue,
        rating_scales=RATING_SCALES,
    )


def write_group_report(path: Path, suffix: str, rows: list[dict[str, Any]],
                       context: Context | None = None, *, report_href: Callable[[str], str],
                       cohorts: Sequence[Mapping[str, Any]] = ()) -> Path:
    return atomic_write_text(path, render_group(suffix, rows, context, report_href=report_href,
                                                cohorts=cohorts))
