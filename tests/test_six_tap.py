"""The six-tap interpolation filters (bitstream 2.7): the filter sets, the reference read through
either, the per-frame flag, and the encoder's choice through a whole round trip."""

from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch
from tests.test_codec import check_tool, decode, encode, make_weights

from nvcodec.bitstream import FrameFlags, Tools
from nvcodec.codec.encoder import SIX_TAP_UNTIL_QP, Encoder, header_for, six_tap_possible
from nvcodec.codec.frame_loop import interpolation_flag, interpolation_of
from nvcodec.codec.schedule import CodingParams, ToolMode
from nvcodec.frame import VideoInfo
from nvcodec.models.compensation import HEVC_FILTERS, SIX_TAP_FILTERS, InterpolatedFrame
from nvcodec.models.inter import InterCoder
from nvcodec.models.layout import frame_to_tensor, quantize_pixels
from nvcodec.sample import synthetic_frames

# groups of 3 P frames in the qp schedule, the 2.8 and 2.9 tools off (streams of 2.7 or 2.6)
GROUPS_OF_THREE = CodingParams(
    qp=30,
    filter=ToolMode.OFF,
    enhance=ToolMode.OFF,
    qp_offsets=(0, 2, 1),
    intra_prediction=ToolMode.OFF,
    skip_edges=ToolMode.OFF,
)


@pytest.mark.parametrize("filters", [HEVC_FILTERS, SIX_TAP_FILTERS], ids=lambda f: f.name)
def test_every_phase_sums_to_64_and_phase_0_is_the_whole_pixel(filters):
    assert len(filters.luma) == 4 and len(filters.chroma) == 8
    assert all(len(t) == 8 for t in filters.luma) and all(len(t) == 4 for t in filters.chroma)
    assert all(sum(t) == 64 for t in filters.luma + filters.chroma)
    assert filters.luma[0] == (0, 0, 0, 64, 0, 0, 0, 0) and filters.chroma[0] == (0, 64, 0, 0)


def test_six_taps_are_h264s_half_pel_filter_and_its_means_with_the_whole_pixel():
    half = np.array(SIX_TAP_FILTERS.luma[2])
    np.testing.assert_array_equal(half, 2 * np.array([0, 1, -5, 20, 20, -5, 1, 0]))
    whole = np.array(SIX_TAP_FILTERS.luma[0])
    np.testing.assert_array_equal(2 * np.array(SIX_TAP_FILTERS.luma[1]), whole + half)
    np.testing.assert_array_equal(2 * np.array(SIX_TAP_FILTERS.luma[3]), np.roll(whole, 1) + half)
    assert SIX_TAP_FILTERS.chroma[3] == (0, 40, 24, 0)  # bilinear in eighths


def _reference(seed: int = 1) -> InterpolatedFrame:
    frame = next(iter(synthetic_frames(64, 48, 1, seed=seed)))
    return InterpolatedFrame(quantize_pixels(frame_to_tensor(frame)))


def test_a_reference_read_through_other_filters_shares_its_planes():
    plain = _reference()
    six = plain.through(SIX_TAP_FILTERS)
    assert plain.through(HEVC_FILTERS) is plain and six.through(SIX_TAP_FILTERS) is six
    assert six.luma is plain.luma and six.chroma is plain.chroma
    assert (plain.filters, six.filters) == (HEVC_FILTERS, SIX_TAP_FILTERS)
    whole = torch.tensor([[[8, -16], [0, 0], [16, 8], [-8, 0]]] * 3)  # whole pixels in luma and chroma
    a, b = plain.predict(whole, 16), six.predict(whole, 16)
    assert torch.equal(a.fine, b.fine)  # the centre tap alone
    fractional = whole + torch.tensor([1, 2])
    a, b = plain.predict(fractional, 16), six.predict(fractional, 16)
    assert not torch.equal(a.fine, b.fine)
    assert (a.fine - b.fine).abs().float().mean() < 64 * 4  # both interpolate the same picture


def test_the_flag_names_the_filters():
    assert interpolation_flag(SIX_TAP_FILTERS) == FrameFlags.SIX_TAP and interpolation_flag(HEVC_FILTERS) == 0
    assert interpolation_of(FrameFlags.SIX_TAP | FrameFlags.FILTER) == SIX_TAP_FILTERS
    assert interpolation_of(FrameFlags.SPLIT_BLOCKS) == HEVC_FILTERS


