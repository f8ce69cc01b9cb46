"""Narrative templates of the metric classifier: sections, quoted values, no template leaks."""
from __future__ import annotations

import re

import pytest

from mmrqa_bids.grading.base import LABELS, NARRATIVE_SECTIONS
from mmrqa_bids.grading.narrative import (ARTIFACT_FACTS, ARTIFACT_NAMES, Driver,
                                          artifact_facts, format_value, render_narrative,
                                          usability)

LEAKS = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|Undefined|\bNone\b|\bnan\b|\[\]|<Macro")

DRIVERS = [Driver("snr1", 4.2517, 25.04, 41.3, -6.1), Driver("efc", 0.61234, 0.43, 0.47, 5.2),
           Driver("fber", 123456.0, 900.0, 2500.0, 3.0)]


@pytest.mark.parametrize("suffix", ["T2w", "bold"])
@pytest.mark.parametrize("label", LABELS)
@pytest.mark.parametrize("artifact", [None, *ARTIFACT_FACTS])
def test_every_section_present_and_clean(label, artifact, suffix):
    artifacts = [] if artifact is None else [{"type": artifact, "likelihood": 0.734},
                                             {"type": "noise", "likelihood": 0.2}]
    text = render_narrative(label=label, confidence=0.8765, drivers=DRIVERS, artifacts=artifacts,
                            model_id="mmrqa-metric-test", suffix=suffix)
    assert list(text) == list(NARRATIVE_SECTIONS)
    for section, body in text.items():
        assert body.strip(), section
        assert not LEAKS.search(body), (section, body)
        assert "  " not in body and "\n" not in body
    c = text["classification"]
    assert c.startswith(f"Grade: {label} (confidence 88%).")
    assert "metric model (mmrqa-metric-test)" in c and "not the image itself" in c
    # Every driving metric is named with its value, formatted the same way everywhere.
    for d in DRIVERS:
        assert f"{d.name} = {format_value(d.value)} (clean runs: {format_value(d.low)} to " \
               f"{format_value(d.high)})" in c
    assert "snr1 = 4.25 " in c and "efc = 0.612 " in c and "fber = 1.23e+05 " in c
    sentence, advice = usability(label, suffix)
    assert f"Usability: {sentence}" in c and text["analysis"].startswith(advice)
    if artifact is None:
        assert text["artifact"].startswith("No artifact stands out")
        assert "No protocol change is indicated." in text["analysis"]
    else:
        art = text["artifact"]
        assert ARTIFACT_NAMES[artifact] in art and "likelihood 73%" in art
        assert ARTIFACT_FACTS[artifact]["cause"] in art
        assert ARTIFACT_FACTS[artifact]["features"] in art
        if label == "Good":
            assert art.startswith("Possible minor artifact")
            assert "No protocol change is indicated." in text["analysis"]
        else:
            assert art.startswith("Most likely artifact")
            assert artifact_facts(artifact, suffix)["protocol"] in text["analysis"]


def test_motion_advice_names_propeller_and_prospective_correction():
    text = render_narrative(label="Bad", confidence=0.9, drivers=DRIVERS,
                            artifacts=[{"type": "motion", "likelihood": 0.9}], model_id="m")
    assert "PROPELLER" in text["analysis"] and "prospective motion correction" in text["analysis"]
    assert "k-space" in text["artifact"]


def test_bold_runs_get_functional_usability_and_epi_protocol_advice():
    text = render_narrative(label="Bad", confidence=0.9, drivers=DRIVERS, suffix="bold",
                            artifacts=[{"type": "motion", "likelihood": 0.9}], model_id="m")
    assert "PROPELLER" not in text["analysis"] and "morphometry" not in text["analysis"]
    assert "prospective motion correction" in text["analysis"] and "scrub" in text["analysis"]
    assert "functional analysis" in text["analysis"]
    good = render_narrative(label="Good", confidence=0.9, drivers=DRIVERS, artifacts=[],
                            model_id="m", suffix="bold")
    assert "resting-state" in good["analysis"] and "morphometry" not in good["analysis"]
    # Artifacts without EPI-specific advice keep the general one; cause and features stay.
    assert artifact_facts("spike", "bold") == ARTIFACT_FACTS["spike"]
    assert artifact_facts("ghosting", "bold")["cause"] == ARTIFACT_FACTS["ghosting"]["cause"]
    assert artifact_facts(None, "bold") == {} and artifact_facts("motion", "T1w") == \
        ARTIFACT_FACTS["motion"]


def test_clean_run_says_metrics_are_within_range():
    inside = [Driver("snr1", 30.0, 25.0, 41.0, 0.3)]
    text = render_narrative(label="Good", confidence=0.95, drivers=inside, artifacts=[],
                            model_id="m")
    assert "lie within the range of clean T1w acquisitions: snr1 = 30" in text["classification"]


@pytest.mark.parametrize("value,expected", [(4.2517, "4.25"), (30.0, "30"), (0.045123, "0.0451"),
                                            (1234.5, "1230"), (123456.0, "1.23e+05"),
                                            (0.0004, "0.0004"), (float("nan"), "n/a"), (0.0, "0")])
def test_format_value(value, expected):
    assert format_value(value) == expected
