"""Question-answer pairs for fine-tuning, built from metrics and labels.

:mod:`~mmrqa_bids.qa.facts` holds what is known about one training example (label, artifact,
metrics and how they deviate from the runs rated Good); a *source*
(:mod:`~mmrqa_bids.qa.template` offline, or :mod:`~mmrqa_bids.qa.llm` through an
OpenAI-compatible endpoint) writes the answers of the three MMRQA tasks
(:class:`~mmrqa_bids.qa.content.QAContent`); :mod:`~mmrqa_bids.qa.dialogues` turns them into
conversations (the grader's own prompt and answer format, single QA pairs, multi-round
dialogues) and :mod:`~mmrqa_bids.qa.export` writes them as JSONL.
"""
