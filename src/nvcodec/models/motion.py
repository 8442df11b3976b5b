"""Motion: the block vector field, coded against the median of decoded neighbours.

A P frame carries one vector per 16x16 luma block in quarter pixels. Each vector is coded as its
difference from a predictor made of already decoded vectors (bitstream_spec.md, 7.2):

    row 0:   the left neighbour (0 for the first block)
    below:   componentwise median(A, B, C), B the block above, A the left one (B in column 0),
             C the above-right one (above-left in the last column, B when there is neither)

The differences are coded row by row, one group per row of blocks: the row's x components, then
its y components, with table indices index_table[qp, component, bucket]. A block's bucket is
min(4, bit_length(2 |A| + |AL| + |AR|)), with |.| = |dx| + |dy| of the differences coded for the
blocks above, above-left and above-right (0 outside the field, and in the first row): vectors
that agree with their neighbours come in patches.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.context import QPS, capped_bit_length
from nvcodec.entropy.tables import SCALES
from nvcodec.models.compensation import BLOCK

MAX_VECTOR = 1 << 14  # quarter pixels; the encoder stays inside, the decoder clamps
VECTOR_BUCKETS = 5


def median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The componentwise median of three vectors (or fields)."""
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def median_prediction(v: np.ndarray) -> np.ndarray:
    """Predictors of every vector of an (Hb, Wb, 2) field from its decoded neighbours."""
    pred = np.zeros_like(v)
    pred[0, 1:] = v[0, :-1]
    if v.shape[0] > 1:
        b = v[:-1]
        a = np.concatenate([b[:, :1], v[1:, :-1]], axis=1)
        c = b.copy()
        c[:, :-1] = b[:, 1:]
        if v.shape[1] > 1:
            c[:, -1] = b[:, -2]
        pred[1:] = median3(a, b, c)
    return pred


def reconstruct_vectors(d: np.ndarray) -> np.ndarray:
    """The field from its coded differences, block by block in raster order."""
    hb, wb, _ = d.shape
    v = np.zeros_like(d)
    for i in range(hb):
        for j in range(wb):
            if i == 0:
                p = v[0, j - 1] if j else 0
            else:
                b = v[i - 1, j]
                a = v[i, j - 1] if j else b
                c = v[i - 1, j + 1] if j + 1 < wb else (v[i - 1, j - 1] if j else b)
                p = median3(a, b, c)
            v[i, j] = d[i, j] + p
    return v


def row_buckets(above: np.ndarray | None, width: int) -> np.ndarray:
    """(Wb,) context buckets of a row from the (Wb, 2) differences of the row above (None: first row)."""
    if above is None:
        return np.zeros(width, dtype=np.int64)
    size = np.pad(np.minimum(np.abs(above).sum(axis=-1), 1 << 20), 1)
    return capped_bit_length(2 * size[1:-1] + size[:-2] + size[2:], VECTOR_BUCKETS)


def field_buckets(diff: np.ndarray) -> np.ndarray:
    """(Hb, Wb) context bucket of every block of an (Hb, Wb, 2) difference field."""
    return np.stack([row_buckets(diff[i - 1] if i else None, diff.shape[1]) for i in range(diff.shape[0])])


def block_grid(frame_shape: tuple[int, ...]) -> tuple[int, int]:
    """(Hb, Wb) motion blocks of a frame tensor (N, 6, h, w): 16x16 luma = 8x8 of the tensor."""
    return -(-frame_shape[2] // (BLOCK // 2)), -(-frame_shape[3] // (BLOCK // 2))


class MotionCoder(nn.Module):
    """Codes a block vector field: differences from the median predictor, in row groups."""

    def __init__(self) -> None:
        super().__init__()
        # before fitting: a dead zone 0.3 table of scale ~14 quarter pixels in every context
        start = torch.full((QPS, 2, VECTOR_BUCKETS), SCALES + 30, dtype=torch.int16)
        self.register_buffer("index_table", start)

    def row_indices(self, qp: int, above: np.ndarray | None, width: int) -> np.ndarray:
        """(2, Wb) table indices of a row's x and y differences."""
        return self.indices(qp, row_buckets(above, width))

    def indices(self, qp: int, buckets: np.ndarray) -> np.ndarray:
        """(2, ...) table indices of the x and y differences of blocks in the given buckets."""
        return self.qp_indices(qp)[:, buckets]

    def qp_indices(self, qp: int) -> np.ndarray:
        """(2, VECTOR_BUCKETS) table indices of the x and y differences at this qp."""
        return self.index_table[qp].cpu().numpy().astype(np.int64)

    def encode(self, vectors: np.ndarray, qp: int, tables: ProbabilityTables) -> bytes:
        d = vectors - median_prediction(vectors)
        encoder = SymbolEncoder(tables)
        for i in range(d.shape[0]):
            encoder.add(d[i].T, self.row_indices(qp, d[i - 1] if i else None, d.shape[1]))
        return encoder.finish()

    def decode(self, stream: bytes, grid: tuple[int, int], qp: int, tables: ProbabilityTables) -> np.ndarray:
        decoder = SymbolDecoder(tables, stream)
        d = np.zeros((*grid, 2), dtype=np.int64)
        for i in range(grid[0]):
            d[i] = decoder.read(self.row_indices(qp, d[i - 1] if i else None, grid[1])).T
        decoder.finish()
        return np.clip(reconstruct_vectors(d), -MAX_VECTOR, MAX_VECTOR)
