"""The frame loop through the library API: schedule, decisions, bit-exact round trips, independent
segments, and decoding with a different float path."""

import copy
import io
from dataclasses import replace
from fractions import Fraction

import pytest
import torch

from nvcodec.bitstream import BitstreamReader, BitstreamWriter, FrameFlags, FrameType, Tools
from nvcodec.codec.decisions import FilterDecider, Trial, should_enhance
from nvcodec.codec.decoder import Decoder
from nvcodec.codec.encoder import Encoder, header_for, large_blocks_possible
from nvcodec.codec.schedule import CodingParams, RateTarget, ToolMode, plan_frame, served
from nvcodec.errors import InputError, WeightsError
from nvcodec.evaluation import code_sequence
from nvcodec.frame import VideoInfo
from nvcodec.metrics import frame_psnr
from nvcodec.models.config import TINY
from nvcodec.pipeline import with_following
from nvcodec.sample import synthetic_frames
from nvcodec.weights import Weights, default_weights_path, load_weights, random_model

WIDTH, HEIGHT = 70, 45  # odd on purpose: padded inside, cropped on output


def make_weights(seed: int = 0, refiners: bool = False) -> Weights:
    """Tiny random weights; with `refiners`, ConFRE's blocks are not the identity."""
    model = random_model(TINY, seed)
    if refiners:
        with torch.no_grad():
            for block in (model.context_filter, model.enhancer):
                block.tail.weight.normal_(0, 0.05)
    return Weights(model, bytes(range(32)), f"<random tiny seed {seed}>")


def encode(weights: Weights, params: CodingParams, frames: int = 6, seed: int = 0,
           device: str = "cpu", dtype: torch.dtype = torch.float32):  # fmt: skip
    """(source frames, the encoder's outputs, the .nvc bytes) of a synthetic clip."""
    source = list(synthetic_frames(WIDTH, HEIGHT, frames, seed=seed))
    return (source, *encode_frames(weights, params, source, device, dtype))


def encode_frames(weights: Weights, params: CodingParams, source: list, device: str = "cpu",
                  dtype: torch.dtype = torch.float32):  # fmt: skip
    """(the encoder's outputs, the .nvc bytes) of WIDTH x HEIGHT frames."""
    info = VideoInfo(WIDTH, HEIGHT, Fraction(25), len(source))
    encoder = Encoder(weights, params, info, torch.device(device), dtype)
    coded = [encoder.encode(f) for f in source]
    buf = io.BytesIO()
    writer = BitstreamWriter(buf, encoder.header)
    for c in coded:
        writer.write(c.record)
    return coded, buf.getvalue()


def decode(weights: Weights, data: bytes, **options):
    reader = BitstreamReader(io.BytesIO(data))
    decoder = Decoder(weights, reader.header, **options)
    return [decoder.decode(r) for r in reader]


def check_tool(weights: Weights, coded: list, data: bytes, off: CodingParams, flag: FrameFlags, bit: Tools,
               versions: tuple[tuple[int, int], tuple[int, int]]) -> None:  # fmt: skip
    """A tool's round trip (4 frames of seed 5, coded as `coded`/`data`): the decoder's pictures
    are the encoder's, and coded with `off` no record has `flag`, the header not `bit`, and the
    version falls from versions[0] to versions[1]."""
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    _, coded_off, data_off = encode(weights, off, frames=4, seed=5)
    assert not any(c.record.flags & flag for c in coded_off)
    headers = [BitstreamReader(io.BytesIO(d)).header for d in (data, data_off)]
    assert [h.version for h in headers] == list(versions)
    assert [bool(h.tools & bit) for h in headers] == [True, False]


def test_schedule_types_qp_and_refresh():
    params = CodingParams(qp=40, intra_period=4, refresh_period=3, qp_offsets=(0, 6, 4, 6, 2, 6, 4, 6))
    plans = [plan_frame(i, params) for i in range(9)]
    assert [p.frame_type for p in plans] == [FrameType.INTRA, *[FrameType.INTER] * 3] * 2 + [FrameType.INTRA]
    assert [p.position for p in plans] == [0, 1, 2, 3, 0, 1, 2, 3, 0]
    assert [p.qp for p in plans] == [37, 46, 44, 46, 37, 46, 44, 46, 37]  # intra frames 3 finer
    assert [p.refresh for p in plans] == [False, False, False, True, False, False, False, True, False]
    top = [plan_frame(i, CodingParams(qp=62)).qp for i in range(4)]
    assert top == [59, 63, 63, 63]  # clamped
    assert plan_frame(0, CodingParams(qp=1)).qp == 0
    assert plan_frame(0, CodingParams(qp=63)).qp == 60  # the intra offset holds at the top


