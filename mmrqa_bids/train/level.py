"""The ``train`` analysis level: ``mmrqa BIDS_DIR OUT train --labels ratings.tsv ...``.

This module is the entry point (:func:`run_train`) and the data stage both trainers share:
runs + ratings -> participant split (:mod:`.split`) -> examples (rated runs and simulated
copies, :mod:`.examples`) with metrics (and mosaics, for LoRA) -> ``dataset/manifest.json``.

With ``--base-model`` (or ``--grader llava --model``), :mod:`.lora.level` goes on: QA answers
(templates or an LLM) -> conversations, exported as JSONL -> LoRA fine-tuning of
LLaVA-OneVision -> evaluation of the saved adapter on the held-out participants through the
llava grader -> ``OUT/models/<name>/`` (adapter, settings, manifest, ``evaluation.json``,
``train_log.json``, model card ``README.md``).

Without it, :mod:`.metric_level` trains the metric models instead, on the same examples and
split, one family at a time (:mod:`mmrqa_bids.train.metric_model.rated`): a family with too
few ratings keeps the shipped model, grades without artifact labels keep the shipped artifact
model. That path needs no mosaic or QA answers, so rated runs whose participant-level JSON in
OUTPUT_DIR holds valid metrics (:func:`reusable_metrics`) are not measured again.
"""
from __future__ import annotations

import logging
import multiprocessing
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.io import RunInputError, atomic_write_json, atomic_write_text
from mmrqa_bids.metrics import MeasureError
from mmrqa_bids.settings import Settings
from mmrqa_bids.train.lora.level import conversations as lora_conversations
from mmrqa_bids.train.lora.level import evaluate_llava, model_card, train_llava
from mmrqa_bids.train.metric_level import train_classifier

EXIT_OK, EXIT_SOME_FAILED = 0, 1
logger = logging.getLogger(__name__)


def _say(text: str) -> None:
    logger.info("%s", text)


def base_model(settings: Settings) -> str | None:
    """The checkpoint to fine-tune: ``--base-model``, else ``--model`` with ``--grader llava``."""
    if settings.training.base_model:
        return settings.training.base_model
    if settings.grading.grader == "llava" and settings.grading.model:
        return settings.grading.model
    return None


def model_dir(settings: Settings, base: str | None) -> Path:
    """``--output-model``, else ``OUT/models/mmrqa-<base name>-lora`` (or ``-classifier``)."""
    if settings.training.output_model:
        return Path(settings.training.output_model).resolve()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(base.rstrip("/")).name) if base else ""
    name = f"mmrqa-{stem}-lora" if base else "mmrqa-metric-classifier"
    return DerivativesLayout(settings.execution.output_dir).model(name)


def check_settings(settings: Settings) -> None:
    tr = settings.training
    if tr.labels is None:
        raise DatasetError("the train level needs --labels RATINGS.tsv (expert ratings)")
    if not Path(tr.labels).is_file():
        raise DatasetError(f"{tr.labels}: ratings file not found")
    if tr.qa_source == "llm" and not (settings.grading.llm_base_url and settings.grading.llm_model):
        raise DatasetError("--qa-source llm needs --llm-base-url and --llm-model "
                           "(an OpenAI-compatible endpoint)")
    if tr.simulate < 0:
        raise DatasetError(f"--simulate must be >= 0, got {tr.simulate}")
    if tr.learning_rate <= 0:
        raise DatasetError(f"--learning-rate must be > 0, got {tr.learning_rate}")


