"""The transformers backend and everything that touches Hugging Face internals."""