def test_frames_near_the_end_give_up_the_finer_qp_of_frames_that_do_not_follow():
    params = CodingParams(qp=32)  # offsets (-3, 3, 2, 3, 1, 3, 2, 3, 0, 3, 2, 3, 1, 3, 2, 3)
    assert [served(p, params.qp_offsets) for p in range(8)] == [15, 0, 1, 0, 3, 0, 1, 0]
    assert [served(p, params.qp_offsets) for p in (8, 16, 24)] == [7, 15, 7]
    assert [plan_frame(i, params, 9).qp for i in range(9)] == [29, 35, 34, 35, 33, 35, 34, 35, 35]
    # frame 8 serves the 7 after it; as fewer follow, the finest offset that serves no more
    assert [plan_frame(8, params, n).qp for n in (10, 11, 12, 15, 16)] == [34, 34, 33, 33, 32]
    # every second group's finest frame 3 finer, unless too few follow
    assert [plan_frame(i, params, 96).qp for i in (8, 16, 24, 32, 64, 80)] == [32, 29, 32, 29, 29, 29]
    assert [plan_frame(80, params, n).qp for n in (90, 96)] == [32, 29]
    assert plan_frame(32, params, 40).qp == 32
    assert [plan_frame(16, params, n).qp for n in (20, 25, 32)] == [33, 32, 29]
    whole_groups = [plan_frame(i, params, 96).qp for i in range(96)]
    assert whole_groups == [plan_frame(i, params).qp for i in range(96)]  # the benchmark clips' schedule
    periodic = CodingParams(qp=32, intra_period=30)  # the next intra frame ends a group too
    assert [plan_frame(i, periodic).qp for i in (24, 28, 29, 30)] == [33, 34, 35, 29]


def test_reading_ahead_tells_how_many_frames_follow_near_the_end():
    frames = iter(range(6))  # any iterable: a pipe's frames are not counted beforehand
    assert list(with_following(frames, 3)) == [(0, None), (1, None), (2, None), (3, 2), (4, 1), (5, 0)]
    assert list(with_following([7], 8)) == [(7, 0)]


def test_the_encoder_codes_the_last_frame_at_the_coarsest_offset():
    weights = make_weights(4)
    params = CodingParams(qp=30, qp_offsets=(0, 3))
    for count, qps in ((3, [27, 33, 33]), (4, [27, 33, 30, 33])):
        _, coded, _ = encode(weights, params, frames=count, seed=2)
        assert [c.record.qp for c in coded] == qps


@pytest.mark.parametrize(
    "bad", [dict(qp=64), dict(intra_period=0), dict(intra_period=-2), dict(refresh_period=-1)]
)
def test_invalid_parameters_are_refused(bad):
    with pytest.raises(InputError):
        CodingParams(**bad)


def test_filter_decider_follows_confre():
    decider = FilterDecider(total_frames=100)
    better, worse = Trial(1000, 1.0), Trial(1000, 2.0)
    assert not decider.decide(1, better, worse)  # distortion must drop
    assert decider.decide(2, worse, Trial(1300, 1.9))  # first m=2: distortion alone
    assert decider.decide(3, worse, Trial(1300, 1.9))
    # then: (R_off - R_on) / R_off + 0.16 (1 - t/T) > 0
    assert not decider.decide(4, Trial(1000, 2.0), Trial(1200, 1.9))  # -0.2 + 0.154 < 0
    assert decider.decide(5, Trial(1000, 2.0), Trial(1100, 1.9))  # -0.1 + 0.152 > 0
    assert not decider.decide(90, Trial(1000, 2.0), Trial(1100, 1.9))  # late: -0.1 + 0.016 < 0
    decider.reset()
    assert decider.decide(91, worse, Trial(5000, 1.9))
    assert should_enhance(2.0, 1.0) and not should_enhance(1.0, 1.0)


