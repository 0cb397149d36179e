"""The regression gate: a record against a committed baseline, pass | regression | inconclusive."""
