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
from nvcodec.models.flat_blocks import block_means, coding_cost, flatten, to_predictors, vector_costs
from nvcodec.models.latent_codec import LatentCodec, LatentResult, base_step, latent_positions
from nvcodec.models.layout import block_sums, to_fine
from nvcodec.models.motion import MotionCoder, block_grid
from nvcodec.models.motion_search import RateOf, search
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
# The encoder's estimate of a flat block's residual cost is multiplied by this before it is compared:
# the estimate undercounts it (the latent's contexts expect the quieter block of the frame before).
# Against 1.0, on 24 frames at qps 22-37 (BD-rate against --flat-blocks off): Cockatoo -4.5% instead
# of -3.3%, Cactus +0.4% instead of +1.1%.
FLAT_MARGIN = 1.25
Refine = Callable[[torch.Tensor], torch.Tensor]  # the in-loop filter applied to the prediction


@dataclass
class InterOutput:
    x_hat: torch.Tensor
    vectors: np.ndarray  # (Hb, Wb, 2) quarter luma pixels
    block: int  # luma pixels per side of the motion blocks
    flat: np.ndarray | None  # (Hb, Wb) the flat blocks (models.flat_blocks); None: no map coded
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
        target = F.pixel_shuffle(x[:, :4], 2)[0, 0]
        rate_of = self._rate_of(qp, tables)
        return search(target, reference, seed(flow, block), base_step(qp) * 255, rate_of, block)

    def _rate_of(self, qp: int, tables: ProbabilityTables) -> RateOf:
        """The bits of vector differences in their context buckets, from the coder's tables."""
        indices = self.motion.qp_indices(qp)

        def rate_of(d: np.ndarray, buckets: np.ndarray) -> np.ndarray:
            k = indices[:, buckets]
            return tables.magnitude_bits(k[0], d[..., 0]) + tables.magnitude_bits(k[1], d[..., 1])

        return rate_of

    @torch.no_grad()
    def flat_blocks(
        self,
        x: torch.Tensor,
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        vectors: np.ndarray,
        block: int,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(vectors, flat map or None when no block is flat): the blocks whose residual costs less
        to code flat (flat_blocks.coding_cost, plus lambda times the vector bits saved, at the
        INTER_LAMBDA the residual's levels are decided with), their vectors made their predictors
        (not normative; INTER_LAMBDA rather than LAMBDA: BD-rate -3.3% against -2.6% on 24
        Cockatoo frames, qps 22-37).

        A flat block's mean is read at its predictor, which depends on the blocks decided flat
        before it: the choice made at the searched vectors is checked again at the predictors it
        gives (the mean read elsewhere is what made a single pass lose, on Cockatoo at qp 27-37)."""

        def flat_cost(fine: torch.Tensor) -> np.ndarray:
            return self._block_costs(x, Prediction.exact(block_means(fine, block), x.dtype), qp, block)

        def predicted(at: np.ndarray) -> Prediction:
            return reference.predict(torch.from_numpy(at).to(x.device), block)

        mc = predicted(vectors)
        mc_bits, zero_bits = vector_costs(vectors, self._rate_of(qp, tables))
        bound = self._block_costs(x, mc, qp, block) + INTER_LAMBDA * (mc_bits - zero_bits)
        chosen = FLAT_MARGIN * flat_cost(mc.fine) < bound
        if chosen.any():
            chosen &= FLAT_MARGIN * flat_cost(predicted(to_predictors(vectors, chosen)).fine) < bound
        if not chosen.any():
            return vectors, None
        return to_predictors(vectors, chosen), chosen

    def _block_costs(self, x: torch.Tensor, prediction: Prediction, qp: int, block: int) -> np.ndarray:
        """(Hb, Wb) estimated D + lambda R of each motion block's residual, in squared steps."""
        scaled = self.analysis(x, prediction) / self.latent.steps(qp, x)
        per_position = coding_cost(scaled, INTER_LAMBDA)
        return block_sums(per_position, block // (2 * PATCH)).sum(dim=0).cpu().numpy()

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
        flat: np.ndarray | None,
        refine: Refine | None = None,
        shifts_allowed: bool = False,
    ) -> InterOutput:
        """Code frame x with the vectors `search` chose for blocks of `block` luma pixels and the
        flat blocks `flat_blocks` chose; `refine` is the in-loop filter when used; table shifts
        allowed or not."""
        prediction = self._prediction(reference, vectors, block, flat, refine)
        latent = self.latent.encode(self.analysis(x, prediction), qp, tables, previous, shifts_allowed)
        x_hat = self.synthesis(latent.y_hat, prediction, qp)
        stream = self.motion.encode(vectors, qp, tables, flat)
        return InterOutput(x_hat, vectors, block, flat, latent, stream)

    @staticmethod
    def _prediction(
        reference: InterpolatedFrame,
        vectors: np.ndarray,
        block: int,
        flat: np.ndarray | None,
        refine: Refine | None,
    ) -> Prediction:
        """x~: motion compensation, flat blocks made flat, then the in-loop filter when used."""
        prediction = reference.predict(torch.from_numpy(vectors).to(reference.frame.device), block)
        if flat is not None:
            prediction = Prediction.exact(flatten(prediction.fine, flat, block), reference.frame.dtype)
        if refine is not None:
            prediction = prediction.refined(refine)
        return prediction

    @torch.no_grad()
    def decode(
        self,
        streams: tuple[bytes, ...],
        reference: InterpolatedFrame,
        qp: int,
        tables: ProbabilityTables,
        previous: np.ndarray,
        block: int,
        has_flat: bool,
        refine: Refine | None = None,
        has_shifts: bool = False,
    ) -> InterOutput:
        """Read a P frame's two substreams and rebuild it from the reference (motion blocks of
        `block` luma pixels; `has_flat`: its motion substream holds a flat-block map;
        `has_shifts`: its latent substream starts with table shifts)."""
        shape = tuple(reference.frame.shape)
        vectors, flat = self.motion.decode(streams[0], block_grid(shape, block), qp, tables, has_flat)
        prediction = self._prediction(reference, vectors, block, flat, refine)
        like = prediction.values
        latent = self.latent.decode(
            streams[1], latent_positions(shape), qp, tables, like, previous, has_shifts
        )
        return InterOutput(self.synthesis(latent.y_hat, prediction, qp), vectors, block, flat, latent)
