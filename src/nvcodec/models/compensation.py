"""Motion compensation: each block reads the reference at its vector, interpolated.

A vector (vx, vy) is in quarter luma pixels; block b of 16x16 luma pixels (8x8 chroma) is
predicted by reading the reference at (x + vx/4, y + vy/4) in luma and (x + vx/8, y + vy/8) in
chroma. Fractional positions are interpolated with separable filters, horizontally then
vertically, on the reference's levels in 32-bit integers, then rounded to 1/64 of a level:
pred = clip((sum + 32) >> 6, 0, 255 * 64) on a reference of 8-bit levels (HEVC's 14-bit
intermediate precision), (sum + 128) >> 8 on one of 10-bit levels (quarter levels, version 2.14),
and pred / (255 * 64) is the prediction. A P frame uses one of two filter sets (bitstream_spec.md 7.9):
HEVC's (8 taps, quarter pel for luma; 4 taps, eighth pel for chroma), or, on frames flagged for
them, the six-tap set: H.264's half-pel filter (1, -5, 20, 20, -5, 1) / 32, quarter positions the
mean of that and the nearer whole pixel, bilinear chroma (H.264's filters, but for its four diagonal
quarter positions). On the benchmark's H.264-sourced clips the six taps predict better at high
quality and the sharper eight taps at low rates (bitstream_spec.md 4.3).
Integer arithmetic makes the prediction the same on every device and in every float precision,
so a reference that agrees gives a prediction that agrees (floating-point sums would differ in
the last bit, and each difference would grow through the frames that follow). Outside the
picture the border is replicated. Every block is filtered from its own patch of the reference,
so a whole vector field costs one gather and two small weighted sums. The encoder's motion search,
which predicts the luma of hundreds of fields per frame, instead reads every luma phase of the
reference filtered once (`LumaPhases`): the same integers, one gather per field.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nvcodec.models.layout import FINE_BITS, FINE_PEAK, from_fine, grid_levels, round_shift, to_fine

BLOCK = 16  # luma pixels per side of a motion block
LARGE_BLOCK = 32  # the side on P frames flagged for large blocks (bitstream_spec.md, 4.3)


@dataclass(frozen=True)
class FilterSet:
    """Interpolation filters: taps summing to 64 for each luma quarter phase (offsets -3..4) and
    each chroma eighth phase (offsets -1..2)."""

    name: str
    luma: tuple[tuple[int, ...], ...]
    chroma: tuple[tuple[int, ...], ...]


HEVC_FILTERS = FilterSet(
    "eight-tap",
    luma=(
        (0, 0, 0, 64, 0, 0, 0, 0),
        (-1, 4, -10, 58, 17, -5, 1, 0),
        (-1, 4, -11, 40, 40, -11, 4, -1),
        (0, 1, -5, 17, 58, -10, 4, -1),
    ),
    chroma=(
        (0, 64, 0, 0),
        (-2, 58, 10, -2),
        (-4, 54, 16, -2),
        (-6, 46, 28, -4),
        (-4, 36, 36, -4),
        (-4, 28, 46, -6),
        (-2, 16, 54, -4),
        (-2, 10, 58, -2),
    ),
)
# H.264's half-pel filter (1, -5, 20, 20, -5, 1) / 32 at 1/64; a quarter phase is its mean with the
# nearer whole pixel. Chroma is bilinear in eighths, as H.264's.
SIX_TAP_FILTERS = FilterSet(
    "six-tap",
    luma=(
        (0, 0, 0, 64, 0, 0, 0, 0),
        (0, 1, -5, 52, 20, -5, 1, 0),
        (0, 2, -10, 40, 40, -10, 2, 0),
        (0, 1, -5, 20, 52, -5, 1, 0),
    ),
    chroma=tuple((0, 64 - 8 * d, 8 * d, 0) for d in range(8)),
)


SHIFT = 12 - FINE_BITS  # two passes of taps summing to 64 make 2^12 times the level


def _weighted(patches: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_k patches[..., k] * weights[..., k] over the last axis, one tap at a time (integers)."""
    out = patches[..., 0] * weights[..., 0, None, None]
    for k in range(1, patches.shape[-1]):
        out += patches[..., k] * weights[..., k, None, None]
    return out


