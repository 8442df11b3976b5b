"""Table shifts: a frame moves the Laplacian scale of its latent's tables, per coding step and plane.

The fitted index table (nvcodec.entropy.context) is one set of tables for every picture; a smooth
picture then pays for zeros as if it were a textured one (Cockatoo's intra frame: half of its
bits). A frame flagged for table shifts starts its latent substream with one integer d per
(step, plane), step-major, and every symbol of that step and plane is coded with

    k' = family(k) * SCALES + clip(scale_index(k) + d, 0, SCALES - 1)

instead of k: the same dead-zone family, a scale about 1.245^d times as large (bitstream_spec.md,
6.6; the scale grid is 5.1.2's). The encoder picks each d for least bits (not normative).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from nvcodec.entropy.coder import MAGNITUDES, ProbabilityTables, SymbolDecoder
from nvcodec.entropy.context import PLANES, STEPS
from nvcodec.entropy.tables import SCALES
from nvcodec.errors import BitstreamError

GROUPS = STEPS * PLANES  # shifts per frame: step 0 luma, U, V, step 1 luma, ...
SHIFT_LIMIT = 12  # |d| at most; a larger one is a bitstream error
SHIFT_TABLE = 18  # the table the shifts are coded with: family 0, scale 1.04 (radius 15)


def shifted(k: np.ndarray, d: np.ndarray | int) -> np.ndarray:
    """Table indices k with their scale index moved by d (broadcast), clipped to the family."""
    family, index = np.divmod(k, SCALES)
    return family * SCALES + np.clip(index + d, 0, SCALES - 1)


def shift_step(k: np.ndarray, shifts: np.ndarray, step: int, planes: np.ndarray) -> np.ndarray:
    """Table indices k (channels, H, W) of one step, each channel's moved by the frame's shift of
    its plane (planes: (channels,)) at that step."""
    return shifted(k, shifts[step * PLANES + planes][:, None, None])


def read_shifts(decoder: SymbolDecoder) -> np.ndarray:
    """A frame's GROUPS shifts, from the start of its latent substream."""
    shifts = decoder.read(np.full(GROUPS, SHIFT_TABLE))
    if np.abs(shifts).max() > SHIFT_LIMIT:
        raise BitstreamError(
            f"table shift {int(shifts[np.abs(shifts).argmax()])} outside -{SHIFT_LIMIT}..{SHIFT_LIMIT}"
        )
    return shifts


# The encoder's choice (not normative).


def _descend(cost: Callable[[int], float]) -> int:
    """The d of least cost(d) reached from 0 by steps of one while the cost falls."""
    best, here = 0, cost(0)
    for direction in (-1, 1):
        while abs(best + direction) <= SHIFT_LIMIT and (there := cost(best + direction)) < here:
            best, here = best + direction, there
    return best


def own_bits(tables: ProbabilityTables, d: int) -> float:
    """The estimated bits of coding the shift d itself."""
    return float(tables.magnitude_bits(np.array(SHIFT_TABLE), np.array(d)))


def choose(
    tables: ProbabilityTables, k: np.ndarray, values: np.ndarray, planes: np.ndarray
) -> tuple[np.ndarray, float]:
    """(shifts (PLANES,), bits saved): for each plane's symbols of one step (k, values: (channels,
    H, W); planes: (channels,)) a shift of least estimated bits, its own bits included, found by a
    descent from 0 (the bits are close to convex in d); the saving is against shift 0 (not
    normative)."""
    best = np.zeros(PLANES, dtype=np.int64)
    saved = 0.0
    for p in np.unique(planes):
        cost = partial(_group_bits, tables, *_histogram(k[planes == p], values[planes == p]))
        best[p] = _descend(cost)
        saved += cost(0) - cost(int(best[p]))
    return best, saved


def _histogram(k: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tables, magnitudes, counts) of the distinct (k, |value|) pairs: what the bits depend on."""
    pairs = k.ravel() * MAGNITUDES + np.minimum(np.abs(values.ravel()), MAGNITUDES - 1)
    counts = np.bincount(pairs)
    seen = np.flatnonzero(counts)
    return seen // MAGNITUDES, seen % MAGNITUDES, counts[seen]


def _group_bits(
    tables: ProbabilityTables, k: np.ndarray, magnitudes: np.ndarray, counts: np.ndarray, d: int
) -> float:
    """Estimated bits of `counts` values of these magnitudes under tables k shifted by d, the
    shift's own bits included."""
    return float((tables.magnitude_bits(shifted(k, d), magnitudes) * counts).sum()) + own_bits(tables, d)


def worth_coding(tables: ProbabilityTables, saved: float) -> bool:
    """Whether shifts whose choice saved `saved` bits (each group against shift 0, its own bits
    counted) still save bits once all GROUPS of them are coded. The comparison is on the levels
    decided with the shifts, not on those the frame would have without them."""
    return saved > GROUPS * own_bits(tables, 0)
