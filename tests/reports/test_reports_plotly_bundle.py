"""The vendored plotly.js cartesian bundle: the version plotly.py writes figures for, with its
licence, and what the group report inlines."""
import hashlib
import re

from plotly.offline.offline import get_plotlyjs_version

from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.reports.group import plotly_js, render_group
from mmrqa_bids.resources import data_dir

BUNDLE = data_dir() / "plotly"


def test_bundle_matches_plotly_py_and_is_recorded():
    header = re.match(r"/\*\*\s*\* plotly\.js \(cartesian - minified\) v(\S+)", plotly_js())
    assert header and header.group(1) == get_plotlyjs_version()
    readme = (BUNDLE / "README.md").read_text()
    assert f"plotly.js-cartesian-dist-min` **{header.group(1)}**" in readme
    digest = hashlib.sha256((BUNDLE / "plotly-cartesian.min.js").read_bytes()).hexdigest()
    assert digest in readme
    assert (BUNDLE / "LICENSE").read_text().startswith("MIT License")


def test_group_report_inlines_the_cartesian_bundle_once():
    rows = [{"bids_name": f"sub-{i}_T1w", "status": "ok", "grade": "Good", "confidence": 0.9,
             "snr": float(i), "cjv": 1.0 / (i + 1)} for i in range(1, 6)]
    html = render_group("T1w", rows, report_href=DerivativesLayout("OUT").report_href)
    assert html.count(plotly_js()) == 1
    assert "plotly.js v" not in html  # not plotly.py's full bundle
