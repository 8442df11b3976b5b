"""The encoder's intra mode decision (not normative): each area's mode and levels, closed loop.

For intra frames and for the intra blocks of P frames (models.intra_blocks). The areas one mode
covers (16x16 macroblocks, or 8x8 blocks from version 2.16) are decided along anti-diagonals,
each after those above and left of it. For each mode, an area's 8x8 blocks are predicted, transformed, quantised and reconstructed in turn, so that each block is
predicted from its neighbours as the decoder will have them: the dead zone, then rd_levels with
the tables of each symbol's context in a first coding of the frame (an intra frame's AC levels,
its DC rounding as it does without prediction; a P frame's levels all). The mode of least squared
error plus lambda times estimated bits, levels and mode (in each channel's steps), wins. An intra
frame is searched twice: the second search prices the levels in the contexts of the first one's
decision, which are those of residuals, where the first had those of the frame itself.

Each block is transformed on its own, and a P frame's residual without its conditional branches
(C_a, C_s of models.inter): exact while the transform's residual blocks are the identity and the
branches zero (the released weights), an approximation once they are trained (their 3x3
convolutions reach into the neighbours). The decoder's picture is the encoder's either way: the
encoder reconstructs from the decided levels as the decoder does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.entropy.context import CHANNELS, DC_CHANNELS
from nvcodec.models.intra_prediction import (
    SHAPES,
    ModeSet,
    macroblock_grid,
    mode_bits,
    substituted,
)
from nvcodec.models.latent_codec import LatentCodec, rd_levels
from nvcodec.models.layout import FINE_PEAK, from_planes, to_fine, to_planes
from nvcodec.models.transform import BlockTransform

AC_CHANNELS = np.setdiff1d(np.arange(CHANNELS), DC_CHANNELS)
# The search's lambda, against the latent's: at 2.8 (the intra frame alone, BD-rate against
# --intra-prediction off, qps 24-44) -10.3% / -13.4% at 1, -13.1% / -14.7% at 0.5, -12.8% /
# -14.6% at 0.35 (Foreman / Cockatoo). At 2.16 with two searches (the first frames of Foreman,
# Cockatoo and Cactus and 12 Kodak images, qps 22-42, BD-rate against 0.5 and one search):
# 0.5 -1.2/-1.7/-0.9%, Kodak -0.2%; 0.4 -1.9/-2.0/-0.7%, Kodak -0.5%; 0.33 -1.8/-1.8/-0.4%, -0.4%.
LAMBDA_SCALE = 0.4
# An intra frame's searches (decide_modes), measured as above at 0.5 against two searches: a
# third gains -0.5/-0.7/+0.0%, Kodak -0.03%, for half as much time again.
SEARCH_PASSES = 2


@dataclass
class IntraDecision:
    """The modes and levels decided for a frame's areas (macroblocks or blocks)."""

    modes: np.ndarray  # (Hm, Wm) mode per area
    scaled: np.ndarray  # (C, H, W) y / step of the chosen predictions' residuals
    levels: np.ndarray  # (C, H, W) the decided levels
    fine: torch.Tensor  # (1, 6, H/2, W/2) int32: the reconstruction before deblocking the search worked with


