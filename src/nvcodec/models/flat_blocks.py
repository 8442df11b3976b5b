"""Flat blocks: P-frame motion blocks predicted by their prediction's mean level (bitstream 2.4).

Where motion compensation fails (occlusions, motion blur, moving texture the reference does not
hold) or copies what should not be copied (the reference's noise, at high quality), a block's
motion-compensated prediction can cost more to correct than a constant: the residual coder then
pays for the prediction's detail as well as the picture's. A flat block keeps only the
prediction's mean, per plane (the four luma phases together, each chroma plane alone), rounded in
integer 1/64 levels (bitstream_spec.md, 7.9.1); the residual codes the rest, as in an intra block
without directional prediction. Its vector is not coded: it is its median predictor.
"""

from __future__ import annotations

import numpy as np
import torch

from nvcodec.models.layout import block_means, spread_blocks
from nvcodec.models.motion import field_buckets, median_prediction, predictors_at, wavefronts
from nvcodec.models.motion_search import RateOf


def flatten(fine: torch.Tensor, flat: np.ndarray, block: int) -> torch.Tensor:
    """The prediction (1, 6, h, w) in 1/64 levels with the flagged (Hb, Wb) blocks made flat."""
    h, w = fine.shape[-2:]
    mask = torch.from_numpy(flat).to(fine.device)[None]
    return torch.where(spread_blocks(mask, block // 2, h, w), block_means(fine, block), fine)


def coding_cost(scaled: torch.Tensor, lam: float) -> torch.Tensor:
    """An estimate of D + lam R, in squared steps, of coding coefficients y / step: zeroed, their
    square; coded, a rounding error plus lam times about 4 + 2 log2 |u| bits (sign, magnitude,
    context). What a transform coder pays, where squared error alone would not tell a smooth block
    from a noisy one (not normative)."""
    u = scaled.abs().float()
    coded = 0.1 + lam * (4 + 2 * torch.log2(u.clamp(min=1)))
    return torch.minimum(u * u, coded)


def to_predictors(vectors: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """The field with every flat block's vector set to its median predictor, in coding order (what
    a decoder rebuilds from the vectors coded for the other blocks)."""
    v = vectors.copy()
    for i, j in wavefronts(*flat.shape):
        f = flat[i, j]
        v[i[f], j[f]] = predictors_at(v, i[f], j[f])
    return v


def vector_costs(vectors: np.ndarray, rate_of: RateOf, finest: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(bits of each block's vector difference, coded in units of `finest` quarter pixels, bits of
    a zero difference in the same context)."""
    d = (vectors - median_prediction(vectors)) // finest
    buckets = field_buckets(d)
    return rate_of(d, buckets), rate_of(np.zeros_like(d), buckets)
