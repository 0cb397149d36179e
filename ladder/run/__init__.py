"""Running an assessment: the one loop, the eval step (the only reader of test), caches, locks."""
