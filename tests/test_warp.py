"""The relative-offset warp: equal to grid_sample in fp64, and accurate in fp16 at 1080p."""

import torch
import torch.nn.functional as F

from nvcodec.models.warp import warp


def reference_warp(feature: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """grid_sample with absolute normalised coordinates (exact enough in fp64)."""
    n, c, h, w = feature.shape
    xs = torch.arange(w, dtype=torch.float64).view(1, 1, w) + flow[:, 0].double()
    ys = torch.arange(h, dtype=torch.float64).view(1, h, 1) + flow[:, 1].double()
    grid = torch.stack([2 * xs / (w - 1) - 1, 2 * ys / (h - 1) - 1], dim=-1)
    return F.grid_sample(feature.double(), grid, mode="bilinear", padding_mode="border", align_corners=True)


def test_matches_grid_sample_with_border_replicate():
    g = torch.Generator().manual_seed(1)
    feature = torch.randn(2, 3, 37, 53, generator=g, dtype=torch.float64)
    flow = torch.randn(2, 2, 37, 53, generator=g, dtype=torch.float64) * 8  # many samples fall outside
    assert torch.allclose(warp(feature, flow), reference_warp(feature, flow), atol=1e-12)


def test_integer_flow_is_a_shift():
    feature = torch.arange(20.0).view(1, 1, 4, 5)
    flow = torch.zeros(1, 2, 4, 5)
    flow[:, 0] = 1  # sample one pixel to the right
    out = warp(feature, flow)
    assert torch.equal(out[..., :4], feature[..., 1:])
    assert torch.equal(out[..., 4], feature[..., 4])  # border replicated


def test_fp16_accuracy_at_1080p():
    """Inputs representable in fp16, so that only the warp's own arithmetic is measured."""
    g = torch.Generator().manual_seed(2)
    h, w = 540, 960  # the half-size grid of a 1080p frame, where the codec warps
    feature = torch.rand(1, 4, h, w, generator=g).half()
    flow = (torch.randn(1, 2, h, w, generator=g) * 20).half()
    ref = reference_warp(feature.float(), flow.float())
    err = (warp(feature, flow).double() - ref).norm() / ref.norm()
    assert err < 1e-3, f"relative error {err:.2e}"
    # What the relative offset avoids: absolute coordinates rounded to fp16 are ~10x worse.
    xs = torch.arange(w).view(1, 1, w) + flow[:, 0].float()
    ys = torch.arange(h).view(1, h, 1) + flow[:, 1].float()
    grid = torch.stack([2 * xs / (w - 1) - 1, 2 * ys / (h - 1) - 1], dim=-1).half().float()
    absolute = F.grid_sample(feature.float(), grid, padding_mode="border", align_corners=True).double()
    assert (absolute - ref).norm() / ref.norm() > 10 * err
