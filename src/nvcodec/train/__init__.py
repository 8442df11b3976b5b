"""Training: the pack builder, the entropy-table fit and the release of weights."""
