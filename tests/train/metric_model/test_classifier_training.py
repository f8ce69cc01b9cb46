"""Training pipeline of the metric classifier: plan, features, fit, export, save, reload."""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import ARTIFACTS  # noqa: E402
from mmrqa_bids.grading.base import LABELS, GradeRequest  # noqa: E402
from mmrqa_bids.grading.classifier import ClassifierGrader, load_model_file  # noqa: E402
from mmrqa_bids.train.metric_model import export, fit, measuring, rendering  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import (DEFAULT_RECIPE,  # noqa: E402
                                                  GOOD_NONE_PER_DRAW, Example, family_params,
                                                  held_out_recipe, plan_examples)
from mmrqa_bids.train.metric_model.sources import TrainingError  # noqa: E402
from mmrqa_bids.train.metric_model.trees import monotonic_signs  # noqa: E402


def test_plan_is_balanced_seeded_and_holds_out_whole_sources():
    plan = plan_examples(DEFAULT_RECIPE, "anat")
    again = plan_examples(DEFAULT_RECIPE, "anat")
    assert plan == again
    assert len({ex.seed for ex in plan}) == len(plan)
    train_sources = {ex.source for ex in plan if ex.split == "train"}
    unseen_sources = {ex.source for ex in plan if ex.split == "unseen"}
    assert train_sources == {ex.source for ex in plan if ex.split == "seen"}
    assert not train_sources & unseen_sources
    assert {ex.anatomy for ex in plan if ex.split == "train"} == {"mni", "mnihard", "robex"}
    assert "tpm" in {ex.anatomy for ex in plan if ex.split == "unseen"}
    labels = [ex.label for ex in plan if ex.split == "train"]
    counts = {label: labels.count(label) for label in ("Good", "Medium", "Bad")}
    assert counts["Medium"] == counts["Bad"] == len(labels) // 24 * len(ARTIFACTS)
    assert {ex.artifact_label for ex in plan} == {"none", *ARTIFACTS}


def test_per_source_draws_override_the_family_draws():
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["anat"]["train"] = [{"anatomy": "mni", "contrast": "T1w", "voxel_size": 4.0},
                               {"anatomy": "mnihard", "contrast": "T1w", "voxel_size": 4.0,
                                "draws": {"train": 1}}]
    recipe["anat"]["draws"] = {"train": 2, "seen": 1, "unseen": 0}
    plan = [ex for ex in plan_examples(recipe, "anat") if ex.split == "train"]
    per_draw = 3 * len(ARTIFACTS) + GOOD_NONE_PER_DRAW
    assert sum(ex.anatomy == "mni" for ex in plan) == 2 * per_draw
    assert sum(ex.anatomy == "mnihard" for ex in plan) == 1 * per_draw


def test_scale_free_selection_drops_intensity_metrics():
    free = fit.scale_free_metrics("anat")
    assert free  # some metric survives
    from mmrqa_bids.metrics import measure
    ex = Example("anat", "probe", "tpm", "T1w", 4.0, "none", "none", 3)
    data = rendering.render_example(ex)
    a = measure(data, "T1w", (4.0,) * 3).metrics
    b = measure(data * 37.3, "T1w", (4.0,) * 3).metrics
    for name in a:
        # Scale-dependent metrics change by orders of magnitude; segmentation-based ones
        # wobble by < 0.3% (numerics), well inside the 1% tolerance.
        rel = abs(b[name] - a[name]) / max(abs(a[name]), 1e-9)
        if rel > 0.1:
            assert name not in free, name
        elif rel < 0.003 and not name.startswith("mrqy_"):
            # (MRQy's foreground depends on the gain, by how much depends on the image: a
            # mrqy_* metric steady on this probe may move on the other one.)
            assert name in free, name


