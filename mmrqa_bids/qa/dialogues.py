"""Conversations for training, from the facts and the answers of one example.

Three kinds, all with the slice mosaic as the first user part and the grader's system prompt:

``grade``
    exactly the prompt the graders send (:func:`mmrqa_bids.grading.prompts.build_messages`)
    and the answer in the format their parser reads
    (:func:`mmrqa_bids.grading.parse.format_answer`), so that an adapter trained on it is
    used as is by ``--grader llava --adapter``. Always kept.
``qa/<field>``
    one question of one task (grade, signal effects, usability; artifact type, cause,
    features; downstream usability, protocol advice) and its answer.
``dialogue``
    three rounds as in MMRQA's Figure 3: metrics and grade -> artifact -> recommendation.

``--qa-fraction`` samples the ``qa/*`` and ``dialogue`` conversations (:func:`sample`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mmrqa_bids.grading.base import GradeRequest
from mmrqa_bids.qa.content import QAContent
from mmrqa_bids.qa.facts import QAFacts
from mmrqa_bids.resources import template_env

#: The single-turn questions, in task order (macro names of ``templates/qa/questions.j2``).
QA_FIELDS = ("grade", "signal_effects", "usability", "artifact_type", "artifact_cause",
             "artifact_features", "downstream", "protocol")


@dataclass(frozen=True)
class Conversation:
    example_id: str
    kind: str  # "grade", "qa/<field>" or "dialogue"
    messages: tuple[dict[str, Any], ...]  # transformers multimodal chat format
    image: str  # path of the mosaic PNG

    def assistant_turns(self) -> list[str]:
        return [m["content"][0]["text"] for m in self.messages if m["role"] == "assistant"]


def _question(name: str) -> str:
    module = template_env(html=False).get_template("qa/questions.j2").make_module({})
    return str(getattr(module, name)()).strip()


def _user_text(facts: QAFacts, question: str) -> str:
    from mmrqa_bids.grading.prompts import CONTRASTS, metric_lines
    return template_env(html=False).get_template("qa/user.j2").render(
        contrast=CONTRASTS.get(facts.suffix, facts.suffix), metrics=metric_lines(facts.metrics, facts.suffix),
        question=question).strip()


def _text(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"type": "text", "text": text}]}


def _system() -> dict[str, Any]:
    from mmrqa_bids.grading.prompts import system_prompt
    return _text("system", system_prompt())


def _image_user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}


def grade_answer(content: QAContent) -> str:
    """The grader-format answer (``Grade:``, ``Artifacts:`` and the three sections)."""
    from mmrqa_bids.grading.parse import format_answer
    return format_answer(content.label, content.artifacts(), content.narrative())


def grade_conversation(facts: QAFacts, content: QAContent, image: str | Path) -> Conversation:
    from mmrqa_bids.grading.prompts import build_messages
    request = GradeRequest(bids_name=facts.example_id, suffix=facts.suffix,
                           metrics=dict(facts.metrics), mosaic=Path(image))
    messages = build_messages(request, answer=grade_answer(content))
    return Conversation(facts.example_id, "grade", tuple(messages), str(image))


def field_answer(name: str, content: QAContent) -> str:
    """The answer to one single-turn question."""
    if name == "grade":
        return f"{content.label}. {content.usability}"
    if name == "artifact_type":
        if content.artifact:
            return f"{content.artifact}. {content.artifact_cause}"
        return content.artifact_cause
    return str(getattr(content, name))


def qa_pairs(facts: QAFacts, content: QAContent, image: str | Path) -> list[Conversation]:
    return [Conversation(facts.example_id, f"qa/{name}",
                         (_system(), _image_user(_user_text(facts, _question(name))),
                          _text("assistant", field_answer(name, content))), str(image))
            for name in QA_FIELDS]


def dialogue(facts: QAFacts, content: QAContent, image: str | Path) -> Conversation:
    """Metrics -> artifact -> recommendation, each answer building on the previous turn."""
    narrative = content.narrative()
    messages = (
        _system(),
        _image_user(_user_text(facts, _question("dialogue_metrics"))),
        _text("assistant", narrative["classification"]),
        _text("user", _question("dialogue_artifact")),
        _text("assistant", narrative["artifact"]),
        _text("user", _question("dialogue_recommendation")),
        _text("assistant", narrative["analysis"]),
    )
    return Conversation(facts.example_id, "dialogue", messages, str(image))


def conversations_for(facts: QAFacts, content: QAContent,
                      image: str | Path) -> list[Conversation]:
    """Every conversation of one example: the grade record, the QA pairs and the dialogue."""
    return ([grade_conversation(facts, content, image)] + qa_pairs(facts, content, image)
            + [dialogue(facts, content, image)])


def sample(conversations: Sequence[Conversation], fraction: float,
           seed: int) -> list[Conversation]:
    """Keep every ``grade`` conversation and round(fraction * n) of the others, drawn with
    ``seed`` (MMRQA's QA-fraction ablation: 1.0, 0.67, 0.33); the original order is kept."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"qa fraction must be within [0, 1], got {fraction}")
    others = [i for i, c in enumerate(conversations) if c.kind != "grade"]
    keep = set(random.Random(seed).sample(others, round(fraction * len(others))))
    return [c for i, c in enumerate(conversations) if c.kind == "grade" or i in keep]
