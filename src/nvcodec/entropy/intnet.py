"""Integer layers for the scale-index network: int8 weights, 8-bit activations, exact arithmetic.

An activation a_int stands for the real value a_int / 2**FRAC_BITS. A layer of output channel c has
int8 weights w_int (real w_int / 2**e_c), an int32 bias b_int (real b_int / 2**(FRAC_BITS + e_c)) and
optionally a bias per qp. It computes

    acc = sum(w_int * a_int) + b_int          (exact integers)
    out = clamp((acc + 2**(e_c - 1)) >> e_c, lo, hi)   (round half up; no rounding when e_c = 0)

Training runs the same arithmetic on floats holding integers ("fake quantisation"), with
straight-through gradients for every rounding, so the exported network is the one trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

FRAC_BITS = 4
ACT_MIN, ACT_MAX = -128, 127
WEIGHT_MAX = 127
MAX_EXP = 20
BIAS_MAX = (1 << 30) - 1
EXACT_DTYPE = torch.float64  # integer values below 2**53 are exact; bounds in bitstream_spec.md 6


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round half up in the forward pass, identity gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def ste_clamp(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Clamp in the forward pass, identity gradient (so an output stuck at a bound can recover)."""
    return x + (x.clamp(lo, hi) - x).detach()


class IntConv2d(nn.Module):
    """A convolution with an exact integer form; `export()` freezes it into int buffers."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        lo: int = 0,
        hi: int = ACT_MAX,
        qp_bias: bool = False,
        output: bool = False,
    ) -> None:
        super().__init__()
        self.padding = kernel // 2
        self.lo, self.hi = lo, hi
        self.output = output  # an output layer's clamp passes gradients straight through
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.qp_bias = nn.Parameter(torch.zeros(64, cout)) if qp_bias else None
        self.register_buffer("w_int", torch.zeros(cout, cin, kernel, kernel, dtype=torch.int8))
        self.register_buffer("b_int", torch.zeros(64 if qp_bias else 1, cout, dtype=torch.int32))
        self.register_buffer("w_exp", torch.zeros(cout, dtype=torch.int32))

    def _exponents(self) -> torch.Tensor:
        """Per output channel, the largest e with max|w| * 2**e <= 127."""
        peak = self.weight.detach().abs().flatten(1).amax(dim=1).clamp_min(2.0**-MAX_EXP)
        return torch.floor(torch.log2(WEIGHT_MAX / peak)).clamp(0, MAX_EXP)

    def _quantized(self, qp: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fake-quantised (weights, bias, exponents) as floats holding integers."""
        e = self._exponents()
        scale = torch.pow(2.0, e).view(-1, 1, 1, 1)
        w = ste_round(self.weight * scale).clamp(-WEIGHT_MAX, WEIGHT_MAX)
        b = self.bias if self.qp_bias is None else self.bias + self.qp_bias[qp]
        b = ste_round(b * torch.pow(2.0, e + FRAC_BITS)).clamp(-BIAS_MAX, BIAS_MAX)
        return w, b, e

    def forward(self, x: torch.Tensor, qp: int = 0) -> torch.Tensor:
        """Training form: floats holding integers in, floats holding integers out."""
        w, b, e = self._quantized(qp)
        # exact integer sums need plain fp32 products: no autocast, and no cuDNN (its TF32 and
        # Winograd kernels round); bitstream_spec.md 6.6
        with torch.autocast(x.device.type, enabled=False), torch.backends.cudnn.flags(enabled=False):
            acc = F.conv2d(x.float(), w.float(), b.float(), padding=self.padding)
        step = torch.pow(2.0, e).view(1, -1, 1, 1)
        out = ste_round(acc / step)
        return ste_clamp(out, self.lo, self.hi) if self.output else out.clamp(self.lo, self.hi)

    @torch.no_grad()
    def export(self) -> None:
        """Freeze the current float weights into the integer buffers used for coding."""
        w, b, e = self._quantized(0)
        self.w_int.copy_(w.to(torch.int8))
        self.w_exp.copy_(e.to(torch.int32))
        if self.qp_bias is None:
            self.b_int.copy_(b.view(1, -1).to(torch.int32))
        else:
            rows = [self._quantized(qp)[1] for qp in range(64)]
            self.b_int.copy_(torch.stack(rows).to(torch.int32))

    def exact(self, x: torch.Tensor, qp: int = 0) -> torch.Tensor:
        """Coding form: int64 in, int64 out, computed exactly from the integer buffers."""
        b = self.b_int[qp if self.qp_bias is not None else 0].to(EXACT_DTYPE)
        acc = F.conv2d(x.to(EXACT_DTYPE), self.w_int.to(EXACT_DTYPE), b, padding=self.padding)
        acc = acc.to(torch.int64)
        e = self.w_exp.to(torch.int64).view(1, -1, 1, 1)
        half = torch.where(e > 0, torch.ones_like(e) << (e - 1).clamp_min(0), torch.zeros_like(e))
        return ((acc + half) >> e).clamp(self.lo, self.hi)
