"""The rate-distortion loss of a stage over a batch of sequences (summed over frames)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from nvcodec.codec.schedule import DEFAULT_QP_OFFSETS, scheduled_qp
from nvcodec.models.layout import quantize_pixels, weighted_mse
from nvcodec.models.nvc import NvcModel
from nvcodec.models.qscale import lambda_of
from nvcodec.train.stages import Stage


def ste_quantize(x: torch.Tensor) -> torch.Tensor:
    """The 8-bit reference the codec keeps, with the gradient passed straight through."""
    return x + (quantize_pixels(x) - x).detach()


def psnr_of(mse: torch.Tensor) -> float:
    return 10 * math.log10(1 / max(float(mse), 1e-10))


@dataclass
class FrameTerm:
    """One frame's contribution: lambda * distortion + bits per pixel."""

    loss: torch.Tensor
    bpp: float
    mse: float


class SequenceLoss(nn.Module):
    """Codes a batch (B, T, 6, h, w) as one I frame then T-1 P frames and returns the mean loss.

    The I frame is at `qp`; P frame t at the hierarchical qp (qp + offset of position t), and its
    lambda follows its qp, which is how the hierarchical weights enter the loss.
    """

    def __init__(self, model: NvcModel, stage: Stage) -> None:
        super().__init__()
        self.model, self.stage = model, stage

    def _term(self, x_hat: torch.Tensor, x: torch.Tensor, bits: torch.Tensor, qp: int) -> FrameTerm:
        cfg = self.model.config
        mse = weighted_mse(x_hat, x).mean()
        bpp = bits.mean() / (x.shape[-1] * x.shape[-2] * 4)
        loss = lambda_of(qp, cfg.lambda_min, cfg.lambda_max) * mse + bpp
        return FrameTerm(loss, float(bpp.detach()), float(mse.detach()))

    def _trains(self, prefix: str) -> bool:
        return any(p.startswith(prefix) for p in self.stage.train)

    def forward(self, seq: torch.Tensor, qp: int, refresh: list[bool]) -> tuple[torch.Tensor, dict]:
        model, x0 = self.model, seq[:, 0]
        terms: list[FrameTerm] = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and self._trains("intra")):
            intra = model.intra(x0, qp)
        if self._trains("intra"):
            terms.append(self._term(intra.x_hat, x0, intra.latent.bits, qp))
        ref, feature, previous = ste_quantize(intra.x_hat), None, (None, intra.latent.symbols)
        for t in range(1, seq.shape[1]):
            x, qp_t = seq[:, t], scheduled_qp(qp, t, DEFAULT_QP_OFFSETS)
            ref_feature = model.reference_feature(ref, feature, refresh[t], self.stage.use_filter)
            out = model.inter(x, ref, ref_feature, qp_t, previous)
            term = self._term(out.x_hat, x, out.motion.bits + out.latent.bits, qp_t)
            if self.stage.enhance:
                shown = model.enhancer(ste_quantize(out.x_hat))
                term.loss = term.loss + self._term(shown, x, shown.new_zeros(1), qp_t).loss
            terms.append(term)
            ref, feature, previous = (
                ste_quantize(out.x_hat),
                out.feature,
                (out.motion.symbols, out.latent.symbols),
            )
        loss = torch.stack([t.loss for t in terms]).mean()
        mse = sum(t.mse for t in terms) / len(terms)
        metrics = {
            "loss": float(loss.detach()),
            "bpp": sum(t.bpp for t in terms) / len(terms),
            "psnr": psnr_of(torch.tensor(mse)),
        }
        return loss, metrics
