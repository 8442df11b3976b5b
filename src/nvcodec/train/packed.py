"""Frames as the training pack stores them: the codec's 6-channel half-size layout in uint8.

Channels: the four luma phases (row, column) = (0,0), (0,1), (1,0), (1,1), then U, then V.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.frame import Frame


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


def unpack_frame(packed: np.ndarray) -> Frame:
    """The Frame of a pack's (6, h, w) uint8 picture."""
    y, uv = to_planes(torch.from_numpy(packed))
    return Frame(y[0].numpy().copy(), uv[0].numpy().copy(), uv[1].numpy().copy())
