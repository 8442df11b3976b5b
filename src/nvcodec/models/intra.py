"""The intra (I) frame coder: block transform, quantiser with DC prediction, context coding,
deblocking."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.models.config import ModelConfig
from nvcodec.models.deblock import deblock
from nvcodec.models.latent_codec import LAMBDA, LatentCodec, LatentResult, latent_positions
from nvcodec.models.layout import to_fine
from nvcodec.models.transform import BlockTransform

INTRA_DEAD_ZONE = 0.3


@dataclass
class IntraOutput:
    x_hat: torch.Tensor
    latent: LatentResult


class IntraCoder(nn.Module):
    """x -> analysis -> quantise and code -> synthesis -> deblocking -> x_hat."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.transform = BlockTransform(cfg.blocks, cfg.block_width)
        self.latent = LatentCodec(intra=True, theta=INTRA_DEAD_ZONE, lam=LAMBDA)

    @torch.no_grad()
    def encode(
        self, x: torch.Tensor, qp: int, tables: ProbabilityTables, shifts_allowed: bool = False
    ) -> IntraOutput:
        """Code frame x (table shifts allowed or not: entropy.table_shifts)."""
        latent = self.latent.encode(self.transform.analysis(x), qp, tables, shifts_allowed=shifts_allowed)
        return IntraOutput(self.reconstruct(latent.y_hat, qp), latent)

    def reconstruct(self, y_hat: torch.Tensor, qp: int) -> torch.Tensor:
        """x_hat = deblock(S(y_hat)), the synthesis rounded to 1/64 levels first."""
        return deblock(to_fine(self.transform.synthesis(y_hat)), qp, y_hat.dtype)

    @torch.no_grad()
    def decode(
        self,
        stream: bytes,
        frame_shape: tuple[int, ...],
        qp: int,
        tables: ProbabilityTables,
        like: torch.Tensor,
        has_shifts: bool = False,
    ) -> IntraOutput:
        """Read an I frame of tensor shape `frame_shape`; `like` sets the device and dtype;
        `has_shifts`: its substream starts with table shifts."""
        latent = self.latent.decode(
            stream, latent_positions(frame_shape), qp, tables, like, has_shifts=has_shifts
        )
        return IntraOutput(self.reconstruct(latent.y_hat, qp), latent)
