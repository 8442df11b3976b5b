"""Quality control (DCVC-FM 3.2): per-channel scalers interpolated log-linearly over qp 0..63.

The user-facing qp follows x264: 0 is the finest quantisation. DCVC's quality index is q = 63 - qp.
"""

from __future__ import annotations

import math

import torch
from torch import nn

QP_MAX = 63


def quality_fraction(qp: int) -> float:
    """q / 63 with q = 63 - qp: 1.0 at the finest qp, 0.0 at the coarsest."""
    if not 0 <= qp <= QP_MAX:
        raise ValueError(f"qp {qp} outside 0..{QP_MAX}")
    return (QP_MAX - qp) / QP_MAX


def lambda_of(qp: int, lambda_min: float, lambda_max: float) -> float:
    """The rate-distortion trade-off trained for qp (log-linear between the two ends)."""
    f = quality_fraction(qp)
    return math.exp(math.log(lambda_min) + f * (math.log(lambda_max) - math.log(lambda_min)))


class QpScaler(nn.Module):
    """s(q) = exp(ln s_min + q/63 (ln s_max - ln s_min)), learned per channel."""

    def __init__(self, channels: int, low: float, high: float) -> None:
        super().__init__()
        self.log_min = nn.Parameter(torch.full((channels,), math.log(low)))
        self.log_max = nn.Parameter(torch.full((channels,), math.log(high)))

    def forward(self, qp: int) -> torch.Tensor:
        f = quality_fraction(qp)
        return torch.exp(self.log_min + f * (self.log_max - self.log_min)).view(1, -1, 1, 1)