class BlockQuantiser:
    """Residual blocks -> levels and their reconstruction, as the latent codec will code them:
    the dead zone, then rd_levels on `channels` with the table indices of each symbol's context
    bucket in `buckets` (C, H, W), at `lam` squared steps per bit."""

    def __init__(
        self,
        transform: BlockTransform,
        latent: LatentCodec,
        qp: int,
        tables: ProbabilityTables,
        table: np.ndarray,
        buckets: np.ndarray,
        lam: float,
        channels: np.ndarray,
    ) -> None:
        self.transform, self.latent, self.qp, self.tables = transform, latent, qp, tables
        self.table, self.buckets, self.lam, self.channels = table, buckets, lam, channels
        self.dtype = latent.log_weight.dtype

    @classmethod
    def intra(
        cls,
        transform: BlockTransform,
        latent: LatentCodec,
        qp: int,
        tables: ProbabilityTables,
        x: torch.Tensor,
    ) -> BlockQuantiser:
        """An intra frame's: the fitted tables, the contexts of frame x coded without prediction,
        the AC levels weighed at LAMBDA_SCALE times the latent's lambda (the DC rounds)."""
        scaled = latent.scaled(transform.analysis(x), qp)
        buckets = latent.contexts(scaled, latent.quantize(scaled), qp, tables)
        return cls(
            transform, latent, qp, tables, latent.fitted(qp), buckets, latent.lam * LAMBDA_SCALE, AC_CHANNELS
        )

    def indices(self, at: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """(C, k, 1) table indices of the blocks at (rows, cols), from their context buckets."""
        return self.table[np.arange(CHANNELS)[:, None], self.buckets[:, at[0], at[1]]][..., None]

    def __call__(
        self, residual: torch.Tensor, at: tuple[np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, torch.Tensor, np.ndarray]:
        """(k, 6, 4, 4) float residual blocks at block positions `at` -> scaled (C, k, 1), levels,
        the (k, 6, 4, 4) int32 synthesised residual, and each block's cost."""
        y = self.transform.analysis(residual).permute(1, 0, 2, 3).reshape(1, -1, residual.shape[0], 1)
        scaled = self.latent.scaled(y, self.qp)
        levels = self.latent.quantize(scaled)
        k = self.indices(at)
        ch = self.channels
        levels[ch] = rd_levels(
            scaled[ch], levels[ch], lambda c: self.tables.magnitude_bits(k[ch], c), self.lam
        )
        y_hat = self.latent.dequantize(levels, self.qp, y)
        error = (scaled - (y_hat / self.latent.steps(self.qp, y)).float()[0].cpu().numpy()) ** 2
        bits = self.tables.magnitude_bits(k, levels)
        cost = (error + self.lam * bits).sum(axis=(0, 2))
        blocks = y_hat[0].permute(1, 0, 2).reshape(-1, y_hat.shape[1], 1, 1)
        return scaled, levels, to_fine(self.transform.synthesis(blocks)), cost


def _sides(side: int) -> tuple[int, int, int]:
    """Per plane, the samples a side of an area of `side` 8x8 blocks."""
    return 8 * side, 4 * side, 4 * side


def _patches(planes: list[torch.Tensor], mi: torch.Tensor, mj: torch.Tensor, side: int) -> list[torch.Tensor]:
    """Per plane (k, m+1, m+1) int32: areas (mi, mj) of `side` blocks a side with the row above,
    the column left and the corner (zeros where outside the frame)."""
    out = []
    for plane, m in zip(planes, _sides(side)):
        framed = F.pad(plane, (1, 0, 1, 0))
        rows = (mi * m)[:, None] + torch.arange(m + 1, device=plane.device)
        cols = (mj * m)[:, None] + torch.arange(m + 1, device=plane.device)
        out.append(framed[rows[:, :, None], cols[:, None, :]])
    return out


ModeBits = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]  # (modes, i, j) -> (count, k) bits


@torch.no_grad()
def decide_modes(
    x: torch.Tensor,
    transform: BlockTransform,
    latent: LatentCodec,
    qp: int,
    tables: ProbabilityTables,
    mode_set: ModeSet = SHAPES,
) -> IntraDecision:
    """Each area's mode (of `mode_set`) and the levels of its blocks, for frame x (1, 6, H/2, W/2):
    searched SEARCH_PASSES times, each search after the first pricing the levels in the contexts
    of the decision before it."""
    quantise = BlockQuantiser.intra(transform, latent, qp, tables, x)
    hm, wm = macroblock_grid(tuple(x.shape), mode_set.side)
    blocks = (CHANNELS, mode_set.side * hm, mode_set.side * wm)
    start = IntraDecision(
        np.zeros((hm, wm), dtype=np.int64),
        np.zeros(blocks, dtype=np.float32),
        np.zeros(blocks, dtype=np.int64),
        torch.zeros_like(x, dtype=torch.int32),
    )

    def bits_of(modes: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return mode_bits(*_mode_contexts(modes, i, j), mode_set)

    decision = search_modes(x, quantise, start, bits_of, mode_set=mode_set)
    for _ in range(SEARCH_PASSES - 1):
        quantise.buckets = latent.contexts(
            decision.scaled, decision.levels, qp, tables, rd=False, med_dc=not mode_set.pixel_dc
        )
        decision = search_modes(x, quantise, start, bits_of, mode_set=mode_set)
    return decision


@torch.no_grad()
def search_modes(
    x: torch.Tensor,
    quantise: BlockQuantiser,
    start: IntraDecision,
    bits_of: ModeBits,
    bases: torch.Tensor | None = None,
    candidates: np.ndarray | None = None,
    mode_set: ModeSet = SHAPES,
) -> IntraDecision:
    """`start` with the `candidates` areas of `mode_set` (all when None) decided again, closed
    loop along anti-diagonals: each mode's prediction is its base (`bases`: (2, 6, H/2, W/2) 1/64
    levels, mode none's and the others'; zero when None and in the modes that take the
    neighbours' levels) plus the mode's prediction, the mode of least squared error plus lambda
    times the levels' and the mode's estimated bits (`bits_of`) wins. The other areas keep their
    levels and reconstruction (`start.fine`, before deblocking)."""
    source = [p[0].float() * FINE_PEAK for p in to_planes(x.float())]
    recon = [p[0].clone() for p in to_planes(start.fine)]
    base_planes = None if bases is None else [p.long() for p in to_planes(bases)]
    modes, scaled, levels = start.modes.copy(), start.scaled.copy(), start.levels.copy()
    hm, wm = modes.shape
    for d in range(hm + wm - 1):
        i = np.arange(max(0, d - wm + 1), min(hm, d + 1))
        if candidates is not None:
            i = i[candidates[i, d - i]]
        if not i.size:
            continue
        j = d - i
        mi, mj = (torch.from_numpy(a).to(x.device) for a in (i, j))
        tried = _try_modes(source, base_planes, recon, mi, mj, quantise, mode_set)
        k = len(i)
        cost = tried.cost.reshape(mode_set.count, k) + quantise.lam * bits_of(modes, i, j)
        best = cost.argmin(axis=0)
        row = best * k + np.arange(k)  # the chosen mode's row of each area
        modes[i, j] = best
        _keep([p[torch.from_numpy(row).to(x.device)] for p in tried.patches], recon, mi, mj, mode_set.side)
        for s, (a, b) in enumerate(_sub_blocks(mode_set.side)):
            at = (mode_set.side * i + a, mode_set.side * j + b)
            scaled[:, at[0], at[1]] = tried.scaled[s][:, row, 0]
            levels[:, at[0], at[1]] = tried.levels[s][:, row, 0]
    return IntraDecision(modes, scaled, levels, from_planes([p[None] for p in recon]))


def _mode_contexts(modes: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The predicted mode and context of areas (i, j) as write_modes will see them, but for
    the above-right mode, not decided yet: taken to agree as the above-left one does."""
    above = np.where(i > 0, modes[np.maximum(i - 1, 0), j], 0)
    agree = (j > 0) & (modes[np.maximum(i - 1, 0), np.maximum(j - 1, 0)] == above)
    right = j < modes.shape[1] - 1  # in the last column there is none
    return above, np.where(i > 0, agree * (1 + right), 3)


def _sub_blocks(side: int) -> list[tuple[int, int]]:
    """The 8x8 blocks of an area of `side` blocks a side, in decoding order."""
    return [(a, b) for a in range(side) for b in range(side)]


def _keep(
    patches: list[torch.Tensor], recon: list[torch.Tensor], mi: torch.Tensor, mj: torch.Tensor, side: int
) -> None:
    """Write the areas' (k, m+1, m+1) patches into the frame's reconstruction."""
    for plane, patch, m in zip(recon, patches, _sides(side)):
        view = plane.view(plane.shape[0] // m, m, plane.shape[1] // m, m)
        view[mi, :, mj, :] = patch[:, 1:, 1:]


@dataclass
class _Tried:
    """Every mode tried on k areas: rows mode * k + area."""

    cost: np.ndarray  # (count k,)
    patches: list[torch.Tensor]  # per plane (count k, m+1, m+1), as reconstructed
    scaled: list[np.ndarray]  # per sub-block (C, count k, 1)
    levels: list[np.ndarray]


def _try_modes(
    source: list[torch.Tensor],
    bases: list[torch.Tensor] | None,
    recon: list[torch.Tensor],
    mi: torch.Tensor,
    mj: torch.Tensor,
    quantise: BlockQuantiser,
    mode_set: ModeSet,
) -> _Tried:
    """Areas (mi, mj) coded in each mode, their blocks in turn (`bases`: per plane (2, H, W),
    mode none's base and the others', added to the predictions)."""
    n_modes, side = mode_set.count, mode_set.side
    patches = [p.repeat(n_modes, 1, 1) for p in _patches(recon, mi, mj, side)]
    device = mi.device
    mode = torch.arange(n_modes, device=device).repeat_interleave(len(mi))
    own_level = mode_set.levelled(mode)[:, None, None]
    mi4, mj4, rows4 = mi.repeat(n_modes), mj.repeat(n_modes), torch.arange(len(mode), device=device)
    at4 = (mi4.cpu().numpy(), mj4.cpu().numpy())
    tried = _Tried(np.zeros(len(mode)), patches, [], [])
    for a, b in _sub_blocks(side):
        preds, sources = [], []
        for p, (plane_src, patch, n) in enumerate(zip(source, patches, (8, 4, 4))):
            r0, c0 = 1 + a * n, 1 + b * n
            edge = patch[:, r0 - 1, c0 : c0 + n], patch[:, r0 : r0 + n, c0 - 1], patch[:, r0 - 1, c0 - 1]
            top, left, corner = substituted(*edge, (mi4 > 0) | (a > 0), (mj4 > 0) | (b > 0))
            rows = (mi4 * side * n + a * n)[:, None, None] + torch.arange(n, device=device)[:, None]
            cols = (mj4 * side * n + b * n)[:, None, None] + torch.arange(n, device=device)
            if a == 0 and b == 0:  # no mode has coded a block yet: one prediction serves every copy
                k = len(mi)
                pred = mode_set.predict(top[:k], left[:k], corner[:k]).reshape(n_modes * k, n, n)
            else:
                pred = mode_set.predict(top, left, corner)[mode, rows4]
            if bases is not None:
                base = bases[p][(mode > 0).long()[:, None, None], rows, cols]
                pred = pred + torch.where(own_level, 0, base)
            preds.append(pred)
            sources.append(plane_src[rows, cols])
        residual = from_planes([(s - p) / FINE_PEAK for s, p in zip(sources, preds)])
        at = (side * at4[0] + a, side * at4[1] + b)
        scaled, levels, synthesised, cost = quantise(residual.to(quantise.dtype), at)
        tried.cost += cost
        tried.scaled.append(scaled)
        tried.levels.append(levels)
        for patch, pred, res, n in zip(patches, preds, to_planes(synthesised), (8, 4, 4)):
            r0, c0 = 1 + a * n, 1 + b * n
            patch[:, r0 : r0 + n, c0 : c0 + n] = (pred + res).clamp(0, FINE_PEAK)
    return tried
