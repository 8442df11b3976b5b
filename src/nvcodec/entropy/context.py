"""Which table codes each latent symbol: coding steps by frequency and integer contexts.

The latent has one channel per transform coefficient of an 8x8 block (64 luma, 16 + 16 chroma).
It is coded in steps, lowest frequencies first, every position at once within a step. A symbol's
table index is looked up from integers only (bitstream_spec.md, 6):

    activity a_p(x)  = sum over the channels of plane p coded in earlier steps of min(|s|, CAP)
                       (for step 0 of an inter frame: over all channels of the previous frame)
    context          = 2 a_p(x) + (sum of a_p over the 3x3 neighbourhood of x, zero outside)
    bucket           = min(bit_length(context), BUCKETS - 1)
    k                = index_table[qp, channel, bucket]

The index table is fitted to real symbols (nvcodec.train.fit), one per frame kind.
"""

from __future__ import annotations

import numpy as np

Y_CHANNELS, CHROMA_CHANNELS = 64, 16
CHANNELS = Y_CHANNELS + 2 * CHROMA_CHANNELS
PLANES = 3
CAP = 15
BUCKETS = 12
QPS = 64
Y_STEP_OF_FREQUENCY = (0, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4)  # u + v of an 8x8 coefficient
CHROMA_STEP_OF_FREQUENCY = (0, 1, 2, 3, 4, 4, 4)  # u + v of a 4x4 coefficient
STEPS = 5


def plane_of(channel: int) -> int:
    """0 for luma channels, 1 for U, 2 for V."""
    return 0 if channel < Y_CHANNELS else 1 + (channel - Y_CHANNELS) // CHROMA_CHANNELS


def frequency_of(channel: int) -> int:
    """u + v of the coefficient a channel starts as."""
    if channel < Y_CHANNELS:
        return channel // 8 + channel % 8
    c = (channel - Y_CHANNELS) % CHROMA_CHANNELS
    return c // 4 + c % 4


def step_of(channel: int) -> int:
    f = frequency_of(channel)
    return Y_STEP_OF_FREQUENCY[f] if channel < Y_CHANNELS else CHROMA_STEP_OF_FREQUENCY[f]


STEP_CHANNELS = tuple(
    np.array([c for c in range(CHANNELS) if step_of(c) == j], dtype=np.int64) for j in range(STEPS)
)
PLANE_OF_CHANNEL = np.array([plane_of(c) for c in range(CHANNELS)], dtype=np.int64)
DC_CHANNELS = np.array([0, Y_CHANNELS, Y_CHANNELS + CHROMA_CHANNELS], dtype=np.int64)


def activity(symbols: np.ndarray, channels: np.ndarray) -> np.ndarray:
    """(3, H, W) per-plane sums of min(|s|, CAP) over `channels` of a (C, H, W) symbol array."""
    mags = np.minimum(np.abs(symbols[channels]), CAP)
    out = np.zeros((PLANES,) + symbols.shape[1:], dtype=np.int64)
    np.add.at(out, PLANE_OF_CHANNEL[channels], mags)
    return out


def _box3(a: np.ndarray) -> np.ndarray:
    """Sum over each 3x3 neighbourhood (zero outside), per leading index."""
    p = np.pad(a, ((0, 0), (1, 1), (1, 1)))
    h, w = a.shape[1:]
    return sum(p[:, i : i + h, j : j + w] for i in range(3) for j in range(3))


def capped_bit_length(value: np.ndarray, count: int) -> np.ndarray:
    """min(bit_length(value), count - 1) of non-negative integers: the bucket of a context value."""
    bits = np.zeros(np.shape(value), dtype=np.int64)
    for b in range(1, count):
        bits += value >= (1 << (b - 1))
    return bits


def buckets(act: np.ndarray) -> np.ndarray:
    """(3, H, W) context buckets from a (3, H, W) activity map."""
    return capped_bit_length(2 * act + _box3(act), BUCKETS)
