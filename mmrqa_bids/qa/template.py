"""The offline QA source: answers written by jinja2 templates (``templates/qa/content.j2``).

Deterministic: the same facts always give the same text, so a dataset built with
``--qa-source template`` is reproducible byte for byte.
"""
from __future__ import annotations

from mmrqa_bids.grading.narrative import artifact_facts, usability
from mmrqa_bids.qa.content import TEXT_FIELDS, QAContent, clean_text
from mmrqa_bids.qa.facts import QAFacts
from mmrqa_bids.resources import template_env

SOURCE = "template"


def template_content(facts: QAFacts, has_reference: bool = True) -> QAContent:
    """Write the answers of the three tasks for ``facts`` from the templates.

    ``has_reference``: whether the training set had runs rated Good to compare against
    (without them the signal sentence cites values only, with no comparison).
    """
    sentence, advice = usability(facts.label, facts.suffix)
    context = {
        "label": facts.label,
        "artifact": facts.artifact,
        "facts": artifact_facts(facts.artifact, facts.suffix),
        "deviations": list(facts.deviations),
        "key_metrics": facts.key_metrics(),
        "has_reference": has_reference,
        "usability_sentence": sentence,
        "usability_advice": advice,
    }
    module = template_env(html=False).get_template("qa/content.j2").make_module(context)
    texts = {name: clean_text(str(getattr(module, name)())) for name in TEXT_FIELDS}
    return QAContent(label=facts.label, artifact=facts.artifact, source=SOURCE, **texts)
