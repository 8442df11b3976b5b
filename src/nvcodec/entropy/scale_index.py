"""The scale-index network: integers in (hyperprior symbols, qp, decoded symbols), table indices out.

Nothing float reaches it, so every decoder computes the same indices (DESIGN.md, "Parse-exact").
Layout for a latent of C channels at 1/16 of the frame and a hyperprior of Z channels at 1/64:

    hyper:  z symbols -> 3x3 (Z->W) -> 1x1 (W->16W) -> depth-to-space x4 -> h   (W channels)
    step j: [h, symbols of earlier steps, previous frame's symbols]
            -> 1x1 (+ bias per qp) -> 3x3 -> 3x3 -> 1x1 (->C) = scale index in [0, L)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.entropy.intnet import ACT_MAX, ACT_MIN, FRAC_BITS, IntConv2d
from nvcodec.entropy.tables import NUM_SCALES

INITIAL_INDEX = 24


def symbol_input(symbols: torch.Tensor) -> torch.Tensor:
    """Symbols as network input: clamped to the 8-bit activation range."""
    return symbols.clamp(ACT_MIN, ACT_MAX)


class ScaleIndexNet(nn.Module):
    """Predicts the scale index of every latent element of each spatial-prior step."""

    def __init__(self, latent_ch: int, hyper_ch: int, width: int, steps: int, temporal: bool) -> None:
        super().__init__()
        self.temporal = temporal
        self.hyper_in = IntConv2d(hyper_ch, width, 3)
        self.hyper_up = IntConv2d(width, 16 * width, 1)
        cin = width + latent_ch * (2 if temporal else 1)
        self.heads = nn.ModuleList(
            nn.ModuleList(
                [
                    IntConv2d(cin, width, 1, qp_bias=True),
                    IntConv2d(width, width, 3),
                    IntConv2d(width, width, 3),
                    IntConv2d(width, latent_ch, 1, lo=0, hi=NUM_SCALES - 1, output=True),
                ]
            )
            for _ in range(steps)
        )
        self._start_mid_range()

    def _start_mid_range(self) -> None:
        """Untrained heads predict scale index ~24 (sigma ~1.6) rather than the bottom table."""
        for head in self.heads:
            with torch.no_grad():
                head[-1].bias.fill_(INITIAL_INDEX / 2**FRAC_BITS)

    def _hyper(self, z_symbols: torch.Tensor, exact: bool) -> torch.Tensor:
        layers = (self.hyper_in, self.hyper_up)
        x = symbol_input(z_symbols)
        for layer in layers:
            x = layer.exact(x) if exact else layer(x)
        return F.pixel_shuffle(x, 4)

    def _head(self, step: int, inputs: torch.Tensor, qp: int, exact: bool) -> torch.Tensor:
        x = inputs
        for layer in self.heads[step]:
            x = layer.exact(x, qp) if exact else layer(x, qp)
        return x

    def _inputs(self, h: torch.Tensor, decoded: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        parts = [h, symbol_input(decoded)]
        if self.temporal:
            parts.append(symbol_input(previous) if previous is not None else torch.zeros_like(decoded))
        return torch.cat(parts, dim=1)

    def hyper_features(self, z_symbols: torch.Tensor, exact: bool) -> torch.Tensor:
        """The hyperprior part, computed once per frame."""
        return self._hyper(z_symbols, exact)

    def indices(
        self, h: torch.Tensor, step: int, decoded: torch.Tensor, previous: torch.Tensor | None, qp: int
    ) -> torch.Tensor:
        """Exact int64 scale indices for step `step` (all positions; the caller picks its own)."""
        return self._head(step, self._inputs(h, decoded, previous), qp, exact=True)

    def soft_indices(
        self, h: torch.Tensor, step: int, decoded: torch.Tensor, previous: torch.Tensor | None, qp: int
    ) -> torch.Tensor:
        """Training form: the same integers as floats, with straight-through gradients."""
        return self._head(step, self._inputs(h, decoded, previous), qp, exact=False)

    def export(self) -> None:
        for module in self.modules():
            if isinstance(module, IntConv2d):
                module.export()
