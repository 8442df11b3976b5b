"""The encoder's motion search (not normative): rate-constrained block matching from SpyNet's seed.

Every candidate is a whole vector field, predicted at once; each block keeps the candidate that
lowers SAD + lambda * bits(vector difference), the bits from the coder's own tables, candidate
and incumbent both priced against the predictors of the best field so far. Candidates: zero,
SpyNet's block means rounded to whole pixels, the neighbours' vectors, a shrinking square of
whole-pixel moves (cheap: no interpolation), half and quarter pixels; then the predictors
themselves (a field that costs almost nothing), the neighbours' vectors and a last quarter pixel.

Those field-at-once decisions price each block against neighbours that are still moving, so the
field stays noisy where SAD is flat. The search ends with passes in coding (raster) order, as a
classical encoder decides: every block picks, among all the vectors evaluated for it, the one of
least SAD + lambda * bits against its final predictor and context.

A half-pel frame's search (models.motion, 2.18) walks the same steps but the quarter pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from nvcodec.models.compensation import InterpolatedFrame, to_blocks
from nvcodec.models.latent_codec import LAMBDA
from nvcodec.models.layout import FINE_BITS, to_fine
from nvcodec.models.motion import (
    DELTA_BUCKET,
    MAX_VECTOR,
    difference_size,
    field_buckets,
    median_prediction,
    neighbour_buckets,
    predictors_at,
    wavefronts,
)

WHOLE_STEPS = (16, 8, 4)  # quarter pixels: 4, 2 and 1 pixel, from a whole-pixel start
FRACTION_STEPS = (2, 1)  # 1/2 and 1/4 pixel
DIRECTIONS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))
# lambda_SAD = sqrt(lambda_mode), the classical relation (DESIGN.md), with the coefficients' own
# lambda_mode = LAMBDA * step^2, twice H.264's (latent_codec.LAMBDA). H.264's sqrt(0.134) = 0.366
# priced bits lower than the residual coder does: on 96 Foreman frames and 24 of Cockatoo, BD-rate
# -0.9% and -1.6% against it (SATD instead of SAD: -1.5% and -0.7%, and slower).
SAD_LAMBDA = math.sqrt(LAMBDA)
ORDERED_PASSES = 3
# A unit of a split block may move a few pixels from its block and its seed (parallax at a
# foreground edge): the unit search tries every whole pixel this close to its block's vector, then
# walks the whole-pixel steps. BD-rate against a one-pixel walk alone: Cockatoo 9 frames -1.05%
# (qps 22-37), Foreman 96 frames -0.56% (22-42), Cactus 12 frames -0.07% (22-37); the steps
# without the scan gained about as much but, greedy from 4 pixels, walk away from the exact match
# of a unit moved 1-3 pixels, which the scan finds.
UNIT_SCAN = 2

RateOf = Callable[[np.ndarray, np.ndarray], np.ndarray]  # coded differences (..., 2), buckets (...) -> bits


class BlockSearch:
    """Search state for one frame: the target luma, the interpolated reference, the best field,
    and every (vector, SAD) pair evaluated so far; vectors are priced as coded, in units of
    `finest` quarter pixels, in the contexts those coded values give."""

    def __init__(
        self,
        target_luma: torch.Tensor,
        reference: InterpolatedFrame,
        step_8bit: float,
        rate_of: RateOf,
        block: int,
        start: np.ndarray | None = None,
        finest: int = 1,
    ):
        h, w = target_luma.shape
        self.target = to_blocks(to_fine(target_luma), block)  # 1/64 levels, as the predictions
        cut = h % block or w % block  # blocks cut by the picture's edge match only what lies inside
        self.inside = to_blocks(torch.ones_like(target_luma, dtype=torch.int32), block) if cut else None
        self.reference = reference
        self.lam = SAD_LAMBDA * step_8bit
        self.rate_of = rate_of
        self.block = block
        self.finest = finest
        self.grid = (-(-h // block), -(-w // block))
        self.start = start
        self.fields: list[np.ndarray] = []
        self.sads: list[np.ndarray] = []
        self.best = np.zeros((*self.grid, 2), dtype=np.int64) if start is None else start.copy()
        self.best_sad = self._sad(self.best)

    def _sad(self, field: np.ndarray) -> np.ndarray:
        """Each block's sum of absolute differences in 8-bit levels (exact: integer 1/64 levels
        summed inside the picture)."""
        pred = self.reference.luma_blocks(torch.from_numpy(field).to(self.target.device), self.block)
        diff = (pred - self.target).abs_()
        if self.inside is not None:
            diff *= self.inside
        sad = diff.sum(dim=(2, 3)).cpu().numpy() / (1 << FINE_BITS)
        self.fields.append(field)
        self.sads.append(sad)
        return sad

    def _bits(self, diff: np.ndarray) -> np.ndarray:
        coded = diff // self.finest
        return self.rate_of(coded, field_buckets(coded))

    def _predictors(self) -> np.ndarray:
        """What each block's vector is coded against: the median of the best field so far."""
        return median_prediction(self.best)

    def consider(self, field: np.ndarray) -> None:
        """Keep, block by block, the vectors of `field` where they cost less. Both are priced
        against the predictors of the current best field (the best's own rate changes with it)."""
        field = np.clip(field, -MAX_VECTOR, MAX_VECTOR)
        predictor = self._predictors()
        sad = self._sad(field)
        cost = sad + self.lam * self._bits(field - predictor)
        better = cost < self.best_sad + self.lam * self._bits(self.best - predictor)
        self.best = np.where(better[..., None], field, self.best)
        self.best_sad = np.where(better, sad, self.best_sad)

    def propagate(self) -> None:
        """Try each block's neighbours' vectors."""
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            self.consider(np.roll(self.best, shift, axis=axis))

    def scan(self, centre: np.ndarray, radius: int) -> None:
        """Try every whole-pixel vector within `radius` pixels of each block's `centre` vector."""
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                if dx or dy:
                    self.consider(centre + np.array([4 * dx, 4 * dy]))

    def refine(self, steps: tuple[int, ...]) -> None:
        for step in steps:
            for dx, dy in DIRECTIONS:
                self.consider(self.best + np.array([dx * step, dy * step]))

    def decide_in_order(self) -> None:
        """One pass in coding order: each block takes its cheapest evaluated vector against its
        final predictor and context, a wavefront of blocks at a time (motion.wavefronts)."""
        vectors, sads = np.stack(self.fields, axis=2), np.stack(self.sads, axis=2)  # (Hb, Wb, K, ...)
        hb, wb = self.grid
        v = np.zeros((hb, wb, 2), dtype=np.int64)
        size = np.zeros((hb + 1, wb + 2), dtype=np.int64)  # |dx| + |dy| of the decided differences, framed
        for i, j in wavefronts(hb, wb):
            d = (vectors[i, j] - predictors_at(v, i, j)[:, None]) // self.finest  # (n, K, 2), as coded
            buckets = np.where(i > 0, neighbour_buckets(size[i, j], size[i, j + 1], size[i, j + 2]), 0)
            k = np.argmin(sads[i, j] + self.lam * self.rate_of(d, buckets[:, None]), axis=1)
            n = np.arange(len(i))
            v[i, j] = vectors[i, j, k]
            size[i + 1, j + 1] = difference_size(d[n, k])
            self.best_sad[i, j] = sads[i, j, k]
        self.best = v


