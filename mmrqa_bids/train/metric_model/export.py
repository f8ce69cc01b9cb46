"""Exporting the metric classifier: the model file (deterministic gzip), the whole
training run of ``scripts/train_classifier.py`` and its printed summary."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.train.metric_model.fit import fit_family
from mmrqa_bids.train.metric_model.measuring import build_training_set
from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE, plan_examples


def save_model(doc: dict[str, Any], out_dir: Path) -> Path:
    """Write ``classifier_<family>.json.gz`` (deterministic bytes: no gzip timestamp)."""
    from mmrqa_bids.grading.classifier import MODEL_FILES
    from mmrqa_bids.io import atomic_write_bytes

    text = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return atomic_write_bytes(Path(out_dir) / MODEL_FILES[doc["family"]],
                              gzip.compress(text, compresslevel=9, mtime=0))


def train(out_dir: Path, recipe: dict[str, Any] | None = None,
          families: Sequence[str] = ("anat", "bold"), cache_dir: Path | None = None,
          n_jobs: int = 1, verbose: bool = True, pool_cache: Path | None = None
          ) -> dict[str, Path]:
    """Build the training sets, fit, evaluate, save; returns the written model files.

    A recipe family with ``real`` settings also trains on runs of real heads as acquired
    (:mod:`.real_heads`), measured into (or read from) the cohort simulation's cache folder
    ``pool_cache`` (its ``cohort-pools``)."""
    from mmrqa_bids.train.metric_model.real_heads import real_head_runs

    recipe = recipe or DEFAULT_RECIPE
    written = {}
    for family in families:
        examples = plan_examples(recipe, family)
        if verbose:
            print(f"[train-classifier] {family}: {len(examples)} examples", flush=True)
        records = build_training_set(examples, cache_dir=cache_dir, n_jobs=n_jobs,
                                     verbose=verbose)
        real = None
        if recipe[family].get("real"):
            real = real_head_runs(family, recipe[family]["real"], pool_cache, n_jobs=n_jobs,
                                  verbose=verbose)
            if verbose:
                print(f"[train-classifier] {family}: {len(real)} runs of real heads as "
                      f"acquired", flush=True)
        doc = fit_family(family, examples, records, recipe, real=real)
        written[family] = save_model(doc, out_dir)
        if verbose:
            print(summary(doc), flush=True)
            print(f"[train-classifier] wrote {written[family]} "
                  f"({written[family].stat().st_size / 1024:.0f} KiB)", flush=True)
    return written


def summary(doc: dict[str, Any]) -> str:
    """Seen vs unseen figures side by side."""
    ev = doc["evaluation"]
    lines = [f"{doc['model_id']}  features: {', '.join(doc['features'])}",
             f"{'':28}{'seen':>10}{'unseen':>10}"]
    for key, name in (("n", "examples"), ("accuracy", "accuracy"), ("macro_f1", "macro-F1"),
                      ("balanced_accuracy", "balanced accuracy"), ("ece", "ECE"),
                      ("artifact_accuracy_degraded", "artifact type (Medium/Bad)")):
        vals = [ev.get(s, {}).get(key) for s in ("seen", "unseen")]
        cells = "".join(f"{v:>10d}" if isinstance(v, int) else
                        (f"{v:>10.3f}" if isinstance(v, float) else f"{'n/a':>10}") for v in vals)
        lines.append(f"{name:<28}{cells}")
    for split in ("seen", "unseen"):
        if split in ev:
            c = ev[split]["confusion"]
            lines.append(f"confusion {split} (rows truth G/M/B): {c}")
    held = ev.get("real_held_out")
    if held:
        lines.append("real heads as acquired, each graded by a fit without its anatomy:")
        for name, res in list(held["by_source"].items()) + [("pooled", held["pooled"])]:
            c = res["clean_graded"]
            lines.append(f"  {name:<18} runs {res['n']:>4}  accuracy {res['accuracy']:.3f}  "
                         f"macro-F1 {res['macro_f1']:.3f}  ECE {res.get('ece', float('nan')):.3f}"
                         f"  clean Good/Medium/Bad {c['Good']}/{c['Medium']}/{c['Bad']}")
    return "\n".join(lines)
