"""Motion: the block vector field, coded against the median of decoded neighbours.

A P frame carries one vector per 16x16 (or, frame by frame, 32x32) luma block in quarter pixels.
Each vector is coded as its difference from a predictor made of already decoded vectors
(bitstream_spec.md, 7.2):

    row 0:   the left neighbour (0 for the first block)
    below:   componentwise median(A, B, C), B the block above, A the left one (B in column 0),
             C the above-right one (above-left in the last column, B when there is neither)

The differences are coded row by row, one group per row of blocks: the row's x components, then
its y components, with table indices index_table[qp, component, bucket]. A block's bucket is
min(4, bit_length(2 |A| + |AL| + |AR|)), with |.| = |dx| + |dy| of the differences coded for the
blocks above, above-left and above-right (0 outside the field, and in the first row): vectors
that agree with their neighbours come in patches.

On a P frame with flat blocks (models.flat_blocks, bitstream 2.4) the substream starts with their
map, one binary group per row, each flag's probability chosen by how many of the three blocks
above are flat; a flat block's difference is 0 and is not coded (its row group skips it).

Split blocks (bitstream 2.6): a block that is not flat may be split into four units of half its
side (8x8 in a 16x16 block, 16x16 in a 32x32 one), each with its own vector, the block's vector
plus a *delta*. The split map follows the flat map, coded as it is; after the rows of
differences, one group per row of blocks holds the deltas of its split blocks (the x components
of each block's units top-left, top-right, bottom-left, bottom-right, block after block, then
the y components), with the tables of bucket 4. The block vectors, their predictors and their
contexts are those of a field without split blocks: a split only refines the prediction inside
its block, and costs its four deltas.

Prediction offsets (bitstream 2.10): the substream starts with three signed integers, the whole
levels added to the Y, U and V prediction (models.inter), coded before everything else.

Half-pel frames (bitstream 2.18): after the offsets, one flag (probability 1/2) says whether the
frame's vectors are all whole multiples of a half pixel; then every difference and delta is coded
halved, in the same tables and contexts (the contexts read the coded values). At coarse qps a
vector's bits weigh more than its last quarter pixel of precision.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.entropy.context import QPS, capped_bit_length
from nvcodec.entropy.tables import SCALES
from nvcodec.errors import BitstreamError
from nvcodec.models import intra_blocks

MAX_VECTOR = 1 << 14  # quarter pixels; the encoder stays inside, the decoder clamps
VECTOR_BUCKETS = 5
# The probability, in 1/256, that a block is flat (models.flat_blocks) given how many of the blocks
# above-left, above and above-right are: flat blocks come in patches.
FLAT_PROBABILITIES = (24, 72, 112, 144)
# The probability, in 1/256, that a block that is not flat is split, by how many of the blocks
# above-left, above and above-right are.
SPLIT_PROBABILITIES = (24, 64, 112, 160)
UNITS = 4  # a split block's units: top-left, top-right, bottom-left, bottom-right
# Deltas are coded with the tables of the widest bucket: measured on the deltas the encoder chose
# (Foreman qp 32, Cockatoo qp 27), 28.1 and 40.5 bits per split block, against 27.9 and 52.4 with
# bucket 0's and no better with a context from the previous unit's delta.
DELTA_BUCKET = VECTOR_BUCKETS - 1
OFFSET_TABLE = 13  # the prediction offsets' table: zero costs 0.39 bits, +-1 3.2 (mostly 0 or +-1)
OFFSET_LIMIT = 255  # |offset| at most, in levels; a larger one is a bitstream error
HALF_PEL = 2  # quarter pixels per coded unit of a half-pel frame's vectors
HALF_PEL_PROBABILITY = 128  # of the half-pel flag, in 1/256


def vector_step(half_pel: bool | None) -> int:
    """Quarter pixels per coded unit of a frame's vector differences and deltas."""
    return HALF_PEL if half_pel else 1


