"""The ``train`` level without a base model: the metric models fitted on the level's
examples and split, one family at a time: the metric classifier
(:mod:`mmrqa_bids.train.metric_model.rated`) and the dataset-relative grade model
(the shipped cohort model recalibrated on the ratings), each scored on the held-out
participants beside the shipped one; the model files, ``evaluation.json`` and the model
card. :mod:`mmrqa_bids.train.level` runs it on the examples of its data stage.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.io import atomic_write_json, atomic_write_text
from mmrqa_bids.settings import Settings

logger = logging.getLogger(__name__)


def _say(text: str) -> None:
    logger.info("%s", text)


def train_classifier(settings: Settings, out: Path, data: dict[str, Any]) -> None:
    """The metric classifier on the same examples and split, one family at a time
    (:func:`mmrqa_bids.train.metric_model.rated.fit_rated_family`): a family with too few
    ratings keeps the shipped model (one warning line), the others are fitted; every family
    is scored on the held-out participants beside the shipped model. Writes one model file per
    family, ``evaluation.json`` and the model card; ``--grader classifier --model OUT`` reads
    the folder. Raises :class:`DatasetError` only when no family could be fitted."""
    from mmrqa_bids.artifacts import ARTIFACTS
    from mmrqa_bids.grading.classifier import MODEL_FILES, model_paths
    from mmrqa_bids.train.metric_model.export import save_model
    from mmrqa_bids.cohorts.relative import MODEL_FILES as COHORT_FILES
    from mmrqa_bids.cohorts.train import save_model as save_cohort_model
    from mmrqa_bids.resources import data_dir
    from mmrqa_bids.train.metric_model.rated import (MIN_PER_CLASS, OTHER_ARTIFACT,
                                                     fit_rated_cohort_family,
                                                     fit_rated_family, held_out_scores,
                                                     read_model_doc, shipped_cohort_doc,
                                                     shortfall_line, split_by_family)

    tr = settings.training
    unknown = sorted({e["artifact"] for e in data["entries"] if e["artifact"]}
                     - set(ARTIFACTS) - {OTHER_ARTIFACT})
    if unknown:
        raise DatasetError(f"{tr.labels}: artifact(s) {', '.join(unknown)} unknown to the "
                           f"metric classifier ({', '.join(ARTIFACTS)}, or {OTHER_ARTIFACT})")
    by_family = split_by_family(data["entries"])
    evaluation: dict[str, Any] = {}
    docs: dict[str, dict[str, Any]] = {}
    rel_docs: dict[str, dict[str, Any]] = {}
    for family in MODEL_FILES:
        shipped = read_model_doc(model_paths(None)[family])
        split = by_family.get(family, {"train": [], "test": []})
        if split["train"]:
            doc, record = fit_rated_family(family, split["train"], shipped, tr.seed)
        else:
            doc, record = None, {"trained": False, "n_train": 0,
                                 "reason": "no rated run in the training split"
                                 if split["test"] else "no rated run"}
        if doc is None:
            record["kept"] = shipped["model_id"]
            if record.get("short"):
                _say(shortfall_line(family, record["counts"], record["short"],
                                    tr.holdout_fraction, MIN_PER_CLASS))
            elif split["train"] or split["test"]:
                _say(f"WARNING {family}: {record['reason']}; the shipped {family} model is kept")
        else:
            docs[family] = doc
        if split["test"]:
            record["held_out_shipped"] = held_out_scores(shipped, split["test"])
            if doc is not None:
                record["held_out"] = held_out_scores(doc, split["test"])
        # the dataset-relative grade model, fitted on the same ratings (issue #23 item 3)
        rel_doc, record["relative"] = fit_rated_cohort_family(
            family, split["train"] + split["test"], shipped_cohort_doc(family))
        if rel_doc is not None:
            rel_docs[family] = rel_doc
        evaluation[family] = record
    if not docs and not rel_docs:
        raise DatasetError(f"{tr.labels}: no family could be trained ("
                           + "; ".join(f"{f}: {r['reason']}" for f, r in evaluation.items())
                           + "); rate more runs or add simulated copies with --simulate N")
    for family in MODEL_FILES:
        if family in docs:
            docs[family]["evaluation"] = {k: evaluation[family][k]
                                          for k in ("held_out", "held_out_shipped")
                                          if k in evaluation[family]}
            save_model(docs[family], out)
        else:
            shutil.copyfile(model_paths(None)[family], out / MODEL_FILES[family])
        if family in rel_docs:
            save_cohort_model(rel_docs[family], out)
        else:
            shutil.copyfile(data_dir() / COHORT_FILES[family], out / COHORT_FILES[family])
        _say(_family_summary(family, evaluation[family]))
    atomic_write_json(out / "evaluation.json", evaluation)
    atomic_write_text(out / "README.md", classifier_card(settings, out, data, evaluation))
    _say(f"metric classifier written to {out}; grade with: participant --grader classifier "
         f"--model {out}, then group (it reads the folder from the runs), or new runs with "
         f"participant --reference OUTPUT_DIR --grader classifier --model {out}")


def _family_summary(family: str, record: dict[str, Any]) -> str:
    """One line: trained or kept, training examples, held-out scores beside the shipped
    model's."""
    def scores(s: dict[str, Any] | None) -> str:
        return f"accuracy {s['accuracy']:.3f}, macro-F1 {s['macro_f1']:.3f}" if s else "n/a"

    head = (f"metric classifier ({family}): "
            + (f"fitted on {record['n_train']} training example(s)" if record["trained"]
               else f"shipped model kept ({record['n_train']} training example(s))"))
    if "held_out_shipped" not in record:
        return head + "; no held-out run" + _relative_summary(record.get("relative"))
    n = record["held_out_shipped"]["n"]
    if record["trained"]:
        line = (head + f"; held out ({n} run(s)): {scores(record['held_out'])}; shipped model: "
                + scores(record["held_out_shipped"]))
    else:
        line = (head + f"; held out ({n} run(s)), shipped model: "
                + scores(record["held_out_shipped"]))
    return line + _relative_summary(record.get("relative"))


def _relative_summary(rel: dict[str, Any] | None) -> str:
    """The dataset-relative model's part of a family's line."""
    if not rel:
        return ""
    if not rel["trained"]:
        return f"; dataset-relative model: shipped kept ({rel['reason']})"
    text = f"; dataset-relative model fitted on {rel['n_train']} rated run(s)"
    if rel.get("held_out"):
        text += (f", held out ({rel['held_out']['n']} run(s)): accuracy "
                 f"{rel['held_out']['accuracy']:.3f} (shipped "
                 f"{rel['held_out_shipped']['accuracy']:.3f})")
    return text


def classifier_card(settings: Settings, out: Path, data: dict[str, Any],
                    evaluation: dict[str, Any]) -> str:
    """The model card (``README.md``) of a metric classifier trained on ratings."""
    from mmrqa_bids import __version__
    from mmrqa_bids.resources import template_env
    from mmrqa_bids.train.metric_model.rated import MIN_PER_CLASS

    tr = settings.training
    return template_env(html=False).get_template("train/classifier_model_card.md.j2").render(
        name=out.name, version=__version__, bids_dir=settings.execution.bids_dir,
        labels=tr.labels, holdout_fraction=tr.holdout_fraction, seed=tr.seed,
        simulate=tr.simulate, n_train_participants=len(data["train_ids"]),
        n_test_participants=len(data["held"]), n_failed=len(data["failed"]),
        n_reused=data["manifest"].get("reused_participant_metrics", 0),
        min_per_class=MIN_PER_CLASS, families=evaluation, model_dir=out) + "\n"
