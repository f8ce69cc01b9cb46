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
