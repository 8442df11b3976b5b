"""Half-pel frames (bitstream 2.18): the flag after the prediction offsets, the halved differences
and deltas, the search that keeps to whole half pixels, the encoder's choice and the round trip."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from tests.test_codec import HEIGHT, WIDTH, decode, encode_frames, make_weights

from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder
from nvcodec.entropy.tables import build_tables
from nvcodec.models.compensation import InterpolatedFrame
from nvcodec.models.layout import frame_to_tensor, quantize_pixels
from nvcodec.models.motion import (
    HALF_PEL,
    HALF_PEL_PROBABILITY,
    OFFSET_TABLE,
    UNITS,
    MotionCoder,
    MotionField,
    median_prediction,
)
from nvcodec.sample import synthetic_frames

TABLES = ProbabilityTables(*build_tables())
GRID = (4, 5)


def _field(half_pel: bool | None, seed: int = 0) -> MotionField:
    """A field of whole half pixels with a flat block, a split one and prediction offsets."""
    rng = np.random.default_rng(seed)
    vectors = HALF_PEL * rng.integers(-20, 20, size=(*GRID, 2))
    flat = np.zeros(GRID, dtype=bool)
    flat[1, 2] = True
    vectors[1, 2] = median_prediction(vectors)[1, 2]  # a flat block's vector is its predictor
    split = np.zeros(GRID, dtype=bool)
    split[3, 0] = True
    deltas = np.zeros((*GRID, UNITS, 2), dtype=np.int64)
    deltas[3, 0] = HALF_PEL * rng.integers(-3, 4, size=(UNITS, 2))
    return MotionField(vectors, 16, flat, split, deltas, (1, 0, -2), half_pel=half_pel)


def _read(stream: bytes, has_half_pel: bool) -> MotionField:
    return MotionCoder().decode(
        stream,
        GRID,
        40,
        TABLES,
        block=16,
        has_flat=True,
        has_split=True,
        has_offsets=True,
        has_half_pel=has_half_pel,
        macroblocks=None,
        has_neighbour_levels=False,
    )


@pytest.mark.parametrize("seed", range(4))
def test_a_half_pel_field_reads_back_as_written_in_fewer_bits(seed):
    half, quarter = (MotionCoder().encode(_field(h, seed), 40, TABLES) for h in (True, False))
    for stream, flag in ((half, True), (quarter, False)):
        read = _read(stream, has_half_pel=True)
        field = _field(flag, seed)
        assert read.half_pel is flag and read.offsets == field.offsets
        for name in ("vectors", "flat", "split", "deltas"):
            assert np.array_equal(getattr(read, name), getattr(field, name)), name
    assert len(half) < len(quarter)


def test_without_the_flag_the_substream_is_2_17s():
    stream = MotionCoder().encode(_field(None), 40, TABLES)
    read = _read(stream, has_half_pel=False)
    assert read.half_pel is None and np.array_equal(read.vectors, _field(None).vectors)
    assert read.vector_step == 1 and replace(read, half_pel=True).vector_step == HALF_PEL


def test_a_quarter_pixel_vector_is_never_coded_half_pel():
    field = _field(True)
    odd = field.vectors.copy()
    odd[0, 0, 0] += 1
    with pytest.raises(AssertionError, match="whole half pixels"):
        MotionCoder().encode(replace(field, vectors=odd), 40, TABLES)


@pytest.mark.parametrize("finest", [1, HALF_PEL])
def test_the_search_keeps_to_the_frames_precision(finest):
    """A texture moved by three quarter pixels: the quarter-pel search finds the move, the
    half-pel one the nearest half pixel, in the blocks and in the split blocks' units."""
    model = make_weights(4).model
    tables = model.probability_tables()
    texture = frame_to_tensor(next(synthetic_frames(96, 48, 1, seed=6)))
    reference = InterpolatedFrame(quantize_pixels(texture))
    moved = reference.predict(torch.full((3, 6, 2), 3, dtype=torch.int64), 16).values
    target = texture.clone()
    target[:, :4] = moved[:, :4].clamp(0, 1)
    flow = torch.zeros(1, 2, 24, 48)
    vectors = model.inter.search(target, reference, 22, tables, flow, 16, finest)
    field = model.inter.split_blocks(
        target, reference, 22, tables, flow, MotionField(vectors, 16, half_pel=finest == HALF_PEL)
    )
    units = field.unit_vectors()
    assert not (units % finest).any()
    inside = vectors[:2, 1:5]  # away from the picture's edges
    assert (np.abs(inside - 3) <= finest // 2).all() and (inside == 3).all() == (finest == 1)


def test_a_pan_by_whole_pixels_is_coded_half_pel_and_decodes_exactly():
    """Whole-pixel vectors cost fewer bits halved at the same prediction: from
    HALF_PEL_FROM_QP on, the encoder takes half-pel frames; the decoder reads them exactly."""
    weights = make_weights(4)
    params = CodingParams(qp=40, filter=ToolMode.OFF, enhance=ToolMode.OFF)
    source = list(synthetic_frames(WIDTH, HEIGHT, 4, seed=3, speed=2.0))
    coded, data = encode_frames(weights, params, source)
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    tables = weights.model.probability_tables()
    assert any(_half_pel_flag(c.record.substreams[0], tables) for c in coded[1:])


def _half_pel_flag(motion: bytes, tables: ProbabilityTables) -> bool:
    """The flag after a motion substream's prediction offsets."""
    decoder = SymbolDecoder(tables, motion)
    decoder.read(np.full(3, OFFSET_TABLE))
    return bool(decoder.read_flags(np.array([HALF_PEL_PROBABILITY]))[0])
