"""The answers of the three MMRQA tasks for one example, whatever source wrote them.

Classification: grade, signal effects, usability. Artifact: type, cause, features.
Analysis: downstream usability, protocol advice. The grade and the artifact type always
come from the labels (expert rating or simulation), never from the text source.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Free-text fields a source writes (the grade and artifact type are set from the labels).
TEXT_FIELDS = ("signal_effects", "usability", "artifact_cause", "artifact_features",
               "downstream", "protocol")

#: JSON schema of a source's answer (the LLM source validates every reply against it).
CONTENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {name: {"type": "string", "minLength": 10, "maxLength": 1500}
                   for name in TEXT_FIELDS},
    "required": list(TEXT_FIELDS),
    "additionalProperties": False,
}


@dataclass(frozen=True)
class QAContent:
    label: str
    artifact: str | None
    signal_effects: str
    usability: str
    artifact_cause: str
    artifact_features: str
    downstream: str
    protocol: str
    source: str  # "template" or "llm:<model>"

    def narrative(self) -> dict[str, str]:
        """The three narrative sections of the grader's answer."""
        return {
            "classification": f"Grade {self.label}. {self.signal_effects} {self.usability}",
            "artifact": f"{self.artifact_cause} {self.artifact_features}",
            "analysis": f"{self.downstream} {self.protocol}",
        }

    def artifacts(self) -> list[dict[str, Any]]:
        """The known artifact as the grader's artifact list (certain: it is a label)."""
        return [] if self.artifact is None else [{"type": self.artifact, "likelihood": 1.0}]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clean_text(value: str) -> str:
    """One paragraph: whitespace runs collapsed (the answer format is one line per key)."""
    return " ".join(str(value).split())
