"""The intra (I) frame coder: an image codec on the 6-channel half-size frame tensor."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.models.config import ModelConfig
from nvcodec.models.latent_codec import LatentCodec, LatentResult, latent_shape
from nvcodec.models.transforms import Analysis, Synthesis


@dataclass
class IntraOutput:
    x_hat: torch.Tensor
    latent: LatentResult


class IntraCoder(nn.Module):
    """x -> analysis -> latent codec -> synthesis -> x_hat."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.analysis = Analysis(6, cfg.widths, cfg.blocks, cfg.latent_ch)
        self.synthesis = Synthesis(cfg.latent_ch, cfg.widths, cfg.blocks, 6)
        self.latent = LatentCodec(
            cfg.latent_ch, cfg.hyper_ch, cfg.prior_ch, 0, cfg.index_ch, cfg.spatial_steps, temporal=False
        )
        self.latent_ch = cfg.latent_ch

    def forward(self, x: torch.Tensor, qp: int) -> IntraOutput:
        """Training: estimated bits in `latent.bits`."""
        latent = self.latent(self.analysis(x), qp)
        return IntraOutput(self.synthesis(latent.y_hat), latent)

    def encode(self, x: torch.Tensor, qp: int, tables: ProbabilityTables) -> IntraOutput:
        latent = self.latent.encode(self.analysis(x), qp, tables)
        return IntraOutput(self.synthesis(latent.y_hat), latent)

    def decode(
        self,
        streams: tuple[bytes, bytes],
        frame_shape: tuple[int, int, int, int],
        qp: int,
        tables: ProbabilityTables,
        like: torch.Tensor,
    ) -> IntraOutput:
        """Read an I frame of tensor shape `frame_shape`; `like` sets the device and dtype."""
        shape = latent_shape(frame_shape, self.latent_ch)
        latent = self.latent.decode(streams, shape, qp, tables, like=like)
        return IntraOutput(self.synthesis(latent.y_hat), latent)
