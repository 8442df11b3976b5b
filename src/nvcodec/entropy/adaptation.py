"""Adaptive tables: a P frame codes each latent context with the table that would have coded the
P frames of its qp since the last intra frame in the fewest bits (bitstream_spec.md, 6.8).

The fitted index table is one set of tables for every clip; the tables a clip needs differ from
clip to clip. Encoder and decoder count, per qp and context (channel, bucket), the magnitudes of
the P frames' latent symbols (in BIN_EDGES bins), and before the next P frame of that qp pick,
for each context, the table k of least

    sum over bins of counts * length(k, bin)  +  PRIOR_FRAMES * last * cross(fitted, k)

with integer code lengths (fixed-point log2 of the tables' integer frequencies); the prior is
the mean length under k of the fitted table's symbols, times `last`, the context's symbols in the
last such frame, so that a context seen little stays near its fitted table. Everything is
integer, so every machine picks the same tables. An intra frame clears the counts, so seeking,
cutting and segments are unaffected.
"""

from __future__ import annotations

import numpy as np
import torch

from nvcodec.entropy.coder import EXP_BITS, ProbabilityTables
from nvcodec.entropy.context import BUCKETS, CHANNELS
from nvcodec.entropy.tables import PRECISION

# The magnitude bins counted: 0..15 each, then bins that double every two edges; the last is open.
BIN_EDGES = np.array(list(range(16)) + [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512], dtype=np.int64)
BINS = len(BIN_EDGES)
FRACTION_BITS = 16  # code lengths in 1/65536 bits
COUNT_LIMIT = 1 << 20  # a context's counts are halved (repeatedly) when their sum exceeds this
PRIOR_FRAMES = 3  # the prior weighs as much as this many frames like the last one (Foreman: 1 -2.8%, 3 -3.0%)
ESCAPE_BITS = int(np.log2(EXP_BITS)) + 1  # an escape's exponent and sign, before its mantissa


def log2_fixed(x: np.ndarray) -> np.ndarray:
    """2^16 log2(x) of integers 1 <= x < 2^31 by repeated squaring in integers, bit for bit on
    every machine: the floor, or one below it where the squarings' truncation tells."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.zeros_like(x)
    for shift in (16, 8, 4, 2, 1):  # bit length minus one
        big = (x >> (exponent + shift)) > 0
        exponent += np.where(big, shift, 0)
    y = x << (30 - exponent)  # in [2^30, 2^31): 1 + fraction, 30 fraction bits
    fraction = np.zeros_like(x)
    for bit in range(FRACTION_BITS - 1, -1, -1):
        y = (y * y) >> 30
        high = y >= 1 << 31
        fraction |= np.where(high, 1 << bit, 0)
        y = np.where(high, y >> 1, y)
    return (exponent << FRACTION_BITS) | fraction


def bin_of(magnitudes: np.ndarray) -> np.ndarray:
    """The bin of each magnitude: the last edge at or below it."""
    return np.searchsorted(BIN_EDGES, magnitudes, side="right") - 1


_BIN_OF_MAGNITUDE = bin_of(np.arange(BIN_EDGES[-1] + 1))  # a lookup for the counts


def _frequencies(tables: ProbabilityTables) -> tuple[np.ndarray, np.ndarray]:
    """(radius (K, 1), the tables' frequencies c + 1 (K, longest), 0 past each table's end)."""
    radius = tables.radius.astype(np.int64)[:, None]
    return radius, np.maximum(tables.counts.astype(np.int64) + 1, 0)


def bin_lengths(tables: ProbabilityTables) -> np.ndarray:
    """(tables, BINS) code length, in 1/65536 bits, of a positive symbol at each bin's lower
    edge under each table; an escaped one costs the escape symbol, its exponent, sign and
    mantissa (5.3)."""
    r, frequencies = _frequencies(tables)
    whole = PRECISION << FRACTION_BITS
    inside = np.take_along_axis(frequencies, r + np.minimum(BIN_EDGES, r), axis=1)
    escape = whole - log2_fixed(np.take_along_axis(frequencies, 2 * r + 1, axis=1))
    mantissa = log2_fixed(np.maximum(BIN_EDGES - r, 1)) >> FRACTION_BITS
    escaped = escape + ((ESCAPE_BITS + mantissa) << FRACTION_BITS)
    return np.where(BIN_EDGES <= r, whole - log2_fixed(inside), escaped)


def bin_masses(tables: ProbabilityTables) -> np.ndarray:
    """(tables, BINS) probability of each bin's magnitudes under each table, in 2^-24 (each row
    sums to 2^24): both signs, and the escape symbol's mass in the bin of magnitude radius + 1."""
    r, frequencies = _frequencies(tables)
    m = np.arange(max(BIN_EDGES[-1], int(r.max())) + 2)
    within = m <= r
    positive = np.take_along_axis(frequencies, np.where(within, r + m, 0), axis=1)
    negative = np.take_along_axis(frequencies, np.where(within, r - m, 0), axis=1)
    per_magnitude = np.where(within, positive + np.where(m > 0, negative, 0), 0)
    per_magnitude += np.where(m == r + 1, np.take_along_axis(frequencies, 2 * r + 1, axis=1), 0)
    return np.add.reduceat(per_magnitude, BIN_EDGES, axis=1)