def test_fit_save_reload_on_synthetic_metrics(tmp_path, monkeypatch):
    """The fit/export/save path on metric rows with a known structure (no simulation)."""
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["anat"]["draws"] = {"train": 3, "seen": 1, "unseen": 1}
    examples = plan_examples(recipe, "anat")
    rng = np.random.default_rng(0)
    level = {"none": 0.0, "mild": 0.3, "moderate": 1.0, "severe": 2.0}
    rows = []
    for ex in examples:
        k = ARTIFACTS.index(ex.artifact) if ex.artifact in ARTIFACTS else 0
        s = level[ex.severity]
        rows.append({"a": 10 ** (1.5 - 0.4 * s) * (1 + 0.05 * rng.standard_normal()),
                     "b": s * (k % 3) + 0.05 * rng.standard_normal(),
                     "c": s * (k // 3) + 0.05 * rng.standard_normal(),
                     "mean": 1000 * rng.random()})
    monkeypatch.setattr(fit, "scale_free_metrics", lambda family: {"a", "b", "c"})
    records = [{"metrics": r, "label": ex.label} for r, ex in zip(rows, examples)]
    doc = fit.fit_family("anat", examples, records, recipe)
    assert "measured degradation" in doc["recipe"]["label_map"]
    assert doc["features"] == ["a", "b", "c"]  # "mean" is not scale-free
    excluding = copy.deepcopy(recipe)
    excluding["anat"]["exclude_features"] = ["c"]
    assert fit.fit_family("anat", examples, records, excluding)["features"] == ["a", "b"]
    assert doc["evaluation"]["unseen"]["accuracy"] > 0.85
    path = export.save_model(doc, tmp_path)
    assert path.read_bytes() == export.save_model(doc, tmp_path).read_bytes()  # deterministic
    model = load_model_file(path)
    grader = ClassifierGrader(models={"anat": model})
    bad = grader.grade([GradeRequest("sub-01_T1w", "T1w", {"a": 10 ** 0.7, "b": 4.0,
                                                            "c": 0.0})])[0]
    assert bad.label == "Bad"
    good = grader.grade([GradeRequest("sub-01_T1w", "T1w", {"a": 10 ** 1.5, "b": 0.0,
                                                             "c": 0.0})])[0]
    assert good.label == "Good"
    assert 1.0 / 20 <= doc["grade"]["temperature"] <= 20.0
    # Inside every training run's range: no caution. Far outside it: named, in the narrative.
    assert good.outside_training == [] and "Caution" not in good.narrative["classification"]
    assert set(doc["support"]) == {"a", "b", "c"}
    odd = grader.grade([GradeRequest("sub-01_T1w", "T1w", {"a": 10 ** 1.5, "b": 0.0,
                                                            "c": 40.0})])[0]
    assert odd.outside_training == ["c"]
    text = odd.narrative["classification"]
    from mmrqa_bids.grading.narrative import format_value
    span = doc["support"]["c"]
    assert (f"Caution: c = 40 lies outside every run the model was trained on (c: "
            f"{format_value(span['low'])} to {format_value(span['high'])})") in text
    assert "{" not in text and "}" not in text
    assert odd.to_dict()["outside_training"] == ["c"]


def _box_head(n: int = 24):
    """A small synthetic head: WM core, GM shell, CSF shell, skull and scalp (no template)."""
    from mmrqa_bids.phantom import Head

    r = np.linalg.norm(np.indices((n,) * 3) - (n - 1) / 2, axis=0)
    shells = [(r < 4), (r >= 4) & (r < 6), (r >= 6) & (r < 7), (r >= 7) & (r < 8),
              (r >= 8) & (r < 9)]
    wm, gm, csf, skull, scalp = (s.astype(np.float32) for s in shells)
    return Head(csf=csf, gm=gm, wm=wm, skull=skull, scalp=scalp, affine=np.eye(4))


def _render(**kw):
    ex = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5, **kw)
    return rendering._render_clean(_box_head(), ex, np.random.default_rng(11))


