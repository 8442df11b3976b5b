"""Skipped edges (bitstream 2.9): a P frame deblocks only the edges beside a coded or flat block or
between blocks that move differently; the rule, the filter restricted to it, the version it needs
and a round trip through the decoder."""

import io
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.test_codec import decode, encode, make_weights

from nvcodec.bitstream import BitstreamReader, FrameFlags
from nvcodec.codec.encoder import header_for, skip_edges_possible
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.errors import InputError
from nvcodec.frame import VideoInfo
from nvcodec.models.deblock import Edges, deblock
from nvcodec.models.inter import p_frame_edges
from nvcodec.models.layout import to_fine
from nvcodec.models.motion import MotionField


def test_an_edge_is_kept_beside_a_coded_block_or_between_different_vectors():
    coded = torch.tensor([[False, True, False], [False, False, False]])
    vectors = torch.zeros(2, 3, 2, dtype=torch.int64)
    vectors[1, 2] = torch.tensor([1, 0])  # a quarter pixel is a different vector
    edges = Edges.between(coded, vectors)
    assert edges.vertical.tolist() == [[True, True], [False, True]]
    assert edges.horizontal.tolist() == [[False, True, True]]


def _blocky(size: int = 32) -> torch.Tensor:
    """1/64 levels of a frame whose luma steps by 4 levels at every 8th column (blocking at qp 37)."""
    luma = 100 + 4 * (torch.arange(size) // 8 % 2).float().expand(size, size)
    frame = torch.cat([F.pixel_unshuffle(luma[None, None] / 255, 2), torch.full((1, 2, 16, 16), 0.5)], dim=1)
    return to_fine(frame)


def _edges(vertical: list[list[bool]], horizontal: list[list[bool]]) -> Edges:
    return Edges(torch.tensor(vertical), torch.tensor(horizontal))


def test_the_filter_changes_only_the_chosen_edges():
    fine = _blocky()
    every = deblock(fine, 37, torch.float32)
    assert torch.equal(deblock(fine, 37, torch.float32, _edges([[True] * 3] * 4, [[True] * 4] * 3)), every)
    none = deblock(fine, 37, torch.float32, _edges([[False] * 3] * 4, [[False] * 4] * 3))
    assert torch.equal(none, deblock(fine, 0, torch.float32))  # only rounded
    assert not torch.equal(none, every)
    one = _edges([[False, True, False]] + [[False] * 3] * 3, [[False] * 4] * 3)  # column 16, rows 0-7
    luma = F.pixel_shuffle(deblock(fine, 37, torch.float32, one)[:, :4], 2)[0, 0]
    filtered = F.pixel_shuffle(every[:, :4], 2)[0, 0]
    rounded = F.pixel_shuffle(none[:, :4], 2)[0, 0]
    assert torch.equal(luma[:8, 15:17], filtered[:8, 15:17])
    assert torch.equal(luma[8:], rounded[8:]) and torch.equal(luma[:, :15], rounded[:, :15])


def test_p_frame_edges_spread_split_units_and_flat_blocks_over_the_8x8_positions():
    """A 32x32 picture (4x4 positions) with 16x16 blocks: block 0 split, its unit 3 moved; block 3
    flat; one coded level in block 1."""
    split = np.array([[True, False], [False, False]])
    deltas = np.zeros((2, 2, 4, 2), dtype=np.int64)
    deltas[0, 0, 3] = (4, 0)
    field = MotionField(np.zeros((2, 2, 2), dtype=np.int64), 16, np.array([[False, False], [False, True]]),
                        split, deltas)  # fmt: skip
    levels = np.zeros((96, 4, 4), dtype=np.int64)
    levels[5, 0, 3] = -1
    edges = p_frame_edges(levels, field)
    expected_vertical = [[False, False, True], [True, True, False], [False, True, True], [False, True, True]]
    expected_horizontal = [[False, True, False, True], [False, True, True, True], [False, False, True, True]]
    assert edges.vertical.tolist() == expected_vertical
    assert edges.horizontal.tolist() == expected_horizontal


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        (
            CodingParams(prediction_offsets=ToolMode.OFF),
            True,
        ),  # 2.10 adds the prediction offsets (2.11 adapts)
        (CodingParams(skip_edges=ToolMode.OFF), False),
        (CodingParams(intra_period=1), False),  # no P frames
    ],
)
def test_header_skips_edges_where_a_stream_has_p_frames(params, allowed):
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert header.skip_edges == allowed == skip_edges_possible(params)
    assert header.version == ((2, 9) if allowed else (2, 8))


def test_on_is_refused():
    with pytest.raises(InputError, match="--skip-edges is auto or off"):
        CodingParams(skip_edges=ToolMode.ON)


def test_the_decoder_deblocks_as_the_stream_says():
    """Coded with and without skipped edges, each stream decodes to the encoder's pictures, and
    the P frames differ between the two: the rule changed what the filter did."""
    weights = make_weights(4)
    off = ToolMode.OFF
    params = CodingParams(qp=37, filter=off, enhance=off, prediction_offsets=off)  # edges alone differ
    pictures = []
    for mode in (ToolMode.AUTO, ToolMode.OFF):
        _, coded, data = encode(weights, replace(params, skip_edges=mode), frames=4, seed=5)
        assert BitstreamReader(io.BytesIO(data)).header.skip_edges == (mode == ToolMode.AUTO)
        for c, d in zip(coded, decode(weights, data)):
            assert d.recon_matches and d.picture.recon == c.picture.recon
        pictures.append([c.picture.recon for c in coded])
    assert pictures[0][0] == pictures[1][0]  # the intra frame deblocks every edge either way
    assert any(a != b for a, b in zip(pictures[0][1:], pictures[1][1:]))


def test_large_blocks_and_the_in_loop_filter_decode_to_the_encoders_pictures():
    """32x32 blocks on a picture whose height is no multiple of 32 (the block grid overhangs the
    positions), with the in-loop filter changing every prediction: the decoder's edges are the
    encoder's."""
    weights = make_weights(4, refiners=True)
    params = CodingParams(qp=30, filter=ToolMode.ON, enhance=ToolMode.OFF, large_blocks=ToolMode.ON)
    _, coded, data = encode(weights, params, frames=4, seed=5)
    assert all(
        c.record.flags & FrameFlags.LARGE_BLOCKS and c.record.flags & FrameFlags.FILTER for c in coded[1:]
    )
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
