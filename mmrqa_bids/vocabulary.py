"""The words mmrqa shares across its layers, each defined once.

Grades, narrative sections, artifact types, BIDS suffixes and entities, the grade colours of
the reports, and the registry of graders. Plain data, no imports from the package: every
layer (metrics excepted, which needs none of it) may read it.
"""
from __future__ import annotations

#: The grade scale, best first.
LABELS: tuple[str, ...] = ("Good", "Medium", "Bad")

#: The three sections of every narrative (MMRQA's): grade and evidence; artifact type, cause
#: and appearance; usability for analysis and protocol advice.
NARRATIVE_SECTIONS: tuple[str, ...] = ("classification", "artifact", "analysis")
SECTION_TITLES: dict[str, str] = {"classification": "Classification", "artifact": "Artifact",
                                  "analysis": "Analysis"}

#: The artifact types mmrqa simulates and grades. This order is the metric classifier's class
#: order (after ``"none"``) and the simulation's: changing it changes the trained models.
ARTIFACTS: tuple[str, ...] = ("motion", "ghosting", "spike", "inhomogeneity", "blur", "noise",
                              "aliasing")

#: BIDS suffixes mmrqa assesses: anatomical, then functional.
ANAT_SUFFIXES: tuple[str, ...] = ("T1w", "T2w", "FLAIR")
FUNC_SUFFIXES: tuple[str, ...] = ("bold",)
SUFFIXES: tuple[str, ...] = ANAT_SUFFIXES + FUNC_SUFFIXES

#: BIDS entities in file-name order (the subset mmrqa reads and writes), and their keys.
ENTITY_ORDER: tuple[str, ...] = ("subject", "session", "task", "acquisition", "ceagent",
                                 "reconstruction", "direction", "run", "echo", "part")
ENTITY_KEYS: dict[str, str] = {"subject": "sub", "session": "ses", "task": "task",
                               "acquisition": "acq", "ceagent": "ce", "reconstruction": "rec",
                               "direction": "dir", "run": "run", "echo": "echo", "part": "part"}

#: Grade colours of the reports (``n/a``: failed or unparsed runs).
GRADE_COLOURS: dict[str, str] = {"Good": "#1a7f37", "Medium": "#b7791f", "Bad": "#c53030",
                                 "n/a": "#6b7280"}

#: Grader name -> ``module:class`` of its backend. The command line's choices, the checks
#: and :func:`mmrqa_bids.grading.make_grader` all read this; the modules are imported lazily
#: (the LLM backends need the ``[llm]`` extra).
GRADERS: dict[str, str] = {
    "classifier": "mmrqa_bids.grading.classifier:ClassifierGrader",
    "llava": "mmrqa_bids.grading.llava:LlavaGrader",
    "openai": "mmrqa_bids.grading.openai_server:OpenAIGrader",
}


def family_of(suffix: str) -> str:
    """``bold`` runs are functional (``"bold"``), every other suffix anatomical (``"anat"``)."""
    return "bold" if suffix in FUNC_SUFFIXES else "anat"


def datatype_of(suffix: str) -> str:
    """The BIDS datatype folder of a suffix: ``func`` for bold, ``anat`` otherwise."""
    return "func" if suffix in FUNC_SUFFIXES else "anat"
