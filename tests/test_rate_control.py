"""Rate control driven by a synthetic codec: bits = content * bpp(kind) * exp(-slope * (qp - 32)),
with noise, so that the controllers are tested without a network."""

import logging
import math
from fractions import Fraction

import numpy as np
import pytest

from nvcodec.codec.encoder import Encoder
from nvcodec.codec.rate_control import (
    INTRA_MISS,
    INTRA_START,
    MAX_STEP,
    PRIOR_SLOPE,
    WINDOW_SECONDS,
    BufferController,
    RateContext,
    make_controller,
)
from nvcodec.codec.schedule import (
    DEFAULT_QP_OFFSETS,
    INTRA_QP_OFFSET,
    QP_MAX,
    CodingParams,
    RateTarget,
    parse_bits,
)
from nvcodec.errors import InputError
from nvcodec.frame import VideoInfo
from nvcodec.weights import load_weights

FPS = 25
PIXELS = 352 * 288


def synthetic_bits(qp: int, intra: bool, content: float, slope: float, noise: float) -> int:
    bpp = 0.6 if intra else 0.05
    return max(8, int(PIXELS * bpp * content * math.exp(-slope * (qp - 32) + noise)))


def drive(controller: str, kbps: float, frames: int = 96, slope: float = 0.08, cut: int | None = None,
          content: float = 1.0, noise: float = 0.1, intra_period: int = -1, maxrate: float | None = None,
          bufsize: float | None = None, seed: int = 0):  # fmt: skip
    """(achieved kbit/s, frame qps, frame bits) of a run of `controller` on the synthetic codec."""
    rng = np.random.default_rng(seed)
    context = RateContext(Fraction(FPS), frames, DEFAULT_QP_OFFSETS, intra_period, PIXELS)
    rc = make_controller(RateTarget(kbps * 1000, controller, maxrate, bufsize), context)
    qps, bits = [], []
    for i in range(frames):
        position = i if intra_period < 0 else i % intra_period
        scale = content * (4.0 if cut is not None and i >= cut else 1.0)
        qp = rc.frame_qp(i, position)
        b = synthetic_bits(qp, position == 0, scale, slope, noise * rng.standard_normal())
        if (retry := rc.retry_qp(i, position, qp, b)) is not None:
            assert retry != qp
            qp, b = retry, synthetic_bits(retry, True, scale, slope, 0.0)
        rc.coded(i, position, qp, b)
        qps.append(qp)
        bits.append(b)
    return sum(bits) * FPS / frames / 1000, qps, bits


def base_qps(qps: list[int]) -> np.ndarray:
    """The base qp of each P frame (the frame qp less its scheduled offset)."""
    offsets = np.array(DEFAULT_QP_OFFSETS)
    return np.array([q - offsets[i % len(offsets)] for i, q in enumerate(qps)][1:])


@pytest.mark.parametrize("kbps", [60, 250, 450])
@pytest.mark.parametrize("slope", [0.05, 0.11, 0.17])
def test_model_controller_lands_within_two_percent(kbps, slope):
    achieved, qps, _ = drive("model", kbps, slope=slope)
    assert abs(achieved / kbps - 1) < 0.02, (achieved, qps)


def test_model_controller_moves_its_base_qp_in_bounded_steps_and_settles():
    _, qps, _ = drive("model", 250)
    base = base_qps(qps)
    assert np.abs(np.diff(base)).max() <= MAX_STEP
    settled = base[40:-8]  # the last frames may spend what is left
    assert settled.max() - settled.min() <= 3  # no limit cycle once the model has learned the clip


def test_model_controller_is_closer_than_the_buffer_rule_with_a_steady_qp():
    for slope in (0.06, 0.11, 0.16):
        model_errors, buffer_errors = [], []
        for seed in range(4):  # on average over the noise: either may land on the target by chance
            model, model_qps, _ = drive("model", 250, slope=slope, seed=seed)
            buffer, _, _ = drive("baseline", 250, slope=slope, seed=seed)
            model_errors.append(abs(model / 250 - 1))
            buffer_errors.append(abs(buffer / 250 - 1))
            assert np.abs(np.diff(base_qps(model_qps)[16:])).mean() < 0.5  # under one step every two frames
        assert np.mean(model_errors) < np.mean(buffer_errors)


