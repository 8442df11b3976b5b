"""The model's pieces: the block transform, the quantiser and DC prediction, motion vectors and
compensation, the search, configurations and the complexity counter."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from benchmarks import complexity
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nvcodec.entropy.context import CHANNELS, DC_CHANNELS, STEP_CHANNELS
from nvcodec.errors import WeightsError
from nvcodec.models.compensation import BLOCK, LARGE_BLOCK, InterpolatedFrame, predict_plane
from nvcodec.models.config import BASE, TINY, get_config
from nvcodec.models.deblock import deblock
from nvcodec.models.inter import INTER_LAMBDA, LARGE_LAMBDA_SCALE, inter_lambda
from nvcodec.models.latent_codec import (
    CHROMA_WEIGHT,
    LAMBDA,
    LatentCodec,
    base_step,
    med_predict,
    med_reconstruct,
    rd_levels,
)
from nvcodec.models.layout import frame_to_tensor, quantize_pixels, tensor_to_frame, to_fine, weighted_mse
from nvcodec.models.motion import field_buckets, median_prediction, reconstruct_vectors, row_buckets
from nvcodec.models.motion_search import BlockSearch, search
from nvcodec.models.transform import BlockTransform, PointBlock, block_dct
from nvcodec.sample import synthetic_frames
from nvcodec.weights import random_model


@pytest.fixture(scope="module")
def model():
    return random_model(TINY, seed=7)


def test_layout_round_trip_is_exact_for_odd_sizes():
    for frame in synthetic_frames(33, 17, 2):
        x = frame_to_tensor(frame)
        assert x.shape == (1, 6, 16, 24)  # padded to 48x32, the multiple of a motion block
        assert tensor_to_frame(x, 33, 17) == frame


def test_weighted_mse_is_6_1_1():
    a = torch.zeros(1, 6, 4, 4)
    b = a.clone()
    b[:, 4] = 1.0  # only U differs, by 1 everywhere
    assert weighted_mse(a, b).item() == pytest.approx(1 / 8)
    b = a.clone()
    b[:, :4] = 1.0  # only Y differs
    assert weighted_mse(a, b).item() == pytest.approx(6 / 8)


def test_block_dct_is_orthonormal_and_reads_8x8_blocks():
    basis = block_dct()
    assert torch.allclose(basis @ basis.t(), torch.eye(CHANNELS, dtype=torch.float64), atol=1e-12)
    frame = next(iter(synthetic_frames(32, 16, 1)))
    y = BlockTransform(1, 4).analysis(frame_to_tensor(frame))
    assert y.shape == (1, CHANNELS, 2, 4)
    block = frame.y[8:16, 16:24].astype(np.float64) / 255
    assert y[0, 0, 1, 2].item() == pytest.approx(8 * block.mean(), abs=1e-5)  # luma DC = 8 x mean
    assert y[0, 1, 1, 2].item() == pytest.approx(
        (np.cos(np.pi * (2 * np.arange(8) + 1) / 16) * 0.5 / np.sqrt(8) * block).sum(), abs=1e-5
    )  # (u, v) = (0, 1): horizontal frequency, so pixel (r, c) really is row r, column c
    u = frame.u[4:8, 8:12].astype(np.float64) / 255
    assert y[0, DC_CHANNELS[1], 1, 2].item() == pytest.approx(4 * u.mean(), abs=1e-5)


def test_untrained_transform_is_exactly_the_dct_and_still_learns():
    t = BlockTransform(2, 8)
    x = torch.rand(1, 6, 16, 24)
    assert torch.allclose(t.synthesis(t.analysis(x)), x, atol=1e-5)
    t.synthesis(t.analysis(x)).square().sum().backward()
    assert all(b.project.weight.grad.abs().sum() > 0 for b in t.analysis_blocks)


def test_quantiser_dead_zone_and_qp_scale():
    codec = LatentCodec(intra=True, theta=0.3, lam=LAMBDA)
    assert base_step(10) == pytest.approx(2 * base_step(4)) and base_step(4) == pytest.approx(1 / 255)
    steps = codec.steps(22, torch.zeros(1))
    assert (steps[0, 70, 0, 0] / steps[0, 0, 0, 0]).item() == pytest.approx(CHROMA_WEIGHT)  # chroma / luma
    r = torch.tensor([0.0, 0.69, 0.71, 1.69, 1.71, -0.71, 0.49, 0.51])
    y = torch.zeros(1, CHANNELS, 1, r.numel())
    y[0, 1, 0] = r * steps[0, 1, 0, 0]
    y[0, 0, 0] = r * steps[0, 0, 0, 0]
    q = codec.quantize(codec.scaled(y, 22))
    assert q[1, 0].tolist() == [0, 0, 1, 1, 2, -1, 0, 0]  # |s| = floor(|r| + 0.3)
    assert q[0, 0].tolist() == [0, 1, 1, 2, 2, -1, 0, 1]  # DC rounds


@settings(max_examples=40, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
              elements=st.integers(-1000, 1000)))  # fmt: skip
def test_dc_prediction_round_trips(q):
    assert np.array_equal(med_reconstruct(q - med_predict(q)), q)


def test_rd_levels_move_towards_zero_only_where_bits_pay():
    scaled = np.array([0.75, 0.75, 2.9, -1.2])
    levels = np.array([1, 1, 3, -1])
    price = np.array([1.0, 30.0, 1.0, 30.0])  # bits of any nonzero level at each position

    def bits(c: np.ndarray) -> np.ndarray:
        return np.where(c == 0, 0.0, price)

    assert rd_levels(scaled, levels, bits, LAMBDA).tolist() == [1, 0, 3, 0]  # 0.75 kept at 1 bit, not at 30
    assert rd_levels(scaled, levels, lambda c: np.zeros(c.shape), LAMBDA).tolist() == [1, 1, 3, -1]
    assert rd_levels(scaled, levels, bits, lam=0.01).tolist() == [1, 1, 3, -1]  # bits almost free


def test_dc_prediction_follows_edges():
    q = np.zeros((1, 4, 4), dtype=np.int64)
    q[0, :, 2:] = 50  # a vertical edge: the median predictor picks the side above
    assert (q - med_predict(q))[0, 1:, 1:].tolist() == [[0, 0, 0]] * 3


@settings(max_examples=40, deadline=None)
@given(arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 6), st.just(2)),
              elements=st.integers(-500, 500)))  # fmt: skip
def test_vector_prediction_round_trips(v):
    """The encoder's vectorised predictor and the decoder's block-by-block one agree."""
    assert np.array_equal(reconstruct_vectors(v - median_prediction(v)), v)


@given(st.integers(1, 6), st.integers(1, 7), st.integers(0, 1 << 22), st.integers(0, 2**32 - 1))
def test_field_buckets_are_the_coders_row_contexts(hb, wb, scale, seed):
    d = np.random.default_rng(seed).integers(-scale, scale + 1, size=(hb, wb, 2))
    rows = np.stack([row_buckets(d[i - 1] if i else None, wb) for i in range(hb)])
    assert np.array_equal(field_buckets(d), rows)


def test_compensation_reads_shifted_pixels():
    x = quantize_pixels(torch.rand(1, 6, 16, 24))
    ref = InterpolatedFrame(x)
    assert torch.equal(ref.predict(torch.zeros(2, 3, 2, dtype=torch.int64), BLOCK).values, x)
    vectors = torch.zeros(2, 3, 2, dtype=torch.int64)
    vectors[..., 0] = 8  # two luma pixels right = one chroma pixel right
    pred = ref.predict(vectors, BLOCK).values
    luma = F.pixel_shuffle(x[:, :4], 2)[0, 0]
    assert torch.allclose(F.pixel_shuffle(pred[:, :4], 2)[0, 0][:, :-2], luma[:, 2:], atol=1e-6)
    assert torch.allclose(pred[0, 4:, :, :-1], x[0, 4:, :, 1:], atol=1e-6)
    vectors[..., 0] = 2  # half a luma pixel: between the two neighbours
    half = F.pixel_shuffle(ref.predict(vectors, BLOCK).values[:, :4], 2)[0, 0]
    smooth = (torch.arange(48) * 5 / 255).repeat(32, 1)  # a ramp of 5 levels per pixel
    ramp = InterpolatedFrame(torch.cat([F.pixel_unshuffle(smooth[None, None], 2), x[:, 4:]], dim=1))
    halfway = F.pixel_shuffle(ramp.predict(vectors, BLOCK).values[:, :4], 2)[0, 0][:, 4:-4]
    assert torch.equal(halfway * 255, (smooth[:, 4:-4] * 255).round() + 2.5)  # 2.5 levels: kept in 1/64s
    assert half.shape == luma.shape


def test_compensation_is_integer_arithmetic_whatever_the_float_precision():
    """The prediction from a reference on the 8-bit grid is the same in fp16, fp32 and fp64."""
    x = quantize_pixels(torch.rand(1, 6, 32, 48, generator=torch.Generator().manual_seed(3)))
    vectors = torch.randint(-40, 40, (4, 6, 2), generator=torch.Generator().manual_seed(4))
    single, double = (
        InterpolatedFrame(x.to(dtype)).predict(vectors, BLOCK).values
        for dtype in (torch.float32, torch.float64)
    )
    sixty_fourths = single.double() * 16320
    assert (sixty_fourths - sixty_fourths.round()).abs().max() < 1e-3  # whole 1/64 levels
    assert torch.equal(single.double(), double)  # the same single-precision quotients


def test_a_large_block_predicts_as_four_small_blocks_with_its_vector():
    """32x32 vectors give the prediction of the same vectors copied 2x2 onto the 16x16 grid, luma
    and chroma, with partial blocks at the edges (80x48 luma pixels: 2.5 x 1.5 large blocks)."""
    x = quantize_pixels(torch.rand(1, 6, 24, 40, generator=torch.Generator().manual_seed(6)))
    large = torch.randint(-40, 40, (2, 3, 2), generator=torch.Generator().manual_seed(7))
    small = large.repeat_interleave(2, 0).repeat_interleave(2, 1)[:3, :5]
    ref = InterpolatedFrame(x)
    assert torch.equal(ref.predict(large, LARGE_BLOCK).fine, ref.predict(small, BLOCK).fine)
    assert not torch.equal(ref.predict(large, LARGE_BLOCK).fine, ref.predict(0 * large, LARGE_BLOCK).fine)


def test_search_finds_a_global_shift():
    frame = next(iter(synthetic_frames(96, 64, 1, seed=5)))
    x = frame_to_tensor(frame)
    luma = F.pixel_shuffle(x[:, :4], 2)[0, 0]
    shifted = torch.roll(luma, shifts=(-2, -3), dims=(0, 1))  # target(y, x) = reference(y + 2, x + 3)
    found = search(shifted, InterpolatedFrame(x), np.zeros((4, 6, 2), dtype=np.int64), 1.0,
                   lambda d, buckets: np.abs(d).sum(axis=-1).astype(float), BLOCK)  # fmt: skip
    assert (found[1:-1, 1:-1] == [12, 8]).all()  # quarter pixels (x, y), away from the wrapped border


def test_search_sad_is_exact_and_counts_only_the_picture():
    """Each block's SAD is the sum of |prediction - target| over its samples inside the picture,
    in 8-bit levels, exactly (80x112 luma is cut by 32x32 blocks)."""
    frames = list(synthetic_frames(112, 72, 2, seed=9))
    x, target = frame_to_tensor(frames[0]), F.pixel_shuffle(frame_to_tensor(frames[1])[:, :4], 2)[0, 0]
    ref, (h, w) = InterpolatedFrame(x), target.shape
    s = BlockSearch(target, ref, 4.0, lambda d, buckets: np.zeros(d.shape[:-1]), LARGE_BLOCK)
    field = np.random.default_rng(2).integers(-30, 31, size=(*s.grid, 2))
    pred = predict_plane(ref.luma, torch.from_numpy(field), LARGE_BLOCK, ref.luma_filters).numpy()
    diff = np.abs(pred - np.round(target.numpy() * 255) * 64) / 64
    hb, wb = s.grid
    padded = np.pad(diff, ((0, hb * LARGE_BLOCK - h), (0, wb * LARGE_BLOCK - w)))
    expected = padded.reshape(hb, LARGE_BLOCK, wb, LARGE_BLOCK).sum(axis=(1, 3))
    assert h % LARGE_BLOCK and w % LARGE_BLOCK
    assert np.array_equal(s._sad(field), expected)


def test_ordered_decisions_match_a_raster_scan():
    """The wavefront pass decides every block exactly as a block-by-block raster scan would."""
    rng = np.random.default_rng(3)
    frames = list(synthetic_frames(112, 80, 2, seed=4))
    x, target = frame_to_tensor(frames[0]), F.pixel_shuffle(frame_to_tensor(frames[1])[:, :4], 2)[0, 0]

    def rate_of(d: np.ndarray, buckets: np.ndarray) -> np.ndarray:  # context-dependent, like the coder's
        return np.abs(d).sum(axis=-1) * (1.0 + buckets) + (d != 0).any(axis=-1) * 3.0

    s = BlockSearch(target, InterpolatedFrame(x), 4.0, rate_of, BLOCK)
    for _ in range(6):
        s.consider(rng.integers(-12, 13, size=(*s.grid, 2)))
    vectors, sads = np.stack(s.fields, axis=2), np.stack(s.sads, axis=2)
    expected = np.zeros((*s.grid, 2), dtype=np.int64)
    for i in range(s.grid[0]):
        for j in range(s.grid[1]):
            diff = expected - median_prediction(expected)  # blocks after (i, j) do not matter yet
            bucket = field_buckets(diff)[i, j]
            d = vectors[i, j] - median_prediction(expected)[i, j]
            expected[i, j] = vectors[i, j, np.argmin(sads[i, j] + s.lam * rate_of(d, bucket))]
    s.decide_in_order()
    assert (s.best == expected).all()
    assert len(np.unique(vectors.reshape(-1, 2), axis=0)) > 10  # the candidates really differ


def test_lower_qp_spends_more_bits_for_less_distortion(model):
    tables = model.probability_tables()
    x = frame_to_tensor(next(iter(synthetic_frames(64, 48, 1, seed=2))))
    results = []
    for qp in (10, 30, 50):
        out = model.intra.encode(x, qp, tables)
        results.append((len(out.latent.stream), weighted_mse(quantize_pixels(out.x_hat), x).item()))
    assert results[0][0] > results[1][0] > results[2][0]
    assert results[0][1] < results[1][1] < results[2][1]


def test_p_frames_weigh_bits_less_from_1280x720():
    def half_size(width: int, height: int) -> torch.Tensor:
        return torch.zeros(1, 6, height // 2, width // 2)

    assert inter_lambda(half_size(640, 368)) == INTER_LAMBDA
    assert inter_lambda(half_size(1280, 716)) == INTER_LAMBDA
    assert inter_lambda(half_size(1280, 720)) == INTER_LAMBDA * LARGE_LAMBDA_SCALE
    assert inter_lambda(half_size(1920, 1088)) == INTER_LAMBDA * LARGE_LAMBDA_SCALE


def test_a_latent_lambda_given_to_encode_replaces_the_codecs_own(model):
    tables = model.probability_tables()
    x = frame_to_tensor(next(iter(synthetic_frames(64, 48, 1, seed=3))))
    y = model.intra.transform.analysis(x)
    latent = model.inter.latent
    high, own = (latent.encode(y, 30, tables, lam=lam) for lam in (25 * latent.lam, None))
    assert np.count_nonzero(high.symbols) < np.count_nonzero(own.symbols)
    assert len(high.stream) < len(own.stream)
    assert F.mse_loss(high.y_hat, y) > F.mse_loss(own.y_hat, y)


def test_steps_code_low_frequencies_first():
    assert STEP_CHANNELS[0].tolist() == DC_CHANNELS.tolist()
    assert sorted(np.concatenate(STEP_CHANNELS).tolist()) == list(range(CHANNELS))


def test_configurations_by_name():
    assert get_config("tiny") is TINY and get_config("base") is BASE
    with pytest.raises(WeightsError, match="unknown model configuration"):
        get_config("huge")


def test_base_stays_within_the_complexity_budget():
    """DESIGN.md: decode at most 60 kMAC/pixel; encode (motion search aside) at most 100. Counted
    by the benchmark's own script, which this also keeps running."""
    counts = complexity.measure("base", 128, 128)
    assert counts["parameters"] > 0
    assert 0 < counts["inter_decode_kmac"] < 60
    assert 0 < counts["inter_encode_kmac"] < 100


