"""Bjøntegaard delta rate and PSNR between two rate-distortion curves.

`pchip` is the piecewise cubic Hermite interpolation of the JCT-VC/JVET common-test-condition
sheets (log-rate as a function of PSNR, integrated exactly over the PSNRs both curves cover);
`cubic` is the original VCEG-M33 method (a least-squares cubic fitted to each curve).
Negative BD-rate: the test needs fewer bits than the anchor at equal quality.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np


def _pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fritsch-Carlson derivatives at the knots, with the shape-preserving end conditions."""
    h = np.diff(x)
    delta = np.diff(y) / h
    n = len(x)
    d = np.zeros(n)
    if n == 2:
        return np.full(2, delta[0])
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1, w2 = 2 * h[k] + h[k - 1], h[k] + 2 * h[k - 1]
            d[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    d[0] = _end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _end_slope(h0: float, h1: float, d0: float, d1: float) -> float:
    s = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if s * d0 <= 0:
        return 0.0
    if d0 * d1 < 0 and abs(s) > abs(3 * d0):
        return 3 * d0
    return s


def _pchip_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    """Exact integral over [lo, hi] of the PCHIP interpolant through (x, y), x increasing."""
    d = _pchip_slopes(x, y)
    total = 0.0
    for k in range(len(x) - 1):
        a, b = max(lo, x[k]), min(hi, x[k + 1])
        if a >= b:
            continue
        h = x[k + 1] - x[k]
        coeffs = (
            y[k],
            h * d[k],
            3 * (y[k + 1] - y[k]) - h * (2 * d[k] + d[k + 1]),
            2 * (y[k] - y[k + 1]) + h * (d[k] + d[k + 1]),
        )
        ta, tb = (a - x[k]) / h, (b - x[k]) / h
        total += h * sum(c * (tb ** (i + 1) - ta ** (i + 1)) / (i + 1) for i, c in enumerate(coeffs))
    return total


def _cubic_integral(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> float:
    poly = np.polyint(np.polyfit(x, y, 3))
    return float(np.polyval(poly, hi) - np.polyval(poly, lo))


def _mean_over_overlap(
    xa: Sequence[float], ya: Sequence[float], xt: Sequence[float], yt: Sequence[float], method: str
) -> float:
    """Mean of y_test - y_anchor over the x range both curves cover."""
    curves = []
    for x, y in ((xa, ya), (xt, yt)):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        order = np.argsort(x)
        x, y = x[order], y[order]
        if len(x) < (4 if method == "cubic" else 2) or np.any(np.diff(x) <= 0):
            raise ValueError("each curve needs distinct points (4 for the cubic fit, 2 for pchip)")
        curves.append((x, y))
    lo = max(curves[0][0][0], curves[1][0][0])
    hi = min(curves[0][0][-1], curves[1][0][-1])
    if hi <= lo:
        raise ValueError("the two curves do not overlap")
    integral = {"pchip": _pchip_integral, "cubic": _cubic_integral}[method]
    return (integral(*curves[1], lo, hi) - integral(*curves[0], lo, hi)) / (hi - lo)


def bd_rate(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average rate difference in percent at equal PSNR (negative: the test saves bits)."""
    diff = _mean_over_overlap(psnr_anchor, np.log(rate_anchor), psnr_test, np.log(rate_test), method)
    return (math.exp(diff) - 1) * 100


def bd_psnr(
    rate_anchor: Sequence[float],
    psnr_anchor: Sequence[float],
    rate_test: Sequence[float],
    psnr_test: Sequence[float],
    method: str = "pchip",
) -> float:
    """Average PSNR difference in dB at equal rate (positive: the test is better)."""
    return _mean_over_overlap(np.log(rate_anchor), psnr_anchor, np.log(rate_test), psnr_test, method)


def between_points(
    anchor: Sequence[Mapping[str, float]],
    test: Sequence[Mapping[str, float]],
    measure: Callable[..., float] = bd_rate,
    method: str = "pchip",
    rate: str = "bits",
) -> float | None:
    """`measure` (bd_rate or bd_psnr) between two lists of RD points, dicts holding `rate` and
    "psnr_yuv"; None where the curves cannot be compared (no overlap, too few points)."""
    try:
        return measure([p[rate] for p in anchor], [p["psnr_yuv"] for p in anchor],
                       [p[rate] for p in test], [p["psnr_yuv"] for p in test], method)  # fmt: skip
    except ValueError:
        return None
