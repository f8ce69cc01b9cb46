"""QA facts (metric reference, deviations, artifact names) and the template source."""
from __future__ import annotations

import pytest

from mmrqa_bids.qa.content import TEXT_FIELDS
from mmrqa_bids.qa.facts import (QAFacts, deviations, metric_reference, normalise_artifact)
from mmrqa_bids.qa.template import template_content

GOOD = [{"snr1": 20.0 + i, "efc": 0.40 + 0.01 * i, "mean": 100.0 + i} for i in range(5)]


def test_reference_is_median_and_normal_consistent_mad():
    ref = metric_reference(GOOD)
    assert ref["snr1"].median == 22.0
    # |x - 22| = 2,1,0,1,2 -> MAD 1 -> scale 1.4826
    assert ref["snr1"].scale == pytest.approx(1.4826)
    assert ref["snr1"].n == 5


def test_deviations_rank_directed_metrics_and_say_which_way_is_worse():
    ref = metric_reference(GOOD)
    devs = deviations({"snr1": 10.0, "efc": 0.60, "mean": 500.0}, ref)
    names = [d.name for d in devs]
    # "mean" has no quality direction: left out when directed metrics deviate.
    assert names == ["efc", "snr1"] or names == ["snr1", "efc"]
    assert all(d.worse for d in devs)
    assert abs(devs[0].z) >= abs(devs[1].z)
    assert deviations({"snr1": 22.5}, ref) == ()


@pytest.mark.parametrize("name, expected", [
    ("Ghost", "ghosting"), ("bias field", "inhomogeneity"), ("motion", "motion"),
    ("n/a", None), (None, None), ("", None), ("zipper", "zipper")])
def test_artifact_names_are_normalised(name, expected):
    assert normalise_artifact(name) == expected


def _facts(label, artifact=None, metrics=None, suffix="T1w"):
    metrics = metrics or {"snr1": 9.0, "efc": 0.6}
    ref = metric_reference(GOOD)
    return QAFacts(f"sub-01_{suffix}", suffix, label, metrics, artifact=artifact,
                   deviations=deviations(metrics, ref))


def test_template_answers_are_grounded_in_labels_and_metrics():
    content = template_content(_facts("Bad", "motion"))
    assert content.label == "Bad" and content.artifact == "motion" and content.source == "template"
    assert "snr1 = 9" in content.signal_effects and "lower than in the runs rated Good" in content.signal_effects
    assert "motion" in content.artifact_cause and "k-space" in content.artifact_cause
    assert "re-acquisition" in content.downstream.lower() or "not recommended" in content.downstream.lower()
    assert "PROPELLER" in content.protocol
    for name in TEXT_FIELDS:
        text = getattr(content, name)
        assert text and "\n" not in text and "  " not in text
    narrative = content.narrative()
    assert narrative["classification"].startswith("Grade Bad.")
    assert content.artifacts() == [{"type": "motion", "likelihood": 1.0}]


def test_template_answers_for_bold_runs_speak_of_functional_analysis():
    content = template_content(_facts("Bad", "motion", suffix="bold"))
    assert "PROPELLER" not in content.protocol and "scrub" in content.protocol
    assert "functional analysis" in content.downstream
    assert "k-space" in content.artifact_cause  # the cause is the same as a structural scan's


def test_template_without_artifact_does_not_invent_one():
    good = template_content(_facts("Good", metrics={"snr1": 22.0, "efc": 0.42}))
    assert good.artifact is None and good.artifacts() == []
    assert "No artifact is evident" in good.artifact_cause
    assert "within the range of the runs rated Good" in good.signal_effects
    assert good.protocol == "No protocol change is indicated."
    medium = template_content(_facts("Medium"))
    assert "No single dominant artifact" in medium.artifact_cause
    assert "motion" not in medium.to_dict().values()


def test_template_is_deterministic_and_handles_no_reference():
    facts = QAFacts("x", "bold", "Medium", {"tsnr": 25.0, "dvars_std": 1.3})
    a, b = template_content(facts, has_reference=False), template_content(facts, has_reference=False)
    assert a == b
    assert a.signal_effects == "Key metrics: tsnr = 25, dvars_std = 1.3."
