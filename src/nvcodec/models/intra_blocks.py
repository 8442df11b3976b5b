"""Intra blocks: P-frame macroblocks predicted from their decoded neighbours (bitstream 2.13, 2.19).

Where motion fails (occlusions, deforming texture, what the reference never held), a macroblock
of a P frame may take an intra mode (planar, vertical, horizontal; models.intra_prediction) in
place of its motion compensation's detail. Each of its 8x8 luma and 4x4 chroma blocks is then
predicted by its motion-compensated prediction's rounded mean (models.layout.block_means)
plus the mode's zero-mean shape from the row above and the column left of it, as reconstructed
before deblocking: the motion keeps giving the block's level, the neighbours its detail. The
residual is synthesised for the whole frame first (the conditional branches see the prediction
without the shapes), then the shapes are added along anti-diagonals of blocks, each after the
blocks above and left of it, exactly as an intra frame's (bitstream_spec.md 7.8.1, 7.9.3).

From version 2.19 ("neighbour levels") a macroblock may take its blocks' levels from the
neighbours as well: modes 4-7 are DC, planar, vertical and horizontal with their means (an intra
frame's pixel-DC predictions), added to the residual alone. Where a camera move uncovers what the
reference never held, the motion's mean is as wrong as its detail: on Cockatoo's first 9 frames
(qps 17-32), -4.75% BD-rate against the shapes alone.

The map (5.4.5) ends the motion substream: one flag whether any macroblock has a mode, then,
when one has, a binary map row by row, each flag's probability chosen by how many of the
macroblocks above-left, above and above-right have a mode, then the mode of each of those
macroblocks: from 2.19 first whether it takes the neighbours' levels (modes 4-7), then for those
that do whether it is DC; then for every one that is not DC, planar or not, then vertical or
horizontal.
"""

from __future__ import annotations

import numpy as np
import torch

from nvcodec.entropy.coder import SymbolDecoder, SymbolEncoder
from nvcodec.models import intra_prediction
from nvcodec.models.intra_prediction import MACROBLOCK, MODES, NEIGHBOUR_LEVELS, SHAPES, ModeSet
from nvcodec.models.layout import block_means, from_planes, spread_blocks, to_planes

# The probability, in 1/256, that a macroblock has a mode given how many of the macroblocks
# above-left, above and above-right have one.
MODE_PROBABILITIES = (16, 56, 112, 160)
ANY_PROBABILITY = 128  # that a frame has a macroblock with a mode
PLANAR_PROBABILITY = 96  # that a macroblock's mode is planar
VERTICAL_PROBABILITY = 128  # that a mode other than planar is vertical
# From the modes the encoder chose on Cockatoo's first 9 frames at qps 17-32 (2.19, flags at 1/2):
# 66-76% of the macroblocks with a mode took the neighbours' levels, 12-16% of those DC (72-80%
# and 8-12% once coded with these probabilities).
LEVELLED_PROBABILITY = 184  # that a mode takes the neighbours' levels (2.19)
DC_PROBABILITY = 36  # that a mode with the neighbours' levels is DC
TENSOR_SIDE = MACROBLOCK // 2  # a macroblock's side in the frame tensor (half resolution)


def mode_set(neighbour_levels: bool) -> ModeSet:
    """A P frame's intra modes: with the neighbours' levels (2.19) or the shapes alone."""
    return NEIGHBOUR_LEVELS if neighbour_levels else SHAPES


def mask(flags: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) bool: the samples of the frame tensor `like` in a macroblock flagged."""
    h, w = like.shape[-2:]
    return spread_blocks(torch.from_numpy(flags).to(like.device)[None], TENSOR_SIDE, h, w)


def levels_of(fine: torch.Tensor, modes: np.ndarray) -> torch.Tensor:
    """The prediction (1, 6, h, w) in 1/64 levels with each block of a macroblock with a mode
    made its rounded mean, or zero where the mode takes the neighbours' levels: what the modes'
    predictions are added to."""
    means = torch.where(mask(modes != 0, fine), block_means(fine, MACROBLOCK // 2), fine)
    return torch.where(mask(NEIGHBOUR_LEVELS.levelled(modes), fine), 0, means)


def mode_predictions(recon: torch.Tensor, mode_set: ModeSet) -> torch.Tensor:
    """(count - 1, 6, h, w) int64: every block's prediction in each mode of `mode_set` but none
    (a zero-mean shape in modes 1-3), from the neighbours it has in `recon` (1, 6, h, w), 1/64
    levels (the encoder's estimate of what the decoder will predict once the neighbours are
    final)."""
    count = mode_set.count - 1
    out = []
    for plane, n in zip(to_planes(recon.long()), (8, 4, 4)):
        p = plane.cpu().numpy()
        view = intra_prediction.block_view(p, n)
        hb, wb = view.shape[:2]
        i, j = (a.ravel() for a in np.meshgrid(np.arange(hb), np.arange(wb), indexing="ij"))
        top, left, corner = intra_prediction.neighbours(view, i, j)
        pred = mode_set.predict(top, left, corner)[1:]  # (count, k P, n, n)
        blocks = pred.reshape(count, hb, wb, p.shape[0], n, n).transpose(0, 3, 1, 4, 2, 5)
        out.append(torch.from_numpy(blocks.reshape(count, p.shape[0], hb * n, wb * n)).to(recon.device))
    return from_planes([o[:, 0] for o in out])


def predicted(levels: torch.Tensor, candidates: torch.Tensor, modes: np.ndarray) -> torch.Tensor:
    """The prediction in 1/64 levels: `levels` (levels_of), plus the prediction of its mode from
    the (count - 1, 6, h, w) `candidates` (mode_predictions) in every macroblock with one."""
    per_sample = torch.from_numpy(modes).to(levels.device)[None]
    chosen = spread_blocks(per_sample, TENSOR_SIDE, *levels.shape[-2:])[0, 0]
    out = levels.long()
    for m in range(1, len(candidates) + 1):
        out = torch.where(chosen == m, out + candidates[m - 1 : m], out)
    return out


def _map_contexts(flags: np.ndarray) -> np.ndarray:
    framed = np.pad(flags.astype(np.int64), ((1, 0), (1, 1)))[:-1]
    return framed[:, :-2] + framed[:, 1:-1] + framed[:, 2:]


def _split(modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Modes 1-7 as (whether each takes the neighbours' levels, its prediction: 0 DC, 1 planar,
    2 vertical, 3 horizontal)."""
    levelled = NEIGHBOUR_LEVELS.levelled(modes)
    return levelled, np.where(levelled, modes - len(MODES), modes)


