"""Intra blocks: P-frame macroblocks predicted from their decoded neighbours (bitstream 2.13).

Where motion fails (occlusions, deforming texture, what the reference never held), a macroblock
of a P frame may take an intra mode (planar, vertical, horizontal; models.intra_prediction) in
place of its motion compensation's detail. Each of its 8x8 luma and 4x4 chroma blocks is then
predicted by its motion-compensated prediction's rounded mean (models.layout.block_means)
plus the mode's zero-mean shape from the row above and the column left of it, as reconstructed
before deblocking: the motion keeps giving the block's level, the neighbours its detail. The
residual is synthesised for the whole frame first (the conditional branches see the prediction
without the shapes), then the shapes are added along anti-diagonals of blocks, each after the
blocks above and left of it, exactly as an intra frame's (bitstream_spec.md 7.8.1, 7.9.3).

The map (5.4.5) ends the motion substream: one flag whether any macroblock has a mode, then,
when one has, a binary map row by row, each flag's probability chosen by how many of the
macroblocks above-left, above and above-right have a mode, then the mode of each of those
macroblocks: planar or not, then vertical or horizontal.
"""

from __future__ import annotations

import numpy as np
import torch

from nvcodec.entropy.coder import SymbolDecoder, SymbolEncoder
from nvcodec.models import intra_prediction
from nvcodec.models.intra_prediction import MACROBLOCK, predictions
from nvcodec.models.layout import block_means, from_planes, spread_blocks, to_planes

# The probability, in 1/256, that a macroblock has a mode given how many of the macroblocks
# above-left, above and above-right have one.
MODE_PROBABILITIES = (16, 56, 112, 160)
ANY_PROBABILITY = 128  # that a frame has a macroblock with a mode
PLANAR_PROBABILITY = 96  # that a macroblock's mode is planar
VERTICAL_PROBABILITY = 128  # that a mode other than planar is vertical
TENSOR_SIDE = MACROBLOCK // 2  # a macroblock's side in the frame tensor (half resolution)


def mask(modes: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, h, w) bool: the samples of the frame tensor `like` in a macroblock with a mode."""
    h, w = like.shape[-2:]
    flags = torch.from_numpy(modes != 0).to(like.device)[None]
    return spread_blocks(flags, TENSOR_SIDE, h, w)


def levels_of(fine: torch.Tensor, modes: np.ndarray) -> torch.Tensor:
    """The prediction (1, 6, h, w) in 1/64 levels with each block of a macroblock with a mode
    made its rounded mean: what the shapes are added to."""
    return torch.where(mask(modes, fine), block_means(fine, MACROBLOCK // 2), fine)


def shapes(recon: torch.Tensor) -> torch.Tensor:
    """(3, 6, h, w) int64: every block's zero-mean planar, vertical and horizontal shape predicted
    from the neighbours it has in `recon` (1, 6, h, w), 1/64 levels (the encoder's estimate of
    what the decoder will predict once the neighbours are final)."""
    out = []
    for plane, n in zip(to_planes(recon.long()), (8, 4, 4)):
        p = plane.cpu().numpy()
        view = intra_prediction.block_view(p, n)
        hb, wb = view.shape[:2]
        i, j = (a.ravel() for a in np.meshgrid(np.arange(hb), np.arange(wb), indexing="ij"))
        top, left, _ = intra_prediction.neighbours(view, i, j)
        pred = predictions(top, left)[1:]  # (3, k P, n, n)
        blocks = pred.reshape(3, hb, wb, p.shape[0], n, n).transpose(0, 3, 1, 4, 2, 5)
        out.append(torch.from_numpy(blocks.reshape(3, p.shape[0], hb * n, wb * n)).to(recon.device))
    return from_planes([o[:, 0] for o in out])


def predicted(levels: torch.Tensor, candidates: torch.Tensor, modes: np.ndarray) -> torch.Tensor:
    """The prediction in 1/64 levels: `levels` (levels_of), plus the shape of its mode from the
    (3, 6, h, w) `candidates` in every macroblock with one."""
    per_sample = torch.from_numpy(modes).to(levels.device)[None]
    chosen = spread_blocks(per_sample, TENSOR_SIDE, *levels.shape[-2:])[0, 0]
    out = levels.long()
    for m in range(1, len(intra_prediction.MODES)):
        out = torch.where(chosen == m, out + candidates[m - 1 : m], out)
    return out


def _map_contexts(flags: np.ndarray) -> np.ndarray:
    framed = np.pad(flags.astype(np.int64), ((1, 0), (1, 1)))[:-1]
    return framed[:, :-2] + framed[:, 1:-1] + framed[:, 2:]


def write_map(encoder: SymbolEncoder, modes: np.ndarray) -> None:
    """The macroblocks' modes as 5.4.5 codes them."""
    flags = modes != 0
    encoder.add_flags(np.array([flags.any()]), np.array([ANY_PROBABILITY]))
    if not flags.any():
        return
    probabilities = np.asarray(MODE_PROBABILITIES)[_map_contexts(flags)]
    for i in range(flags.shape[0]):
        encoder.add_flags(flags[i], probabilities[i])
    chosen = modes[flags]
    encoder.add_flags(chosen == 1, np.full(chosen.size, PLANAR_PROBABILITY))
    other = chosen[chosen != 1]
    encoder.add_flags(other == 2, np.full(other.size, VERTICAL_PROBABILITY))


def read_map(decoder: SymbolDecoder, grid: tuple[int, int]) -> np.ndarray:
    """The (Hm, Wm) modes of write_map."""
    modes = np.zeros(grid, dtype=np.int64)
    if not decoder.read_flags(np.array([ANY_PROBABILITY]))[0]:
        return modes
    flags = np.zeros(grid, dtype=bool)
    for i in range(grid[0]):
        contexts = _map_contexts(flags[max(i - 1, 0) : i + 1])[-1]
        flags[i] = decoder.read_flags(np.asarray(MODE_PROBABILITIES)[contexts])
    n = int(flags.sum())
    planar = decoder.read_flags(np.full(n, PLANAR_PROBABILITY))
    vertical = decoder.read_flags(np.full(int((~planar).sum()), VERTICAL_PROBABILITY))
    chosen = np.ones(n, dtype=np.int64)
    chosen[~planar] = np.where(vertical, 2, 3)
    modes[flags] = chosen
    return modes


def mode_bits(modes: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(4, k) estimated bits of each mode (none first) on macroblocks (i, j) as write_map codes
    them, the map's context taken from `modes` as they stand (the frame's 'any' flag left out)."""
    framed = np.pad(modes != 0, ((1, 0), (1, 1)))
    p = np.asarray(MODE_PROBABILITIES)[framed[i, j].astype(int) + framed[i, j + 1] + framed[i, j + 2]] / 256
    shaped = -np.log2(p)
    planar = -np.log2(PLANAR_PROBABILITY / 256)
    other = -np.log2(1 - PLANAR_PROBABILITY / 256) - np.log2(VERTICAL_PROBABILITY / 256)
    return np.stack([-np.log2(1 - p), shaped + planar, shaped + other, shaped + other])
