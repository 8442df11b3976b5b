"""Deterministic integer probability tables: discretised Gaussians indexed by a scale index k.

Table k covers the symbol values -R_k..R_k plus one escape symbol (the last index) for values
outside. Each table is a list of integer counts c_i with sum(c) = 2**24 - n (n = alphabet size);
symbol i then has probability (c_i + 1) / 2**24 in the ANS coder (bitstream_spec.md, 5).
"""

from __future__ import annotations

import math

import numpy as np

PRECISION = 24
TOTAL = 1 << PRECISION
NUM_SCALES = 64
SCALE_MIN = 0.11
SCALE_MAX = 128.0
TAIL_SIGMAS = 6.0
MIN_ESCAPE = 1e-5


def scale_of(k: np.ndarray | float) -> np.ndarray | float:
    """The Gaussian standard deviation of (possibly fractional) scale index k."""
    step = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (NUM_SCALES - 1)
    return np.exp(math.log(SCALE_MIN) + np.asarray(k, dtype=np.float64) * step)


def log_scale_step() -> float:
    return (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (NUM_SCALES - 1)


def radius_of(sigma: float) -> int:
    """Largest symbol magnitude a table codes directly."""
    return max(1, math.ceil(TAIL_SIGMAS * sigma))


def quantize_pmf(pmf: np.ndarray) -> np.ndarray:
    """Integer counts proportional to `pmf` with sum exactly TOTAL - len(pmf).

    Floors the scaled probabilities, then hands the remainder out one count at a time to the
    entries with the largest fractional parts (ties to the lower index): fully deterministic.
    """
    n = len(pmf)
    budget = TOTAL - n
    scaled = pmf / pmf.sum() * budget
    counts = np.floor(scaled).astype(np.int64)
    remainder = budget - int(counts.sum())
    order = np.lexsort((np.arange(n), -(scaled - counts)))
    counts[order[:remainder]] += 1
    return counts


def gaussian_counts(sigma: float) -> np.ndarray:
    """Counts of one table: values -R..R of a unit-bin discretised N(0, sigma), then the escape."""
    r = radius_of(sigma)
    edges = (np.arange(-r, r + 2, dtype=np.float64) - 0.5) / (sigma * math.sqrt(2.0))
    cdf = np.array([0.5 * math.erfc(-e) for e in edges])
    pmf = np.diff(cdf)
    escape = max(1.0 - pmf.sum(), MIN_ESCAPE)
    return quantize_pmf(np.append(pmf, escape))


def build_tables() -> tuple[np.ndarray, np.ndarray]:
    """All tables packed: (radius per k, counts padded with -1 to the longest table)."""
    tables = [gaussian_counts(float(scale_of(k))) for k in range(NUM_SCALES)]
    radius = np.array([(len(t) - 2) // 2 for t in tables], dtype=np.int32)
    packed = np.full((NUM_SCALES, max(len(t) for t in tables)), -1, dtype=np.int32)
    for k, t in enumerate(tables):
        packed[k, : len(t)] = t
    return radius, packed


def uniform_counts(n: int) -> np.ndarray:
    """A uniform table over n symbols (n a power of two up to 2**16, or 32)."""
    each, rest = divmod(TOTAL - n, n)
    if rest:
        raise ValueError(f"uniform table of {n} symbols does not divide {TOTAL - n}")
    return np.full(n, each, dtype=np.int64)
