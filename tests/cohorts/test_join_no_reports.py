"""The join step without reports (``participant --no-reports``): the group tables, which serve
only the individual reports' percentiles, are not built, and the run JSONs and cohort
references are byte for byte those of the join step with reports."""
from __future__ import annotations

import mmrqa_bids.group as group
from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE
from mmrqa_bids.testing.synthetic_runs import synthetic_outputs

MODALITIES = ("T1w", "T2w")


def _outputs(out):
    return {str(p.relative_to(out)): p.read_bytes()
            for p in sorted(out.rglob("*.json")) if p.is_file()}


def test_join_without_reports_builds_no_table_and_writes_the_same_outputs(tmp_path,
                                                                          monkeypatch):
    with_reports, without = tmp_path / "with", tmp_path / "without"
    for out in (with_reports, without):
        synthetic_outputs(out, n_t1w=12, n_t2w=MIN_COHORT_SIZE - 1)
    calls: list[str] = []

    def counted(name):
        real = getattr(group, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)
        monkeypatch.setattr(group, name, wrapper)

    for name in ("group_tables", "unreadable_outputs", "update_run_reports"):
        counted(name)

    docs_with = group.join_grades(with_reports, MODALITIES, reports=True)
    assert sorted(set(calls)) == ["group_tables", "unreadable_outputs", "update_run_reports"]
    calls.clear()
    docs_without = group.join_grades(without, MODALITIES, reports=False)
    assert calls == []  # no table, no unreadable-output scan, no report

    strip = [{k: v for k, v in d.items() if k != "_path"} for d in docs_without]
    assert strip == [{k: v for k, v in d.items() if k != "_path"} for d in docs_with]
    assert {d["grade"]["basis"] for d in docs_without if d["bids_meta"]["suffix"] == "T1w"} \
        == {"dataset"}
    written = _outputs(without)
    assert written == _outputs(with_reports)
    assert sum(name.startswith("cohorts/") for name in written) == 1  # the T1w cohort's
