import json
import re
from pathlib import Path

from mmrqa_bids.derivatives import FIXED_COLUMNS, DerivativesLayout, group_tables
from mmrqa_bids.group import run_group
from mmrqa_bids.reports.group import render_group, review_order

from reports_helpers import EVIL_ACQ, derivatives  # noqa: F401 (fixture)


def test_group_report_escapes_and_inlines_plotly_once(derivatives):
    html = (derivatives / "group_T1w.html").read_text()
    assert EVIL_ACQ not in html and "<script>window.__pwned" not in html
    assert "&lt;img src=x onerror=window.__pwned=2&gt;" in html
    assert "not a NIfTI &lt;script&gt;" in html
    assert len(re.findall(r"plotly\.js \(cartesian - minified\) v\d", html)) == 1  # the library, once
    assert not re.search(r"<script[^>]+src=", html)  # nothing loaded from elsewhere
    # Run names inside <script> blocks (plotly's figure data, our JSON) have "<" escaped.
    assert "\\u003cimg src=x onerror" in html
    data = re.search(r'<script type="application/json" id="mmrqa-runs">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data and any(r["bids_name"].startswith("sub-07_acq-<img") for r in json.loads(data))


def test_doubtful_runs_first():
    rows = [{"bids_name": "a", "status": "ok", "grade": "Good", "confidence": 0.9},
            {"bids_name": "b", "status": "ok", "grade": "Bad", "confidence": 0.4},
            {"bids_name": "c", "status": "failed", "grade": "n/a", "confidence": "n/a"},
            {"bids_name": "d", "status": "unparsed", "grade": "n/a", "confidence": 0.0}]
    assert [r["bids_name"] for r in review_order(rows)] == ["c", "d", "b", "a"]


def test_review_table_order_and_rows(derivatives):
    html = (derivatives / "group_T1w.html").read_text()
    body = html[html.index('id="runs-table"'):html.index('id="metrics"')]
    names = re.findall(r'<tr data-run="([^"]+)"', body)
    rows = group_tables(DerivativesLayout(derivatives))["T1w"]
    assert len(names) == len(rows) == 8 and names[0] == "sub-99_T1w"  # the failed run first
    conf = {r["bids_name"]: r["confidence"] for r in rows if r["status"] == "ok"}
    import html as htmllib
    ordered = [conf[htmllib.unescape(n)] for n in names[1:]]
    assert ordered == sorted(ordered)


def test_tsv_columns_kept_and_individual_reports_updated(derivatives):
    tsv = (derivatives / "group_T1w.tsv").read_text().splitlines()
    header = tsv[0].split("\t")
    assert tuple(header[:len(FIXED_COLUMNS)]) == FIXED_COLUMNS
    assert len(tsv) == 9
    report = (derivatives / "sub-01_T1w.html").read_text()
    assert "percentile in dataset" in report and "among the 7 T1w run(s)" in report


def test_group_level_without_individual_reports_warns(tmp_path, capsys):
    from reports_helpers import build_derivatives
    out, work = tmp_path / "out", tmp_path / "work"
    work.mkdir()
    build_derivatives(out, work, n_runs=2)
    (out / "sub-01_T1w.html").unlink()
    written = run_group(out, ("T1w",), reports=True)
    assert written["T1w.html"].is_file()
    assert "sub-01_T1w.html: no individual report to update" in capsys.readouterr().out


def test_render_group_with_only_failed_runs():
    html = render_group("bold", [{"bids_name": "sub-01_task-x_bold", "subject": "01", "status": "failed",
                                  "grade": "n/a", "confidence": "n/a", "artifact": "n/a",
                                  "error": "truncated file"}],
                        report_href=DerivativesLayout(Path("/out")).report_href)
    assert "No metrics to plot" in html and "truncated file" in html


def test_tukey_box_whiskers_stop_at_the_fences():
    from mmrqa_bids.reports.group import tukey_box
    box = tukey_box([1.0, 2.0, 3.0, 4.0, 5.0, 100.0])
    assert box["median"] == [3.5] and box["q1"] == [2.25] and box["q3"] == [4.75]
    assert box["lowerfence"] == [1.0] and box["upperfence"] == [5.0]


def test_rate_next_positions_round_trip_in_one_byte_each():
    import numpy as np

    from mmrqa_bids.reports.group import decode_positions, encode_positions

    z = np.array([[0.04, -0.06, 12.0], [np.nan, -3.21, -10.0]])
    text, decoded = encode_positions(z)
    assert len(text) == 8  # 6 bytes in base64
    expected = np.array([[0.0, -0.1, 10.0], [np.nan, -3.2, -10.0]])
    np.testing.assert_allclose(decoded, expected)
    np.testing.assert_array_equal(decode_positions(text, 2, 3), decoded)


def _plotly_figure(rows, metrics, context):
    """The metric figure as plotly.py's own API built it before #24's speed-up (the reference
    the plain-dict figure must equal as data)."""
    import math
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots
    from mmrqa_bids.reports.group import PLOT_COLUMNS, _number, tukey_box

    n_rows = max(1, math.ceil(len(metrics) / PLOT_COLUMNS))
    fig = make_subplots(rows=n_rows, cols=PLOT_COLUMNS, subplot_titles=list(metrics),
                        horizontal_spacing=0.045, vertical_spacing=min(0.3 / n_rows + 0.02, 0.12))
    for k, name in enumerate(metrics):
        r, c = k // PLOT_COLUMNS + 1, k % PLOT_COLUMNS + 1
        pts = [(i, _number(row.get(name))) for i, row in enumerate(rows)]
        pts = [(i, v) for i, v in pts if v is not None]
        ys = [v for _, v in pts]
        if ys:
            fig.add_trace(go.Box(x=[0.0], name=name, **tukey_box(ys),
                                 fillcolor="rgba(148,163,184,.18)",
                                 line={"color": "#94a3b8", "width": 1}, hoverinfo="skip",
                                 showlegend=False, width=70), row=r, col=c)
        ctx = [context.get(rows[i]["bids_name"], {}).get(name, {}) for i, _ in pts]
        fig.add_trace(go.Scatter(
            x=np.array([round(((j * 0.6180339887) % 1 - 0.5) * 55) for j in range(len(pts))],
                       dtype=np.int8),
            y=np.array(ys, dtype=np.float32), mode="markers", name=name, showlegend=False,
            marker={"opacity": 0.9},
            customdata=[[i, round(x.get("robust_z", float("nan")), 2) if x else "n/a",
                         int(bool(x.get("outlier")))] for (i, _), x in zip(pts, ctx)],
            hovertemplate=("<b>%{customdata[0]}</b><br>" + name + " = %{y:.4g}<br>grade "
                           "%{customdata[2]}<br>robust z %{customdata[3]}<br><i>click to "
                           "open the report</i><extra></extra>")), row=r, col=c)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, range=[-60, 60],
                     fixedrange=True)
    fig.update_yaxes(tickfont={"size": 10}, gridcolor="#eef2f7", zeroline=False)
    fig.update_annotations(font={"size": 12})
    fig.update_layout(template="simple_white", height=230 * n_rows + 40,
                      margin={"l": 45, "r": 15, "t": 40, "b": 15}, hovermode="closest",
                      font={"family": "system-ui, -apple-system, Segoe UI, Roboto, Arial, "
                                      "sans-serif"})
    return fig


