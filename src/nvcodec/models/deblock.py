"""The in-loop deblocking filter: smooths block edges where the step, not the picture, made them.

The reconstruction arrives in integer 1/64 levels (the exact prediction plus the synthesised
residual rounded to 1/64, bitstream_spec.md 7.6), clamped to 0..255 << 6. The filter works on those
integers and only its result is rounded to the reference's levels, by integer rules: (F + 32) >> 6
for 8-bit levels, and for 10-bit ones (version 2.14) the nearest quarter level that rounds to the
same 8-bit level (rounded_levels). So every device and float precision that agrees on the 1/64
levels agrees on the result (a float rounding of (prediction + residual) * 255 would meet exact
ties wherever the residual is zero and the prediction ends in half a level, and break them by the
last bit of each machine's arithmetic), and the filter sees the reconstruction before its rounding,
which is worth about 0.5% of the rate. Across every edge of the 8x8 luma and 4x4 chroma transform
blocks (and so of the 16x16 motion blocks), with p1 p0 | q0 q1 the two values on each side:

    filtered where |p0 - q0| < ALPHA[qp], |p1 - p0| < BETA[qp] and |q1 - q0| < BETA[qp]:
    delta = clip((4 (q0 - p0) + (p1 - q1) + 4) >> 3, -TC[qp], TC[qp]);  p0 += delta;  q0 -= delta

with, in 1/64 levels, ALPHA = 64 ceil(1.6 (2^(qp/6) - 1)), BETA = 64 max(0, qp - 7) and
TC = floor(64 * 0.08 * 2^(qp/6) + 1/2). They grow with the quantiser step as H.264's do (set by
measurement on Kodak and Foreman: +0.25 dB at qp 27, +0.5 dB at qp 47 on intra frames).
Vertical edges first, then horizontal ones.

A P frame of version 2.9 and later leaves some edges alone (H.264's boundary strength 0): those
between two 8x8 blocks that both have no coded level, neither flat, with the same vector. Such an
edge was copied from the reference, already filtered; filtering it again on every frame only blurs
it further. BD-rate against filtering every edge (qps 22-42): Foreman 96 frames -2.5%, Cactus 24
frames -2.2%, people 9 frames about -2.4%; but Cockatoo 24 frames +1.3%, whose soft picture gains
from the repeated smoothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nvcodec.models.layout import FINE_BITS, from_planes, grid_scale, round_shift, to_planes

QPS = 64
ONE = 1 << FINE_BITS
ALPHA = tuple(ONE * math.ceil(1.6 * (2 ** (qp / 6) - 1)) for qp in range(QPS))
BETA = tuple(ONE * max(0, qp - 7) for qp in range(QPS))
TC = tuple(math.floor(ONE * 0.08 * 2 ** (qp / 6) + 0.5) for qp in range(QPS))


@dataclass(frozen=True)
class Edges:
    """The block edges a P frame filters, one flag per pair of neighbouring 1/8 positions (8x8
    luma blocks, 4x4 chroma blocks): `vertical[r, c]` between (r, c) and (r, c + 1), `horizontal[r, c]`
    between (r, c) and (r + 1, c)."""

    vertical: torch.Tensor  # (hp, wp - 1) bool
    horizontal: torch.Tensor  # (hp - 1, wp) bool

    @classmethod
    def between(cls, coded: torch.Tensor, vectors: torch.Tensor) -> Edges:
        """The edges beside a block that is `coded` ((hp, wp) bool: a non-zero level, or flat) or
        between two blocks whose vectors ((hp, wp, 2)) differ."""
        moved_across = (vectors[:, 1:] != vectors[:, :-1]).any(dim=-1)
        moved_down = (vectors[1:] != vectors[:-1]).any(dim=-1)
        return cls(
            coded[:, 1:] | coded[:, :-1] | moved_across,
            coded[1:] | coded[:-1] | moved_down,
        )

    def to(self, device: torch.device) -> Edges:
        return Edges(self.vertical.to(device), self.horizontal.to(device))


def _filter_columns(plane: torch.Tensor, spacing: int, qp: int, chosen: torch.Tensor | None) -> torch.Tensor:
    """Filter the vertical edges at columns spacing, 2 spacing, ... of an (H, W) int32 plane; only
    the `chosen` ones ((H / spacing, W / spacing - 1) bool) when given."""
    w = plane.shape[1]
    edges = torch.arange(spacing, w - 1, spacing, device=plane.device)
    if not edges.numel():
        return plane
    p1, p0, q0, q1 = (plane[:, edges + o] for o in (-2, -1, 0, 1))
    active = ((p0 - q0).abs() < ALPHA[qp]) & ((p1 - p0).abs() < BETA[qp]) & ((q1 - q0).abs() < BETA[qp])
    if chosen is not None:
        active &= chosen.repeat_interleave(spacing, dim=0)
    delta = ((4 * (q0 - p0) + (p1 - q1) + 4) >> 3).clamp(-TC[qp], TC[qp]) * active
    out = plane.clone()
    out[:, edges - 1] = p0 + delta
    out[:, edges] = q0 - delta
    return out


def _filter_plane(plane: torch.Tensor, spacing: int, qp: int, edges: Edges | None) -> torch.Tensor:
    vertical, horizontal = (None, None) if edges is None else (edges.vertical, edges.horizontal.t())
    return _filter_columns(_filter_columns(plane, spacing, qp, vertical).t(), spacing, qp, horizontal).t()


def deblock(
    fine: torch.Tensor, qp: int, dtype: torch.dtype, edges: Edges | None = None, bits: int = 8
) -> torch.Tensor:
    """The (1, 6, h, w) frame tensor of `dtype` on the grid of `bits`-bit levels (8, or 10 from
    version 2.14) from int32 1/64 levels, with its block edges filtered: all of them, or those
    `edges` chose."""
    fine = fine.clamp(0, 255 * ONE)
    edges = None if edges is None else edges.to(fine.device)
    planes = [_filter_plane(p[0], n, qp, edges)[None] for p, n in zip(to_planes(fine), (8, 4, 4))]
    levels = rounded_levels(from_planes(planes), bits)
    return (levels.float() / grid_scale(bits)).to(dtype)


def rounded_levels(filtered: torch.Tensor, bits: int) -> torch.Tensor:
    """Filtered 1/64 levels F as `bits`-bit levels: 8-bit ones L = (F + 32) >> 6; finer ones the
    nearest, held among those whose 8-bit rounding (half up) is L, so that the 8-bit picture of a
    deep reconstruction is the 8-bit reconstruction itself (10 bits: (F + 8) >> 4 within
    4 L - 2 .. 4 L + 1; only 1/64 remainders 24..31 move, one quarter down)."""
    eight = round_shift(filtered, FINE_BITS).clamp(0, 255)
    extra = bits - 8
    if not extra:
        return eight
    nearest = round_shift(filtered, FINE_BITS - extra)
    quarter = 1 << extra  # finer levels per 8-bit level
    lowest, highest = quarter * eight - quarter // 2, quarter * eight + quarter // 2 - 1
    return torch.minimum(torch.maximum(nearest, lowest), highest).clamp(0, grid_scale(bits))