@dataclass(frozen=True)
class MotionField:
    """A P frame's motion: one vector per block, the blocks' side, the flat blocks and the split
    blocks with their units' deltas."""

    vectors: np.ndarray  # (Hb, Wb, 2) quarter luma pixels
    block: int  # luma pixels per side of the motion blocks
    flat: np.ndarray | None = None  # (Hb, Wb) flat blocks (models.flat_blocks); None: no map coded
    split: np.ndarray | None = None  # (Hb, Wb) split blocks; None: no map coded
    deltas: np.ndarray | None = None  # (Hb, Wb, UNITS, 2) each unit's vector minus its block's
    offsets: tuple[int, int, int] | None = None  # levels added to the Y, U, V prediction; None: not coded
    modes: np.ndarray | None = None  # (Hm, Wm) intra mode per macroblock (models.intra_blocks); None: no map
    half_pel: bool | None = None  # vectors in half pixels (2.18); None: no flag coded
    neighbour_levels: bool = False  # the intra blocks' map may give modes 4-7 (2.19)

    @property
    def vector_step(self) -> int:
        """Quarter pixels per coded unit of the differences and deltas."""
        return vector_step(self.half_pel)

    @property
    def unit(self) -> int:
        """Luma pixels per side of what one vector of `unit_vectors` covers."""
        return self.block if self.split is None else self.block // 2

    def unit_vectors(self) -> np.ndarray:
        """The vectors motion compensation reads: the blocks', or with split blocks one per unit
        (2Hb, 2Wb, 2), the block's vector plus the unit's delta (0 in blocks not split), clamped."""
        if self.split is None:
            return self.vectors
        deltas = np.where(self.split[..., None, None], self.deltas, 0)
        return np.clip(unit_field(self.vectors[:, :, None] + deltas), -MAX_VECTOR, MAX_VECTOR)


def spread_units(per_block: np.ndarray) -> np.ndarray:
    """(2Hb, 2Wb, ...) each block's value (Hb, Wb, ...) on its four units."""
    return np.repeat(np.repeat(per_block, 2, axis=0), 2, axis=1)