def test_round_trip_is_bit_exact_with_every_tool_forced_on():
    weights = make_weights(1, refiners=True)
    params = CodingParams(qp=24, refresh_period=2, filter=ToolMode.ON, enhance=ToolMode.ON)
    source, coded, data = encode(weights, params)
    decoded = decode(make_weights(1, refiners=True), data)
    flags = [int(c.record.flags) for c in coded]
    assert flags[0] & ~FrameFlags.TABLE_SHIFTS == FrameFlags.ENHANCE
    assert all(f & FrameFlags.FILTER and f & FrameFlags.ENHANCE for f in flags[1:])
    assert [bool(f & FrameFlags.REFRESH) for f in flags] == [False, False, True, False, True, False]
    for c, d in zip(coded, decoded):
        assert d.recon_matches and d.output_matches
        assert d.output == c.picture.output and d.picture.recon == c.picture.recon
        assert d.output != d.picture.recon  # the enhancement really changed the picture
    skipped = decode(make_weights(1, refiners=True), data, enhance=False)
    assert all(d.output == c.picture.recon and d.output_matches is None for c, d in zip(coded, skipped))


def test_reports_give_what_the_stream_shows_without_its_enhancement():
    weights = make_weights(1, refiners=True)
    source, _, data = encode(weights, CodingParams(qp=24, enhance=ToolMode.ON), frames=4)
    on = code_sequence(weights, source, CodingParams(qp=24, enhance=ToolMode.ON))
    off = code_sequence(weights, source, CodingParams(qp=24, enhance=ToolMode.OFF))
    assert on.total_bytes == off.total_bytes  # the flag is a bit of a byte every record has
    skipped = decode(make_weights(1, refiners=True), data, enhance=False)
    for enhanced, plain, decoded, frame in zip(on.frames, off.frames, skipped, source):
        assert plain.unenhanced is None
        assert enhanced.unenhanced == plain.psnr == frame_psnr(frame, decoded.output) != enhanced.psnr
    assert "psnr_yuv_unenhanced" in on.to_dict()["per_frame"][0]
    assert "psnr_yuv_unenhanced" not in off.to_dict()["per_frame"][0]


def test_automatic_decisions_pick_one_of_two_real_codings(monkeypatch):
    """In auto mode both filter choices are coded; the decoder follows whichever was kept."""
    choices = iter([True, False, True, True, False])
    trials = []

    def decide(self, index, off, on):
        trials.append((off, on))
        return next(choices)

    monkeypatch.setattr(FilterDecider, "decide", decide)
    weights = make_weights(2, refiners=True)
    source, coded, data = encode(weights, CodingParams(qp=30))
    kept = [bool(c.record.flags & FrameFlags.FILTER) for c in coded[1:]]
    assert kept == [True, False, True, True, False]
    assert all(off != on for off, on in trials)  # two different codings were compared
    for c, d, s in zip(coded, decode(weights, data), source):
        assert d.recon_matches and d.output == c.picture.output
        enhanced = bool(c.record.flags & FrameFlags.ENHANCE)
        if enhanced:  # auto enhancement only when it brings the output closer to the source
            assert frame_psnr(s, c.picture.output).yuv >= frame_psnr(s, c.picture.recon).yuv - 0.01
        else:
            assert c.picture.output == c.picture.recon


def test_motion_block_size_is_the_trial_of_least_rd_cost(monkeypatch):
    """From LARGE_BLOCKS_FROM_QP on, each P frame is coded with 16x16 and 32x32 motion blocks and
    keeps the one of least D + lambda R; the decoder reads the size from the flag."""
    costs = []
    real_cost = Trial.rd_cost
    monkeypatch.setattr(
        Trial, "rd_cost", lambda self, qp, pixels: costs.append(self) or real_cost(self, qp, pixels)
    )
    weights = make_weights(3)
    params = CodingParams(qp=44, filter=ToolMode.OFF, enhance=ToolMode.OFF, six_tap=ToolMode.OFF)
    # without intra blocks, whose check of the winner is one more cost: tests/test_intra_blocks.py
    params = replace(params, intra_blocks=ToolMode.OFF)
    source, coded, data = encode(weights, params)
    assert len(costs) == 2 * (len(coded) - 1)  # two trials per P frame
    for i, c in enumerate(coded[1:]):
        small, large = costs[2 * i], costs[2 * i + 1]
        want = real_cost(large, c.plan.qp, WIDTH * HEIGHT) < real_cost(small, c.plan.qp, WIDTH * HEIGHT)
        assert bool(c.record.flags & FrameFlags.LARGE_BLOCKS) == want
        assert (large if want else small).bytes == sum(map(len, c.record.substreams))
    assert any(c.record.flags & FrameFlags.LARGE_BLOCKS for c in coded)  # the test means something
    for c, d in zip(coded, decode(weights, data)):
        assert d.recon_matches and d.picture.recon == c.picture.recon
    costs.clear()
    _, fine, _ = encode(weights, replace(params, qp=20))
    assert len(costs) == len(fine) - 1  # below LARGE_BLOCKS_FROM_QP: one search, 16x16
    assert not any(c.record.flags & FrameFlags.LARGE_BLOCKS for c in fine)


