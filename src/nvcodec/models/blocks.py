"""Building blocks: depthwise residual blocks, pixel-shuffle resampling, the ConFRE residual net."""

from __future__ import annotations

import torch
from torch import nn


def conv1x1(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1)


def conv3x3(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class DepthConvBlock(nn.Module):
    """x + pointwise(depthwise(pointwise(x))), then x + a pointwise feed-forward (DCVC-DC style)."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.spatial = nn.Sequential(
            conv1x1(ch, ch), nn.LeakyReLU(0.1), nn.Conv2d(ch, ch, 3, padding=1, groups=ch), conv1x1(ch, ch)
        )
        self.ffn = nn.Sequential(conv1x1(ch, 2 * ch), nn.LeakyReLU(0.1), conv1x1(2 * ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.spatial(x)
        return x + self.ffn(x)


def stage(ch: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(DepthConvBlock(ch) for _ in range(blocks)))


class Down(nn.Sequential):
    """Halve the size: space-to-depth by 2, then a 1x1 convolution."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.PixelUnshuffle(2), conv1x1(4 * cin, cout))


class Up(nn.Sequential):
    """Double the size: a 1x1 convolution, then depth-to-space by 2."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(conv1x1(cin, 4 * cout), nn.PixelShuffle(2))


class Fuse(nn.Module):
    """Concatenate two maps and mix them with a 1x1 convolution."""

    def __init__(self, cin_a: int, cin_b: int, cout: int) -> None:
        super().__init__()
        self.mix = conv1x1(cin_a + cin_b, cout)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([a, b], dim=1))


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