def units_by_block(units: np.ndarray) -> np.ndarray:
    """(Hb, Wb, UNITS, ...) a unit field (2Hb, 2Wb, ...) gathered block by block, in unit order."""
    hu, wu = units.shape[:2]
    rest = units.shape[2:]
    split = units.reshape(hu // 2, 2, wu // 2, 2, *rest).swapaxes(1, 2)
    return split.reshape(hu // 2, wu // 2, UNITS, *rest)


def unit_field(by_block: np.ndarray) -> np.ndarray:
    """The unit field (2Hb, 2Wb, ...) of values gathered block by block (units_by_block's inverse)."""
    hb, wb = by_block.shape[:2]
    rest = by_block.shape[3:]
    return by_block.reshape(hb, wb, 2, 2, *rest).swapaxes(1, 2).reshape(2 * hb, 2 * wb, *rest)


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


def wavefronts(hb: int, wb: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, columns) of the blocks with equal j + 2i, in order. Block (i, j) needs (i, j - 1),
    (i - 1, j) and (i - 1, j + 1): every block of a front depends only on earlier fronts, so a
    front is decided (or reconstructed) at once, exactly as in raster order."""
    for front in range(wb + 2 * (hb - 1)):
        i = np.arange(max(0, -(-(front - wb + 1) // 2)), min(hb - 1, front // 2) + 1)
        yield i, front - 2 * i


def predictors_at(v: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """(n, 2) median predictors of blocks (i, j) from the vectors of the blocks before them."""
    wb = v.shape[1]
    has_left = (j > 0)[:, None]
    left = np.where(has_left, v[i, np.maximum(j - 1, 0)], 0)
    up = np.maximum(i - 1, 0)
    b = v[up, j]
    a = np.where(has_left, left, b)
    c = np.where((j + 1 < wb)[:, None], v[up, np.minimum(j + 1, wb - 1)],
                 np.where(has_left, v[up, np.maximum(j - 1, 0)], b))  # fmt: skip
    return np.where((i == 0)[:, None], left, median3(a, b, c))


def reconstruct_vectors(d: np.ndarray) -> np.ndarray:
    """The field from its coded differences, front by front (the order raster decoding allows)."""
    v = np.zeros_like(d)
    for i, j in wavefronts(*d.shape[:2]):
        v[i, j] = d[i, j] + predictors_at(v, i, j)
    return v


def neighbour_buckets(above_left: np.ndarray, above: np.ndarray, above_right: np.ndarray) -> np.ndarray:
    """Context buckets from the |dx| + |dy| of the differences above-left, above and above-right."""
    return capped_bit_length(2 * above + above_left + above_right, VECTOR_BUCKETS)


def difference_size(d: np.ndarray) -> np.ndarray:
    """|dx| + |dy| of vector differences (..., 2), capped at 2^20: what the contexts read."""
    return np.minimum(np.abs(d).sum(axis=-1), 1 << 20)


def _buckets_under(size: np.ndarray) -> np.ndarray:
    """Context buckets of the blocks under each row of difference sizes (..., Wb)."""
    framed = np.pad(size, [(0, 0)] * (size.ndim - 1) + [(1, 1)])
    return neighbour_buckets(framed[..., :-2], framed[..., 1:-1], framed[..., 2:])


def row_buckets(above: np.ndarray | None, width: int) -> np.ndarray:
    """(Wb,) context buckets of a row from the (Wb, 2) differences of the row above (None: first row)."""
    if above is None:
        return np.zeros(width, dtype=np.int64)
    return _buckets_under(difference_size(above))


def field_buckets(diff: np.ndarray) -> np.ndarray:
    """(Hb, Wb) context bucket of every block of an (Hb, Wb, 2) difference field: row_buckets of
    every row at once."""
    buckets = np.zeros(diff.shape[:2], dtype=np.int64)
    buckets[1:] = _buckets_under(difference_size(diff[:-1]))
    return buckets


def map_contexts(blocks: np.ndarray) -> np.ndarray:
    """(Hb, Wb) how many of each block's above-left, above and above-right blocks are set in a
    binary block map (0 in the first row and outside the field)."""
    framed = np.pad(blocks.astype(np.int64), ((1, 0), (1, 1)))[:-1]
    return framed[:, :-2] + framed[:, 1:-1] + framed[:, 2:]


def _map_rows(
    blocks: np.ndarray, table: tuple[int, ...], skip: np.ndarray | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(flags, probabilities) of each row of a binary block map, the blocks in `skip` left out."""
    probabilities = np.asarray(table)[map_contexts(blocks)]
    keep = np.ones(blocks.shape, dtype=bool) if skip is None else ~skip
    return [(blocks[i, keep[i]], probabilities[i, keep[i]]) for i in range(blocks.shape[0])]


def _read_map(
    decoder: SymbolDecoder, grid: tuple[int, int], table: tuple[int, ...], skip: np.ndarray | None = None
) -> np.ndarray:
    """A binary block map read row by row, each flag's probability from the row above; the
    blocks in `skip` have no flag (0)."""
    blocks = np.zeros(grid, dtype=bool)
    keep = np.ones(grid, dtype=bool) if skip is None else ~skip
    for i in range(grid[0]):
        contexts = map_contexts(blocks[max(i - 1, 0) : i + 1])[-1]
        blocks[i, keep[i]] = decoder.read_flags(np.asarray(table)[contexts[keep[i]]])
    return blocks


def _read_offsets(decoder: SymbolDecoder) -> tuple[int, int, int]:
    """The three prediction offsets at the start of a motion substream (2.10)."""
    offsets = decoder.read(np.full(3, OFFSET_TABLE))
    if np.abs(offsets).max() > OFFSET_LIMIT:
        worst = int(offsets[np.abs(offsets).argmax()])
        raise BitstreamError(f"prediction offset {worst} outside -{OFFSET_LIMIT}..{OFFSET_LIMIT}")
    return int(offsets[0]), int(offsets[1]), int(offsets[2])


def block_grid(frame_shape: tuple[int, ...], block: int) -> tuple[int, int]:
    """(Hb, Wb) motion blocks of block x block luma pixels (block / 2 of the tensor) covering a
    frame tensor (N, 6, h, w)."""
    half = block // 2
    return -(-frame_shape[2] // half), -(-frame_shape[3] // half)


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

    def delta_indices(self, qp: int) -> np.ndarray:
        """(2,) table indices of the x and y components of deltas at this qp."""
        return self.qp_indices(qp)[:, DELTA_BUCKET]

    def encode(self, field: MotionField, qp: int, tables: ProbabilityTables) -> bytes:
        """The motion substream: the prediction offsets and the half-pel flag, the flat-block map
        and the split map when there are, the differences of the blocks that are not flat (a flat block's vector
        must be its predictor), then the deltas of the split blocks."""
        vectors, flat, split, step = field.vectors, field.flat, field.split, field.vector_step
        d = vectors - median_prediction(vectors)
        assert not (d % step).any(), "a half-pel frame's vectors are whole half pixels"
        d //= step
        encoder = SymbolEncoder(tables)
        if field.offsets is not None:
            assert max(map(abs, field.offsets)) <= OFFSET_LIMIT, "offsets within the limit"
            encoder.add(np.asarray(field.offsets, dtype=np.int64), np.full(3, OFFSET_TABLE))
        if field.half_pel is not None:
            encoder.add_flags(np.array([field.half_pel]), np.array([HALF_PEL_PROBABILITY]))
        rows = [] if flat is None else _map_rows(flat, FLAT_PROBABILITIES, None)
        rows += [] if split is None else _map_rows(split, SPLIT_PROBABILITIES, flat)
        for flags, probabilities in rows:
            encoder.add_flags(flags, probabilities)
        coded = np.ones(d.shape[:2], dtype=bool)
        if flat is not None:
            assert not d[flat].any(), "a flat block's vector is its predictor"
            coded = ~flat
        for i in range(d.shape[0]):
            indices = self.row_indices(qp, d[i - 1] if i else None, d.shape[1])
            encoder.add(d[i, coded[i]].T, indices[:, coded[i]])
        if split is not None:
            assert flat is None or not (split & flat).any(), "a flat block is never split"
            assert not (field.deltas % step).any(), "a half-pel frame's deltas are whole half pixels"
            self._add_deltas(encoder, qp, split, field.deltas // step)
        if field.modes is not None:
            intra_blocks.write_map(encoder, field.modes, field.neighbour_levels)
        return encoder.finish()

    def _add_deltas(self, encoder: SymbolEncoder, qp: int, split: np.ndarray, deltas: np.ndarray) -> None:
        """One group per row of blocks: the x components of its split blocks' deltas, then the y."""
        indices = self.delta_indices(qp)[:, None]
        for i in range(split.shape[0]):
            row = deltas[i, split[i]].reshape(-1, 2).T
            encoder.add(row, np.broadcast_to(indices, row.shape))

    def _read_deltas(self, decoder: SymbolDecoder, qp: int, split: np.ndarray) -> np.ndarray:
        """(Hb, Wb, UNITS, 2) the deltas of the split blocks (0 elsewhere), row group by row group."""
        deltas = np.zeros((*split.shape, UNITS, 2), dtype=np.int64)
        indices = self.delta_indices(qp)[:, None]
        for i in range(split.shape[0]):
            n = int(split[i].sum())
            deltas[i, split[i]] = decoder.read(np.broadcast_to(indices, (2, n * UNITS))).T.reshape(
                n, UNITS, 2
            )
        return deltas

    def decode(
        self,
        stream: bytes,
        grid: tuple[int, int],
        qp: int,
        tables: ProbabilityTables,
        *,
        block: int,
        has_flat: bool,
        has_split: bool,
        has_offsets: bool,
        has_half_pel: bool,
        macroblocks: tuple[int, int] | None,
        has_neighbour_levels: bool,
    ) -> MotionField:
        """The field of a motion substream of `grid` blocks of `block` luma pixels; `has_flat`,
        `has_split`: the record says it holds a flat-block map, a split map; `has_offsets`: it
        starts with prediction offsets (2.10); `has_half_pel`: the half-pel flag follows them
        (2.18); `macroblocks`: the grid of the intra blocks' map that ends it (2.13), None when
        it has none; `has_neighbour_levels`: that map may give modes 4-7 (2.19)."""
        decoder = SymbolDecoder(tables, stream)
        offsets = _read_offsets(decoder) if has_offsets else None
        half_pel = bool(decoder.read_flags(np.array([HALF_PEL_PROBABILITY]))[0]) if has_half_pel else None
        step = vector_step(half_pel)
        flat = _read_map(decoder, grid, FLAT_PROBABILITIES) if has_flat else None
        split = _read_map(decoder, grid, SPLIT_PROBABILITIES, flat) if has_split else None
        coded = np.ones(grid, dtype=bool) if flat is None else ~flat
        d = np.zeros((*grid, 2), dtype=np.int64)
        for i in range(grid[0]):
            indices = self.row_indices(qp, d[i - 1] if i else None, grid[1])
            d[i, coded[i]] = decoder.read(indices[:, coded[i]]).T
        deltas = None if split is None else step * self._read_deltas(decoder, qp, split)
        modes = None
        if macroblocks is not None:
            modes = intra_blocks.read_map(decoder, macroblocks, has_neighbour_levels)
        decoder.finish()
        vectors = np.clip(reconstruct_vectors(step * d), -MAX_VECTOR, MAX_VECTOR)
        return MotionField(
            vectors, block, flat, split, deltas, offsets, modes, half_pel, has_neighbour_levels
        )
