"""The inter (P) frame coder: conditional coding of x_t given temporal contexts (DCVC-FM 3.1).

flow = ME(x_t, x_hat_{t-1})  ->  MotionCoder  ->  flow_hat
(C1, C2, C3, prior) = TemporalContextMining(F_ref, flow_hat)
y = ContextualEncoder(x_t, C1, C2, C3)  ->  LatentCodec(prior, previous symbols)  ->  y_hat
F_t = ContextualDecoder(y_hat, C1, C2, C3);   x_hat_t = ReconstructionHead(F_t)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from nvcodec.entropy.coder import ProbabilityTables
from nvcodec.models.blocks import Down, Fuse, Up, conv1x1, conv3x3, stage
from nvcodec.models.config import ModelConfig
from nvcodec.models.contexts import FeatureExtractor, TemporalContextMining
from nvcodec.models.latent_codec import LatentCodec, LatentResult, latent_shape
from nvcodec.models.motion import MotionCoder, MotionEstimator, MotionOutput

Contexts = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class ContextualEncoder(nn.Module):
    """(x_t, C1, C2, C3) -> y_t at 1/16."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w0, w1, w2, w3 = cfg.widths
        c1, c2, c3 = cfg.context_ch
        b = cfg.blocks
        self.head = nn.Sequential(conv3x3(6 + c1, w0), stage(w0, b))
        self.down1, self.fuse2, self.stage2 = Down(w0, w1), Fuse(w1, c2, w1), stage(w1, b)
        self.down2, self.fuse3, self.stage3 = Down(w1, w2), Fuse(w2, c3, w2), stage(w2, b)
        self.tail = nn.Sequential(Down(w2, w3), stage(w3, b), conv1x1(w3, cfg.latent_ch))

    def forward(self, x: torch.Tensor, contexts: Contexts) -> torch.Tensor:
        c1, c2, c3 = contexts
        a = self.head(torch.cat([x, c1], dim=1))
        a = self.stage2(self.fuse2(self.down1(a), c2))
        a = self.stage3(self.fuse3(self.down2(a), c3))
        return self.tail(a)


class ContextualDecoder(nn.Module):
    """(y_hat, C1, C2, C3) -> F_t, the feature propagated to the next frame (at 1/2)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w0, w1, w2, w3 = cfg.widths
        c1, c2, c3 = cfg.context_ch
        b = cfg.blocks
        self.head = nn.Sequential(conv1x1(cfg.latent_ch, w3), stage(w3, b), Up(w3, w2))
        self.fuse3, self.stage3, self.up2 = Fuse(w2, c3, w2), stage(w2, b), Up(w2, w1)
        self.fuse2, self.stage2, self.up1 = Fuse(w1, c2, w1), stage(w1, b), Up(w1, w0)
        self.fuse1, self.stage1 = Fuse(w0, c1, cfg.feature_ch), stage(cfg.feature_ch, b)

    def forward(self, y_hat: torch.Tensor, contexts: Contexts) -> torch.Tensor:
        c1, c2, c3 = contexts
        a = self.up2(self.stage3(self.fuse3(self.head(y_hat), c3)))
        a = self.up1(self.stage2(self.fuse2(a, c2)))
        return self.stage1(self.fuse1(a, c1))


@dataclass
class InterOutput:
    x_hat: torch.Tensor
    feature: torch.Tensor
    motion: LatentResult
    latent: LatentResult
    flow_hat: torch.Tensor

    @property
    def streams(self) -> tuple[bytes, bytes, bytes, bytes]:
        """The four substreams of a P frame: motion z, motion y, z, y."""
        return (*self.motion.streams, *self.latent.streams)


class InterCoder(nn.Module):
    """Codes x_t given the decoded x_hat_{t-1} and the reference feature (already chosen/filtered)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.latent_ch = cfg.latent_ch
        self.motion_estimator = MotionEstimator(cfg.me_levels, cfg.me_widths, cfg.me_scale)
        self.motion = MotionCoder(cfg)
        self.extractor = FeatureExtractor(cfg.feature_ch, cfg.blocks)
        self.contexts = TemporalContextMining(cfg)
        self.encoder = ContextualEncoder(cfg)
        self.decoder = ContextualDecoder(cfg)
        self.reconstruction = nn.Sequential(stage(cfg.feature_ch, cfg.blocks), conv3x3(cfg.feature_ch, 6))
        self.latent = LatentCodec(
            cfg.latent_ch,
            cfg.hyper_ch,
            cfg.prior_ch,
            cfg.prior_ch,
            cfg.index_ch,
            cfg.spatial_steps,
            temporal=True,
        )

    def _finish(self, latent: LatentResult, contexts: Contexts) -> tuple[torch.Tensor, torch.Tensor]:
        feature = self.decoder(latent.y_hat, contexts)
        return feature, self.reconstruction(feature)

    def forward(
        self,
        x: torch.Tensor,
        ref_frame: torch.Tensor,
        ref_feature: torch.Tensor,
        qp: int,
        previous: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
    ) -> InterOutput:
        """Training. `previous` holds the previous frame's (motion symbols, latent symbols)."""
        motion = self.motion(self.motion_estimator(x, ref_frame), qp, previous[0])
        *contexts, prior = self.contexts(ref_feature, motion.flow_hat)
        latent = self.latent(self.encoder(x, contexts), qp, prior=prior, previous=previous[1])
        feature, x_hat = self._finish(latent, contexts)
        return InterOutput(x_hat, feature, motion.latent, latent, motion.flow_hat)

    @torch.no_grad()
    def encode_motion(
        self,
        x: torch.Tensor,
        ref_frame: torch.Tensor,
        qp: int,
        tables: ProbabilityTables,
        previous: torch.Tensor | None = None,
    ) -> MotionOutput:
        """Estimate and code the motion (independent of the reference feature)."""
        return self.motion.encode(self.motion_estimator(x, ref_frame), qp, tables, previous)

    @torch.no_grad()
    def encode_texture(
        self,
        x: torch.Tensor,
        motion: MotionOutput,
        ref_feature: torch.Tensor,
        qp: int,
        tables: ProbabilityTables,
        previous: torch.Tensor | None = None,
    ) -> InterOutput:
        """Code x_t given its coded motion and the reference feature."""
        *contexts, prior = self.contexts(ref_feature, motion.flow_hat)
        latent = self.latent.encode(self.encoder(x, contexts), qp, tables, prior=prior, previous=previous)
        feature, x_hat = self._finish(latent, contexts)
        return InterOutput(x_hat, feature, motion.latent, latent, motion.flow_hat)

    @torch.no_grad()
    def decode(
        self,
        streams: tuple[bytes, bytes, bytes, bytes],
        ref_frame: torch.Tensor,
        ref_feature: torch.Tensor,
        qp: int,
        tables: ProbabilityTables,
        previous: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
    ) -> InterOutput:
        shape = tuple(ref_frame.shape)
        motion = self.motion.decode(streams[:2], shape, qp, tables, previous[0], like=ref_frame)
        *contexts, prior = self.contexts(ref_feature, motion.flow_hat)
        y_shape = latent_shape(shape, self.latent_ch)
        latent = self.latent.decode(
            streams[2:], y_shape, qp, tables, prior=prior, previous=previous[1], like=ref_frame
        )
        feature, x_hat = self._finish(latent, contexts)
        return InterOutput(x_hat, feature, motion.latent, latent, motion.flow_hat)
