"""The reports in a real browser (headless Chromium): no console errors, no network, not
blank, one point per run in the group plot, clicks that open reports and change the
exported ratings TSV (which ``mmrqa_bids.ratings.read_ratings`` parses).
Screenshots are kept under ``test-artifacts/reports/``."""
from __future__ import annotations

import io
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from PIL import Image

from mmrqa_bids.derivatives import DerivativesLayout, group_tables
from mmrqa_bids.ratings import COLUMNS, read_ratings
from mmrqa_bids.ratings_queue import rate_next
from mmrqa_bids.reports.group import decode_positions

from reports_helpers import ARTIFACTS, browser, derivatives, export_ratings  # noqa: F401

pytestmark = pytest.mark.slow


def _url(path: Path) -> str:
    return "file://" + quote(str(path))


def _not_blank(png: bytes) -> None:
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    assert img.shape[0] > 500 and img.shape[1] >= 1000
    grey = img.mean(axis=2)
    assert grey.std() > 20, "screenshot is (nearly) uniform"
    assert len(np.unique(img.reshape(-1, 3)[:: 7], axis=0)) > 200, "screenshot has too few colours"


def _local_only(page) -> None:
    remote = [u for u in page.requests() if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert remote == []


def test_individual_report_in_browser(browser, derivatives):
    evil = next(p for p in derivatives.glob("sub-07_acq-*_T1w.html"))
    for path, shot in ((derivatives / "sub-01_T1w.html", "individual.png"), (evil, "individual_escaped.png")):
        page = browser.open(_url(path))
        assert page.eval("document.readyState") == "complete"
        assert page.eval("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert page.eval("document.images.length") == 4
        assert page.eval("document.scripts.length") == 0
        assert page.eval("document.querySelectorAll('#metrics-table tr[data-metric] .pct').length") > 3
        _not_blank(page.screenshot(ARTIFACTS / shot))
        assert page.errors() == []
        _local_only(page)
    # The injected markup is shown as text, never run.
    assert page.eval("typeof window.__pwned") == "undefined"
    assert "<img src=x onerror" in page.eval("document.getElementById('bids-name').textContent")
    # (its cohort is itself alone, so the group level states the grade's basis first)
    text = page.eval("document.getElementById('narrative-classification').textContent")
    assert text.startswith("ClassificationBasis: the absolute metric model")
    assert "<script>window.__pwned = 1</script><b>bold?</b>" in text


def test_group_report_in_browser(browser, derivatives, tmp_path):
    rows = group_tables(DerivativesLayout(derivatives))["T1w"]
    measured = [r for r in rows if r["status"] != "failed"]
    page = browser.open(_url(derivatives / "group_T1w.html"), height=1100)
    page.wait_for("document.getElementById('metric-plot').getAttribute('data-ready') === '1' "
                  "&& document.querySelectorAll('#metric-plot .scatterlayer .trace').length > 0")
    time.sleep(0.3)
    # One scatter trace per metric, one point per measured run in each.
    per_trace = page.eval("Array.from(document.querySelectorAll('#metric-plot .scatterlayer .trace'))"
                          ".map(t => t.querySelectorAll('path.point').length)")
    n_metrics = len([k for k in measured[0] if isinstance(measured[0][k], float)
                     and k not in ("p_good", "p_medium", "p_bad", "confidence")])
    assert per_trace == [len(measured)] * n_metrics
    _not_blank(page.screenshot(ARTIFACTS / "group.png"))
    assert page.eval("typeof window.__pwned") == "undefined"

    # Hover shows the run; a click on a point opens its individual report.
    browser.send("Target.setDiscoverTargets", {"discover": True})
    x, y = page.eval("""(() => { const p = document.querySelector('#metric-plot .scatterlayer .trace path.point');
        p.scrollIntoView({block: 'center'}); const r = p.getBoundingClientRect();
        return [r.x + r.width / 2, r.y + r.height / 2]; })()""")
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x - 1, "y": y})
    page.send("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    hover = page.wait_for("(document.querySelector('#metric-plot .hoverlayer .hovertext') || {}).textContent")
    name = next(r["bids_name"] for r in measured if r["bids_name"] in hover)
    mark = len(browser.events)
    page.mouse(x, y)
    # window.open creates the tab blank, then navigates it (targetInfoChanged).
    opened = browser.wait_event(lambda e: e["method"] in ("Target.targetCreated", "Target.targetInfoChanged")
                                and e["params"]["targetInfo"]["type"] == "page"
                                and browser.events.index(e) >= mark
                                and e["params"]["targetInfo"]["url"].endswith(".html"), timeout=30)
    assert opened["params"]["targetInfo"]["url"] == _url(derivatives / f"{name}.html")
    # Back to the group report (a background tab gets its input events late).
    browser.send("Target.closeTarget", {"targetId": opened["params"]["targetInfo"]["targetId"]})
    page.send("Page.bringToFront")

    # Rate next: the page's live ranking is the Python one (same inputs, nothing rated yet).
    queue = page.eval("JSON.parse(document.getElementById('mmrqa-queue').textContent)")
    assert sorted(queue["names"]) == sorted(r["bids_name"] for r in measured)

    def python_queue(rated: set[str]) -> list[str]:
        p = np.array([[np.nan if v is None else v for v in row] for row in queue["p"]], float)
        z = decode_positions(queue["z_b64"], len(queue["names"]), queue["n_features"])
        order = rate_next(p, z, [n in rated for n in queue["names"]], k=queue["size"])
        return [queue["names"][i] for i in order]

    shown_queue = page.eval("Array.from(document.querySelectorAll('#rate-next-table tbody tr'))"
                            ".map(r => r.dataset.run)")
    assert shown_queue == python_queue(set())  # the HTML has no rows: the page wrote these
    # the page decoded the same positions (a metric's z in tenths, missing ones null)
    decoded = page.eval("(() => { const q = JSON.parse(document.getElementById('mmrqa-queue')"
                        ".textContent); return [q.n_features, q.names.length]; })()")
    assert decoded == [queue["n_features"], len(queue["names"])]
    assert len(shown_queue) == len(measured)  # fewer runs than a batch: every one listed

    first = export_ratings(browser, page, tmp_path / "before")
    assert first.read_text().splitlines() == ["\t".join(COLUMNS)]
    assert read_ratings(first) == []
    row = 'tr[data-run="sub-02_T1w"]'
    page.click(f"{row} .rate button[data-rating='Bad']")
    assert page.eval(f"document.querySelector(`{row} .rate button[data-rating='Bad']`).getAttribute('aria-pressed')") == "true"
    page.eval(f"(() => {{ const s = document.querySelector(`{row} select.art`); s.value = 'motion';"
              " s.dispatchEvent(new Event('change')); })()")
    page.type(f"{row} input.note", "ringing\tin the frontal lobe")
    second = export_ratings(browser, page, tmp_path / "after")
    ratings = read_ratings(second)
    assert len(ratings) == 1
    r = ratings[0]
    assert (r.participant_id, r.session_id, r.run_id, r.suffix, r.bids_name, r.rating, r.artifact, r.notes) == \
        ("02", None, None, "T1w", "sub-02_T1w", "Bad", "motion", "ringing in the frontal lobe")
    assert r.matches("sub-02_T1w")
    # the rated run leaves the queue, which is re-ranked as Python ranks it
    assert page.eval("window.mmrqaRateNext()") == python_queue({"sub-02_T1w"})
    shown_queue = page.eval("Array.from(document.querySelectorAll('#rate-next-table tbody tr'))"
                            ".map(r => r.dataset.run)")
    assert shown_queue == python_queue({"sub-02_T1w"}) and "sub-02_T1w" not in shown_queue
    # MRIQC's convention on export: -1 for Bad, read back as Bad
    page.eval("(() => { const s = document.getElementById('rating-scale'); s.value = 'mriqc';"
              " s.dispatchEvent(new Event('change')); })()")
    mriqc = export_ratings(browser, page, tmp_path / "mriqc")
    assert mriqc.read_text().splitlines()[1].split("\t")[COLUMNS.index("rating")] == "-1"
    assert [x.rating for x in read_ratings(mriqc)] == ["Bad"]

    # Sorting and filtering of the table.
    page.click("#runs-table thead th:nth-child(2)")
    names = page.eval("Array.from(document.querySelectorAll('#runs-table tbody tr')).map(r => r.dataset.run)")
    assert names == sorted(names, key=str.lower)
    page.type("#filter", "sub-0")
    page.eval("document.getElementById('grade-filter').value = 'Good';"
              "document.getElementById('grade-filter').dispatchEvent(new Event('change'))")
    shown = page.eval("Array.from(document.querySelectorAll('#runs-table tbody tr')).filter(r => !r.hidden).map(r => r.dataset.grade)")
    assert shown and set(shown) == {"Good"} and len(shown) == sum(r["grade"] == "Good" for r in measured)
    _not_blank(page.screenshot(ARTIFACTS / "group_rated.png"))
    assert page.errors() == []
    _local_only(page)
