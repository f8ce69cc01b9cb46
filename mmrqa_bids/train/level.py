"""The ``train`` analysis level: ``mmrqa BIDS_DIR OUT train --labels ratings.tsv ...``.

Stages: runs + ratings -> participant split -> examples (rated runs and simulated copies)
with metrics and mosaics -> QA answers (templates or an LLM) -> conversations, exported as
JSONL -> LoRA fine-tuning of LLaVA-OneVision -> evaluation of the saved adapter on the
held-out participants through the llava grader -> ``OUT/models/<name>/`` (adapter, settings,
manifest, ``evaluation.json``, ``train_log.json``, model card ``README.md``).

Without ``--base-model`` (and without ``--grader llava --model``) the level trains the
metric classifier instead, on the same examples and split, one family at a time
(:mod:`mmrqa_bids.train.metric_model.rated`): a family with too few ratings keeps the shipped
model, grades without artifact labels keep the shipped artifact model. That path needs no
mosaic or QA answers, so rated runs whose participant-level JSON in OUTPUT_DIR holds valid
metrics (:func:`reusable_metrics`) are not measured again.
"""
from __future__ import annotations

import logging
import multiprocessing
import re
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.io import RunInputError, atomic_write_json, atomic_write_text
from mmrqa_bids.metrics import MeasureError
from mmrqa_bids.settings import Settings

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


def facts_for(entries: Sequence[dict[str, Any]]) -> tuple[list, bool]:
    """(QA facts of every entry, whether a reference exists); metric deviations against the
    *training* runs rated Good by the experts (held-out runs never inform the reference).

    The facts hold only the metrics the grading prompt shows (``prompt_metrics``): an answer
    that cited any other value would teach the model to invent numbers it was never given.
    """
    from mmrqa_bids.grading.prompts import prompt_metrics
    from mmrqa_bids.qa.facts import QAFacts, deviations, metric_reference

    shown = [prompt_metrics(e["metrics"], e["suffix"]) for e in entries]
    reference = metric_reference(m for e, m in zip(entries, shown)
                                 if e["split"] == "train" and e["origin"] == "expert"
                                 and e["label"] == "Good")
    return [QAFacts(example_id=e["example_id"], suffix=e["suffix"], label=e["label"],
                    metrics=m, artifact=e["artifact"], severity=e["severity"],
                    origin=e["origin"], notes=e["notes"],
                    deviations=deviations(m, reference))
            for e, m in zip(entries, shown)], bool(reference)


def qa_contents(settings: Settings, facts: Sequence, has_reference: bool) -> list:
    from mmrqa_bids.qa.template import template_content

    if settings.training.qa_source == "template":
        return [template_content(f, has_reference) for f in facts]
    from mmrqa_bids.qa.llm import LLMSource, QAGenerationError
    source = LLMSource(base_url=settings.grading.llm_base_url, model=settings.grading.llm_model,
                       cache_dir=settings.execution.work_dir / "qa_llm_cache")
    try:
        contents = source.contents(facts)
    except QAGenerationError as exc:
        raise DatasetError(str(exc)) from exc
    _say(f"QA answers from {source.name}: {source.cache_hits} of {len(facts)} from the cache, "
         f"{source.requests_made} request(s)")
    return contents


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
    qa = _conversations(settings, dataset, entries) if conversations else {}
    manifest = {"participants": {"train": train_ids, "test": held}, "examples": entries,
                "failed": failed, "reused_participant_metrics": len(reuse),
                **({"qa_source": qa["qa_source"], "qa_fraction": qa["qa_fraction"],
                    "conversations": qa["conversation_kinds"], "jsonl": qa["jsonl"]}
                   if qa else {})}
    atomic_write_json(dataset / "manifest.json", manifest)
    return {"entries": entries, "failed": failed, "conversations": qa.get("conversations", []),
            "manifest": manifest, "train_ids": train_ids, "held": held}