def test_deblocking_smooths_small_block_edges_and_keeps_real_ones():
    luma = torch.full((32, 32), 100 / 255)
    luma[:, 8:16] = 104 / 255  # a small step at columns 8 and 16: blocking at qp 37
    luma[:, 24:] = 250 / 255  # a real edge at column 24
    x = torch.cat([F.pixel_unshuffle(luma[None, None], 2), torch.full((1, 2, 16, 16), 0.5)], dim=1)
    fine = to_fine(x)
    out = F.pixel_shuffle(deblock(fine, 37, torch.float32)[:, :4], 2)[0, 0] * 255
    assert out[:, 7].mean() > 100.5 and out[:, 8].mean() < 103.5  # pulled together across column 8
    assert torch.allclose(out[:, 23:25], luma[:, 23:25] * 255)  # 100 | 250 is content, not blocking
    assert torch.allclose(out[:, 2:6], luma[:, 2:6] * 255)  # inside a block: untouched
    assert torch.equal(deblock(fine, 0, torch.float32)[:, 4:], quantize_pixels(x[:, 4:]))  # only rounded


def test_deblocking_rounds_ties_by_the_integer_rule():
    """Half a level rounds up by (F + 32) >> 6, whatever the float arithmetic would have done."""
    fine = torch.full((1, 6, 8, 8), 100 * 64 + 32, dtype=torch.int32)
    fine[..., 0, 0] = 100 * 64 + 31
    out = (deblock(fine, 0, torch.float64) * 255).round()
    assert out[0, 0, 0, 1] == 101 and out[0, 0, 0, 0] == 100


def test_an_untrained_residual_block_is_skipped_when_coding_but_still_learns():
    """A PointBlock whose last factor is zero passes x through when coding (no gradients), the same
    values the full branch gives; with gradients on, its last factor still gets one; once trained
    it is run."""
    torch.manual_seed(0)
    block = PointBlock(8, 16)
    x = torch.randn(1, 8, 5, 7)
    assert block.is_identity()
    with torch.no_grad():
        assert block(x) is x
    full = block(x)
    assert torch.equal(full, x)
    full.square().sum().backward()
    assert block.project.weight.grad is not None and block.project.weight.grad.abs().sum() > 0
    with torch.no_grad():
        block.project.weight.normal_(0, 0.1)
        assert not block.is_identity() and not torch.equal(block(x), x)
