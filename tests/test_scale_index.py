"""The integer scale-index network: the trained (fake-quantised) form equals the exported integer
form, and the indices never depend on the float parts of the model (DESIGN.md, "Parse-exact")."""

import copy

import pytest
import torch

from nvcodec.entropy.intnet import IntConv2d
from nvcodec.entropy.scale_index import ScaleIndexNet
from nvcodec.entropy.tables import NUM_SCALES
from nvcodec.models.config import TINY
from nvcodec.weights import default_weights_path, load_weights, random_model


def random_ints(*shape: int, lo: int = -128, hi: int = 127, seed: int = 0) -> torch.Tensor:
    return torch.randint(lo, hi + 1, shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kernel,qp_bias", [(1, False), (3, False), (1, True), (3, True)])
def test_int_conv_training_form_equals_exported_integer_form(kernel, qp_bias):
    torch.manual_seed(kernel)
    layer = IntConv2d(12, 7, kernel, lo=-128, hi=127, qp_bias=qp_bias)
    with torch.no_grad():
        layer.weight.mul_(torch.logspace(-3, 1, 7).view(-1, 1, 1, 1))  # exponents from 0 to large
        layer.bias.normal_()
        if qp_bias:
            layer.qp_bias.normal_()
    layer.export()
    x = random_ints(2, 12, 9, 10)
    for qp in (0, 17, 63):
        fake = layer(x.float(), qp)
        exact = layer.exact(x, qp)
        assert exact.dtype == torch.int64
        assert torch.equal(fake.to(torch.int64), exact)
    assert layer.w_int.dtype == torch.int8 and layer.w_int.abs().max() <= 127


def test_scale_index_net_forms_agree_and_stay_in_range():
    torch.manual_seed(0)
    net = ScaleIndexNet(latent_ch=6, hyper_ch=3, width=5, steps=4, temporal=True)
    net.export()
    z = random_ints(1, 3, 2, 3, seed=1)
    decoded, previous = random_ints(1, 6, 8, 12, seed=2), random_ints(1, 6, 8, 12, seed=3)
    h_exact = net.hyper_features(z, exact=True)
    h_soft = net.hyper_features(z.float(), exact=False)
    assert torch.equal(h_soft.to(torch.int64), h_exact)
    for step in range(4):
        k = net.indices(h_exact, step, decoded, previous, qp=40)
        soft = net.soft_indices(h_soft, step, decoded.float(), previous.float(), qp=40)
        assert torch.equal(soft.to(torch.int64), k)
        assert k.min() >= 0 and k.max() <= NUM_SCALES - 1


def test_training_gradients_reach_the_integer_network():
    torch.manual_seed(0)
    net = ScaleIndexNet(latent_ch=4, hyper_ch=2, width=4, steps=2, temporal=False)
    h = net.hyper_features(random_ints(1, 2, 2, 2).float(), exact=False)
    k = net.soft_indices(h, 1, random_ints(1, 4, 8, 8).float(), None, qp=10)
    (k.float() * torch.randn_like(k)).sum().backward()
    assert all(p.grad is not None for p in net.heads[1].parameters())


class IndexSpy:
    """Records every scale-index tensor a model's integer networks produce."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.seen: list[torch.Tensor] = []
        for module in model.modules():
            if isinstance(module, ScaleIndexNet):
                original = module.indices

                def spy(*args, _original=original, **kwargs):
                    k = _original(*args, **kwargs)
                    self.seen.append(k.clone())
                    return k

                module.indices = spy


QP = 30


def encode_two_frames(model):
    """An I and a P frame coded with `model` in fp32: (their streams, the encoder's outputs)."""
    g = torch.Generator().manual_seed(5)
    x0 = torch.rand(1, 6, 32, 64, generator=g)
    x1 = torch.roll(x0, 2, dims=3) * 0.9 + 0.05
    tables = model.probability_tables()
    intra = model.intra.encode(x0, QP, tables)
    feature = model.reference_feature(intra.x_hat, None, False, False)
    motion = model.inter.encode_motion(x1, intra.x_hat, QP, tables)
    inter = model.inter.encode_texture(x1, motion, feature, QP, tables, intra.latent.symbols)
    return (intra.latent.streams, inter.streams), (intra, inter)


def decode_two_frames(model, streams, dtype=torch.float32):
    """Decode both frames with `model` placed in `dtype`; returns (indices seen, I output, P output)."""
    decoder = copy.deepcopy(model).place("cpu", dtype)
    spy = IndexSpy(decoder)
    tables = decoder.probability_tables()
    intra = decoder.intra.decode(streams[0], (1, 6, 32, 64), QP, tables, torch.zeros(1, dtype=dtype))
    feature = decoder.reference_feature(intra.x_hat, None, False, False)
    inter = decoder.inter.decode(streams[1], intra.x_hat, feature, QP, tables, (None, intra.latent.symbols))
    return spy.seen, intra, inter


def assert_same_symbols(encoded, intra, inter):
    assert torch.equal(intra.latent.symbols, encoded[0].latent.symbols)
    assert torch.equal(inter.motion.symbols, encoded[1].motion.symbols)
    assert torch.equal(inter.latent.symbols, encoded[1].latent.symbols)


def released_model():
    """The released base model (weights/ is part of the repository)."""
    return load_weights(default_weights_path()).model


@pytest.mark.parametrize("make_model", [lambda: random_model(TINY, seed=3), released_model],
                         ids=["tiny-random", "base-released"])  # fmt: skip
def test_indices_identical_with_fp32_and_fp64_float_parts(make_model):
    model = make_model()
    streams, encoded = encode_two_frames(model)
    k32, *decoded32 = decode_two_frames(model, streams, torch.float32)
    k64, *decoded64 = decode_two_frames(model, streams, torch.float64)
    assert len(k32) == len(k64) > 0
    assert all(torch.equal(a, b) for a, b in zip(k32, k64))
    assert_same_symbols(encoded, *decoded32)
    assert_same_symbols(encoded, *decoded64)


def test_indices_survive_a_decoder_with_different_float_weights():
    """Perturbing every float weight (a stand-in for another platform's arithmetic) changes the
    pictures but not a single scale index or symbol: the stream still parses exactly."""
    model = random_model(TINY, seed=4)
    streams, encoded = encode_two_frames(model)
    reference, *_ = decode_two_frames(model, streams)
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in perturbed.named_parameters():
            if "index_net" not in name:
                p.mul_(1 + 1e-2 * torch.randn_like(p))
    seen, intra, inter = decode_two_frames(perturbed, streams)
    assert all(torch.equal(a, b) for a, b in zip(reference, seen))
    assert_same_symbols(encoded, intra, inter)
    assert not torch.equal(inter.x_hat, encoded[1].x_hat)  # the pictures did drift