def _conversations(settings: Settings, dataset: Path, entries: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """QA answers, conversations and JSONL of the LoRA path (``dataset/manifest.json``)."""
    from mmrqa_bids.qa.dialogues import conversations_for, grade_conversation, sample
    from mmrqa_bids.qa.export import write_jsonl

    tr = settings.training
    facts, has_reference = facts_for(entries)
    contents = qa_contents(settings, facts, has_reference)
    by_split: dict[str, list] = {"train": [], "test": []}
    for entry, fact, content in zip(entries, facts, contents):
        if entry["split"] == "train":
            by_split["train"] += conversations_for(fact, content, entry["mosaic"])
        else:
            by_split["test"].append(grade_conversation(fact, content, entry["mosaic"]))
        entry["narrative"] = content.narrative()
        entry["qa_source"] = content.source
    conversations = sample(by_split["train"], tr.qa_fraction, tr.seed)
    jsonl = {"train": write_jsonl(conversations, dataset, "train"),
             "test": write_jsonl(by_split["test"], dataset, "test")}
    return {"conversations": conversations, "qa_source": tr.qa_source,
            "qa_fraction": tr.qa_fraction,
            "conversation_kinds": dict(Counter(c.kind.split("/")[0] for c in conversations)),
            "jsonl": {k: {f: str(p) for f, p in v.items()} for k, v in jsonl.items()}}


# --------------------------------------------------------------------------- LLaVA + LoRA
def _recipe(settings: Settings, device: str):
    from mmrqa_bids.train.lora.finetune import TARGET_PRESETS, LoraRecipe
    tr = settings.training
    preset = tr.lora_targets
    return LoraRecipe(r=tr.lora_r, alpha=tr.lora_alpha, dropout=tr.lora_dropout,
                      targets=TARGET_PRESETS[preset], learning_rate=tr.learning_rate,
                      epochs=tr.epochs, batch_size=tr.batch_size,
                      scheduler=tr.lr_scheduler, seed=tr.seed), preset


def train_llava(settings: Settings, base: str, out: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Fine-tune, save the adapter at the root of ``out``; returns the training summary."""
    import torch
    from transformers import LlavaOnevisionForConditionalGeneration

    from mmrqa_bids.grading.base import GraderError
    from mmrqa_bids.grading.llava import check_model, load_processor, resolve_device
    from mmrqa_bids.train.lora.finetune import fine_tune, targeted_modules

    try:
        check_model(base)
        device = resolve_device(settings.grading.device)
    except GraderError as exc:
        raise DatasetError(str(exc)) from exc
    recipe, preset = _recipe(settings, device)
    torch.manual_seed(recipe.seed)
    model = LlavaOnevisionForConditionalGeneration.from_pretrained(base, dtype=torch.float32)
    processor = load_processor(base, model.config)
    processor.tokenizer.padding_side = "right"
    n_targets = len(targeted_modules(model, recipe.targets))
    model.to(device)
    checkpoints = out / "checkpoints"
    if not settings.execution.resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    _say(f"fine-tuning {base} on {len(data['conversations'])} conversation(s), device {device}, "
         f"LoRA r={recipe.r} alpha={recipe.alpha} targets '{preset}' ({n_targets} modules)")
    peft_model, result = fine_tune(model, processor, data["conversations"], recipe, checkpoints,
                                   device=device, resume=settings.execution.resume)
    peft_model.save_pretrained(str(out))
    if result.resumed_from:
        _say(f"resumed from {result.resumed_from}")
    losses = [x["loss"] for x in result.losses]
    _say(f"{result.global_step} step(s) in {result.seconds:.1f} s; step loss "
         + (f"{losses[0]:.4f} -> {losses[-1]:.4f}" if losses else "n/a")
         + f"; loss on the training set {result.loss_before:.4f} -> {result.loss_after:.4f}")
    summary = {"base_model": base, "device": device, "targets_preset": preset,
               "targets_regex": recipe.targets, "n_target_modules": n_targets,
               **asdict(result), "recipe": asdict(recipe)}
    atomic_write_json(out / "train_log.json", summary)
    shutil.rmtree(checkpoints, ignore_errors=True)
    del peft_model, model
    return summary


def evaluate_llava(settings: Settings, base: str, out: Path,
                   data: dict[str, Any]) -> dict[str, Any]:
    """Grade the held-out examples through ``--grader llava --adapter OUT`` (the saved
    adapter, reloaded as the participant level would) and score them."""
    from mmrqa_bids.grading import make_grader
    from mmrqa_bids.train.lora.evaluate import classification_scores, evaluate
    from mmrqa_bids.train.lora.judge import judge

    test = [e for e in data["entries"] if e["split"] == "test"]
    if not test:
        _say("no held-out example: evaluation skipped")
        return {"scores": classification_scores([], []), "examples": [],
                "judge": {"skipped": "no held-out example"}}
    grading = replace(settings.grading, grader="llava", model=base, adapter=out)
    result = evaluate(make_grader(grading), test, grading.batch_size)
    items = [{"example_id": e["example_id"], "label": e["label"], "artifact": e["artifact"],
              "reference": " ".join(e["narrative"].values()),
              "candidate": " ".join(r["narrative"].values()) if r["predicted"] else ""}
             for e, r in zip(test, result["examples"])]
    result["judge"] = judge(items, settings.grading.llm_base_url, settings.grading.llm_model)
    s = result["scores"]
    _say(f"held-out: {s['n']} run(s), accuracy {s['accuracy']:.3f}, macro-F1 "
         f"{s['macro_f1']:.3f}, unparsed {s['unparsed']}")
    if "skipped" in result["judge"]:
        _say(f"LLM judge skipped: {result['judge']['skipped']}")
    return result


def model_card(settings: Settings, out: Path, data: dict[str, Any], summary: dict[str, Any],
               evaluation: dict[str, Any]) -> str:
    from mmrqa_bids import __version__
    from mmrqa_bids.resources import template_env

    tr = settings.training
    train = [e for e in data["entries"] if e["split"] == "train"]
    losses = [x["loss"] for x in summary["losses"]]
    return template_env(html=False).get_template("train/model_card.md.j2").render(
        name=out.name, base_model=summary["base_model"], version=__version__, adapter_dir=out,
        bids_dir=settings.execution.bids_dir, labels=tr.labels,
        n_train_participants=len(data["train_ids"]), n_test_participants=len(data["held"]),
        holdout_fraction=tr.holdout_fraction, seed=tr.seed, simulate=tr.simulate,
        n_train_examples=len(train), n_simulated=sum(e["origin"] == "simulated" for e in train),
        n_test_examples=len(data["entries"]) - len(train),
        train_labels=dict(sorted(Counter(e["label"] for e in train).items())),
        n_conversations=len(data["conversations"]), qa_source=tr.qa_source,
        qa_fraction=tr.qa_fraction, kinds=data["manifest"]["conversations"],
        lora_r=tr.lora_r, lora_alpha=tr.lora_alpha, lora_targets=summary["targets_preset"],
        lora_dropout=tr.lora_dropout, lr_scheduler=tr.lr_scheduler,
        warmup_steps=summary["warmup_steps"],
        n_target_modules=summary["n_target_modules"], learning_rate=tr.learning_rate,
        batch_size=tr.batch_size, micro_batch=summary["micro_batch_size"],
        accumulation=summary["accumulation"], epochs=tr.epochs, steps=summary["global_step"],
        device=summary["device"], trainable=f"{summary['trainable']:,}",
        total=f"{summary['total']:,}",
        first_loss=f"{losses[0]:.4f}" if losses else "n/a",
        last_loss=f"{losses[-1]:.4f}" if losses else "n/a",
        loss_before=summary["loss_before"], loss_after=summary["loss_after"],
        scores=evaluation["scores"], judge=evaluation["judge"]) + "\n"


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
        return train_classifier(settings, out, data)
    summary = train_llava(settings, base, out, data)
    evaluation = evaluate_llava(settings, base, out, data)
    atomic_write_json(out / "evaluation.json", evaluation)
    atomic_write_text(out / "README.md", model_card(settings, out, data, summary, evaluation))
    _say(f"adapter and model card written to {out} ({time.perf_counter() - t0:.1f} s); grade "
         f"with: --grader llava --model {base} --adapter {out}")
    return EXIT_SOME_FAILED if data["failed"] else EXIT_OK


def train_classifier(settings: Settings, out: Path, data: dict[str, Any]) -> int:
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
    _say(f"metric classifier written to {out}; grade with: --grader classifier --model {out}")
    return EXIT_SOME_FAILED if data["failed"] else EXIT_OK


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: mmrqa BIDS_DIR OUTPUT_DIR train --labels RATINGS.tsv ...")
