"""benchmarks/compare_real_grades.py: two gradings of the same real-head runs, paired."""
from __future__ import annotations

import pytest

HEADER = ["source", "participant_id", "suffix", "truth", "artifact", "severity", "truth_label",
          "measured_label", "grade"]


def _write(path, rows):
    path.write_text("\n".join("\t".join(r) for r in [HEADER] + rows) + "\n")
    return path


def _rows(grades):
    base = [("clean", "none", "none", "Good", ""), ("degraded", "blur", "moderate", "Medium",
                                                   "Medium"),
            ("degraded", "spike", "severe", "Bad", "Bad"), ("degraded", "ghosting", "mild",
                                                            "Good", "Medium")]
    # two heads share participant ids (files of two datasets concatenated)
    return [[head, f"sub-{i:02d}", "T1w", *base[i % 4], grades[j]]
            for j, (head, i) in enumerate((h, i) for h in ("robex", "mni") for i in range(4))]


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("compare_real_grades")


def test_compare_prints_both_truths_the_paired_difference_and_the_changed_runs(
        bench, tmp_path, capsys):
    a = _write(tmp_path / "a.tsv", _rows(["Good", "Good", "Bad", "Good"] * 2))
    b = _write(tmp_path / "b.tsv", _rows(["Good", "Medium", "Bad", "Good"] * 2))
    assert bench.main([str(a), str(b), "--boot", "200"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("8 runs;")
    assert "severity truth:" in out and "measured labels:" in out
    # B fixes the two moderate blur runs: accuracy 0.75 -> 1.0 against the severity truth
    assert "accuracy  A 0.750  B 1.000  B - A +0.250" in out
    assert "clean runs Good: A 2, B 2 of 2" in out
    assert "runs whose grade changed: 2" in out
    assert "blur      moderate  Medium  Medium    Good -> Medium (x2)" in out


def test_compare_refuses_files_of_different_runs(bench, tmp_path):
    a = _write(tmp_path / "a.tsv", _rows(["Good"] * 8))
    b = _write(tmp_path / "b.tsv", _rows(["Good"] * 8)[:7])
    with pytest.raises(SystemExit, match="grade different runs"):
        bench.main([str(a), str(b)])
    twice = _write(tmp_path / "c.tsv", _rows(["Good"] * 8) + _rows(["Good"] * 8)[:1])
    with pytest.raises(SystemExit, match="listed twice"):
        bench.main([str(twice), str(a)])
