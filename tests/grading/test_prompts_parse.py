"""The MMRQA prompt and the answer format/parser (no model needed, except the template test)."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mmrqa_bids.grading.base import LABELS, NARRATIVE_SECTIONS, GraderError, GradeRequest
from mmrqa_bids.grading.parse import (format_answer, normalise_probabilities, parse_answer,
                                      parse_artifacts)
from mmrqa_bids.grading.prompts import (ARTIFACT_TYPES, build_messages, format_value,
                                        openai_messages, read_mosaic, user_prompt)

NARRATIVE = {"classification": "Sharp grey/white boundaries; snr1 = 18.2 is high.",
             "artifact": "Faint ringing along the phase-encoding axis.",
             "analysis": "Suitable for morphometry.\nNo protocol change is indicated."}


def request(mosaic: Path | None = None, **metrics: float) -> GradeRequest:
    return GradeRequest(bids_name="sub-01_T1w", suffix="T1w",
                        metrics=metrics or {"mrqy_SNR1": 18.2345, "cjv": 0.41, "efc": float("nan"),
                                                    "summary_wm_mean": 812.0},
                        mosaic=mosaic)


@pytest.mark.parametrize("label", LABELS)
def test_format_then_parse_round_trip(label):
    artifacts = [{"type": "noise", "likelihood": 0.2}, {"type": "motion", "likelihood": 0.7}]
    text = format_answer(label, artifacts, NARRATIVE)
    assert text.splitlines()[0] == f"Grade: {label}"
    grade = parse_answer(text, {"Good": 2.0, "Medium": 1.0, "Bad": 1.0})
    assert grade.label == label and grade.parse_error is None and grade.raw == text
    assert grade.artifacts == [{"type": "motion", "likelihood": 0.7},
                               {"type": "noise", "likelihood": 0.2}]
    assert grade.narrative["analysis"] == "Suitable for morphometry. No protocol change is indicated."
    assert grade.probabilities == {"Good": 0.5, "Medium": 0.25, "Bad": 0.25}
    assert grade.confidence == 0.5


def test_parse_tolerates_markdown_case_and_multiline_sections():
    text = ("Here is my assessment.\n**Grade:** bad\n**Artifacts:** none\n"
            "**Classification:** Heavy ghosting\nover the whole head.\n"
            "- Artifact: ghosting from eddy currents.\n### Analysis: exclude the run.")
    grade = parse_answer(text)
    assert grade.label == "Bad"
    assert grade.artifacts == []
    assert grade.narrative == {"classification": "Heavy ghosting over the whole head.",
                               "artifact": "ghosting from eddy currents.",
                               "analysis": "exclude the run."}
    # no probabilities from the backend: none are invented
    assert grade.probabilities == {} and grade.confidence == 0.0


@pytest.mark.parametrize("text, reason", [
    ("", "no 'Grade:' line"),
    ("The image looks fine to me.", "no 'Grade:' line"),
    ("Grade: Excellent\nClassification: a\nArtifact: b\nAnalysis: c", "is not Good, Medium or Bad"),
    ("Grade: Good\nClassification: a\nArtifact: b", "missing section(s): analysis"),
])
def test_unparseable_answers_are_recorded_not_replaced(text, reason):
    grade = parse_answer(text, {"Good": 0.9, "Medium": 0.05, "Bad": 0.05})
    assert grade.label is None
    assert reason in grade.parse_error
    assert grade.raw == text
    assert grade.probabilities == {} and grade.artifacts == []
    assert set(grade.narrative) == set(NARRATIVE_SECTIONS)  # keys kept for the report


def test_parse_artifacts_and_probabilities():
    assert parse_artifacts("none") == []
    assert parse_artifacts("Motion (0.3), spike (1.7); blur") == [
        {"type": "spike", "likelihood": 1.0}, {"type": "motion", "likelihood": 0.3},
        {"type": "blur", "likelihood": None}]
    assert normalise_probabilities(None) == {}
    assert normalise_probabilities({"Good": 0.0, "Medium": 0.0, "Bad": 0.0}) == {}
    assert normalise_probabilities({"Good": 3, "Bad": 1}) == {"Good": 0.75, "Medium": 0.0, "Bad": 0.25}


def test_format_answer_rejects_incomplete_grades():
    with pytest.raises(ValueError, match="label"):
        format_answer("Fine", [], NARRATIVE)
    with pytest.raises(ValueError, match="artifact"):
        format_answer("Good", [], {**NARRATIVE, "artifact": " "})


def test_prompt_carries_image_metrics_and_the_three_questions():
    messages = build_messages(request())
    assert [m["role"] for m in messages] == ["system", "user"]
    parts = messages[1]["content"]
    assert [p["type"] for p in parts] == ["image", "text"]
    text = parts[1]["text"]
    assert "- mrqy_SNR1 = 18.23" in text and "- cjv = 0.41" in text and "- efc = n/a" in text
    assert "summary_wm_mean" not in text  # scanner-unit statistics stay out of the prompt
    assert "T1-weighted" in text
    for question in ("1. Classification:", "2. Artifact:", "3. Analysis:", "Grade: <Good"):
        assert question in text
    assert all(a in text for a in ARTIFACT_TYPES)
    with_answer = build_messages(request(), answer="Grade: Good")
    assert with_answer[-1] == {"role": "assistant",
                               "content": [{"type": "text", "text": "Grade: Good"}]}
    assert format_value("x") == "n/a" and format_value(1234567) == "1.235e+06"


def test_bold_prompt_names_the_contrast():
    text = user_prompt(GradeRequest("sub-01_task-rest_bold", "bold", {"tsnr": 40.0, "cjv": 0.3}))
    assert "BOLD fMRI" in text and "- tsnr = 40" in text and "cjv" not in text


def test_prompt_quotes_a_fixed_subset_of_what_compute_returns():
    from mmrqa_bids.grading.prompts import metric_lines, prompt_metric_names
    from mmrqa_bids.metrics.names import ANAT_METRICS, FUNC_METRICS
    for suffix, names in (("T1w", ANAT_METRICS), ("bold", FUNC_METRICS)):
        metrics = {name: 1.0 for name in names}
        wanted = prompt_metric_names(suffix)
        assert set(wanted) <= set(names)  # every quoted metric is one compute() returns
        assert [n for n, _ in metric_lines(metrics, suffix)] == list(wanted)


def test_prompt_quotes_mriqc_value_where_mriqc_measured_it():
    text = user_prompt(request(cnr=2.5, mriqc_cnr=3.25, cjv=0.4))
    assert "- mriqc_cnr = 3.25" in text and "- cnr =" not in text and "- cjv = 0.4" in text


def test_openai_messages_embed_the_mosaic_as_base64(mosaic_png):
    messages = openai_messages(request(mosaic_png))
    assert messages[0]["role"] == "system" and isinstance(messages[0]["content"], str)
    image_part, text_part = messages[1]["content"]
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == mosaic_png.read_bytes()
    assert text_part == {"type": "text", "text": user_prompt(request(mosaic_png))}


def test_mosaic_errors_name_the_file(tmp_path):
    with pytest.raises(GraderError, match="no mosaic image"):
        read_mosaic(request(None))
    with pytest.raises(GraderError, match=r"missing\.png: cannot read"):
        read_mosaic(request(tmp_path / "missing.png"))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(GraderError, match=r"bad\.png: the mosaic is not a PNG"):
        read_mosaic(request(bad))


def test_chat_template_renders_one_image_and_a_generation_prompt(tiny_llava_dir):
    from mmrqa_bids.grading.llava import load_processor
    from mmrqa_bids.grading.prompts import render_prompt_text

    processor = load_processor(str(tiny_llava_dir))
    text = render_prompt_text(processor, request())
    assert text.count("<image>") == 1
    assert text.startswith("<|im_start|>system")
    assert text.endswith("<|im_start|>assistant\n")
    answer = format_answer("Good", [], NARRATIVE)
    assert render_prompt_text(processor, request(), answer).endswith(answer + "<|im_end|>\n")
