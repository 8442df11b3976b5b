"""Resumable training state: one file, replaced atomically, so a run stopped at any moment resumes."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import torch

from nvcodec.outputs import write_file


def rng_state(cuda: bool = False) -> dict:
    """Every random generator a training step draws from (CUDA's when it trains on CUDA)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if cuda:
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` (tensors, optimiser state, counters) so that readers never see a part."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_file(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict | None:
    """The saved state, or None when the run has none yet."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
