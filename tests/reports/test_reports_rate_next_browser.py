"""Rate next in headless Chromium after several ratings: the page keeps each run's distance to
the nearest rated run and updates it with each newly rated run only; its ranking must stay the
Python one (:func:`mmrqa_bids.ratings_queue.rate_next`, distances summed left to right) after
every click: ratings added, changed, taken back, a run outside the list rated, exact ties."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.ratings_queue import rate_next
from mmrqa_bids.reports.group import decode_positions, render_group

from reports_helpers import browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

METRICS = [f"m{j:02d}" for j in range(12)]


def _rows(n: int = 60, seed: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p = rng.dirichlet([2.0, 1.0, 1.0])
        row = {"bids_name": f"sub-{i:03d}_T1w", "subject": f"{i:03d}", "suffix": "T1w",
               "status": "ok", "grade": ("Good", "Medium", "Bad")[int(p.argmax())],
               "p_good": float(p[0]), "p_medium": float(p[1]), "p_bad": float(p[2]),
               "confidence": float(p.max()), "basis": "dataset", "artifact": "none"}
        for j, m in enumerate(METRICS):
            if rng.random() > 0.1:  # a tenth missing
                row[m] = float(1.0 + 0.1 * rng.standard_normal() + (0.5 if i % 9 == 0 else 0))
        rows.append(row)
    for i in (41, 42, 43):  # copies of run 40: exact ties, broken by the lower index
        rows[i] = {**rows[40], "bids_name": f"sub-{i:03d}_T1w", "subject": f"{i:03d}"}
    rows[50] = {k: v for k, v in rows[50].items() if k not in METRICS}  # no metric at all
    return rows


def test_rate_next_after_several_ratings_is_the_python_ranking(browser, tmp_path):  # noqa: F811
    html = render_group("T1w", _rows(), report_href=DerivativesLayout(tmp_path).report_href)
    path = tmp_path / "group_T1w.html"
    path.write_text(html)
    page = browser.open("file://" + quote(str(path)), height=1000)
    page.wait_for("document.querySelectorAll('#rate-next-table tbody tr').length > 0")
    queue = page.eval("JSON.parse(document.getElementById('mmrqa-queue').textContent)")
    names = queue["names"]
    p = np.array([[np.nan if v is None else v for v in row] for row in queue["p"]], float)
    z = decode_positions(queue["z_b64"], len(names), queue["n_features"])

    def python_queue(rated: set[str]) -> list[str]:
        return [names[i] for i in rate_next(p, z, [n in rated for n in names], k=queue["size"])]

    def shown() -> list[str]:
        return page.eval("Array.from(document.querySelectorAll('#rate-next-table tbody tr'))"
                         ".map(r => r.dataset.run)")

    def pressed(name: str) -> str | None:
        return page.eval(f"(document.querySelector('#runs-table tr[data-run=\"{name}\"] "
                         ".rate button[aria-pressed=true]') || {dataset: {}}).dataset.rating")

    def rate(name: str, grade: str | None = None) -> None:
        """Press a grade (by default one the run does not have): a rating added or changed."""
        grade = grade or next(g for g in ("Good", "Medium", "Bad") if g != pressed(name))
        page.click(f'#runs-table tr[data-run="{name}"] .rate button[data-rating="{grade}"]')

    rated: set[str] = set()
    assert shown() == python_queue(rated)
    outside = 0
    for step in ["top"] * 4 + ["sub-042_T1w",  # a copy of a run: its twins tie with it
                                "sub-050_T1w",  # no metric at all: no shared one with any run
                                "outside",      # a run outside the listed 20
                                "change",       # another grade: the same runs rated
                                "take back",    # a rating taken back: recomputed
                                "outside", "top", "top"]:
        if step == "top":
            name = shown()[0]
        elif step == "outside":
            listed = set(shown())
            name = [n for n in names if n not in listed and n not in rated][outside]
            outside += 1
        elif step in ("change", "take back"):
            name = sorted(rated)[1]
        else:
            name = step
        if step == "take back":
            rate(name, pressed(name))  # a second click on the pressed grade clears it
            rated.discard(name)
        else:
            rate(name)
            rated.add(name)
        assert (pressed(name) is None) == (step == "take back")
        expected = python_queue(rated)
        assert page.eval("window.mmrqaRateNext()") == expected, (step, name, sorted(rated))
        assert shown() == expected
        assert not set(expected) & rated
    assert page.eval("document.getElementById('rated-count').textContent") == f"{len(rated)} rated"
    assert page.errors() == []
