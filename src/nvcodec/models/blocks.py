"""The ConFRE residual net (in-loop filter and enhancement) and its blocks."""

from __future__ import annotations

import torch
from torch import nn


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class ResBlock(nn.Module):
    """Two 3x3 convolutions with a ReLU between, added to the input."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(ch, ch), nn.ReLU(), conv3x3(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualRefiner(nn.Module):
    """ConFRE's filter shape: 3x3 in, N residual blocks, 3x3 out, added to the input.

    The last convolution starts at zero, so an untrained refiner is the identity.
    """

    def __init__(self, ch: int, width: int, blocks: int) -> None:
        super().__init__()
        self.head = conv3x3(ch, width)
        self.body = nn.Sequential(*(ResBlock(width) for _ in range(blocks)))
        self.tail = conv3x3(width, ch)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    @property
    def is_identity(self) -> bool:
        """True while the last convolution is all zero (untrained): the refiner returns its input."""
        return not (self.tail.weight.any() or self.tail.bias.any())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tail(self.body(self.head(x)))
