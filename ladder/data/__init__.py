"""Data: one reader for splits, extra rows and the corpus, and the checks run before any rung."""

from pathlib import Path

_HERE = Path(__file__).parent
# The code the data checks are computed by: a kept check (``ladder.memo``) is keyed by it, so editing any of these files
# (the checks, near-duplicates, the label-error check, the report types, the text normalization they share) is a miss.
CHECKS_CODE = tuple(
    str(p)
    for p in (*(_HERE / n for n in ("checks.py", "near.py", "measured.py", "report.py")), _HERE.parent / "text.py")
)
