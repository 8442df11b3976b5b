"""The block transform at 1/8 scale: patch embedding, residual stacks, and the way back.

The (N, 6, H/2, W/2) frame tensor is space-to-depth'ed by 4: channel ch*16 + 4i + j holds sample
(4R + i, 4C + j) of tensor channel ch, so each 1/8 position carries the 96 values of one 8x8 block
of 4:2:0 pixels (64 Y from the four Y phases, 16 U, 16 V). A 1x1 convolution maps them to the 96
latent channels; it starts as the orthonormal 8x8 DCT of Y and the 4x4 DCTs of U and V, and the
synthesis as its transpose. Residual blocks on both sides start as the identity (their last
factor is zero), so the untrained transform is exactly the block DCT.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.entropy.context import CHANNELS, CHROMA_CHANNELS, Y_CHANNELS

PATCH = 4


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix, rows are frequencies (float64)."""
    k = torch.arange(n, dtype=torch.float64).view(-1, 1)
    i = torch.arange(n, dtype=torch.float64).view(1, -1)
    m = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    m[0] /= math.sqrt(2.0)
    return m


def block_dct() -> torch.Tensor:
    """(96, 96) orthonormal matrix: latent channel x patch channel (float64).

    Luma coefficient (u, v) is channel 8u + v; chroma coefficient (u, v) of U is 64 + 4u + v and
    of V 80 + 4u + v. Luma pixel (r, c) of the block sits in Y phase (r % 2, c % 2), patch channel
    (2 (r % 2) + c % 2) * 16 + 4 (r // 2) + c // 2.
    """
    basis = torch.zeros(CHANNELS, CHANNELS, dtype=torch.float64)
    d8, d4 = dct_matrix(8), dct_matrix(4)
    luma = torch.einsum("ur,vc->uvrc", d8, d8).reshape(Y_CHANNELS, 8, 8)
    for r in range(8):
        for c in range(8):
            basis[:Y_CHANNELS, (2 * (r % 2) + c % 2) * 16 + 4 * (r // 2) + c // 2] = luma[:, r, c]
    chroma = torch.einsum("ui,vj->uvij", d4, d4).reshape(CHROMA_CHANNELS, CHROMA_CHANNELS)
    for plane in range(2):
        rows = slice(Y_CHANNELS + plane * CHROMA_CHANNELS, Y_CHANNELS + (plane + 1) * CHROMA_CHANNELS)
        cols = slice((4 + plane) * 16, (5 + plane) * 16)
        basis[rows, cols] = chroma
    return basis


class PointBlock(nn.Module):
    """x + W2 dw(W1 x): 1x1, depthwise 3x3, GELU, 1x1; W2 starts at zero (identity block)."""

    def __init__(self, ch: int, width: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(ch, width, 1)
        self.depthwise = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.project = nn.Conv2d(width, ch, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and self.is_identity():
            return x  # coding with an untrained block: its branch would add exactly zero
        return x + self.project(F.gelu(self.depthwise(self.expand(x))))

    def is_identity(self) -> bool:
        """Whether the last factor is still zero, so that the block passes x through."""
        return not (bool(self.project.weight.any()) or bool(self.project.bias.any()))


class BlockTransform(nn.Module):
    """analysis: frame tensor -> latent at 1/8; synthesis: latent -> frame tensor."""

    def __init__(self, blocks: int, width: int) -> None:
        super().__init__()
        basis = block_dct().float()
        self.embed = nn.Conv2d(6 * PATCH * PATCH, CHANNELS, 1, bias=False)
        self.unembed = nn.Conv2d(CHANNELS, 6 * PATCH * PATCH, 1, bias=False)
        with torch.no_grad():
            self.embed.weight.copy_(basis.view(CHANNELS, -1, 1, 1))
            self.unembed.weight.copy_(basis.t().contiguous().view(-1, CHANNELS, 1, 1))
        self.analysis_blocks = nn.Sequential(*(PointBlock(CHANNELS, width) for _ in range(blocks)))
        self.synthesis_blocks = nn.Sequential(*(PointBlock(CHANNELS, width) for _ in range(blocks)))

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        return self.analysis_blocks(self.embed(F.pixel_unshuffle(x, PATCH)))

    def synthesis(self, y: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.unembed(self.synthesis_blocks(y)), PATCH)
