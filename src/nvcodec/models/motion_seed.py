"""The motion search's seed: SpyNet's flow, averaged over each motion block (encoder only)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.models.layout import to_rgb
from nvcodec.models.motion import MAX_VECTOR
from nvcodec.models.spynet import SpyNet


class MotionEstimator(nn.Module):
    """SpyNet at the configured scale: the dense flow the search's seeds are averaged from."""

    def __init__(self, levels: int, widths: tuple[int, ...], scale: int) -> None:
        super().__init__()
        self.spynet = SpyNet(levels, widths)
        self.reduction = scale // 2  # 1: estimate on the half-size frame, 2: on the quarter-size

    def flow(self, target: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Flow in pixels of the half-size tensor such that warp(reference, flow) ~ target."""
        a, b = to_rgb(target), to_rgb(reference)
        r = self.reduction
        if r > 1:
            a, b = F.avg_pool2d(a, r), F.avg_pool2d(b, r)
        multiple = self.spynet.multiple
        h, w = a.shape[-2:]
        ph, pw = -(-h // multiple) * multiple - h, -(-w // multiple) * multiple - w
        a, b = F.pad(a, (0, pw, 0, ph), mode="replicate"), F.pad(b, (0, pw, 0, ph), mode="replicate")
        flow = self.spynet(a, b)[..., :h, :w]
        return (
            F.interpolate(flow, scale_factor=r, mode="bilinear", align_corners=False) * r if r > 1 else flow
        )


def seed(flow: torch.Tensor, block: int) -> np.ndarray:
    """(Hb, Wb, 2) integer seed vectors in quarter luma pixels: the flow's mean over each block of
    block x block luma pixels."""
    half = block // 2
    h, w = flow.shape[-2:]
    flow = F.pad(flow, (0, -w % half, 0, -h % half), mode="replicate")
    blocks = F.avg_pool2d(flow.float(), half)[0] * 2 * 4  # half-size pixels -> quarter luma pixels
    vectors = torch.round(blocks).to(torch.int64).permute(1, 2, 0).clamp(-MAX_VECTOR, MAX_VECTOR)
    return vectors.cpu().numpy()
