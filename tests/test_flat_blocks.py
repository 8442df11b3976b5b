"""Flat blocks (bitstream 2.4): the normative block means, the map in the motion substream, the
binary tables, and the encoder's choice through a whole round trip."""

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.test_codec import check_tool, encode, make_weights

from nvcodec.bitstream import FrameFlags, Tools
from nvcodec.codec.encoder import flat_blocks_possible, header_for
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.entropy.coder import SymbolDecoder, SymbolEncoder
from nvcodec.entropy.tables import PRECISION, binary_counts
from nvcodec.errors import InputError
from nvcodec.frame import VideoInfo
from nvcodec.models.compensation import InterpolatedFrame
from nvcodec.models.config import TINY
from nvcodec.models.flat_blocks import flatten, to_predictors
from nvcodec.models.inter import InterCoder
from nvcodec.models.layout import block_means, frame_to_tensor, quantize_pixels
from nvcodec.models.motion import MotionCoder, MotionField, map_contexts, median_prediction
from nvcodec.models.nvc import NvcModel
from nvcodec.sample import synthetic_frames
from nvcodec.weights import random_model


def _slow_means(fine: np.ndarray, block: int) -> np.ndarray:
    """The rule of bitstream_spec.md 7.9.1 written out block by block."""
    half = block // 2
    out = fine.copy()
    _, _, h, w = fine.shape
    for r in range(0, h, half):
        for c in range(0, w, half):
            for planes in ([0, 1, 2, 3], [4], [5]):
                region = fine[0, planes, r : r + half, c : c + half]
                n = region.size
                out[0, planes, r : r + half, c : c + half] = (int(region.sum()) + n // 2) // n
    return out


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 20), w=st.integers(1, 20), block=st.sampled_from([16, 32]), seed=st.integers(0, 99))
def test_block_means_follow_the_spec_rule_at_every_size(h, w, block, seed):
    fine = np.random.default_rng(seed).integers(0, 255 * 64 + 1, size=(1, 6, h, w), dtype=np.int32)
    got = block_means(torch.from_numpy(fine), block).numpy()
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, _slow_means(fine, block))


def test_flatten_changes_only_the_flagged_blocks():
    rng = np.random.default_rng(1)
    fine = torch.from_numpy(rng.integers(0, 255 * 64, size=(1, 6, 20, 28), dtype=np.int32))
    flat = np.zeros((3, 4), dtype=bool)
    flat[1, 2] = flat[2, 3] = True  # an inner block and a partial corner block
    out = flatten(fine, flat, 16).numpy()
    means = _slow_means(fine.numpy(), 16)
    mask = np.zeros((20, 28), dtype=bool)
    mask[8:16, 16:24] = mask[16:, 24:] = True
    np.testing.assert_array_equal(out[..., mask], means[..., mask])
    np.testing.assert_array_equal(out[..., ~mask], fine.numpy()[..., ~mask])


def test_binary_tables_sum_to_the_coder_total_and_keep_their_probability():
    for p in (1, 8, 128, 255):
        counts = binary_counts(p)
        assert counts.sum() + 2 == 1 << PRECISION  # frequencies are counts + 1 (5.2.2)
        assert counts[1] + 1 == p << (PRECISION - 8)
    with pytest.raises(ValueError):
        binary_counts(0)


def test_flags_round_trip_and_cost_what_their_probability_says():
    rng = np.random.default_rng(2)
    tables = NvcModel(TINY).probability_tables()
    flags = rng.random((40, 50)) < 0.03
    probabilities = np.where(np.arange(50) % 2, 8, 200)[None].repeat(40, axis=0)
    encoder = SymbolEncoder(tables)
    for row, p in zip(flags, probabilities):
        encoder.add_flags(row, p)
    data = encoder.finish()
    decoder = SymbolDecoder(tables, data)
    got = np.stack([decoder.read_flags(p) for p in probabilities])
    decoder.finish()
    np.testing.assert_array_equal(got, flags)
    q = probabilities / 256
    ideal = -np.where(flags, np.log2(q), np.log2(1 - q)).sum()
    assert 8 * len(data) <= ideal + 64