def test_new_randomisation_options_leave_earlier_cache_keys_alone():
    ex = Example("anat", "train", "mni", "T1w", 3.0, "blur", "mild", seed=5,
                    zoom_jitter=0.15, smooth_jitter=0.5)
    # zoom_order=1, texture=0 and plain=0 are the defaults and stay out of the key
    assert ex.key() == Example("anat", "train", "mni", "T1w", 3.0, "blur", "mild", seed=5,
                                  zoom_jitter=0.15, smooth_jitter=0.5, zoom_order=1,
                                  texture=0.0, plain=0.0, zoom_native=False,
                                  random_tissues="all").key()
    assert ex.key() != Example("anat", "train", "mni", "T1w", 3.0, "blur", "mild", seed=5,
                                  zoom_jitter=0.15, smooth_jitter=0.5, zoom_order=3).key()
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["anat"]["randomize"] = {"zoom": 0.1, "zoom_order": 3, "texture": 0.1, "plain": 0.2}
    ex = next(e for e in plan_examples(recipe, "anat") if e.split == "train")
    assert (ex.zoom_order, ex.texture, ex.plain) == (3, 0.1, 0.2)
    unseen = next(e for e in plan_examples(recipe, "anat") if e.split == "unseen")
    assert (unseen.zoom_order, unseen.texture, unseen.plain) == (1, 0.0, 0.0)


def test_cubic_zoom_keeps_edges_sharper_than_linear():
    """Mean absolute gradient of the zoomed head: linear interpolation smooths it."""
    def sharpness(img):
        return float(np.mean(np.abs(np.diff(img, axis=0))))
    linear, cubic = _render(zoom_jitter=0.15), _render(zoom_jitter=0.15, zoom_order=3)
    assert linear.shape == cubic.shape  # same draw of the zoom
    assert cubic.min() >= 0
    assert sharpness(cubic) > 1.03 * sharpness(linear)


def test_native_zoom_resizes_the_head_and_keeps_its_outline_sharp(monkeypatch):
    """zoom_native zooms the tissue maps on their own (finer) grid: the head changes size as
    with the image zoom, but its outline stays as sharp as a plain rendering's."""
    from mmrqa_bids.metrics.anatomical import head_edge
    from mmrqa_bids.phantom import Head
    from mmrqa_bids.train.metric_model import sources

    r = np.linalg.norm(np.indices((72,) * 3) - 35.5, axis=0)
    shells = [(r < 12), (r >= 12) & (r < 18), (r >= 18) & (r < 21), (r >= 21) & (r < 24),
              (r >= 24) & (r < 27)]
    wm, gm, csf, skull, scalp = (x.astype(np.float32) for x in shells)
    fine = Head(csf=csf, gm=gm, wm=wm, skull=skull, scalp=scalp, affine=np.eye(4))
    monkeypatch.setattr(sources, "load_native_head", lambda anatomy: (fine, 1.0))
    coarse = sources.resample_head(fine, 1.0, (3.0, 3.0, 3.0))
    assert coarse.csf.shape == (24, 24, 24)

    def render(**kw):
        ex = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5, **kw)
        return rendering._render_clean(coarse, ex, np.random.default_rng(11))

    def edge(img):
        head = img > 0.05 * img.max()
        return head_edge(img, head, 0.0)

    plain = render()
    image_zoom = render(zoom_jitter=0.15, zoom_order=3)
    native_zoom = render(zoom_jitter=0.15, zoom_order=3, zoom_native=True)
    assert native_zoom.shape != plain.shape and image_zoom.shape != plain.shape
    assert edge(native_zoom) > edge(image_zoom)
    assert edge(native_zoom) == pytest.approx(edge(plain), abs=0.1)
    key = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5).key()
    assert Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=5,
                      zoom_native=False).key() == key


def test_plain_share_and_texture():
    plain = _render()
    assert np.array_equal(_render(zoom_jitter=0.15, smooth_jitter=0.5, contrast_jitter=0.5,
                                  plain=1.0), plain)
    textured = _render(texture=0.3)
    head = _box_head()
    core = head.wm > 0.5
    assert np.ptp(plain[core]) == 0  # a template tissue is uniform ...
    assert textured[core].std() / textured[core].mean() > 0.01  # ... a textured one is not
    assert abs(textured[core].mean() / plain[core].mean() - 1) < 0.2


