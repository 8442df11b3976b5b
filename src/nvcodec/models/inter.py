"""The inter (P) frame coder: block motion compensation, then conditional residual coding.

x~ = MC(x_hat_{t-1}, vectors)              (optionally refined by ConFRE's in-loop filter)
y  = A(x - x~) + C_a(E(x~))                 C_a, C_s start at zero: plain residual coding
x_hat = deblock(x~ + S(y_hat + C_s(E(x~))))  the sum in integer 1/64 levels (models.deblock)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.entropy.context import CHANNELS
from nvcodec.models.compensation import InterpolatedFrame, Prediction
from nvcodec.models.config import ModelConfig
from nvcodec.models.deblock import deblock
from nvcodec.models.latent_codec import LatentCodec, LatentResult, base_step, latent_positions
from nvcodec.models.layout import to_fine
from nvcodec.models.motion import MotionCoder, block_grid
from nvcodec.models.motion_search import search
from nvcodec.models.motion_seed import MotionEstimator, seed
from nvcodec.models.transform import PATCH, BlockTransform

INTER_DEAD_ZONE = 0.2
# P frames zero fewer levels than intra frames (latent_codec.LAMBDA = 0.272): each P frame is the
# next one's reference, so what it keeps pays again in the frames after it (x264's macroblock tree
# lowers the quantiser of referenced blocks for the same reason). Measured against 0.272 with the
# released weights: BD-rate -0.4% on 96 Foreman frames (qps 22-42), -3.8% on 24 of Cockatoo (22-37),
# -2.3% on 24 of Cactus (27-32); the drift (first 16 frames minus the last 16) of Foreman falls by
# 0.1-0.3 dB at every qp.
INTER_LAMBDA = 0.19
Refine = Callable[[torch.Tensor], torch.Tensor]  # the in-loop filter applied to the prediction


@dataclass
class InterOutput:
    x_hat: torch.Tensor
    vectors: np.ndarray  # (Hb, Wb, 2) quarter luma pixels
    block: int  # luma pixels per side of the motion blocks
    latent: LatentResult
    motion_stream: bytes | None = None

    @property
    def streams(self) -> tuple[bytes, bytes]:
        """The two substreams of a P frame: motion vectors, residual latent."""
        assert self.motion_stream is not None and self.latent.stream is not None
        return self.motion_stream, self.latent.stream


def _zero_conv(ch: int) -> nn.Conv2d:
    conv = nn.Conv2d(ch, ch, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class InterCoder(nn.Module):
    """Motion (estimation, search, vector coding) and the conditional residual coder."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.estimator = MotionEstimator(cfg.me_levels, cfg.me_widths, cfg.me_scale)
        self.motion = MotionCoder()
        self.transform = BlockTransform(cfg.blocks, cfg.block_width)
        self.condition_analysis = _zero_conv(CHANNELS)
        self.condition_synthesis = _zero_conv(CHANNELS)
        self.latent = LatentCodec(intra=False, theta=INTER_DEAD_ZONE, lam=INTER_LAMBDA)

    def _embedded(self, prediction: torch.Tensor) -> torch.Tensor:
        return self.transform.embed(F.pixel_unshuffle(prediction, PATCH))

    def analysis(self, x: torch.Tensor, prediction: Prediction) -> torch.Tensor:
        """y = A(x - x~) + C_a(E(x~))."""
        p = prediction.values
        return self.transform.analysis(x - p) + self.condition_analysis(self._embedded(p))

    def synthesis(self, y_hat: torch.Tensor, prediction: Prediction, qp: int) -> torch.Tensor:
        """x_hat = deblock(x~ + S(y_hat + C_s(E(x~)))), the residual rounded to 1/64 levels."""
        residual = self.transform.synthesis(
            y_hat + self.condition_synthesis(self._embedded(prediction.values))
        )
        return deblock(prediction.fine + to_fine(residual), qp, residual.dtype)

    @torch.no_grad()
    def flow(self, x: torch.Tensor, reference: InterpolatedFrame) -> torch.Tensor:
        """SpyNet's flow from the reference to frame x, which seeds the searches (not normative)."""
        return self.estimator.flow(x, reference.frame)

    @torch.no_grad()
    def search(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        flow: torch.Tensor,
        block: int,
    ) -> np.ndarray:
        """The encoder's vectors for frame x, one per block x block luma pixels (not normative)."""
        indices = self.motion.qp_indices(qp)

        def rate_of(d: np.ndarray, buckets: np.ndarray) -> np.ndarray:
            k = indices[:, buckets]
            return tables.magnitude_bits(k[0], d[..., 0]) + tables.magnitude_bits(k[1], d[..., 1])

        target = F.pixel_shuffle(x[:, :4], 2)[0, 0]
        return search(target, reference, seed(flow, block), base_step(qp) * 255, rate_of, block)

    @torch.no_grad()
    def encode(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray,
        vectors: np.ndarray,
        block: int,
        refine: Refine | None = None,
    ) -> InterOutput:
        """Code frame x with the vectors `search` chose for blocks of `block` luma pixels; `refine`
        is the in-loop filter when used."""
        prediction = reference.predict(torch.from_numpy(vectors).to(x.device), block)
        if refine is not None:
            prediction = prediction.refined(refine)
        latent = self.latent.encode(self.analysis(x, prediction), qp, tables, previous)
        x_hat = self.synthesis(latent.y_hat, prediction, qp)
        return InterOutput(x_hat, vectors, block, latent, self.motion.encode(vectors, qp, tables))

    @torch.no_grad()
    def decode(
        self,
        streams: tuple[bytes, ...],
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray,
        block: int,
        refine: Refine | None = None,
    ) -> InterOutput:
        """Read a P frame's two substreams and rebuild it from the reference (motion blocks of
        `block` luma pixels)."""
        shape = tuple(reference.frame.shape)
        vectors = self.motion.decode(streams[0], block_grid(shape, block), qp, tables)
        prediction = reference.predict(torch.from_numpy(vectors).to(reference.frame.device), block)
        if refine is not None:
            prediction = prediction.refined(refine)
        like = prediction.values
        latent = self.latent.decode(streams[1], latent_positions(shape), qp, tables, like, previous)
        return InterOutput(self.synthesis(latent.y_hat, prediction, qp), vectors, block, latent)
