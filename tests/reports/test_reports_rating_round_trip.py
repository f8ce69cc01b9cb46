"""Issue #23 item 4, end to end: a study-like dataset through ``participant`` and ``group``;
in headless Chromium a rater works down the group report's "rate next" list (jump to the run,
click its grade), exports the ratings TSV in MRIQC's 1/0/-1 convention, and the real
``train --labels`` fits the anat grade model and the dataset-relative model on that file."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from mmrqa_bids.ratings import COLUMNS, read_ratings

from reports_helpers import browser, export_ratings  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

PER_GRADE = 5  # the train level's minimum per grade (MIN_PER_CLASS), all in the training split


@pytest.fixture(scope="module")
def graded_study(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """(BIDS root, OUTPUT_DIR after participant and group, bids_name -> the true grade)."""
    from mmrqa_bids.cli.run import main
    from mmrqa_bids.testing.study import build_study, study_plans

    base = tmp_path_factory.mktemp("round_trip")
    plans = study_plans({g: PER_GRADE for g in ("Good", "Medium", "Bad")})
    build_study(base / "bids", plans)
    out = base / "out"
    assert main([str(base / "bids"), str(out), "participant", "-w", str(base / "work"),
                 "--nprocs", "2"]) == 0
    assert main([str(base / "bids"), str(out), "group"]) == 0
    return base / "bids", out, {f"sub-{p.subject}_T1w": grade for p, grade in plans}


def test_rate_next_export_mriqc_and_train(browser, graded_study, tmp_path):  # noqa: F811
    from mmrqa_bids.cli.run import main

    root, out, truth = graded_study
    page = browser.open("file://" + quote(str(out / "group_T1w.html")), height=1000)
    page.wait_for("document.querySelectorAll('#rate-next-table tbody tr').length > 0")
    listed = page.eval("Array.from(document.querySelectorAll('#rate-next-table tbody tr'))"
                       ".map(r => r.dataset.run)")
    assert sorted(listed) == sorted(truth)  # 15 runs: fewer than a batch, all listed
    # the rater takes the top of the list each time: jump to the run, rate it
    order = []
    for _ in truth:
        name = page.eval("document.querySelector('#rate-next-table tbody tr').dataset.run")
        page.click(f'#rate-next-table a.jump[data-run="{name}"]')
        row = f'#runs-table tr[data-run="{name}"]'
        assert page.eval(f"document.activeElement === document.querySelector(`{row} .rate button`)")
        page.click(f"{row} .rate button[data-rating='{truth[name]}']")
        order.append(name)
    assert sorted(order) == sorted(truth)
    assert page.eval("document.getElementById('rated-count').textContent") == f"{len(truth)} rated"
    assert page.eval("document.getElementById('rate-next-done').hidden") is False
    assert page.eval("document.querySelectorAll('#rate-next-table tbody tr').length") == 0

    page.eval("(() => { const s = document.getElementById('rating-scale'); s.value = 'mriqc';"
              " s.dispatchEvent(new Event('change')); })()")
    tsv = export_ratings(browser, page, tmp_path / "download")
    lines = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert lines[0] == list(COLUMNS)
    assert {line[COLUMNS.index("rating")] for line in lines[1:]} == {"1", "0", "-1"}
    ratings = read_ratings(tsv)
    assert {r.bids_name: r.rating for r in ratings} == truth
    assert page.errors() == []

    # the real train level reads the exported file as it is
    code = main([str(root), str(out), "train", "--labels", str(tsv), "--holdout-fraction", "0",
                 "-w", str(tmp_path / "work"), "--nprocs", "2"])
    assert code == 0
    evaluation = json.loads((out / "models" / "mmrqa-metric-classifier" / "evaluation.json")
                            .read_text())
    assert evaluation["anat"]["trained"] is True
    assert evaluation["anat"]["n_train"] == len(truth)
    # and the dataset-relative model, recalibrated on the same 15 ratings (one cohort)
    from mmrqa_bids.cohorts.relative import read_model_file

    rel = evaluation["anat"]["relative"]
    assert rel["trained"] is True and rel["n_train"] == len(truth)
    assert read_model_file(out / "models" / "mmrqa-metric-classifier" / "cohort_anat.json.gz"
                           ).model_id == rel["model_id"]
