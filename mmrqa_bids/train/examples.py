"""Training examples: rated runs and their simulated degraded copies, with metrics and mosaics.

:func:`plan_examples` decides what the dataset holds (pure: runs + ratings + settings in,
:class:`ExampleSpec` list out); :func:`realise` computes the metrics and the MLLM mosaic of
one example with the participant workflow's own functions (:func:`mmrqa_bids.io.load_image`,
:func:`mmrqa_bids.metrics.measure`, :func:`mmrqa_bids.reports.mosaics.mllm_mosaic`), so a
model is trained on exactly what it is later shown.

Simulated copies (``--simulate N``) are drawn only from training runs rated Good (a clean
base, so that the copy's label is the severity's label,
:data:`mmrqa_bids.artifacts.SEVERITY_TO_LABEL`) and never from held-out participants.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.io import atomic_write_bytes, atomic_write_json
from mmrqa_bids.qa.facts import normalise_artifact
from mmrqa_bids.ratings import Rating

SIMULATED_SEVERITIES = ("mild", "moderate", "severe")


@dataclass(frozen=True)
class ExampleSpec:
    example_id: str  # the run's BIDS name; "<bids name>_sim-<k>" for a simulated copy
    participant: str
    suffix: str
    split: str  # "train" or "test"
    label: str  # Good / Medium / Bad
    source: str  # path of the run's image
    origin: str  # "expert" or "simulated"
    artifact: str | None = None
    severity: str | None = None
    sim_seed: int | None = None
    notes: str | None = None

    def key(self) -> str:
        """Content key of the example (spec + source size and mtime): cache validity."""
        stat = Path(self.source).stat()
        payload = json.dumps({**asdict(self), "size": stat.st_size, "mtime": stat.st_mtime_ns},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _rating_for(run: RunSpec, ratings: Sequence[Rating]) -> Rating | None:
    hits = [r for r in ratings if r.matches(run.bids_name)]
    return hits[-1] if hits else None


def plan_examples(runs: Sequence[RunSpec], ratings: Sequence[Rating], held_out: set[str],
                  simulate: int, seed: int) -> list[ExampleSpec]:
    """Every rated run as an example (split from its participant), plus ``simulate``
    degraded copies of each training run rated Good; unrated runs are left out.

    Copy k of a run gets an artifact and a severity drawn uniformly by
    ``random.Random(f"{seed}:{bids_name}:{k}")`` and a simulation seed from the same draw.
    """
    from_artifacts = None
    if simulate > 0:
        from mmrqa_bids.artifacts import ARTIFACTS as from_artifacts  # [train] extra (TorchIO)
    out: list[ExampleSpec] = []
    for run in runs:
        rating = _rating_for(run, ratings)
        if rating is None:
            continue
        split = "test" if run.subject in held_out else "train"
        out.append(ExampleSpec(
            example_id=run.bids_name, participant=run.subject, suffix=run.suffix, split=split,
            label=rating.rating, source=str(run.path), origin="expert",
            artifact=normalise_artifact(rating.artifact), notes=rating.notes))
        if split != "train" or rating.rating != "Good" or not simulate:
            continue
        for k in range(simulate):
            rng = random.Random(f"{seed}:{run.bids_name}:{k}")
            artifact = rng.choice(from_artifacts)
            severity = rng.choice(SIMULATED_SEVERITIES)
            out.append(ExampleSpec(
                example_id=f"{run.bids_name}_sim-{k + 1:02d}", participant=run.subject,
                suffix=run.suffix, split=split, label=_severity_label(severity),
                source=str(run.path), origin="simulated", artifact=artifact,
                severity=severity, sim_seed=rng.randrange(2 ** 31)))
    return out


def _severity_label(severity: str) -> str:
    from mmrqa_bids.artifacts import SEVERITY_TO_LABEL
    return SEVERITY_TO_LABEL[severity]


def degrade(data: np.ndarray, spec: ExampleSpec, zooms: Sequence[float]) -> np.ndarray:
    """The simulated copy of a run, in the run's own intensity units.

    The run is scaled so its brightest tissue (99.5th percentile of the head) is ~1, as the
    artifacts module expects, degraded (artifact then Rician noise), and scaled back.
    """
    from mmrqa_bids.artifacts import simulate, simulate_series
    from mmrqa_bids.metrics.masks import head_mask

    ref = data.mean(axis=3) if data.ndim == 4 else data
    head = head_mask(ref)
    scale = float(np.percentile(ref[head], 99.5)) if head.any() else float(ref.max())
    if data.ndim == 4:
        sim = simulate_series(ref / scale, spec.artifact, spec.severity, n_volumes=data.shape[3],
                              seed=spec.sim_seed, voxel_size=tuple(zooms[:3]))
    else:
        sim = simulate(data / scale, spec.artifact, spec.severity, seed=spec.sim_seed,
                       voxel_size=tuple(zooms[:3]))
    return (sim.data * scale).astype(np.float32)


def realise(spec: ExampleSpec, image_dir: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """Metrics and mosaic of one example: ``{"metrics": {...}, "mosaic": PATH}``.

    With ``cache_dir``, a result computed earlier for the same :meth:`ExampleSpec.key` is
    reused (``--resume``). Raises :class:`mmrqa_bids.io.RunInputError` or
    :class:`mmrqa_bids.metrics.MeasureError` for an unusable image.
    """
    from mmrqa_bids.io import load_image
    from mmrqa_bids.metrics import measure
    from mmrqa_bids.reports.mosaics import mllm_mosaic

    mosaic = Path(image_dir) / f"{spec.example_id}.png"
    cached = Path(cache_dir) / f"{spec.example_id}.{spec.key()}.json" if cache_dir else None
    if cached is not None and cached.is_file() and mosaic.is_file():
        return json.loads(cached.read_text())
    img, data = load_image(spec.source, spec.suffix)
    if spec.origin == "simulated":
        data = degrade(data, spec, img.header.get_zooms())
    measured = measure(data, spec.suffix, img.header.get_zooms())
    atomic_write_bytes(mosaic, mllm_mosaic(measured.reference, measured.head))
    result = {"metrics": measured.metrics, "mosaic": str(mosaic)}
    if cached is not None:
        atomic_write_json(cached, result)
    return result
