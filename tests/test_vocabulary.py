import importlib

import pytest

from mmrqa_bids import vocabulary as V
from mmrqa_bids.cli.parser import build_parser
from mmrqa_bids.grading import GraderError, check_grader, make_grader
from mmrqa_bids.grading.narrative import ARTIFACT_FACTS, ARTIFACT_NAMES
from mmrqa_bids.settings import Grading


def test_artifact_descriptions_cover_exactly_the_artifacts():
    assert set(ARTIFACT_FACTS) == set(V.ARTIFACTS) == set(ARTIFACT_NAMES)


def test_the_command_line_offers_the_registered_graders_and_suffixes():
    actions = {a.dest: a for a in build_parser()._actions}
    assert tuple(actions["grader"].choices) == tuple(V.GRADERS)
    assert tuple(actions["modalities"].choices) == V.SUFFIXES


@pytest.mark.parametrize("name", list(V.GRADERS))
def test_every_registered_grader_names_a_class_with_from_settings(name):
    module, cls = V.GRADERS[name].split(":")
    try:
        backend = importlib.import_module(module)
    except ImportError as exc:  # an LLM backend without the [llm] extra
        pytest.skip(f"{module}: {exc}")
    assert callable(getattr(backend, cls).from_settings)


def test_an_unknown_grader_is_refused_by_the_check_and_the_factory():
    for call in (check_grader, make_grader):
        with pytest.raises(GraderError, match="unknown grader 'nope'"):
            call(Grading(grader="nope"))


def test_families_and_datatypes():
    assert [V.family_of(s) for s in V.SUFFIXES] == ["anat", "anat", "anat", "bold"]
    assert [V.datatype_of(s) for s in V.SUFFIXES] == ["anat", "anat", "anat", "func"]
    assert set(V.GRADE_COLOURS) == {*V.LABELS, "n/a"}
    assert list(V.SECTION_TITLES) == list(V.NARRATIVE_SECTIONS)
    assert list(V.ENTITY_KEYS) == list(V.ENTITY_ORDER)
