"""Multiply-accumulate counts of the coding paths, per pixel of the frame (kMAC/pixel)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def count_conv_macs() -> Iterator[list[int]]:
    """Within the block, every Conv2d call adds its multiply-accumulates to the yielded list."""
    total = [0]

    def hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        total[0] += output.numel() * (module.in_channels // module.groups) * kh * kw

    handle = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: hook(m, i, o) if isinstance(m, nn.Conv2d) else None
    )
    try:
        yield total
    finally:
        handle.remove()


def kmacs_per_pixel(run: Callable[[], object], pixels: int) -> float:
    """kMAC per frame pixel of the convolutions that `run` calls (other ops are negligible)."""
    with count_conv_macs() as total:
        run()
    return total[0] / pixels / 1000
