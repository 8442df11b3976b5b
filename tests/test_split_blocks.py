"""Split blocks (bitstream 2.6): a 16x16 motion block with four 8x8 units, each the block's
vector plus a coded delta; the map and deltas in the motion substream, the units' compensation,
and the encoder's choice through a whole round trip."""

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_codec import check_tool, encode, make_weights
from tests.test_flat_blocks import read_field

from nvcodec.bitstream import FrameFlags, FrameRecord, FrameType, Tools
from nvcodec.codec.encoder import header_for, split_blocks_possible
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import SymbolEncoder
from nvcodec.errors import BitstreamError, InputError
from nvcodec.frame import VideoInfo
from nvcodec.models.compensation import InterpolatedFrame
from nvcodec.models.config import TINY
from nvcodec.models.flat_blocks import to_predictors
from nvcodec.models.inter import InterCoder
from nvcodec.models.layout import frame_to_tensor, quantize_pixels
from nvcodec.models.motion import MAX_VECTOR, MotionField, spread_units, unit_field, units_by_block
from nvcodec.models.motion_search import search_units
from nvcodec.sample import synthetic_frames
from nvcodec.weights import random_model


def test_units_are_ordered_top_left_top_right_bottom_left_bottom_right():
    field = np.arange(4 * 6).reshape(4, 6)  # 2 x 3 blocks of 2 x 2 units
    by_block = units_by_block(field)
    assert by_block.shape == (2, 3, 4)
    assert by_block[0, 1].tolist() == [2, 3, 8, 9] and by_block[1, 2].tolist() == [16, 17, 22, 23]
    np.testing.assert_array_equal(unit_field(by_block), field)


def test_unit_vectors_add_the_deltas_of_split_blocks_only():
    vectors = np.array([[[4, 0], [-8, 12]]])
    split = np.array([[True, False]])
    deltas = np.zeros((1, 2, 4, 2), dtype=np.int64)
    deltas[0, 0] = [[1, 0], [0, 2], [-3, 0], [5, 5]]
    deltas[0, 1] = 99  # not split: never read
    units = MotionField(vectors, 16, None, split, deltas).unit_vectors()
    assert units.shape == (2, 4, 2)
    assert units[:, :2].reshape(4, 2).tolist() == [[5, 0], [4, 2], [1, 0], [9, 5]]
    assert (units[:, 2:] == [-8, 12]).all()
    assert MotionField(vectors, 16).unit_vectors() is vectors


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_motion_substream_round_trips_flat_and_split_maps_and_deltas(hb, wb, seed):
    rng = np.random.default_rng(seed)
    flat = rng.random((hb, wb)) < 0.25
    split = (rng.random((hb, wb)) < 0.5) & ~flat
    if hb > 1:
        split[0] = False  # a row with no split block: an empty group of deltas
    vectors = to_predictors(rng.integers(-40, 41, size=(hb, wb, 2)), flat)
    deltas = np.where(split[..., None, None], rng.integers(-6, 7, size=(hb, wb, 4, 2)), 0)
    model = random_model(TINY, 0)
    coder, tables = model.inter.motion, model.probability_tables()
    stream = coder.encode(MotionField(vectors, 16, flat, split, deltas), 30, tables)
    got = read_field(coder, stream, (hb, wb), 30, tables, has_flat=True, has_split=True)
    np.testing.assert_array_equal(got.vectors, vectors)
    np.testing.assert_array_equal(got.flat, flat)
    np.testing.assert_array_equal(got.split, split)
    np.testing.assert_array_equal(got.deltas, deltas)
    without = coder.encode(MotionField(vectors, 16, flat), 30, tables)
    assert len(without) <= len(stream)
    assert read_field(coder, without, (hb, wb), 30, tables, has_flat=True, has_split=False).split is None


def test_hostile_deltas_are_clamped_with_the_vectors():
    model = random_model(TINY, 0)
    coder, tables = model.inter.motion, model.probability_tables()
    vectors = np.array([[[MAX_VECTOR - 2, -MAX_VECTOR]]])
    deltas = np.array([[[[10, -10], [0, 0], [-5, 3], [1 << 20, 0]]]])
    stream = coder.encode(MotionField(vectors, 16, None, np.ones((1, 1), bool), deltas), 30, tables)
    got = read_field(coder, stream, (1, 1), 30, tables, has_flat=False, has_split=True).unit_vectors()
    top, bottom = MAX_VECTOR, -MAX_VECTOR
    assert got.reshape(4, 2).tolist() == [
        [top, bottom],
        [top - 2, bottom],
        [top - 7, bottom + 3],
        [top, bottom],
    ]


