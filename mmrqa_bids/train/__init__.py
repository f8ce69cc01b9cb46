"""The ``train`` analysis level and the two trainers it runs.

* :mod:`mmrqa_bids.train.level`: the level the CLI calls (:func:`~.level.run_train`), with its
  data stage shared by both trainers: the participant split (:mod:`.split`) and the rated and
  simulated examples with their metrics and mosaics (:mod:`.examples`). It hands over to
  :mod:`.lora.level` (with a base model) or :mod:`.metric_level` (the metric models fitted on
  the ratings).
* :mod:`mmrqa_bids.train.metric_model`: the metric classifier (the shipped model's recipe,
  rendering, measuring, fit and export; the model fitted on a user's ratings,
  :mod:`~.metric_model.rated`).
* :mod:`mmrqa_bids.train.lora`: LoRA fine-tuning of LLaVA-OneVision (conversations, the
  fine-tuning run, held-out evaluation, the LLM judge).

The two trainers never import each other (``tests/test_architecture.py``). torch,
transformers and peft are imported only inside the functions that need them.
"""
