"""Frames as the training pack stores them: the codec's 6-channel half-size layout in uint8.

Channels: the four luma phases (row, column) = (0,0), (0,1), (1,0), (1,1), then U, then V. Flips
move the phases as well as the pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.frame import Frame

HFLIP_CHANNELS = [1, 0, 3, 2, 4, 5]  # mirroring columns swaps the column phase
VFLIP_CHANNELS = [2, 3, 0, 1, 4, 5]  # mirroring rows swaps the row phase


def pack_frame(frame: Frame) -> np.ndarray:
    """(6, H/2, W/2) uint8 of a frame, cropped to even dimensions."""
    h, w = frame.height // 2 * 2, frame.width // 2 * 2
    y = frame.y[:h, :w]
    phases = [y[0::2, 0::2], y[0::2, 1::2], y[1::2, 0::2], y[1::2, 1::2]]
    return np.stack(phases + [frame.u[: h // 2, : w // 2], frame.v[: h // 2, : w // 2]])


def half_size(packed: np.ndarray) -> np.ndarray:
    """Downscale a packed picture by two in each direction (box filter), for large photos."""
    t = torch.from_numpy(packed).float().unsqueeze(0)
    y = F.pixel_shuffle(t[:, :4], 2)
    h, w = y.shape[2] // 4 * 4, y.shape[3] // 4 * 4
    y = F.avg_pool2d(y[..., :h, :w], 2)
    uv = F.avg_pool2d(t[:, 4:, : h // 2, : w // 2], 2)
    out = torch.cat([F.pixel_unshuffle(y, 2), uv], dim=1)[0]
    return torch.round(out).clamp(0, 255).to(torch.uint8).numpy()


def to_planes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 6, h, w) -> luma (..., 1, 2h, 2w) and chroma (..., 2, h, w)."""
    return F.pixel_shuffle(x[..., :4, :, :], 2), x[..., 4:, :, :]


def from_planes(y: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    return torch.cat([F.pixel_unshuffle(y, 2), uv], dim=-3)


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x[..., HFLIP_CHANNELS, :, :].flip(-1)


def vflip(x: torch.Tensor) -> torch.Tensor:
    return x[..., VFLIP_CHANNELS, :, :].flip(-2)
