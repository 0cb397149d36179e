"""The sections of a run's report, each a function of the run record returning a ``Section``."""