def exact_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b.T of integer-valued float64 arrays, exact while every sum stays below 2^53. Through
    torch (its threads, as the coding sets them): numpy's BLAS pool busy-waited for minutes in
    the spawned workers of `nvenc --jobs 2` on a loaded machine."""
    return (torch.from_numpy(a) @ torch.from_numpy(b).T).numpy()


def halve_to_limit(counts: np.ndarray) -> np.ndarray:
    """Counts (..., BINS) whose rows sum above COUNT_LIMIT shifted right until they do not."""
    total = counts.sum(axis=-1, keepdims=True)
    shift = np.zeros_like(total)
    while (over := (total >> shift) > COUNT_LIMIT).any():
        shift += over
    return counts >> shift


class TableAdaptation:
    """The counts of the P frames since the last intra frame, per qp; the tables they choose."""

    def __init__(self, tables: ProbabilityTables) -> None:
        self.lengths = bin_lengths(tables).astype(np.float64)  # exact: below 2^23
        # cross[t, k]: the mean code length under table k of table t's symbols, in 1/65536 bits
        # (the product is exact in float64: every sum is an integer below 2^47)
        cross = (
            exact_products(bin_masses(tables).astype(np.float64), self.lengths).astype(np.int64) >> PRECISION
        )
        self.cross = cross.astype(np.float64)
        self.counts: dict[int, np.ndarray] = {}  # qp -> (C, BUCKETS, BINS)
        self.last: dict[int, np.ndarray] = {}  # qp -> (C, BUCKETS) symbols of its last P frame

    def reset(self) -> None:
        """Forget every count (at an intra frame)."""
        self.counts.clear()
        self.last.clear()

    def add(self, qp: int, symbols: np.ndarray, buckets: np.ndarray) -> None:
        """Count a P frame's latent symbols (C, H, W) in their context buckets (C, H, W)."""
        channel = np.broadcast_to(np.arange(CHANNELS)[:, None, None], symbols.shape)
        magnitude_bin = _BIN_OF_MAGNITUDE[np.minimum(np.abs(symbols), BIN_EDGES[-1])]
        cell = (channel * BUCKETS + buckets) * BINS + magnitude_bin
        frame = np.bincount(cell.ravel(), minlength=CHANNELS * BUCKETS * BINS).reshape(
            CHANNELS, BUCKETS, BINS
        )
        frame = halve_to_limit(frame)
        self.counts[qp] = halve_to_limit(self.counts.get(qp, 0) + frame)
        self.last[qp] = frame.sum(axis=-1)

    def table(self, qp: int, fitted: np.ndarray) -> np.ndarray:
        """(C, BUCKETS) table indices for the next P frame of qp: in each context the table of
        least total length over its counts and, as a prior, PRIOR_FRAMES times as many symbols
        as the last frame had there distributed as the fitted table expects (ties to the lower
        index); `fitted` where the context has neither."""
        if qp not in self.counts:
            return fitted
        counts = self.counts[qp].reshape(-1, BINS)
        prior = PRIOR_FRAMES * self.last[qp].ravel()
        chosen = fitted.ravel().copy()
        seen = np.flatnonzero(counts.sum(axis=1) + prior > 0)
        # exact in float64: every product and sum is an integer below 2^53
        lengths = exact_products(counts[seen].astype(np.float64), self.lengths)
        lengths += prior[seen, None] * self.cross[chosen[seen]]
        chosen[seen] = np.argmin(lengths, axis=1)
        return chosen.reshape(fitted.shape)
