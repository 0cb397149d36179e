"""Per-example metrics and the statistics over them. Imports no model code."""
