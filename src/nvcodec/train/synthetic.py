"""Synthetic camera motion over a still photo: smooth pan, zoom and rotation, with an occasional
independently moving object, so the inter stages see many more sequences than the real clips."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.train.packed import from_planes, to_planes

MAX_SPEED = 4.0  # full-size pixels per frame
MAX_ZOOM = 0.015  # relative scale change per frame
MAX_TURN = 0.01  # radians per frame
OBJECT_CHANCE = 0.4


def _grid(size: int, src_h: int, src_w: int, centre, scale: float, angle: float, unit: float) -> torch.Tensor:
    """Sampling grid (1, size, size, 2) of an output square in a source plane; `unit` = pixel size."""
    r = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) * unit
    v, u = torch.meshgrid(r, r, indexing="ij")
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    x = centre[0] + c * u - s * v
    y = centre[1] + s * u + c * v
    src_x, src_y = x / unit, y / unit  # in the plane's own pixels
    return torch.stack([(2 * src_x + 1) / src_w - 1, (2 * src_y + 1) / src_h - 1], dim=-1)[None]


def _sample(plane: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(plane[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)[
        0
    ]


def camera_sequence(
    photo: torch.Tensor, frames: int, crop: int, rng: np.random.Generator, sprite: torch.Tensor | None = None
) -> torch.Tensor:
    """(frames, 6, crop/2, crop/2) in [0, 1] on the 8-bit grid, from a packed photo (6, H, W) in [0, 1]."""
    y, uv = to_planes(photo)
    src_h, src_w = y.shape[-2:]
    speed = rng.uniform(-MAX_SPEED, MAX_SPEED, size=2)
    zoom, turn = rng.uniform(-MAX_ZOOM, MAX_ZOOM), rng.uniform(-MAX_TURN, MAX_TURN)
    reach = crop / 2 + MAX_SPEED * frames
    start = [rng.uniform(min(reach, n / 2), max(n - reach, n / 2)) for n in (src_w, src_h)]
    out = []
    for t in range(frames):
        centre = (start[0] + speed[0] * t, start[1] + speed[1] * t)
        scale, angle = (1 + zoom) ** t, turn * t
        luma = _sample(y, _grid(crop, src_h, src_w, centre, scale, angle, 1.0))
        chroma = _sample(uv, _grid(crop // 2, src_h // 2, src_w // 2, centre, scale, angle, 2.0))
        out.append(from_planes(luma, chroma))
    seq = torch.stack(out)
    if sprite is not None and rng.random() < OBJECT_CHANCE:
        seq = _add_object(seq, sprite, rng)
    return torch.round(seq.clamp(0, 1) * 255) / 255


def _add_object(seq: torch.Tensor, sprite: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Paste a patch of `sprite` (packed, 6 x h x w) moving on its own across the sequence."""
    frames, _, h, w = seq.shape
    size = int(rng.integers(max(2, h // 6), max(3, h // 3)))
    top, left = rng.integers(0, sprite.shape[1] - size + 1), rng.integers(0, sprite.shape[2] - size + 1)
    patch = sprite[:, top : top + size, left : left + size]
    pos = rng.uniform(0, [h - size, w - size])
    velocity = rng.uniform(-MAX_SPEED, MAX_SPEED, size=2) / 2  # in packed (half-size) pixels
    seq = seq.clone()
    for t in range(frames):
        py, px = np.clip(np.round(pos + velocity * t), 0, [h - size, w - size]).astype(int)
        seq[t, :, py : py + size, px : px + size] = patch
    return seq