@pytest.mark.parametrize(
    ("params", "possible"),
    [
        (CodingParams(qp=20), False),  # P frames at qp 20..23: never large blocks, a 2.0 stream
        (CodingParams(qp=24), True),  # offset 3: qp 27
        (CodingParams(qp=20, large_blocks=ToolMode.ON), True),
        (CodingParams(qp=40, large_blocks=ToolMode.OFF), False),
        (CodingParams(qp=40, intra_period=1), False),  # no P frames
        (CodingParams(qp=20, rate=RateTarget(100_000)), True),  # rate control may raise any qp
    ],
)
def test_header_allows_large_blocks_only_where_a_frame_may_use_them(params, possible):
    later = dict(
        flat_blocks=ToolMode.OFF,
        table_shifts=ToolMode.OFF,
        split_blocks=ToolMode.OFF,
        six_tap=ToolMode.OFF,
        intra_prediction=ToolMode.OFF,
        skip_edges=ToolMode.OFF,
    )
    params = replace(params, **later)
    header = header_for(make_weights(), params, VideoInfo(WIDTH, HEIGHT, Fraction(25), 6))
    assert bool(header.tools & Tools.LARGE_BLOCKS) == possible == large_blocks_possible(params)
    assert (header.version >= (2, 3)) == possible


def test_untrained_refiners_are_skipped_in_auto_mode(monkeypatch):
    """Identity (untrained) ConFRE blocks cannot help, so auto mode codes exactly what 'off' codes."""
    weights = make_weights(4)
    assert weights.model.context_filter.is_identity and weights.model.enhancer.is_identity
    monkeypatch.setattr(FilterDecider, "decide", lambda *a: pytest.fail("identity filter was tried"))
    _, auto, _ = encode(weights, CodingParams(qp=30))
    _, off, _ = encode(weights, CodingParams(qp=30, filter=ToolMode.OFF, enhance=ToolMode.OFF))
    assert [c.record for c in auto] == [c.record for c in off]
    assert not any(c.record.flags & (FrameFlags.FILTER | FrameFlags.ENHANCE) for c in auto)
    assert not make_weights(4, refiners=True).model.context_filter.is_identity


def test_intra_period_segments_decode_independently():
    weights = make_weights(3)
    source, coded, data = encode(weights, CodingParams(qp=28, intra_period=4), frames=9)
    assert [c.record.frame_type for c in coded] == [0, 1, 1, 1, 0, 1, 1, 1, 0]
    whole = decode(weights, data)
    reader = BitstreamReader(io.BytesIO(data))
    records = list(reader)
    tail = io.BytesIO()
    writer = BitstreamWriter(tail, reader.header.with_frame_count(5))
    for r in records[4:]:  # start at the second intra frame, as a seek would
        writer.write(r)
    segment = decode(weights, tail.getvalue())
    assert [d.output for d in segment] == [d.output for d in whole[4:]]
    assert all(d.recon_matches for d in segment)


def test_decoding_in_fp64_parses_every_frame_and_reports_drift():
    weights = make_weights(4)
    source, coded, data = encode(weights, CodingParams(qp=20, refresh_period=3), frames=8)
    decoded = decode(make_weights(4), data, dtype=torch.float64)
    assert len(decoded) == len(coded)
    for c, d in zip(coded, decoded):
        assert d.recon_matches == (d.picture.recon == c.picture.recon)  # the CRC tells the truth
        assert frame_psnr(c.picture.recon, d.picture.recon).yuv > 40  # drift, if any, is small