# --------------------------------------------------------------------------- data
def plan(settings: Settings) -> tuple[list, list[str], list[str], dict[str, Path]]:
    """(example specs, training participants, held-out participants, and the path of every
    rated run's participant-level JSON in OUTPUT_DIR by the run's image path)."""
    from mmrqa_bids.bids import collect_runs
    from mmrqa_bids.ratings import RatingsError, read_ratings
    from mmrqa_bids.train.examples import plan_examples
    from mmrqa_bids.train.split import split_participants
    from mmrqa_bids.vocabulary import family_of

    ex, tr = settings.execution, settings.training
    runs = collect_runs(ex.bids_dir, ex.output_dir, modalities=ex.modalities,
                        participant_label=ex.participant_label, session_id=ex.session_id,
                        run_id=ex.run_id, task_id=ex.task_id, bids_filters=ex.bids_filters)
    try:
        ratings = read_ratings(tr.labels)
    except RatingsError as exc:
        raise DatasetError(str(exc)) from exc
    rated = [r for r in runs if any(x.matches(r.bids_name) for x in ratings)]
    if not rated:
        raise DatasetError(f"{tr.labels}: no rating matches any of the {len(runs)} selected runs")
    # stratified by each participant's ratings (family and grade), so that a grade of a few
    # rated participants is split as the others are
    strata: dict[str, set[str]] = {}
    for run in rated:
        rating = next(x for x in reversed(ratings) if x.matches(run.bids_name))
        strata.setdefault(run.subject, set()).add(f"{family_of(run.suffix)}:{rating.rating}")
    train_ids, held = split_participants([r.subject for r in rated], tr.holdout_fraction, tr.seed,
                                         {p: "+".join(sorted(s)) for p, s in strata.items()})
    specs = plan_examples(rated, ratings, set(held), tr.simulate, tr.seed)
    layout = DerivativesLayout(ex.output_dir)
    return specs, train_ids, held, {str(r.path): layout.run_json(r) for r in rated}


def reusable_metrics(doc: Any, checksum: str, version: str) -> dict[str, float] | None:
    """The metrics of a participant-level run JSON when they are what ``train`` would measure:
    written by this ``version`` of mmrqa for a file of this ``checksum``, with the default
    bias-field estimator and without MRIQC's IQMs mixed in; else None. Nulls (metrics not
    computable for the image) come back as NaN, the value the measuring step gives them."""
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict) or not doc["metrics"]:
        return None
    prov = doc.get("provenance") or {}
    execution = (prov.get("settings") or {}).get("execution") or {}
    if ((doc.get("bids_meta") or {}).get("checksum") != checksum or prov.get("version") != version
            or prov.get("mriqc") or execution.get("inu_method", "polynomial") != "polynomial"):
        return None
    return {k: float("nan") if v is None else v for k, v in doc["metrics"].items()}


def _participant_metrics(spec, derivatives: dict[str, Path]) -> dict[str, float] | None:
    """:func:`reusable_metrics` of the rated run ``spec`` (simulated copies are measured)."""
    from mmrqa_bids import __version__
    from mmrqa_bids.derivatives import read_derivative
    from mmrqa_bids.io import file_checksum

    path = derivatives.get(spec.source)
    if spec.origin != "expert" or path is None or not path.is_file():
        return None
    try:
        return reusable_metrics(read_derivative(path), file_checksum(spec.source), __version__)
    except (OSError, ValueError):
        return None  # an unreadable run JSON: measure the run instead


def _realise_one(args: tuple) -> tuple[dict[str, Any] | None, str | None]:
    from mmrqa_bids.train.examples import realise
    spec, image_dir, cache_dir = args
    try:
        return realise(spec, image_dir, cache_dir), None
    except (RunInputError, MeasureError, OSError, ValueError) as exc:
        return None, " ".join(str(exc).split())


