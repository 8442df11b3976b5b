"""SpyNet: shapes, gradients, weight loading, and (when the shared data is present) the flow's
convention with the pretrained arrays on a synthetic shifted texture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nvcodec.errors import WeightsError
from nvcodec.models.spynet import PRETRAINED_WIDTHS, SpyNet
from nvcodec.models.warp import warp

PRETRAINED = Path(__file__).resolve().parents[2] / "shared/data/pretrained/spynet"


def _pair(n: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, h, w, generator=g), torch.rand(n, 3, h, w, generator=g)


def _write_arrays(directory: Path, levels: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Fake pretrained files with the right names and shapes; returns them by file name."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for level in range(1, levels + 1):
        for layer, (cin, cout) in enumerate(zip(PRETRAINED_WIDTHS[:-1], PRETRAINED_WIDTHS[1:]), start=1):
            for kind, shape in (("weight", (cout, cin, 7, 7)), ("bias", (cout,))):
                name = f"modelL{level}_F-{layer}-{kind}.npy"
                arrays[name] = (rng.standard_normal(shape) * 0.01).astype(np.float32)
                np.save(directory / name, arrays[name])
    return arrays


@pytest.mark.parametrize("levels", [1, 2, 4, 6])
def test_forward_shape_dtype_finite(levels: int) -> None:
    net = SpyNet(levels)
    m = 2 ** (levels - 1)
    target, reference = _pair(2, 2 * m, 3 * m)
    with torch.no_grad():
        flow = net(target, reference)
    assert flow.shape == (2, 2, 2 * m, 3 * m)
    assert flow.dtype == torch.float32
    assert torch.isfinite(flow).all()


def test_half_precision_forward() -> None:
    net = SpyNet(3).half()
    target, reference = _pair(1, 16, 24)
    with torch.no_grad():
        flow = net(target.half(), reference.half())
    assert flow.dtype == torch.float16
    assert flow.shape == (1, 2, 16, 24)
    assert torch.isfinite(flow).all()


def test_gradients_reach_every_level_and_inputs() -> None:
    net = SpyNet(3)
    target, reference = _pair(1, 16, 16)
    target.requires_grad_(True)
    reference.requires_grad_(True)
    flow = net(target, reference)
    (warp(reference, flow) - target).pow(2).mean().add(flow.pow(2).mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    for i in range(3):  # the last conv of every level receives a gradient
        assert net.basic[i][-1].weight.grad.abs().sum() > 0
    assert target.grad is not None and target.grad.abs().sum() > 0
    assert reference.grad is not None and reference.grad.abs().sum() > 0


def test_rejects_bad_levels_and_sizes() -> None:
    for levels in (0, 7):
        with pytest.raises(ValueError):
            SpyNet(levels)
    net = SpyNet(4)
    with pytest.raises(ValueError):
        net(*_pair(1, 12, 16))  # 12 is not a multiple of 8
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 24))
    with pytest.raises(ValueError):
        net(torch.rand(1, 4, 16, 16), torch.rand(1, 4, 16, 16))


def test_load_pretrained_from_files(tmp_path: Path) -> None:
    arrays = _write_arrays(tmp_path, levels=3)
    net = SpyNet(3)
    net.load_pretrained(tmp_path)
    conv = net.basic[2][-1]  # level 3, layer 5
    assert torch.equal(conv.weight, torch.from_numpy(arrays["modelL3_F-5-weight.npy"]))
    assert torch.equal(net.basic[0][0].bias, torch.from_numpy(arrays["modelL1_F-1-bias.npy"]))
    SpyNet(2).load_pretrained(tmp_path)  # fewer levels than present is fine


def test_load_pretrained_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsError):
        SpyNet(2).load_pretrained(tmp_path / "absent")
    _write_arrays(tmp_path, levels=2)
    with pytest.raises(WeightsError, match="modelL3"):
        SpyNet(3).load_pretrained(tmp_path)  # level 3 missing
    np.save(tmp_path / "modelL2_F-3-weight.npy", np.zeros((32, 64, 5, 5), np.float32))
    net = SpyNet(2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(WeightsError, match="shape"):
        net.load_pretrained(tmp_path)
    for k, v in net.state_dict().items():  # a failed load changes nothing
        assert torch.equal(v, before[k]), k


@pytest.mark.skipif(not PRETRAINED.is_dir(), reason="shared pretrained SpyNet arrays absent")
@pytest.mark.parametrize("levels", [4, 5])
def test_pretrained_flow_follows_a_shift(levels: int) -> None:
    """target(x, y) = reference(x + dx, y + dy): the flow is (dx, dy), x first, in pixels."""
    net = SpyNet(levels)
    net.load_pretrained(PRETRAINED)
    g = torch.Generator().manual_seed(1)
    texture = F.interpolate(torch.rand(1, 3, 24, 28, generator=g), scale_factor=4, mode="bicubic")
    texture = texture.clamp(0, 1)  # 96 x 112, smooth random texture
    h, w, x0, y0 = 64, 80, 12, 12
    for dx, dy in ((3, -2), (-5, 4)):
        reference = texture[..., y0 : y0 + h, x0 : x0 + w]
        target = texture[..., y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w]
        with torch.no_grad():
            flow = net(target, reference)
        inner = (..., slice(8, -8), slice(8, -8))
        assert abs(flow[:, 0][inner].median().item() - dx) < 0.3
        assert abs(flow[:, 1][inner].median().item() - dy) < 0.3
        before = (target - reference)[inner].pow(2).mean()
        after = (target - warp(reference, flow))[inner].pow(2).mean()
        assert after < 0.05 * before
