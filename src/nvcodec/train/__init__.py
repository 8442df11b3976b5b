"""Training: the pack builder, samplers, stages, the trainer, evaluation and the release of weights."""
