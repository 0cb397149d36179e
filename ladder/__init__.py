"""ladder: climb the adaptation ladder (zero-shot -> few-shot -> RAG -> LoRA -> full) on measured gaps.

Importing this package is cheap: no torch, transformers, peft or vllm is imported here. Heavy
libraries are imported inside the backend or rung that needs them.
"""

__version__ = "0.2.0"

from ladder.errors import LadderError, ValidationFailed

__all__ = ["__version__", "LadderError", "ValidationFailed"]
