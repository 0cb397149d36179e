"""The transformers backend and everything that touches Hugging Face internals."""

ATTENTION = "ladder_sdpa"  # the attention implementation ladder registers with transformers (``attention``)
