"""The frame loop: GOP structure, per-frame decisions, references, encoder and decoder."""
