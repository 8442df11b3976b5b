"""Motion compensation: each block reads the reference at its vector, interpolated.

A vector (vx, vy) is in quarter luma pixels; block b of 16x16 luma pixels (8x8 chroma) is
predicted by reading the reference at (x + vx/4, y + vy/4) in luma and (x + vx/8, y + vy/8) in
chroma. Fractional positions are interpolated with HEVC's separable filters (8 taps, quarter pel
for luma; 4 taps, eighth pel for chroma), horizontally then vertically, in floating point;
outside the picture the border is replicated. Every block is filtered from its own patch of the
reference, so a whole vector field costs one gather and two small weighted sums.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

BLOCK = 16  # luma pixels per side of a motion block
LUMA_FILTERS = (  # taps at offsets -3..4, sum 64, for phases 0, 1/4, 1/2, 3/4
    (0, 0, 0, 64, 0, 0, 0, 0),
    (-1, 4, -10, 58, 17, -5, 1, 0),
    (-1, 4, -11, 40, 40, -11, 4, -1),
    (0, 1, -5, 17, 58, -10, 4, -1),
)
CHROMA_FILTERS = (  # taps at offsets -1..2, sum 64, for phases 0, 1/8, ..., 7/8
    (0, 64, 0, 0),
    (-2, 58, 10, -2),
    (-4, 54, 16, -2),
    (-6, 46, 28, -4),
    (-4, 36, 36, -4),
    (-4, 28, 46, -6),
    (-2, 16, 54, -4),
    (-2, 10, 58, -2),
)


def predict_plane(
    plane: torch.Tensor, vectors: torch.Tensor, size: int, filters: torch.Tensor
) -> torch.Tensor:
    """(H, W) prediction of a plane from (Hb, Wb, 2) integer vectors in 1/len(filters) pixels,
    blocks of size x size; `filters` (phases, taps) sum to one."""
    phases, taps = filters.shape
    before = taps // 2 - 1
    h, w = plane.shape
    hb, wb = vectors.shape[:2]
    whole = torch.div(vectors, phases, rounding_mode="floor")
    frac = vectors - whole * phases
    if not frac.any():  # whole pixels: the filters' centre tap is exactly one, so read directly
        taps, before = 1, 0
    span = torch.arange(size + taps - 1, device=plane.device)
    top = torch.arange(hb, device=plane.device).view(-1, 1) * size + whole[..., 1] - before
    left = torch.arange(wb, device=plane.device).view(1, -1) * size + whole[..., 0] - before
    rows = (top[..., None] + span).clamp(0, h - 1)  # (Hb, Wb, S)
    cols = (left[..., None] + span).clamp(0, w - 1)
    patch = plane[rows[..., :, None], cols[..., None, :]]  # (Hb, Wb, S, S)
    if taps == 1:
        return patch.permute(0, 2, 1, 3).reshape(hb * size, wb * size)[:h, :w]
    wx, wy = filters[frac[..., 0]], filters[frac[..., 1]]  # (Hb, Wb, taps)
    across = torch.einsum("abstk,abk->abst", patch.unfold(3, taps, 1), wx)  # (Hb, Wb, S, size)
    down = torch.einsum("abstk,abk->abst", across.unfold(2, taps, 1), wy)  # (Hb, Wb, size, size)
    return down.permute(0, 2, 1, 3).reshape(hb * size, wb * size)[:h, :w]


def _bank(filters: tuple[tuple[int, ...], ...], like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(filters, dtype=like.dtype, device=like.device) / 64


class InterpolatedFrame:
    """A decoded reference frame tensor (1, 6, h, w), ready to be read by block vectors."""

    def __init__(self, frame: torch.Tensor) -> None:
        self.frame = frame
        self.luma = F.pixel_shuffle(frame[:, :4], 2)[0, 0]
        self.luma_filters = _bank(LUMA_FILTERS, frame)
        self.chroma_filters = _bank(CHROMA_FILTERS, frame)

    def predict_luma(self, vectors: torch.Tensor) -> torch.Tensor:
        """(H, W) full-resolution luma prediction."""
        return predict_plane(self.luma, vectors, BLOCK, self.luma_filters)

    def predict(self, vectors: torch.Tensor) -> torch.Tensor:
        """The (1, 6, h, w) prediction of the frame tensor for (Hb, Wb, 2) block vectors."""
        y = F.pixel_unshuffle(self.predict_luma(vectors)[None, None], 2)
        uv = [predict_plane(self.frame[0, c], vectors, BLOCK // 2, self.chroma_filters) for c in (4, 5)]
        return torch.cat([y, torch.stack(uv)[None]], dim=1)
