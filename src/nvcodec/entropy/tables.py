"""Deterministic integer probability tables: dead-zone Laplacians indexed by a table index k.

A dead-zone quantiser |s| = floor(|y| / step + theta) applied to a Laplacian of scale b (in units
of the step) gives P(0) = 1 - e^(-(1 - theta)/b) and P(|s| = n) proportional to e^(-n/b) beyond;
theta sets the weight of zero against the tail.
The tables cover that family on a grid: a family is one theta (FAMILY_THETAS), or one P(0)
(FAMILY_ZEROS: theta chosen per scale to give it, so zero's weight and the tail's width are set
apart), times SCALES log-spaced scales, k = family * SCALES + scale index. Fitting picks, for each context, the k that codes the observed
symbols in the fewest bits, so the grid only has to be fine enough.

Table k covers the symbol values -R_k..R_k plus one escape symbol (the last index) for values
outside. Each table is a list of integer counts c_i with sum(c) = 2**24 - n (n = alphabet size);
symbol i then has probability (c_i + 1) / 2**24 in the ANS coder (bitstream_spec.md, 5).
"""

from __future__ import annotations

import math

import numpy as np

PRECISION = 24
TOTAL = 1 << PRECISION
# Rounding offsets of the dead zones the families model; the negative ones widen the zero bin
# beyond any quantiser's, which fits a spike at zero on a wide tail (vector differences, RDO levels).
FAMILY_THETAS = (0.5, 0.3, 0.15, -1.0, -3.0)
# P(0) of the families after those (in weights since the 624-table set): a spike at zero on a wide tail of any
# width. Measured on Cockatoo's vector differences (24 frames, qp 42): 17% fewer bits than the
# best theta family in every context (106.9 against 120.8 kbit), most of it where the neighbours'
# differences are zero (P(0) 0.84 with a tail of ~10 quarter pixels).
FAMILY_ZEROS = (0.35, 0.5, 0.62, 0.72, 0.8, 0.87, 0.93, 0.97)
FAMILIES = len(FAMILY_THETAS) + len(FAMILY_ZEROS)
SCALES = 48
SCALE_MIN = 0.02
SCALE_MAX = 600.0
NUM_TABLES = FAMILIES * SCALES
TAIL_BITS = 20.0  # the table's radius reaches where the tail holds 2^-20 of the mass
MAX_RADIUS = 512
MIN_ESCAPE = 1e-6


def scale_of(index: int) -> float:
    """The Laplacian scale (in quantiser steps) of scale index 0..SCALES-1."""
    step = (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (SCALES - 1)
    return math.exp(math.log(SCALE_MIN) + index * step)


def table_parameters(k: int) -> tuple[float, float]:
    """(theta, scale) of table k."""
    family, index = divmod(k, SCALES)
    scale = scale_of(index)
    if family < len(FAMILY_THETAS):
        return FAMILY_THETAS[family], scale
    zero = FAMILY_ZEROS[family - len(FAMILY_THETAS)]
    return 1.0 + scale * math.log(1.0 - zero), scale  # P(0) = 1 - e^(-(1 - theta)/b) = zero


def radius_of(scale: float) -> int:
    """Largest symbol magnitude a table codes directly."""
    return int(min(MAX_RADIUS, max(1, math.ceil(scale * TAIL_BITS * math.log(2)))))


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


def deadzone_pmf(theta: float, scale: float, radius: int) -> np.ndarray:
    """Probabilities of -R..R and of the escape under the dead-zone Laplacian (theta, scale)."""
    n = np.arange(1, radius + 1, dtype=np.float64)
    p_zero = 1.0 - math.exp(-(1.0 - theta) / scale)
    # |s| = n for y/step in [n - theta, n + 1 - theta): mass e^-(n-theta)/b (1 - e^-1/b)
    p_n = np.exp(-(n - theta) / scale) * (1.0 - math.exp(-1.0 / scale))
    side = p_n / 2
    escape = max(1.0 - p_zero - p_n.sum(), MIN_ESCAPE)
    return np.concatenate([side[::-1], [p_zero], side, [escape]])


def table_counts(k: int) -> np.ndarray:
    theta, scale = table_parameters(k)
    return quantize_pmf(deadzone_pmf(theta, scale, radius_of(scale)))


def build_tables() -> tuple[np.ndarray, np.ndarray]:
    """All tables packed: (radius per k, counts padded with -1 to the longest table)."""
    tables = [table_counts(k) for k in range(NUM_TABLES)]
    radius = np.array([(len(t) - 2) // 2 for t in tables], dtype=np.int32)
    packed = np.full((NUM_TABLES, max(len(t) for t in tables)), -1, dtype=np.int32)
    for k, t in enumerate(tables):
        packed[k, : len(t)] = t
    return radius, packed


def binary_counts(p: int) -> np.ndarray:
    """The binary table (0, 1) whose 1 has probability p / 256, p in 1..255: counts one less
    than the frequencies (5.2.2)."""
    if not 1 <= p <= 255:
        raise ValueError(f"binary probability {p}/256 outside 1..255")
    one = p << (PRECISION - 8)
    return np.array([TOTAL - one - 1, one - 1], dtype=np.int64)


def uniform_counts(n: int) -> np.ndarray:
    """A uniform table over n symbols (n a power of two up to 2**16, or 32)."""
    each, rest = divmod(TOTAL - n, n)
    if rest:
        raise ValueError(f"uniform table of {n} symbols does not divide {TOTAL - n}")
    return np.full(n, each, dtype=np.int64)