def test_elastic_deform_moves_by_at_most_the_largest_shift():
    """On a ramp along x the intensity change is the x displacement: bounded by max_shift,
    and reaching a good part of it (the field is scaled to its largest vector norm)."""
    ramp = np.broadcast_to(np.arange(40, dtype=np.float32)[:, None, None] + 100,
                           (40, 36, 32)).copy()
    out = rendering.elastic_deform(ramp, 2.0, 5.0, np.random.default_rng(0))
    inner = (slice(4, -4),) * 3
    shift = np.abs(out - ramp)[inner]
    assert shift.max() <= 2.0 + 1e-3 and shift.max() > 0.5
    assert np.array_equal(rendering.elastic_deform(ramp, 0.0, 5.0, np.random.default_rng(0)), ramp)
    again = rendering.elastic_deform(ramp, 2.0, 5.0, np.random.default_rng(0))
    assert np.array_equal(out, again)


def test_scanner_nuisance_pads_the_field_of_view_and_adds_a_bias_field():
    clean = _render()
    ex = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=1, scanner=1.0)
    out = rendering._scanner_nuisance(clean, ex, np.random.default_rng(0))
    lo, hi = (int(round(mm / 3.0)) for mm in rendering.SCANNER_FOV_MM)
    assert all(lo <= n <= hi for n in out.shape[:2]) and out.shape[2] == clean.shape[2]
    # The same head, moved by the padding and multiplied by a smooth, non-constant field.
    def nonzero_box(a):
        return a[tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(a))]

    head, moved = nonzero_box(clean), nonzero_box(out)
    assert moved.shape == head.shape
    field = moved[head > 0] / head[head > 0]
    assert 0.5 < field.min() and field.max() < 2 and field.std() > 1e-3
    plain = Example("anat", "train", "mni", "T1w", 3.0, "none", "none", seed=1)
    assert np.array_equal(
        rendering._scanner_nuisance(clean, plain, np.random.default_rng(0)), clean)
    assert np.array_equal(rendering._scanner_nuisance(clean, ex, np.random.default_rng(0)), out)