def realise_all(specs: Sequence, image_dir: Path, cache_dir: Path, nprocs: int,
                reuse: dict[str, dict[str, float]] | None = None
                ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Manifest entries (spec fields + metrics + mosaic) and the failures with their reason.

    ``reuse``: metrics already measured by the participant level, by example id; those
    examples are not measured again (and get no mosaic: only the LoRA path needs one, and it
    passes no ``reuse``). One progress line per example as it completes."""
    reuse = reuse or {}
    results: dict[int, tuple[dict[str, Any] | None, str | None]] = {
        i: ({"metrics": reuse[s.example_id], "mosaic": None}, None)
        for i, s in enumerate(specs) if s.example_id in reuse}
    todo = [i for i in range(len(specs)) if i not in results]
    if results:
        _say(f"{len(results)} rated run(s) reuse the participant level's metrics from "
             f"OUTPUT_DIR; {len(todo)} example(s) to measure")
    progress = _Progress(len(todo))
    if nprocs > 1 and len(todo) > 1:
        # spawn, not fork: a forked child of a process whose torch thread pool already ran
        # (the LLM graders, another test in the same worker) can hang in its first tensor copy
        with ProcessPoolExecutor(max_workers=nprocs,
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_realise_one, (specs[i], image_dir, cache_dir)): i
                       for i in todo}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                progress.done(specs[i].example_id, results[i][1])
    else:
        for i in todo:
            results[i] = _realise_one((specs[i], image_dir, cache_dir))
            progress.done(specs[i].example_id, results[i][1])
    entries, failed = [], []
    for spec, (result, error) in zip(specs, (results[i] for i in range(len(specs)))):
        if error is not None:
            failed.append({"example_id": spec.example_id, "source": spec.source, "error": error})
        else:
            entries.append({**asdict(spec), **result})
    return entries, failed


class _Progress:
    """``[mmrqa] measured k/N <example> (elapsed s, about R s left)``, one line per example."""

    def __init__(self, total: int) -> None:
        self.total, self.count, self.start = total, 0, time.perf_counter()

    def done(self, example_id: str, error: str | None) -> None:
        self.count += 1
        elapsed = time.perf_counter() - self.start
        left = elapsed / self.count * (self.total - self.count)
        _say(f"measured {self.count}/{self.total} {example_id}"
             + (" (failed)" if error else "")
             + f" ({elapsed:.0f} s, about {left:.0f} s left)")


def build_dataset(settings: Settings, out: Path, conversations: bool = True) -> dict[str, Any]:
    """Every data stage; writes ``dataset/`` (mosaics, manifest, JSONL) and returns it all.

    ``conversations`` False (the metric classifier): no QA answers or JSONL, and rated runs
    whose participant-level JSON in OUTPUT_DIR holds reusable metrics
    (:func:`reusable_metrics`) are not measured again."""
    ex = settings.execution
    specs, train_ids, held, derivatives = plan(settings)
    reuse = {}
    if not conversations:
        declined = 0
        for spec in specs:
            metrics = _participant_metrics(spec, derivatives)
            if metrics is not None:
                reuse[spec.example_id] = metrics
            elif spec.origin == "expert" and derivatives[spec.source].is_file():
                declined += 1
        if declined:
            _say(f"{declined} participant-level run JSON(s) in OUTPUT_DIR not reused (another "
                 "mmrqa version, a changed image, --mriqc-dir or another --inu-method): "
                 "those runs are measured again")
    dataset = out / "dataset"
    t0 = time.perf_counter()
    entries, failed = realise_all(specs, dataset / "images", ex.work_dir / "train_examples",
                                  ex.nprocs, reuse)
    _say(f"{len(entries)} example(s) ready in {time.perf_counter() - t0:.1f} s "
         f"({sum(e['origin'] == 'simulated' for e in entries)} simulated, {len(reuse)} with "
         f"the participant level's metrics); "
         f"{len(failed)} failed; participants: {len(train_ids)} train, {len(held)} held out")
    for f in failed:
        _say(f"example {f['example_id']} failed: {f['error']}")
    train_entries = [e for e in entries if e["split"] == "train"]
    if not train_entries:
        raise DatasetError("no usable training example (every rated run failed or is held out)")
    for entry in entries:
        entry["reused"] = entry["example_id"] in reuse
    qa = lora_conversations(settings, dataset, entries) if conversations else {}
    manifest = {"participants": {"train": train_ids, "test": held}, "examples": entries,
                "failed": failed, "reused_participant_metrics": len(reuse),
                **({"qa_source": qa["qa_source"], "qa_fraction": qa["qa_fraction"],
                    "conversations": qa["conversation_kinds"], "jsonl": qa["jsonl"]}
                   if qa else {})}
    atomic_write_json(dataset / "manifest.json", manifest)
    return {"entries": entries, "failed": failed, "conversations": qa.get("conversations", []),
            "manifest": manifest, "train_ids": train_ids, "held": held}


# --------------------------------------------------------------------------- entry point
def run_train(settings: Settings) -> int:
    """The whole level; returns the exit code (1 when some examples could not be used)."""
    check_settings(settings)
    base = base_model(settings)
    out = model_dir(settings, base)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "settings.toml", settings.to_toml())
    t0 = time.perf_counter()
    data = build_dataset(settings, out, conversations=base is not None)
    if base is None:
        train_classifier(settings, out, data)
        return EXIT_SOME_FAILED if data["failed"] else EXIT_OK
    summary = train_llava(settings, base, out, data)
    evaluation = evaluate_llava(settings, base, out, data)
    atomic_write_json(out / "evaluation.json", evaluation)
    atomic_write_text(out / "README.md", model_card(settings, out, data, summary, evaluation))
    _say(f"adapter and model card written to {out} ({time.perf_counter() - t0:.1f} s); grade "
         f"with: --grader llava --model {base} --adapter {out}")
    return EXIT_SOME_FAILED if data["failed"] else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: mmrqa BIDS_DIR OUTPUT_DIR train --labels RATINGS.tsv ...")
