"""Distortion measures: PSNR per plane and PSNR-YUV weighted 6:1:1."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nvcodec.frame import Frame

PLANE_WEIGHTS = (6, 1, 1)


def mse(a: np.ndarray, b: np.ndarray) -> float:
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(d * d))


def psnr_from_mse(value: float, peak: float = 255.0) -> float:
    """PSNR in dB, capped at 100 dB for identical planes."""
    if value <= 0:
        return 100.0
    return min(100.0, 10.0 * math.log10(peak * peak / value))


@dataclass(frozen=True)
class FramePsnr:
    """PSNR of one frame: the three planes and the 6:1:1 combination."""

    y: float
    u: float
    v: float

    @property
    def yuv(self) -> float:
        wy, wu, wv = PLANE_WEIGHTS
        return (wy * self.y + wu * self.u + wv * self.v) / (wy + wu + wv)


def frame_psnr(ref: Frame, test: Frame) -> FramePsnr:
    return FramePsnr(*(psnr_from_mse(mse(a, b)) for a, b in zip(ref.planes, test.planes)))
