"""Conversations (grader prompt, QA pairs, dialogue), QA-fraction sampling and JSONL export."""
from __future__ import annotations

import json

import pytest

from mmrqa_bids.grading.base import GradeRequest
from mmrqa_bids.grading.parse import parse_answer
from mmrqa_bids.grading.prompts import build_messages
from mmrqa_bids.qa.dialogues import (QA_FIELDS, conversations_for, grade_conversation, sample)
from mmrqa_bids.qa.export import read_hf_jsonl, swift_record, write_jsonl
from mmrqa_bids.qa.facts import QAFacts
from mmrqa_bids.qa.template import template_content

FACTS = QAFacts("sub-01_run-02_T1w", "T1w", "Medium", {"mrqy_SNR1": 7.5, "efc": 0.55},
                artifact="ghosting")


@pytest.fixture()
def convs(tmp_path):
    return conversations_for(FACTS, template_content(FACTS), tmp_path / "m.png")


def test_grade_conversation_is_exactly_the_grader_prompt_and_parses_back(tmp_path):
    content = template_content(FACTS)
    conv = grade_conversation(FACTS, content, tmp_path / "m.png")
    request = GradeRequest(bids_name=FACTS.example_id, suffix="T1w", metrics=FACTS.metrics,
                           mosaic=tmp_path / "m.png")
    assert list(conv.messages[:2]) == build_messages(request)
    grade = parse_answer(conv.assistant_turns()[0])
    assert grade.label == "Medium" and grade.parse_error is None
    assert grade.artifacts == [{"type": "ghosting", "likelihood": 1.0}]
    assert grade.narrative == content.narrative()


def test_every_task_question_and_a_three_round_dialogue(convs):
    kinds = [c.kind for c in convs]
    assert kinds == ["grade"] + [f"qa/{f}" for f in QA_FIELDS] + ["dialogue"]
    for conv in convs:
        first_user = next(m for m in conv.messages if m["role"] == "user")
        assert first_user["content"][0] == {"type": "image"}
        assert "mrqy_SNR1 = 7.5" in first_user["content"][1]["text"]
        assert conv.messages[0]["role"] == "system"
    dialogue = convs[-1]
    assert [m["role"] for m in dialogue.messages] == ["system"] + ["user", "assistant"] * 3
    turns = dialogue.assistant_turns()
    assert turns[0].startswith("Grade Medium.") and "ghosting" in turns[1] and turns[2]
    qa = {c.kind: c.assistant_turns()[0] for c in convs if c.kind.startswith("qa/")}
    assert qa["qa/grade"].startswith("Medium.") and qa["qa/artifact_type"].startswith("ghosting.")


def test_sampling_keeps_grade_records_and_a_seeded_share(convs):
    many = convs * 3  # 3 grade + 27 others
    assert sample(many, 1.0, 0) == many
    kept = sample(many, 0.33, 0)
    assert sum(c.kind == "grade" for c in kept) == 3
    assert sum(c.kind != "grade" for c in kept) == round(0.33 * 27)
    assert kept == sample(many, 0.33, 0) and kept != sample(many, 0.33, 1)
    assert [c.kind for c in sample(many, 0.0, 0)] == ["grade"] * 3
    with pytest.raises(ValueError):
        sample(many, 1.5, 0)


def test_jsonl_export_in_hf_and_ms_swift_formats(convs, tmp_path):
    paths = write_jsonl(convs, tmp_path / "ds", "train")
    hf = [json.loads(line) for line in paths["hf"].read_text().splitlines()]
    swift = [json.loads(line) for line in paths["swift"].read_text().splitlines()]
    assert len(hf) == len(swift) == len(convs)
    assert hf[0]["messages"][1]["content"][0] == {"type": "image"}
    assert hf[0]["images"] == [str(tmp_path / "m.png")]
    rec = swift[0]
    assert set(rec) == {"messages", "images"}
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant"]
    assert rec["messages"][1]["content"].startswith("<image>Contrast:")
    assert all(isinstance(m["content"], str) for m in rec["messages"])
    assert rec["messages"][2]["content"] == convs[0].assistant_turns()[0]
    assert read_hf_jsonl(paths["hf"]) == convs
    assert swift_record(convs[-1])["messages"][3] == {"role": "user", "content": convs[-1].messages[3]["content"][0]["text"]}


def test_read_hf_jsonl_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: not a chat record"):
        read_hf_jsonl(bad)


def test_jsonl_refuses_non_finite_numbers():
    from mmrqa_bids.qa.export import to_jsonl

    assert json.loads(to_jsonl([{"snr": 1.5}])) == {"snr": 1.5}
    with pytest.raises(ValueError):
        to_jsonl([{"snr": float("nan")}])