def write_map(encoder: SymbolEncoder, modes: np.ndarray, neighbour_levels: bool) -> None:
    """The macroblocks' modes as 5.4.5 codes them (`neighbour_levels`: with 2.19's modes)."""
    assert neighbour_levels or not NEIGHBOUR_LEVELS.levelled(modes).any(), "modes 4-7 need 2.19's map"
    flags = modes != 0
    encoder.add_flags(np.array([flags.any()]), np.array([ANY_PROBABILITY]))
    if not flags.any():
        return
    probabilities = np.asarray(MODE_PROBABILITIES)[_map_contexts(flags)]
    for i in range(flags.shape[0]):
        encoder.add_flags(flags[i], probabilities[i])
    levelled, chosen = _split(modes[flags])
    if neighbour_levels:
        encoder.add_flags(levelled, np.full(chosen.size, LEVELLED_PROBABILITY))
        encoder.add_flags(chosen[levelled] == 0, np.full(int(levelled.sum()), DC_PROBABILITY))
    chosen = chosen[chosen != 0]
    encoder.add_flags(chosen == 1, np.full(chosen.size, PLANAR_PROBABILITY))
    other = chosen[chosen != 1]
    encoder.add_flags(other == 2, np.full(other.size, VERTICAL_PROBABILITY))


def read_map(decoder: SymbolDecoder, grid: tuple[int, int], neighbour_levels: bool) -> np.ndarray:
    """The (Hm, Wm) modes of write_map."""
    modes = np.zeros(grid, dtype=np.int64)
    if not decoder.read_flags(np.array([ANY_PROBABILITY]))[0]:
        return modes
    flags = np.zeros(grid, dtype=bool)
    for i in range(grid[0]):
        contexts = _map_contexts(flags[max(i - 1, 0) : i + 1])[-1]
        flags[i] = decoder.read_flags(np.asarray(MODE_PROBABILITIES)[contexts])
    n = int(flags.sum())
    levelled, dc = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if neighbour_levels:
        levelled = decoder.read_flags(np.full(n, LEVELLED_PROBABILITY))
        dc[levelled] = decoder.read_flags(np.full(int(levelled.sum()), DC_PROBABILITY))
    chosen = np.zeros(n, dtype=np.int64)
    planar = decoder.read_flags(np.full(int((~dc).sum()), PLANAR_PROBABILITY))
    vertical = decoder.read_flags(np.full(int((~planar).sum()), VERTICAL_PROBABILITY))
    chosen[~dc] = np.where(planar, 1, 0)
    chosen[np.flatnonzero(~dc)[~planar]] = np.where(vertical, 2, 3)
    modes[flags] = chosen + len(MODES) * levelled
    return modes


def _bits(probability: int, flag: bool) -> float:
    """The information of a flag coded with `probability` / 256."""
    return -np.log2(probability / 256 if flag else 1 - probability / 256)


def mode_bits(modes: np.ndarray, i: np.ndarray, j: np.ndarray, neighbour_levels: bool) -> np.ndarray:
    """(count, k) estimated bits of each mode (none first) on macroblocks (i, j) as write_map
    codes them, the map's context taken from `modes` as they stand (the frame's 'any' flag left
    out); count 8 with `neighbour_levels`, else 4."""
    framed = np.pad(modes != 0, ((1, 0), (1, 1)))
    p = np.asarray(MODE_PROBABILITIES)[framed[i, j].astype(int) + framed[i, j + 1] + framed[i, j + 2]] / 256
    shapes = [0.0, _bits(PLANAR_PROBABILITY, True)] + 2 * [
        _bits(PLANAR_PROBABILITY, False) + _bits(VERTICAL_PROBABILITY, True)
    ]  # DC, planar, vertical, horizontal (the last two alike at 1/2)
    each = shapes[1:]
    if neighbour_levels:
        with_levels = [_bits(DC_PROBABILITY, m == 0) + s for m, s in enumerate(shapes)]
        each = [_bits(LEVELLED_PROBABILITY, False) + s for s in each]
        each += [_bits(LEVELLED_PROBABILITY, True) + s for s in with_levels]
    return np.stack([-np.log2(1 - p), *(-np.log2(p) + b for b in each)])