def test_metric_figure_dict_is_what_plotly_built():
    """The figure written as a plain dict (fast) is, as JSON text, the figure plotly.py's API
    built: same traces, typed arrays, layout, template; with missing values, a failed-looking
    row, a metric with no value and 1, 6 and 12 metrics (partial last row of subplots)."""
    import numpy as np
    import plotly.io as pio
    from mmrqa_bids.reports import stats
    from mmrqa_bids.reports.group import metric_figure

    rng = np.random.default_rng(3)
    for n_metrics in (1, 6, 12):
        metrics = [f"m{k:02d}" for k in range(n_metrics)]
        rows = [{"bids_name": f"sub-{i:02d}_T1w",
                 **{m: float(rng.normal(1, 0.1)) for m in metrics}} for i in range(30)]
        rows[2][metrics[0]], rows[3][metrics[-1]] = "n/a", float("nan")
        rows[4][metrics[0]] = 9.0  # an outlier
        context = stats.dataset_context(rows, metrics)
        mine = pio.to_json(metric_figure(rows, metrics, context), validate=False)
        assert mine == pio.to_json(_plotly_figure(rows, metrics, context), validate=False)
    rows = [{"bids_name": "a", "m": "n/a"}, {"bids_name": "b", "m": float("nan")}]
    assert (pio.to_json(metric_figure(rows, ["m"], {}), validate=False)
            == pio.to_json(_plotly_figure(rows, ["m"], {}), validate=False))


def test_metric_cells_as_the_template_formatted_them():
    from jinja2 import Environment
    from mmrqa_bids.reports.group import metric_cells

    values, flags = [1.23456, None, 1e-7, 123456789.0, 0.0, -2.5], [0, 0, 1, 0, 1, 0]
    env = Environment(autoescape=True)
    old = env.from_string(
        "{% for v in values %}<td{{ ' class=\"out\"'|safe if flags[loop.index0] }}>"
        "{{ \"%.4g\"|format(v) if v is not none else \"n/a\" }}</td>{% endfor %}")
    assert str(metric_cells(values, flags)) == old.render(values=values, flags=flags)


def test_subplot_grid_is_make_subplots_layout():
    """The grid written by hand equals plotly's make_subplots layout (domains to the last bit,
    anchors, titles), for every number of metrics the report may plot."""
    from plotly.subplots import make_subplots
    from mmrqa_bids.reports.group import PLOT_COLUMNS, subplot_grid

    for n in range(1, 91):
        titles = [f"m{k}" for k in range(n)]
        rows = -(-n // PLOT_COLUMNS)
        v = min(0.3 / rows + 0.02, 0.12)
        layout = make_subplots(rows=rows, cols=PLOT_COLUMNS, subplot_titles=titles,
                               horizontal_spacing=0.045, vertical_spacing=v).to_dict()["layout"]
        del layout["template"]
        mine = subplot_grid(titles, PLOT_COLUMNS, 0.045, v)
        assert json.dumps(mine) == json.dumps(layout), n


def test_rate_next_rows_are_written_by_the_page_only(derivatives):
    """The rate-next list is rendered once, by the report's JavaScript (the browser tests check
    it is rate_next's ranking): the HTML carries its positions, not rows or an order."""
    html = (derivatives / "group_T1w.html").read_text()
    table = html[html.index('id="rate-next-table"'):html.index('id="rate-next-done"')]
    assert re.search(r"<tbody>\s*</tbody>", table) and "data-run" not in table
    assert re.search(r'<p id="rate-next-done" class="muted" hidden>', html)
    queue = json.loads(re.search(r'<script type="application/json" id="mmrqa-queue">(.*?)</script>',
                                 html, re.S).group(1))
    assert set(queue) == {"names", "p", "n_features", "z_b64", "missing", "size", "no_shared"}
