"""Frozen run settings, built once at the CLI boundary and passed down explicitly.

Nothing in mmrqa reads a global configuration: workflow factories, graders and report
writers receive the pieces of :class:`Settings` they need.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from mmrqa_bids.vocabulary import SUFFIXES


@dataclass(frozen=True)
class Execution:
    bids_dir: Path
    output_dir: Path
    analysis_level: str
    work_dir: Path
    participant_label: tuple[str, ...] = ()
    session_id: tuple[str, ...] = ()
    run_id: tuple[str, ...] = ()
    task_id: tuple[str, ...] = ()
    modalities: tuple[str, ...] = SUFFIXES
    bids_filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    nprocs: int = 1
    omp_nthreads: int = 1
    mem_gb: float | None = None
    plugin: str = "Linear"
    plugin_args: dict[str, Any] = field(default_factory=dict)
    mriqc_dir: Path | None = None
    inu_method: str = "polynomial"  # metrics.measure(inu=...)
    reports: bool = True
    resume: bool = False
    verbose: int = 0


@dataclass(frozen=True)
class Grading:
    grader: str = "classifier"
    model: str | None = None
    adapter: Path | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    batch_size: int = 4
    device: str = "auto"
    dtype: str = "auto"
    max_new_tokens: int = 384
    #: how runs are grouped into cohorts for dataset grades: protocol | suffix | a TSV path
    #: (mmrqa_bids.cohorts.grouping.parse_cohort_by)
    cohort_by: str = "protocol"
    #: participant level: grade new runs against stored cohort references (file or folder)
    reference: Path | None = None


@dataclass(frozen=True)
class Training:
    labels: Path | None = None
    simulate: int = 0
    holdout_fraction: float = 0.3
    qa_source: str = "template"
    qa_fraction: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 16
    learning_rate: float = 1e-4
    epochs: int = 1
    batch_size: int = 8
    base_model: str | None = None
    output_model: Path | None = None
    seed: int = 0
    lora_targets: str = "language"
    lora_dropout: float = 0.05
    lr_scheduler: str = "cosine"


@dataclass(frozen=True)
class Settings:
    execution: Execution
    grading: Grading = field(default_factory=Grading)
    training: Training = field(default_factory=Training)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _plain(value: Any) -> Any:
    """Make a settings tree TOML-serialisable (paths -> str, tuples -> lists, None dropped)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
