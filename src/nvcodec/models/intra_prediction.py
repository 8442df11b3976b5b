"""Intra prediction: each block's shape from its decoded neighbours (bitstream_spec.md 7.8.1).

One mode per 16x16 luma macroblock (its four 8x8 luma blocks and their 4x4 chroma blocks; from
version 2.16 on, one per 8x8 block, below), each block predicted from the row above it and the column left of it as reconstructed before
deblocking, in integer 1/64 levels (n = 8 for luma, 4 for chroma, s = log2 n):

    0 none        0
    1 planar      ((n-1-c) left[r] + (c+1) top[n-1] + (n-1-r) top[c] + (r+1) left[n-1] + n) >> (s + 1)
    2 vertical    top[c]
    3 horizontal  left[r]

In P frames' intra blocks and in the intra frames of versions 2.8-2.14, less the prediction's
own mean, (sum + n^2 / 2) >> 2s: the prediction gives the block its shape, while its DC stays
coded as the levels give it (in intra frames, MED-predicted from the neighbours' DC levels). From
version 2.15 on ("pixel DC"), an intra frame's predictions keep their means and mode 0 is DC,

    0 dc          (sum(top) + sum(left) + n) >> (s + 1)

so that each block's mean is predicted from its neighbours' pixels, as in H.264, and its DC
levels are coded as they are: on the first frames of the development clips, 4-15% fewer bits than
the MED of the levels at equal PSNR (from version 2.19 on, P frames' intra blocks may take these
four predictions too, as their modes 4-7: models.intra_blocks). A missing row above (the first
row of blocks) takes the value of left[0]; a missing column (the first column) takes top[0]; with
neither, both are 128 levels.
From version 2.16 on ("block modes"), an intra frame gives each 8x8 block (and its two 4x4
chroma blocks) its own mode among eight: the four above, with their means, and four directions
along the neighbours filtered by [1 2 1] (directional):

    4 down-right       F[n + c - r]
    5 vertical-right   (F[n + c - (r >> 1)] + F[n + c - ((r + 1) >> 1)] + 1) >> 1
    6 horizontal-down  (F[n + (c >> 1) - r] + F[n + ((c + 1) >> 1) - r] + 1) >> 1
    7 horizontal-up    (F[n - 1 - min(r + (c >> 1), n - 1)] + F[n - 1 - min(r + ((c + 1) >> 1), n - 1)] + 1) >> 1

over the edge E[0..2n]: E[n - 1 - r] = left[r], E[n] = the corner above-left, E[n + 1 + c] =
top[c]; F[t] = (E[t - 1] + 2 E[t] + E[t + 1] + 2) >> 2 inside, F[0] = E[0], F[2n] = E[2n]. A
missing corner takes top[0] as substituted. None needs the blocks above-right, which the
anti-diagonal order has not decoded yet. The decoder synthesises the whole residual at once,
then adds the predictions along anti-diagonals of blocks, each block after the blocks above and
left of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import numpy as np
import torch

from nvcodec.entropy.coder import SymbolDecoder, SymbolEncoder
from nvcodec.models.layout import FINE_BITS, FINE_PEAK, from_planes, to_planes

MODES = ("none", "planar", "vertical", "horizontal")  # in the order of their frequency
# Luma pixels per side of a macroblock: the area one mode covers before 2.16, and in P frames.
MACROBLOCK = 16
DIRECTIONS = ("down-right", "vertical-right", "horizontal-down", "horizontal-up")  # modes 4-7 (2.16)
GREY = 128 << FINE_BITS


Array = TypeVar("Array", np.ndarray, torch.Tensor)  # the search predicts on tensors, the decoder on arrays


def _namespace(a: Array) -> Any:
    return np if isinstance(a, np.ndarray) else torch


def predictions(top: Array, left: Array, pixel_dc: bool = False) -> Array:
    """(4, k, n, n) predictions of the four modes from (k, n) integer neighbours (int64 from
    tensors, the arrays' own type from arrays): zero-mean shapes, mode 0 none; with `pixel_dc`
    (intra frames from version 2.15) each with its own mean, and mode 0 the DC prediction."""
    xp = _namespace(top)
    k, n = top.shape
    s = n.bit_length() - 1
    r = (xp.arange(n) if xp is np else torch.arange(n, device=top.device)).reshape(1, n, 1)
    c = r.reshape(1, 1, n)
    t, lf = top[:, None, :], left[:, :, None]
    planar = ((n - 1 - c) * lf + (c + 1) * top[:, None, n - 1 :] + (n - 1 - r) * t + (r + 1) * left[:, None, n - 1 :]
              + n) >> (s + 1)  # fmt: skip
    zero = xp.zeros_like(planar)
    if pixel_dc:
        dc = (top.sum(axis=1) + left.sum(axis=1) + n) >> (s + 1)
        return xp.stack([zero + dc[:, None, None], planar, zero + t, zero + lf])
    shapes = xp.stack([zero, planar, zero + t, zero + lf])
    mean = (shapes.sum(axis=(2, 3)) + (n * n // 2)) >> (2 * s)
    return shapes - mean[:, :, None, None]


@cache
def _direction_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(4, n, n) twice: the two samples of the filtered edge F that each directional mode
    averages at each position (the same one twice for down-right)."""
    r, c = np.arange(n)[:, None], np.arange(n)[None, :]
    half_r, half_c = (r >> 1, (r + 1) >> 1), (c >> 1, (c + 1) >> 1)
    first, second = (
        np.stack([
            n + c - r,
            n + c - half_r[h],
            n + half_c[h] - r,
            n - 1 - np.minimum(r + half_c[h], n - 1),
        ])
        for h in (0, 1)
    )  # fmt: skip
    return first, second


def directional(top: Array, left: Array, corner: Array) -> Array:
    """(4, k, n, n) predictions of the directional modes (down-right, vertical-right,
    horizontal-down, horizontal-up) from (k, n) neighbours and the (k,) corner above-left."""
    xp = _namespace(top)
    n = top.shape[1]
    edge = xp.concatenate([xp.flip(left, (1,)) if xp is torch else left[:, ::-1], corner[:, None], top], 1)
    inner = (edge[:, :-2] + 2 * edge[:, 1:-1] + edge[:, 2:] + 2) >> 2
    filtered = xp.concatenate([edge[:, :1], inner, edge[:, -1:]], 1)
    first, second = _direction_indices(n)
    if xp is torch:
        first, second = (torch.from_numpy(a).to(top.device) for a in (first, second))
    out = (filtered[:, first] + filtered[:, second] + 1) >> 1  # (k, 4, n, n)
    return out.permute(1, 0, 2, 3) if xp is torch else out.transpose(1, 0, 2, 3)


def block_view(plane: np.ndarray, n: int) -> np.ndarray:
    """(Hb, Wb, P, n, n) view of (P, H, W) planes: block (i, j) of every plane at [i, j]."""
    p, h, w = plane.shape
    return plane.reshape(p, h // n, n, w // n, n).transpose(1, 3, 0, 2, 4)


def substituted(
    top: Array, left: Array, corner: Array, has_top: Array, has_left: Array
) -> tuple[Array, Array, Array]:
    """(k, n) neighbours and (k,) corners above-left of blocks with the missing ones replaced: a
    missing top row by left[0], a missing left column by top[0], both by grey; a missing corner
    by the substituted top row's first. The one rule the decoder and the encoder's search both
    predict from."""
    xp = _namespace(top)
    top_or = xp.where(has_left[:, None], left[:, :1], GREY)
    left_or = xp.where(has_top[:, None], top[:, :1], GREY)
    top, left = xp.where(has_top[:, None], top, top_or), xp.where(has_left[:, None], left, left_or)
    return top, left, xp.where(has_top & has_left, corner, top[:, 0])


def neighbours(view: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (k P, n) substituted neighbours of blocks (i, j) in each plane of a block_view, and
    their (k P,) corners above-left."""
    planes, n = view.shape[2], view.shape[-1]
    top = view[np.maximum(i - 1, 0), j, :, -1, :].reshape(-1, n)
    left = view[i, np.maximum(j - 1, 0), :, :, -1].reshape(-1, n)
    corner = view[np.maximum(i - 1, 0), np.maximum(j - 1, 0), :, -1, -1].reshape(-1)
    return substituted(top, left, corner, np.repeat(i > 0, planes), np.repeat(j > 0, planes))


@dataclass(frozen=True)
class ModeSet:
    """The intra prediction of a version: how many 8x8 blocks a side one mode covers, its modes'
    predictions and the probabilities its mode map is coded with (5.4.4)."""

    side: int  # 2: one mode per 16x16 macroblock; 1: per 8x8 block
    pixel_dc: bool  # the predictions keep their means and mode 0 is DC (2.15)
    directions: bool  # modes 4-7 are the directional ones (2.16)
    same: tuple[int, ...]  # P(the predicted mode) in 1/256 by context
    other: tuple[tuple[int, ...], ...]  # per predicted mode, P(rank >= t | rank >= t - 1), t = 1, 2, ...
    adaptive: bool = False  # the map's probabilities adapt row by row (MapProbabilities)
    neighbour_levels: bool = False  # modes 4-7 are pixel DC's modes 0-3, means kept (P frames, 2.19)

    @property
    def count(self) -> int:
        return len(MODES) * (2 if self.neighbour_levels else 1) + (len(DIRECTIONS) if self.directions else 0)

    def predict(self, top: Array, left: Array, corner: Array) -> Array:
        """(count, k, n, n) predictions of every mode from (k, n) neighbours and (k,) corners."""
        out = predictions(top, left, self.pixel_dc)
        if self.neighbour_levels:
            return _namespace(top).concatenate([out, predictions(top, left, pixel_dc=True)])
        if not self.directions:
            return out
        return _namespace(top).concatenate([out, directional(top, left, corner)])

    def __post_init__(self) -> None:
        assert not (self.directions and self.neighbour_levels), "modes 4-7 are one or the other"

    def levelled(self, modes: Array) -> Array:
        """Which of a P frame's `modes` predict their blocks' levels from the neighbours too
        (4-7 from 2.19), not from the motion."""
        return (modes >= len(MODES)) & self.neighbour_levels


def reconstruct(residual: torch.Tensor, modes: np.ndarray, mode_set: ModeSet) -> torch.Tensor:
    """The (1, 6, H/2, W/2) int32 reconstruction before deblocking: the synthesised residual in
    1/64 levels plus each block's prediction, clamped to 0..255 levels; `modes` per area of
    `mode_set`. Blocks of mode none are only clamped (with pixel DC, mode 0 is DC and predicts);
    the others are predicted front by front, U and V together, in 64-bit integers (a hostile
    residual does not wrap)."""
    y, u, v = (p.cpu().numpy().astype(np.int64) for p in to_planes(residual))
    residuals = (y, np.concatenate([u, v]))  # (1, H, W) and (2, H/2, W/2): blocks of 8 and of 4
    out = [np.clip(r, 0, FINE_PEAK) for r in residuals]  # final wherever the mode is none
    per_block = np.repeat(np.repeat(modes, mode_set.side, 0), mode_set.side, 1)
    hb, wb = per_block.shape
    for d in range(hb + wb - 1):
        i = np.arange(max(0, d - wb + 1), min(hb, d + 1))
        if not mode_set.pixel_dc:
            i = i[per_block[i, d - i] != 0]
        if not i.size:
            continue
        j = d - i
        for plane, res, n in zip(out, residuals, (8, 4)):
            view = block_view(plane, n)
            which = np.repeat(per_block[i, j], view.shape[2])
            pred = mode_set.predict(*neighbours(view, i, j))[which, np.arange(len(which))]
            total = block_view(res, n)[i, j] + pred.reshape(len(i), -1, n, n)
            view[i, j] = np.clip(total, 0, FINE_PEAK)
    y, uv = (torch.from_numpy(p.astype(np.int32)).to(residual.device) for p in out)
    return from_planes([y, uv[:1], uv[1:]])


# Mode map coding, row by row (bitstream_spec.md 5.4.4). Each area's mode is predicted by the
# mode above it (0 in the first row); a flag says whether it is that mode, with the probability
# same[c] / 256 where c counts how many of the above-left and above-right modes equal the
# prediction (3 in the first row). Otherwise its rank r among the other modes (in their order)
# follows in unary flags, rank >= t for t = 1, 2, ... while the rank is at least t - 1 and t is
# below their number, with the probabilities other[p][t - 1], p the predicted mode. Macroblock
# probabilities measured on the first frames of Foreman and Cockatoo at qps 27 and 37 (7992
# macroblocks); block probabilities on those of Foreman, Cockatoo, Cactus and four Kodak images
# at qps 25 and 35 (109,920 blocks), the modes decided with an earlier fit of these tables.
SAME_PROBABILITIES = (103, 136, 187, 169)
OTHER_PROBABILITIES = ((97, 228), (161, 90), (189, 31), (125, 36))
BLOCK_SAME_PROBABILITIES = (130, 170, 210, 117)
BLOCK_OTHER_PROBABILITIES = (
    (164, 191, 112, 184, 173, 117),
    (184, 167, 125, 190, 168, 110),
    (204, 82, 165, 194, 79, 127),
    (146, 110, 192, 207, 216, 145),
    (189, 142, 228, 182, 147, 49),
    (203, 129, 167, 179, 92, 92),
    (179, 148, 232, 127, 125, 143),
    (161, 119, 220, 105, 183, 178),
)

SHAPES = ModeSet(2, False, False, SAME_PROBABILITIES, OTHER_PROBABILITIES)  # 2.8-2.14; P frames' to 2.18
# P frames' from 2.19 (their map is intra_blocks', the probabilities are not used)
NEIGHBOUR_LEVELS = ModeSet(2, False, False, SAME_PROBABILITIES, OTHER_PROBABILITIES, neighbour_levels=True)
MACROBLOCK_DC = ModeSet(2, True, False, SAME_PROBABILITIES, OTHER_PROBABILITIES)  # 2.15
BLOCK_MODES = ModeSet(
    1, True, True, BLOCK_SAME_PROBABILITIES, BLOCK_OTHER_PROBABILITIES, adaptive=True
)  # 2.16
PRIOR_FLAGS = 16  # how many flags the fixed probabilities of an adaptive map weigh as


class MapProbabilities:
    """The probabilities, in 1/256, of a mode map's flags: slot c < 4 the 'same' flag of context c,
    slot 4 + p (count - 2) + t - 1 the rank flag t of predicted mode p. Fixed, or, for an adaptive
    mode set, counted row by row in integers: each slot starts as PRIOR_FLAGS flags at its fixed
    probability, and after each row, every flag the row coded in it counts once; a row's flags
    are all coded with the probabilities as they stood before it,
    clamp((256 ones + total / 2) / total, 1, 255) (ones and total in 1/256 of a flag)."""

    def __init__(self, mode_set: ModeSet) -> None:
        fixed = np.concatenate([np.asarray(mode_set.same), np.asarray(mode_set.other).ravel()])
        self.mode_set = mode_set
        self.ones = fixed * PRIOR_FLAGS
        self.total = np.full(len(fixed), 256 * PRIOR_FLAGS)
        self.current = fixed
        self.seen: list[tuple[np.ndarray, np.ndarray]] = []

    def same(self, contexts: np.ndarray) -> np.ndarray:
        return contexts

    def rank(self, predicted: np.ndarray, t: int) -> np.ndarray:
        return 4 + predicted * (self.mode_set.count - 2) + t - 1

    def __call__(self, slots: np.ndarray, flags: np.ndarray) -> np.ndarray:
        """The probabilities of `flags` in `slots`, which the end of the row will count."""
        self.seen.append((slots, np.asarray(flags, dtype=np.int64)))
        return self.current[slots]

    def end_row(self) -> None:
        seen, self.seen = self.seen, []
        if not self.mode_set.adaptive:
            return
        for slots, flags in seen:
            np.add.at(self.ones, slots, 256 * flags)
            np.add.at(self.total, slots, 256)
        self.current = np.clip((256 * self.ones + self.total // 2) // self.total, 1, 255)


def _flags(
    probabilities: MapProbabilities, modes: np.ndarray, predicted: np.ndarray, contexts: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(slots, flags) of areas' modes, group by group as write_modes codes them: the 'same'
    flags, then the unary rank flags t = 1, 2, ... of the others."""
    same = modes == predicted
    groups = [(probabilities.same(contexts), same)]
    p = predicted[~same]
    rank = modes[~same] - (modes[~same] > p)
    for t in range(1, probabilities.mode_set.count - 1):
        groups.append((probabilities.rank(p, t), rank >= t))
        p, rank = p[rank >= t], rank[rank >= t]
    return groups


def intra_mode_set(pixel_dc: bool, block_modes: bool) -> ModeSet:
    """An intra frame's modes by its stream's version (Header.pixel_dc, Header.block_modes)."""
    return BLOCK_MODES if block_modes else MACROBLOCK_DC if pixel_dc else SHAPES


def _row_contexts(above: np.ndarray | None, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The predicted modes of a row and the context of each 'same' flag."""
    if above is None:
        return np.zeros(width, dtype=np.int64), np.full(width, 3)
    framed = np.pad(above, 1, constant_values=-1)
    return above, (framed[:-2] == above).astype(np.int64) + (framed[2:] == above)


def mode_bits(predicted: np.ndarray, contexts: np.ndarray, mode_set: ModeSet = SHAPES) -> np.ndarray:
    """(count, k) bits each mode would cost areas of these predicted modes and contexts, at the
    mode set's fixed probabilities (the encoder's estimate where the map adapts)."""
    same = np.asarray(mode_set.same)[contexts] / 256
    other = np.asarray(mode_set.other)[predicted] / 256  # (k, count - 2)
    modes = np.arange(mode_set.count)[:, None]
    rank = modes - (modes > predicted)  # (count, k)
    flags = np.arange(1, mode_set.count - 1)[None, :, None]  # t
    set_bits = np.where(rank[:, None] >= flags, -np.log2(other.T[None]), 0).sum(axis=1)
    stop = np.minimum(rank, mode_set.count - 3)  # the flag t = rank + 1 that reads 0, if any
    clear = np.where(rank < mode_set.count - 2, -np.log2(1 - np.take_along_axis(other.T, stop, 0)), 0)
    return np.where(modes == predicted, -np.log2(same), -np.log2(1 - same) + set_bits + clear)


def macroblock_grid(frame_shape: tuple[int, ...], side: int = 2) -> tuple[int, int]:
    """(Hm, Wm) areas of `side` 8x8 blocks a side of a frame tensor (N, 6, h, w): h / (4 side)."""
    return frame_shape[2] // (4 * side), frame_shape[3] // (4 * side)


def map_bits(modes: np.ndarray, mode_set: ModeSet = SHAPES) -> float:
    """The code length in bits of a mode map as write_modes codes it (its flags' information)."""
    recorder = _FlagBits()
    write_modes(recorder, modes, mode_set)
    return recorder.bits


class _FlagBits:
    """Stands in for a SymbolEncoder: adds up the information of the flags it is given."""

    def __init__(self) -> None:
        self.bits = 0.0

    def add_flags(self, flags: np.ndarray, probabilities: np.ndarray) -> None:
        p = np.asarray(probabilities) / 256
        self.bits += float(-np.log2(np.where(np.asarray(flags, dtype=bool), p, 1 - p)).sum())


def write_modes(encoder: SymbolEncoder | _FlagBits, modes: np.ndarray, mode_set: ModeSet = SHAPES) -> None:
    """The mode map, row by row: the 'same' flags, then the others' unary rank flags, t by t."""
    probabilities = MapProbabilities(mode_set)
    for i in range(modes.shape[0]):
        predicted, contexts = _row_contexts(modes[i - 1] if i else None, modes.shape[1])
        for slots, flags in _flags(probabilities, modes[i], predicted, contexts):
            encoder.add_flags(flags, probabilities(slots, flags))
        probabilities.end_row()


def read_modes(decoder: SymbolDecoder, grid: tuple[int, int], mode_set: ModeSet = SHAPES) -> np.ndarray:
    """The (Hm, Wm) mode map of write_modes."""
    probabilities = MapProbabilities(mode_set)
    modes = np.zeros(grid, dtype=np.int64)
    for i in range(grid[0]):
        predicted, contexts = _row_contexts(modes[i - 1] if i else None, grid[1])
        slots = probabilities.same(contexts)
        same = decoder.read_flags(probabilities.current[slots])
        probabilities(slots, same)
        p = predicted[~same]
        rank = np.zeros(len(p), dtype=np.int64)
        alive = np.arange(len(p))
        for t in range(1, mode_set.count - 1):
            slots = probabilities.rank(p[alive], t)
            more = decoder.read_flags(probabilities.current[slots])
            probabilities(slots, more)
            alive = alive[more]
            rank[alive] += 1
        modes[i] = predicted
        modes[i, ~same] = rank + (rank >= p)
        probabilities.end_row()
    return modes
