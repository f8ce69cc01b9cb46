"""LoRA fine-tuning of LLaVA-OneVision for the ``train`` level: tokenised conversations,
the fine-tuning run, held-out evaluation and the LLM judge. Nothing here imports
:mod:`mmrqa_bids.train.metric_model`."""
