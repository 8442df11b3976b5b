"""Backward warping with the flow as a relative offset (safe in fp16 at any frame size).

`grid_sample` wants absolute coordinates normalised to [-1, 1]; fp16 cannot hold them precisely
in a large frame. Here the integer part of each position is index arithmetic and only the
fractional part of the flow is a floating-point weight, so precision does not depend on size.
"""

from __future__ import annotations

import torch


def _axis(
    base: torch.Tensor, offset: torch.Tensor, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clamped integer neighbours (i0, i1) and the weight of i1 along one axis."""
    whole = torch.floor(offset)
    frac = offset - whole
    i0 = base + whole.to(torch.int64)
    return i0.clamp(0, size - 1), (i0 + 1).clamp(0, size - 1), frac


def warp(feature: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample `feature` (N,C,H,W) at (x + flow[:,0], y + flow[:,1]), bilinear, border replicate.

    The flow is in pixels of `feature`'s own resolution; the result has `feature`'s dtype.
    """
    n, c, h, w = feature.shape
    dev = feature.device
    xs = torch.arange(w, device=dev).view(1, 1, w)
    ys = torch.arange(h, device=dev).view(1, h, 1)
    flow = flow.to(feature.dtype)
    x0, x1, ax = _axis(xs, flow[:, 0], w)
    y0, y1, ay = _axis(ys, flow[:, 1], h)
    flat = feature.reshape(n, c, h * w)

    def tap(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        index = (yi * w + xi).reshape(n, 1, h * w).expand(n, c, h * w)
        return flat.gather(2, index).reshape(n, c, h, w)

    ax, ay = ax.unsqueeze(1), ay.unsqueeze(1)
    top = tap(y0, x0) * (1 - ax) + tap(y0, x1) * ax
    bottom = tap(y1, x0) * (1 - ax) + tap(y1, x1) * ax
    return top * (1 - ay) + bottom * ay
