"""`ladder init`: from a team's own data to a task folder that validates and assesses. The data is read by
``data/read.py``; ``infer`` guesses the fields and the output kind, ``split`` makes (or takes) the splits,
``write`` writes task.yaml with a comment on every choice, and ``make`` puts them together."""

from ladder.init.make import InitResult, init_task
from ladder.init.write import slug

__all__ = ["InitResult", "init_task", "slug"]
