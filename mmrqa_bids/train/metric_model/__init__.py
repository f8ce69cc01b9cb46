"""The metric classifier: the shipped absolute model's recipe and the model fitted on a user's
ratings. Nothing here imports :mod:`mmrqa_bids.train.lora`."""
