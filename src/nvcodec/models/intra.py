"""The intra (I) frame coder: block transform, quantiser with DC prediction, context coding,
intra prediction of the blocks' shapes (when the stream allows it), deblocking."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables, SymbolDecoder, SymbolEncoder
from nvcodec.models import intra_prediction
from nvcodec.models.config import ModelConfig
from nvcodec.models.deblock import deblock
from nvcodec.models.intra_prediction import ModeSet
from nvcodec.models.intra_search import decide_modes
from nvcodec.models.latent_codec import LAMBDA, LatentCodec, LatentResult, latent_positions
from nvcodec.models.layout import to_fine
from nvcodec.models.transform import BlockTransform

INTRA_DEAD_ZONE = 0.3


@dataclass
class IntraOutput:
    x_hat: torch.Tensor
    latent: LatentResult
    modes: np.ndarray | None = None  # the intra prediction modes per area (None: not predicted)

    @property
    def coded(self) -> None:
        """Every block of an intra frame is coded (InterOutput.coded's map would be all true)."""
        return None


class IntraCoder(nn.Module):
    """x -> analysis -> quantise and code -> synthesis -> deblocking -> x_hat; with intra
    prediction, the analysis codes x minus each block's prediction and the synthesis adds it back."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.transform = BlockTransform(cfg.blocks, cfg.block_width)
        self.latent = LatentCodec(intra=True, theta=INTRA_DEAD_ZONE, lam=LAMBDA)

    @torch.no_grad()
    def encode(
        self,
        x: torch.Tensor,
        qp: int,
        tables: ProbabilityTables,
        shifts_allowed: bool = False,
        prediction: ModeSet | None = None,
        bits: int = 8,
    ) -> IntraOutput:
        """Code frame x (table shifts allowed or not: entropy.table_shifts; `prediction`: with
        intra prediction of these modes, the mode map first in the substream), reconstructed on
        the grid of `bits`-bit levels."""
        if prediction is None:
            latent = self.latent.encode(self.transform.analysis(x), qp, tables, shifts_allowed=shifts_allowed)
            return IntraOutput(self.reconstruct(latent.y_hat, qp, None, bits), latent)
        decision = decide_modes(x, self.transform, self.latent, qp, tables, prediction)
        encoder = SymbolEncoder(tables)
        intra_prediction.write_modes(encoder, decision.modes, prediction)
        latent = self.latent.encode_decided(
            decision.scaled,
            decision.levels,
            qp,
            tables,
            x,
            encoder,
            shifts_allowed,
            med_dc=not prediction.pixel_dc,
        )
        x_hat = self.reconstruct(latent.y_hat, qp, decision.modes, bits, prediction)
        return IntraOutput(x_hat, latent, decision.modes)

    def reconstruct(
        self,
        y_hat: torch.Tensor,
        qp: int,
        modes: np.ndarray | None = None,
        bits: int = 8,
        prediction: ModeSet | None = None,
    ) -> torch.Tensor:
        """x_hat = deblock(S(y_hat)), the synthesis rounded to 1/64 levels first, each block's
        prediction (of `prediction`'s `modes`) added along the way when there are modes, on the
        grid of `bits`-bit levels."""
        fine = to_fine(self.transform.synthesis(y_hat))
        if modes is not None and prediction is not None:
            fine = intra_prediction.reconstruct(fine, modes, prediction)
        return deblock(fine, qp, y_hat.dtype, bits=bits)

    @torch.no_grad()
    def decode(
        self,
        stream: bytes,
        frame_shape: tuple[int, ...],
        qp: int,
        tables: ProbabilityTables,
        like: torch.Tensor,
        has_shifts: bool = False,
        prediction: ModeSet | None = None,
        bits: int = 8,
    ) -> IntraOutput:
        """Read an I frame of tensor shape `frame_shape`; `like` sets the device and dtype;
        `has_shifts`: its latent starts with table shifts; `prediction`: the substream starts
        with the mode map of these modes; `bits`: the levels of its reconstruction."""
        positions = latent_positions(frame_shape)
        decoder = SymbolDecoder(tables, stream)
        modes = None
        if prediction is not None:
            grid = intra_prediction.macroblock_grid(frame_shape, prediction.side)
            modes = intra_prediction.read_modes(decoder, grid, prediction)
        med_dc = prediction is None or not prediction.pixel_dc
        latent = self.latent.read(decoder, positions, qp, like, has_shifts=has_shifts, med_dc=med_dc)
        decoder.finish()
        return IntraOutput(self.reconstruct(latent.y_hat, qp, modes, bits, prediction), latent, modes)
