"""The LoRA half of the ``train`` level (``--base-model``, or ``--grader llava --model``):
QA answers and conversations of the level's examples (``dataset/*.jsonl``), LoRA
fine-tuning of LLaVA-OneVision (:mod:`.finetune`), evaluation of the saved adapter on the
held-out participants through the llava grader (:mod:`.evaluate`, :mod:`.judge`) and the
model card. :mod:`mmrqa_bids.train.level` runs it on the examples of its data stage.
"""
from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.io import atomic_write_json
from mmrqa_bids.settings import Settings

logger = logging.getLogger(__name__)


def _say(text: str) -> None:
    logger.info("%s", text)


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


def conversations(settings: Settings, dataset: Path, entries: list[dict[str, Any]]
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
