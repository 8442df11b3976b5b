"""SpyNet: coarse-to-fine optical flow with one small CNN per pyramid level.

Each level sees 8 channels at its own resolution: the target frame, the reference frame warped by
the flow so far, and that flow (2 channels, x then y, in pixels of the level). It outputs a residual
that is added to the flow. Going one level finer, the flow is upsampled bilinearly and doubled
(its pixels are twice as many). The pyramid is built by 2x2 average pooling of RGB in [0, 1],
without mean/std normalisation, which is what the pretrained arrays (`modelL{level}_F-{layer}`,
level 1 the coarsest, as published with the DVC PyTorch port) expect.

The result is a backward flow: `warp(reference, spynet(target, reference))` approximates `target`,
with `nvcodec.models.warp.warp` (channel 0 horizontal). That same warp is used inside, so the
module runs in fp16 at any frame size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nvcodec.errors import WeightsError
from nvcodec.models.warp import warp

MAX_LEVELS = 6  # levels present in the pretrained set
PRETRAINED_WIDTHS = (8, 32, 64, 32, 16, 2)  # channels in and out of the five 7x7 convolutions
KERNEL = 7


def _level_net(widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        if i:
            layers.append(nn.ReLU(inplace=False))
        layers.append(nn.Conv2d(cin, cout, KERNEL, padding=KERNEL // 2))
    return nn.Sequential(*layers)


def _convs(net: nn.Sequential) -> list[nn.Conv2d]:
    return [m for m in net if isinstance(m, nn.Conv2d)]


class SpyNet(nn.Module):
    """Optical flow from `target` to `reference` (backward flow), `levels` pyramid levels.

    With `levels` L the input is pooled L-1 times; the coarsest level runs on 1/2**(L-1) of the
    input, so H and W must be multiples of 2**(L-1). Network i (0 = coarsest) corresponds to the
    pretrained level i+1.
    """

    def __init__(self, levels: int = 4, widths: tuple[int, ...] = PRETRAINED_WIDTHS) -> None:
        super().__init__()
        if not 1 <= levels <= MAX_LEVELS:
            raise ValueError(f"SpyNet levels must be in 1..{MAX_LEVELS}, got {levels}")
        if widths[0] != 8 or widths[-1] != 2:
            raise ValueError(f"SpyNet widths must start at 8 and end at 2, got {widths}")
        self.num_levels = levels
        self.basic = nn.ModuleList(_level_net(tuple(widths)) for _ in range(levels))

    @property
    def multiple(self) -> int:
        """What H and W of the input must be multiples of."""
        return 2 ** (self.num_levels - 1)

    def load_pretrained(self, directory: str | Path) -> None:
        """Load `modelL{level}_F-{layer}-{weight,bias}.npy` for levels 1..L from `directory`."""
        directory = Path(directory)
        if not directory.is_dir():
            raise WeightsError(f"SpyNet weights: no such directory {directory}")
        loaded: dict[str, Tensor] = {}
        for i, net in enumerate(self.basic):
            for j, conv in enumerate(_convs(net)):
                for kind, param in (("weight", conv.weight), ("bias", conv.bias)):
                    path = directory / f"modelL{i + 1}_F-{j + 1}-{kind}.npy"
                    if not path.is_file():
                        raise WeightsError(f"SpyNet weights: missing {path}")
                    try:
                        array = np.load(path, allow_pickle=False)
                    except (OSError, ValueError) as exc:
                        raise WeightsError(f"SpyNet weights: cannot read {path}: {exc}") from exc
                    if tuple(array.shape) != tuple(param.shape):
                        raise WeightsError(
                            f"SpyNet weights: {path.name} has shape {tuple(array.shape)},"
                            f" expected {tuple(param.shape)}"
                        )
                    if not np.issubdtype(array.dtype, np.floating):
                        raise WeightsError(f"SpyNet weights: {path.name} is not floating point")
                    loaded[f"{i}.{j}.{kind}"] = torch.from_numpy(array.astype(np.float32))
        # Copy only after every file checked out, so a failure leaves the module unchanged.
        with torch.no_grad():
            for i, net in enumerate(self.basic):
                for j, conv in enumerate(_convs(net)):
                    conv.weight.copy_(loaded[f"{i}.{j}.weight"])
                    conv.bias.copy_(loaded[f"{i}.{j}.bias"])

    def forward(self, target: Tensor, reference: Tensor) -> Tensor:
        """Flow (N, 2, H, W) in input pixels with `warp(reference, flow)` close to `target`."""
        if target.shape != reference.shape or target.dim() != 4 or target.shape[1] != 3:
            raise ValueError(
                f"SpyNet wants two (N, 3, H, W) tensors of one shape, got"
                f" {tuple(target.shape)} and {tuple(reference.shape)}"
            )
        h, w = target.shape[-2:]
        m = self.multiple
        if h % m or w % m:
            raise ValueError(f"SpyNet with {self.num_levels} levels needs H, W multiples of {m}")
        targets, references = [target], [reference]
        for _ in range(self.num_levels - 1):
            targets.append(F.avg_pool2d(targets[-1], 2))
            references.append(F.avg_pool2d(references[-1], 2))
        coarse = targets[-1]
        flow = coarse.new_zeros(coarse.shape[0], 2, coarse.shape[2], coarse.shape[3])
        for i, net in enumerate(self.basic):
            tgt, ref = targets[-1 - i], references[-1 - i]
            if i:
                flow = 2.0 * F.interpolate(flow, size=tgt.shape[-2:], mode="bilinear", align_corners=False)
            flow = flow + net(torch.cat([tgt, warp(ref, flow), flow], dim=1))
        return flow
