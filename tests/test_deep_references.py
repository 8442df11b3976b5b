"""Deep references (bitstream 2.14): reconstructions kept in 10-bit levels, read by motion
compensation as finely as they are kept, shown in 8 bits; the version they need."""

from __future__ import annotations

import io

import pytest
import torch
from tests.test_codec import decode, encode, make_weights

from nvcodec.bitstream import BitstreamReader, FrameType
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.errors import InputError
from nvcodec.models.compensation import HEVC_FILTERS, SIX_TAP_FILTERS, InterpolatedFrame
from nvcodec.models.deblock import deblock, rounded_levels
from nvcodec.models.layout import grid_levels, tensor_to_frame


def _levels(bits: int, seed: int, shape: tuple[int, ...] = (1, 6, 24, 40)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, (255 << (bits - 8)) + 1, shape, generator=g, dtype=torch.int32)


def _vectors(seed: int, grid: tuple[int, int] = (3, 5)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-40, 41, (*grid, 2), generator=g, dtype=torch.int64)


@pytest.mark.parametrize("filters", [HEVC_FILTERS, SIX_TAP_FILTERS], ids=lambda f: f.name)
def test_an_8_bit_picture_read_at_10_bits_predicts_the_same_levels(filters):
    """4v in 10 bits is v in 8: the finer rounding shift makes every prediction agree."""
    x = _levels(8, seed=1).float() / 255
    shallow, deep = (InterpolatedFrame(x, bits).through(filters) for bits in (8, 10))
    for seed in range(4):
        vectors = _vectors(seed)
        assert torch.equal(deep.predict(vectors, 16).fine, shallow.predict(vectors, 16).fine)
        assert torch.equal(deep.luma_blocks(vectors, 16), shallow.luma_blocks(vectors, 16))


def test_quarter_levels_reach_the_prediction():
    """A whole-pixel read gives the 10-bit level at 16 times (1/64 levels); the 8-bit rounding of
    the same picture would lose the quarters."""
    levels = _levels(10, seed=2)
    deep = InterpolatedFrame(levels.float() / 1020, 10)
    still = torch.zeros(3, 5, 2, dtype=torch.int64)
    assert torch.equal(deep.predict(still, 16).fine, levels << 4)
    rounded = InterpolatedFrame(((levels + 2) >> 2).float() / 255, 8)
    assert not torch.equal(rounded.predict(still, 16).fine, levels << 4)


def test_fp16_holds_every_10_bit_level():
    levels = torch.arange(1021, dtype=torch.int32)
    assert torch.equal(grid_levels((levels.float() / 1020).half(), 10), levels)


def test_10_bit_levels_are_the_nearest_that_round_to_the_8_bit_level():
    """(F + 8) >> 4, ties up, except the 1/64 remainders 24..31, which would round up in 8 bits
    from a level that (F + 32) >> 6 rounds down: they stay one quarter lower."""
    fine = torch.arange(0, 255 * 64 + 1, dtype=torch.int32)
    deep, eight = rounded_levels(fine, 10), rounded_levels(fine, 8)
    assert torch.equal(eight, (fine + 32) >> 6)
    assert torch.equal((deep + 2) >> 2, eight)
    moved = (fine % 64 >= 24) & (fine % 64 < 32)
    assert torch.equal(deep, ((fine + 8) >> 4) - moved.int())
    assert ((deep * 16 - fine).abs() <= 15).all()  # within a quarter level less 1/64


@pytest.mark.parametrize("qp", [0, 22, 37, 51])
def test_the_8_bit_picture_of_a_deep_reconstruction_is_the_8_bit_reconstruction(qp):
    """Deep references change what later frames copy, never what a frame shows."""
    fine = torch.randint(0, 255 * 64 + 1, (1, 6, 16, 24), generator=torch.Generator().manual_seed(qp))
    fine = fine.to(torch.int32)
    deep, eight = deblock(fine, qp, torch.float32, bits=10), deblock(fine, qp, torch.float32)
    assert tensor_to_frame(deep, 48, 32, 10) == tensor_to_frame(eight, 48, 32, 8)
    assert not torch.equal(grid_levels(deep, 10), 4 * grid_levels(eight, 8))


def test_the_shown_picture_rounds_10_bit_levels_half_up():
    levels = _levels(10, seed=4, shape=(1, 6, 8, 8))
    levels[0, 4, 0, 0] = 4 * 77 + 2  # half an 8-bit level: up
    levels[0, 4, 0, 1] = 4 * 77 + 1
    frame = tensor_to_frame(levels.float() / 1020, 16, 16, 10)
    assert frame.u[0, 0] == 78 and frame.u[0, 1] == 77
    expected = ((levels + 2) >> 2).float() / 255
    assert frame == tensor_to_frame(expected, 16, 16, 8)


def test_streams_with_p_frames_keep_10_bit_references_and_decode_exactly():
    weights = make_weights()
    _, coded, data = encode(weights, CodingParams(qp=30, pixel_dc=ToolMode.OFF), frames=4, seed=5)
    header = BitstreamReader(io.BytesIO(data)).header
    assert header.version == (2, 14) and header.deep_references
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    _, shallow, shallow_data = encode(
        weights, CodingParams(qp=30, deep_references=ToolMode.OFF), frames=4, seed=5
    )
    assert BitstreamReader(io.BytesIO(shallow_data)).header.version == (2, 13)
    assert shallow[0].record.substreams == coded[0].record.substreams  # the intra frame codes alike
    assert [c.picture.recon for c in shallow[1:]] != [c.picture.recon for c in coded[1:]]


def test_an_all_intra_stream_stays_below_2_14():
    _, coded, data = encode(make_weights(), CodingParams(qp=30, intra_period=1), frames=2)
    header = BitstreamReader(io.BytesIO(data)).header
    assert not header.deep_references and header.version < (2, 14)
    assert all(c.record.frame_type == FrameType.INTRA for c in coded)


def test_deep_references_on_is_refused() -> None:
    with pytest.raises(InputError, match="--deep-references is auto or off"):
        CodingParams(deep_references=ToolMode.ON)
