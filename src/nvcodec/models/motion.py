"""Motion: estimation (SpyNet, encoder only) and coding of the flow with its own latent codec."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.models.config import ModelConfig
from nvcodec.models.latent_codec import LatentCodec, LatentResult, latent_shape
from nvcodec.models.layout import to_rgb
from nvcodec.models.spynet import SpyNet
from nvcodec.models.transforms import Analysis, Synthesis


class MotionEstimator(nn.Module):
    """Flow at half size (the frame tensor's grid) such that warp(reference, flow) ~ target."""

    def __init__(self, levels: int, widths: tuple[int, ...], scale: int) -> None:
        super().__init__()
        self.spynet = SpyNet(levels, widths)
        self.reduction = scale // 2  # 1: estimate on the half-size frame, 2: on the quarter-size

    def forward(self, target: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        a, b = to_rgb(target), to_rgb(reference)
        if self.reduction == 1:
            return self.spynet(a, b)
        r = self.reduction
        flow = self.spynet(F.avg_pool2d(a, r), F.avg_pool2d(b, r))
        return F.interpolate(flow, scale_factor=r, mode="bilinear", align_corners=False) * r


@dataclass
class MotionOutput:
    flow_hat: torch.Tensor
    latent: LatentResult


class MotionCoder(nn.Module):
    """flow -> analysis -> latent codec (previous frame's motion symbols as context) -> flow_hat."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.channels = cfg.motion_latent_ch
        self.analysis = Analysis(2, cfg.motion_widths, 1, cfg.motion_latent_ch)
        self.synthesis = Synthesis(cfg.motion_latent_ch, cfg.motion_widths, 1, 2)
        self.latent = LatentCodec(
            cfg.motion_latent_ch,
            cfg.motion_hyper_ch,
            cfg.motion_widths[3],
            0,
            cfg.index_ch,
            cfg.spatial_steps,
            temporal=True,
        )

    def forward(self, flow: torch.Tensor, qp: int, previous: torch.Tensor | None) -> MotionOutput:
        latent = self.latent(self.analysis(flow), qp, previous=previous)
        return MotionOutput(self.synthesis(latent.y_hat), latent)

    def encode(
        self, flow: torch.Tensor, qp: int, tables: ProbabilityTables, previous: torch.Tensor | None
    ) -> MotionOutput:
        latent = self.latent.encode(self.analysis(flow), qp, tables, previous=previous)
        return MotionOutput(self.synthesis(latent.y_hat), latent)

    def decode(
        self,
        streams: tuple[bytes, bytes],
        frame_shape: tuple[int, ...],
        qp: int,
        tables: ProbabilityTables,
        previous: torch.Tensor | None,
        like: torch.Tensor,
    ) -> MotionOutput:
        shape = latent_shape(frame_shape, self.channels)
        latent = self.latent.decode(streams, shape, qp, tables, previous=previous, like=like)
        return MotionOutput(self.synthesis(latent.y_hat), latent)