def test_a_different_float_path_is_detected_never_misparsed():
    """Weights perturbed in their float parts stand for another machine's arithmetic: the frames
    still parse (same symbols), and the CRCs flag the pictures that differ."""
    weights = make_weights(5)
    source, coded, data = encode(weights, CodingParams(qp=20), frames=5)
    other = copy.deepcopy(weights.model)
    with torch.no_grad():
        for p in other.parameters():  # every float part; the integer tables are buffers
            p.mul_(1 + 1e-2 * torch.randn_like(p))
    decoded = decode(Weights(other, weights.sha256, "perturbed"), data)
    assert len(decoded) == 5
    assert not all(d.recon_matches for d in decoded)
    assert all(d.recon_matches == (d.picture.recon == c.picture.recon) for c, d in zip(coded, decoded))


def test_thread_counts_change_no_symbol():
    """Decoding with one or two threads parses every frame; the CRCs say which pictures match."""
    weights = make_weights(6)
    source, coded, data = encode(weights, CodingParams(qp=24), frames=5)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = decode(weights, data)
        torch.set_num_threads(2)
        two = decode(weights, data)
    finally:
        torch.set_num_threads(before)
    assert len(one) == len(two) == 5
    for c, a, b in zip(coded, one, two):
        assert frame_psnr(a.picture.recon, b.picture.recon).yuv > 40  # drift, if any, is small
        assert a.recon_matches == (a.picture.recon == c.picture.recon)
        assert b.recon_matches == (b.picture.recon == c.picture.recon)


def test_decoder_refuses_other_weights():
    _, _, data = encode(make_weights(6), CodingParams(), frames=1)
    other = Weights(random_model(TINY, 7), bytes(32 * [9]), "other")
    with pytest.raises(WeightsError, match="weights"):
        decode(other, data)


def test_fp16_encoding_parses_in_fp32():
    """The GPU case emulated on the CPU: float parts in fp16 on the encoder, fp32 on the decoder.
    Every frame parses with identical symbols; pictures that drift are flagged by their CRCs."""
    _, coded, data = encode(make_weights(9), CodingParams(qp=20), dtype=torch.float16)
    decoded = decode(make_weights(9), data)
    assert len(decoded) == len(coded)
    for c, d in zip(coded, decoded):
        assert d.recon_matches == (d.picture.recon == c.picture.recon)
        assert frame_psnr(c.picture.recon, d.picture.recon).yuv > 40


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_cuda_bitstream_parses_on_the_cpu():
    """DESIGN.md: a .nvc made on a GPU in fp16 decodes on a CPU in fp32 (pictures may drift)."""
    _, coded, data = encode(make_weights(8), CodingParams(qp=24), device="cuda", dtype=torch.float16)
    decoded = decode(make_weights(8), data)
    assert len(decoded) == len(coded)
    for c, d in zip(coded, decoded):
        assert d.recon_matches == (d.picture.recon == c.picture.recon)
        assert frame_psnr(c.picture.recon, d.picture.recon).yuv > 30


def test_double_precision_decodes_the_released_model_exactly():
    """Motion compensation and deblocking are integer arithmetic on 8-bit levels, so a decoder
    in double precision reconstructs the single-precision encoder's pictures bit for bit (before,
    float ties in the deblocking thresholds flipped edges from the first P frame on, and the
    differences grew through the frames)."""
    weights = load_weights(default_weights_path())
    info = VideoInfo(160, 96, Fraction(25), 8)
    encoder = Encoder(weights, CodingParams(qp=32), info)
    source = list(synthetic_frames(160, 96, 8, seed=5))
    coded = [encoder.encode(f) for f in source]
    buf = io.BytesIO()
    writer = BitstreamWriter(buf, encoder.header)
    for c in coded:
        writer.write(c.record)
    decoded = decode(weights, buf.getvalue(), dtype=torch.float64)
    assert [d.recon_matches for d in decoded] == [True] * 8
    assert all(d.picture.recon == c.picture.recon for c, d in zip(coded, decoded))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_stream_decodes_exactly_on_cuda_in_fp32():
    """Integer motion compensation and deblocking, and no TF32: fp32 on a GPU reconstructs the
    CPU encoder's pictures bit for bit (checked on an H200 with 32 frames of Foreman)."""
    weights = load_weights(default_weights_path())
    info = VideoInfo(160, 96, Fraction(25), 8)
    encoder = Encoder(weights, CodingParams(qp=32), info)
    buf = io.BytesIO()
    writer = BitstreamWriter(buf, encoder.header)
    for frame in synthetic_frames(160, 96, 8, seed=5):
        writer.write(encoder.encode(frame).record)
    decoded = decode(weights, buf.getvalue(), device=torch.device("cuda"))
    assert [d.recon_matches for d in decoded] == [True] * 8
