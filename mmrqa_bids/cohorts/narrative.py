"""Narratives of a grade's basis: what sets a run apart from its cohort, or why it has no
dataset grade.

The dataset-relative sections are rendered from ``templates/narrative/dataset.j2``: the
classification names the metrics that set the run apart from the other runs of its cohort,
each with the cohort's typical range ("efc = 0.66, 3.1 robust SD above the other 29 T1w runs
of this protocol (typical 0.52 to 0.58)"); the artifact type still comes from the artifact
model. Numbers are formatted by :func:`mmrqa_bids.grading.narrative.format_value`.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from mmrqa_bids.grading.narrative import (ARTIFACT_NAMES, artifact_facts, format_value,
                                          usability)
from mmrqa_bids.resources import template_env

#: How many in-range metrics a run that nothing sets apart still quotes.
N_CLOSEST = 2
#: How many deviations a narrative names (the run JSON keeps them all).
N_SHOWN = 3
#: Beyond this many robust SD a deviation reads "more than" (z is clipped there).
Z_SHOWN_MAX = 10.0
#: What a grade on the absolute basis is worth (:func:`model_basis_narrative`).
PROVISIONAL = ("That model learned from simulated heads and often grades clean real "
               "acquisitions down: read this grade as provisional until the run is compared "
               "with at least {others} other runs of its protocol (the group level, or "
               "participant --reference).")


def peers_phrase(suffix: str, size: int, member: bool) -> str:
    """Whom the run was compared with: ``the other 29 T1w runs of this protocol`` (a member of
    a cohort of 30) or ``the 30 T1w runs of the reference cohort`` (a new run)."""
    if member:
        others = size - 1
        return f"the other {others} {suffix} run{'s' if others != 1 else ''} of this protocol"
    return f"the {size} {suffix} run{'s' if size != 1 else ''} of the reference cohort"


def deviation_context(dev: Mapping[str, Any]) -> dict[str, str]:
    """Template fields of one deviation (a :class:`~mmrqa_bids.cohorts.relative.Deviation` as
    a dict): value, |z| to one decimal, direction, and the cohort's typical range."""
    z = float(dev["z"])
    shown = f"more than {Z_SHOWN_MAX:g}" if abs(z) >= Z_SHOWN_MAX else f"{abs(z):.1f}"
    return {"name": str(dev["metric"]), "value": format_value(float(dev["value"])),
            "z": shown, "direction": "above" if z >= 0 else "below",
            "low": format_value(float(dev["low"])), "high": format_value(float(dev["high"])),
            "range": typical_range(dev)}


def typical_range(dev: Mapping[str, Any]) -> str:
    """``0.52 to 0.58``; ``0 in every run`` when the cohort's runs share one value (the
    spread is then the reference's floor, and centre -/+ 2 floors reads as noise)."""
    low, high, centre = float(dev["low"]), float(dev["high"]), float(dev["centre"])
    # the reference floors a spread at 1e-9 (reference.SPREAD_FLOOR_ABS): a range that narrow
    # means the runs share the value
    if format_value(low) == format_value(high) or high - low <= 1e-8:
        return f"{format_value(centre)} in every run"
    return f"{format_value(low)} to {format_value(high)}"


def sets_apart(dev: Mapping[str, Any]) -> bool:
    """A metric sets the run apart when its value lies outside the cohort's typical range."""
    return not float(dev["low"]) <= float(dev["value"]) <= float(dev["high"])


def render_dataset_narrative(*, label: str, confidence: float,
                             deviations: Sequence[Mapping[str, Any]],
                             artifacts: Sequence[Mapping[str, Any]], suffix: str, size: int,
                             member: bool, cohort_id: str, model_id: str,
                             model_label: str | None = None,
                             model_confidence: float = 0.0) -> dict[str, str]:
    """The three narrative sections of a dataset-relative grade.

    ``deviations``: the run's metrics against its cohort, |z| descending; ``artifacts``:
    the artifact model's ``[{"type", "likelihood"}]``, most likely first; ``member``: the run
    belongs to the cohort (group level) rather than being graded against a stored one.
    """
    main = artifacts[0] if artifacts else None
    facts = artifact_facts(main["type"], suffix) if main else {}
    sentence, advice = usability(label, suffix)
    shown = [deviation_context(d) for d in deviations]
    apart = [c for c, d in zip(shown, deviations) if sets_apart(d)][:N_SHOWN]
    context: dict[str, Any] = {
        "label": label, "confidence": confidence, "suffix": suffix, "model_id": model_id,
        "cohort_id": cohort_id, "peers": peers_phrase(suffix, size, member),
        "apart": apart, "closest": [] if apart else shown[:N_CLOSEST],
        "model_label": model_label, "model_confidence": model_confidence,
        "usability_sentence": sentence, "usability_advice": advice,
        "main_artifact": None if main is None else {
            "type": main["type"], "name": ARTIFACT_NAMES.get(main["type"], main["type"]),
            "likelihood": float(main["likelihood"]), "cause": facts.get("cause", "unknown"),
            "features": facts.get("features", "unknown"),
            "protocol": facts.get("protocol", "No protocol change is indicated.")},
        "others": [{"name": ARTIFACT_NAMES.get(a["type"], a["type"]),
                    "likelihood": float(a["likelihood"])} for a in artifacts[1:]],
    }
    module = template_env(html=False).get_template("narrative/dataset.j2").make_module(context)
    return {key: " ".join(str(getattr(module, key)()).split())
            for key in ("classification", "artifact", "analysis")}


def model_basis_narrative(narrative: Mapping[str, str], reason: str) -> dict[str, str]:
    """The absolute model's narrative with its basis stated first in the classification:
    ``Basis: the absolute metric model, not the dataset (<reason>).``, then
    :data:`PROVISIONAL`: held out, that model grades clean real acquisitions down (of the
    real T1w heads' clean runs on their own grids, ROBEX's 32 of 32 and the MNI152 image's 5
    of 32; of the real EPI heads' 96 clean runs, 34; model card)."""
    from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE

    out = dict(narrative)
    note = (f"Basis: the absolute metric model, not the dataset ({reason}). "
            + PROVISIONAL.format(others=MIN_COHORT_SIZE - 1))
    out["classification"] = f"{note} {narrative.get('classification') or ''}".strip()
    return out


def prompt_context(deviations: Sequence[Mapping[str, Any]], suffix: str, size: int) -> str:
    """One sentence for a multimodal grader's prompt: how a new run compares with the stored
    reference of its cohort (the deviations that set it apart, with the typical range)."""
    peers = peers_phrase(suffix, size, member=False)
    apart = [deviation_context(d) for d in deviations if sets_apart(d)][:N_SHOWN]
    if not apart:
        return f"no metric lies outside the typical range of {peers}."
    items = "; ".join(f"{c['name']} = {c['value']}, {c['z']} robust SD {c['direction']} "
                      f"(typical {c['range']})" for c in apart)
    return f"compared with {peers}: {items}."
