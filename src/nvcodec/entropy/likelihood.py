"""Training-time rates: bits of integer symbols under the tables' discretised Gaussians."""

from __future__ import annotations

import math

import torch

from nvcodec.entropy.tables import SCALE_MIN, log_scale_step

MIN_LIKELIHOOD = 1e-9


def sigma_of_index(k: torch.Tensor) -> torch.Tensor:
    """The scale of (possibly fractional, straight-through) index k, as in tables.scale_of."""
    return torch.exp(math.log(SCALE_MIN) + k * log_scale_step())


def _cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x * (0.5**0.5))


def gaussian_bits(symbols: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """-log2 P(symbol) under a unit-bin discretised N(0, sigma), elementwise."""
    v = symbols.abs()
    p = _cdf((0.5 - v) / sigma) - _cdf((-0.5 - v) / sigma)
    return -torch.log2(p.clamp_min(MIN_LIKELIHOOD))
