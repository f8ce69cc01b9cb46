import dataclasses
import tomllib
from pathlib import Path

import pytest

from mmrqa_bids.settings import Execution, Grading, Settings


def test_settings_are_frozen_and_serialise_to_toml():
    s = Settings(execution=Execution(bids_dir=Path("/b"), output_dir=Path("/o"),
                                     analysis_level="participant", work_dir=Path("/w"),
                                     participant_label=("01",)),
                 grading=Grading(grader="classifier"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.execution.nprocs = 4  # type: ignore[misc]
    data = tomllib.loads(s.to_toml())
    assert data["execution"]["bids_dir"] == "/b"
    assert data["execution"]["participant_label"] == ["01"]
    assert data["grading"]["grader"] == "classifier"
    assert "model" not in data["grading"]  # None values are left out