def test_a_scene_cut_is_absorbed_and_the_target_still_met():
    achieved, qps, bits = drive("model", 250, frames=192, cut=64)
    assert abs(achieved / 250 - 1) < 0.02
    base = base_qps(qps)
    assert base[100:].mean() > base[40:63].mean() + 10  # four times the content: a much higher qp
    late = np.array(bits[128:]) * FPS / 1000
    assert abs(late.mean() / 250 - 1) < 0.15  # back on target well after the cut


@pytest.mark.parametrize("slope", [0.08, PRIOR_SLOPE])
def test_a_first_intra_frame_far_over_its_share_is_coded_again(slope):
    kbps, content = 60, 8.0  # the prior is eight times optimistic
    context = RateContext(Fraction(FPS), 96, DEFAULT_QP_OFFSETS, -1, PIXELS)
    rc = make_controller(RateTarget(kbps * 1000), context)
    share = INTRA_START * kbps * 1000 / FPS * 96  # the whole clip: shorter than INTRA_HORIZON
    first = rc.frame_qp(0, 0)
    first_bits = synthetic_bits(first, True, content, slope, 0.0)
    assert first_bits > 2 * share
    retry = rc.retry_qp(0, 0, first, first_bits)
    assert retry is not None and retry > first
    again = synthetic_bits(retry, True, content, slope, 0.0)
    assert again < first_bits / 3
    if slope == PRIOR_SLOPE:  # the model's slope is right: the retry lands within the share
        assert share / 1.2 < again <= share
    assert rc.retry_qp(0, 0, retry, int(share / 1.3)) is None  # a frame near its share stays


def test_a_first_intra_frame_far_under_its_share_is_coded_again_lower():
    kbps = 250
    context = RateContext(Fraction(FPS), 96, DEFAULT_QP_OFFSETS, -1, PIXELS)
    rc = make_controller(RateTarget(kbps * 1000), context)
    share = INTRA_START * kbps * 1000 / FPS * 96
    first = rc.frame_qp(0, 0)
    cheap = int(share / INTRA_MISS / 2)  # a flat picture: far cheaper than the prior said
    retry = rc.retry_qp(0, 0, first, cheap)
    assert retry is not None and retry < first


def test_periodic_intra_frames_are_planned_for():
    kbps, period = 250, 16
    achieved, qps, bits = drive("model", kbps, intra_period=period)
    assert abs(achieved / kbps - 1) < 0.02
    per_period = np.add.reduceat(np.array(bits[period:]), np.arange(0, len(bits) - period, period))
    assert np.abs(per_period * FPS / period / 1000 / kbps - 1).max() < 0.25  # every period near the target
    assert all(bits[i] > 3 * max(bits[i - 1], bits[i + 1]) for i in range(period, len(bits) - 1, period))


def test_buffer_rule_follows_dcvc_fm():
    achieved, qps, _ = drive("baseline", 250)
    assert qps[0] == 32 + INTRA_QP_OFFSET  # it starts at base q 32 (the intra frame finer)
    base = np.concatenate([[32], base_qps(qps)])
    assert (base[2::2] == base[1:-1:2]).all()  # frame sizes move it only after even frames
    assert len(set(base)) > 3  # and it does move
    assert abs(achieved / 250 - 1) < 0.15


