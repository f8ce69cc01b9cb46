"""mmrqa: MRI quality assessment as a BIDS App (signal metrics + multimodal LLM)."""
from mmrqa_bids.__about__ import __version__

__all__ = ["__version__"]
