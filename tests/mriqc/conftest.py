"""Fixtures of the MRIQC tests."""
from __future__ import annotations

import shutil

import pytest
from mriqc_testdata import DATA, write_site


@pytest.fixture
def mriqc_site(tmp_path):
    root = tmp_path / "mriqc"
    write_site(root, 14)
    return root


@pytest.fixture
def data_dir(tmp_path):
    out = tmp_path / "data"
    shutil.copytree(DATA, out)
    return out
