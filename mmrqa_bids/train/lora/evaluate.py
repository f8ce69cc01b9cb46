"""Held-out evaluation of a grader: accuracy, macro-F1 and the confusion matrix.

An answer that could not be parsed (``label=None``) counts as wrong and is reported
separately; it is never replaced by a guess.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.grading.base import LABELS, Grade, GradeRequest


def classification_scores(truth: Sequence[str], predicted: Sequence[str | None]) -> dict[str, Any]:
    """accuracy = mean(pred == truth); macro-F1 = mean over Good/Medium/Bad of
    2PR/(P+R) (0 for a class never predicted and absent; :func:`mmrqa_bids.evaluation.macro_f1`,
    an unparsed answer a miss of its true class); confusion[i][j] = runs of true label
    LABELS[i] graded LABELS[j] (unparsed answers in the extra ``unparsed`` column)."""
    from mmrqa_bids.evaluation import confusion as confusion_matrix
    from mmrqa_bids.evaluation import macro_f1

    if len(truth) != len(predicted):
        raise ValueError("truth and predictions differ in length")
    n = len(truth)
    pred = [p if p in LABELS else "unparsed" for p in predicted]
    correct = sum(t == p for t, p in zip(truth, pred))
    confusion = [[sum(1 for t, p in zip(truth, pred) if t == a and p == b)
                  for b in LABELS + ("unparsed",)] for a in LABELS]
    columns = LABELS + ("unparsed",)
    f1 = macro_f1(confusion_matrix(truth, pred, columns), columns, over=LABELS) if n else None
    return {"n": n, "accuracy": correct / n if n else None, "macro_f1": f1,
            "unparsed": pred.count("unparsed"), "labels": list(LABELS),
            "confusion": {"rows_truth": list(LABELS), "columns_predicted": list(LABELS) + ["unparsed"],
                          "counts": confusion}}


def grade_examples(grader: Any, examples: Sequence[dict[str, Any]],
                   batch_size: int) -> list[Grade]:
    """Grade manifest entries (``example_id``, ``suffix``, ``metrics``, ``mosaic``) in batches."""
    requests = [GradeRequest(bids_name=e["example_id"], suffix=e["suffix"],
                             metrics=e["metrics"], mosaic=Path(e["mosaic"])) for e in examples]
    grades: list[Grade] = []
    for i in range(0, len(requests), max(1, batch_size)):
        grades += grader.grade(requests[i:i + batch_size])
    return grades


def evaluate(grader: Any, examples: Sequence[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    """Scores plus one row per example (truth, prediction, parse error, raw answer)."""
    grades = grade_examples(grader, examples, batch_size)
    rows = [{"example_id": e["example_id"], "truth": e["label"], "predicted": g.label,
             "probabilities": g.probabilities, "parse_error": g.parse_error, "raw": g.raw,
             "narrative": g.narrative}
            for e, g in zip(examples, grades)]
    scores = classification_scores([r["truth"] for r in rows], [r["predicted"] for r in rows])
    return {"scores": scores, "grader": grader.provenance(), "examples": rows}
