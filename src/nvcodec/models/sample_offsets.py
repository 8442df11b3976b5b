"""Sample offsets (version 2.17): the in-loop filter after deblocking. Each sample of a plane is
classed by its two neighbours along one direction and moved by its class's offset, as HEVC's SAO
edge offset does, with one set of parameters per frame and plane (bitstream_spec.md 5.4.6, 7.6.1):

    class = sign(c - a) + sign(c - b)    a, b: the neighbours along the direction
    -2 local minimum, -1 concave: raised by m0, m1;  +1 convex, +2 local maximum: lowered by m2, m3
    0, and the samples on the plane's border: unchanged

on the integer levels of the reconstruction (bits-bit levels), the result clamped to 0..top
level. A P frame moves only the samples of its coded 8x8 blocks (4x4 in chroma; inter.coded_blocks):
a block its motion copied holds samples the reference's offsets already moved, and offsetting
them again on every frame flattens them further (Foreman's 96 frames, qps 32/37/42, offsets in
every block: the last 16 frames 0.06/0.15/0.07 dB below 2.16's; in the coded blocks alone
0.01/0.03/0.06 dB above, the whole sequence in 1.0/1.0/0.3% fewer bits than with offsets in every
block). The signs are implied, so the filter only smooths; the encoder chooses the magnitudes
from the source. The parameters lead the frame's latent substream (the last of its record), before
anything the model codes there, so the model's coding is left as it is: the encoder codes them
in front of the finished substream and the decoder reads them off it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.metrics import PLANE_WEIGHTS
from nvcodec.models.layout import from_planes, grid_levels, grid_scale, round_shift, to_planes

DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))  # (dy, dx): horizontal, vertical, two diagonals
CLASSES = (-2, -1, 1, 2)  # the classes with an offset, in the order of their magnitudes
SIGNS = (1, 1, -1, -1)  # of their offsets: minima and concave samples rise
PREFIX_LIMIT = 3  # a magnitude's Exp-Golomb prefix has at most this many ones
MAX_MAGNITUDE = (2 << (PREFIX_LIMIT + 1)) - 3  # 29 levels, the largest the code reaches
HALF = 128  # every parameter flag is coded at probability 1/2
# A Y, U, V sample's share of the frame's D per pixel (layout.weighted_mse): 0.75, 0.5, 0.5.
SAMPLE_WEIGHTS = tuple(
    w * area / sum(PLANE_WEIGHTS)
    for w, area in zip(PLANE_WEIGHTS, (1, 4, 4))  # chroma: 1/4 the samples
)
# The encoder's lambda for the offsets, a fraction of the frame's: a reference's gain is also
# that of the frames that copy it. BD-rate against 2.16 on Foreman's first 24 frames, qps 22-42,
# for 1, 0.3, 0.1, 0.03 and 0 (every gain taken): -2.48, -2.48, -3.92, -3.87, -3.71% (with the
# gain on the 10-bit levels, which at qp 0 took Foreman's 96 frames from 67.7 to 64.7 dB).
LAMBDA_SCALE = 0.1


@dataclass(frozen=True)
class PlaneOffsets:
    """One plane's parameters: the direction's index and the four classes' magnitudes."""

    direction: int
    magnitudes: tuple[int, int, int, int]

    def table(self, device: torch.device) -> torch.Tensor:
        """The offsets of classes -2..2, for indexing by class + 2."""
        signed = [sign * m for sign, m in zip(SIGNS, self.magnitudes)]
        return torch.tensor(signed[:2] + [0] + signed[2:], dtype=torch.int32, device=device)

    @property
    def bits(self) -> int:
        """The flags that code these parameters (write)."""
        return 1 + 2 + sum(len(_magnitude_flags(m)) for m in self.magnitudes)


PlaneList = list[PlaneOffsets | None]  # Y, U, V; None: the plane is left as it is


def parameter_bits(planes: PlaneList) -> int:
    """The flags write() codes for the planes' parameters (an unset plane: its one flag)."""
    return sum(1 if p is None else p.bits for p in planes)


