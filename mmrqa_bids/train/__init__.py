"""The ``train`` analysis level: examples from rated (and simulated) runs, QA conversations,
LoRA fine-tuning of LLaVA-OneVision, evaluation on held-out participants, model card.

:func:`mmrqa_bids.train.level.run_train` is the entry point the CLI calls. torch,
transformers and peft are imported only inside the functions that need them.
"""
