"""Temporal contexts: the reference feature at three scales, warped by the decoded flow, fused."""

from __future__ import annotations

import torch
from torch import nn

from nvcodec.models.blocks import Down, Fuse, Up, conv1x1, conv3x3, stage
from nvcodec.models.config import ModelConfig
from nvcodec.models.warp import downscale_flow, warp


class FeatureExtractor(nn.Sequential):
    """Refresh (DCVC-FM 3.3): a reference feature made from the decoded frame alone."""

    def __init__(self, feature_ch: int, blocks: int) -> None:
        super().__init__(conv3x3(6, feature_ch), stage(feature_ch, blocks))


class TemporalContextMining(nn.Module):
    """F_{t-1} -> (C1 at 1/2, C2 at 1/4, C3 at 1/8) aligned to frame t, plus a prior at 1/16."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c1, c2, c3 = cfg.context_ch
        b = cfg.blocks
        self.level1 = nn.Sequential(conv1x1(cfg.feature_ch, c1), stage(c1, b))
        self.level2 = nn.Sequential(Down(c1, c2), stage(c2, b))
        self.level3 = nn.Sequential(Down(c2, c3), stage(c3, b))
        self.refine3 = stage(c3, b)
        self.up3, self.fuse2, self.refine2 = Up(c3, c2), Fuse(c2, c2, c2), stage(c2, b)
        self.up2, self.fuse1, self.refine1 = Up(c2, c1), Fuse(c1, c1, c1), stage(c1, b)
        self.prior = Down(c3, cfg.prior_ch)

    def forward(
        self, feature: torch.Tensor, flow: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        f1 = self.level1(feature)
        f2 = self.level2(f1)
        f3 = self.level3(f2)
        c3 = self.refine3(warp(f3, downscale_flow(flow, 4)))
        c2 = self.refine2(self.fuse2(warp(f2, downscale_flow(flow, 2)), self.up3(c3)))
        c1 = self.refine1(self.fuse1(warp(f1, flow), self.up2(c2)))
        return c1, c2, c3, self.prior(c3)