def classes(levels: torch.Tensor, direction: int) -> torch.Tensor:
    """(H, W) class of each sample of an (H, W) int32 plane: sign(c - a) + sign(c - b), with 0 on
    the border, where a neighbour is missing."""
    dy, dx = DIRECTIONS[direction]
    h, w = levels.shape
    out = torch.zeros_like(levels)
    if h < 3 or w < 3:
        return out
    c = levels[1:-1, 1:-1]
    a = levels[1 - dy : h - 1 - dy, 1 - dx : w - 1 - dx]
    b = levels[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
    out[1:-1, 1:-1] = torch.sign(c - a) + torch.sign(c - b)
    return out


def offset_plane(
    levels: torch.Tensor, params: PlaneOffsets | None, top: int, where: torch.Tensor | None = None
) -> torch.Tensor:
    """An (H, W) int32 plane with its samples (those `where` is true, when given) moved by their
    classes' offsets, clamped to 0..top."""
    if params is None:
        return levels
    moved = (levels + params.table(levels.device)[classes(levels, params.direction) + 2]).clamp(0, top)
    return moved if where is None else torch.where(where, moved, levels)


def plane_masks(coded: torch.Tensor | None, device: torch.device) -> list[torch.Tensor | None]:
    """The Y, U, V samples of the (hp, wp) coded blocks of a P frame (8x8 in luma, 4x4 in
    chroma); None for each plane of an intra frame (coded None), whose samples all move."""
    if coded is None:
        return [None, None, None]
    return [coded.repeat_interleave(n, 0).repeat_interleave(n, 1).to(device) for n in (8, 4, 4)]


def apply(
    x_hat: torch.Tensor, planes: PlaneList | None, bits: int, coded: torch.Tensor | None
) -> torch.Tensor:
    """The (1, 6, h, w) reconstruction on the grid of `bits`-bit levels with each plane's offsets
    (None: the stream has none) in the `coded` blocks of a P frame (plane_masks)."""
    if planes is None or all(p is None for p in planes):
        return x_hat
    top = grid_scale(bits)
    levels = [grid_levels(p, bits)[0] for p in to_planes(x_hat)]
    masks = plane_masks(coded, x_hat.device)
    moved = [offset_plane(plane, p, top, m)[None] for plane, p, m in zip(levels, planes, masks)]
    return (from_planes(moved).float() / top).to(x_hat.dtype)


def choose(
    x: torch.Tensor, x_hat: torch.Tensor, bits: int, lam: float, coded: torch.Tensor | None
) -> PlaneList:
    """The encoder's parameters for each plane of reconstruction x_hat of frame x (not
    normative): `lam` is what a bit is worth in the frame's decisions, in squared error on [0, 1]
    per pixel of the frame; the offsets' own is LAMBDA_SCALE of it; `coded`: as apply's."""
    chosen: PlaneList = []
    masks = plane_masks(coded, x_hat.device)
    for source, recon, weight, where in zip(to_planes(x.float()), to_planes(x_hat), SAMPLE_WEIGHTS, masks):
        shown_lam = LAMBDA_SCALE * lam * 255**2 / weight
        source_levels = torch.round(source[0] * 255).to(torch.int32)
        levels = grid_levels(recon, bits)[0]
        chosen.append(_choose_plane(source_levels, levels, bits, shown_lam, where))
    return chosen


def _choose_plane(
    source: torch.Tensor, levels: torch.Tensor, bits: int, lam: float, where: torch.Tensor | None
) -> PlaneOffsets | None:
    """For each direction, each class's mean error rounded, held to its sign and range; of those
    the offsets whose drop in the squared error of the shown (8-bit) picture less `lam` times
    their bits over an unset flag is largest, when above 0; only the samples `where` is true, when
    given. (On the reference's own finer levels the offsets of near-lossless pictures would gain
    where the shown picture loses.)"""
    extra = bits - 8
    error = source.double() * (1 << extra) - levels

    def shown_error(plane: torch.Tensor) -> float:
        return float(((round_shift(plane, extra) - source).double() ** 2).sum())

    best, chosen, before = 0.0, None, shown_error(levels)
    for direction in range(len(DIRECTIONS)):
        cls = classes(levels, direction)
        magnitudes = []
        for k, sign in zip(CLASSES, SIGNS):
            inside = cls == k if where is None else (cls == k) & where
            count, total = int(inside.sum()), float(error[inside].sum()) * sign
            magnitudes.append(int(np.clip(np.rint(total / count), 0, MAX_MAGNITUDE)) if count else 0)
        params = PlaneOffsets(direction, tuple(magnitudes))
        gain = before - shown_error(offset_plane(levels, params, grid_scale(bits), where))
        net = gain - lam * (params.bits - 1)
        if net > best:
            best, chosen = net, params
    return chosen


def _magnitude_flags(m: int) -> list[int]:
    """Exp-Golomb of order 1: n ones (a zero after them below PREFIX_LIMIT), then m - (2^(n+1) - 2)
    in n + 1 bits, most significant first."""
    n = 0
    while m >= (2 << (n + 1)) - 2:
        n += 1
    prefix = [1] * n + ([0] if n < PREFIX_LIMIT else [])
    rest = m - ((2 << n) - 2)
    return prefix + [(rest >> i) & 1 for i in reversed(range(n + 1))]


def write(planes: PlaneList, latent: bytes, tables: ProbabilityTables) -> bytes:
    """The latent substream `latent` led by each plane's parameters: a flag, then when set the
    direction (2 bits) and the four magnitudes, every flag at probability 1/2."""
    flags: list[int] = []
    for params in planes:
        flags.append(int(params is not None))
        if params is not None:
            flags += [params.direction >> 1, params.direction & 1]
            for m in params.magnitudes:
                flags += _magnitude_flags(m)
    encoder = SymbolEncoder(tables)
    encoder.add_flags(np.array(flags), np.full(len(flags), HALF))
    return encoder.finish(before=latent)


def _flag(decoder: SymbolDecoder) -> int:
    return int(decoder.read_flags(np.full(1, HALF))[0])


def _bits_value(decoder: SymbolDecoder, count: int) -> int:
    value = 0
    for _ in range(count):
        value = 2 * value + _flag(decoder)
    return value


def _read_magnitude(decoder: SymbolDecoder) -> int:
    n = 0
    while n < PREFIX_LIMIT and _flag(decoder):
        n += 1
    return (2 << n) - 2 + _bits_value(decoder, n + 1)


def read(substream: bytes, tables: ProbabilityTables) -> tuple[PlaneList, bytes]:
    """The parameters write() put in front of a latent substream, and the latent substream."""
    decoder = SymbolDecoder(tables, substream)
    planes: PlaneList = []
    for _ in range(3):  # Y, U, V
        if not _flag(decoder):
            planes.append(None)
            continue
        direction = _bits_value(decoder, 2)
        planes.append(PlaneOffsets(direction, tuple(_read_magnitude(decoder) for _ in CLASSES)))
    return planes, decoder.rest()