def test_map_contexts_count_the_flat_blocks_above():
    flat = np.array([[1, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(map_contexts(flat), [[0, 0, 0, 0], [1, 2, 2, 2], [0, 0, 0, 0]])


def read_field(coder: MotionCoder, stream: bytes, grid: tuple[int, int], qp: int, tables, *, has_flat: bool,
               has_split: bool) -> MotionField:  # fmt: skip
    """A motion substream of 16x16 blocks without prediction offsets or intra blocks' map, read."""
    return coder.decode(
        stream,
        grid,
        qp,
        tables,
        block=16,
        has_flat=has_flat,
        has_split=has_split,
        has_offsets=False,
        has_half_pel=False,
        macroblocks=None,
        has_neighbour_levels=False,
    )


def test_motion_substream_round_trips_the_map_and_skips_flat_vectors():
    rng = np.random.default_rng(3)
    model = random_model(TINY, 0)
    tables, coder = model.probability_tables(), model.inter.motion
    flat = rng.random((6, 9)) < 0.3
    flat[2] = True  # a row with no vector to code: an empty group
    vectors = to_predictors(rng.integers(-40, 40, size=(6, 9, 2)), flat)
    assert not (vectors - median_prediction(vectors))[flat].any()
    with_map = coder.encode(MotionField(vectors, 16, flat), 30, tables)
    field = read_field(coder, with_map, (6, 9), 30, tables, has_flat=True, has_split=False)
    got, got_flat = field.vectors, field.flat
    np.testing.assert_array_equal(got, vectors)
    np.testing.assert_array_equal(got_flat, flat)
    without = coder.encode(MotionField(vectors, 16), 30, tables)
    field = read_field(coder, without, (6, 9), 30, tables, has_flat=False, has_split=False)
    got, none = field.vectors, field.flat
    assert none is None
    np.testing.assert_array_equal(got, vectors)


def test_a_map_of_only_flat_blocks_decodes_to_the_predictor_field():
    """Every block flat (what a hostile stream can say): no difference is read, every vector is
    its predictor from zero vectors, so all are zero."""
    model = random_model(TINY, 0)
    tables, coder = model.probability_tables(), model.inter.motion
    flat = np.ones((4, 5), dtype=bool)
    stream = coder.encode(MotionField(np.zeros((4, 5, 2), dtype=np.int64), 16, flat), 30, tables)
    field = read_field(coder, stream, (4, 5), 30, tables, has_flat=True, has_split=False)
    vectors, got = field.vectors, field.flat
    assert got.all() and not vectors.any()


@pytest.mark.parametrize("large", [ToolMode.OFF, ToolMode.ON])
def test_encoder_flags_flat_blocks_and_the_decoder_rebuilds_them(large, monkeypatch):
    """The synthetic clip's moving square uncovers what the reference never held: some blocks
    come out flat; with 32x32 motion blocks (cut at the 70x45 picture's edges), where the encoder
    finds none on so small a clip, a forced checkerboard map. The decoder's pictures are the
    encoder's; with flat blocks off the stream is 2.3 (large blocks allowed) and has none."""
    if large == ToolMode.ON:

        def checkerboard(self, x, reference, qp, tables, vectors, block, finest=1):
            flat = (np.indices(vectors.shape[:2]).sum(axis=0) % 2).astype(bool)
            return to_predictors(vectors, flat), flat

        monkeypatch.setattr(InterCoder, "flat_blocks", checkerboard)
    weights = make_weights(4)
    off_tools = dict(
        filter=ToolMode.OFF,
        enhance=ToolMode.OFF,
        table_shifts=ToolMode.OFF,
        split_blocks=ToolMode.OFF,
        six_tap=ToolMode.OFF,
        intra_prediction=ToolMode.OFF,
        skip_edges=ToolMode.OFF,
    )
    params = CodingParams(qp=30, large_blocks=large, **off_tools)
    source, coded, data = encode(weights, params, frames=4, seed=5)
    assert any(c.record.flags & FrameFlags.FLAT_BLOCKS for c in coded)
    large_flag = [bool(c.record.flags & FrameFlags.LARGE_BLOCKS) for c in coded[1:]]
    assert large_flag == [large == ToolMode.ON] * 3
    off = replace(params, flat_blocks=ToolMode.OFF, large_blocks=ToolMode.AUTO)
    check_tool(weights, coded, data, off, FrameFlags.FLAT_BLOCKS, Tools.FLAT_BLOCKS, ((2, 4), (2, 3)))


def test_the_encoder_makes_flat_what_motion_cannot_predict_and_nothing_else():
    """A flat grey target predicted from a textured reference: nearly every block goes flat, its
    vector becomes its predictor, the others keep theirs; the reference predicting itself: none."""
    model = make_weights(4).model
    tables = model.probability_tables()
    texture = frame_to_tensor(next(synthetic_frames(64, 48, 1, seed=6)))
    reference = InterpolatedFrame(quantize_pixels(texture))
    vectors = np.random.default_rng(7).integers(-8, 8, size=(3, 4, 2))
    grey = torch.full_like(texture, 0.5)
    moved, flat = model.inter.flat_blocks(grey, reference, 30, tables, vectors, 16)
    assert flat is not None and flat.mean() > 0.9
    np.testing.assert_array_equal(moved[~flat], vectors[~flat])
    assert not (moved - median_prediction(moved))[flat].any()
    still = np.zeros_like(vectors)
    same, none = model.inter.flat_blocks(texture, reference, 30, tables, still, 16)
    assert none is None and same is still


def test_flat_blocks_cannot_be_forced_on():
    with pytest.raises(InputError, match="--flat-blocks is auto or off"):
        CodingParams(flat_blocks=ToolMode.ON)


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        (CodingParams(table_shifts=ToolMode.OFF, split_blocks=ToolMode.OFF, six_tap=ToolMode.OFF), True),
        (
            CodingParams(
                flat_blocks=ToolMode.OFF,
                table_shifts=ToolMode.OFF,
                split_blocks=ToolMode.OFF,
                six_tap=ToolMode.OFF,
            ),
            False,
        ),
        (CodingParams(intra_period=1, table_shifts=ToolMode.OFF), False),  # no P frames
    ],
)
def test_header_allows_flat_blocks_where_a_p_frame_may_have_them(params, allowed):
    params = replace(params, intra_prediction=ToolMode.OFF, skip_edges=ToolMode.OFF)  # (2.8, 2.9 tools)
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert bool(header.tools & Tools.FLAT_BLOCKS) == allowed == flat_blocks_possible(params)
    assert (header.version == (2, 4)) == allowed
