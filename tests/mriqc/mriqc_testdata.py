"""Helpers and fixtures of the MRIQC tests: hand-written MRIQC outputs of two versions.

Test modules import the fixtures they use from here (no conftest.py: a second module named
``conftest`` would shadow the top-level one)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmrqa_bids.mriqc.model import IqmModel

DATA = Path(__file__).parent / "data"
NEW_JSON = DATA / "mriqc_23.1" / "sub-01" / "ses-1" / "anat" / "sub-01_ses-1_T1w.json"
OLD_JSON = DATA / "mriqc_0.9.6" / "derivatives" / "sub-02_T1w.json"


def write_site(root: Path, n: int, template: Path = NEW_JSON, seed: int = 0,
               layout: str = "new") -> list[str]:
    """An MRIQC folder of ``n`` runs: the hand-written JSON with every IQM jittered by a
    deterministic +-20 %, one JSON per run."""
    rng = np.random.default_rng(seed)
    doc = json.loads(template.read_text())
    names = []
    for i in range(n):
        run = {k: (v * float(1 + 0.2 * rng.uniform(-1, 1)) if isinstance(v, float) else v)
               for k, v in doc.items()}
        name = f"sub-{i + 1:02d}_T1w"
        path = (root / f"sub-{i + 1:02d}" / "anat" / f"{name}.json" if layout == "new"
                else root / "derivatives" / f"{name}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run))
        names.append(name)
    return names


@pytest.fixture
def mriqc_site(tmp_path):
    """An MRIQC 23.1 output folder of 14 T1w runs."""
    root = tmp_path / "mriqc"
    write_site(root, 14)
    return root


@pytest.fixture
def data_dir(tmp_path):
    """A writable copy of the hand-written fixtures."""
    out = tmp_path / "data"
    shutil.copytree(DATA, out)
    return out


def site_model(blocks=("site",)):
    """A model over the shipped features with the given blocks, whatever blocks the shipped
    model uses (its weights summed over its blocks, repeated for each block; a global
    reference of median 0 and IQR 1)."""
    shipped = IqmModel.load()
    n = len(shipped.features)
    coef = shipped.coef.reshape(shipped.coef.shape[0], -1, n).sum(axis=1)
    coef = np.hstack([coef] * len(blocks))
    center, spread = np.zeros(n), np.ones(n)
    return IqmModel(model_id="test", kind=shipped.kind, suffix="T1w",
                    features=shipped.features, coef=coef, intercept=shipped.intercept,
                    blocks=tuple(blocks), center=center, spread=spread,
                    thresholds=(0.5, 0.5))
