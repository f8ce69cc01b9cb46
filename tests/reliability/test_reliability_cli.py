"""Issue 22's fault-injection cases through the real command line: every exit code as
documented, every run kept, every output strictly valid, nothing lost or leaked.

The cases live in :mod:`mmrqa_bids.testing.fault_cases` (``benchmarks/fault_injection.py``
prints them as the README's table); each case states what "lost" means for it.
"""
from __future__ import annotations

import pytest

from mmrqa_bids.cli.parser import build_parser
from mmrqa_bids.testing.fault_cases import CASES, case_name, shared_dataset

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bids(tmp_path_factory):
    return shared_dataset(tmp_path_factory.mktemp("faults"))


@pytest.mark.parametrize("case", CASES, ids=[case_name(c) for c in CASES])
def test_fault_case(case, bids, tmp_path):
    result = case(tmp_path, bids)
    assert result.exit_codes == result.expected, result
    assert result.files_valid, result.problems
    assert not result.lost, result.lost
    assert result.kept + result.not_started == result.runs, result


def test_help_names_the_real_work_directory_default():
    text = build_parser().format_help()
    assert "OUTPUT_DIR/../mmrqa_work" not in text
    assert "private folder" in " ".join(text.split())