def search(
    target_luma: torch.Tensor,
    reference: InterpolatedFrame,
    seed: np.ndarray,
    step_8bit: float,
    rate_of: RateOf,
    block: int,
    finest: int = 1,
) -> np.ndarray:
    """(Hb, Wb, 2) quarter-pixel vectors of block x block luma pixels for the full-resolution
    target luma (H, W), whole multiples of `finest` quarter pixels."""
    s = BlockSearch(target_luma, reference, step_8bit, rate_of, block, finest=finest)
    s.consider(np.round(seed / 4).astype(np.int64) * 4)
    s.propagate()
    s.refine(WHOLE_STEPS)
    s.refine(fractions(finest))
    s.consider(median_prediction(s.best))
    s.propagate()
    s.refine((finest,))
    for _ in range(ORDERED_PASSES):
        s.decide_in_order()
        s.consider(median_prediction(s.best))
        s.propagate()
    s.decide_in_order()
    return s.best


def fractions(finest: int) -> tuple[int, ...]:
    """The fraction steps down to `finest` quarter pixels."""
    return tuple(step for step in FRACTION_STEPS if step >= finest)


class UnitSearch(BlockSearch):
    """The search of the units of split blocks (models.motion), started from their blocks'
    vectors: a unit's vector is coded as its delta from its block's, with the delta tables, so
    that is what its rate is."""

    def _bits(self, diff: np.ndarray) -> np.ndarray:
        return self.rate_of(diff // self.finest, np.full(diff.shape[:2], DELTA_BUCKET))

    def _predictors(self) -> np.ndarray:
        return self.start


def search_units(
    target_luma: torch.Tensor,
    reference: InterpolatedFrame,
    seed: np.ndarray,
    step_8bit: float,
    rate_of: RateOf,
    blocks: np.ndarray,
    unit: int,
    finest: int = 1,
) -> np.ndarray:
    """(2Hb, 2Wb, 2) quarter-pixel vectors of units of unit x unit luma pixels, from their blocks'
    vectors `blocks` spread over the units (2Hb, 2Wb, 2): SpyNet's unit means, the neighbours'
    vectors (the other side of a motion edge), every whole pixel within UNIT_SCAN of the block's
    vector, then the whole-pixel steps and the fractions around the best. Units outside the
    picture (blocks cut by its edge) keep their block's vector. Whole multiples of `finest`
    quarter pixels, as the blocks' vectors are."""
    h, w = target_luma.shape
    inside = blocks[: -(-h // unit), : -(-w // unit)]  # the units inside the picture
    s = UnitSearch(target_luma, reference, step_8bit, rate_of, unit, start=inside, finest=finest)
    s.consider(np.round(seed[: s.grid[0], : s.grid[1]] / 4).astype(np.int64) * 4)
    s.propagate()
    s.scan(inside, UNIT_SCAN)
    s.refine(WHOLE_STEPS)
    s.refine(fractions(finest))
    found = blocks.copy()
    found[: s.grid[0], : s.grid[1]] = s.best
    return found