def test_metrics_code_hash_ignores_documentation_but_not_code(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    import mmrqa_bids.metrics as metrics_pkg

    src = Path(metrics_pkg.__file__).parent
    copy_dir = tmp_path / "metrics"
    shutil.copytree(src, copy_dir, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(metrics_pkg, "__file__", str(copy_dir / "__init__.py"))
    base = measuring.metrics_code_hash()
    masks = copy_dir / "masks.py"
    text = masks.read_text()
    masks.write_text(text.replace('"""Head', '"""Edited. Head', 1) + "\n# a comment\n")
    assert measuring.metrics_code_hash() == base
    masks.write_text(text + "\nEXTRA = 1\n")
    assert measuring.metrics_code_hash() != base


def test_recipe_features_add_the_recipe_extras_and_are_the_default_of_fit_model():
    from mmrqa_bids.metrics import FUNC_METRICS

    rng = np.random.default_rng(0)
    rows = [{k: float(rng.random()) for k in FUNC_METRICS} for _ in range(30)]
    feats = fit.recipe_features("bold", rows)
    assert set(DEFAULT_RECIPE["bold"]["extra_features"]) <= set(feats)
    assert {"tsnr", "fd_mean"} <= set(feats) and "summary_fg_mean" not in feats
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["bold"]["exclude_features"] = ["fov_edge"]
    assert "fov_edge" not in fit.recipe_features("bold", rows, recipe)


def test_held_out_recipe_plans_plain_unseen_examples_seeded_apart():
    sources = [{"anatomy": "epi", "contrast": "bold", "voxel_size": 4.0, "draws": {"train": 9}}]
    recipe = held_out_recipe(DEFAULT_RECIPE, "bold", sources, 3000, 2)
    planned = plan_examples(recipe, "bold")
    per_draw = len(plan_examples(held_out_recipe(DEFAULT_RECIPE, "bold", sources, 3000,
                                                       1), "bold"))
    assert len(planned) == 2 * per_draw > 0
    assert {e.split for e in planned} == {"unseen"} and {e.anatomy for e in planned} == {"epi"}
    assert all(e.zoom_jitter == 0 and e.random_contrast == 0 for e in planned)
    own = {e.seed for e in plan_examples(DEFAULT_RECIPE, "bold")}
    assert not own & {e.seed for e in planned}
    assert "draws" not in recipe["bold"]["unseen"][0]
    assert DEFAULT_RECIPE["bold"]["unseen"][0]["anatomy"] == "tpm"  # the recipe is copied


def _ordinal_rows(n: int = 1200, seed: int = 0):
    """Synthetic runs: "blur" lowers `sharp` and raises `snr`, "noise" lowers `snr`;
    `drift` rises with every artifact (the others move nothing else); the grade follows
    the artifact's strength."""
    rng = np.random.default_rng(seed)
    art = rng.choice(("none",) + ARTIFACTS, size=n)
    strength = np.where(art == "none", 0.0, rng.random(n))
    grade = np.where(strength < 0.33, "Good", np.where(strength < 0.66, "Medium", "Bad"))
    sharp = 1 - np.where(art == "blur", strength, 0) + 0.05 * rng.normal(size=n)
    snr = 10 + np.where(art == "blur", 5 * strength, 0) - np.where(art == "noise", 8 * strength, 0)
    drift = strength + 0.05 * rng.normal(size=n)
    rows = [{"sharp": a, "snr": b, "drift": c} for a, b, c in zip(sharp, snr, drift)]
    return rows, grade.tolist(), art.tolist()


def test_monotonic_signs_constrain_only_features_every_artifact_moves_one_way():
    rows, grade, art = _ordinal_rows()
    feats = ["sharp", "snr", "drift"]
    x = np.array([[r[f] for f in feats] for r in rows])
    # blur raises snr and noise lowers it: free; sharp only falls (blur); drift always rises
    assert monotonic_signs(x, grade, art, feats) == {"sharp": -1, "drift": 1}


def test_ordinal_grade_model_is_monotonic_calibrated_and_round_trips(tmp_path):
    from mmrqa_bids.grading.classifier import OrdinalEnsemble, load_model_file

    rows, grade, art = _ordinal_rows()
    feats = ["sharp", "snr", "drift"]
    params = {"grade_model": "ordinal", "monotonic": "training", "max_iter": 30}
    doc = fit.fit_model("bold", rows, grade, art, [a == "none" for a in art], params=params,
                       features=feats)
    assert doc["grade"]["kind"] == "ordinal"
    assert doc["grade"]["monotonic"] == {"sharp": -1, "drift": 1}
    model = load_model_file(export.save_model(doc, tmp_path))
    assert isinstance(model.grade, OrdinalEnsemble)
    x = np.array([[r[f] for f in feats] for r in rows])
    p = model.grade.predict_proba(x)
    assert p.shape == (len(rows), 3) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.mean(np.array(LABELS)[p.argmax(axis=1)] == np.array(grade)) > 0.8
    # P(>= Medium) never falls as drift rises, nor as sharp falls, whatever the other values
    grid = np.linspace(x.min(axis=0), x.max(axis=0), 25)
    base = np.tile(np.median(x, axis=0), (25, 1))
    for j, sign in ((2, 1), (0, -1)):
        probe = base.copy()
        probe[:, j] = grid[:, j]
        a = model.grade.at_least_medium.predict_proba(probe)[:, 1]
        assert np.all(sign * np.diff(a) >= -1e-12)
    for temp in (model.grade.at_least_medium.temperature, model.grade.bad.temperature):
        assert 0.05 < temp < 20


def test_unknown_grade_model_options_are_clear_errors():
    rows, grade, art = _ordinal_rows(100)
    for params in ({"grade_model": "ranked"}, {"grade_model": "ordinal", "monotonic": "yes"},
                   {"grade_model": "ordinal", "good_weight": 0.5}):
        with pytest.raises(TrainingError, match="grade_model|monotonic|good_weight"):
            fit.fit_model("bold", rows, grade, art, [a == "none" for a in art], params=params,
                         features=["sharp", "snr", "drift"])


def test_family_model_settings_override_the_recipe_model():
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["bold"]["model"] = {"grade_model": "ordinal"}
    assert family_params(recipe, "bold")["grade_model"] == "ordinal"
    assert family_params(recipe, "bold")["max_iter"] == recipe["model"]["max_iter"]
    assert "grade_model" not in family_params(recipe, "anat")


def test_good_weight_shifts_the_prior_of_good_and_round_trips(tmp_path):
    rows, grade, art = _ordinal_rows()
    feats = ["sharp", "snr", "drift"]
    fitted = {g: fit.fit_model("bold", rows, grade, art, [a == "none" for a in art],
                               features=feats, params={"max_iter": 30, "good_weight": g})
              for g in (1.0, 0.5)}
    assert "class_weights" not in fitted[1.0]["grade"]
    assert fitted[0.5]["grade"]["class_weights"] == [0.5, 1.0, 1.0]
    x = np.array([[r[f] for f in feats] for r in rows])
    p1 = load_model_file(export.save_model(fitted[1.0], tmp_path / "a")).grade.predict_proba(x)
    p5 = load_model_file(export.save_model(fitted[0.5], tmp_path / "b")).grade.predict_proba(x)
    expected = p1 * [0.5, 1.0, 1.0]
    np.testing.assert_allclose(p5, expected / expected.sum(axis=1, keepdims=True))
    assert (p5.argmax(axis=1) == 0).sum() < (p1.argmax(axis=1) == 0).sum()


def test_shell_only_random_contrast_keeps_the_brain_signals_near_the_named_contrast():
    from mmrqa_bids.phantom import CONTRASTS, Head

    maps = {t: np.zeros((5, 1, 1), np.float32) for t in ("csf", "gm", "wm", "skull", "scalp")}
    for i, t in enumerate(maps):
        maps[t][i] = 1.0  # one voxel per tissue: the rendering is the tissue signals
    head = Head(**maps, affine=np.eye(4))
    ex = Example(family="bold", split="train", anatomy="mni", contrast="bold", voxel_size=4.0,
                    artifact="noise", severity="none", seed=0, contrast_jitter=0.5,
                    random_contrast=1.0, random_tissues="shell")
    base = np.array(CONTRASTS["bold"])
    brain, shell = [], []
    for seed in range(40):
        img = rendering._render_clean(head, ex, np.random.default_rng(seed)).ravel()
        brain.append(img[:3] / base[:3])
        shell.append(img[3:])
    brain, shell = np.array(brain), np.array(shell)
    # Brain tissues: the named signals times exp(U(-0.5, 0.5)) (clipped at 1); shell: U(0.03, 1).
    assert np.all(brain >= np.exp(-0.5) - 1e-6) and np.all(brain <= np.exp(0.5) + 1e-6)
    assert brain.std(axis=0).min() > 0.1  # jittered, not fixed
    assert shell.min() >= 0.03 and shell.max() <= 1.0 and shell[:, 1].std() > 0.15
    assert Example(**{**ex.__dict__, "random_tissues": "all"}).key() != ex.key()
    with pytest.raises(TrainingError, match="random_tissues"):
        rendering._render_clean(head, Example(**{**ex.__dict__, "random_tissues": "brain"}),
                         np.random.default_rng(0))


def test_measure_example_caches_an_undefined_metric_as_null_and_reads_it_back_as_nan(
        tmp_path, monkeypatch):
    """Strict JSON has no NaN: a metric undefined on an example (NaN or inf) is cached as
    null, and the fresh record and the cached one agree (NaN, the trees' missing value)."""
    import json
    from types import SimpleNamespace

    import mmrqa_bids.metrics as metrics_pkg

    sim = SimpleNamespace(data=np.zeros((4, 4, 4)), degradation=0.1, label="Medium")
    monkeypatch.setattr(measuring, "simulate_example", lambda ex, cache_dir=None: sim)
    monkeypatch.setattr(metrics_pkg, "measure", lambda *a, **k: SimpleNamespace(
        metrics={"snr_total": 3.0, "fwhm_avg": np.nan, "qi_1": np.inf}))
    ex = plan_examples(DEFAULT_RECIPE, "anat")[0]
    fresh = measuring.measure_example(ex, tmp_path)
    stored = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert stored["metrics"] == {"snr_total": 3.0, "fwhm_avg": None, "qi_1": None}
    cached = measuring.measure_example(ex, tmp_path)
    for record in (fresh, cached):
        assert record["metrics"]["snr_total"] == 3.0 and record["label"] == "Medium"
        assert np.isnan(record["metrics"]["fwhm_avg"]) and np.isnan(record["metrics"]["qi_1"])