def predict_plane(
    plane: torch.Tensor, vectors: torch.Tensor, size: int, filters: torch.Tensor, extra_bits: int = 0
) -> torch.Tensor:
    """(H, W) int32 prediction, in 1/64 levels, of an int32 plane of (8 + extra_bits)-bit levels
    from (Hb, Wb, 2) integer vectors in 1/len(filters) pixels, blocks of size x size; `filters`
    (phases, taps) sum to 64."""
    phases, taps = filters.shape
    before = taps // 2 - 1
    h, w = plane.shape
    hb, wb = vectors.shape[:2]
    whole, frac = _split(vectors, phases)
    if not frac.any():  # whole pixels: the filters' centre tap is exactly 64, so read directly
        taps, before = 1, 0
    span = torch.arange(size + taps - 1, device=plane.device) - before
    rows, cols = _reads(whole, size, span, h, 0), _reads(whole, size, span, w, 1)  # (Hb, Wb, S)
    patch = plane[rows[..., :, None], cols[..., None, :]]  # (Hb, Wb, S, S)
    if taps == 1:
        return (patch << (FINE_BITS - extra_bits)).permute(0, 2, 1, 3).reshape(hb * size, wb * size)[:h, :w]
    wx, wy = filters[frac[..., 0]], filters[frac[..., 1]]  # (Hb, Wb, taps)
    across = _weighted(patch.unfold(3, taps, 1), wx)  # (Hb, Wb, S, size)
    down = _weighted(across.unfold(2, taps, 1), wy)  # (Hb, Wb, size, size)
    return _rounded(down, extra_bits).permute(0, 2, 1, 3).reshape(hb * size, wb * size)[:h, :w]


