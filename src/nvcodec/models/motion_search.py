"""The encoder's motion search (not normative): rate-constrained block matching from SpyNet's seed.

Every candidate is a whole vector field, predicted at once; each block keeps the candidate that
lowers SAD + lambda * bits(vector difference), the bits from the coder's own tables, candidate
and incumbent both priced against the predictors of the best field so far. Candidates: zero,
SpyNet's block means rounded to whole pixels, the neighbours' vectors, a shrinking square of
whole-pixel moves (cheap: no interpolation), half and quarter pixels; then the predictors
themselves (a field that costs almost nothing), the neighbours' vectors and a last quarter pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nvcodec.models.compensation import BLOCK, InterpolatedFrame
from nvcodec.models.motion import MAX_VECTOR, median_prediction

WHOLE_STEPS = (16, 8, 4)  # quarter pixels: 4, 2 and 1 pixel, from a whole-pixel start
FRACTION_STEPS = (2, 1)  # 1/2 and 1/4 pixel
DIRECTIONS = ((-1, -1), (0, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (0, 1), (1, 1))
SAD_LAMBDA = 0.366  # lambda_SAD = sqrt(0.134) * step, the classical relation (DESIGN.md)

RateOf = Callable[[np.ndarray], np.ndarray]  # (Hb, Wb, 2) differences -> (Hb, Wb) bits


class BlockSearch:
    """Search state for one frame: the target luma, the interpolated reference, the best field."""

    def __init__(
        self, target_luma: torch.Tensor, reference: InterpolatedFrame, step_8bit: float, rate_of: RateOf
    ):
        self.target = target_luma
        self.reference = reference
        self.lam = SAD_LAMBDA * step_8bit
        self.rate_of = rate_of
        h, w = target_luma.shape
        self.grid = (h // BLOCK, w // BLOCK)
        self.best = np.zeros((*self.grid, 2), dtype=np.int64)
        self.best_sad = self._sad(self.best)

    def _sad(self, field: np.ndarray) -> np.ndarray:
        pred = self.reference.predict_luma(torch.from_numpy(field).to(self.target.device))
        diff = (pred - self.target).abs().float() * 255
        hb, wb = self.grid
        return diff.view(hb, BLOCK, wb, BLOCK).sum(dim=(1, 3)).cpu().numpy()

    def consider(self, field: np.ndarray) -> None:
        """Keep, block by block, the vectors of `field` where they cost less. Both are priced
        against the predictors of the current best field (the best's own rate changes with it)."""
        field = np.clip(field, -MAX_VECTOR, MAX_VECTOR)
        predictor = median_prediction(self.best)
        sad = self._sad(field)
        cost = sad + self.lam * self.rate_of(field - predictor)
        better = cost < self.best_sad + self.lam * self.rate_of(self.best - predictor)
        self.best = np.where(better[..., None], field, self.best)
        self.best_sad = np.where(better, sad, self.best_sad)

    def propagate(self) -> None:
        """Try each block's neighbours' vectors."""
        for axis, shift in ((0, 1), (0, -1), (1, 1), (1, -1)):
            self.consider(np.roll(self.best, shift, axis=axis))

    def refine(self, steps: tuple[int, ...]) -> None:
        for step in steps:
            for dx, dy in DIRECTIONS:
                self.consider(self.best + np.array([dx * step, dy * step]))


def search(
    target_luma: torch.Tensor,
    reference: InterpolatedFrame,
    seed: np.ndarray,
    step_8bit: float,
    rate_of: RateOf,
) -> np.ndarray:
    """(Hb, Wb, 2) quarter-pixel vectors for the full-resolution target luma (H, W)."""
    s = BlockSearch(target_luma, reference, step_8bit, rate_of)
    s.consider(np.round(seed / 4).astype(np.int64) * 4)
    s.propagate()
    s.refine(WHOLE_STEPS)
    s.refine(FRACTION_STEPS)
    s.consider(median_prediction(s.best))
    s.propagate()
    s.refine((1,))
    return s.best
