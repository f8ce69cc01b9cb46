import json
import re
from pathlib import Path

from mmrqa_bids.reports.individual import (METRICS_END, METRICS_START, QA_QUESTIONS,
                                           inject_dataset_context, render_individual)

from reports_helpers import EVIL_ACQ, EVIL_NARRATIVE, build_derivatives

EXTERNAL = re.compile(r"""(src|href)\s*=\s*["']?\s*(https?:|//)|@import|url\(\s*["']?(https?:|//)""", re.I)


def _one(tmp_path: Path):
    out, work = tmp_path / "out", tmp_path / "work"
    work.mkdir()
    docs = build_derivatives(out, work, n_runs=2)
    evil = docs[-1]
    return out, evil, (out / f"{evil['bids_meta']['bids_name']}.html")


def test_model_text_and_file_names_are_escaped(tmp_path):
    out, doc, path = _one(tmp_path)
    html = path.read_text()
    assert EVIL_NARRATIVE not in html and EVIL_ACQ not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;&lt;b&gt;bold?&lt;/b&gt; &amp; done" in html
    assert "&lt;img src=x onerror=window.__pwned=2&gt;" in html
    assert "<script" not in html.lower()  # the individual report runs no script at all


def test_self_contained_and_complete(tmp_path):
    out, doc, path = _one(tmp_path)
    html = path.read_text()
    assert not EXTERNAL.search(html)
    assert html.count('src="data:image/png;base64,') == 4  # axial, sagittal, coronal, background
    for question in QA_QUESTIONS.values():
        assert question in html
    for section in ("Classification", "Artifact", "Analysis", "Provenance", "test-model"):
        assert section in html
    assert f"confidence <strong id=\"confidence\">{doc['grade']['confidence'] * 100:.0f}%" in html
    assert "Run the group level" in html  # no dataset context yet


def test_group_level_injects_percentiles_once(tmp_path):
    out, doc, path = _one(tmp_path)
    before = path.read_text()
    ctx = {"snr1": {"percentile": 87.5, "robust_z": -0.01, "outlier": True, "median": 3.0, "n": 8}}
    assert inject_dataset_context(path, doc, ctx)
    assert inject_dataset_context(path, doc, ctx)  # idempotent: replaces, never appends
    after = path.read_text()
    assert after.count(METRICS_START) == 1 and after.count(METRICS_END) == 1
    assert after.count('id="metrics-table"') == 1
    row = re.search(r'<tr data-metric="snr1">.*?</tr>', after, re.S).group(0)
    assert ">88<" in row and "+0.0" in row and "outlier" in row
    assert "among the 8 T1w run(s)" in after
    # Everything outside the table is untouched (images included).
    head = before[:before.index(METRICS_START)]
    assert after.startswith(head)
    assert not inject_dataset_context(tmp_path / "missing.html", doc, ctx)


def test_unparsed_grade_renders(tmp_path):
    out, doc, path = _one(tmp_path)
    doc = json.loads(json.dumps(doc))
    doc["grade"] = {"label": None, "probabilities": {}, "confidence": 0.0}
    doc["narrative"] = {}
    doc["parse_error"] = "no 'Grade:' line"
    doc["raw_answer"] = "I think <it> is fine"
    html = render_individual(doc, {})
    assert "unparsed" in html and "no &#39;Grade:&#39; line" in html
    assert "I think &lt;it&gt; is fine" in html and "(no answer)" in html