@pytest.mark.parametrize(
    ("buffer", "target_buffer", "size", "step"),
    [
        (49_000, 0, 2_000, 12),  # buffer 50k > 10 x the 2k frame
        (49_000, 0, 8_000, 6),  # > 5 x the frame
        (49_000, 0, 20_000, 2),  # > 2 x the frame
        (0, 0, 12_000, 1),  # 11k over, more than half the frame
        (0, 0, 1_200, 0),  # 200 over: less than half a frame
        (-2_000, 0, 1_000, -1),  # 2k under, more than half a frame, buffer above -frame
        (-3_000, 0, 1_000, -2),  # buffer below -2 x the frame
        (-6_000, 0, 1_000, -6),
        (-11_000, 0, 1_000, -12),
        (5_000, 6_000, 1_000, 0),  # below the target buffer, but the buffer is still above a frame
    ],
)
def test_buffer_rule_steps(buffer, target_buffer, size, step):
    """Algorithm 1's branches on crafted buffers (average frame 1000 bits), steps in our qp."""
    context = RateContext(Fraction(1), None, (0,), -1, PIXELS)
    rc = BufferController(RateTarget(1000, "baseline"), context)
    rc.buffer, rc.target_buffer = float(buffer), float(target_buffer)
    rc.coded(2, 2, rc.frame_qp(2, 2), size)
    assert rc.base - 32 == step
    assert rc.target_buffer == pytest.approx(0.95 * (buffer + size - 1000))
    rc.coded(3, 3, rc.frame_qp(3, 3), 100 * size)  # odd frames only fill the buffer
    assert rc.base - 32 == step


def test_out_of_reach_targets_clamp_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="nvcodec"):
        _, qps, _ = drive("model", 50_000)
    assert min(qps[16:]) == 0
    warnings = [r.message for r in caplog.records if "above what qp 0 gives" in r.message]
    assert len(warnings) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nvcodec"):
        _, qps, _ = drive("model", 1, content=50.0)
    assert max(qps[16:]) == QP_MAX
    assert [r.message for r in caplog.records if f"below what qp {QP_MAX} gives" in r.message]


def vbv_fullness(bits: list[int], kbps: float) -> np.ndarray:
    """The leaky bucket after each P frame (the intra frame starts it), drained at kbps."""
    fullness, trace = 0.0, []
    for b in bits[1:]:
        fullness = max(0.0, fullness + b - kbps * 1000 / FPS)
        trace.append(fullness)
    return np.array(trace)


def test_vbv_cap_keeps_frames_inside_the_buffer():
    kbps, bufsize = 250, 40_000
    _, _, capped = drive("model", kbps, maxrate=kbps * 1000, bufsize=bufsize, cut=48)
    _, _, free = drive("model", kbps, cut=48)
    assert max(capped[49:60]) < max(free[49:60])  # after the cut (unforeseeable), peaks are capped
    assert vbv_fullness(free, kbps)[54:].max() > bufsize
    assert vbv_fullness(capped, kbps)[54:].max() <= bufsize  # once the frame that broke it drained


@pytest.mark.parametrize(
    ("text", "value"), [("800k", 800e3), ("1.5M", 1.5e6), ("2500000", 2.5e6), ("64kbps", 64e3), ("1G", 1e9)]
)
def test_bitrates_parse(text, value):
    assert parse_bits(text) == value


@pytest.mark.parametrize("text", ["", "fast", "1.5Q", "-5k", "0", "1e9", "999"])
def test_bad_bitrates_are_refused(text):
    with pytest.raises(InputError):
        parse_bits(text)


def test_a_buffer_smaller_than_a_frame_is_refused():
    context = RateContext(Fraction(25), 96, DEFAULT_QP_OFFSETS, -1, PIXELS)
    with pytest.raises(InputError, match="--bufsize"):
        make_controller(RateTarget(1e6, "model", maxrate=1e6, bufsize=1e4), context)


def test_targets_are_checked():
    with pytest.raises(InputError, match="--rc"):
        RateTarget(1e6, "magic")
    with pytest.raises(InputError, match="go together"):
        RateTarget(1e6, "model", maxrate=2e6)
    with pytest.raises(InputError, match="at least"):
        RateTarget(1e6, "model", maxrate=5e5, bufsize=1e6)


def test_an_input_of_unknown_length_plans_with_the_frames_asked_for(tiny_weights):
    """Stdin with --frames N: the header's count stays unknown, rate control plans for N frames."""
    info = VideoInfo(96, 64, Fraction(FPS), None)
    params = CodingParams(rate=RateTarget(2e5))
    encoder = Encoder(load_weights(tiny_weights), params, info, length_hint=12)
    assert encoder.header.frame_count is None
    assert encoder.rate._window_positions(0) == list(range(12))  # the whole clip, not a 2 s window
    unknown = Encoder(load_weights(tiny_weights), params, info)
    assert len(unknown.rate._window_positions(0)) == round(WINDOW_SECONDS * FPS)
