"""Pure decisions: cost per call and to adapt, the climbing policy, the diagnosis of a gap."""
