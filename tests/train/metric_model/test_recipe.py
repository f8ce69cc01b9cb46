"""The metric classifier's recipe: planned examples, their cache keys, held-out recipes,
per-family model settings (mmrqa_bids/train/metric_model/recipe.py)."""
from __future__ import annotations

import copy

import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import ARTIFACTS  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import (DEFAULT_RECIPE,  # noqa: E402
                                                  GOOD_NONE_PER_DRAW, Example, family_params,
                                                  held_out_recipe, plan_examples)


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


def test_family_model_settings_override_the_recipe_model():
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["bold"]["model"] = {"grade_model": "ordinal"}
    assert family_params(recipe, "bold")["grade_model"] == "ordinal"
    assert family_params(recipe, "bold")["max_iter"] == recipe["model"]["max_iter"]
    assert "grade_model" not in family_params(recipe, "anat")
