"""The model's pieces: training forward and backward, the rate estimate against real coding,
qp scalers, configurations and the complexity counter."""

import pytest
import torch

from nvcodec.errors import WeightsError
from nvcodec.models.config import BASE, TINY, get_config
from nvcodec.models.layout import frame_to_tensor, quantize_pixels, tensor_to_frame, weighted_mse
from nvcodec.models.macs import kmacs_per_pixel
from nvcodec.models.qscale import QpScaler, lambda_of
from nvcodec.sample import synthetic_frames
from nvcodec.weights import random_model


@pytest.fixture(scope="module")
def model():
    return random_model(TINY, seed=7)


def frames_tensor(n: int = 2, width: int = 96, height: int = 64) -> list[torch.Tensor]:
    return [frame_to_tensor(f) for f in synthetic_frames(width, height, n, seed=3)]


def test_layout_round_trip_is_exact_for_odd_sizes():
    for frame in synthetic_frames(33, 17, 2):
        x = frame_to_tensor(frame)
        assert x.shape == (1, 6, 32, 32)
        assert tensor_to_frame(x, 33, 17) == frame


def test_weighted_mse_is_6_1_1():
    a = torch.zeros(1, 6, 4, 4)
    b = a.clone()
    b[:, 4] = 1.0  # only U differs, by 1 everywhere
    assert weighted_mse(a, b).item() == pytest.approx(1 / 8)
    b = a.clone()
    b[:, :4] = 1.0  # only Y differs
    assert weighted_mse(a, b).item() == pytest.approx(6 / 8)


def test_training_forward_and_backward_reach_every_float_part(model):
    model.train()
    x0, x1 = frames_tensor()
    intra = model.intra(x0, qp=20)
    ref = quantize_pixels(intra.x_hat)
    feature = model.reference_feature(ref, None, refresh=False, use_filter=True)
    inter = model.inter(x1, ref, feature, qp=26, previous=(None, intra.latent.symbols))
    enhanced = model.enhancer(inter.x_hat)
    loss = (intra.latent.bits + inter.motion.bits + inter.latent.bits).sum() / x0.numel()
    loss = loss + 100 * (weighted_mse(intra.x_hat, x0) + weighted_mse(enhanced, x1)).sum()
    assert torch.isfinite(loss)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None and "index" not in n]
    # The extractor is only used at refresh; everything else must learn from this loss.
    assert all(n.startswith("inter.extractor") for n in missing), missing
    model.zero_grad()
    model.eval()


def test_training_rate_estimate_matches_real_coding(model):
    """The bits training optimises are the bits the bitstream spends (within escapes' slack)."""
    x = frames_tensor(1)[0]
    tables = model.probability_tables()
    for qp in (0, 32, 63):
        with torch.no_grad():
            estimate = model.intra(x, qp).latent.bits.item()
        real = 8 * sum(map(len, model.intra.encode(x, qp, tables).latent.streams))
        # slack: each of the two substreams flushes up to 64 bits of coder state
        assert abs(real - estimate) < 0.15 * estimate + 128, (qp, estimate, real)


def test_lower_qp_spends_more_bits(model):
    x = frames_tensor(1)[0]
    tables = model.probability_tables()
    sizes = [sum(map(len, model.intra.encode(x, qp, tables).latent.streams)) for qp in (0, 32, 63)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_qp_scaler_and_lambda_are_log_linear():
    scaler = QpScaler(3, 0.5, 8.0)
    assert torch.allclose(scaler(63), torch.full((1, 3, 1, 1), 0.5))
    assert torch.allclose(scaler(0), torch.full((1, 3, 1, 1), 8.0))
    assert torch.allclose(scaler(21) ** 2, scaler(0) * scaler(42))
    assert lambda_of(63, 4, 1024) == pytest.approx(4) and lambda_of(0, 4, 1024) == pytest.approx(1024)
    with pytest.raises(ValueError):
        scaler(64)


def test_configurations_by_name():
    assert get_config("tiny") is TINY and get_config("base") is BASE
    with pytest.raises(WeightsError, match="unknown model configuration"):
        get_config("huge")


def test_base_stays_within_the_complexity_budget():
    """DESIGN.md: at most ~300 kMAC/pixel to encode a P frame and ~200 to decode one."""
    torch.manual_seed(0)
    base = random_model(BASE)
    x = torch.rand(1, 6, 64, 64)
    tables = base.probability_tables()
    ref = quantize_pixels(base.intra.encode(x, 30, tables).x_hat)
    feature = base.reference_feature(ref, None, False, True)
    pixels = 128 * 128

    def encode():  # both filter trials, as --filter auto does, and the enhancement decision
        motion = base.inter.encode_motion(x, ref, 30, tables)
        for use_filter in (False, True):
            base.inter.encode_texture(
                x, motion, base.reference_feature(ref, None, False, use_filter), 30, tables
            )
        base.enhancer(ref)

    coded = base.inter.encode_texture(x, base.inter.encode_motion(x, ref, 30, tables), feature, 30, tables)

    def decode():
        base.inter.decode(coded.streams, ref, base.reference_feature(ref, None, False, True), 30, tables)
        base.enhancer(ref)

    assert kmacs_per_pixel(encode, pixels) < 300
    assert kmacs_per_pixel(decode, pixels) < 200