def test_split_blocks_are_refused_on_intra_frames():
    with pytest.raises(BitstreamError, match="on an intra frame"):
        FrameRecord(FrameType.INTRA, 30, FrameFlags.SPLIT_BLOCKS, (b"",), 0, 0)


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        (CodingParams(six_tap=ToolMode.OFF), True),
        (
            CodingParams(large_blocks=ToolMode.ON, six_tap=ToolMode.OFF),
            True,
        ),  # 32x32 blocks split into 16x16 units
        (CodingParams(split_blocks=ToolMode.OFF, six_tap=ToolMode.OFF), False),
        (CodingParams(intra_period=1), False),  # no P frames
    ],
)
def test_header_allows_split_blocks_where_a_p_frame_may_have_them(params, allowed):
    params = replace(params, intra_prediction=ToolMode.OFF, skip_edges=ToolMode.OFF)  # (2.8, 2.9 tools)
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert bool(header.tools & Tools.SPLIT_BLOCKS) == allowed == split_blocks_possible(params)
    assert (header.version == (2, 6)) == allowed


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([16, 32]))
def test_units_of_a_whole_block_predict_what_the_block_does(seed, block):
    """Motion compensation of a field of units carrying their blocks' vectors gives the blocks'
    prediction exactly (bitstream_spec.md 7.9), fractions, borders and far vectors included."""
    rng = np.random.default_rng(seed)
    reference = InterpolatedFrame(quantize_pixels(frame_to_tensor(next(synthetic_frames(80, 48, 1, seed=3)))))
    vectors = rng.integers(-70, 71, size=(-(-48 // block), -(-80 // block), 2))
    vectors[0, 0] = [MAX_VECTOR, -MAX_VECTOR]
    whole = reference.predict(torch.from_numpy(vectors), block).fine
    units = reference.predict(torch.from_numpy(spread_units(vectors)), block // 2).fine
    assert torch.equal(whole, units)


def test_split_blocks_cannot_be_forced_on():
    with pytest.raises(InputError, match="--split-blocks is auto or off"):
        CodingParams(split_blocks=ToolMode.ON)


@pytest.mark.parametrize(("block", "edge"), [(16, 40), (32, 48)])
def test_the_encoder_splits_blocks_that_straddle_two_motions(block, edge):
    """Left of x = edge the picture moved 3 pixels right, right of it 3 pixels left: the blocks
    that straddle the edge split, and their units on either side take the two motions (with
    32x32 blocks the 48-row picture cuts the second row of blocks: its units inside count)."""
    model = make_weights(4).model
    tables = model.probability_tables()
    texture = frame_to_tensor(next(synthetic_frames(96, 48, 1, seed=6)))
    reference = InterpolatedFrame(quantize_pixels(texture))
    luma = reference.luma
    moved = torch.cat([torch.roll(luma, 3, dims=1)[:, :edge], torch.roll(luma, -3, dims=1)[:, edge:]], dim=1)
    target = texture.clone()
    target[:, :4] = torch.nn.functional.pixel_unshuffle(moved[None, None].float() / 255, 2)
    inter, flow = model.inter, torch.zeros(1, 2, 24, 48)
    vectors = inter.search(target, reference, 22, tables, flow, block)
    field = inter.split_blocks(target, reference, 22, tables, flow, MotionField(vectors, block))
    assert field.split is not None and field.split[:, edge // block].all()
    assert field.split.sum() == field.split.shape[0]  # the blocks of one motion stay whole
    unit = block // 2
    inside = field.unit_vectors()[: 48 // unit, edge // unit - 1 : edge // unit + 1]
    assert (inside[:, 0, 0] == -12).all() and (inside[:, 1, 0] == 12).all()


@pytest.mark.parametrize("shift", [(1, 0), (3, 0), (0, 2), (-2, 2), (2, -1)])
def test_a_unit_finds_its_motion_pixels_away_from_its_block_and_seed(shift):
    """One 8x8 unit of a still picture moved by `shift` (x, y) pixels: neither its block, its
    neighbours nor its (zero) seed holds that vector, and the unit search finds it exactly (a
    one-pixel walk from the block's vector missed the moves down)."""
    sx, sy = shift
    texture = frame_to_tensor(next(synthetic_frames(96, 48, 1, seed=6)))
    reference = InterpolatedFrame(quantize_pixels(texture))
    luma = reference.luma.clone()
    luma[16:24, 40:48] = reference.luma[16 + sy : 24 + sy, 40 + sx : 48 + sx]  # reference(y + sy, x + sx)
    zeros = np.zeros((6, 12, 2), dtype=np.int64)

    def rate_of(d: np.ndarray, buckets: np.ndarray) -> np.ndarray:
        return np.abs(d).sum(axis=-1) * 1.0

    found = search_units(luma.float() / 255, reference, zeros, 1.0, rate_of, zeros, 8)
    assert found[2, 5].tolist() == [4 * sx, 4 * sy]  # quarter pixels
    assert not np.delete(found.reshape(-1, 2), 2 * 12 + 5, axis=0).any()  # the still units stay


def checkerboard_split(self, x, reference, qp, tables, flow, field):
    """Every other block that is not flat split, its units moved 1..3 quarter pixels."""
    split = (np.indices(field.vectors.shape[:2]).sum(axis=0) % 2).astype(bool)
    if field.flat is not None:
        split &= ~field.flat
    deltas = np.where(split[..., None, None], 1 + np.arange(8).reshape(4, 2) % 3, 0)
    return replace(field, split=split, deltas=deltas)


@pytest.mark.parametrize(
    ("large", "refine"),
    [(ToolMode.OFF, ToolMode.OFF), (ToolMode.ON, ToolMode.OFF), (ToolMode.OFF, ToolMode.ON)],
)
def test_encoder_flags_split_blocks_and_the_decoder_rebuilds_them(large, refine, monkeypatch):
    """A forced checkerboard of split blocks, of 16x16 blocks into 8x8 units or of 32x32 blocks
    (cut at the 70x45 picture's edges) into 16x16 units, beside the flat blocks the encoder
    chooses (16x16, no filter), and with the in-loop filter on every P frame: the decoder's pictures are the
    encoder's; with split blocks off the stream is 2.5 and has none."""
    monkeypatch.setattr(InterCoder, "split_blocks", checkerboard_split)
    weights = make_weights(4, refiners=refine == ToolMode.ON)
    params = CodingParams(
        qp=30,
        large_blocks=large,
        filter=refine,
        enhance=ToolMode.OFF,
        six_tap=ToolMode.OFF,
        intra_prediction=ToolMode.OFF,
        skip_edges=ToolMode.OFF,
    )
    _, coded, data = encode(weights, params, frames=4, seed=5)
    assert all(c.record.flags & FrameFlags.SPLIT_BLOCKS for c in coded[1:])
    assert all(bool(c.record.flags & FrameFlags.LARGE_BLOCKS) == (large == ToolMode.ON) for c in coded[1:])
    assert all(bool(c.record.flags & FrameFlags.FILTER) == (refine == ToolMode.ON) for c in coded[1:])
    if large == refine == ToolMode.OFF:
        assert any(c.record.flags & FrameFlags.FLAT_BLOCKS for c in coded)  # flat and split blocks together
    off = replace(params, split_blocks=ToolMode.OFF)
    check_tool(weights, coded, data, off, FrameFlags.SPLIT_BLOCKS, Tools.SPLIT_BLOCKS, ((2, 6), (2, 5)))


def test_the_spec_example_of_split_blocks():
    """bitstream_spec.md 5.4.3: the 2 x 3 field with block (1, 1) split, group by group."""
    model = random_model(TINY, 0)
    coder, tables, qp = model.inter.motion, model.probability_tables(), 30
    vectors = np.array([[[4, 0], [4, 0], [5, 1]], [[3, 3], [8, 0], [-1, 7]]])
    split = np.array([[False, False, False], [False, True, False]])
    deltas = np.zeros((2, 3, 4, 2), dtype=np.int64)
    deltas[1, 1] = [[1, 0], [0, 0], [-2, 1], [0, 3]]
    tm = coder.qp_indices(qp)  # Tm[qp][component][bucket]
    by_hand = SymbolEncoder(tables)
    by_hand.add_flags([0, 0, 0], [24, 24, 24])
    by_hand.add_flags([0, 1, 0], [24, 24, 24])
    by_hand.add(np.array([[4, 0, 1], [0, 0, 1]]), np.array([tm[:, 0]] * 3).T)
    by_hand.add(np.array([[-1, 4, -6], [3, -1, 7]]), tm[:, [4, 3, 3]])
    by_hand.add(np.zeros((2, 0), dtype=np.int64), np.zeros((2, 0), dtype=np.int64))
    by_hand.add(np.array([[1, 0, -2, 0], [0, 0, 1, 3]]), np.array([tm[:, 4]] * 4).T)
    stream = coder.encode(MotionField(vectors, 16, None, split, deltas), qp, tables)
    assert stream == by_hand.finish()
    field = read_field(coder, stream, (2, 3), qp, tables, has_flat=False, has_split=True)
    assert units_by_block(field.unit_vectors())[1, 1].tolist() == [[9, 0], [8, 0], [6, 1], [8, 3]]
