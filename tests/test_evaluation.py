"""Evaluation math on toy inputs, and ``mmrqa-evaluate`` on an OUTPUT_DIR and a group TSV."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

from mmrqa_bids.evaluation import (accuracy, balanced_accuracy, bootstrap_intervals, confusion,
                                   evaluate, evaluate_files, expected_calibration_error,
                                   macro_f1, per_class)
from mmrqa_bids.cli.evaluate import main

REPO = Path(__file__).resolve().parents[1]
TRUTH = ["Good", "Good", "Good", "Medium", "Medium", "Bad", "Bad", "Good"]
PRED = ["Good", "Medium", "Good", "Medium", "Bad", "Bad", "Bad", "Good"]
LABELS = ["Good", "Medium", "Bad"]


def test_confusion_and_headline_figures_match_scikit_learn():
    c = confusion(TRUTH, PRED)
    np.testing.assert_array_equal(c, skm.confusion_matrix(TRUTH, PRED, labels=LABELS))
    assert c.tolist() == [[3, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert accuracy(TRUTH, PRED) == pytest.approx(6 / 8)
    assert macro_f1(c) == pytest.approx(skm.f1_score(TRUTH, PRED, average="macro"))
    assert balanced_accuracy(c) == pytest.approx(skm.balanced_accuracy_score(TRUTH, PRED))
    stats = per_class(c)
    assert stats["Good"]["precision"] == 1.0 and stats["Good"]["recall"] == 0.75
    assert stats["Medium"]["precision"] == 0.5 and stats["Medium"]["support"] == 2


def test_macro_f1_ignores_classes_absent_from_truth_and_predictions():
    c = confusion(["Good", "Bad"], ["Good", "Good"])
    assert macro_f1(c) == pytest.approx(skm.f1_score(["Good", "Bad"], ["Good", "Good"],
                                                     average="macro", zero_division=0))


def test_expected_calibration_error_by_hand():
    # Bin (0.8, 0.9]: confidences 0.85, 0.85, accuracy 1/2 -> gap 0.35, weight 2/4.
    # Bin (0.6, 0.7]: 0.65, 0.65, accuracy 1 -> gap 0.35, weight 2/4.
    ece = expected_calibration_error([0.85, 0.85, 0.65, 0.65], [True, False, True, True])
    assert ece == pytest.approx(0.35)
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0
    assert evaluate(TRUTH, PRED, [1.0] * 8)["ece"] == pytest.approx(0.25)


def test_bootstrap_intervals_match_a_resampling_loop_and_narrow_with_n():
    c = confusion(TRUTH, PRED)
    ci = bootstrap_intervals(c, n_boot=400, seed=3)
    # The same resamples drawn one by one and scored by scikit-learn.
    pairs = np.repeat(np.arange(9), c.ravel())
    draws = pairs[np.random.default_rng(3).integers(0, pairs.size, size=(400, pairs.size))]
    acc, f1 = [], []
    for d in draws:
        t, p = [LABELS[v // 3] for v in d], [LABELS[v % 3] for v in d]
        acc.append(skm.accuracy_score(t, p))
        f1.append(skm.f1_score(t, p, average="macro", labels=sorted(set(t) | set(p))))
    np.testing.assert_allclose(ci["accuracy"], np.percentile(acc, [2.5, 97.5]))
    np.testing.assert_allclose(ci["macro_f1"], np.percentile(f1, [2.5, 97.5]))
    assert ci["accuracy"][0] <= accuracy(TRUTH, PRED) <= ci["accuracy"][1]
    wide, narrow = bootstrap_intervals(c)["accuracy"], bootstrap_intervals(c * 25)["accuracy"]
    assert narrow[1] - narrow[0] < (wide[1] - wide[0]) / 3  # ~1/sqrt(25) as wide
    assert bootstrap_intervals(c) == bootstrap_intervals(c)  # seeded
    assert evaluate(TRUTH, PRED)["ci95"] == bootstrap_intervals(c)


def _doc(bids_name: str, label: str, confidence: float) -> dict:
    return {"bids_meta": {"bids_name": bids_name, "suffix": bids_name.rsplit("_", 1)[1]},
            "metrics": {"snr1": 10.0},
            "grade": {"label": label, "probabilities": {}, "confidence": confidence}}


@pytest.fixture()
def outputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    out = tmp_path / "out"
    rows = [("sub-01_T1w", "Good", 0.9), ("sub-02_T1w", "Bad", 0.8),
            ("sub-03_run-1_T1w", "Medium", 0.6), ("sub-04_T1w", "Good", 0.7)]
    for name, label, conf in rows:
        sub = name.split("_")[0]
        path = out / sub / "anat" / f"{name}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(_doc(name, label, conf)))
    tsv = tmp_path / "group_T1w.tsv"
    tsv.write_text("bids_name\tsubject\tgrade\tconfidence\n" + "".join(
        f"{n}\t{n[4:6]}\t{g}\t{c}\n" for n, g, c in rows))
    ratings = tmp_path / "ratings.tsv"
    # MRIQC's 1/0/-1, ids with and without prefixes; sub-04 is not rated.
    ratings.write_text("participant_id\tsession_id\trun_id\tsuffix\trating\n"
                       "sub-01\tn/a\tn/a\tT1w\t1\n02\tn/a\tn/a\tT1w\tBad\n"
                       "sub-03\tn/a\t01\tT1w\t-1\n")
    return out, tsv, ratings


def test_evaluate_output_dir_and_group_tsv_agree(outputs):
    out, tsv, ratings = outputs
    a = evaluate_files(out, ratings)
    b = evaluate_files(tsv, ratings)
    for result in (a, b):
        assert result["n"] == 3
        assert result["confusion"] == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
        assert result["accuracy"] == pytest.approx(2 / 3)
        assert "ece" in result


def test_cli_prints_table_and_writes_json(outputs, tmp_path, capsys):
    out, _, ratings = outputs
    dest = tmp_path / "eval.json"
    assert main([str(out), str(ratings), "--json", str(dest)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy          0.667" in printed and "confusion" in printed
    written = json.loads(dest.read_text())
    assert written["n"] == 3
    lo, hi = written["ci95"]["accuracy"]
    assert f"(95% CI {lo:.3f}-{hi:.3f})" in printed and lo <= 2 / 3 <= hi


def test_cli_bad_input_is_one_clear_line(tmp_path, outputs):
    out, _, _ = outputs
    bad = tmp_path / "bad.tsv"
    bad.write_text("who\twhat\n")
    proc = subprocess.run([sys.executable, "-m", "mmrqa_bids.cli.evaluate", str(out), str(bad)],
                          capture_output=True, text=True, cwd=REPO,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and str(bad) in proc.stderr


def test_one_macro_f1_for_the_train_level_too():
    """The train level's held-out scores use evaluation.macro_f1 over all three grades, an
    unparsed answer a miss: scikit-learn's f1_score(labels=LABELS) on the same answers."""
    from mmrqa_bids.train.lora.evaluate import classification_scores

    truth = ["Good", "Good", "Medium", "Bad", "Good", "Medium"]
    pred = ["Good", None, "Medium", "Good", "Good", "Bad"]
    mapped = [p or "unparsed" for p in pred]
    expected = skm.f1_score(truth, mapped, labels=LABELS, average="macro", zero_division=0)
    assert classification_scores(truth, pred)["macro_f1"] == pytest.approx(expected)
    only_good = classification_scores(["Good", "Good"], ["Good", "Good"])["macro_f1"]
    assert only_good == pytest.approx(1 / 3)  # Medium and Bad absent: 0 each, as sklearn's


