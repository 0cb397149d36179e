"""Data: one reader for splits, extra rows and the corpus, and the checks run before any rung."""