def _split(vectors: torch.Tensor, phases: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors in 1/phases pixels as whole pixels (floor) and phases 0..phases-1."""
    whole = torch.div(vectors, phases, rounding_mode="floor")
    return whole, vectors - whole * phases


def _reads(whole: torch.Tensor, size: int, span: torch.Tensor, limit: int, axis: int) -> torch.Tensor:
    """(Hb, Wb, S) plane coordinates that each block reads along `axis` (0: rows, 1: columns): its
    origin plus its whole-pixel move plus `span`, clamped to 0..limit-1 (the border replicated)."""
    origin = torch.arange(whole.shape[axis], device=whole.device) * size
    origin = origin.view(-1, 1) if axis == 0 else origin.view(1, -1)
    return (origin[..., None] + whole[..., 1 - axis, None] + span).clamp(0, limit - 1)


def _rounded(sums: torch.Tensor, extra_bits: int) -> torch.Tensor:
    """Two passes of taps over levels of 8 + extra_bits bits (2^(12 + extra_bits) times the
    8-bit level) to 1/64 levels, rounded and clamped."""
    return round_shift(sums, SHIFT + extra_bits).clamp(0, FINE_PEAK)


# The search reads pre-filtered luma phases up to this many pixels (4K UHD: 16 phases of int16,
# about 270 MB); larger pictures filter each field as the decoder does.
PHASE_PIXELS = 3840 * 2176


class LumaPhases:
    """A luma plane filtered once at each of its (phases x phases) fractional positions, in int16
    1/64 levels (the predictions are 0..255 * 64), with a margin beyond each border as wide as the
    filters reach (further out, every tap reads the border): reading it at a block's vector gives
    exactly what predict_plane computes for that block."""

    def __init__(self, plane: torch.Tensor, filters: torch.Tensor, extra_bits: int = 0) -> None:
        phases, taps = filters.shape
        h, w = plane.shape
        before = taps // 2 - 1
        self.margin = max(before, taps - 1 - before)
        first, end = -self.margin - before, self.margin + taps - 1 - before  # the rows and columns read
        rows = torch.arange(first, h + end, device=plane.device).clamp(0, h - 1)
        cols = torch.arange(first, w + end, device=plane.device).clamp(0, w - 1)
        source = plane[rows][:, cols]
        extent = (h + 2 * self.margin, w + 2 * self.margin)
        across = [_taps_along(source, filters[f], 1, extent[1]) for f in range(phases)]
        self.planes = torch.empty(phases * phases, *extent, dtype=torch.int16, device=plane.device)
        for fy in range(phases):
            for fx, a in enumerate(across):
                self.planes[fy * phases + fx] = _rounded(
                    _taps_along(a, filters[fy], 0, extent[0]), extra_bits
                )
        self.phases = phases

    def blocks(self, vectors: torch.Tensor, size: int) -> torch.Tensor:
        """(Hb, Wb, size, size) int16 prediction of (Hb, Wb, 2) vectors, block by block: inside
        the picture, predict_plane's; beyond its edges, the border's prediction. Each block row is
        one read of `size` consecutive samples; a block whose columns leave the margin reads its
        columns one by one (replicating the border, as predict_plane does)."""
        _, hp, wp = self.planes.shape
        whole, frac = _split(vectors, self.phases)
        span = torch.arange(size, device=vectors.device) + self.margin
        rows = _reads(whole, size, span, hp, 0)  # (Hb, Wb, S)
        phase = frac[..., 1] * self.phases + frac[..., 0]  # each block's phase plane
        first = torch.arange(vectors.shape[1], device=vectors.device) * size + whole[..., 0] + self.margin
        inside = (first >= 0) & (first <= wp - size)
        windows = self.planes.unfold(2, size, 1)  # (phases^2, Hp, Wp - S + 1, S), a view
        pred = windows[phase[..., None], rows, first.clamp(0, wp - size)[..., None]]
        if not inside.all():
            cols = _reads(whole, size, span, wp, 1)[~inside]
            out = ~inside
            pred[out] = self.planes[phase[out][:, None, None], rows[out][:, :, None], cols[:, None, :]]
        return pred


def to_blocks(plane: torch.Tensor, size: int) -> torch.Tensor:
    """(Hb, Wb, size, size) blocks of an (H, W) plane, zeros beyond its edges (a view where the
    plane is a multiple of the block)."""
    h, w = plane.shape
    hb, wb = -(-h // size), -(-w // size)
    padded = F.pad(plane, (0, wb * size - w, 0, hb * size - h))
    return padded.view(hb, size, wb, size).permute(0, 2, 1, 3)


def _taps_along(x: torch.Tensor, taps: torch.Tensor, axis: int, length: int) -> torch.Tensor:
    """sum_k x[k + i] * taps[k] for i < length along `axis` (int32, zero taps skipped)."""
    shape = [length if a == axis else n for a, n in enumerate(x.shape)]
    out = torch.zeros(shape, dtype=torch.int32, device=x.device)
    for k, tap in enumerate(taps.tolist()):
        if tap:
            out += x.narrow(axis, k, length) * tap
    return out


def _bank(filters: tuple[tuple[int, ...], ...], device: torch.device) -> torch.Tensor:
    return torch.tensor(filters, dtype=torch.int32, device=device)


@dataclass
class Prediction:
    """A motion-compensated prediction: exact 1/64 levels, and the same values on the [0, 1] scale
    in the frame's dtype for the networks."""

    fine: torch.Tensor  # (1, 6, h, w) int32
    values: torch.Tensor

    @classmethod
    def exact(cls, fine: torch.Tensor, dtype: torch.dtype) -> Prediction:
        """A prediction made in integer 1/64 levels."""
        return cls(fine, from_fine(fine, dtype))

    @classmethod
    def of(cls, values: torch.Tensor) -> Prediction:
        """A prediction made by a float network (the in-loop filter): its values, rounded."""
        return cls(to_fine(values), values)

    def refined(self, refine: Callable[[torch.Tensor], torch.Tensor]) -> Prediction:
        return Prediction.of(refine(self.values))


class InterpolatedFrame:
    """A decoded reference frame tensor (1, 6, h, w) on the grid of `bits`-bit levels (8, or 10
    from version 2.14), ready to be read by block vectors through one filter set (HEVC's eight
    taps unless read `through` another)."""

    def __init__(self, frame: torch.Tensor, bits: int = 8) -> None:
        self.frame = frame
        self.extra_bits = bits - 8
        levels = grid_levels(frame, bits)
        self.luma = F.pixel_shuffle(levels[:, :4], 2)[0, 0]
        self.chroma = levels[0, 4:]
        self._phases: dict[FilterSet, LumaPhases] = {}  # shared with the `through` copies
        self._use(HEVC_FILTERS)

    def _use(self, filters: FilterSet) -> None:
        self.filters = filters
        self.luma_filters = _bank(filters.luma, self.frame.device)
        self.chroma_filters = _bank(filters.chroma, self.frame.device)

    def through(self, filters: FilterSet) -> InterpolatedFrame:
        """The same reference read through `filters` (the planes are shared, not copied)."""
        if filters == self.filters:
            return self
        other = copy.copy(self)
        other._use(filters)
        return other

    def luma_blocks(self, vectors: torch.Tensor, block: int) -> torch.Tensor:
        """(Hb, Wb, block, block) full-resolution luma prediction in 1/64 levels, block by block:
        what the search evaluates, read from the filtered phases where the picture allows them.
        Samples beyond the picture's edges are not the decoder's (a search leaves them out)."""
        if self.luma.numel() > PHASE_PIXELS:
            return to_blocks(self._predict(self.luma, vectors, block, self.luma_filters), block)
        if self.filters not in self._phases:
            self._phases[self.filters] = LumaPhases(self.luma, self.luma_filters, self.extra_bits)
        return self._phases[self.filters].blocks(vectors, block)

    def predict(self, vectors: torch.Tensor, block: int) -> Prediction:
        """The prediction of the frame tensor for (Hb, Wb, 2) vectors of block x block luma pixels."""
        y = F.pixel_unshuffle(self._predict(self.luma, vectors, block, self.luma_filters)[None, None], 2)
        uv = [self._predict(c, vectors, block // 2, self.chroma_filters) for c in self.chroma]
        return Prediction.exact(torch.cat([y, torch.stack(uv)[None]], dim=1), self.frame.dtype)

    def _predict(
        self, plane: torch.Tensor, vectors: torch.Tensor, size: int, filters: torch.Tensor
    ) -> torch.Tensor:
        return predict_plane(plane, vectors, size, filters, self.extra_bits)