@pytest.mark.parametrize(
    ("params", "allowed"),
    [
        (CodingParams(), True),
        (CodingParams(six_tap=ToolMode.ON), True),
        (CodingParams(six_tap=ToolMode.OFF), False),
        (CodingParams(intra_period=1), False),  # no P frames
    ],
)
def test_header_allows_six_taps_where_a_p_frame_may_use_them(params, allowed):
    params = replace(params, intra_prediction=ToolMode.OFF, skip_edges=ToolMode.OFF)  # (2.8, 2.9 tools)
    header = header_for(make_weights(), params, VideoInfo(64, 48, Fraction(25), 6))
    assert bool(header.tools & Tools.SIX_TAP) == allowed == six_tap_possible(params)
    assert (header.version == (2, 7)) == allowed


@pytest.mark.parametrize("refine", [ToolMode.OFF, ToolMode.ON])
def test_six_taps_forced_on_flag_every_p_frame_and_the_decoder_follows(refine):
    """Every P frame interpolated with six taps, with the in-loop filter off and on (its trial
    reads the same six-tap reference): the decoder's pictures are the encoder's; with the tool off
    the stream is 2.6 and no record has the flag."""
    weights = make_weights(4, refiners=refine == ToolMode.ON)
    params = CodingParams(
        qp=30,
        filter=refine,
        enhance=ToolMode.OFF,
        six_tap=ToolMode.ON,
        intra_prediction=ToolMode.OFF,
        skip_edges=ToolMode.OFF,
    )
    _, coded, data = encode(weights, params, frames=4, seed=5)
    assert not coded[0].record.flags & FrameFlags.SIX_TAP  # intra frames carry no motion
    assert all(c.record.flags & FrameFlags.SIX_TAP for c in coded[1:])
    assert all(bool(c.record.flags & FrameFlags.FILTER) == (refine == ToolMode.ON) for c in coded[1:])
    off = replace(params, six_tap=ToolMode.OFF)
    check_tool(weights, coded, data, off, FrameFlags.SIX_TAP, Tools.SIX_TAP, ((2, 7), (2, 6)))


def test_auto_tries_both_sets_on_the_first_p_frame_of_each_group_and_keeps_the_winner(monkeypatch):
    """With offsets of period 3, frames 1, 4 and 7 try both sets and the frames after each use its
    winner (the stream decodes to the encoder's pictures whichever wins); above SIX_TAP_UNTIL_QP
    no frame tries the six taps."""
    tried: list[tuple[int, int]] = []
    choose = Encoder._interpolations

    def recording(self, plan):
        sets = choose(self, plan)
        tried.append((plan.index, len(sets)))
        return sets

    monkeypatch.setattr(Encoder, "_interpolations", recording)
    weights = make_weights(4)
    params = GROUPS_OF_THREE
    _, coded, data = encode(weights, params, frames=9, seed=5)
    assert tried == [(1, 2), (2, 1), (3, 1), (4, 2), (5, 1), (6, 1), (7, 2), (8, 1)]
    flags = [bool(c.record.flags & FrameFlags.SIX_TAP) for c in coded]
    assert flags[2:4] == [flags[1]] * 2 and flags[5:7] == [flags[4]] * 2 and flags[8] == flags[7]
    off = replace(params, six_tap=ToolMode.OFF)
    check_tool(weights, coded, data, off, FrameFlags.SIX_TAP, Tools.SIX_TAP, ((2, 7), (2, 6)))
    tried.clear()
    _, coarse, _ = encode(
        weights, replace(params, qp=SIX_TAP_UNTIL_QP), frames=5, seed=5
    )  # P frames above it
    assert tried == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert not any(c.record.flags & FrameFlags.SIX_TAP for c in coarse)


def test_auto_follows_the_winner_of_each_groups_trial(monkeypatch):
    """Trials made to favour the eight taps, then the six, then the eight again (groups of 3 P
    frames): each group's frames carry the winner's flag, and the stream decodes to the encoder's
    pictures."""
    read_through = {}
    encode_with = InterCoder.encode

    def recording(self, x, reference, *args, **kwargs):
        read_through["filters"] = reference.filters
        return encode_with(self, x, reference, *args, **kwargs)

    judge = Encoder._trial

    def favouring(self, out, x):
        trial = judge(self, out, x)
        favoured = (HEVC_FILTERS, SIX_TAP_FILTERS)[(self.index - 1) // 3 % 2]
        return trial if read_through["filters"] == favoured else replace(trial, bytes=100 * trial.bytes)

    monkeypatch.setattr(InterCoder, "encode", recording)
    monkeypatch.setattr(Encoder, "_trial", favouring)
    weights = make_weights(4)
    params = GROUPS_OF_THREE
    _, coded, data = encode(weights, params, frames=9, seed=5)
    flags = [bool(c.record.flags & FrameFlags.SIX_TAP) for c in coded[1:]]
    assert flags == [False] * 3 + [True] * 3 + [False] * 2
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