def test_paired_bootstrap_difference_scores_both_graders_on_the_same_draws():
    from mmrqa_bids.evaluation import accuracy, paired_bootstrap_difference

    rng = np.random.default_rng(3)
    truth = rng.choice(["Good", "Medium", "Bad"], 120).tolist()
    a = [t if rng.random() < 0.6 else "Good" for t in truth]
    b = [t if rng.random() < 0.8 else "Good" for t in truth]
    out = paired_bootstrap_difference(truth, a, b, n_boot=500)
    d_acc, lo, hi = out["accuracy"]
    assert d_acc == pytest.approx(accuracy(truth, b) - accuracy(truth, a))
    assert out["macro_f1"][0] == pytest.approx(
        macro_f1(confusion(truth, b)) - macro_f1(confusion(truth, a)))
    assert lo <= d_acc <= hi and out["macro_f1"][1] <= out["macro_f1"][0] <= out["macro_f1"][2]
    same = paired_bootstrap_difference(truth, a, a, n_boot=200)
    assert same["accuracy"] == [0.0, 0.0, 0.0] and same["macro_f1"] == [0.0, 0.0, 0.0]
    # one grader right everywhere, the other nowhere: the interval excludes 0
    wrong = [{"Good": "Bad", "Medium": "Good", "Bad": "Medium"}[t] for t in truth]
    assert paired_bootstrap_difference(truth, wrong, truth, n_boot=200)["accuracy"][1] > 0.9


def test_paired_bootstrap_difference_needs_the_same_runs_and_known_grades():
    from mmrqa_bids.evaluation import EvaluationError, paired_bootstrap_difference

    with pytest.raises(EvaluationError, match="same runs"):
        paired_bootstrap_difference(["Good"], ["Good"], [])
    with pytest.raises(EvaluationError, match="unknown grade 'Fair'"):
        paired_bootstrap_difference(["Good"], ["Fair"], ["Good"])
